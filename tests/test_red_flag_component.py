"""The Rasa NLU component overrides whatever the classifier predicted."""

import pytest
from rasa.shared.nlu.training_data.message import Message

from addons.red_flag_detector import RedFlagDetector
from clinic.safety.red_flags import default_detector


@pytest.fixture(scope="module")
def component() -> RedFlagDetector:
    return RedFlagDetector(RedFlagDetector.get_default_config(), default_detector())


def classified(text: str, intent: str, confidence: float = 0.97) -> Message:
    """A message as it leaves DIET and the FallbackClassifier."""
    prediction = {"name": intent, "confidence": confidence}
    return Message(
        data={
            "text": text,
            "intent": prediction,
            "intent_ranking": [prediction, {"name": "emergency", "confidence": 0.01}],
            "entities": [],
        }
    )


@pytest.mark.parametrize(
    "text, wrong_intent, category, response",
    [
        ("can I book for tomorrow, I've had chest pain all morning", "book_appointment", "chest_pain", "emergency"),
        ("my son is not breathing properly", "clinical_question", "breathing", "emergency"),
        ("I just want to end my life", "nlu_fallback", "suicidal", "crisis"),
        # Several categories: the crisis wording wins.
        ("took an overdose, I want to die", "clinical_question", "suicidal", "crisis"),
        ("how much is parking, my wife collapsed in the car park", "faq", "unconscious", "emergency"),
    ],
)
def test_red_flag_forces_emergency_whatever_the_classifier_said(
    component, text, wrong_intent, category, response
):
    message = classified(text, wrong_intent)
    component.process([message])

    assert message.get("intent") == {"name": "emergency", "confidence": 1.0}
    ranking = message.get("intent_ranking")
    assert ranking[0] == {"name": "emergency", "confidence": 1.0}
    assert [r["name"] for r in ranking].count("emergency") == 1
    entities = {e["entity"]: e["value"] for e in message.get("entities")}
    assert all(0 <= e["start"] < e["end"] <= len(text) for e in message.get("entities"))
    assert entities["red_flag"] == category
    assert entities["red_flag_response"] == response
    assert message.get("red_flags")["overridden_intent"] == wrong_intent
    # The override reaches Rasa's parse result, not just the message object.
    output = message.as_dict(only_output_properties=True)
    assert output["intent"]["name"] == "emergency"
    assert category in output["red_flags"]["categories"]


def test_ordinary_messages_are_left_alone(component):
    message = classified("what time do you open on saturday", "faq", 0.91)
    component.process([message])
    assert message.get("intent") == {"name": "faq", "confidence": 0.91}
    assert message.get("red_flags") is None
    assert message.get("entities") == []


def test_button_payloads_are_not_scanned(component):
    message = classified('/request_human{"team": "nurse"}', "request_human", 1.0)
    component.process([message])
    assert message.get("intent")["name"] == "request_human"


def test_messages_without_text_are_skipped(component):
    message = Message(data={})
    component.process([message])
    assert message.get("intent") is None


@pytest.mark.parametrize(
    "text, classified_as, category, resumed",
    [
        ("no chest pain, I just need a check-up booked", "book_appointment", "chest_pain", "book_appointment"),
        ("what should I do if I get chest pain after the new tablets?", "faq", "chest_pain", "menu"),
        ("I had a stroke in 2019, can I book my annual review?", "book_appointment", "stroke", "book_appointment"),
    ],
)
def test_a_negated_or_hypothetical_red_flag_asks_once_instead_of_raising_the_alarm(
    component, text, classified_as, category, resumed
):
    message = classified(text, classified_as)
    component.process([message])
    assert message.get("intent") == {"name": "red_flag_check", "confidence": 1.0}
    entities = {e["entity"]: e["value"] for e in message.get("entities")}
    assert entities["red_flag"] == category
    assert entities["red_flag_label"]
    # "No" goes on with what the patient asked (by payload), or the menu when that needs words.
    assert entities["safety_check_intent"] == resumed
    assert message.get("red_flags")["context"] in ("negated", "hypothetical", "historical")


def test_an_affirmed_red_flag_next_to_a_negated_one_is_an_emergency(component):
    message = classified("no chest pain but now I can't breathe", "clinical_question")
    component.process([message])
    assert message.get("intent")["name"] == "emergency"
    assert {e["entity"]: e["value"] for e in message.get("entities")}["red_flag"] == "breathing"


def test_the_classifier_alone_never_raises_the_full_protocol(component):
    """No phrase matched, the classifier leans to emergency: one safety question instead
    (its text gives the emergency number), in the conversation's language."""
    message = classified("my grandad went grey and is sort of slumped over", "emergency", 0.95)
    message.set("entities", [{"entity": "language", "value": "ru", "start": 0, "end": 5}])
    component.process([message])
    assert message.get("intent")["name"] == "red_flag_check"
    entities = {e["entity"]: e["value"] for e in message.get("entities")}
    assert entities["red_flag_response"] == "emergency"
    assert entities["red_flag_label"] == "возможная экстренная ситуация"
    assert "red_flag" not in entities


def test_an_unsure_classifier_emergency_is_a_misunderstanding(component):
    message = classified("I passed on the message to my husband", "emergency", 0.83)
    component.process([message])
    assert message.get("intent")["name"] == "nlu_fallback"
