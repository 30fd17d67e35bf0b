"""Erasure on request (issue 18, item 3): everything this product holds about one contact,
deleted from every store it owns, with a proof of the erasure that holds no personal data.

Who asks: the patient in the chat ("delete my data", confirmed: actions/privacy.py), or
staff from the inbox for a request that came by phone or letter (supervisors and
administrators: inbox/app.py). Both call ``PrivacyErasure.erase``.

A contact has two pseudonymous ids (clinic/privacy.py): the conversation id (the tracker's
``sender_id``, an HMAC of the WhatsApp id made at the door) and the contact key (an HMAC of
channel + conversation id) that the clinic's tables use. What is erased, per store:

* Rasa's tracker store: every event of the conversation (``events`` rows with its
  sender_id). From the chat, Rasa itself still holds the conversation while the turn runs
  and would write it back: there the tracker store deletes the rows when it saves the turn
  in which ``action_erase_my_data`` set ``data_erasure`` to ``done``
  (addons/encrypted_tracker_store.py). From the inbox, ``TrackerEvents`` deletes them here.
* Staff inbox: tickets, their replies and notes, call-back tasks, handoff ratings; handoff
  requests; survey requests with their ratings and comments; knowledge-search outcomes.
* Portal: uploaded files (stored sealed in ``portal_uploads``; nothing on disk) and the
  upload links of the conversation.
* Media sent in the chat (``inbound_media`` rows and their sealed files in the media
  folder, clinic/messaging/media.py).
* Consent: the contact's preferences and their whole history; the proof of the erasure is
  kept in ``privacy_erasures`` (contact key, who asked, when, row counts; no content).
* Language memory, reminder jobs and recall dates for the contact, broadcast recipients.
* WhatsApp: the inbox (``wa_inbox``), outbound messages (``wa_outbound``), their delivery
  statuses (``wa_statuses``), quarantine items and the contact mapping (``wa_contacts``,
  the encrypted phone number). From the chat these go *after* the confirmation is sent
  (it needs the address): ``finish_pending`` runs on the outbox's sweep (gateway/outbox.py)
  once the conversation has nothing waiting or being sent. From the inbox, at once.
* The WhatsApp journal (whatsapp/journal.py): segments are deleted as soon as they are
  drained into ``wa_inbox`` (a flusher does it at once), so nothing is left there to erase;
  a record still undrained at the moment of the erasure reaches ``wa_inbox`` and is erased
  with the rest by the chat path's later step (the inbox path erases immediately: a message
  arriving in that second would start a new conversation).

From the inbox, a turn of the same patient running at that very moment could write its
events back (Rasa holds the conversation during a turn): staff erase a conversation that is
quiet (the request came by phone or letter), and running it again is harmless.

Kept, because the clinic must keep them (say so to the patient): appointments and their
history, and the patient record (``patients``: name and date of birth the appointments
belong to; its link to the WhatsApp contact is cut), notifications and records from the
clinic's systems. The audit log is append-only (hash-chained): it records the erasure with
counts only, and its earlier rows hold pseudonymous ids and actions, never text.

SQLite: ``secure_delete`` is on for every connection (clinic/db.py), and a checkpoint after
the erasure empties the write-ahead log, so deleted text is not left in the files.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import os
import secrets
from typing import Callable, Dict, Iterable, List, Optional, Sequence

from sqlalchemy import Column, DateTime, Index, Integer, String, delete, or_, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from clinic.clock import utcnow
from clinic.db import Base, checkpoint

logger = logging.getLogger(__name__)

PATIENT = "patient"  # ``requested_by`` of an erasure asked for in the chat
ACTION = "privacy_erasure"  # its audit-log action
# What stays, and why (the chat's reply and the inbox page say the same).
KEPT = ("appointments and their history", "the patient record the appointments belong to",
        "notifications and records from the clinic's systems", "the audit log (counts only)")
# Every store the erasure covers: the keys of ``ErasureReport.counts`` (tracker events only
# when a tracker is given). Access on request (clinic/privacy_access.py) shows the patient
# each of them, from this same list: tests/test_privacy_access.py fails when the erasure
# counts a store that is not here, or access does not say what it shows of one.
CLINIC_STORES = ("inbox_messages", "inbox_tasks", "handoff_ratings", "inbox_tickets", "handoff_requests",
                 "survey_requests", "knowledge_outcomes", "portal_uploads", "portal_upload_links", "inbound_media", "consent",
                 "consent_events", "contact_languages", "reminder_jobs", "recall_due", "broadcast_recipients",
                 "patient_links")
MESSAGING_STORES = ("wa_statuses", "wa_outbound", "wa_quarantine", "wa_inbox", "wa_contacts", "wa_identities",
                    "wa_calls")
TRACKER_STORE = "tracker_events"
STORES = (TRACKER_STORE,) + CLINIC_STORES + MESSAGING_STORES
# The chat path waits this long at least before erasing the WhatsApp records, so the turn's
# own rows (the patient's "yes", the confirmation) are written before it looks.
SETTLE = dt.timedelta(seconds=2)


class ErasureRow(Base):
    """The proof of an erasure: who asked, when, how many rows each store lost."""

    __tablename__ = "privacy_erasures"

    id = Column(Integer, primary_key=True)
    contact_key = Column(String(64), nullable=False)
    requested_by = Column(String(64), nullable=False)  # "patient" or the staff username
    requested_at = Column(DateTime(timezone=True), nullable=False)
    completed_at = Column(DateTime(timezone=True), nullable=True)
    # Set while the WhatsApp records wait for the chat's confirmation to go out.
    pending_conversation_id = Column(String(64), nullable=True)
    counts = Column(String(500), nullable=False)  # JSON: store -> rows deleted

    __table_args__ = (Index("ix_privacy_erasures_contact", "contact_key"),
                      Index("ix_privacy_erasures_pending", "pending_conversation_id"))


@dataclasses.dataclass(frozen=True)
class ErasureReport:
    erasure_id: int
    counts: Dict[str, int]
    # True: the WhatsApp records (contact mapping, inbox, outbound, statuses) are erased by
    # ``finish_pending`` once the confirmation is sent.
    messaging_pending: bool
    kept: Sequence[str] = KEPT

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def tracker_database_url(environ: Optional[dict] = None) -> str:
    """Rasa's tracker store database as endpoints.yml configures it: ``RASA_TRACKER_STORE_URL``
    when set, else the embedded SQLite file."""
    from clinic.db import VAR_DIR

    environ = os.environ if environ is None else environ
    return environ.get("RASA_TRACKER_STORE_URL") or f"sqlite:///{VAR_DIR / 'rasa_tracker.db'}"


class TrackerEvents:
    """Deletes a conversation's events from Rasa's SQL tracker store (table ``events``)."""

    def __init__(self, engine: Engine):
        self.engine = engine

    @classmethod
    def from_environment(cls, environ: Optional[dict] = None) -> "TrackerEvents":
        from clinic.db import make_engine

        return cls(make_engine(tracker_database_url(environ)))

    def erase(self, sender_id: str) -> int:
        from sqlalchemy import inspect, text

        if not inspect(self.engine).has_table("events"):
            return 0
        with self.engine.begin() as connection:
            deleted = connection.execute(text("DELETE FROM events WHERE sender_id = :sender"),
                                         {"sender": sender_id}).rowcount
        checkpoint(self.engine)
        return deleted or 0


def _count(session: Session, statement) -> int:
    return session.execute(statement).rowcount or 0


class PrivacyErasure:
    def __init__(self, sessions: sessionmaker, *, tracker: Optional[TrackerEvents] = None,
                 clock: Optional[Callable[[], dt.datetime]] = None):
        self.sessions = sessions
        self.engine: Engine = sessions.kw["bind"]
        self.tracker = tracker
        self.clock = clock or utcnow

    # ── the erasure ──────────────────────────────────────────────────────────────────────
    def erase(self, conversation_id: str, contact_key: str, *, requested_by: str = PATIENT,
              actor=None, client: Optional[str] = None, defer_messaging: bool = False) -> ErasureReport:
        """Erase the contact everywhere; ``defer_messaging``: leave the WhatsApp records (and
        the address the confirmation needs) to ``finish_pending``. Audited with counts only
        (``actor``: the staff member, else the bot)."""
        if not conversation_id or not contact_key:
            raise ValueError("conversation_id and contact_key are required")
        now = self.clock()
        counts: Dict[str, int] = {}
        with self._transaction() as session:
            counts.update(self._erase_clinic(session, conversation_id, contact_key))
            if not defer_messaging:
                counts.update(self._erase_messaging(session, conversation_id))
            row = ErasureRow(contact_key=contact_key, requested_by=requested_by[:64], requested_at=now,
                             completed_at=None if defer_messaging else now,
                             pending_conversation_id=conversation_id if defer_messaging else None,
                             counts=_counts_json(counts))
            session.add(row)
            session.flush()
            self._audit(session, actor, conversation_id, now, client,
                        f"erasure {row.id} requested_by={'patient' if requested_by == PATIENT else 'staff'} "
                        + _counts_json(counts))
            erasure_id = row.id
        if self.tracker is not None:
            counts["tracker_events"] = self.tracker.erase(conversation_id)
            with self.sessions.begin() as session:
                session.execute(update(ErasureRow).where(ErasureRow.id == erasure_id)
                                .values(counts=_counts_json(counts)))
        checkpoint(self.engine)
        logger.info("Erasure %s done (%s rows; WhatsApp records %s)", erasure_id, sum(counts.values()),
                    "pending" if defer_messaging else "erased")
        return ErasureReport(erasure_id, counts, defer_messaging)

    def finish_pending(self, now: Optional[dt.datetime] = None, busy: Iterable[str] = ()) -> int:
        """Erase the WhatsApp records of chat erasures whose confirmation has gone out (no
        inbound message being processed, no reply waiting or being sent). ``busy``:
        conversations a turn is running for. Returns how many erasures were completed."""
        from clinic.messaging.store import InboxRow, OutboundRow

        now = now or self.clock()
        busy = set(busy)
        done = 0
        with self.sessions() as session:
            pending = session.execute(select(ErasureRow.id, ErasureRow.pending_conversation_id,
                                             ErasureRow.requested_at)
                                      .where(ErasureRow.pending_conversation_id.is_not(None))).all()
        for erasure_id, conversation_id, requested_at in pending:
            if conversation_id in busy or _aware(requested_at) > now - SETTLE:
                continue
            with self.sessions() as session:
                waiting = session.execute(select(InboxRow.id).where(
                    InboxRow.conversation_id == conversation_id,
                    InboxRow.state.in_(("pending", "processing"))).limit(1)).first() or \
                    session.execute(select(OutboundRow.id).where(
                        OutboundRow.conversation_id == conversation_id,
                        OutboundRow.state.in_(("queued", "sending"))).limit(1)).first()
            if waiting:
                continue
            with self._transaction() as session:
                counts = self._erase_messaging(session, conversation_id)
                row = session.get(ErasureRow, erasure_id)
                merged = {**json.loads(row.counts or "{}"), **counts}
                row.counts, row.completed_at, row.pending_conversation_id = _counts_json(merged), now, None
                self._audit(session, None, conversation_id, now, None,
                            f"erasure {erasure_id} whatsapp records " + _counts_json(counts))
            done += 1
        if done:
            checkpoint(self.engine)
        return done

    def erasures_of(self, contact_key: str) -> List[ErasureRow]:
        with self.sessions() as session:
            return list(session.execute(select(ErasureRow).where(ErasureRow.contact_key == contact_key)
                                        .order_by(ErasureRow.id)).scalars())

    # ── per store ────────────────────────────────────────────────────────────────────────
    def _erase_clinic(self, session: Session, conversation_id: str, contact_key: str) -> Dict[str, int]:
        from clinic.broadcasts.tables import RecipientRow
        from clinic.consent import ConsentEventRow, ConsentRow
        from clinic.handoff.tables import HandoffRequest
        from clinic.inbox.tables import HandoffRatingRow, MessageRow, TaskRow, TicketRow
        from clinic.knowledge.tables import KnowledgeOutcomeRow
        from clinic.language.tables import ContactLanguage
        from clinic.messaging.media import (
            InboundMediaRow,
            MediaStore,
            delete_media_rows,
            media_directory,
        )
        from clinic.portal.tables import PortalTokenRow, PortalUploadRow
        from clinic.reminders.tables import RecallDueRow, ReminderJobRow
        from clinic.scheduling.tables import PatientRow
        from clinic.surveys.tables import SurveyRow

        counts: Dict[str, int] = {}
        # Some stores key the contact by its conversation id (the channel's language memory).
        keys = (contact_key, conversation_id)
        tickets = select(TicketRow.id).where(or_(TicketRow.conversation_id == conversation_id,
                                                 TicketRow.contact_key.in_(keys)))
        ticket_ids = list(session.execute(tickets).scalars())
        counts["inbox_messages"] = _count(session, delete(MessageRow).where(MessageRow.ticket_id.in_(ticket_ids)))
        counts["inbox_tasks"] = _count(session, delete(TaskRow).where(
            or_(TaskRow.conversation_id == conversation_id, TaskRow.ticket_id.in_(ticket_ids))))
        counts["handoff_ratings"] = _count(session, delete(HandoffRatingRow).where(
            or_(HandoffRatingRow.conversation_id == conversation_id, HandoffRatingRow.ticket_id.in_(ticket_ids))))
        counts["inbox_tickets"] = _count(session, delete(TicketRow).where(TicketRow.id.in_(ticket_ids)))
        counts["handoff_requests"] = _count(session, delete(HandoffRequest).where(
            HandoffRequest.contact_key.in_(keys)))
        counts["survey_requests"] = _count(session, delete(SurveyRow).where(
            or_(SurveyRow.contact_key.in_(keys), SurveyRow.conversation_id == conversation_id)))
        counts["knowledge_outcomes"] = _count(session, delete(KnowledgeOutcomeRow).where(
            KnowledgeOutcomeRow.contact_key.in_(keys)))
        counts["portal_uploads"] = _count(session, delete(PortalUploadRow).where(
            PortalUploadRow.conversation_id == conversation_id))
        counts["portal_upload_links"] = _count(session, delete(PortalTokenRow).where(
            PortalTokenRow.conversation_id == conversation_id))
        # Photos, voice notes and documents sent in the chat (clinic/messaging/media.py): the
        # rows, and the sealed files in the media folder (deleted now: a rolled-back erasure
        # leaves rows whose media reads as missing, never media that should be gone).
        media_ids = delete_media_rows(session, InboundMediaRow.conversation_id == conversation_id)
        counts["inbound_media"] = len(media_ids)
        MediaStore(self.sessions, media_directory(str(self.engine.url))).delete_files(media_ids)
        counts["consent"] = _count(session, delete(ConsentRow).where(ConsentRow.contact_key.in_(keys)))
        counts["consent_events"] = _count(session, delete(ConsentEventRow).where(
            ConsentEventRow.contact_key.in_(keys)))
        counts["contact_languages"] = _count(session, delete(ContactLanguage).where(
            ContactLanguage.contact_key.in_(keys)))
        counts["reminder_jobs"] = _count(session, delete(ReminderJobRow).where(
            or_(ReminderJobRow.contact_key.in_(keys), ReminderJobRow.conversation_id == conversation_id)))
        counts["recall_due"] = _count(session, delete(RecallDueRow).where(RecallDueRow.contact_key.in_(keys)))
        counts["broadcast_recipients"] = _count(session, delete(RecipientRow).where(
            or_(RecipientRow.contact_key.in_(keys), RecipientRow.conversation_id == conversation_id)))
        # The clinic keeps the patient record its appointments belong to; only its link to
        # this WhatsApp contact goes (no reminders, no "when is my appointment?" from it).
        counts["patient_links"] = _count(session, update(PatientRow).where(
            PatientRow.contact_key == contact_key).values(
            contact_key="erased_" + secrets.token_hex(16), conversation_id="erased"))
        return counts

    @staticmethod
    def _erase_messaging(session: Session, conversation_id: str) -> Dict[str, int]:
        from clinic.messaging import identities
        from clinic.messaging.calls import CallActionRow, CallPermissionRow, CallRow
        from clinic.messaging.quarantine import QuarantineRow
        from clinic.messaging.store import ContactRow, InboxRow, OutboundRow, StatusRow

        outbound = session.execute(select(OutboundRow.id, OutboundRow.wamid).where(
            OutboundRow.conversation_id == conversation_id)).all()
        wamids = [wamid for _id, wamid in outbound if wamid]
        callbacks = [str(row_id) for row_id, _wamid in outbound]
        inbox_ids = list(session.execute(select(InboxRow.id).where(
            InboxRow.conversation_id == conversation_id)).scalars())
        counts = {"wa_statuses": 0}
        for start in range(0, max(len(wamids), len(callbacks)), 500):
            counts["wa_statuses"] += _count(session, delete(StatusRow).where(or_(
                StatusRow.wamid.in_(wamids[start:start + 500]),
                StatusRow.callback.in_(callbacks[start:start + 500]))))
        counts["wa_outbound"] = _count(session, delete(OutboundRow).where(
            OutboundRow.conversation_id == conversation_id))
        counts["wa_quarantine"] = _count(session, delete(QuarantineRow).where(or_(
            QuarantineRow.conversation_id == conversation_id, QuarantineRow.inbox_id.in_(inbox_ids))))
        counts["wa_inbox"] = _count(session, delete(InboxRow).where(InboxRow.conversation_id == conversation_id))
        counts["wa_contacts"] = _count(session, delete(ContactRow).where(
            ContactRow.conversation_id == conversation_id))
        # The pseudonyms of the phone and the business-scoped ids, and the username (issue 19).
        counts["wa_identities"] = identities.forget(session, conversation_id)
        # Voice calls (clinic/messaging/calls.py): their records and any action still queued.
        calls = list(session.execute(select(CallRow.id).where(CallRow.conversation_id == conversation_id)).scalars())
        session.execute(delete(CallActionRow).where(CallActionRow.call_row_id.in_(calls)))
        counts["wa_calls"] = _count(session, delete(CallRow).where(CallRow.conversation_id == conversation_id)) + \
            _count(session, delete(CallPermissionRow).where(CallPermissionRow.conversation_id == conversation_id))
        return counts

    # ── helpers ──────────────────────────────────────────────────────────────────────────
    def _transaction(self):
        from clinic.inbox.audit import transaction

        return transaction(self.sessions)

    @staticmethod
    def _audit(session: Session, actor, conversation_id: str, at: dt.datetime, client: Optional[str],
               detail: str) -> None:
        from clinic.inbox.audit import append
        from clinic.inbox.model import BOT

        append(session, actor or BOT, ACTION, at=at, conversation_id=conversation_id, detail=detail,
               client=client)


def _counts_json(counts: Dict[str, int]) -> str:
    # Only stores that lost rows: the column is 500 characters.
    return json.dumps({name: value for name, value in counts.items() if value}, sort_keys=True,
                      separators=(",", ":"))


def _aware(moment: dt.datetime) -> dt.datetime:
    return moment.replace(tzinfo=dt.timezone.utc) if moment.tzinfo is None else moment
