"""The Rasa project as a whole: validation, test stories, and the trained model."""

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.model_support import rasa

CORPORA = {path.stem: yaml.safe_load(path.read_text(encoding="utf-8"))
           for path in sorted(Path("tests/data/red_flags").glob("*.yml"))}


def test_data_validates_without_warnings():
    """scripts/validate.py: Rasa's validator with no warning left unexplained."""
    result = subprocess.run([sys.executable, "scripts/validate.py"], capture_output=True, text=True,
                            timeout=900)
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]


def test_the_validate_script_still_catches_unused_responses():
    """The allowance covers only responses the code really sends."""
    sys.path.insert(0, "scripts")
    try:
        from validate import problems_in, responses_sent_by_code
    finally:
        sys.path.pop(0)
    sent = responses_sent_by_code()
    assert "utter_ask_booking_service" in sent
    line = "UserWarning: The utterance '{}' is not used in any story or rule."
    assert problems_in(line.format("utter_ask_booking_service"), sent) == []
    assert problems_in(line.format("utter_nobody_sends_this"), sent) != []


@pytest.mark.model
def test_every_test_story_passes(trained_model, tmp_path):
    result = rasa(
        "test", "core", "--model", str(trained_model), "--stories", "tests/stories",
        "--fail-on-prediction-errors", "--out", str(tmp_path),
    )
    failed = tmp_path / "failed_test_stories.yml"
    details = failed.read_text() if failed.exists() else ""
    assert result.returncode == 0, (result.stdout[-2000:] + result.stderr[-2000:] + details)


@pytest.fixture(scope="module")
def agent(trained_model):
    from rasa.core.agent import Agent

    return Agent.load(str(trained_model))


def parse(agent, text):
    return asyncio.run(agent.parse_message(text))


@pytest.mark.model
@pytest.mark.parametrize("language", sorted(CORPORA))
def test_red_flags_reach_emergency_through_the_whole_pipeline(agent, language):
    corpus = CORPORA[language]
    missed, classifier_wrong = [], 0
    for case in corpus["must_flag"]:
        result = parse(agent, case["text"])
        if result["intent"]["name"] != "emergency":
            missed.append(case["text"])
        if (result.get("red_flags") or {}).get("overridden_intent") != "emergency":
            classifier_wrong += 1
    assert missed == []
    # Report how often the safety net did work the classifier would not have done.
    print(f"\n{language}: safety net overrode the classifier on {classifier_wrong}/{len(corpus['must_flag'])}")


@pytest.mark.model
@pytest.mark.parametrize("language", sorted(CORPORA))
def test_no_false_alarm_on_ordinary_messages_through_the_pipeline(agent, language):
    """No ordinary message raises the emergency protocol (guidance + urgent ticket). A few get
    the one safety question when the classifier alone leans to `emergency`: counted."""
    alarms, checks = [], 0
    ordinary = CORPORA[language]["must_not_flag"]
    for item in ordinary:
        text = item["text"] if isinstance(item, dict) else item
        intent = parse(agent, text)["intent"]["name"]
        if intent == "emergency":
            alarms.append(text)
        checks += intent == "red_flag_check"
    assert alarms == []
    print(f"\n{language}: {checks}/{len(ordinary)} ordinary messages got the safety question")


@pytest.mark.model
@pytest.mark.parametrize("language", sorted(CORPORA))
def test_negated_mentions_get_the_safety_check_through_the_pipeline(agent, language):
    wrong = []
    for case in CORPORA[language]["must_check"]:
        result = parse(agent, case["text"])
        entities = {e["entity"]: e["value"] for e in result["entities"]}
        if result["intent"]["name"] != "red_flag_check" or entities.get("red_flag") is None:
            wrong.append((case["text"], result["intent"]["name"]))
    assert wrong == []


@pytest.mark.model
@pytest.mark.parametrize("text, language", [
    ("У меня сильная боль в груди и трудно дышать", "ru"),
    ("胸口很痛，喘不上气", "zh"),
    ("I would like to book an appointment for next week please", "en"),
])
def test_red_flags_in_every_language_set_the_conversation_language(agent, text, language):
    result = parse(agent, text)
    entities = {e["entity"]: e["value"] for e in result["entities"]}
    assert entities.get("language") == language
    if language != "en":
        assert result["intent"]["name"] == "emergency"


@pytest.mark.model
@pytest.mark.parametrize("text, language", [("Русский", "ru"), ("中文", "zh"), ("English", "en")])
def test_naming_a_language_chooses_it(agent, text, language):
    result = parse(agent, text)
    assert result["intent"]["name"] == "choose_language"
    assert {e["entity"]: e["value"] for e in result["entities"]}["language"] == language


