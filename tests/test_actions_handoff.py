"""Handoff actions against a real SQLite database: routing, the inbox ticket opened in the
same transaction, the patient-facing facts (team, wait, staffed hours), the new ways in
(frustration, an insisted clinical question, accepted fallback offer), call-backs, the 1-5
rating, and failures."""

import datetime as dt

import pytest
from rasa_sdk.events import SlotSet
from sqlalchemy import select, text

from actions.handoff import (
    ActionRecordHandoffRating,
    ActionRequestCallback,
    ActionRequestHuman,
    handoff_reason,
)
from actions.safety import ActionRaiseUrgentHandoff
from clinic.handoff.hours import describe_hours, describe_opening, describe_wait, next_opening
from clinic.handoff.requests import Reason
from clinic.inbox.tables import HandoffRatingRow, TaskRow, TicketRow
from clinic.privacy import contact_key
from tests.conftest import SESSION_START, TEST_PSEUDONYM_KEY, make_tracker, user_event

SENDER = "c0ffee" + "a1" * 29  # a pseudonymous conversation id, as the WhatsApp channel makes
TEAM_NURSE = [{"entity": "team", "value": "nurse"}]
BERLIN = dt.timezone(dt.timedelta(hours=1))
# Clinic hours (content/clinic.yml): reception mon-fri 08-18, sat 09-12; nurses mon-fri 08-18.
TUESDAY_10 = dt.datetime(2026, 3, 3, 10, 0, tzinfo=BERLIN)
TUESDAY_21 = dt.datetime(2026, 3, 3, 21, 0, tzinfo=BERLIN)
SATURDAY_10 = dt.datetime(2026, 3, 7, 10, 0, tzinfo=BERLIN)


def at(services, moment: dt.datetime) -> None:
    services.clock = lambda: moment
    services.inbox._clock = lambda: moment.astimezone(dt.timezone.utc)


def tracker(*events, slots=None, sender=SENDER):
    return make_tracker([SESSION_START, *events], slots=slots, sender_id=sender)


def slots_of(events) -> dict:
    return {e["name"]: e["value"] for e in events if e.get("event") == "slot"}


def tickets(services) -> list:
    with services.handoffs._sessions() as session:
        return list(session.scalars(select(TicketRow).order_by(TicketRow.id)))


def break_database(services) -> None:
    """A real failure: the table the action writes to is gone."""
    with services.handoffs._sessions() as session, session.begin():
        session.execute(text("DROP TABLE handoff_requests"))


@pytest.mark.asyncio
async def test_request_opens_a_ticket_and_says_team_and_wait(services, dispatcher, domain):
    at(services, TUESDAY_10)
    events = await ActionRequestHuman().run(dispatcher, tracker(user_event("request_human", entities=TEAM_NURSE)),
                                            domain)
    slots = slots_of(events)
    assert slots["handoff_team"] == "nurse" and slots["handoff_result"] == "recorded"
    assert slots["handoff_wait"] == "about 5 minutes"
    assert dispatcher.messages == []  # data/rules/handoff.yml sends the reply
    [request] = services.handoffs.open_requests()
    assert (request.team, request.reason, request.priority) == ("nurse", "patient_request", "normal")
    assert request.contact_key == contact_key(SENDER, "rest", TEST_PSEUDONYM_KEY.encode())
    [ticket] = tickets(services)
    assert (ticket.conversation_id, ticket.team, ticket.state) == (SENDER, "nurse", "waiting")


@pytest.mark.asyncio
async def test_expected_wait_grows_with_the_queue(services, dispatcher, domain):
    at(services, TUESDAY_10)
    for n in range(3):  # three patients ahead in the reception queue
        other = f"patient{n}"
        await ActionRequestHuman().run(dispatcher, tracker(user_event("request_human"), sender=other), domain)
    events = await ActionRequestHuman().run(dispatcher, tracker(user_event("request_human")), domain)
    assert slots_of(events)["handoff_wait"] == "about 20 minutes"  # (3 ahead + me) × 5 min
    assert services.inbox.waiting_ahead("reception", SENDER) == 3


@pytest.mark.asyncio
async def test_out_of_hours_says_when_someone_replies(services, dispatcher, domain):
    at(services, TUESDAY_21)
    events = await ActionRequestHuman().run(dispatcher, tracker(user_event("request_human", entities=TEAM_NURSE)),
                                            domain)
    slots = slots_of(events)
    assert slots["handoff_result"] == "after_hours"
    assert slots["handoff_reply_from"] == "tomorrow at 08:00"
    assert slots["handoff_hours"] == "Mon–Fri 08:00–18:00"
    assert tickets(services)[0].state == "waiting"  # still queued for the morning


