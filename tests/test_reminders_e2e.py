"""Reminders end to end: the simulator (Meta), Rasa with the WhatsApp channel and its HTTP
API, the action server and the reminder scheduler as separate processes over real HTTP,
on real SQLite. A booked appointment's reminder reaches the patient as a template (even
with the 24-hour window closed), the patient taps Confirm, the appointment is confirmed
in the database; a tap days later (new Rasa session) still acts on the right appointment,
and a reminder into an expired session gets through.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
import time

import pytest

from benchmarks.stack import Stack, reply_text
from clinic.db import make_engine, make_session_factory
from clinic.privacy import contact_key
from clinic.reminders.planner import ReminderPlanner
from clinic.reminders.store import ReminderStore
from clinic.reminders.timing import QuietHours, ReminderPolicy
from clinic.scheduling.demo_data import install_demo_clinic
from clinic.scheduling.model import SlotQuery
from clinic.scheduling.sql_backend import SqlSchedulingBackend
from clinic.settings import load_settings
from tests.reminder_support import quiet_hours_away_from_now

pytestmark = [pytest.mark.model, pytest.mark.servers]
SETTINGS = load_settings()
TZ = SETTINGS.timezone


@pytest.fixture(scope="module")
def stack(model, tmp_path_factory):
    running = Stack(tmp_path_factory.mktemp("reminders-e2e"), model)
    running.env["CLINIC_QUIET_HOURS"] = quiet_hours_away_from_now(TZ)
    running.start()
    running.start_scheduler(poll_seconds=0.3)
    yield running
    running.stop()


@pytest.fixture(scope="module")
def clinic(stack):
    sessions = make_session_factory(make_engine(stack.env["CLINIC_DATABASE_URL"]))
    install_demo_clinic(sessions, timezone=TZ, weeks=2)
    start, end = (dt.time.fromisoformat(p) for p in stack.env["CLINIC_QUIET_HOURS"].split("-"))
    policy = ReminderPolicy((24.0, 2.0), QuietHours(start, end, TZ), dt.timedelta(hours=3))
    backend = SqlSchedulingBackend(sessions, listeners=(ReminderPlanner(policy),))
    return backend, ReminderStore(sessions), sessions


def conversation_of(stack: Stack, wa_id: str) -> str:
    return contact_key(wa_id, "whatsapp", stack.env["CLINIC_PSEUDONYM_KEY"].encode())


def book(stack, clinic, wa_id: str, days: int):
    backend, _, _ = clinic
    conversation = conversation_of(stack, wa_id)
    key = contact_key(conversation, "whatsapp", stack.env["CLINIC_PSEUDONYM_KEY"].encode())
    patient = backend.register_patient(key, "Sam Example", dt.date(1990, 5, 1), conversation, "whatsapp")
    earliest = dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=days)
    slots = backend.search_slots(SlotQuery("gp_consultation", earliest, earliest + dt.timedelta(days=7), limit=50))
    slot = next(s for s in slots if 9 <= s.start.astimezone(TZ).hour < 17)
    return backend.book(slot.id, patient.id, "gp_consultation"), key


def make_due(clinic, appointment_id: str, kind: str = "appointment_24h") -> str:
    """Time passes: the reminder's moment has come."""
    _, store, sessions = clinic
    [job] = [j for j in store.jobs_for_appointment(appointment_id) if j.kind == kind]
    with sessions() as session, session.begin():
        from clinic.reminders.tables import ReminderJobRow
        session.get(ReminderJobRow, job.id).available_at = dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=1)
    return job.id


def wait_for_template(stack, wa_id: str, count: int = 1, timeout: float = 60) -> list:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [m for m in stack.replies(wa_id)
                 if not m.get("error") and (m.get("payload") or {}).get("type") == "template"]
        if len(found) >= count:
            return found
        time.sleep(0.2)
    raise AssertionError(f"no template for {wa_id}: {stack.replies(wa_id)}\n{stack.log('scheduler')[-3000:]}")


def wait_for_status(clinic, job_id: str, status: str, timeout: float = 30) -> None:
    _, store, _ = clinic
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if store.job(job_id).status == status:
            return
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} is {store.job(job_id).status}, not {status}")


def age_tracker(stack, conversation: str, days: float) -> None:
    """Move the conversation's history ``days`` into the past (its session expires)."""
    shift = days * 86400
    sealer = stack.tracker_sealer()  # the tracker store's rows are encrypted
    with sqlite3.connect(stack.tracker_database) as db:
        for row_id, data, stamp in db.execute(
                "SELECT id, data, timestamp FROM events WHERE sender_id = ?", (conversation,)).fetchall():
            event = json.loads(sealer.open(data))
            event["timestamp"] = event.get("timestamp", stamp) - shift
            db.execute("UPDATE events SET data = ?, timestamp = ? WHERE id = ?",
                       (sealer.seal(json.dumps(event)), stamp - shift, row_id))


