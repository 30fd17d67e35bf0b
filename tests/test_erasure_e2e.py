"""Proof of erasure (issue 18, item 6, the erasure half), through the real stack: the
simulator (standing in for Meta), Rasa with the WhatsApp channel, the action server and the
staff inbox as separate processes over real HTTP, real SQLite files.

A patient asks a clinic question, talks to reception (staff claim, reply, resolve), then
asks in the chat to delete their data and confirms. Before the erasure, no clear text of
the conversation is in the clinic database, its write-ahead log or the journal (sealed at
rest: clinic/at_rest.py). Afterwards no file of the product —
the clinic database and its write-ahead log, Rasa's tracker store and its log, the
WhatsApp journal directory, every process's log, an upload folder if any — holds the
patient's texts, their name, the staff reply or their phone number; the tracker store has no
event of the conversation (checked by decrypting every row, since events are encrypted at
rest), and the clinic database no row of it, except the proof of the erasure (pseudonymous
key, counts) and the append-only audit log's content-free rows. The simulator's own log is
Meta's side, not the product's, and is not searched.
"""

from __future__ import annotations

import json
import sqlite3
import time

import pytest

from benchmarks.stack import Stack, reply_text
from clinic.privacy import contact_key
from tests.inbox_support import demo_staff_login, inbox_api

pytestmark = [pytest.mark.model, pytest.mark.servers]
WA_ID = "15550307731"  # synthetic
NAME = "Marguerite Quillfeather"
QUESTION = "Where can I park? I drive a vermilion campervan"
HANDOFF = "I'd like to talk to a real person please"
THANKS = "thanks, my neighbour Bartholomew will drive me"
STAFF_REPLY = "Hello, this is Demo from reception: your kingfisher-blue form is ready."
NEEDLES = ["vermilion campervan", "Bartholomew", "Quillfeather", "Marguerite", "kingfisher-blue", WA_ID]


@pytest.fixture(scope="module")
def stack(model, tmp_path_factory):
    running = Stack(tmp_path_factory.mktemp("erasure-e2e"), model)
    running.env["CLINIC_RECEPTION_HOURS"] = "mon-sun 00:00-23:59"
    running.env["WHATSAPP_OUTBOX_SWEEP_SECONDS"] = "1"
    running.start()
    running.start_inbox()
    yield running
    running.stop()


@pytest.fixture(scope="module")
def staff(stack):
    return demo_staff_login(stack, "demo-agent", "agent")




def say(stack: Stack, text: str, seen: int, count: int) -> list:
    stack.say(WA_ID, text, name=NAME)
    return stack.wait_for_replies(WA_ID, seen + count, timeout=90)[seen:]


def clinic_rows(stack: Stack, sql: str, **params) -> list:
    with sqlite3.connect(stack.database) as db:
        return db.execute(sql, params).fetchall()


def product_files(stack: Stack) -> list:
    """Every file the product wrote in the stack's folder (databases, their -wal/-shm,
    journal segments, logs, uploads), not the simulator's (Meta's side)."""
    return [path for path in stack.workdir.rglob("*")
            if path.is_file() and not path.name.startswith("simulator.")]


