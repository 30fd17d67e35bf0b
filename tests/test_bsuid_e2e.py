"""A patient with a WhatsApp username and no phone number, end to end (issue 19, item 4): the
simulator (Meta, withholding the number), the WhatsApp gateway, Rasa, the action server and
the reminder scheduler as separate processes over real HTTP, on real SQLite.

The patient books in the chat and gets the reminder; every message to them goes by
``"recipient": <BSUID>``, never ``"to"``. Then their BSUID changes (Meta's
``user_changed_user_id``): the conversation, the booking and the pending reminder follow, and
the next reminder reaches the new id. The clinic's files never hold the patient's number.
"""

from __future__ import annotations

import datetime as dt
import time

import pytest

from benchmarks.stack import Stack, reply_text
from clinic.db import make_engine, make_session_factory
from clinic.privacy import contact_key
from clinic.reminders.store import ReminderStore
from clinic.scheduling.demo_data import install_demo_clinic
from clinic.scheduling.sql_backend import SqlSchedulingBackend
from clinic.settings import load_settings
from tests.reminder_support import quiet_hours_away_from_now

pytestmark = [pytest.mark.model, pytest.mark.servers]
TZ = load_settings().timezone
WA_ID = "15550419931"  # synthetic: the simulator's key for the phone; WhatsApp withholds it
NAME = "Ottoline Brackenridge"
USERNAME = "ottoline.b"
BIRTH_DATE = dt.date(1968, 11, 4)
BOOK = "I'd like to book an appointment"


@pytest.fixture(scope="module")
def stack(model, tmp_path_factory):
    running = Stack(tmp_path_factory.mktemp("bsuid-e2e"), model, ingress=True)
    running.env["CLINIC_QUIET_HOURS"] = quiet_hours_away_from_now(TZ)
    try:
        running.start()
        running.start_scheduler(poll_seconds=0.3)
        install_demo_clinic(make_session_factory(make_engine(running.env["CLINIC_DATABASE_URL"])),
                            timezone=TZ, weeks=2)
        yield running
    finally:
        running.stop()


def pseudonym(stack: Stack, value: str) -> str:
    return contact_key(value, "whatsapp", stack.env["CLINIC_PSEUDONYM_KEY"].encode())


def sent(stack: Stack) -> list:
    return [m for m in stack.replies(WA_ID) if not m.get("error")]


def settle(stack: Stack, seen: int, at_least: int) -> list:
    stack.wait_for_replies(WA_ID, seen + at_least, timeout=90)
    time.sleep(1.0)
    return sent(stack)[seen:]


def interactive_of(messages: list) -> list:
    return [m for m in messages if (m.get("payload") or {}).get("type") == "interactive"]


def tap(stack: Stack, message: dict) -> None:
    interactive = message["payload"]["interactive"]
    if interactive["type"] == "button":
        option = interactive["action"]["buttons"][0]["reply"]["id"]
    else:
        option = interactive["action"]["sections"][0]["rows"][0]["id"]
    stack.sim(f"/_sim/users/{WA_ID}/tap", {"message_id": message["wamid"], "id": option})


def make_due(sessions, job_id: str) -> None:
    """Time passes: the reminder's moment has come (one planned inside the booking's first
    day was skipped as past at booking: it is due now all the same)."""
    from clinic.reminders.tables import ReminderJobRow

    now = dt.datetime.now(dt.timezone.utc)
    with sessions() as session, session.begin():
        row = session.get(ReminderJobRow, job_id)
        row.status, row.reason = "pending", None
        row.due_at = row.available_at = now - dt.timedelta(seconds=1)
        row.expires_at = now + dt.timedelta(hours=1)