@pytest.mark.asyncio
async def test_staffed_hours_are_per_team(services, dispatcher, domain):
    at(services, SATURDAY_10)  # reception works Saturday mornings, the nurse line doesn't
    reception = await ActionRequestHuman().run(dispatcher, tracker(user_event("request_human")), domain)
    nurse = await ActionRequestHuman().run(
        dispatcher, tracker(user_event("request_human", entities=TEAM_NURSE), sender="other"), domain)
    assert slots_of(reception)["handoff_result"] == "recorded"
    assert slots_of(nurse)["handoff_result"] == "after_hours"
    assert slots_of(nurse)["handoff_reply_from"] == "Monday at 08:00"


def test_opening_and_wait_wording():
    from clinic.settings import load_settings

    hours = load_settings().nurse_line_hours
    assert next_opening(hours, TUESDAY_10) == dt.datetime(2026, 3, 4, 8, 0, tzinfo=BERLIN)
    early = dt.datetime(2026, 3, 3, 6, 30, tzinfo=BERLIN)
    assert describe_opening(next_opening(hours, early), early) == "today at 08:00"
    assert describe_wait(1) == "about 5 minutes" and describe_wait(23) == "about 25 minutes"
    assert describe_wait(130) == "about 3 hours"


@pytest.mark.parametrize("language, today, tomorrow, monday, unknown", [
    ("en", "today at 08:00", "tomorrow at 08:00", "Monday at 08:00", "the next opening day"),
    # Russian: "ответит … завтра в 08:00 / в понедельник в 08:00" (no preposition needed).
    ("ru", "сегодня в 08:00", "завтра в 08:00", "в понедельник в 08:00",
     "в ближайший рабочий день"),
    ("zh", "今天 08:00", "明天 08:00", "星期一 08:00", "下一个工作日"),
    ("fr", "today at 08:00", "tomorrow at 08:00", "Monday at 08:00", "the next opening day"),
])
def test_opening_wording_per_language(language, today, tomorrow, monday, unknown):
    opening = dt.datetime(2026, 3, 3, 8, 0, tzinfo=BERLIN)
    assert describe_opening(opening, TUESDAY_10 - dt.timedelta(hours=3), language=language) == today
    assert describe_opening(opening + dt.timedelta(days=1), TUESDAY_21, language=language) == tomorrow
    assert describe_opening(opening + dt.timedelta(days=6), TUESDAY_21, language=language) == monday
    assert describe_opening(None, TUESDAY_21, language=language) == unknown
    assert describe_opening(None, TUESDAY_21) == "the next opening day"
    # "во вторник": Russian's preposition changes before a "в"-cluster.
    assert describe_opening(opening + dt.timedelta(days=7), TUESDAY_21, language="ru") == \
        "во вторник в 08:00"


@pytest.mark.parametrize("minutes, en, ru, zh", [
    (1, "about 5 minutes", "примерно 5 минут", "约5分钟"),
    (23, "about 25 minutes", "примерно 25 минут", "约25分钟"),
    (60, "about 60 minutes", "примерно 60 минут", "约60分钟"),
    (61, "about 2 hours", "примерно 2 часа", "约2小时"),
    (290, "about 5 hours", "примерно 5 часов", "约5小时"),
    (1230, "about 21 hours", "примерно 21 час", "约21小时"),
])
def test_wait_wording_per_language(minutes, en, ru, zh):
    assert describe_wait(minutes) == en
    assert describe_wait(minutes, language="ru") == ru
    assert describe_wait(minutes, language="zh") == zh


def test_staffed_hours_wording_per_language():
    from clinic.settings import OpeningHours

    hours = OpeningHours.parse("mon-fri 08:00-18:00; sat 09:00-12:00")
    assert describe_hours(hours) == hours.describe() == "Mon–Fri 08:00–18:00, Sat 09:00–12:00"
    assert describe_hours(hours, language="ru") == "пн–пт 08:00–18:00, сб 09:00–12:00"
    assert describe_hours(hours, language="zh") == "周一至周五 08:00–18:00，周六 09:00–12:00"
    split = OpeningHours.parse("mon-thu 08:00-12:00; mon-thu 13:00-17:00; fri 08:00-12:00; sun 10:00-11:00")
    assert describe_hours(split, language="ru") == \
        "пн–чт 08:00–12:00 и 13:00–17:00, пт 08:00–12:00, вс 10:00–11:00"
    assert describe_hours(split, language="zh") == \
        "周一至周四 08:00–12:00、13:00–17:00，周五 08:00–12:00，周日 10:00–11:00"