@pytest.mark.model
def test_an_unsupported_language_is_recognised_and_red_flags_still_win(agent):
    assert parse(agent, "Hola, necesito una cita con el médico para mañana")["intent"]["name"] == \
        "unsupported_language"
    # Spanish words, an English red flag: the safety net runs after the language check.
    assert parse(agent, "Hola, mi padre collapsed y no respira, chest pain")["intent"]["name"] == "emergency"


@pytest.mark.model
def test_detector_entities_fill_the_emergency_slots(agent):
    result = parse(agent, "I don't want to live anymore, I'm thinking of killing myself")
    entities = {e["entity"]: e["value"] for e in result["entities"]}
    assert result["intent"]["name"] == "emergency"
    assert entities["red_flag_response"] == "crisis"


@pytest.mark.model
@pytest.mark.parametrize(
    "text, team",
    [("can I talk to someone in billing", "billing"), ("i need the front desk", "reception")],
)
def test_team_entity_is_extracted_and_normalised(agent, text, team):
    result = parse(agent, text)
    assert {e["entity"]: e["value"] for e in result["entities"]}.get("team") == team


@pytest.mark.model
def test_gibberish_falls_back(agent):
    assert parse(agent, "qwxz blorp vvv")["intent"]["name"] == "nlu_fallback"


def faq_topic(agent, text) -> str:
    """The FAQ topic the ResponseSelector picks for ``text`` (after checking the intent is faq)."""
    result = parse(agent, text)
    assert result["intent"]["name"] == "faq", result["intent"]
    return result["response_selector"]["faq"]["response"]["intent_response_key"]


@pytest.mark.model
@pytest.mark.parametrize("text", [
    "How long does an MRI take?", "how long is a colonoscopy?", "Do I have to remove my jewellery for the MRI?",
    "Сколько длится МРТ?", "Сколько времени занимает ЭКГ?", "Нужно ли снимать украшения перед МРТ?",
    "核磁共振检查需要多长时间？", "心电图要做多久？", "做核磁共振要摘首饰吗？",
])
def test_questions_about_an_examination_reach_the_documents(agent, text):
    """faq/examinations has no curated text (domain/faq.yml), so these reach the approved
    documents; before, they got the clinical refusal, the queue position or a wrong FAQ text."""
    assert faq_topic(agent, text) == "faq/examinations"


@pytest.mark.model
@pytest.mark.parametrize("text", [
    "what happens if I miss my appointments", "where do I ask for a repeat prescription",
    "Можно сдать кровь без предварительной записи?", "За сколько часов до приёма его можно отменить?",
    "Где заказать повторный рецепт?",
    "抽血要不要先预约？", "取消预约最迟什么时候说？", "处方用完了怎么续开？",
])
def test_questions_about_a_clinic_rule_reach_the_documents(agent, text):
    """faq/clinic_rules has no curated text: the patient guide answers "do I need an appointment
    for a blood test?", "how much notice to cancel?", "how do I get a repeat prescription?".
    Before the topic, the NLU took them for a request: booking began, the cancel form asked
    which appointment, the document status was looked up. (Still taken for a request, 2026-12-08:
    "Does a blood test need an appointment or can I come any morning?" → book_appointment, "how
    late can I cancel my appointment" → cancel_appointment.)"""
    assert faq_topic(agent, text) == "faq/clinic_rules"


@pytest.mark.model
@pytest.mark.parametrize("text, intent", [
    ("I want to book a blood test", "book_appointment"), ("please cancel my appointment", "cancel_appointment"),
    ("is my sick note ready?", "document_status"),
    ("Хочу записаться на анализ крови", "book_appointment"), ("Отмените мой приём", "cancel_appointment"),
    ("Мой больничный готов?", "document_status"),
    ("我想预约抽血", "book_appointment"), ("取消我的预约", "cancel_appointment"), ("我的病假条开好了吗？", "document_status"),
])
def test_requests_near_a_clinic_rule_keep_their_intent(agent, text, intent):
    assert parse(agent, text)["intent"]["name"] == intent


@pytest.mark.model
@pytest.mark.parametrize("text", [
    "How long does a sprained wrist take to heal?", "how long does a cold last",
    "Сколько заживает растяжение?", "感冒一般多久能好？",
])
def test_how_long_an_illness_lasts_stays_a_clinical_question(agent, text):
    assert parse(agent, text)["intent"]["name"] == "clinical_question"