def wait_for(predicate, what: str, timeout: float = 60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = predicate()
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError(what)


def templates(stack: Stack) -> list:
    return [m for m in sent(stack) if (m.get("payload") or {}).get("type") == "template"]


def test_a_username_patient_books_gets_reminded_and_keeps_everything_when_the_id_changes(stack):
    user = stack.sim(f"/_sim/users/{WA_ID}", {"name": NAME, "username": USERNAME, "phone_hidden": True})
    bsuid = user["user_id"]
    conversation = pseudonym(stack, bsuid)
    key = contact_key(conversation, "whatsapp", stack.env["CLINIC_PSEUDONYM_KEY"].encode())
    sessions = make_session_factory(make_engine(stack.env["CLINIC_DATABASE_URL"]))
    backend = SqlSchedulingBackend(sessions)

    # Booking in the chat: the first option of every list or button, typed answers otherwise.
    stack.say(WA_ID, "hi", name=NAME)
    seen = len(settle(stack, 0, 2))
    typed = iter(["tomorrow morning", NAME, BIRTH_DATE.isoformat()])
    stack.say(WA_ID, BOOK, name=NAME)
    replies = settle(stack, seen, 1)
    seen += len(replies)
    for _ in range(12):
        if backend.upcoming(key):
            break
        if interactive_of(replies):
            tap(stack, interactive_of(replies)[-1])
        else:
            word = next(typed, None)
            assert word is not None, [reply_text(m) for m in replies]
            stack.say(WA_ID, word, name=NAME)
        replies = settle(stack, seen, 1)
        seen += len(replies)
    [booked] = backend.upcoming(key)
    assert backend.find_patient(key).name == NAME
    # Every reply went to the BSUID by "recipient": WhatsApp never gave the clinic a number.
    assert sent(stack) and all(m["payload"].get("recipient") == bsuid and "to" not in m["payload"]
                               for m in sent(stack))

    # The reminder (time passes: its moment has come) reaches the patient the same way.
    jobs = {j.kind: j for j in ReminderStore(sessions).jobs_for_appointment(booked.id)}
    assert set(jobs) >= {"appointment_24h", "appointment_2h"}, jobs
    make_due(sessions, jobs["appointment_24h"].id)
    [reminder] = wait_for(lambda: templates(stack), f"no reminder: {stack.log('scheduler')[-2000:]}")
    assert reminder["payload"]["recipient"] == bsuid and "to" not in reminder["payload"]

    # The user's BSUID changes. The next message, under the new id, is the same conversation:
    # Rasa remembers the patient (the reply comes in their conversation), and the booking,
    # the consent and the pending reminder are theirs still.
    change = stack.sim(f"/_sim/users/{WA_ID}/change-user-id", {})
    new_bsuid = change["user_id"]
    assert new_bsuid != bsuid
    before = len(sent(stack))
    stack.say(WA_ID, "hi again", name=NAME)
    replies = settle(stack, before, 1)
    assert all(m["payload"].get("recipient") == new_bsuid for m in replies)
    assert backend.upcoming(key) and backend.upcoming(key)[0].id == booked.id
    make_due(sessions, jobs["appointment_2h"].id)
    wait_for(lambda: len(templates(stack)) >= 2, "no second reminder")
    assert templates(stack)[-1]["payload"]["recipient"] == new_bsuid
    # The old id reaches nobody now (Meta would refuse it): nothing was sent to it after the change.
    assert not [m for m in stack.sim("/_sim/messages")["messages"]
                if (m.get("payload") or {}).get("recipient") == bsuid and m.get("error")]

    # One conversation in the clinic's inbox, and no phone number in the clinic's files.
    import sqlite3

    with sqlite3.connect(stack.database) as db:
        ids = {row[0] for row in db.execute("SELECT DISTINCT conversation_id FROM wa_inbox")}
        links = dict(db.execute("SELECT identity_key, conversation_id FROM wa_identities").fetchall())
    assert ids == {conversation}
    assert links == {conversation: conversation, pseudonym(stack, new_bsuid): conversation}
    for path in stack.workdir.rglob("*"):
        if path.is_file() and not path.name.startswith("simulator."):
            data = path.read_bytes()
            assert WA_ID.encode() not in data and bsuid.encode() not in data, path
