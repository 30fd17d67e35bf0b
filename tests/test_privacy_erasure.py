"""Erasure on request (clinic/privacy_erasure.py): one contact's rows go from every store the
product owns, another contact's stay; appointments stay; the proof and the audit row hold
counts only; from the chat the WhatsApp records wait for the confirmation to be sent; Rasa's
tracker store deletes a conversation's events when the turn that confirmed it is saved."""

from __future__ import annotations

import asyncio
import datetime as dt
import json

import pytest
import sqlalchemy as sa
from sqlalchemy import func, select

from clinic.consent import ConsentEventRow, ConsentRow
from clinic.db import create_schema, make_engine, make_session_factory
from clinic.handoff.tables import HandoffRequest
from clinic.inbox.audit import AuditLog
from clinic.inbox.tables import AuditRow, HandoffRatingRow, MessageRow, StaffRow, TaskRow, TicketRow
from clinic.knowledge.tables import KnowledgeOutcomeRow
from clinic.language.tables import ContactLanguage
from clinic.messaging.quarantine import QuarantineRow
from clinic.messaging.store import ContactRow, InboxRow, OutboundRow, StatusRow
from clinic.portal.tables import PortalTokenRow, PortalUploadRow
from clinic.privacy_erasure import ErasureRow, PrivacyErasure, TrackerEvents
from clinic.reminders.tables import RecallDueRow, ReminderJobRow
from clinic.scheduling.tables import PatientRow
from clinic.surveys.tables import SurveyRow
from tests.pg_support import fresh_database

NOW = dt.datetime(2026, 12, 6, 10, 0, tzinfo=dt.timezone.utc)
PATIENT_TEXT = "PELICAN-5521 my knee hurts after the fall"


def ids(name: str) -> tuple:
    return (name * 64)[:64], (name.upper() * 64)[:64]  # conversation id, contact key


def populate(session, name: str, staff_id: int, serial: int) -> None:
    conversation, contact = ids(name)
    session.add_all([
        InboxRow(wamid=f"wamid.in.{name}", conversation_id=conversation, kind="text",
                 text=f"{PATIENT_TEXT} {name}", state="done", attempts=1, received_at=NOW),
        ContactRow(conversation_id=conversation, address_encrypted=f"gAAAA-{name}", created_at=NOW),
        OutboundRow(id=serial, conversation_id=conversation, wamid=f"wamid.out.{name}", kind="text",
                    payload_json='{"type": "text"}', state="sent", created_at=NOW, updated_at=NOW),
        StatusRow(wamid=f"wamid.out.{name}", status="read", callback=str(serial), updated_at=NOW),
        QuarantineRow(source="inbox", reason="attempts_exhausted", conversation_id=conversation,
                      state="open", created_at=NOW),
        HandoffRequest(contact_key=contact, team="nurse", reason="patient_request", priority="normal",
                       created_at=NOW),
        SurveyRow(id=f"svy_{name}", kind="visit", subject_id=f"apt_{name}", contact_key=contact,
                  conversation_id=conversation, channel="whatsapp", status="commented", due_at=NOW,
                  rating=4, comment_encrypted="gAAAA-comment", created_at=NOW, updated_at=NOW),
        KnowledgeOutcomeRow(at=NOW, language="en", outcome="answered", contact_key=contact),
        ConsentRow(contact_key=contact, reminders=True, health_tips=True, conversation_id=conversation),
        ConsentEventRow(contact_key=contact, topic="health_tips", granted=True, wording="utter_ask_opt_in@v1",
                        at=NOW),
        ContactLanguage(contact_key=contact, language="ru", chosen=True, updated_at=NOW),
        # The WhatsApp channel remembers the language by conversation id.
        ContactLanguage(contact_key=conversation, language="ru", chosen=False, updated_at=NOW),
        RecallDueRow(id=f"rcl_{name}", patient_id=f"pat_{name}", contact_key=contact, topic="vaccination",
                     due_date=NOW.date(), status="open", created_at=NOW, updated_at=NOW),
        PatientRow(id=f"pat_{name}", contact_key=contact, name=f"Olga {name}", birth_date=dt.date(1980, 1, 2),
                   conversation_id=conversation, channel="whatsapp", created_at=NOW, updated_at=NOW),
    ])
    session.flush()
    session.add(ReminderJobRow(id=f"rem_{name}", kind="day_before", appointment_id=f"apt_{name}",
                               patient_id=f"pat_{name}", contact_key=contact, conversation_id=conversation,
                               channel="whatsapp", due_at=NOW, available_at=NOW, expires_at=NOW,
                               created_at=NOW, updated_at=NOW))
    ticket = TicketRow(conversation_id=conversation, contact_key=contact, team="nurse", priority="normal",
                       state="resolved", reason="patient_request", created_at=NOW, opened_at=NOW)
    session.add(ticket)
    session.flush()
    session.add_all([
        MessageRow(ticket_id=ticket.id, kind="reply", author_id=staff_id, text_encrypted="gAAAA-reply",
                   created_at=NOW),
        TaskRow(conversation_id=conversation, ticket_id=ticket.id, team="nurse", note_encrypted="gAAAA-note",
                state="open", created_by="bot", created_at=NOW),
        HandoffRatingRow(ticket_id=ticket.id, conversation_id=conversation, team="nurse", rating=5,
                         created_at=NOW),
        PortalTokenRow(id=f"ptk_{name}", token_hash=(name * 64)[:64], document_id="document", purpose="upload",
                       conversation_id=conversation, created_at=NOW, expires_at=NOW),
    ])
    session.flush()
    session.add(PortalUploadRow(id=f"pup_{name}", token_id=f"ptk_{name}", conversation_id=conversation,
                                kind="document", media_type="application/pdf", size_bytes=3, key_ref="k",
                                name_sealed=b"sealed", content=b"sealed content", created_at=NOW))


