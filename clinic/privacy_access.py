"""Access on request (issue 18, item 5): what this product holds about one contact, for the
patient to see in the portal and download as JSON.

Who asks: the patient in the chat ("send me my data", "what data do you hold about me":
actions/privacy.py). The answer is never the data itself: it is a single-use, expiring
portal link (:func:`issue_access_link`: the results links' token machinery,
clinic/portal/tokens.py, purpose ``access``, the same lifetime), bound to the patient the
contact is registered as and to the conversation. The portal asks for the same second
factor as for results (the date of birth), then uses the link up and shows the page
(clinic_api/routes/portal.py); the page offers the same data as a JSON file through a
second single-use token (purpose ``access_file``, :func:`issue_download`) minted only
after the second factor, valid for minutes.

What is collected (:meth:`PrivacyAccess.collect`): every store the erasure covers, from the
same list (``clinic.privacy_erasure.STORES``; ``SHOWN_IN`` says where each appears, and
tests/test_privacy_access.py fails when the two drift apart), plus what the clinic keeps and
the patient may see: the patient record and the appointments it holds.

* the conversation (Rasa's tracker store: the ``events`` rows of the conversation, opened
  with the tracker's keyring, clinic/at_rest.py; patient, assistant and staff messages as
  the inbox shows them, clinic/inbox/rasa_http.parse_events);
* appointments (booked in the chat or by the clinic) with service, practitioner, place;
* messaging preferences and their whole history (consent), the remembered language;
* inbox tickets with the staff's replies and notes (decrypted) and the patient's rating;
  call-back requests; handoff requests;
* survey answers and comments (decrypted); uploaded documents (name, kind, type, size,
  time: not the content); reminder jobs, recall dates, broadcast recipients;
* what holds no content of its own is counted: WhatsApp messages in and out, delivery
  statuses, quarantine items, upload links, knowledge-search outcomes, and whether the
  WhatsApp number is held (encrypted: it is not shown).

Auditing: every view and download appends an audit row (action ``privacy_access``, actor
``patient``) whose detail holds the section counts, never content; issuing a link is in the
portal's access log (``access_link_issued``). Nothing here logs a text, a name or a number.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
from typing import Any, Callable, Dict, List, Optional, Tuple

from sqlalchemy import func, inspect, or_, select, text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import sessionmaker

from clinic.at_rest import Sealer, clinic_sealer, load_keyring
from clinic.clock import utcnow
from clinic.inbox.model import Actor, aware
from clinic.inbox.service import open_staff_text
from clinic.privacy import ContactCipher
from clinic.privacy_erasure import tracker_database_url

logger = logging.getLogger(__name__)

ACTION = "privacy_access"  # its audit-log action
PATIENT = Actor(None, "patient", None)
DOCUMENT = "my_data"  # the document id of an access link
VIEWED, DOWNLOADED = "viewed", "downloaded"
# The download token: minted after the second factor, for the page just shown.
DOWNLOAD_LIFETIME = dt.timedelta(minutes=15)

# Each store the erasure covers (clinic/privacy_erasure.STORES) → the export's section that
# shows it. Counted stores hold no content of their own (ids, states, times).
SHOWN_IN: Dict[str, str] = {
    "tracker_events": "conversation",
    "inbox_tickets": "staff_conversations",
    "inbox_messages": "staff_conversations",
    "handoff_ratings": "staff_conversations",
    "inbox_tasks": "callback_requests",
    "handoff_requests": "handoff_requests",
    "survey_requests": "surveys",
    "portal_uploads": "uploads",
    "inbound_media": "media_sent",
    "consent": "messaging_preferences",
    "consent_events": "messaging_preferences",
    "contact_languages": "language",
    "reminder_jobs": "reminders",
    "recall_due": "recalls",
    "broadcast_recipients": "broadcasts",
    "patient_links": "patient",
    "portal_upload_links": "records_counted",
    "knowledge_outcomes": "records_counted",
    "wa_inbox": "records_counted",
    "wa_outbound": "records_counted",
    "wa_statuses": "records_counted",
    "wa_quarantine": "records_counted",
    "wa_contacts": "records_counted",
    "wa_identities": "records_counted",
    "wa_calls": "records_counted",
}
# The page's sections, in order (the portal's texts name each: access.section.<name>).
SECTIONS = ("patient", "appointments", "conversation", "messaging_preferences", "language",
            "staff_conversations", "callback_requests", "handoff_requests", "surveys", "uploads",
            "media_sent", "reminders", "recalls", "broadcasts", "records_counted")


class TrackerTranscript:
    """Reads one conversation from Rasa's SQL tracker store (table ``events``, ``data``
    sealed with the tracker's keyring): the messages, as the inbox shows them."""

    def __init__(self, engine: Engine, sealer: Sealer):
        self.engine = engine
        self.sealer = sealer

    @classmethod
    def from_environment(cls, environ: Optional[dict] = None) -> "TrackerTranscript":
        from clinic.db import make_engine

        environ = os.environ if environ is None else environ
        return cls(make_engine(tracker_database_url(environ)), Sealer(load_keyring(environ)))

    def messages(self, sender_id: str) -> List[Dict[str, Any]]:
        from clinic.inbox.rasa_http import parse_events

        if not inspect(self.engine).has_table("events"):
            return []
        with self.engine.connect() as connection:
            rows = connection.execute(text("SELECT data FROM events WHERE sender_id = :sender ORDER BY id"),
                                      {"sender": sender_id}).scalars().all()
        events = [json.loads(self.sealer.open(row)) for row in rows if row]
        return [{"at": _iso(message.at), "from": message.sender, "text": message.text}
                for message in parse_events(events)]


