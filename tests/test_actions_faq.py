"""action_check_faq_answer: approved texts only, honest "unknown" otherwise."""

import pytest
from rasa_sdk.events import SlotSet

from actions.faq import MIN_ANSWER_CONFIDENCE, ActionCheckFaqAnswer
from tests.conftest import SESSION_START, make_tracker, user_event


async def run(dispatcher, domain, **event):
    tracker = make_tracker([SESSION_START, user_event("faq", **event)])
    return await ActionCheckFaqAnswer().run(dispatcher, tracker, domain)


@pytest.mark.asyncio
async def test_confident_match_with_an_approved_text(dispatcher, domain):
    events = await run(dispatcher, domain, response_key="faq/parking", confidence=0.93)
    assert events == [SlotSet("faq_answer", "approved")]
    assert dispatcher.messages == []  # the rule sends utter_faq, not the action


@pytest.mark.asyncio
async def test_low_confidence_is_unknown(dispatcher, domain):
    low = MIN_ANSWER_CONFIDENCE - 0.01
    events = await run(dispatcher, domain, response_key="faq/parking", confidence=low)
    assert events == [SlotSet("faq_answer", "unknown")]


@pytest.mark.asyncio
async def test_topic_without_an_approved_text_is_unknown(dispatcher, domain):
    events = await run(dispatcher, domain, response_key="faq/cafeteria", confidence=0.99)
    assert events == [SlotSet("faq_answer", "unknown")]


@pytest.mark.asyncio
async def test_missing_selector_output_is_unknown(dispatcher, domain):
    events = await run(dispatcher, domain)
    assert events == [SlotSet("faq_answer", "unknown")]


def test_every_approved_text_names_its_source(domain):
    answers = {k: v for k, v in domain["responses"].items() if k.startswith("utter_faq/")}
    required = {"opening_hours", "location", "parking", "insurance", "documents", "preparation"}
    assert required <= {k.split("/", 1)[1] for k in answers}
    for name, variations in answers.items():
        for variation in variations:
            assert variation["metadata"]["source"], name
            assert variation["metadata"]["approved_on"], name
