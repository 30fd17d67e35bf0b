"""Every language the clinic serves: the catalogue, detection, per-contact memory, the NLU
components that use them, and the rule that every response exists in every language."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from rasa.shared.nlu.training_data.message import Message

from addons.language import LanguageDetector
from addons.multilingual_tokenizer import MultilingualTokenizer
from clinic.db import create_schema, make_engine, make_session_factory
from clinic.language.catalogue import LanguageDataError, default_catalogue, load_catalogue
from clinic.language.detection import detect
from clinic.language.keywords import Keywords, default_keywords
from clinic.language.memory import Decision, LanguageMemory, decide

CATALOGUE = default_catalogue()
LANGUAGES = CATALOGUE.codes
OTHERS = [code for code in LANGUAGES if code != CATALOGUE.default]
# The one response deliberately written once, naming every language in its own script.
ONE_TEXT_FOR_ALL = {"utter_unsupported_language"}
PLACEHOLDER = re.compile(r"(?<!{){(\w+)}(?!})")


def _responses():
    for path in sorted(Path("domain").glob("*.yml")):
        for name, variations in (yaml.safe_load(path.read_text(encoding="utf-8")).get("responses") or {}).items():
            yield path.name, name, variations


def _language_of(variation) -> str:
    for condition in variation.get("condition") or []:
        if condition.get("name") == "language" and condition.get("value") is not None:
            return condition["value"]
    return CATALOGUE.default


RESPONSES = [(f, n, v) for f, n, v in _responses() if n not in ONE_TEXT_FOR_ALL]


# ── every response in every language ─────────────────────────────────────────────────────
def test_the_project_speaks_english_russian_and_chinese():
    assert {"en", "ru", "zh"} <= set(LANGUAGES)
    assert CATALOGUE.default == "en"


@pytest.mark.parametrize("source, name, variations", RESPONSES, ids=[f"{f}:{n}" for f, n, _ in RESPONSES])
def test_every_response_has_every_language(source, name, variations):
    present = {_language_of(v) for v in variations}
    missing = set(LANGUAGES) - present
    assert not missing, f"{source}: {name} has no variation in {sorted(missing)}"
    # A WhatsApp-only variation (template, list…) wins over conditional text: so it too
    # must exist in every language, or a Russian patient would get the English one.
    channels = {(v.get("channel"), _language_of(v)) for v in variations if v.get("channel")}
    for channel in {c for c, _ in channels}:
        assert {lang for c, lang in channels if c == channel} == set(LANGUAGES), (name, channel)


@pytest.mark.parametrize("source, name, variations", RESPONSES, ids=[f"{f}:{n}" for f, n, _ in RESPONSES])
def test_translations_keep_the_buttons(source, name, variations):
    english = [v for v in variations if _language_of(v) == CATALOGUE.default]
    payloads = {tuple(b["payload"] for b in v.get("buttons") or []) for v in english}
    for variation in variations:
        if _language_of(variation) == CATALOGUE.default:
            continue
        buttons = variation.get("buttons") or []
        assert tuple(b["payload"] for b in buttons) in payloads, (name, _language_of(variation))
        assert all(len(b["title"]) <= 20 for b in buttons), (name, [b["title"] for b in buttons])


@pytest.mark.parametrize("code", OTHERS)
def test_whatsapp_templates_go_out_in_the_language_of_the_variation(code):
    expected = CATALOGUE.whatsapp_code(code)
    for _, name, variations in RESPONSES:
        for variation in variations:
            whatsapp = ((variation.get("custom") or {}).get("whatsapp") or {})
            if whatsapp.get("type") == "template" and _language_of(variation) == code:
                assert whatsapp["language"] == expected, name


# ── the catalogue ────────────────────────────────────────────────────────────────────────
@pytest.mark.parametrize("text, code", [
    ("Русский", "ru"), ("русский!", "ru"), ("по-русски", "ru"), ("中文", "zh"), ("说中文", "zh"),
    ("English", "en"), ("english please", "en"), ("Chinese", "zh"),
])
def test_naming_a_language_chooses_it(text, code):
    assert CATALOGUE.chosen_by(text) == code
    assert detect(text).chosen


def test_a_sentence_that_mentions_a_language_is_not_a_choice():
    assert CATALOGUE.chosen_by("my mother only speaks русский, can she come") is None


def test_a_malformed_catalogue_is_rejected(tmp_path):
    path = tmp_path / "languages.yml"
    path.write_text("languages: {xx: {name: X}}")
    with pytest.raises(LanguageDataError, match="needs"):
        load_catalogue(path)
    path.write_text("default: fr\nlanguages: {en: {name: E, detector: ENGLISH, script: latin, "
                    "locale: en, whatsapp: en_US}}")
    with pytest.raises(LanguageDataError, match="default"):
        load_catalogue(path)


def test_a_fourth_language_is_a_data_change(tmp_path):
    """Adding Spanish needs no code: an entry in content/languages.yml is detected."""
    data = yaml.safe_load(Path("content/languages.yml").read_text(encoding="utf-8"))
    data["languages"]["es"] = {"name": "Español", "detector": "SPANISH", "script": "latin",
                               "locale": "es_ES", "whatsapp": "es", "choose": ["español"]}
    data["recognised_unsupported"].remove("SPANISH")
    path = tmp_path / "languages.yml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    catalogue = load_catalogue(path)
    found = detect("Hola, necesito una cita con el médico para mañana", catalogue)
    assert (found.language, found.strong) == ("es", True)
    assert detect("what are your opening hours on saturday", catalogue).language == "en"
    assert catalogue.chosen_by("Español") == "es"


# ── detection ────────────────────────────────────────────────────────────────────────────
@pytest.mark.parametrize("text, code", [
    ("У меня сильная боль в груди и трудно дышать", "ru"),
    ("胸口很痛，喘不上气", "zh"),
    ("what time do you open on saturday", "en"),
    ("хочу записаться к терапевту на завтра утром", "ru"),
    ("我想预约明天上午看医生", "zh"),
    # Short, plain sentences: the detector's confidence is spread over thirty languages,
    # but its lead is clear.
    ("do you sell hearing aids?", "en"),
    ("can you book me for friday", "en"),
])
def test_a_clear_message_is_detected_strongly(text, code):
    found = detect(text)
    assert (found.language, found.strong) == (code, True)


@pytest.mark.parametrize("text", ["ok", "👍", "1", "Иван Петров", "12.03.1985", "王伟", "да", "hi",
                                  "zapisatsya k vrachu", "https://example.org/x"])
def test_short_or_ambiguous_messages_are_never_strong(text):
    assert not detect(text).strong


@pytest.mark.parametrize("text, language", [
    ("Hola, necesito una cita con el médico para mañana", "SPANISH"),
    ("Bonjour, je voudrais prendre rendez-vous demain matin", "FRENCH"),
    ("Привіт, я хочу записатися до лікаря на завтра", "UKRAINIAN"),
    ("こんにちは、予約したいです", "JAPANESE"),
    # Short requests the detector is less than 0.85 sure of, but clearly ahead: they used to
    # get the English welcome.
    ("Hallo, ich brauche einen Termin", "GERMAN"),
    ("Ciao, vorrei prenotare una visita", "ITALIAN"),
    ("Hallo, ik wil een afspraak maken", "DUTCH"),
    ("ich habe Fieber seit gestern", "GERMAN"),
])
def test_languages_we_do_not_speak_are_recognised(text, language):
    found = detect(text)
    assert found.unsupported == language and found.language is None


@pytest.mark.parametrize("text", ["dayte sotrudnika kliniki", "pridu zavtra, podtverzhdayu",
                                  "moi analizy prishli?", "zao shang hao", "pai dui hai yao duo jiu"])
def test_russian_in_latin_letters_and_pinyin_are_never_another_language(text):
    assert detect(text).unsupported is None


def test_no_training_example_is_taken_for_a_language_we_do_not_speak():
    # Every example of the NLU data: Russian in Cyrillic (which the detector may rank as
    # Bulgarian) and in Latin letters (Polish), pinyin (Swahili), English.
    import glob

    annotation = re.compile(r"\[([^\]]+)\](?:\([^)]+\)|\{[^}]+\})")
    flagged = []
    root = Path(__file__).resolve().parent.parent
    for path in sorted(glob.glob(str(root / "data" / "nlu" / "*" / "*.yml"))):
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        for item in data.get("nlu", []):
            for line in (item.get("examples") or "").splitlines():
                text = annotation.sub(r"\1", line.strip()[2:]) if line.strip().startswith("- ") else ""
                if text and detect(text).unsupported:
                    flagged.append((Path(path).parent.name, text, detect(text).unsupported))
    assert not flagged, flagged[:10]


def test_button_payloads_say_nothing_about_the_language():
    assert detect('/request_human{"team": "nurse"}').language is None


# ── memory ───────────────────────────────────────────────────────────────────────────────
@pytest.fixture
def memory(tmp_path) -> LanguageMemory:
    engine = make_engine(f"sqlite:///{tmp_path / 'clinic.db'}")
    create_schema(engine)
    return LanguageMemory(make_session_factory(engine))


def test_a_new_contact_takes_the_language_of_its_first_message_even_a_short_one(memory):
    assert memory.decide("c1", "Привет").language == "ru"
    assert memory.recall("c1") == "ru"


def test_short_messages_never_flip_a_known_language(memory):
    memory.decide("c1", "Здравствуйте, хочу записаться к врачу")
    for text in ["ok", "👍", "1", "John Smith", "12.03.1985", "yes"]:
        decision = memory.decide("c1", text)
        assert (decision.language, decision.changed) == ("ru", False), text
    assert memory.recall("c1") == "ru"


def test_a_clear_message_in_another_supported_language_changes_it(memory):
    memory.decide("c1", "Здравствуйте, хочу записаться к врачу")
    decision = memory.decide("c1", "我想预约明天上午看医生")
    assert (decision.language, decision.changed) == ("zh", True)
    assert memory.recall("c1") == "zh"


@pytest.mark.parametrize("greeting, code", [
    ("Здравствуйте", "ru"), ("Добрый день!", "ru"), ("привет 👋", "ru"), ("你好", "zh"), ("您好！", "zh"),
    ("晚上好", "zh"),
])
def test_a_greeting_in_another_language_changes_it(memory, greeting, code):
    # A patient who starts over in their own language expects the answer in it, though the
    # greeting is too short for the detector to be sure of anything else.
    memory.decide("c1", "what time do you open on saturday")
    decision = memory.decide("c1", greeting)
    assert (decision.language, decision.changed, decision.chosen) == (code, True, False)


@pytest.mark.parametrize("text", ["Иван Петров", "王伟", "да", "好的", "hi", "hello"])
def test_a_name_or_a_short_word_is_not_a_greeting_that_switches(memory, text):
    memory.decide("c1", "Здравствуйте, хочу записаться к врачу" if text.isascii() else
                  "what time do you open on saturday")
    before = memory.recall("c1")
    assert (memory.decide("c1", text).language, memory.recall("c1")) == (before, before)


def test_a_plain_english_question_after_chinese_switches_back(memory):
    memory.decide("c1", "可以带狗来吗？")
    assert memory.decide("c1", "do you sell hearing aids?").language == "en"


def test_an_explicit_choice_is_remembered_as_chosen(memory):
    decision = memory.decide("c2", "中文")
    assert decision == Decision("zh", True, None, True)
    assert memory.language_of("c2") == "zh"
    assert memory.language_of("never-seen") == CATALOGUE.default


def test_an_unsupported_message_keeps_the_language_and_says_so(memory):
    memory.decide("c3", "what time do you open tomorrow")
    decision = memory.decide("c3", "Hola, necesito una cita con el médico para mañana")
    assert (decision.language, decision.unsupported, decision.changed) == ("en", "SPANISH", False)


def test_decide_is_pure_given_what_was_known():
    weak_ru = detect("Иван Петров")
    assert decide("en", weak_ru, CATALOGUE).language == "en"
    assert decide(None, weak_ru, CATALOGUE).language == "ru"


# ── keywords ─────────────────────────────────────────────────────────────────────────────
@pytest.mark.parametrize("text, intent", [
    ("STOP", "opt_out"), ("стоп", "opt_out"), ("停止", "opt_out"), ("Start", "opt_in"),
    ("СТАРТ", "opt_in"), ("开始", "opt_in"), ("menu", "menu"), ("Меню", "menu"), ("菜单", "menu"),
    ("stop tips", "opt_out_tips"), ("стоп советы", "opt_out_tips"), ("停止小贴士", "opt_out_tips"),
])
def test_keywords_map_to_their_intent(text, intent):
    assert default_keywords().intent_for(text) == intent


def test_a_keyword_inside_a_sentence_is_left_to_the_classifier():
    assert default_keywords().intent_for("please stop sending me tips about flu") is None


# What a response tells a patient to send as a keyword: *word* (bold), 「word」, or a word
# in capitals (STOP, СТАРТ) after a verb of sending. Prose in «» or “” inside a form ("write
# «другой врач»") is the form's own answer, read by its validation, not a keyword.
_INSTRUCTION = re.compile(
    r"(?i:send|type|reply|напишите|отправьте|пришлите|ответьте|发送|回复|输入)\s*"
    r"(?:\*([^*\n]{1,30})\*|「([^」\n]{1,30})」|\b([A-ZА-Я]{3,})\b)")


def _instructed_keywords():
    found = set()
    for _, _, variations in _responses():
        for variation in variations:
            for match in _INSTRUCTION.finditer(str(variation.get("text") or "")):
                word = next(g for g in match.groups() if g)
                found.add(word.strip())
    return sorted(found)


def test_every_keyword_the_assistant_tells_patients_to_send_works():
    words = _instructed_keywords()
    assert len(words) >= 6, words  # the walk really finds the instructions
    keywords = default_keywords()
    unknown = [w for w in words if keywords.intent_for(w) is None]
    assert unknown == [], f"responses tell patients to send {unknown}: add them to content/keywords.yml"


def test_keywords_file_rejects_one_word_for_two_intents(tmp_path):
    path = tmp_path / "keywords.yml"
    path.write_text("keywords: {menu: [go], opt_out: [go]}")
    with pytest.raises(ValueError, match="listed for"):
        Keywords.from_file(path)


# ── the NLU components ───────────────────────────────────────────────────────────────────
def _message(text, metadata=None, intent="greet"):
    prediction = {"name": intent, "confidence": 0.9}
    data = {"text": text, "intent": prediction, "intent_ranking": [prediction], "entities": []}
    if metadata is not None:
        data["metadata"] = metadata
    return Message(data=data)


@pytest.fixture(scope="module")
def component() -> LanguageDetector:
    return LanguageDetector(CATALOGUE, default_keywords())


def _entities(message):
    return {e["entity"]: e["value"] for e in message.get("entities") or []}


def test_the_doors_decision_wins_over_the_text(component):
    message = _message("ok", metadata={"language": "ru"})
    component.process([message])
    assert _entities(message)["language"] == "ru"


def test_without_a_door_only_a_clear_message_sets_the_language(component):
    clear, short = _message("我想预约明天上午看医生"), _message("ok")
    component.process([clear, short])
    assert _entities(clear)["language"] == "zh"
    assert "language" not in _entities(short)


def test_choice_and_unsupported_language_force_their_intents(component):
    chosen, other = _message("Русский", metadata={"language": "en"}), _message(
        "Hola, necesito una cita con el médico para mañana", intent="book_appointment")
    component.process([chosen, other])
    assert chosen.get("intent")["name"] == "choose_language" and _entities(chosen)["language"] == "ru"
    assert other.get("intent")["name"] == "unsupported_language"
    assert other.get("intent_ranking")[1]["name"] == "book_appointment"


def test_keywords_force_their_intent_and_payloads_are_left_alone(component):
    keyword, payload = _message("СТОП", intent="stop"), _message("/menu", intent="menu")
    component.process([keyword, payload])
    assert keyword.get("intent")["name"] == "opt_out"
    assert payload.get("entities") == [] and payload.get("intent")["name"] == "menu"


def test_the_tokenizer_segments_chinese_and_lemmatises_russian():
    tokenizer = MultilingualTokenizer(MultilingualTokenizer.get_default_config())
    message = Message(data={"text": "我想预约明天 записаться к врачам tomorrow"})
    tokens = tokenizer.tokenize(message, "text")
    texts = [t.text for t in tokens]
    assert texts[:4] == ["我", "想", "预约", "明天"]
    lemmas = {t.text: t.lemma for t in tokens}
    assert lemmas["врачам"] == "врач" and lemmas["записаться"] == "записаться"
    text = message.get("text")
    assert all(text[t.start:t.end] == t.text for t in tokens)


def test_every_label_built_in_code_exists_in_every_language_and_fits_a_button():
    from actions.labels import LABELS

    for key, labels in LABELS.items():
        assert set(LANGUAGES) <= set(labels), key
        if not key.startswith(("document.", "billing", "no_first_name", "queue_", "whatsapp.")):
            assert all(len(text) <= 20 for text in labels.values()), (key, labels)


def test_the_whatsapp_list_labels_fit_what_meta_accepts_in_every_language():
    """The list's button, section title and prompt (gateway/render.py) in each language: a
    label Meta would refuse would cost the patient the whole menu."""
    from actions.labels import LABELS
    from whatsapp.limits import INTERACTIVE_BODY_MAX, LIST_BUTTON_MAX, LIST_SECTION_TITLE_MAX

    for key, limit in (("whatsapp.list_button", LIST_BUTTON_MAX), ("whatsapp.list_section", LIST_SECTION_TITLE_MAX),
                       ("whatsapp.choose_prompt", INTERACTIVE_BODY_MAX)):
        assert set(LANGUAGES) <= set(LABELS[key]), key
        assert all(0 < len(text) <= limit for text in LABELS[key].values()), (key, LABELS[key])


def test_sentence_embeddings_are_offline_and_alike_across_languages():
    """The featurizer's vectors: one 512-dimensional sentence feature per message, and the
    same question in three languages lands closer than a different question."""
    import numpy as np

    from addons.sentence_embeddings import MultilingualSentenceEmbeddings, embed

    vectors = embed(["во сколько вы открываетесь", "你们几点开门", "what time do you open",
                     "where can I park my car"])
    same = vectors[:3] @ vectors[2]
    assert same.min() > float(vectors[3] @ vectors[2])
    featurizer = MultilingualSentenceEmbeddings({"alias": "emb", "weight": 8.0}, "emb")
    message = Message(data={"text": "хочу записаться к врачу"})
    featurizer.process([message])
    _sequence, sentence = message.get_dense_features("text")
    assert sentence.features.shape == (1, 512)
    assert np.isclose(np.linalg.norm(sentence.features), 8.0, atol=1e-3)
