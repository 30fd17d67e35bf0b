"""action_status_lookup and action_send_notification: a Tracker in, the exact events out,
against a real SQLite clinic database (records, portal tokens, reminder jobs)."""

from __future__ import annotations

import datetime as dt

import pytest
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions.notifications import (
    ActionSendNotification,
    NotificationServices,
    use_notification_services,
)
from actions.services import build_services, use_services
from actions.status import SLOTS, ActionStatusLookup
from clinic.notifications.service import NotificationService
from clinic.portal.tokens import PortalTokens
from clinic.privacy import contact_key
from clinic.records.store import RecordStore
from tests.conftest import SESSION_START, TEST_PSEUDONYM_KEY, make_tracker
from tests.reminder_support import Clock

CONVERSATION = "9a1c0ffee0000000000000000000000000000000000000000000000000000002"
KEY = b"t" * 32
CLEARED = [SlotSet(name, None) for name in SLOTS]


@pytest.fixture
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("CLINIC_PSEUDONYM_KEY", TEST_PSEUDONYM_KEY)
    monkeypatch.setenv("CLINIC_TIMEZONE", "Europe/Berlin")
    clock = Clock()
    services = build_services(f"sqlite:///{tmp_path / 'clinic.db'}", clock=clock)
    sessions = services.reminders._sessions
    extra = NotificationServices(NotificationService(sessions, clock=clock), RecordStore(sessions, clock),
                                 PortalTokens(sessions, KEY))
    use_services(services)
    use_notification_services(extra)
    yield services, extra, clock
    use_services(None)
    use_notification_services(None)


def register(services, conversation=CONVERSATION, name="Sam Example"):
    key = contact_key(conversation, "whatsapp", TEST_PSEUDONYM_KEY.encode())
    return services.scheduling.register_patient(key, name, dt.date(1990, 5, 1), conversation, "whatsapp")


def asks(intent: str) -> dict:
    return {"event": "user", "text": "are my results ready?", "input_channel": "whatsapp",
            "parse_data": {"intent": {"name": intent, "confidence": 0.9}, "entities": []}}


async def lookup(intent: str, sender=CONVERSATION, slots=None):
    dispatcher = CollectingDispatcher()
    events = await ActionStatusLookup().run(
        dispatcher, make_tracker([SESSION_START, asks(intent)], slots=slots, sender_id=sender), {})
    assert dispatcher.messages == []  # the rules pick the reply
    return events


@pytest.mark.asyncio
async def test_someone_who_never_booked_is_told_how_to_get_access(env):
    assert await lookup("results_status") == CLEARED + [SlotSet("status_answer", "not_registered")]


@pytest.mark.asyncio
async def test_results_ready_gives_a_fresh_single_use_link_bound_to_the_patient(env):
    services, extra, _ = env
    patient = register(services)
    extra.records.put(patient.id, "result", "ready", document_id="lab-1")
    events = await lookup("results_status")
    assert events[:len(CLEARED)] == CLEARED and events[-1] == SlotSet("status_answer", "results_ready")
    [link] = [e["value"] for e in events if e["name"] == "status_link" and e["value"]]
    assert link.startswith(services.settings.portal_url + "/t/")
    token = link.rsplit("/", 1)[1]
    assert "lab-1" not in link and patient.id not in link
    grant = extra.portal.redeem(token, patient_id=patient.id)
    assert (grant.document_id, grant.purpose) == ("lab-1", "results")
    # Asking again gives a new link (the first one is used up).
    again = [e["value"] for e in await lookup("results_status") if e["name"] == "status_link" and e["value"]]
    assert again and again[0] != link


@pytest.mark.asyncio
async def test_pending_none_and_other_questions(env):
    services, extra, clock = env
    patient = register(services)
    assert (await lookup("results_status"))[-1] == SlotSet("status_answer", "results_none")
    expected = dt.datetime(2030, 1, 11, 11, 0, tzinfo=dt.timezone.utc)
    extra.records.put(patient.id, "result", "pending", expected_at=expected)
    assert await lookup("results_status") == CLEARED + [SlotSet("status_expected", "Friday 11 January"),
                                                        SlotSet("status_answer", "results_pending")]
    extra.records.put(patient.id, "document", "ready_to_collect", subtype="prescription")
    assert await lookup("document_status") == CLEARED + [SlotSet("status_document", "prescription"),
                                                         SlotSet("status_answer", "document_collect")]
    extra.records.put(patient.id, "billing", "submitted", subtype="insurance_claim", reference="CLM-1")
    assert await lookup("billing_status") == CLEARED + [
        SlotSet("status_document", "insurance claim CLM-1"), SlotSet("status_reference", "CLM-1"),
        SlotSet("status_answer", "billing_claim_pending")]
    assert (await lookup("queue_status"))[-1] == SlotSet("status_answer", "queue_none")
    extra.records.put(patient.id, "queue", "waiting", reference="A042", position=3,
                      expected_at=clock.now + dt.timedelta(minutes=20))
    assert await lookup("queue_status") == CLEARED + [
        SlotSet("status_expected", "09:20"), SlotSet("status_reference", "A042"),
        SlotSet("status_position", "3 people"), SlotSet("status_answer", "queue_waiting")]


