"""action_request_human / action_request_callback route by what the patient wrote (issue 12,
items 4 and 11): the ticket lands in the team its words point to, in every language, and a
long message is handed over, routed by its words, never by a team named in passing."""

from __future__ import annotations

import datetime as dt
from typing import List

import pytest
from sqlalchemy import select

from actions.handoff import ActionRequestCallback, ActionRequestHuman
from clinic.inbox.tables import TaskRow, TicketRow
from tests.conftest import SESSION_START, make_tracker, user_event

SENDER = "c0ffee" + "b2" * 29  # a pseudonymous conversation id, as the WhatsApp channel makes
TUESDAY_10 = dt.datetime(2026, 3, 3, 10, 0, tzinfo=dt.timezone(dt.timedelta(hours=1)))

PARKING_COMPLAINT = (
    "I am writing to complain about the parking at your clinic. " * 10
    + "The nurse at the desk told me to park on the street, and I got a fine. "
    + "Nobody could tell me where visitors should leave the car, the car park was full. " * 40
)
INVOICE_COMPLAINT = (
    "I was sent an invoice for a visit my insurance already paid. " * 5
    + "I have called several times and was told to wait for a call back that never came. " * 30
)


@pytest.fixture(autouse=True)
def staffed(services):
    services.clock = lambda: TUESDAY_10
    services.inbox._clock = lambda: TUESDAY_10.astimezone(dt.timezone.utc)


def tracker(*events, slots=None):
    return make_tracker([SESSION_START, *events], slots=slots, sender_id=SENDER)


def slots_of(events) -> dict:
    return {e["name"]: e["value"] for e in events if e.get("event") == "slot"}


def tickets(services) -> List[TicketRow]:
    with services.handoffs._sessions() as session:
        return list(session.scalars(select(TicketRow).order_by(TicketRow.id)))


@pytest.mark.asyncio
@pytest.mark.parametrize("language, text, team", [
    ("en", "I want to talk to a real person about my bill", "billing"),
    ("ru", "Хочу поговорить с живым человеком насчёт счёта", "billing"),
    ("zh", "我想找人工客服问一下账单", "billing"),
    ("en", "can I speak to someone about the side effects of my medication", "nurse"),
    ("ru", "соедините с сотрудником, у меня побочные эффекты от лекарства", "nurse"),
    ("zh", "我想找人咨询一下药物的副作用", "nurse"),
    ("en", "can I talk to a real person please", "reception"),
    ("ru", "позовите живого человека", "reception"),
    ("zh", "请帮我转人工", "reception"),
])
async def test_a_free_text_request_goes_to_the_team_its_words_name(services, dispatcher, domain,
                                                                   language, text, team):
    events = await ActionRequestHuman().run(
        dispatcher, tracker(user_event("request_human", text), slots={"language": language}), domain)
    assert slots_of(events)["handoff_team"] == team
    assert slots_of(events)["handoff_result"] == "recorded"
    assert dispatcher.messages == []  # data/rules/handoff.yml sends the reply
    [ticket] = tickets(services)
    assert (ticket.conversation_id, ticket.team, ticket.reason) == (SENDER, team, "patient_request")
    [request] = services.handoffs.open_requests()
    assert request.team == team


@pytest.mark.asyncio
async def test_earlier_words_count_when_the_request_itself_names_no_subject(services, dispatcher, domain):
    history = [user_event("nlu_fallback", "the invoice you sent me is wrong"),
               {"event": "action", "name": "utter_ask_rephrase"},
               user_event("request_human", "just get me a person")]
    events = await ActionRequestHuman().run(dispatcher, tracker(*history), domain)
    assert slots_of(events)["handoff_team"] == "billing"
    assert tickets(services)[0].team == "billing"


@pytest.mark.asyncio
async def test_the_latest_message_wins_over_older_ones(services, dispatcher, domain):
    history = [user_event("billing_status", "where is my invoice"),
               user_event("request_human", "actually I need someone about a rash from the new pills")]
    events = await ActionRequestHuman().run(dispatcher, tracker(*history), domain)
    assert slots_of(events)["handoff_team"] == "nurse"


@pytest.mark.asyncio
async def test_a_named_team_still_wins_over_the_words(services, dispatcher, domain):
    events = await ActionRequestHuman().run(dispatcher, tracker(user_event(
        "request_human", "reception please, about my bill", entities=[{"entity": "team", "value": "reception"}])),
        domain)
    assert slots_of(events)["handoff_team"] == "reception"


@pytest.mark.asyncio
async def test_a_button_payload_is_not_read_as_words(services, dispatcher, domain):
    # "/request_human" carries no subject; the typed message before it does.
    history = [user_event("nlu_fallback", "my medication gives me headaches"),
               {"event": "action", "name": "utter_offer_human"},
               user_event("request_human", "/request_human")]
    events = await ActionRequestHuman().run(dispatcher, tracker(*history), domain)
    assert slots_of(events)["handoff_team"] == "nurse"


@pytest.mark.asyncio
async def test_a_callback_is_routed_by_the_words_too(services, dispatcher, domain):
    events = await ActionRequestCallback().run(
        dispatcher, tracker(user_event("request_callback", "please call me back about my insurance claim")), domain)
    assert slots_of(events)["handoff_team"] == "billing"
    with services.handoffs._sessions() as session:
        [task] = session.scalars(select(TaskRow)).all()
    assert task.team == "billing"


@pytest.mark.asyncio
@pytest.mark.parametrize("text, entities, team", [
    # The nurse named in passing is not a request for the nurse: the parking words decide.
    (PARKING_COMPLAINT, [{"entity": "team", "value": "nurse"}], "reception"),
    (INVOICE_COMPLAINT, [], "billing"),
], ids=["parking", "invoice"])
async def test_a_long_message_is_handed_over_by_its_words(services, dispatcher, domain, text, entities, team):
    events = await ActionRequestHuman().run(
        dispatcher, tracker(user_event("long_message", text, entities=entities, confidence=1.0)), domain)
    assert slots_of(events)["handoff_team"] == team
    assert slots_of(events)["handoff_result"] == "recorded"
    [ticket] = tickets(services)
    # The assistant chose not to guess: staff see that the whole message needs reading.
    assert (ticket.team, ticket.reason, ticket.priority) == (team, "long_message", "normal")


@pytest.mark.asyncio
async def test_broken_word_lists_still_hand_over(services, dispatcher, domain, monkeypatch):
    import actions.handoff as handoff

    def broken():
        raise ValueError("content/routing.yml: malformed")

    monkeypatch.setattr(handoff, "default_routing_words", broken)
    events = await ActionRequestHuman().run(dispatcher, tracker(
        user_event("billing_status", "my bill"), user_event("request_human", "a person please")), domain)
    assert slots_of(events)["handoff_team"] == "billing"  # from the topic
    assert slots_of(events)["handoff_result"] == "recorded"