PER_CONTACT = [InboxRow, ContactRow, OutboundRow, StatusRow, QuarantineRow, HandoffRequest, SurveyRow,
               KnowledgeOutcomeRow, ConsentRow, ConsentEventRow, ContactLanguage, RecallDueRow, ReminderJobRow,
               TicketRow, MessageRow, TaskRow, HandoffRatingRow, PortalTokenRow, PortalUploadRow]
MESSAGING = {InboxRow, ContactRow, OutboundRow, StatusRow, QuarantineRow}


@pytest.fixture(params=["sqlite", "postgresql"])
def clinic_url(request, tmp_path):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'clinic.db'}"
    else:
        with fresh_database(request.getfixturevalue("postgres_url"), "erasure") as url:
            yield url


@pytest.fixture
def world(clinic_url, tmp_path):
    engine = make_engine(clinic_url)
    create_schema(engine)
    sessions = make_session_factory(engine)
    with sessions.begin() as session:
        staff = StaffRow(username="sara", display_name="Sara", password_hash="x", totp_secret_encrypted="x",
                         role="supervisor", created_at=NOW)
        session.add(staff)
        session.flush()
        populate(session, "a", staff.id, 1)
        populate(session, "b", staff.id, 2)
    tracker_engine = make_engine(f"sqlite:///{tmp_path / 'tracker.db'}")
    with tracker_engine.begin() as connection:
        connection.exec_driver_sql("CREATE TABLE events (id INTEGER PRIMARY KEY, sender_id VARCHAR(255), "
                                   "type_name VARCHAR(255), timestamp FLOAT, intent_name VARCHAR(255), "
                                   "action_name VARCHAR(255), data TEXT)")
        for name in "ab":
            for _ in range(3):
                connection.execute(sa.text("INSERT INTO events (sender_id, type_name, data) VALUES (:s, 'user', :d)"),
                                   {"s": ids(name)[0], "d": f"enc:v1:k1:{name}"})
    yield sessions, TrackerEvents(tracker_engine), tmp_path
    engine.dispose()
    tracker_engine.dispose()


def rows(sessions, table) -> int:
    with sessions() as session:
        return session.execute(select(func.count()).select_from(table)).scalar_one()


def tracker_rows(tracker: TrackerEvents, sender: str) -> int:
    with tracker.engine.connect() as connection:
        return connection.execute(sa.text("SELECT count(*) FROM events WHERE sender_id = :s"),
                                  {"s": sender}).scalar_one()


def test_staff_erasure_empties_every_store_for_the_contact_only(world):
    sessions, tracker, tmp_path = world
    conversation, contact = ids("a")
    report = PrivacyErasure(sessions, tracker=tracker, clock=lambda: NOW).erase(
        conversation, contact, requested_by="sara")

    for table in PER_CONTACT:
        assert rows(sessions, table) == (2 if table is ContactLanguage else 1), table.__tablename__  # b's
    assert tracker_rows(tracker, conversation) == 0 and tracker_rows(tracker, ids("b")[0]) == 3
    assert report.counts["tracker_events"] == 3 and report.counts["inbox_messages"] == 1
    assert report.counts["wa_contacts"] == 1 and report.counts["portal_uploads"] == 1
    assert not report.messaging_pending
    # The patient record stays (the appointments belong to it) but no longer leads to the contact.
    with sessions() as session:
        patient = session.get(PatientRow, "pat_a")
        proof = session.execute(select(ErasureRow)).scalar_one()
        audit = session.execute(select(AuditRow).where(AuditRow.action == "privacy_erasure")).scalar_one()
    assert patient.name == "Olga a" and patient.contact_key != contact and patient.conversation_id == "erased"
    # The proof: who, when, counts; no content.
    assert proof.contact_key == contact and proof.requested_by == "sara" and proof.completed_at is not None
    assert json.loads(proof.counts)["survey_requests"] == 1
    assert audit.conversation_id == conversation and "PELICAN" not in audit.detail and "survey_requests" in audit.detail
    assert AuditLog(sessions).verify().ok
    # SQLite: deleted text is not left in the database files (secure_delete, checkpoint).
    if sessions.kw["bind"].dialect.name == "sqlite":
        stored = b"".join(p.read_bytes() for p in tmp_path.glob("clinic.db*"))
        assert b"PELICAN-5521 my knee hurts after the fall a" not in stored
        # The other patient's row is still there (the search works), its text sealed at rest
        # (clinic/at_rest.py): no one's words in clear.
        assert b"wamid.in.b" in stored and b"PELICAN" not in stored


