"""action_session_start: clinic settings into slots, welcome at every new session."""

import pytest
from rasa_sdk.events import ActionExecuted, SessionStarted, SlotSet

from actions.session import ActionSessionStart
from tests.conftest import make_tracker


@pytest.mark.asyncio
async def test_session_start_sets_clinic_slots_and_welcomes(services, dispatcher, domain):
    tracker = make_tracker([], slots={"handoff_team": "nurse", "faq_answer": None})

    events = await ActionSessionStart().run(dispatcher, tracker, domain)

    values = services.settings.as_slots()
    assert events == [
        SessionStarted(),
        SlotSet("handoff_team", "nurse"),  # carried over from the previous session
        *[SlotSet(name, value) for name, value in values.items()],
        ActionExecuted("action_listen"),
    ]
    assert len(dispatcher.messages) == 1
    welcome = dispatcher.messages[0]
    assert welcome["response"] == "utter_welcome"
    # The welcome is rendered before the slot events apply, so it carries the values itself.
    assert welcome["emergency_number"] == services.settings.emergency_number
    assert welcome["clinic_name"] == services.settings.clinic_name


@pytest.mark.asyncio
async def test_no_carry_over_when_the_domain_says_so(services, dispatcher, domain):
    tracker = make_tracker([], slots={"handoff_team": "nurse"})
    no_carry = {**domain, "session_config": {"carry_over_slots_to_new_session": False}}

    events = await ActionSessionStart().run(dispatcher, tracker, no_carry)

    assert SlotSet("handoff_team", "nurse") not in events
    assert events[0] == SessionStarted() and events[-1] == ActionExecuted("action_listen")


def test_every_slot_set_at_session_start_exists_in_the_domain(services, domain):
    assert set(services.settings.as_slots()) <= set(domain["slots"])