@pytest.mark.asyncio
@pytest.mark.parametrize("language, wait, reply_from, hours", [
    ("ru", "примерно 5 минут", "завтра в 08:00", "пн–пт 08:00–18:00"),
    ("zh", "约5分钟", "明天 08:00", "周一至周五 08:00–18:00"),
])
async def test_handoff_facts_in_the_patients_language(services, dispatcher, domain, language,
                                                      wait, reply_from, hours):
    language_slot = {"language": language}
    at(services, TUESDAY_10)
    events = await ActionRequestHuman().run(
        dispatcher, tracker(user_event("request_human", entities=TEAM_NURSE), slots=language_slot),
        domain)
    assert slots_of(events)["handoff_wait"] == wait
    assert slots_of(events)["handoff_hours"] == hours
    at(services, TUESDAY_21)
    events = await ActionRequestHuman().run(
        dispatcher, tracker(user_event("request_human", entities=TEAM_NURSE), slots=language_slot,
                            sender="other"), domain)
    assert (slots_of(events)["handoff_result"], slots_of(events)["handoff_reply_from"]) == (
        "after_hours", reply_from)
    events = await ActionRequestCallback().run(dispatcher, tracker(
        user_event("request_callback"), slots={**language_slot, "handoff_team": "nurse"}), domain)
    assert slots_of(events)["handoff_hours"] == hours
    assert dispatcher.messages == []


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
    events = await ActionRequestHuman().run(dispatcher, tracker(*history, user_event("request_human")), domain)
    assert slots_of(events)["handoff_team"] == team


@pytest.mark.asyncio
async def test_team_remembered_from_an_earlier_request_is_not_reused(services, dispatcher, domain):
    events = await ActionRequestHuman().run(
        dispatcher, tracker(user_event("request_human"), slots={"handoff_team": "billing"}), domain)
    assert slots_of(events)["handoff_team"] == "reception"


@pytest.mark.asyncio
async def test_new_ways_in_are_recorded_with_their_reason(services, dispatcher, domain):
    at(services, TUESDAY_10)
    frustrated = tracker(user_event("frustration", "this is useless"))
    insisted = tracker(user_event("clinical_question"), {"event": "action", "name": "utter_clinical_refusal"},
                       user_event("clinical_question"), sender="insists")
    fallback = tracker(user_event("nlu_fallback"), {"event": "action", "name": "utter_offer_human"},
                       user_event("affirm"), sender="fallback")
    assert handoff_reason(frustrated) is Reason.FRUSTRATION
    assert handoff_reason(insisted) is Reason.CLINICAL_QUESTION
    assert handoff_reason(fallback) is Reason.BOT_FALLBACK
    assert handoff_reason(tracker(user_event("request_human"))) is Reason.PATIENT_REQUEST
    for t in (frustrated, insisted, fallback):
        await ActionRequestHuman().run(dispatcher, t, domain)
    reasons = {(row.conversation_id, row.reason, row.team) for row in tickets(services)}
    assert reasons == {(SENDER, "frustration", "reception"), ("insists", "clinical_question", "nurse"),
                       ("fallback", "bot_fallback", "reception")}


@pytest.mark.asyncio
async def test_a_phone_number_as_conversation_id_is_never_stored(services, dispatcher, domain):
    phone = "+15550001111"
    events = await ActionRequestHuman().run(dispatcher, tracker(user_event("request_human"), sender=phone), domain)
    assert slots_of(events)["handoff_result"] == "failed"  # the patient gets the phone route
    assert tickets(services) == []
    [request] = services.handoffs.open_requests()  # the request itself is kept, pseudonymously
    assert "5550001111" not in request.contact_key


@pytest.mark.asyncio
async def test_database_failure_still_answers(services, dispatcher, domain):
    break_database(services)
    events = await ActionRequestHuman().run(dispatcher, tracker(user_event("request_human", entities=TEAM_NURSE)),
                                            domain)
    assert slots_of(events)["handoff_result"] == "failed"


@pytest.mark.asyncio
async def test_callback_request_creates_a_task_for_the_team(services, dispatcher, domain):
    at(services, TUESDAY_21)
    await ActionRequestHuman().run(dispatcher, tracker(user_event("request_human", entities=TEAM_NURSE)), domain)
    events = await ActionRequestCallback().run(
        dispatcher, tracker(user_event("request_callback"), slots={"handoff_team": "nurse"}), domain)
    assert slots_of(events) == {"handoff_team": "nurse", "handoff_hours": "Mon–Fri 08:00–18:00",
                                "callback_result": "recorded"}
    with services.handoffs._sessions() as session:
        [task] = session.scalars(select(TaskRow)).all()
    assert (task.conversation_id, task.team, task.created_by, task.state) == (SENDER, "nurse", "bot", "open")
    assert task.ticket_id == tickets(services)[0].id  # linked to the waiting ticket


