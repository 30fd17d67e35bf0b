"""action_track_misunderstanding: rephrase first, offer a human after two in a row."""

import pytest
from rasa_sdk.events import SlotSet

from actions.fallback import ActionTrackMisunderstanding
from tests.conftest import SESSION_START, make_tracker, user_event


async def run(dispatcher, domain, events):
    return await ActionTrackMisunderstanding().run(dispatcher, make_tracker(events), domain)


@pytest.mark.asyncio
async def test_first_misunderstanding(dispatcher, domain):
    events = await run(dispatcher, domain, [SESSION_START, user_event("nlu_fallback")])
    assert events == [SlotSet("misunderstanding", "first")]
    assert dispatcher.messages == []


@pytest.mark.asyncio
async def test_second_in_a_row_offers_a_human(dispatcher, domain):
    history = [SESSION_START, user_event("nlu_fallback"), user_event("nlu_fallback")]
    assert await run(dispatcher, domain, history) == [SlotSet("misunderstanding", "repeated")]


@pytest.mark.asyncio
async def test_an_understood_message_resets_the_count(dispatcher, domain):
    history = [
        SESSION_START,
        user_event("nlu_fallback"),
        user_event("greet"),
        user_event("nlu_fallback"),
    ]
    assert await run(dispatcher, domain, history) == [SlotSet("misunderstanding", "first")]


@pytest.mark.asyncio
async def test_misunderstandings_in_an_earlier_session_do_not_count(dispatcher, domain):
    history = [user_event("nlu_fallback"), SESSION_START, user_event("nlu_fallback")]
    assert await run(dispatcher, domain, history) == [SlotSet("misunderstanding", "first")]
