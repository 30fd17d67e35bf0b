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


@pytest.mark.asyncio
@pytest.mark.parametrize("language, word, hours", [("ru", "помощник", "пн–пт"), ("zh", "助手", "周一")])
async def test_the_first_welcome_is_in_the_language_the_door_sent(services, dispatcher, domain,
                                                                     language, word, hours):
    """Rasa renders an action's responses before its slot events apply: the welcome is chosen
    here from the domain, in the language the WhatsApp door sent with the first message."""
    tracker = make_tracker([], slots={"session_started_metadata": {"language": language}})

    events = await ActionSessionStart().run(dispatcher, tracker, domain)

    assert SlotSet("language", language) in events
    [welcome] = dispatcher.messages
    assert word in welcome["text"] and services.settings.emergency_number in welcome["text"]
    assert "{" not in welcome["text"]
    assert any(e == SlotSet("reception_hours", e["value"]) and hours in e["value"] for e in events
               if e.get("name") == "reception_hours")


@pytest.mark.asyncio
async def test_the_language_of_the_last_session_carries_over(services, dispatcher, domain):
    tracker = make_tracker([], slots={"language": "zh"})
    await ActionSessionStart().run(dispatcher, tracker, domain)
    assert "助手" in dispatcher.messages[0]["text"]