class PrivacyAccess:
    def __init__(self, sessions: sessionmaker, *, cipher: ContactCipher, documents: Any,
                 tracker: Optional[TrackerTranscript] = None,
                 clock: Optional[Callable[[], dt.datetime]] = None, sealer: Optional[Sealer] = None):
        """``cipher``: the clinic's ContactCipher (survey comments; staff messages and notes
        written before the keyring); ``sealer``: the clinic's keyring (staff messages and notes);
        ``documents``: the uploads' DocumentCipher (file names); ``tracker``: the
        conversation (None: the export says it was not available)."""
        self.sessions = sessions
        self.cipher = cipher
        self.sealer = sealer or clinic_sealer()
        self.documents = documents
        self.tracker = tracker
        self.clock = clock or utcnow

    @classmethod
    def from_environment(cls, sessions: sessionmaker, environ: Optional[dict] = None) -> "PrivacyAccess":
        from clinic.portal.uploads import DocumentCipher

        return cls(sessions, cipher=ContactCipher.from_environment(environ),
                   sealer=clinic_sealer(environ), documents=DocumentCipher.from_environment(environ),
                   tracker=TrackerTranscript.from_environment(environ))

    # ── the export ───────────────────────────────────────────────────────────────────────
    def collect_for_patient(self, patient_id: str, conversation_id: str) -> Dict[str, Any]:
        """The export for the patient an access link is bound to."""
        from clinic.scheduling.tables import PatientRow

        with self.sessions() as session:
            patient = session.get(PatientRow, patient_id)
            if patient is None:
                raise LookupError("no such patient")
            contact_key = patient.contact_key
        return self.collect(conversation_id, contact_key)

    def collect(self, conversation_id: str, contact_key: str) -> Dict[str, Any]:
        """Everything held about the contact, JSON-ready (sections: ``SECTIONS``)."""
        if not conversation_id or not contact_key:
            raise ValueError("conversation_id and contact_key are required")
        keys = (contact_key, conversation_id)
        export: Dict[str, Any] = {"generated_at": _iso(self.clock())}
        export["patient"], export["appointments"] = self._patient(contact_key)
        export["conversation"] = (self.tracker.messages(conversation_id) if self.tracker is not None else [])
        export["messaging_preferences"] = self._consent(keys)
        export["language"] = self._language(keys)
        export["staff_conversations"], export["callback_requests"] = self._inbox(conversation_id, keys)
        export["handoff_requests"] = self._handoffs(keys)
        export["surveys"] = self._surveys(conversation_id, keys)
        export["uploads"] = self._uploads(conversation_id)
        export["media_sent"] = self._media(conversation_id)
        export["reminders"], export["recalls"], export["broadcasts"] = self._scheduled(conversation_id, keys)
        export["records_counted"] = self._counted(conversation_id, keys)
        return export

    def _patient(self, contact_key: str) -> Tuple[Optional[Dict[str, Any]], List[Dict[str, Any]]]:
        from clinic.scheduling.tables import (
            AppointmentHistoryRow,
            AppointmentRow,
            LocationRow,
            PatientRow,
            PractitionerRow,
            ServiceRow,
        )

        with self.sessions() as session:
            patient = session.execute(select(PatientRow).where(PatientRow.contact_key == contact_key)).scalars().first()
            if patient is None:
                return None, []
            rows = session.execute(
                select(AppointmentRow, ServiceRow.name, PractitionerRow.name, LocationRow.name)
                .join(ServiceRow, ServiceRow.id == AppointmentRow.service_id)
                .join(PractitionerRow, PractitionerRow.id == AppointmentRow.practitioner_id)
                .join(LocationRow, LocationRow.id == AppointmentRow.location_id)
                .where(AppointmentRow.patient_id == patient.id).order_by(AppointmentRow.start)).all()
            appointments = []
            for appointment, service, practitioner, location in rows:
                history = session.execute(select(AppointmentHistoryRow).where(
                    AppointmentHistoryRow.appointment_id == appointment.id).order_by(AppointmentHistoryRow.id)).scalars()
                appointments.append({
                    "id": appointment.id, "service": service, "practitioner": practitioner, "location": location,
                    "start": _iso(appointment.start), "end": _iso(appointment.end), "status": appointment.status,
                    "booked_at": _iso(appointment.created),
                    "history": [{"at": _iso(h.at), "by": h.actor.split(":")[0], "from_status": h.from_status,
                                 "to_status": h.to_status} for h in history]})
            return ({"name": patient.name, "birth_date": patient.birth_date.isoformat(),
                     "registered_at": _iso(patient.created_at)}, appointments)

    def _consent(self, keys: Tuple[str, str]) -> Dict[str, Any]:
        from clinic.consent import ConsentEventRow, ConsentRow

        with self.sessions() as session:
            current = session.execute(select(ConsentRow).where(ConsentRow.contact_key.in_(keys))).scalars().first()
            events = session.execute(select(ConsentEventRow).where(ConsentEventRow.contact_key.in_(keys))
                                     .order_by(ConsentEventRow.at, ConsentEventRow.id)).scalars().all()
        return {
            "current": None if current is None else {
                "reminders": bool(current.reminders), "reminders_changed_at": _iso(current.reminders_changed_at),
                "health_tips": bool(current.health_tips),
                "health_tips_changed_at": _iso(current.health_tips_changed_at)},
            "history": [{"at": _iso(e.at), "topic": e.topic, "granted": bool(e.granted), "wording": e.wording,
                         "channel": e.channel} for e in events]}

    def _language(self, keys: Tuple[str, str]) -> List[Dict[str, Any]]:
        from clinic.language.tables import ContactLanguage

        with self.sessions() as session:
            rows = session.execute(select(ContactLanguage).where(ContactLanguage.contact_key.in_(keys))).scalars()
            return [{"language": r.language, "chosen": bool(r.chosen), "updated_at": _iso(r.updated_at)}
                    for r in rows]

    def _inbox(self, conversation_id: str, keys: Tuple[str, str]) -> Tuple[List[Dict[str, Any]], List[Dict[str, Any]]]:
        from clinic.inbox.tables import HandoffRatingRow, MessageRow, TaskRow, TicketRow

        with self.sessions() as session:
            tickets = session.execute(select(TicketRow).where(or_(
                TicketRow.conversation_id == conversation_id, TicketRow.contact_key.in_(keys)))
                .order_by(TicketRow.id)).scalars().all()
            ticket_ids = [t.id for t in tickets]
            messages = session.execute(select(MessageRow).where(MessageRow.ticket_id.in_(ticket_ids))
                                       .order_by(MessageRow.id)).scalars().all()
            ratings = {r.ticket_id: r.rating for r in session.execute(select(HandoffRatingRow).where(or_(
                HandoffRatingRow.conversation_id == conversation_id,
                HandoffRatingRow.ticket_id.in_(ticket_ids)))).scalars()}
            tasks = session.execute(select(TaskRow).where(or_(
                TaskRow.conversation_id == conversation_id, TaskRow.ticket_id.in_(ticket_ids)))
                .order_by(TaskRow.id)).scalars().all()
        conversations = [{
            "ticket": t.id, "team": t.team, "state": t.state, "reason": t.reason, "opened_at": _iso(t.created_at),
            "resolved_at": _iso(t.resolved_at), "your_rating": ratings.get(t.id),
            "messages": [{"at": _iso(m.created_at), "kind": m.kind, "text": open_staff_text(m.text_encrypted, self.cipher, self.sealer)}
                         for m in messages if m.ticket_id == t.id]} for t in tickets]
        callbacks = [{"team": task.team, "state": task.state, "due_at": _iso(task.due_at),
                      "requested_at": _iso(task.created_at), "done_at": _iso(task.done_at),
                      "note": open_staff_text(task.note_encrypted, self.cipher, self.sealer)
                      if task.note_encrypted else None}
                     for task in tasks]
        return conversations, callbacks

    def _handoffs(self, keys: Tuple[str, str]) -> List[Dict[str, Any]]:
        from clinic.handoff.tables import HandoffRequest

        with self.sessions() as session:
            rows = session.execute(select(HandoffRequest).where(HandoffRequest.contact_key.in_(keys))
                                   .order_by(HandoffRequest.id)).scalars()
            return [{"at": _iso(r.created_at), "team": r.team, "reason": r.reason, "priority": r.priority,
                     "status": r.status} for r in rows]

    def _surveys(self, conversation_id: str, keys: Tuple[str, str]) -> List[Dict[str, Any]]:
        from clinic.surveys.store import SurveyStore
        from clinic.surveys.tables import SurveyRow

        store = SurveyStore(self.sessions, self.cipher)
        with self.sessions() as session:
            rows = session.execute(select(SurveyRow).where(or_(
                SurveyRow.contact_key.in_(keys), SurveyRow.conversation_id == conversation_id))
                .order_by(SurveyRow.created_at, SurveyRow.id)).scalars().all()
        return [{"kind": r.kind, "status": r.status, "sent_at": _iso(r.sent_at), "rating": r.rating,
                 "comment": store.read_comment(r.id) if r.comment_encrypted else None,
                 "answered_at": _iso(r.commented_at or r.rated_at)} for r in rows]

    def _uploads(self, conversation_id: str) -> List[Dict[str, Any]]:
        from clinic.portal.uploads import Uploads

        files = Uploads(self.sessions, self.documents).for_conversation(conversation_id, limit=10_000)
        return [{"uploaded_at": _iso(f.created_at), "kind": f.kind, "name": f.name, "media_type": f.media_type,
                 "size_bytes": f.size_bytes} for f in files]

    def _media(self, conversation_id: str) -> List[Dict[str, Any]]:
        """Photos, voice notes and documents sent in the chat: what was received and kept (the
        files themselves are shown to the clinic's staff, not put in the export)."""
        from clinic.messaging.media import InboundMediaRow

        with self.sessions() as session:
            rows = session.execute(select(InboundMediaRow).where(
                InboundMediaRow.conversation_id == conversation_id)
                .order_by(InboundMediaRow.received_at, InboundMediaRow.id)).scalars().all()
            return [{"received_at": _iso(r.received_at), "kind": r.kind, "media_type": r.mime_type,
                     "size_bytes": r.size_bytes, "status": r.state} for r in rows]

    def _scheduled(self, conversation_id: str, keys: Tuple[str, str]):
        from clinic.broadcasts.tables import RecipientRow
        from clinic.reminders.tables import RecallDueRow, ReminderJobRow

        with self.sessions() as session:
            jobs = session.execute(select(ReminderJobRow).where(or_(
                ReminderJobRow.contact_key.in_(keys), ReminderJobRow.conversation_id == conversation_id))
                .order_by(ReminderJobRow.due_at, ReminderJobRow.id)).scalars().all()
            recalls = session.execute(select(RecallDueRow).where(RecallDueRow.contact_key.in_(keys))
                                      .order_by(RecallDueRow.due_date)).scalars().all()
            broadcasts = session.execute(select(RecipientRow).where(or_(
                RecipientRow.contact_key.in_(keys), RecipientRow.conversation_id == conversation_id))
                .order_by(RecipientRow.id)).scalars().all()
            return ([{"kind": j.kind, "due_at": _iso(j.due_at), "status": j.status} for j in jobs],
                    [{"topic": r.topic, "due_date": r.due_date.isoformat(), "status": r.status} for r in recalls],
                    [{"campaign": b.campaign_id, "status": b.status, "sent_at": _iso(b.sent_at)} for b in broadcasts])

    def _counted(self, conversation_id: str, keys: Tuple[str, str]) -> Dict[str, Any]:
        from clinic.knowledge.tables import KnowledgeOutcomeRow
        from clinic.messaging import identities
        from clinic.messaging.calls import CallRow
        from clinic.messaging.quarantine import QuarantineRow
        from clinic.messaging.store import ContactRow, InboxRow, OutboundRow, StatusRow
        from clinic.portal.tables import PortalTokenRow

        def count(session, statement) -> int:
            return int(session.execute(statement).scalar_one())

        with self.sessions() as session:
            outbound = session.execute(select(OutboundRow.id, OutboundRow.wamid).where(
                OutboundRow.conversation_id == conversation_id)).all()
            wamids = [wamid for _id, wamid in outbound if wamid]
            callbacks = [str(row_id) for row_id, _wamid in outbound]
            statuses = 0
            for start in range(0, max(len(wamids), len(callbacks)), 500):
                statuses += count(session, select(func.count()).select_from(StatusRow).where(or_(
                    StatusRow.wamid.in_(wamids[start:start + 500]),
                    StatusRow.callback.in_(callbacks[start:start + 500]))))
            return {
                "whatsapp_number_held": count(session, select(func.count()).select_from(ContactRow).where(
                    ContactRow.conversation_id == conversation_id)) > 0,
                "whatsapp_messages_received": count(session, select(func.count()).select_from(InboxRow).where(
                    InboxRow.conversation_id == conversation_id)),
                "whatsapp_messages_sent": count(session, select(func.count()).select_from(OutboundRow).where(
                    OutboundRow.conversation_id == conversation_id)),
                "delivery_statuses": statuses,
                "whatsapp_ids_linked": identities.count(session, conversation_id),
                "messages_held_back": count(session, select(func.count()).select_from(QuarantineRow).where(
                    QuarantineRow.conversation_id == conversation_id)),
                "links_sent": count(session, select(func.count()).select_from(PortalTokenRow).where(
                    PortalTokenRow.conversation_id == conversation_id)),
                "questions_answered_from_documents": count(session, select(func.count()).select_from(
                    KnowledgeOutcomeRow).where(KnowledgeOutcomeRow.contact_key.in_(keys))),
                "whatsapp_calls": count(session, select(func.count()).select_from(CallRow).where(
                    CallRow.conversation_id == conversation_id)),
            }

    # ── the audit ────────────────────────────────────────────────────────────────────────
    def record(self, what: str, conversation_id: str, export: Dict[str, Any], client: Optional[str] = None) -> None:
        """An audit row for a view or a download: the section counts, never content."""
        from clinic.inbox.audit import append, retrying, transaction

        detail = f"{what} " + json.dumps(counts(export), sort_keys=True, separators=(",", ":"))

        def write() -> None:
            with transaction(self.sessions) as session:
                append(session, PATIENT, ACTION, at=self.clock(), conversation_id=conversation_id,
                       detail=detail, client=client)

        retrying(write)
        logger.info("Data access %s (%s items)", what, sum(counts(export).values()))