@pytest.mark.asyncio
async def test_callback_failure_gives_the_phone_route(services, dispatcher, domain):
    events = await ActionRequestCallback().run(dispatcher, tracker(user_event("request_callback"),
                                                                   sender="+15550001111"), domain)
    assert slots_of(events)["callback_result"] == "failed"


def resolve_ticket(services, conversation_id: str, when: dt.datetime) -> int:
    with services.handoffs._sessions() as session, session.begin():
        row = session.scalars(select(TicketRow).where(TicketRow.conversation_id == conversation_id)).one()
        row.state, row.resolved_at, row.resolution_reason = "resolved", when, "answered"
        return row.id


@pytest.mark.asyncio
@pytest.mark.parametrize("entities, text, expected, stored", [
    ([{"entity": "rating", "value": "5"}], "/rate_handoff", "good", 5),
    ([], "I'd give it a 4", "good", 4),
    ([], "3", "good", 3),
    ([], "two stars, it was slow", "low", 2),
    ([{"entity": "rating", "value": "1"}], "", "low", 1),
    ([], "great thanks", "unrated", None),
])
async def test_rating_after_a_resolved_conversation(services, dispatcher, domain, entities, text, expected, stored):
    at(services, TUESDAY_10)
    await ActionRequestHuman().run(dispatcher, tracker(user_event("request_human")), domain)
    ticket_id = resolve_ticket(services, SENDER, TUESDAY_10.astimezone(dt.timezone.utc))
    events = await ActionRecordHandoffRating().run(
        dispatcher, tracker(user_event("rate_handoff", text, entities=entities)), domain)
    assert events == [SlotSet("handoff_rating", expected)]
    assert services.inbox.rating_for(ticket_id) == stored


@pytest.mark.asyncio
async def test_rating_with_nothing_to_rate_is_not_stored(services, dispatcher, domain):
    events = await ActionRecordHandoffRating().run(dispatcher, tracker(user_event("rate_handoff", "5/5")), domain)
    assert events == [SlotSet("handoff_rating", "unrated")]
    with services.handoffs._sessions() as session:
        assert session.scalars(select(HandoffRatingRow)).all() == []


@pytest.mark.asyncio
async def test_emergency_raises_an_urgent_nurse_ticket(services, dispatcher, domain):
    t = tracker(user_event("emergency"), slots={"red_flag": "chest_pain", "red_flag_response": "emergency"})
    events = await ActionRaiseUrgentHandoff().run(dispatcher, t, domain)
    assert events == [
        SlotSet("urgent_handoff", "recorded"),
        SlotSet("red_flag", None),
        SlotSet("red_flag_response", None),
    ]
    [request] = services.handoffs.open_requests()
    assert (request.team, request.priority, request.reason) == ("nurse", "urgent", "emergency")
    assert request.red_flag_category == "chest_pain"
    [ticket] = tickets(services)
    assert (ticket.priority, ticket.team, ticket.red_flag_category) == ("urgent", "nurse", "chest_pain")


@pytest.mark.asyncio
async def test_emergency_escalates_an_existing_billing_ticket(services, dispatcher, domain):
    await ActionRequestHuman().run(dispatcher, tracker(user_event("billing_status"), user_event("request_human")),
                                   domain)
    await ActionRaiseUrgentHandoff().run(dispatcher, tracker(user_event("emergency"), slots={"red_flag": "stroke"}),
                                         domain)
    [ticket] = tickets(services)  # reused, not duplicated
    assert (ticket.team, ticket.priority, ticket.red_flag_category) == ("nurse", "urgent", "stroke")


@pytest.mark.asyncio
async def test_emergency_from_the_classifier_alone_is_still_urgent(services, dispatcher, domain):
    await ActionRaiseUrgentHandoff().run(dispatcher, tracker(user_event("emergency")), domain)
    [request] = services.handoffs.open_requests()
    assert request.priority == "urgent" and request.red_flag_category is None


@pytest.mark.asyncio
async def test_emergency_with_database_down_does_not_claim_a_flag(services, dispatcher, domain):
    break_database(services)
    events = await ActionRaiseUrgentHandoff().run(dispatcher, tracker(user_event("emergency"),
                                                                      slots={"red_flag": "seizure"}), domain)
    assert events[0] == SlotSet("urgent_handoff", "failed")
