"""The intent contract (README, "Intent contract") holds in domain and training data."""

from collections import defaultdict
from pathlib import Path

import pytest
from rasa.shared.importers.importer import TrainingDataImporter

CONTRACT = [
    "greet", "goodbye", "thank", "affirm", "deny", "bot_challenge", "book_appointment",
    "reschedule_appointment", "cancel_appointment", "list_appointments", "faq",
    "billing_status", "results_status", "document_status", "queue_status", "request_human",
    "emergency", "clinical_question", "buy_medication", "opt_out", "opt_in", "delete_my_data",
    "access_my_data",
    "out_of_scope",
]
REQUIRED_FAQ = ["opening_hours", "location", "parking", "insurance", "documents", "preparation"]
# Topics the clinic's approved documents answer, with no curated text on purpose (domain/faq.yml).
FROM_DOCUMENTS = {"faq/examinations", "faq/clinic_rules"}
MIN_EXAMPLES = 15


@pytest.fixture(scope="module")
def importer():
    return TrainingDataImporter.load_from_config(
        "config.yml", "domain", ["data"]
    )


@pytest.fixture(scope="module")
def examples(importer):
    by_intent = defaultdict(set)
    for message in importer.get_nlu_data().intent_examples:
        key = message.get("intent_response_key") or message.get("intent")
        by_intent[key].add(message.get("text").strip().lower())
        if key.startswith("faq/"):
            by_intent["faq"].add(message.get("text").strip().lower())
    return by_intent


def test_every_contract_intent_is_in_the_domain(importer):
    assert set(CONTRACT) <= set(importer.get_domain().intents)


@pytest.mark.parametrize("intent", CONTRACT)
def test_every_contract_intent_has_enough_distinct_examples(examples, intent):
    assert len(examples[intent]) >= MIN_EXAMPLES


@pytest.mark.parametrize("topic", REQUIRED_FAQ)
def test_required_faq_topics_are_trained_and_answered(importer, examples, topic):
    assert len(examples[f"faq/{topic}"]) >= MIN_EXAMPLES
    assert f"utter_faq/{topic}" in importer.get_domain().responses


def test_every_faq_topic_trained_has_an_approved_answer_or_is_answered_from_documents(importer, examples):
    responses = importer.get_domain().responses
    for key in (k for k in examples if k.startswith("faq/")):
        if key in FROM_DOCUMENTS:
            # A curated text would answer first and the documents never would (actions/faq.py).
            assert f"utter_{key}" not in responses, key
            assert len(examples[key]) >= MIN_EXAMPLES
        else:
            assert f"utter_{key}" in responses, key


def test_no_example_is_labelled_with_two_intents(examples):
    owners = defaultdict(set)
    for intent, texts in examples.items():
        if intent == "faq":
            continue  # the union of the faq/* sub-intents
        for text in texts:
            owners[text].add(intent)
    clashes = {text: sorted(o) for text, o in owners.items() if len(o) > 1}
    assert clashes == {}


# ── every language ───────────────────────────────────────────────────────────────────────
LANGUAGE_DIRS = sorted(p for p in Path("data/nlu").iterdir() if p.is_dir())


def _examples_in(directory: Path):
    from rasa.shared.nlu.training_data.loading import load_data

    by_intent = defaultdict(set)
    for message in load_data(str(directory)).intent_examples:
        key = message.get("intent_response_key") or message.get("intent")
        by_intent[key].add(message.get("text").strip().lower())
    return by_intent


@pytest.fixture(scope="module")
def per_language():
    return {d.name: _examples_in(d) for d in LANGUAGE_DIRS}


def test_training_data_is_split_per_language():
    assert {"en", "ru", "zh"} <= {d.name for d in LANGUAGE_DIRS}


@pytest.mark.parametrize("language", [d.name for d in LANGUAGE_DIRS])
def test_every_patient_intent_has_enough_examples_in_every_language(per_language, language):
    """Intents patients type (English has >= 15 examples) need >= 15 in every language;
    intents only machines send (one token, data/nlu/en/reminders.yml) are left out."""
    typed = {intent for intent, texts in per_language["en"].items() if len(texts) >= MIN_EXAMPLES}
    short = {intent: len(per_language[language].get(intent, ())) for intent in typed
             if len(per_language[language].get(intent, ())) < MIN_EXAMPLES}
    assert short == {}, f"{language}: too few examples {short}"
