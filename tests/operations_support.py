"""A clinic database filled through the project's own code (migrations, the scheduling
service, the WhatsApp inbox store, the audit log) and Rasa's tracker store through the
encrypted store, for the backup and migration tests."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
from pathlib import Path

from clinic.at_rest import Keyring
from clinic.db import make_engine, make_session_factory
from clinic.inbox import audit
from clinic.inbox.audit import AuditLog
from clinic.inbox.model import Actor
from clinic.messaging.store import WhatsAppStore
from clinic.messaging.turn import InboundTurn
from clinic.scheduling.model import SlotQuery
from clinic.scheduling.sql_backend import SqlSchedulingBackend
from tests.scheduling_support import NOW, Clock, demo_backend

CONVERSATION = "c" * 64
CONTACT = "k" * 64
MESSAGE = "synthetic message: can I move my appointment?"
SYSTEM = Actor(None, "system", None)


@dataclasses.dataclass(frozen=True)
class Written:
    appointment_id: str
    start: dt.datetime
    audit_rows: int


def fill_clinic(url: str) -> Written:
    """Migrations, the demo clinic, one patient booked, one inbound WhatsApp message, two
    audit rows."""
    with demo_backend(url) as (backend, sessions, _engine):
        patient = backend.register_patient(CONTACT, "Synthetic Patient", dt.date(1980, 1, 2),
                                           CONVERSATION, "whatsapp")
        [slot] = backend.search_slots(SlotQuery(service_id="gp_consultation", earliest=NOW + dt.timedelta(days=1),
                                                latest=NOW + dt.timedelta(days=8), limit=1))
        appointment = backend.book(slot.id, patient.id, "gp_consultation")
        WhatsAppStore(sessions).accept(
            [InboundTurn("wamid.backup1", CONVERSATION, "text", MESSAGE, NOW)], {})
        for action in ("backup_test", "backup_test_2"):
            with sessions.begin() as session:
                audit.append(session, SYSTEM, action, at=NOW, conversation_id=CONVERSATION)
    return Written(appointment.id, appointment.start, 2)


def append_audit(sessions, n: int) -> None:
    with sessions.begin() as session:
        audit.append(session, SYSTEM, f"writer_{n}", at=NOW + dt.timedelta(seconds=n))


def read_clinic(url: str, written: Written) -> int:
    """Read what ``fill_clinic`` wrote back through the same code; returns the number of
    audit rows (their hash chain checked)."""
    engine = make_engine(url)
    try:
        sessions = make_session_factory(engine)
        backend = SqlSchedulingBackend(sessions, clock=Clock())
        appointment = backend.appointment(written.appointment_id, CONTACT)
        assert appointment.service.id == "gp_consultation" and appointment.start == written.start
        assert backend.find_patient(CONTACT).name == "Synthetic Patient"
        store = WhatsAppStore(sessions)
        assert store.pending_conversations() == [CONVERSATION]
        pending = store.next_pending(CONVERSATION, owner="test")
        assert pending.turn.text == MESSAGE
        assert store.requeue(pending.id, owner="test")  # left as found, for the next reader
        check = AuditLog(sessions).verify()
        assert check.ok, check
        return check.rows
    finally:
        engine.dispose()


def tracker_store(keyring: Keyring, *, db: Path = None, url: str = None):
    from rasa.shared.core.domain import Domain

    from addons.encrypted_tracker_store import EncryptedSQLTrackerStore

    domain = Domain.from_dict({"intents": ["greet"]})
    if url:
        return EncryptedSQLTrackerStore(domain, host=url, keyring=keyring)
    return EncryptedSQLTrackerStore(domain, dialect="sqlite", db=str(db), keyring=keyring)


def tracker_turn(store, sender: str, text: str) -> None:
    from rasa.shared.core.events import ActionExecuted, UserUttered
    from rasa.shared.core.trackers import DialogueStateTracker

    async def run():
        tracker = await store.retrieve(sender) or DialogueStateTracker(sender, store.domain.slots)
        tracker.update(UserUttered(text, intent={"name": "greet", "confidence": 1.0}))
        tracker.update(ActionExecuted("action_listen"))
        await store.save(tracker)
    asyncio.run(run())


def tracker_texts(store, sender: str) -> list:
    tracker = asyncio.run(store.retrieve(sender))
    return [event.text for event in tracker.events if getattr(event, "text", None)]
