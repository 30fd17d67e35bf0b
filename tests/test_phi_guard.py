"""The PHI guard (clinic/phi_guard.py) on its corpus, on every reply in the domain, on
WhatsApp payloads, and with a clinician's edited term list."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from clinic import phi_guard
from clinic.phi_guard import check, check_fields, check_payload, load_terms, rules_of
from whatsapp.outbound import CtaUrl, Template, Text

ROOT = Path(__file__).resolve().parent.parent
CORPUS = yaml.safe_load((ROOT / "tests" / "data" / "phi_corpus.yml").read_text(encoding="utf-8"))


def test_the_corpus_is_big_enough():
    assert len(CORPUS["clinical"]) >= 60 and len(CORPUS["ordinary"]) >= 60
    assert len(set(CORPUS["clinical"])) == len(CORPUS["clinical"])
    assert len(set(CORPUS["ordinary"])) == len(CORPUS["ordinary"])


@pytest.mark.parametrize("message", CORPUS["clinical"])
def test_every_clinical_message_is_blocked(message):
    assert check(message), message


@pytest.mark.parametrize("message", CORPUS["ordinary"])
def test_no_ordinary_clinic_message_is_blocked(message):
    assert check(message) == [], (message, rules_of(check(message)))


@pytest.mark.parametrize("value", CORPUS["parameters"]["blocked"])
def test_strict_mode_blocks_any_clinical_term_in_a_parameter(value):
    assert check(value, strict=True), value


@pytest.mark.parametrize("value", CORPUS["parameters"]["allowed"])
def test_strict_mode_lets_names_dates_and_references_through(value):
    assert check(value, strict=True) == [], value


@pytest.mark.parametrize("message,rule", [
    ("Your glucose was 7.8 mmol/L", "lab_value"),
    ("You tested positive for COVID-19", "test_result"),
    ("You have type 2 diabetes", "diagnosis"),
    ("Dx E11.9", "icd10_code"),
    ("Take 2 tablets twice daily", "medication_dose"),
    ("Your prescription for atorvastatin is ready", "medication"),
])
def test_each_rule_names_itself_and_never_the_text(message, rule):
    findings = check(message, where="body")
    assert rule in rules_of(findings)
    for finding in findings:
        shown = finding.as_dict()
        assert shown["where"] == "body" and shown["hint"]
        assert not any(word.lower() in " ".join(shown.values()).lower()
                       for word in message.split() if len(word) > 4 and word.lower() not in shown["hint"].lower())


def _response_texts(value):
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            if key not in ("payload", "url", "name", "language", "type", "channel", "condition"):
                yield from _response_texts(item)
    elif isinstance(value, list):
        for item in value:
            yield from _response_texts(item)


def test_no_reply_of_the_assistant_is_blocked():
    """The guard sits in front of every bot message: it must never stop the clinic's own
    approved texts, above all the emergency guidance."""
    checked = 0
    for path in sorted((ROOT / "domain").glob("*.yml")):
        responses = (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("responses") or {}
        for name, variants in responses.items():
            for text in _response_texts(variants):
                checked += 1
                assert check(text) == [], (path.name, name, rules_of(check(text)))
    assert checked > 150


def test_whatsapp_payloads_free_text_and_template_parameters():
    assert check_payload(Text("Your results are ready in the portal.").to_payload("x")) == []
    blocked = check_payload(Text("Your HbA1c is 7.2%").to_payload("x"))
    assert rules_of(blocked) == ["lab_value"]
    cta = CtaUrl(body="Your referral letter is ready.", display_text="Open portal",
                 url="https://portal.example/t/abc")
    assert check_payload(cta.to_payload("x")) == []
    ok = Template(name="results_ready", language="en_US", body_params=("Sam",))
    assert check_payload(ok.to_payload("x")) == []
    # In template parameters any listed term is blocked (strict mode).
    bad = Template(name="document_ready", language="en_US", body_params=("Sam", "HIV test"))
    findings = check_payload(bad.to_payload("x"))
    assert rules_of(findings) == ["diagnosis"] and "parameters" in findings[0].where
    # Payloads and links are not read by the patient: an id that looks odd is fine.
    tap = Template(name="appointment_reminder_v2", language="en_US",
                   body_params=("Sam", "Tue 3 March", "10:30", "Dr. Lee", "Main site"),
                   quick_reply_payloads=('/confirm_appointment{"appointment_id": "apt_E11.9"}',))
    assert check_payload(tap.to_payload("x")) == []


def test_check_fields_names_the_field():
    findings = check_fields({"ticket": "A042", "room": "Room 4", "note": {"text": "metformin"}})
    assert [(f.rule, f.where) for f in findings] == [("medication", "note.text")]


def test_a_clinician_adds_a_term(tmp_path):
    terms_file = tmp_path / "phi_terms.yml"
    data = yaml.safe_load((ROOT / "content" / "phi_terms.yml").read_text(encoding="utf-8"))
    assert check("You have shingles.", terms=load_terms(ROOT / "content" / "phi_terms.yml")) == []
    data["diagnoses"].append("shingles")
    terms_file.write_text(yaml.safe_dump(data), encoding="utf-8")
    terms = load_terms(terms_file)
    assert rules_of(check("You have shingles.", terms=terms)) == ["diagnosis"]
    assert check("We vaccinate against shingles from age 60.", terms=terms) == []
    terms_file.write_text("diagnoses: oops\n", encoding="utf-8")
    with pytest.raises(ValueError, match="diagnoses"):
        load_terms(terms_file)


def test_the_shipped_term_list_loads_and_is_lower_case():
    terms = phi_guard.default_terms()
    assert len(terms.diagnoses) > 50 and len(terms.analytes) > 40 and len(terms.medications) > 40
    assert all(t == t.lower() for t in terms.diagnoses + terms.analytes + terms.medications)


def _cyrillic(text):
    return any("\u0400" <= c <= "\u04ff" for c in text)


def _han(text):
    return any("\u4e00" <= c <= "\u9fff" for c in text)


def test_the_corpus_covers_russian_and_chinese():
    for kind in ("clinical", "ordinary"):
        assert sum(map(_cyrillic, CORPUS[kind])) >= 40, kind
        assert sum(map(_han, CORPUS[kind])) >= 40, kind


@pytest.mark.parametrize("message,rule", [
    ("Ваш уровень глюкозы 7,8 ммоль/л.", "lab_value"),
    ("Гемоглобин понижен.", "lab_value"),
    ("Тест на беременность положительный!", "test_result"),
    ("У вас сахарный диабет 2 типа.", "diagnosis"),
    ("Шифр диагноза Е11.9", "icd10_code"),  # a Cyrillic "Е"
    ("По 2 таблетки 3 раза в день после еды.", "medication_dose"),
    ("Ваш рецепт на аторвастатин готов.", "medication"),
    ("您的血红蛋白为98克/升。", "lab_value"),
    ("您的检测结果为阳性。", "test_result"),
    ("您患有2型糖尿病。", "diagnosis"),
    ("诊断：E11.9", "icd10_code"),
    ("每日三次，每次2片，饭后服用。", "medication_dose"),
    ("您的阿托伐他汀处方已开好。", "medication"),
])
def test_russian_and_chinese_rules(message, rule):
    assert rule in rules_of(check(message)), rules_of(check(message))


@pytest.mark.parametrize("message", [
    "У вас сахарный диабет.", "Вам диагностировали сахарный диабет.", "Ваш сахарный диабет под контролем.",
    "У вас выявлено подозрение на сахарный диабет.", "Вы наблюдаетесь с сахарным диабетом? Ваш анализ показал диабет.",
])
def test_russian_terms_match_in_every_inflection(message):
    assert "diagnosis" in rules_of(check(message))


def test_a_clinician_adds_a_russian_and_a_chinese_term(tmp_path):
    data = yaml.safe_load((ROOT / "content" / "phi_terms.yml").read_text(encoding="utf-8"))
    data["diagnoses"] += ["опоясывающий лишай", "带状疱疹"]
    terms_file = tmp_path / "phi_terms.yml"
    terms_file.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    terms = load_terms(terms_file)
    assert rules_of(check("У вас опоясывающий лишай.", terms=terms)) == ["diagnosis"]
    assert rules_of(check("У вас признаки опоясывающего лишая.", terms=terms)) == ["diagnosis"]
    assert rules_of(check("Лечение опоясывающего лишая назначено.", terms=terms)) == ["diagnosis"]
    assert rules_of(check("您患有带状疱疹。", terms=terms)) == ["diagnosis"]
    assert check("Прививка от опоясывающего лишая с 60 лет.", terms=terms) == []
    assert check("带状疱疹疫苗现已开放预约。", terms=terms) == []
