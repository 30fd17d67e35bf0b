"""action_request_human and action_raise_urgent_handoff: routing, records, failures."""

import pytest
from rasa_sdk.events import SlotSet
from sqlalchemy import text

from actions.handoff import ActionRequestHuman
from actions.safety import ActionRaiseUrgentHandoff
from clinic.privacy import contact_key
from tests.conftest import SESSION_START, TEST_PSEUDONYM_KEY, make_tracker, user_event

SENDER = "+15550001111"
TEAM_NURSE = [{"entity": "team", "value": "nurse"}]


def break_database(services) -> None:
    """A real failure: the table the action writes to is gone."""
    with services.handoffs._sessions() as session, session.begin():
        session.execute(text("DROP TABLE handoff_requests"))


@pytest.mark.asyncio
async def test_named_team_is_routed_and_recorded_pseudonymously(services, dispatcher, domain):
    tracker = make_tracker([SESSION_START, user_event("request_human", entities=TEAM_NURSE)])

    events = await ActionRequestHuman().run(dispatcher, tracker, domain)

    assert events == [SlotSet("handoff_team", "nurse"), SlotSet("handoff_result", "recorded")]
    assert dispatcher.messages == []  # data/rules/handoff.yml sends the confirmation
    [request] = services.handoffs.open_requests()
    assert (request.team, request.reason, request.priority) == ("nurse", "patient_request", "normal")
    expected_key = contact_key(SENDER, "rest", TEST_PSEUDONYM_KEY.encode())
    assert request.contact_key == expected_key
    assert SENDER not in request.contact_key and "5550001111" not in request.contact_key


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "history, team",
    [
        ([user_event("clinical_question")], "nurse"),
        ([user_event("billing_status")], "billing"),
        ([user_event("faq", response_key="faq/insurance")], "billing"),
        ([user_event("faq", response_key="faq/parking")], "reception"),
        ([], "reception"),
        # The most recent topic wins; neutral messages in between don't count.
        ([user_event("billing_status"), user_event("clinical_question"), user_event("affirm")], "nurse"),
    ],
)
async def test_team_inferred_from_the_conversation(services, dispatcher, domain, history, team):
    tracker = make_tracker([SESSION_START, *history, user_event("request_human")])
    events = await ActionRequestHuman().run(dispatcher, tracker, domain)
    assert events[0] == SlotSet("handoff_team", team)


@pytest.mark.asyncio
async def test_team_remembered_from_an_earlier_request_is_not_reused(services, dispatcher, domain):
    tracker = make_tracker(
        [SESSION_START, user_event("request_human")], slots={"handoff_team": "billing"}
    )
    events = await ActionRequestHuman().run(dispatcher, tracker, domain)
    assert events[0] == SlotSet("handoff_team", "reception")


@pytest.mark.asyncio
async def test_database_failure_still_answers(services, dispatcher, domain):
    break_database(services)
    tracker = make_tracker([SESSION_START, user_event("request_human", entities=TEAM_NURSE)])

    events = await ActionRequestHuman().run(dispatcher, tracker, domain)

    assert events == [SlotSet("handoff_team", "nurse"), SlotSet("handoff_result", "failed")]


@pytest.mark.asyncio
async def test_emergency_raises_an_urgent_nurse_handoff(services, dispatcher, domain):
    tracker = make_tracker(
        [SESSION_START, user_event("emergency")],
        slots={"red_flag": "chest_pain", "red_flag_response": "emergency"},
    )

    events = await ActionRaiseUrgentHandoff().run(dispatcher, tracker, domain)

    assert events == [
        SlotSet("urgent_handoff", "recorded"),
        SlotSet("red_flag", None),
        SlotSet("red_flag_response", None),
    ]
    [request] = services.handoffs.open_requests()
    assert (request.team, request.priority, request.reason) == ("nurse", "urgent", "emergency")
    assert request.red_flag_category == "chest_pain"


@pytest.mark.asyncio
async def test_emergency_from_the_classifier_alone_is_still_urgent(services, dispatcher, domain):
    tracker = make_tracker([SESSION_START, user_event("emergency")])
    await ActionRaiseUrgentHandoff().run(dispatcher, tracker, domain)
    [request] = services.handoffs.open_requests()
    assert request.priority == "urgent" and request.red_flag_category is None


@pytest.mark.asyncio
async def test_emergency_with_database_down_does_not_claim_a_flag(services, dispatcher, domain):
    break_database(services)
    tracker = make_tracker([SESSION_START, user_event("emergency")], slots={"red_flag": "seizure"})
    events = await ActionRaiseUrgentHandoff().run(dispatcher, tracker, domain)
    assert events[0] == SlotSet("urgent_handoff", "failed")
