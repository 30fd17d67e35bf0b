"""A clinic database holding two WhatsApp contacts with something in every store the erasure
covers (real ciphers: Fernet for staff texts and comments, AES-GCM for uploads, the tracker's
keyring for the conversation), for tests/test_privacy_access.py and the portal's tests."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import os
from pathlib import Path
from typing import Dict, Tuple

from cryptography.fernet import Fernet

from clinic.at_rest import Keyring, Sealer, new_key_entry
from clinic.broadcasts.tables import CampaignRow, RecipientRow
from clinic.consent import ConsentStore
from clinic.db import create_schema, make_engine, make_session_factory
from clinic.handoff.tables import HandoffRequest
from clinic.inbox.tables import HandoffRatingRow, MessageRow, StaffRow, TaskRow, TicketRow
from clinic.knowledge.tables import KnowledgeOutcomeRow
from clinic.language.tables import ContactLanguage
from clinic.messaging.calls import CallRow
from clinic.messaging.identities import IdentityRow
from clinic.messaging.media import InboundMediaRow
from clinic.messaging.quarantine import QuarantineRow
from clinic.messaging.store import ContactRow, InboxRow, OutboundRow, StatusRow
from clinic.portal import uploads as up
from clinic.portal.tokens import PortalTokens
from clinic.privacy import ContactCipher
from clinic.privacy_access import PrivacyAccess, TrackerTranscript
from clinic.reminders.tables import RecallDueRow, ReminderJobRow
from clinic.scheduling.demo_data import install_demo_clinic
from clinic.scheduling.model import SlotQuery
from clinic.scheduling.sql_backend import SqlSchedulingBackend
from clinic.surveys.tables import SurveyRow
from tests.scheduling_support import BERLIN, NOW, Clock

TOKEN_KEY = b"access-test-token-key-0123456789"
BIRTH_DATES = {"a": dt.date(1980, 1, 2), "b": dt.date(1975, 6, 30)}


def ids(name: str) -> Tuple[str, str]:
    """(conversation id, contact key) of contact ``name``."""
    return (name * 64)[:64], (name.upper() * 64)[:64]


def secrets_of(name: str) -> Dict[str, str]:
    """What only contact ``name`` said or was told: must appear in its export only."""
    return {"chat": f"PELICAN-{name} my knee hurts after the fall", "bot": f"Sorry to hear that, {name}-BOT",
            "reply": f"Staff reply HERON-{name}", "note": f"Call-back note IBIS-{name}",
            "comment": f"Survey comment EGRET-{name}", "file": f"referral-{name}.pdf",
            "name": f"Olga {name.upper()}"}


PDF = b"%PDF-1.4\n1 0 obj<</Type/Catalog>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n"


@dataclasses.dataclass
class World:
    sessions: object
    backend: SqlSchedulingBackend
    tokens: PortalTokens
    access: PrivacyAccess
    cipher: ContactCipher
    clock: Clock
    tracker_engine: object
    patients: Dict[str, str]  # name -> patient id


def tracker_store(path: Path, keyring: Keyring):
    from rasa.shared.core.domain import Domain

    from addons.encrypted_tracker_store import EncryptedSQLTrackerStore

    domain = Domain.from_dict({"intents": ["faq"]})
    return domain, EncryptedSQLTrackerStore(domain, dialect="sqlite", db=str(path), keyring=keyring)


def write_conversation(store_and_domain, sender: str, patient_text: str, bot_text: str) -> None:
    from rasa.shared.core.events import ActionExecuted, BotUttered, UserUttered
    from rasa.shared.core.trackers import DialogueStateTracker

    domain, store = store_and_domain

    async def run() -> None:
        tracker = await store.retrieve(sender) or DialogueStateTracker(sender, domain.slots)
        for event in (UserUttered(patient_text, intent={"name": "faq", "confidence": 1.0}),
                      ActionExecuted("utter_faq"), BotUttered(bot_text), ActionExecuted("action_listen")):
            tracker.update(event)
        await store.save(tracker)

    asyncio.run(run())


def build_world(tmp_path: Path) -> World:
    engine = make_engine(f"sqlite:///{tmp_path / 'clinic.db'}")
    create_schema(engine)
    sessions = make_session_factory(engine)
    install_demo_clinic(sessions, timezone=BERLIN, weeks=2, now=NOW)
    clock = Clock()
    backend = SqlSchedulingBackend(sessions, clock=clock)
    cipher = ContactCipher(Fernet.generate_key())
    documents = up.DocumentCipher(os.urandom(32))
    tokens = PortalTokens(sessions, TOKEN_KEY, dt.timedelta(hours=24), clock=clock)
    uploads = up.Uploads(sessions, documents, tokens, clock=clock)
    keyring = Keyring.parse(new_key_entry("k1"), "test")
    store = tracker_store(tmp_path / "tracker.db", keyring)
    sealer = Sealer(Keyring.parse(new_key_entry("c1"), "test clinic keyring"))  # staff texts
    consent = ConsentStore(sessions)
    service = backend.services()[0]
    slots = backend.search_slots(SlotQuery(service.id, NOW, NOW + dt.timedelta(days=10), limit=4))
    patients = {}
    with sessions.begin() as session:
        staff = StaffRow(username="sara", display_name="Sara", password_hash="x", totp_secret_encrypted="x",
                         role="supervisor", created_at=NOW)
        session.add(staff)
        session.flush()
        staff_id = staff.id
        campaign = CampaignRow(name="tips", template="health_tip", language="en", params_json="{}",
                               quick_replies_json="[]", topic="health_tips", rate=1.0, status="done",
                               created_at=NOW)
        session.add(campaign)
        session.flush()
        campaign_id = campaign.id
    for serial, name in enumerate("ab", start=1):
        conversation, contact = ids(name)
        said = secrets_of(name)
        patient = backend.register_patient(contact, said["name"], BIRTH_DATES[name], conversation, "whatsapp")
        patients[name] = patient.id
        appointment = backend.book(slots[serial].id, patient.id, service.id)
        consent.record(contact, ("reminders", "health_tips"), True, "utter_ask_opt_in@v1", "whatsapp",
                       now=NOW, conversation_id=conversation)
        consent.record(contact, "health_tips", False, "utter_tips_opt_out_recorded@v1", "whatsapp",
                       now=NOW + dt.timedelta(days=1))
        upload_url, _issued = up.issue_upload_link(tokens, "https://portal.example/portal", conversation,
                                                   "referral_letter", patient_id=patient.id)
        uploads.receive(upload_url.rsplit("/", 1)[1], said["file"], PDF)
        write_conversation(store, conversation, said["chat"], said["bot"])
        with sessions.begin() as session:
            session.add_all([
                InboxRow(wamid=f"wamid.in.{name}", conversation_id=conversation, kind="text", text=None,
                         state="done", attempts=1, received_at=NOW),
                ContactRow(conversation_id=conversation, address_encrypted=f"gAAAA-{name}", created_at=NOW),
                IdentityRow(identity_key=f"i{name}" * 32, kind="bsuid", conversation_id=conversation, updated_at=NOW),
                # A voice call with the clinic (clinic/messaging/calls.py): times and outcome only.
                CallRow(call_id=f"wacid.{name}", conversation_id=conversation, direction="user", state="ended",
                        outcome="completed", created_at=NOW, updated_at=NOW, duration_seconds=42),
                OutboundRow(id=serial, conversation_id=conversation, wamid=f"wamid.out.{name}", kind="text",
                            payload_json='{"type": "text"}', state="sent", created_at=NOW, updated_at=NOW),
                StatusRow(wamid=f"wamid.out.{name}", status="read", callback=str(serial), updated_at=NOW),
                QuarantineRow(source="inbox", reason="attempts_exhausted", conversation_id=conversation,
                              state="open", created_at=NOW),
                # A photo the gateway could not keep (too large): a row, no file.
                InboundMediaRow(id=f"med_{name}", conversation_id=conversation, wamid=f"wamid.img.{name}",
                                kind="image", mime_type="image/jpeg", state="too_large", size_bytes=9_000_000,
                                received_at=NOW, created_at=NOW),
                HandoffRequest(contact_key=contact, team="nurse", reason="patient_request", priority="normal",
                               created_at=NOW),
                SurveyRow(id=f"svy_{name}", kind="visit", subject_id=f"apt_{name}", contact_key=contact,
                          conversation_id=conversation, channel="whatsapp", status="commented", due_at=NOW,
                          rating=4, comment_encrypted=cipher.encrypt(said["comment"]), created_at=NOW,
                          sent_at=NOW, rated_at=NOW, commented_at=NOW, updated_at=NOW),
                KnowledgeOutcomeRow(at=NOW, language="en", outcome="answered", contact_key=contact),
                ContactLanguage(contact_key=conversation, language="ru" if name == "a" else "zh", chosen=True,
                                updated_at=NOW),
                RecallDueRow(id=f"rcl_{name}", patient_id=patient.id, contact_key=contact, topic="vaccination",
                             due_date=NOW.date(), status="open", created_at=NOW, updated_at=NOW),
                RecipientRow(campaign_id=campaign_id, contact_key=contact, conversation_id=conversation,
                             channel="whatsapp", status="sent", updated_at=NOW, sent_at=NOW),
            ])
            session.flush()
            session.add(ReminderJobRow(id=f"rem_{name}", kind="day_before", appointment_id=appointment.id,
                                       patient_id=patient.id, contact_key=contact, conversation_id=conversation,
                                       channel="whatsapp", due_at=NOW, available_at=NOW, expires_at=NOW,
                                       created_at=NOW, updated_at=NOW))
            ticket = TicketRow(conversation_id=conversation, contact_key=contact, team="nurse", priority="normal",
                               state="resolved", reason="patient_request", created_at=NOW, opened_at=NOW,
                               resolved_at=NOW, version=1)
            session.add(ticket)
            session.flush()
            session.add_all([
                # The reply as the inbox seals it now (the clinic's keyring); the note as
                # written before the keyring (Fernet): access reads both.
                MessageRow(ticket_id=ticket.id, kind="reply", author_id=staff_id,
                           text_encrypted=sealer.seal(said["reply"]), created_at=NOW, delivery="sent"),
                TaskRow(conversation_id=conversation, ticket_id=ticket.id, team="nurse",
                        note_encrypted=cipher.encrypt(said["note"]), state="open", created_by="bot",
                        created_at=NOW),
                HandoffRatingRow(ticket_id=ticket.id, conversation_id=conversation, team="nurse", rating=5,
                                 created_at=NOW),
            ])
    tracker_engine = store[1].engine
    access = PrivacyAccess(sessions, cipher=cipher, documents=documents, sealer=sealer,
                           tracker=TrackerTranscript(tracker_engine, Sealer(keyring)), clock=clock)
    return World(sessions, backend, tokens, access, cipher, clock, tracker_engine, patients)
