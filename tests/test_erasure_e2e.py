"""Proof of erasure (issue 18, item 6, the erasure half), through the real stack: the
simulator (standing in for Meta), the WhatsApp gateway, Rasa, the action server, the staff
inbox and the clinic API (the portal) as separate processes over real HTTP, real SQLite files.

A patient asks a clinic question, books an appointment in the chat (registering with their
name and date of birth), sends a photo in the chat (the gateway keeps it sealed in the media
folder for staff) and then a document through the single-use upload link the assistant
answers with, talks to reception (staff claim, reply, resolve), answers a satisfaction survey
(sent by ``python -m clinic.surveys send``) with a comment, then asks in the chat to delete
their data and confirms. Before the erasure, no clear text of the conversation is in the
clinic database, its write-ahead log, the journal or the media folder (sealed at rest:
clinic/at_rest.py). Afterwards no file of the product — the clinic database and its
write-ahead log, Rasa's tracker store, the WhatsApp journal directory, the media folder,
every process's log — holds the patient's texts, the staff reply, the survey comment, the
uploaded file's name or bytes, the photo's bytes or the phone number. The name and date of
birth (in every format they might be written) are only in the patient record the clinic
keeps for its appointments (``patients``, its link to the contact cut: clinic/privacy_erasure.py
says why): found by SQL in no other table, and once in the raw files. The tracker store has
no event of the conversation (checked by decrypting every row, since events are encrypted at
rest), and the clinic database no row of it, except the proof of the erasure (pseudonymous
key, counts) and the append-only audit log's content-free rows. The simulator's own log is
Meta's side, not the product's, and is not searched.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import json
import re
import secrets
import subprocess
import sys
import time

import pytest
import requests
from sqlalchemy import LargeBinary, create_engine, inspect, text
from sqlalchemy.pool import NullPool

from benchmarks.stack import PROJECT_ROOT, Stack, free_port, reply_text
from clinic.db import make_engine, make_session_factory
from clinic.messaging.media import media_directory
from clinic.privacy import ContactCipher, contact_key
from clinic.scheduling.demo_data import install_demo_clinic
from clinic.scheduling.sql_backend import SqlSchedulingBackend
from clinic.settings import load_settings
from clinic.surveys import tables as survey_tables
from clinic.surveys.store import SurveyStore
from tests.inbox_support import demo_staff_login, inbox_api
from tests.pg_support import fresh_database
from tests.test_inbound_media import png

pytestmark = [pytest.mark.model, pytest.mark.servers]
WA_ID = "15550307731"  # synthetic
NAME = "Marguerite Quillfeather"
QUESTION = "Where can I park? I drive a vermilion campervan"
HANDOFF = "I'd like to talk to a real person please"
THANKS = "thanks, my neighbour Bartholomew will drive me"
STAFF_REPLY = "Hello, this is Demo from reception: your kingfisher-blue form is ready."
BOOK = "I'd like to book an appointment"
BIRTH_DATE = dt.date(1957, 3, 29)
COMMENT = "The waiting room smelled of lavender marzipan"
UPLOAD_NAME = "osprey-periwinkle-referral.png"
# A real PNG (the portal checks the first bytes) carrying a distinctive text.
UPLOAD = png(3, 3, (90, 20, 160)) + b"tEXt:ospreyPeriwinkleLetter4471"
PHOTO = png(4, 4, (20, 160, 90)) + b"tEXt:heronSaffronPhoto8812"
NEEDLES = ["vermilion campervan", "Bartholomew", "kingfisher-blue", "lavender marzipan",
           "osprey-periwinkle", "ospreyPeriwinkleLetter4471", "heronSaffronPhoto8812", WA_ID]
# The name and date of birth, in the forms they may be stored, printed or typed: the clinic
# keeps them in the patient record (``patients``) and nowhere else.
KEPT = ["Quillfeather", "Marguerite", "1957-03-29", "29.03.1957", "29/03/1957", "03/29/1957",
        "29 March 1957", "March 29, 1957", "29 Mar 1957", "19570329"]


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def stack(request, model, tmp_path_factory):
    with running_stack(request, model, tmp_path_factory) as running:
        yield running


@contextlib.contextmanager
def running_stack(request, model, tmp_path_factory):
    # ingress: the WhatsApp gateway takes the webhooks and downloads chat media (sealed, into
    # the media folder beside the clinic database), as in production.
    running = Stack(tmp_path_factory.mktemp(f"erasure-e2e-{request.param}"), model, ingress=True)
    running.tracker_url = f"sqlite:///{running.tracker_database}"
    databases = contextlib.ExitStack()
    if request.param == "postgresql":
        # The clinic database and Rasa's tracker store on PostgreSQL (each its own database);
        # the journal in the stack's folder (beside a SQLite file by default).
        server = request.getfixturevalue("postgres_url")
        running.env["CLINIC_DATABASE_URL"] = databases.enter_context(fresh_database(server, "erasure_clinic"))
        running.tracker_url = databases.enter_context(fresh_database(server, "erasure_tracker"))
        running.env["RASA_TRACKER_STORE_URL"] = running.tracker_url
        running.env["WHATSAPP_JOURNAL_DIR"] = str(running.workdir / "whatsapp-journal")
        running.endpoints.write_text(
            running.action_endpoint_yaml() +
            'tracker_store:\n  type: addons.encrypted_tracker_store.EncryptedSQLTrackerStore\n'
            f'  url: "{running.tracker_url}"\n')
    running.env["CLINIC_RECEPTION_HOURS"] = "mon-sun 00:00-23:59"
    running.env["WHATSAPP_OUTBOX_SWEEP_SECONDS"] = "1"
    # The portal (the clinic API) for the upload link.
    api_port = free_port()
    running.ports["clinic_api"] = api_port
    running.env["CLINIC_PORTAL_URL"] = f"http://127.0.0.1:{api_port}/portal"
    running.env["CLINIC_PORTAL_TOKEN_KEY"] = secrets.token_hex(32)
    try:
        running.start()
        running.start_inbox()
        running._start("clinic_api", [sys.executable, "-m", "clinic_api", "--port", str(api_port)])
        running.wait_for(f"http://127.0.0.1:{api_port}/api/health", "clinic_api")
        install_demo_clinic(make_session_factory(make_engine(running.env["CLINIC_DATABASE_URL"])),
                            timezone=load_settings().timezone, weeks=2)
        yield running
    finally:
        running.stop()
        for engine in ENGINES.values():
            engine.dispose()
        ENGINES.clear()
        databases.close()


@pytest.fixture(scope="module")
def staff(stack):
    return demo_staff_login(stack, "demo-agent", "agent")




def say(stack: Stack, text: str, seen: int, count: int) -> list:
    stack.say(WA_ID, text, name=NAME)
    return stack.wait_for_replies(WA_ID, seen + count, timeout=90)[seen:]


def settle(stack: Stack, seen: int, at_least: int) -> list:
    """The replies after the first ``seen``, once at least ``at_least`` came and the rest of
    a multi-message turn had a moment to land."""
    stack.wait_for_replies(WA_ID, seen + at_least, timeout=90)
    time.sleep(1.0)
    return [m for m in stack.replies(WA_ID) if not m.get("error")][seen:]


def interactive_of(messages: list) -> list:
    return [m for m in messages if (m.get("payload") or {}).get("type") == "interactive"]


def tap(stack: Stack, message: dict, choice: int = 0) -> None:
    interactive = message["payload"]["interactive"]
    if interactive["type"] == "button":
        option = interactive["action"]["buttons"][choice]["reply"]["id"]
    else:
        option = interactive["action"]["sections"][0]["rows"][choice]["id"]
    stack.sim(f"/_sim/users/{WA_ID}/tap", {"message_id": message["wamid"], "id": option})


ENGINES: dict = {}


def engine_of(url: str):
    # NullPool: no connection kept open between reads (an open SQLite reader would hold the
    # write-ahead log back from the erasure's checkpoint; PostgreSQL's database is dropped).
    if url not in ENGINES:
        ENGINES[url] = create_engine(url, poolclass=NullPool, future=True)
    return ENGINES[url]


def rows_of(url: str, sql: str, **params) -> list:
    with engine_of(url).connect() as connection:
        return [tuple(row) for row in connection.execute(text(sql), params)]


def clinic_rows(stack: Stack, sql: str, **params) -> list:
    return rows_of(stack.env["CLINIC_DATABASE_URL"], sql, **params)


def tables_holding(stack: Stack, needle: str) -> set:
    """The tables of the clinic database with a value (any column of any row) holding
    ``needle``: text read as text, binary columns (sealed files) searched as bytes."""
    engine = engine_of(stack.env["CLINIC_DATABASE_URL"])
    postgres = engine.dialect.name == "postgresql"
    hits = set()
    schema = inspect(engine)
    for table in schema.get_table_names():
        for column in schema.get_columns(table):
            name = column["name"]
            if postgres and isinstance(column["type"], LargeBinary):
                where, value = f'position(:needle in "{name}") > 0', needle.encode()
            elif postgres:
                where, value = f'strpos(CAST("{name}" AS TEXT), :needle) > 0', needle
            else:
                where, value = f'instr(CAST("{name}" AS TEXT), :needle) > 0', needle
            if clinic_rows(stack, f'SELECT 1 FROM "{table}" WHERE {where} LIMIT 1', needle=value):
                hits.add(table)
    return hits


def on_postgres(stack: Stack) -> bool:
    return stack.env["CLINIC_DATABASE_URL"].startswith("postgresql")


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
    sessions = make_session_factory(make_engine(stack.env["CLINIC_DATABASE_URL"]))
    key = contact_key(conversation, "whatsapp", stack.env["CLINIC_PSEUDONYM_KEY"].encode())

    # Booking: the patient taps the first option of every list or button (service,
    # practitioner, time, "yes") and types a day, their name and date of birth when asked.
    backend = SqlSchedulingBackend(sessions)
    typed = iter(["tomorrow morning", NAME, BIRTH_DATE.isoformat()])
    stack.say(WA_ID, BOOK, name=NAME)
    replies = settle(stack, seen, 1)
    seen += len(replies)
    for _ in range(12):
        if backend.find_patient(key) is not None and backend.upcoming(key):
            break
        if interactive_of(replies):
            tap(stack, interactive_of(replies)[-1])
        else:
            word = next(typed, None)
            assert word is not None, [reply_text(m) for m in replies]
            stack.say(WA_ID, word, name=NAME)
        replies = settle(stack, seen, 1)
        seen += len(replies)
    record = backend.find_patient(key)
    assert record is not None and (record.name, record.birth_date) == (NAME, BIRTH_DATE)
    [booked] = backend.upcoming(key)

    # A photo in the chat: the gateway stores it sealed for staff, and the assistant answers
    # with a single-use upload link; the patient sends their document through it.
    stack.sim(f"/_sim/users/{WA_ID}/messages", {
        "type": "image", "data_base64": base64.b64encode(PHOTO).decode(), "mime_type": "image/png", "name": NAME})
    replies = settle(stack, seen, 1)
    seen += len(replies)
    portal = stack.env["CLINIC_PORTAL_URL"]
    [link] = set(re.findall(re.escape(portal) + r"/t/[A-Za-z0-9_-]+", json.dumps(replies)))
    form = requests.get(link, timeout=30)
    assert form.status_code == 200, form.text[-2000:]
    uploaded = requests.post(link, files={"document": (UPLOAD_NAME, UPLOAD, "image/png")}, timeout=60)
    assert uploaded.status_code == 200 and UPLOAD_NAME in uploaded.text, uploaded.text[-2000:]
    assert clinic_rows(stack, "SELECT count(*) FROM portal_uploads WHERE conversation_id = :c", c=conversation
                       ) == [(1,)]
    deadline = time.monotonic() + 60
    while clinic_rows(stack, "SELECT state FROM inbound_media") != [("stored",)] and time.monotonic() < deadline:
        time.sleep(0.3)
    [(media_id,)] = clinic_rows(stack, "SELECT id FROM inbound_media WHERE state = 'stored' AND conversation_id = :c",
                                c=conversation)
    # Beside the SQLite file; on PostgreSQL the project's var/media (shared: only this file).
    media_folder = media_directory(stack.env["CLINIC_DATABASE_URL"])
    sealed_photo = media_folder / f"{media_id}.sealed"
    assert sealed_photo.exists()
    if not on_postgres(stack):
        assert [path.name for path in media_folder.iterdir()] == [sealed_photo.name]

    # A person: staff claim, reply; the patient answers; staff resolve.
    queued, may_we_call = say(stack, HANDOFF, seen, 2)  # then "may the clinic call you?"
    seen += 2
    assert "reception team" in reply_text(queued)
    assert may_we_call["payload"]["interactive"]["type"] == "call_permission_request"
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

    # A satisfaction survey about the visit (planned as the planner does once it is over),
    # sent by `python -m clinic.surveys send` through the outbox; the patient taps 4 and
    # writes a comment.
    now = dt.datetime.now(dt.timezone.utc)
    store = SurveyStore(sessions)
    with sessions() as session, session.begin():
        survey_id = store.add(session, survey_tables.VISIT, booked.id, key, conversation, "whatsapp", now, now)
    # The sender leaves a few seconds after the chat's last message (clinic/surveys/sender.py,
    # PACING): a deferred survey is sent by the next run.
    for _ in range(5):
        time.sleep(3)
        sent = subprocess.run([sys.executable, "-m", "clinic.surveys", "send"], cwd=PROJECT_ROOT, env=stack.env,
                              capture_output=True, text=True, timeout=180)
        assert sent.returncode == 0, sent.stderr[-3000:]
        if store.get(survey_id).status == survey_tables.SENT:
            break
    assert store.get(survey_id).status == survey_tables.SENT, sent.stdout
    [survey] = [m for m in stack.wait_for_replies(WA_ID, seen + 1)[seen:]
                if (m.get("payload") or {}).get("type") == "template"]
    seen += 1
    [four] = [c["parameters"][0]["payload"] for c in survey["payload"]["template"]["components"]
              if c["type"] == "button" and '"rating": 4' in c["parameters"][0]["payload"]]
    stack.sim(f"/_sim/users/{WA_ID}/tap", {"message_id": survey["wamid"], "id": four})
    seen += len(settle(stack, seen, 2))  # thanks + "add a comment?"
    stack.say(WA_ID, COMMENT, name=NAME)
    thanked = settle(stack, seen, 1)
    seen += len(thanked)
    assert store.get(survey_id).rating == 4
    assert clinic_rows(stack, "SELECT count(*) FROM survey_requests WHERE comment_encrypted IS NOT NULL"
                       ) == [(1,)], [reply_text(m) for m in thanked]
    # Before the erasure the conversation is there, its texts sealed at rest (issue 18): no
    # clear text of the patient's messages or the staff reply in the clinic database, its
    # write-ahead log or the WhatsApp journal, while the inbox's API reads them.
    assert clinic_rows(stack, "SELECT count(*) FROM wa_inbox WHERE conversation_id = :c", c=conversation)[0][0] >= 4
    stored = clinic_rows(stack, "SELECT text_encrypted FROM inbox_messages")
    assert stored and all(value.startswith("enc:v1:") for (value,) in stored)
    page = inbox_api(staff, "GET", f"/tickets/{ticket['id']}")
    assert STAFF_REPLY in json.dumps(page)
    clear = NEEDLES + [QUESTION, HANDOFF, THANKS, STAFF_REPLY, COMMENT]
    clinic_files = [path for path in product_files(stack) + [sealed_photo]
                    if re.search(r"clinic\.db|journal|media", str(path.relative_to(stack.workdir)
                                                                  if path.is_relative_to(stack.workdir) else path))]
    assert sealed_photo in clinic_files and any("journal" in str(path) for path in clinic_files), clinic_files
    for path in clinic_files:
        data = path.read_bytes()
        for needle in clear:
            assert needle.encode() not in data, (needle, path.name)
    if on_postgres(stack):  # the server's files are not the product's: every value, by SQL
        assert {needle: tables_holding(stack, needle) for needle in clear} == {needle: set() for needle in clear}

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
    assert counts["survey_requests"] == 1 and counts["portal_uploads"] == 1 and counts["patient_links"] == 1
    assert counts["portal_upload_links"] >= 1 and counts["inbound_media"] == 1
    assert not sealed_photo.exists()
    if not on_postgres(stack):
        assert [path for path in media_folder.iterdir() if path.is_file()] == []
    time.sleep(1)  # let late delivery statuses and log lines land

    # No row of the conversation anywhere in the clinic database.
    for table, column in [("wa_inbox", "conversation_id"), ("wa_outbound", "conversation_id"),
                          ("wa_contacts", "conversation_id"), ("inbox_tickets", "conversation_id"),
                          ("handoff_ratings", "conversation_id"), ("inbox_tasks", "conversation_id"),
                          ("wa_quarantine", "conversation_id"), ("survey_requests", "conversation_id"),
                          ("portal_uploads", "conversation_id"), ("portal_tokens", "conversation_id"),
                          ("inbound_media", "conversation_id")]:
        assert clinic_rows(stack, f"SELECT count(*) FROM {table} WHERE {column} = :c", c=conversation) == [(0,)], table
    assert clinic_rows(stack, "SELECT count(*) FROM inbox_messages") == [(0,)]
    assert clinic_rows(stack, "SELECT count(*) FROM handoff_requests") == [(0,)]
    assert clinic_rows(stack, "SELECT count(*) FROM contact_languages") == [(0,)]
    # Sealed values hide their text from a raw search: every survey comment left, decrypted.
    cipher = ContactCipher(stack.env["CLINIC_ENCRYPTION_KEY"].encode())
    comments = [cipher.decrypt(value) for (value,) in clinic_rows(
        stack, "SELECT comment_encrypted FROM survey_requests WHERE comment_encrypted IS NOT NULL")]
    assert not any(COMMENT in comment for comment in comments)
    # Rasa's tracker store: no event of the conversation (every row decrypted to be sure).
    sealer = stack.tracker_sealer()
    events = rows_of(stack.tracker_url, "SELECT sender_id, data FROM events")
    assert all(sender != conversation for sender, _ in events)
    opened = " ".join(sealer.open(data) for _, data in events if data.startswith("enc:"))
    for needle in NEEDLES + KEPT + [COMMENT, BOOK]:
        assert needle not in opened, needle
    # Every value of every table of the clinic database, read through SQL: the name and date
    # of birth only in the patient record the clinic keeps (its link to the contact cut).
    assert {needle: tables_holding(stack, needle) for needle in NEEDLES + KEPT} == {
        needle: ({"patients"} if needle in ("Quillfeather", "Marguerite", "1957-03-29") else set())
        for needle in NEEDLES + KEPT}
    assert clinic_rows(stack, "SELECT conversation_id, CASE WHEN contact_key LIKE 'erased_%' THEN 1 ELSE 0 END "
                              "FROM patients WHERE name = :n", n=NAME) == [("erased", 1)]

    # Every file: databases with their -wal, journal segments, logs, the media folder.
    files = product_files(stack)
    names = {path.name for path in files}
    assert on_postgres(stack) or {"clinic.db", "tracker.db"} <= names, names
    hits = [(str(path.relative_to(stack.workdir)), needle) for path in files for needle in NEEDLES
            if needle.encode() in path.read_bytes()]
    assert hits == [], hits
    # The kept record's name and date of birth: once in the clinic database's file (its
    # row), nowhere else; no other format of the date anywhere.
    kept = {(str(path.relative_to(stack.workdir)), needle): path.read_bytes().count(needle.encode())
            for path in files for needle in KEPT if needle.encode() in path.read_bytes()}
    assert kept == ({} if on_postgres(stack) else {("clinic.db", "Quillfeather"): 1, ("clinic.db", "Marguerite"): 1,
                                                    ("clinic.db", "1957-03-29"): 1}), kept

    # The patient's next message starts afresh: a new conversation, welcomed again.
    welcome, _menu = say(stack, "hi", seen, 2)
    assert "welcome" in reply_text(welcome).lower() or "assistant" in reply_text(welcome).lower()