def close_window(stack, wa_id: str) -> None:
    stack.sim(f"/_sim/users/{wa_id}/window", {"close": True})
    with sqlite3.connect(stack.database) as db:
        db.execute("UPDATE wa_contacts SET last_inbound_at = ? WHERE conversation_id = ?",
                   ((dt.datetime.utcnow() - dt.timedelta(days=2)).isoformat(" "), conversation_of(stack, wa_id)))


def test_reminder_template_then_confirm_tap_days_later(stack, clinic):
    backend, store, _ = clinic
    wa_id = "15550107001"  # synthetic
    stack.say(wa_id, "hi")
    stack.wait_for_replies(wa_id, 2)
    first, _key = book(stack, clinic, wa_id, days=3)
    second, _ = book(stack, clinic, wa_id, days=5)
    close_window(stack, wa_id)  # the patient last wrote two days ago: templates only

    job_id = make_due(clinic, first.id)
    [template] = wait_for_template(stack, wa_id)
    wait_for_status(clinic, job_id, "sent")
    sent = template["payload"]["template"]
    assert sent["name"] == "appointment_reminder_v2"
    params = [p["text"] for c in sent["components"] if c["type"] == "body" for p in c["parameters"]]
    local = first.start.astimezone(TZ)
    assert params[0] == "Sam" and params[2] == f"{local:%H:%M}"
    assert params[3] == first.practitioner.name and params[4] == first.location.name
    assert first.service.name not in json.dumps(sent)  # no clinical content
    payloads = [c["parameters"][0]["payload"] for c in sent["components"] if c["type"] == "button"]
    assert payloads[0] == f'/confirm_appointment{{"appointment_id": "{first.id}"}}'

    # Days later (the Rasa session has expired) the patient taps Confirm on that reminder.
    age_tracker(stack, conversation_of(stack, wa_id), days=2)
    before = len(stack.replies(wa_id))
    stack.sim(f"/_sim/users/{wa_id}/tap", {"message_id": template["wamid"], "id": payloads[0]})
    # The thanks (after a new-session welcome when Rasa saw the session expired: whether it
    # does depends on when Rasa saved the reminder's own events, so it is not asserted).
    deadline = time.monotonic() + 60
    while True:
        replies = stack.wait_for_replies(wa_id, before + 1)
        if any("Thank you for confirming" in reply_text(m) for m in replies[before:]):
            break
        assert time.monotonic() < deadline, [reply_text(m) for m in replies[before:]]
        time.sleep(0.5)
    assert backend.appointment(first.id).confirmed_at is not None
    assert backend.appointment(second.id).confirmed_at is None  # the right appointment only

    # Nothing was sent twice: one job, one template.
    time.sleep(1.5)
    assert len(wait_for_template(stack, wa_id)) == 1
    assert store.job(job_id).status == "sent"


def test_reminder_into_an_expired_session_and_cancelled_one_is_skipped(stack, clinic):
    backend, store, _ = clinic
    wa_id = "15550107002"
    stack.say(wa_id, "hello")
    stack.wait_for_replies(wa_id, 2)
    kept, key = book(stack, clinic, wa_id, days=3)
    dropped, _ = book(stack, clinic, wa_id, days=6)
    backend.cancel(dropped.id, key)
    age_tracker(stack, conversation_of(stack, wa_id), days=1)  # Rasa would start a new session

    job_id = make_due(clinic, kept.id)
    wait_for_template(stack, wa_id)
    wait_for_status(clinic, job_id, "sent")
    assert [j.status for j in store.jobs_for_appointment(dropped.id)] == ["skipped", "skipped"]
    # No free-form welcome was pushed ahead of the template (it would be refused anyway).
    assert len(stack.replies(wa_id)) == 3


def test_opt_out_in_chat_stops_the_next_reminder(stack, clinic):
    _, store, _ = clinic
    wa_id = "15550107003"
    stack.say(wa_id, "hi")
    stack.wait_for_replies(wa_id, 2)
    appointment, _ = book(stack, clinic, wa_id, days=4)
    stack.say(wa_id, "STOP")
    replies = stack.wait_for_replies(wa_id, 3)
    assert "won't receive appointment reminders" in reply_text(replies[-1])
    job_id = make_due(clinic, appointment.id)
    wait_for_status(clinic, job_id, "skipped")
    assert store.job(job_id).reason == "opted_out"
    assert not [m for m in stack.replies(wa_id) if (m.get("payload") or {}).get("type") == "template"]