def counts(export: Dict[str, Any]) -> Dict[str, int]:
    """How many items each section holds: what the audit log records."""
    result: Dict[str, int] = {}
    for section in SECTIONS:
        value = export.get(section)
        if section == "messaging_preferences":
            result[section] = len(value["history"]) + (value["current"] is not None)
        elif section == "records_counted":
            result[section] = sum(int(v) for v in value.values())
        elif section == "patient":
            result[section] = int(value is not None)
        else:
            result[section] = len(value or [])
    return result


def as_json(export: Dict[str, Any]) -> bytes:
    return json.dumps(export, ensure_ascii=False, indent=2).encode("utf-8")


def issue_access_link(tokens: Any, portal_url: str, patient_id: str, conversation_id: str,
                      source: str = "chat") -> Tuple[str, Any]:
    """A single-use link to the patient's data (clinic/portal/tokens.py, purpose ``access``,
    the tokens' own lifetime: the results links' policy); its issue is in the portal's
    access log. Returns (url, Issued)."""
    from clinic.portal.tokens import ACCESS, portal_link

    issued = tokens.issue(patient_id, DOCUMENT, ACCESS, source=source, conversation_id=conversation_id)
    tokens.log(issued.token_id, "access_link_issued", source)
    return portal_link(portal_url, issued.token), issued


def issue_download(tokens: Any, grant: Any, now: dt.datetime) -> Any:
    """The token of the page's JSON download: after the second factor, same patient and
    conversation, single use, ``DOWNLOAD_LIFETIME`` (never past the link's own expiry)."""
    from clinic.portal.tokens import ACCESS_FILE

    lifetime = min(DOWNLOAD_LIFETIME, max(aware(grant.expires_at) - now, dt.timedelta(seconds=1)))
    return tokens.issue(grant.patient_id, DOCUMENT, ACCESS_FILE, source="portal", lifetime=lifetime,
                        conversation_id=grant.conversation_id)


def _iso(moment: Optional[dt.datetime]) -> Optional[str]:
    return None if moment is None else aware(moment).isoformat()