@pytest.mark.asyncio
async def test_a_broken_database_still_gets_an_answer(env, monkeypatch):
    services, extra, _ = env
    register(services)
    monkeypatch.setattr(extra.records, "records", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("db down")))
    assert await lookup("document_status") == [SlotSet("status_answer", "failed")]


@pytest.mark.asyncio
@pytest.mark.parametrize("language, expected_by, prescription, claim, position", [
    # "ожидаем их к {status_expected}": the date, weekday in brackets.
    ("ru", "11 января (пт)", "рецепт", "страховое требование CLM-1", "3 человека"),
    ("zh", "1月11日星期五", "处方", "保险理赔 CLM-1", "3人"),
])
async def test_status_facts_in_the_patients_language(env, language, expected_by, prescription, claim,
                                                     position):
    services, extra, clock = env
    patient = register(services)
    slots = {"language": language}
    expected = dt.datetime(2030, 1, 11, 11, 0, tzinfo=dt.timezone.utc)
    extra.records.put(patient.id, "result", "pending", expected_at=expected)
    assert SlotSet("status_expected", expected_by) in await lookup("results_status", slots=slots)
    extra.records.put(patient.id, "document", "ready_to_collect", subtype="prescription")
    assert SlotSet("status_document", prescription) in await lookup("document_status", slots=slots)
    extra.records.put(patient.id, "billing", "submitted", subtype="insurance_claim", reference="CLM-1")
    assert SlotSet("status_document", claim) in await lookup("billing_status", slots=slots)
    extra.records.put(patient.id, "queue", "waiting", reference="A042", position=3,
                      expected_at=clock.now + dt.timedelta(minutes=20))
    events = await lookup("queue_status", slots=slots)
    assert SlotSet("status_position", position) in events
    assert SlotSet("status_expected", "09:20") in events

# ── action_send_notification ────────────────────────────────────────────────────────────
def external(job_id: str) -> dict:
    return {"event": "user", "text": "EXTERNAL: EXTERNAL_notification", "input_channel": "whatsapp",
            "parse_data": {"intent": {"name": "EXTERNAL_notification", "confidence": 1.0},
                           "entities": [{"entity": "reminder_job", "value": job_id}]}}


async def send(job_id, sender=CONVERSATION, slots=None):
    dispatcher = CollectingDispatcher()
    events = await ActionSendNotification().run(
        dispatcher, make_tracker([SESSION_START, external(job_id)], slots=slots, sender_id=sender), {})
    return events, dispatcher


def notify(env, type_, params, event_id):
    services, extra, clock = env
    notification, _ = extra.notifications.submit(event_id, type_, register(services).id, params, "api:test")
    [job] = [j for j in services.reminders.claim_due("w", clock.now, limit=50) if j.id == notification.job_id]
    return job


@pytest.mark.asyncio
async def test_results_ready_notification_sends_once_with_a_fresh_token(env):
    services, extra, _ = env
    job = notify(env, "results_ready", {"document_id": "lab-9"}, "evt-1")
    events, dispatcher = await send(job.id)
    assert dispatcher.messages == []
    names = [e["name"] for e in events]
    assert names == ["notify_first_name", "notify_token", "notify_link", "notification_to_send"]
    assert events[0] == SlotSet("notify_first_name", "Sam")
    assert events[-1] == SlotSet("notification_to_send", "results_ready")
    token = events[1]["value"]
    assert events[2]["value"] == f"{services.settings.portal_url}/t/{token}"
    assert extra.portal.check(token).document_id == "lab-9"
    assert services.reminders.job(job.id).status == "sent"
    assert extra.notifications.status("evt-1").status == "sent"
    # A second push of the same job sends nothing.
    events, _ = await send(job.id)
    assert events == [SlotSet("notification_to_send", "nothing")]


@pytest.mark.asyncio
@pytest.mark.parametrize("type_,params,expected", [
    ("document_ready", {"document_kind": "prescription", "delivery": "collect"},
     [SlotSet("notify_document", "prescription"), SlotSet("notification_to_send", "document_collect")]),
    ("billing_update", {"item": "invoice", "status": "paid", "reference": "INV-1"},
     [SlotSet("notify_billing", "invoice INV-1"), SlotSet("notify_billing_status", "has been paid, thank you"),
      SlotSet("notification_to_send", "billing_update")]),
    ("queue_called", {"ticket": "A042", "room": "Room 4"},
     [SlotSet("notify_ticket", "A042"), SlotSet("notify_room", "Room 4"),
      SlotSet("notification_to_send", "queue_called")]),
    ("queue_position", {"ticket": "A042", "position": 2, "estimated_minutes": 10},
     [SlotSet("notify_ticket", "A042"), SlotSet("notify_position", "2"), SlotSet("notify_minutes", "10"),
      SlotSet("notification_to_send", "queue_position")]),
    ("followup", {"visit_date": "2030-01-07"},
     [SlotSet("visit_first_name", "Sam"), SlotSet("visit_date", "Monday 7 January"),
      SlotSet("notification_to_send", "followup")]),
])
async def test_each_notification_type_sets_its_template_values(env, type_, params, expected):
    job = notify(env, type_, params, f"evt-{type_}")
    events, _ = await send(job.id)
    assert events == [SlotSet("notify_first_name", "Sam")] + expected


