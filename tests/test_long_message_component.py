"""The long-message NLU component (issue 12, item 11): a long message becomes `long_message`
instead of a guess, per script, and never takes precedence over the red-flag safety net."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import pytest
import yaml
from rasa.shared.nlu.training_data.message import Message

from addons.long_message import LongMessageClassifier, weighted_length
from addons.red_flag_detector import RedFlagDetector
from clinic.safety.red_flags import default_detector

# The case: a long complaint about parking the classifier read as a reschedule.
PARKING_COMPLAINT = (
    "I am writing to complain about the parking at your clinic. Last Tuesday I came for my "
    "appointment and there was not a single free space, so I drove around for twenty minutes. "
) * 30
assert len(PARKING_COMPLAINT) > 5000
RUSSIAN_COMPLAINT = "Хочу пожаловаться на парковку у вашей клиники: мест нет, охранник грубит. " * 12
CHINESE_COMPLAINT = "你们诊所的停车场太小了，每次来都找不到车位，保安态度也不好。" * 8  # 240 characters


@pytest.fixture(scope="module")
def component() -> LongMessageClassifier:
    return LongMessageClassifier.create(LongMessageClassifier.get_default_config(), None, None, None)


@pytest.fixture(scope="module")
def red_flags() -> RedFlagDetector:
    return RedFlagDetector(RedFlagDetector.get_default_config(), default_detector())


def classified(text: str, intent: str, confidence: float = 1.0, runner_up: str = "book_appointment",
               entities: Optional[List[dict]] = None) -> Message:
    """A message as it leaves the classifier, the FallbackClassifier and the language detector."""
    prediction = {"name": intent, "confidence": confidence}
    return Message(data={
        "text": text,
        "intent": prediction,
        "intent_ranking": [prediction, {"name": runner_up, "confidence": 0.01}],
        "entities": entities if entities is not None else [],
    })


LANGUAGE = {"entity": "language", "value": "en", "start": 0, "end": 5, "extractor": "LanguageDetector"}
NOISE = [{"entity": "team", "value": "nurse", "start": 10, "end": 15, "extractor": "RegexEntityExtractor"},
         {"entity": "service", "value": "physio", "start": 20, "end": 26, "extractor": "RegexEntityExtractor"}]


def test_a_long_complaint_is_not_classified_on_its_noise(component):
    message = classified(PARKING_COMPLAINT, "reschedule_appointment", 1.0, entities=[LANGUAGE, *NOISE])
    component.process([message])
    assert message.get("intent") == {"name": "long_message", "confidence": 1.0}
    # The classifier's guess stays visible below it (evaluation, logs).
    assert [r["name"] for r in message.get("intent_ranking")][:2] == ["long_message", "reschedule_appointment"]
    # Entities found in the noise would fill slots; the conversation's language stays.
    assert message.get("entities") == [LANGUAGE]
    output = message.as_dict(only_output_properties=True)
    assert output["intent"]["name"] == "long_message"


@pytest.mark.parametrize("text", [RUSSIAN_COMPLAINT, CHINESE_COMPLAINT])
def test_long_messages_in_every_language(component, text):
    message = classified(text, "faq", 0.8)
    component.process([message])
    assert message.get("intent")["name"] == "long_message"


@pytest.mark.parametrize("text, long", [
    ("a" * 600, False),
    ("a" * 601, True),
    ("  " + "a" * 600 + "\n\n", False),  # surrounding whitespace is not length
    ("停" * 200, False),  # Chinese is denser: 200 characters ≈ 600 Latin ones
    ("停" * 201, True),
    ("停" * 150 + "a" * 151, True),  # mixed: 450 + 151
    ("ж" * 600, False),
])
def test_the_threshold_is_per_script(component, text, long):
    assert component.is_long(text) is long
    message = classified(text, "book_appointment", 0.9)
    component.process([message])
    assert (message.get("intent")["name"] == "long_message") is long


def test_the_threshold_is_configurable():
    strict = LongMessageClassifier({"max_characters": 100, "han_character_weight": 2.0})
    assert strict.is_long("a" * 101) and not strict.is_long("停" * 50)
    assert weighted_length(" 停a ", 3.0) == 4.0


def test_short_messages_and_button_payloads_are_left_alone(component):
    short = classified("can I change my appointment to friday", "reschedule_appointment", 0.93, entities=NOISE)
    payload = classified("/request_human" + "x" * 700, "request_human", 1.0)
    component.process([short, payload])
    assert short.get("intent") == {"name": "reschedule_appointment", "confidence": 0.93}
    assert short.get("entities") == NOISE
    assert payload.get("intent")["name"] == "request_human"


@pytest.mark.parametrize("intent", ["red_flag_check", "choose_language", "unsupported_language"])
def test_deterministic_decisions_are_kept(component, intent):
    message = classified(PARKING_COMPLAINT, intent, 1.0, entities=NOISE)
    component.process([message])
    assert message.get("intent") == {"name": intent, "confidence": 1.0}
    assert message.get("entities") == NOISE


def test_a_misunderstood_long_message_goes_to_a_person_not_a_rephrase(component):
    message = classified(PARKING_COMPLAINT, "nlu_fallback", 0.4)
    component.process([message])
    assert message.get("intent")["name"] == "long_message"


# ── with the red-flag detector after it, as in config.yml ─────────────────────────────────
def pipeline(component, red_flags, message: Message) -> Message:
    component.process([message])
    red_flags.process([message])
    return message


@pytest.mark.parametrize("text", [
    PARKING_COMPLAINT + " And now while writing this I have crushing chest pain.",
    "Хочу пожаловаться на парковку. " * 25 + "У меня сильная боль в груди и трудно дышать.",
    CHINESE_COMPLAINT + "我现在胸口很痛，喘不上气。",
])
def test_a_red_flag_in_a_long_message_still_raises_the_emergency(component, red_flags, text):
    message = pipeline(component, red_flags, classified(text, "reschedule_appointment", 1.0))
    assert message.get("intent") == {"name": "emergency", "confidence": 1.0}
    assert {e["entity"] for e in message.get("entities")} >= {"red_flag", "red_flag_response"}


def test_a_negated_red_flag_in_a_long_message_gets_the_safety_question(component, red_flags):
    text = PARKING_COMPLAINT + " No chest pain, I am fine, I just want the parking fixed."
    message = pipeline(component, red_flags, classified(text, "reschedule_appointment", 1.0))
    assert message.get("intent")["name"] == "red_flag_check"
    entities = {e["entity"]: e["value"] for e in message.get("entities")}
    # "No, not now" must not resume the noisy guess (a reschedule form): back to the menu.
    assert entities["safety_check_intent"] == "menu"


def test_a_confident_classifier_emergency_is_left_for_the_safety_question(component, red_flags):
    message = classified(PARKING_COMPLAINT, "emergency", 0.95, runner_up="reschedule_appointment")
    component.process([message])
    assert message.get("intent") == {"name": "emergency", "confidence": 0.95}
    assert [r["name"] for r in message.get("intent_ranking")] == \
        ["emergency", "long_message", "reschedule_appointment"]
    red_flags.process([message])
    assert message.get("intent")["name"] == "red_flag_check"
    entities = {e["entity"]: e["value"] for e in message.get("entities")}
    assert entities["safety_check_intent"] == "menu"  # not the noisy reschedule


def test_an_unsure_classifier_emergency_goes_to_a_person(component, red_flags):
    # The detector alone would call it not understood ("say it another way" to 5,000 characters).
    message = pipeline(component, red_flags, classified(PARKING_COMPLAINT, "emergency", 0.6))
    assert message.get("intent")["name"] == "long_message"


def test_the_component_sits_after_the_classifiers_and_before_the_safety_net():
    names = [c["name"] for c in yaml.safe_load(Path("config.yml").read_text())["pipeline"]]
    position = names.index("addons.long_message.LongMessageClassifier")
    assert names.index("addons.neighbour_classifier.NeighbourBlendedLogisticRegression") < position
    assert names.index("FallbackClassifier") < position
    assert names.index("addons.language.LanguageDetector") < position
    assert names[-1] == "addons.red_flag_detector.RedFlagDetector" and position == len(names) - 2


def test_training_data_passes_through(component):
    data = object()
    assert component.process_training_data(data) is data