def test_a_patient_erases_their_data_from_the_chat_and_nothing_is_left(stack, staff):
    conversation = contact_key(WA_ID, "whatsapp", stack.env["CLINIC_PSEUDONYM_KEY"].encode())
    seen = len(say(stack, "hi", 0, 2))
    [parking] = say(stack, QUESTION, seen, 1)
    seen += 1
    assert "park" in reply_text(parking).lower()

    # A person: staff claim, reply; the patient answers; staff resolve.
    [queued] = say(stack, HANDOFF, seen, 1)
    seen += 1
    assert "reception team" in reply_text(queued)
    queues = inbox_api(staff, "GET", "/queues")
    [ticket] = [t for team in queues["teams"].values() for t in team if t["conversation_id"] == conversation]
    inbox_api(staff, "POST", f"/tickets/{ticket['id']}/claim")
    seen = len(stack.wait_for_replies(WA_ID, seen + 1))
    assert inbox_api(staff, "POST", f"/tickets/{ticket['id']}/reply", text=STAFF_REPLY)["delivery"] == "sent"
    seen = len(stack.wait_for_replies(WA_ID, seen + 1))
    stack.say(WA_ID, THANKS, name=NAME)
    time.sleep(2)
    inbox_api(staff, "POST", f"/tickets/{ticket['id']}/resolve", reason="answered")
    seen = len(stack.wait_for_replies(WA_ID, seen + 2))  # back with the assistant + the rating question
    # Before the erasure the conversation is there, its texts sealed at rest (issue 18): no
    # clear text of the patient's messages or the staff reply in the clinic database, its
    # write-ahead log or the WhatsApp journal, while the inbox's API reads them.
    assert clinic_rows(stack, "SELECT count(*) FROM wa_inbox WHERE conversation_id = :c", c=conversation)[0][0] >= 4
    stored = clinic_rows(stack, "SELECT text_encrypted FROM inbox_messages")
    assert stored and all(value.startswith("enc:v1:") for (value,) in stored)
    page = inbox_api(staff, "GET", f"/tickets/{ticket['id']}")
    assert STAFF_REPLY in json.dumps(page)
    clinic_files = [path for path in product_files(stack) if "clinic.db" in str(path.relative_to(stack.workdir))]
    for path in clinic_files:
        data = path.read_bytes()
        for needle in NEEDLES + [QUESTION, HANDOFF, THANKS, STAFF_REPLY]:
            assert needle.encode() not in data, (needle, path.name)

    # "Delete my data": what is erased and what the clinic keeps, then yes / no.
    [question] = say(stack, "please delete all my data", seen, 1)
    seen += 1
    body = reply_text(question)
    assert "erase" in body and "appointments and medical records" in body
    buttons = question["payload"]["interactive"]["action"]["buttons"]
    assert [b["reply"]["title"] for b in buttons] == ["Yes, erase my data", "No, keep it"]
    stack.sim(f"/_sim/users/{WA_ID}/tap", {"message_id": question["wamid"], "id": buttons[0]["reply"]["id"]})
    [done] = stack.wait_for_replies(WA_ID, seen + 1, timeout=90)[seen:]
    seen += 1
    assert "your data has been erased" in reply_text(done)

    # The WhatsApp records go once the confirmation is sent (the outbox's sweep).
    deadline = time.monotonic() + 60
    while clinic_rows(stack, "SELECT count(*) FROM privacy_erasures WHERE pending_conversation_id IS NOT NULL"
                      )[0][0] and time.monotonic() < deadline:
        time.sleep(0.5)
    [(counts, completed)] = clinic_rows(stack, "SELECT counts, completed_at FROM privacy_erasures")
    assert completed is not None
    counts = json.loads(counts)
    assert counts["inbox_tickets"] == 1 and counts["inbox_messages"] >= 1 and counts["wa_contacts"] == 1
    assert counts["wa_inbox"] >= 4
    time.sleep(1)  # let late delivery statuses and log lines land

    # No row of the conversation anywhere in the clinic database.
    for table, column in [("wa_inbox", "conversation_id"), ("wa_outbound", "conversation_id"),
                          ("wa_contacts", "conversation_id"), ("inbox_tickets", "conversation_id"),
                          ("handoff_ratings", "conversation_id"), ("inbox_tasks", "conversation_id"),
                          ("wa_quarantine", "conversation_id")]:
        assert clinic_rows(stack, f"SELECT count(*) FROM {table} WHERE {column} = :c", c=conversation) == [(0,)], table
    assert clinic_rows(stack, "SELECT count(*) FROM inbox_messages") == [(0,)]
    assert clinic_rows(stack, "SELECT count(*) FROM handoff_requests") == [(0,)]
    assert clinic_rows(stack, "SELECT count(*) FROM contact_languages") == [(0,)]
    # Rasa's tracker store: no event of the conversation (every row decrypted to be sure).
    sealer = stack.tracker_sealer()
    with sqlite3.connect(stack.tracker_database) as db:
        events = db.execute("SELECT sender_id, data FROM events").fetchall()
    assert all(sender != conversation for sender, _ in events)
    opened = " ".join(sealer.open(data) for _, data in events if data.startswith("enc:"))
    for needle in NEEDLES:
        assert needle not in opened, needle

    # Every file: databases with their -wal, journal segments, logs.
    files = product_files(stack)
    names = {path.name for path in files}
    assert {"clinic.db", "tracker.db"} <= names, names
    hits = [(path.name, needle) for path in files for needle in NEEDLES
            if needle.encode() in path.read_bytes()]
    assert hits == [], hits

    # The patient's next message starts afresh: a new conversation, welcomed again.
    welcome, _menu = say(stack, "hi", seen, 2)
    assert "welcome" in reply_text(welcome).lower() or "assistant" in reply_text(welcome).lower()