def test_a_chat_erasure_leaves_the_whatsapp_records_until_the_confirmation_is_sent(world):
    sessions, _tracker, _path = world
    conversation, contact = ids("a")
    clock = [NOW]
    erasure = PrivacyErasure(sessions, clock=lambda: clock[0])
    report = erasure.erase(conversation, contact, defer_messaging=True)

    assert report.messaging_pending
    assert rows(sessions, TicketRow) == 1 and rows(sessions, SurveyRow) == 1
    for table in MESSAGING:
        assert rows(sessions, table) == 2, table.__tablename__  # the address the reply needs is there
    # The confirmation is still waiting to be sent: nothing more yet.
    with sessions.begin() as session:
        session.execute(sa.update(OutboundRow).where(OutboundRow.conversation_id == conversation)
                        .values(state="queued"))
    assert erasure.finish_pending(NOW + dt.timedelta(seconds=10)) == 0
    with sessions.begin() as session:
        session.execute(sa.update(OutboundRow).where(OutboundRow.conversation_id == conversation)
                        .values(state="sent"))
    # A turn still running for the conversation, or too soon after the request: not yet.
    assert erasure.finish_pending(NOW + dt.timedelta(seconds=10), busy=[conversation]) == 0
    assert erasure.finish_pending(NOW) == 0
    assert erasure.finish_pending(NOW + dt.timedelta(seconds=10)) == 1
    for table in MESSAGING:
        assert rows(sessions, table) == 1, table.__tablename__
    [proof] = erasure.erasures_of(contact)
    assert proof.pending_conversation_id is None and proof.completed_at is not None
    assert json.loads(proof.counts)["wa_contacts"] == 1 and json.loads(proof.counts)["inbox_tickets"] == 1
    assert erasure.finish_pending(NOW + dt.timedelta(seconds=20)) == 0  # done once


def test_the_tracker_store_deletes_the_conversation_when_the_erasure_is_confirmed(tmp_path, monkeypatch):
    from rasa.shared.core.domain import Domain
    from rasa.shared.core.events import ActionExecuted, BotUttered, SlotSet, UserUttered
    from rasa.shared.core.trackers import DialogueStateTracker

    from addons.encrypted_tracker_store import EncryptedSQLTrackerStore
    from clinic.at_rest import Keyring, new_key_entry

    monkeypatch.setenv("LEAN_TURNS", "1")
    domain = Domain.from_dict({"intents": ["delete_my_data", "affirm"], "slots": {
        "data_erasure": {"type": "categorical", "values": ["done", "failed"], "mappings": [{"type": "custom"}]}}})
    store = EncryptedSQLTrackerStore(domain, dialect="sqlite", db=str(tmp_path / "tracker.db"),
                                     keyring=Keyring.parse(new_key_entry("k1"), "test"))

    def turn(sender: str, *events) -> None:
        async def run():
            tracker = await store.retrieve(sender) or DialogueStateTracker(sender, domain.slots)
            for event in events:
                tracker.update(event)
            await store.save(tracker)
        asyncio.run(run())

    for sender in ("patient-a", "patient-b"):
        turn(sender, UserUttered(PATIENT_TEXT, intent={"name": "delete_my_data", "confidence": 1.0}),
             ActionExecuted("utter_ask_erasure"), BotUttered("Erase your data now?"), ActionExecuted("action_listen"))
    turn("patient-b", UserUttered("/deny"), ActionExecuted("utter_erasure_cancelled"))
    turn("patient-a", UserUttered("/affirm", intent={"name": "affirm", "confidence": 1.0}),
         ActionExecuted("action_erase_my_data"), SlotSet("data_erasure", "done"),
         ActionExecuted("utter_erasure_done"), BotUttered("Done"), ActionExecuted("action_listen"))

    assert asyncio.run(store.retrieve("patient-a")) is None  # a new conversation next time
    assert len(asyncio.run(store.retrieve("patient-b")).events) == 6
    with store.engine.connect() as connection:
        senders = {row[0] for row in connection.execute(sa.text("SELECT sender_id FROM events"))}
    assert senders == {"patient-b"}