@pytest.mark.asyncio
async def test_opt_out_stops_followups_but_not_service_notices(env):
    services, _, clock = env
    patient = register(services)
    services.consent.record(patient.contact_key, "reminders", False, "reminders_opt_out_v1")
    followup = notify(env, "followup", {"visit_date": "2030-01-07"}, "evt-f")
    assert (await send(followup.id))[0] == [SlotSet("notification_to_send", "nothing")]
    assert services.reminders.job(followup.id).status == "skipped"
    assert services.reminders.job(followup.id).reason == "opted_out"
    notice = notify(env, "document_ready", {"document_kind": "sick_note", "delivery": "portal",
                                            "document_id": "doc-1"}, "evt-d")
    events, _ = await send(notice.id)
    assert events[-1] == SlotSet("notification_to_send", "document_ready")


@pytest.mark.asyncio
async def test_wrong_conversation_expired_and_typed_event_send_nothing(env):
    services, _, clock = env
    job = notify(env, "queue_called", {"ticket": "A1", "room": "Room 1"}, "evt-q")
    events, _ = await send(job.id, sender="someone-else")
    assert events == [SlotSet("notification_to_send", "nothing")]
    assert services.reminders.job(job.id).reason == "wrong_conversation"
    late = notify(env, "queue_called", {"ticket": "A2", "room": "Room 1"}, "evt-q2")
    clock.advance(minutes=21)  # a queue call is worth 20 minutes
    assert (await send(late.id))[0] == [SlotSet("notification_to_send", "nothing")]
    assert services.reminders.job(late.id).reason == "expired"
    dispatcher = CollectingDispatcher()
    typed = {"event": "user", "text": "zqxextevtntf", "input_channel": "whatsapp",
             "parse_data": {"intent": {"name": "EXTERNAL_notification", "confidence": 0.9}, "entities": []}}
    events = await ActionSendNotification().run(dispatcher, make_tracker([SESSION_START, typed]), {})
    assert events == [SlotSet("notification_to_send", "nothing")]
    assert dispatcher.messages[0]["response"] == "utter_ask_rephrase"


def test_demo_seeding_gives_registered_patients_records_once(env):
    from clinic.records.demo_data import seed

    services, extra, _ = env
    patient = register(services)
    sessions = services.reminders._sessions
    assert seed(sessions) == 1 and seed(sessions) == 0
    assert {r.kind for r in extra.records.records(patient.id)} == {"result", "document", "billing", "queue"}


@pytest.mark.asyncio
@pytest.mark.parametrize("language, type_, params, expected", [
    ("ru", "document_ready", {"document_kind": "sick_note", "delivery": "collect"},
     [SlotSet("notify_document", "больничный лист"), SlotSet("notification_to_send", "document_collect")]),
    ("zh", "document_ready", {"document_kind": "referral_letter", "delivery": "collect"},
     [SlotSet("notify_document", "转诊信"), SlotSet("notification_to_send", "document_collect")]),
    ("ru", "billing_update", {"item": "invoice", "status": "overdue", "reference": "INV-1"},
     [SlotSet("notify_billing", "счёт INV-1"), SlotSet("notify_billing_status", "срок оплаты истёк"),
      SlotSet("notification_to_send", "billing_update")]),
    ("zh", "billing_update", {"item": "refund", "status": "refunded"},
     [SlotSet("notify_billing", "退款"), SlotSet("notify_billing_status", "已退款"),
      SlotSet("notification_to_send", "billing_update")]),
    # "Спасибо, что посетили {clinic_name} {visit_date}".
    ("ru", "followup", {"visit_date": "2030-01-07"},
     [SlotSet("visit_first_name", "Sam"), SlotSet("visit_date", "в понедельник, 7 января"),
      SlotSet("notification_to_send", "followup")]),
    ("zh", "followup", {"visit_date": "2030-01-07"},
     [SlotSet("visit_first_name", "Sam"), SlotSet("visit_date", "1月7日星期一"),
      SlotSet("notification_to_send", "followup")]),
])
async def test_notification_values_in_the_patients_language(env, language, type_, params, expected):
    job = notify(env, type_, params, f"evt-{language}-{type_}")
    events, _ = await send(job.id, slots={"language": language})
    assert events == [SlotSet("notify_first_name", "Sam")] + expected


def test_every_document_and_billing_code_has_its_three_languages():
    from actions.labels import LABELS
    from clinic.notifications.model import BILLING_ITEMS, BILLING_STATUSES, DOCUMENT_KINDS

    for prefix, table in (("document", DOCUMENT_KINDS), ("billing", BILLING_ITEMS),
                          ("billing_status", BILLING_STATUSES)):
        for code, english in table.items():
            assert LABELS[f"{prefix}.{code}"]["en"] == english  # one source for English
