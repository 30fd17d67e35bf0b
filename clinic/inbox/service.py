"""``Inbox``: every staff operation on tickets, tasks and settings.

Each operation checks *who* may do it (deny by default), asks ``states`` whether the ticket
may change that way, and writes exactly one audit row in the same transaction. Calls to
the conversation side (pause/resume, reply delivery, transcript) happen outside database
transactions, so a slow Rasa never holds a lock.

Permissions:
- agent: tickets and tasks of their own teams (and tickets assigned to them); claims,
  replies, releases, transfers and resolves what they own;
- supervisor: every queue; may also assign/reassign and act on any ticket;
- admin: users, settings and the audit log only, no patient conversations.

Languages: every ticket view carries its conversation's language (``TicketView.language``,
from the contact language memory, one query per list); templates are offered and sent in
it, falling back to the clinic's default language with a note and an audit detail.

The patient: every view carries a friendly label ("Patient 4F2K") instead of the pseudonym;
the ticket page (audited) adds the name and date of birth from the clinic's patient record
when the contact has one, and the number of earlier tickets (``clinic/inbox/patients.py``).
When staff take a conversation over (claim, or assigned by a supervisor), the patient is
told who has joined, in their language (content/inbox.yml), through the reply gateway.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import os
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.orm.exc import StaleDataError

from clinic.at_rest import Sealer, clinic_sealer
from clinic.clock import utcnow
from clinic.handoff.tables import HandoffRequest
from clinic.handoff.teams import Team
from clinic.inbox import audit, sla
from clinic.inbox.languages import catalogue_code, conversation_languages, english_name
from clinic.inbox.model import (
    BOT,
    SYSTEM,
    Actor,
    Conflict,
    Delivery,
    Forbidden,
    InvalidInput,
    MessageKind,
    NotFound,
    Priority,
    Role,
    TicketState,
    aware,
    check_conversation_id,
)
from clinic.inbox.patient_texts import PatientTexts, default_patient_texts
from clinic.inbox.patients import PatientFacts, friendly_label, patient_facts
from clinic.inbox.ports import (
    STAFF,
    ControlFailed,
    ConversationControl,
    ReplyGateway,
    ReplyResult,
    TranscriptMessage,
    TranscriptSource,
    TranscriptUnavailable,
)
from clinic.inbox.states import Event, next_state
from clinic.inbox.tables import MessageRow, SettingRow, StaffRow, TaskRow, TicketRow
from clinic.inbox.templates import (
    ApprovedTemplate,
    TemplateChoice,
    TemplateOffer,
    group_templates,
    load_templates,
)
from clinic.language.catalogue import Catalogue, default_catalogue
from clinic.privacy import ContactCipher

logger = logging.getLogger(__name__)

REPLY_MAX = 4096      # WhatsApp's text body limit
NOTE_MAX = 2000
REOPEN_WITHIN = dt.timedelta(hours=24)  # a new request within this reopens the last ticket
RESOLUTION_REASONS = {
    "answered": "Question answered",
    "appointment_booked": "Appointment booked or changed",
    "referred": "Referred (doctor, emergency services, other team)",
    "callback_done": "Called the patient back",
    "no_response": "Patient did not respond",
    "not_needed": "Patient no longer needs help",
    "duplicate": "Duplicate request",
}
HANDOFF_REASONS = ("patient_request", "emergency", "callback_request", "bot_fallback", "frustration",
                   "clinical_question", "long_message", "message_failed",
                   "reply_failed")


@dataclasses.dataclass(frozen=True)
class InboxSettings:
    overdue_minutes: int = sla.DEFAULT_OVERDUE_MINUTES
    idle_timeout_minutes: int = 15

    LIMITS = {"overdue_minutes": (1, 24 * 60), "idle_timeout_minutes": (1, 8 * 60)}

    @classmethod
    def from_environment(cls, environ: Optional[dict] = None) -> "InboxSettings":
        environ = os.environ if environ is None else environ
        values = {}
        for key, env in (("overdue_minutes", "INBOX_OVERDUE_MINUTES"),
                         ("idle_timeout_minutes", "INBOX_IDLE_TIMEOUT_MINUTES")):
            if environ.get(env):
                values[key] = _check_setting(key, environ[env], source=env)
        return cls(**values)


@dataclasses.dataclass(frozen=True)
class TicketView:
    id: int
    conversation_id: str
    team: str
    priority: Priority
    state: TicketState
    reason: str
    red_flag_category: Optional[str]
    assignee_id: Optional[int]
    assignee: Optional[str]
    created_at: dt.datetime
    opened_at: dt.datetime
    waiting_since: Optional[dt.datetime]
    claimed_at: Optional[dt.datetime]
    first_response_at: Optional[dt.datetime]
    resolved_at: Optional[dt.datetime]
    resolution_reason: Optional[str]
    overdue_at: Optional[dt.datetime]
    reopen_count: int
    bot_paused: bool
    sla: sla.Sla
    language: str  # the conversation's language code (content/languages.yml): en, ru, zh…
    patient_label: str  # "Patient 4F2K": stable per conversation, what staff call the patient


@dataclasses.dataclass(frozen=True)
class InboxMessage:
    id: int
    ticket_id: int
    kind: MessageKind
    author: str
    text: str
    created_at: dt.datetime
    delivery: Optional[str]
    delivery_detail: Optional[str]


@dataclasses.dataclass(frozen=True)
class TimelineItem:
    """One line of the ticket page: the patient, the bot, a staff reply, an internal note or
    a notice the inbox sent the patient itself."""

    at: dt.datetime
    sender: str            # patient | bot | staff | note | notice (sent by the inbox itself)
    text: str              # as the patient saw it: a tapped button's title, not its payload
    author: Optional[str] = None
    delivery: Optional[str] = None
    delivery_detail: Optional[str] = None
    buttons: Tuple[str, ...] = ()  # the titles of a bot message's buttons
    tapped: bool = False           # the patient tapped a button (``text`` is its title)
    wamid: Optional[str] = None    # a patient's message: its WhatsApp id (its media, if any)


@dataclasses.dataclass(frozen=True)
class TicketPage:
    ticket: TicketView
    timeline: List[TimelineItem]
    transcript_error: Optional[str]
    patient: Optional[PatientFacts] = None


@dataclasses.dataclass(frozen=True)
class Overview:
    """What the queue page shows, read together (one language query for all of it)."""

    queues: Dict[str, List[TicketView]]
    mine: List[TicketView]
    resolved: List[TicketView]
    overdue_minutes: int


@dataclasses.dataclass(frozen=True)
class OpenResult:
    ticket: TicketView
    created: bool
    reopened: bool
    escalated: bool


@dataclasses.dataclass(frozen=True)
class ActionResult:
    """A change that happened; ``warning`` says what staff should know (bot not paused…)."""

    ticket: TicketView
    warning: Optional[str] = None


@dataclasses.dataclass(frozen=True)
class Task:
    id: int
    conversation_id: str
    ticket_id: Optional[int]
    team: str
    note: str
    due_at: Optional[dt.datetime]
    state: str
    created_by: str
    created_at: dt.datetime
    done_at: Optional[dt.datetime]


class Inbox:
    def __init__(self, session_factory: sessionmaker, cipher: ContactCipher, *,
                 transcripts: TranscriptSource, control: ConversationControl, replies: ReplyGateway,
                 defaults: Optional[InboxSettings] = None,
                 clock: Callable[[], dt.datetime] = utcnow,
                 templates: Optional[Sequence[ApprovedTemplate]] = None,
                 catalogue: Optional[Catalogue] = None,
                 patient_texts: Optional[PatientTexts] = None,
                 sealer: Optional[Sealer] = None) -> None:
        self._sessions = session_factory
        # Staff replies, notes and call-back notes are sealed with the clinic's keyring
        # (clinic/at_rest.py: AES-256-GCM, key id kept; rotated by `python -m
        # clinic.at_rest_rotation rotate`); ``cipher`` (Fernet) still opens what was
        # written before the keyring.
        self._sealer = sealer or clinic_sealer()
        self.catalogue = catalogue or default_catalogue()
        # What the inbox itself tells patients (who has joined), per language.
        self.patient_texts = patient_texts or default_patient_texts()
        # Approved WhatsApp templates staff may send outside the 24-hour window: each name
        # once, with its versions per language (clinic/inbox/templates.py).
        self.templates: Tuple[TemplateChoice, ...] = group_templates(
            load_templates() if templates is None else templates, self.default_template_language)
        self._cipher = cipher
        self.transcripts = transcripts
        self.control = control
        self.replies = replies
        self._defaults = defaults or InboxSettings.from_environment()
        self._clock = clock

    def _seal_text(self, text: str) -> str:
        return self._sealer.seal(text)

    def _open_text(self, stored: str) -> str:
        return open_staff_text(stored, self._cipher, self._sealer)

    # ── settings ────────────────────────────────────────────────────────────────────────

    @property
    def sessions(self) -> sessionmaker:
        """The clinic database the inbox uses (for pages that read tables of their own:
        the quarantine, dead letters, analytics)."""
        return self._sessions
    def settings(self) -> InboxSettings:
        with self._sessions() as session:
            stored = {row.key: row.value for row in session.scalars(select(SettingRow))}
        values = dataclasses.asdict(self._defaults)
        for key in InboxSettings.LIMITS:
            if key in stored:
                try:
                    values[key] = _check_setting(key, stored[key])
                except InvalidInput:
                    logger.warning("Ignoring bad stored inbox setting %s", key)
        return InboxSettings(**values)

    def update_settings(self, actor: Actor, values: Dict[str, object], client: Optional[str] = None) -> InboxSettings:
        _require_role(actor, Role.ADMIN)
        checked = {}
        for key, value in values.items():
            if key not in InboxSettings.LIMITS:
                raise InvalidInput(f"unknown setting {key!r}")
            checked[key] = _check_setting(key, value)

        def run() -> None:
            with audit.transaction(self._sessions) as session:
                for key, value in checked.items():
                    row = session.get(SettingRow, key)
                    if row is None:
                        session.add(SettingRow(key=key, value=str(value)))
                    else:
                        row.value = str(value)
                audit.append(session, actor, "settings_changed", at=self._clock(), client=client,
                             detail=" ".join(f"{k}={v}" for k, v in sorted(checked.items())))
        audit.retrying(run)
        return self.settings()

    # ── the conversation side ───────────────────────────────────────────────────────────
    def open_for_handoff(self, conversation_id: str, team: str, reason: str = "patient_request",
                         red_flag_category: Optional[str] = None,
                         contact_key: Optional[str] = None) -> OpenResult:
        """A patient (or the safety net) asks for a human. Reuses the active ticket (raising
        its priority for an emergency), reopens one resolved within REOPEN_WITHIN, or opens
        a new one."""
        def run() -> OpenResult:
            with audit.transaction(self._sessions) as own:
                return self._open(own, conversation_id, team, reason, red_flag_category, contact_key)
        return audit.retrying(run)

    def _open(self, session: Session, conversation_id: str, team: str, reason: str,
              red_flag: Optional[str], contact_key: Optional[str]) -> OpenResult:
        now = self._clock()
        row, created, reopened, escalated = open_ticket(session, conversation_id, team, reason, red_flag,
                                                        contact_key, now)
        return OpenResult(self._view(session, row, now), created, reopened, escalated)

    def mode(self, conversation_id: str) -> str:
        """``human`` while a staff member has taken the conversation over (the bot must stay
        silent except for the emergency safety net), else ``bot``."""
        with self._sessions() as session:
            active = _active_ticket(session, conversation_id)
            return "human" if active is not None and active.claimed_at is not None else "bot"

    def request_callback(self, conversation_id: str, team: str, note: str = "",
                         due_at: Optional[dt.datetime] = None, actor: Actor = BOT,
                         client: Optional[str] = None, ticket_id: Optional[int] = None) -> Task:
        """A call-back task (from the conversation, actor ``bot``, or from a ticket page)."""
        check_conversation_id(conversation_id)
        team = _check_team(team)
        note = (note or "").strip()
        if len(note) > NOTE_MAX:
            raise InvalidInput(f"a task note has at most {NOTE_MAX} characters")
        if actor.is_staff:
            _require_team(actor, team, "create tasks for")

        def run() -> Task:
            now = self._clock()
            with audit.transaction(self._sessions) as session:
                if ticket_id is not None:
                    ticket = session.get(TicketRow, ticket_id)
                    if ticket is None or ticket.conversation_id != conversation_id:
                        raise NotFound("no such ticket for this conversation")
                row = TaskRow(conversation_id=conversation_id, ticket_id=ticket_id, team=team,
                              note_encrypted=self._seal_text(note) if note else None,
                              due_at=due_at, state="open", created_by=actor.username, created_at=now)
                session.add(row)
                session.flush()
                audit.append(session, actor, "task_created", at=now, conversation_id=conversation_id,
                             ticket_id=ticket_id, client=client, detail=f"task={row.id} team={team}")
                return self._task(row)
        return audit.retrying(run)

    # ── reading ─────────────────────────────────────────────────────────────────────────
    def queues(self, actor: Actor) -> Dict[str, List[TicketView]]:
        """Active tickets per visible team: urgent first, then overdue, then longest waiting;
        assigned tickets after the waiting ones. Shows pseudonyms, languages and timers only."""
        teams = _visible_teams(actor)
        now = self._clock()
        overdue = self.settings().overdue_minutes
        with self._sessions() as session:
            return _by_team(teams, self._views(session, _queue_rows(session, teams), now, overdue))

    def my_tickets(self, actor: Actor) -> List[TicketView]:
        _require_staff(actor)
        now = self._clock()
        overdue = self.settings().overdue_minutes
        with self._sessions() as session:
            return sorted(self._views(session, _my_rows(session, actor), now, overdue), key=_queue_order)

    def recently_resolved(self, actor: Actor, limit: int = 20) -> List[TicketView]:
        teams = _visible_teams(actor)
        now = self._clock()
        overdue = self.settings().overdue_minutes
        with self._sessions() as session:
            return self._views(session, _resolved_rows(session, teams, limit), now, overdue)

    def overview(self, actor: Actor, resolved_limit: int = 20) -> Overview:
        """The queue page: ``queues``, ``my_tickets`` and ``recently_resolved`` in one read,
        with one query for the languages of all their conversations."""
        teams = _visible_teams(actor)
        now = self._clock()
        overdue = self.settings().overdue_minutes
        with self._sessions() as session:
            active, mine = _queue_rows(session, teams), _my_rows(session, actor)
            resolved = _resolved_rows(session, teams, resolved_limit) if resolved_limit > 0 else []
            views = self._views(session, active + mine + resolved, now, overdue)
        queued, own = views[:len(active)], views[len(active):len(active) + len(mine)]
        return Overview(_by_team(teams, queued), sorted(own, key=_queue_order),
                        views[len(active) + len(mine):], overdue)

    # ── templates ───────────────────────────────────────────────────────────────────────
    @property
    def default_template_language(self) -> str:
        """The WhatsApp code of the clinic's default language: the templates' fallback."""
        return self.catalogue.whatsapp_code(self.catalogue.default)

    def template_offers(self, language: str) -> List[TemplateOffer]:
        """Each approved template once, in the version for a patient speaking ``language``
        (a catalogue code); ``offer.fallback`` when it is not in that language."""
        wanted = self.catalogue.whatsapp_code(language)
        return [choice.offer(wanted, self.default_template_language) for choice in self.templates]

    def ticket_templates(self, actor: Actor, ticket_id: int) -> List[TemplateOffer]:
        """The templates as they would be sent on this ticket (its conversation's language)."""
        return self.template_offers(self.ticket(actor, ticket_id).language)

    def ticket(self, actor: Actor, ticket_id: int) -> TicketView:
        """The ticket's facts without its messages (not audited: no patient content)."""
        now = self._clock()
        with self._sessions() as session:
            row = self._visible(session, actor, ticket_id)
            return self._view(session, row, now)

    def open_ticket_page(self, actor: Actor, ticket_id: int, client: Optional[str] = None) -> TicketPage:
        """The ticket with its transcript, replies and notes. Audited (a transcript view)."""
        now = self._clock()

        def run() -> Tuple[TicketView, List[InboxMessage], PatientFacts]:
            with audit.transaction(self._sessions) as session:
                row = self._visible(session, actor, ticket_id)
                # The audit row covers what the page shows: transcript, name and birth date.
                audit.append(session, actor, "ticket_viewed", at=now, conversation_id=row.conversation_id,
                             ticket_id=row.id, client=client)
                return (self._view(session, row, now), self._messages(session, row.id),
                        patient_facts(session, row, self._cipher))
        view, messages, patient = audit.retrying(run)
        transcript: List[TranscriptMessage] = []
        error = None
        try:
            transcript = self.transcripts.messages(view.conversation_id)
        except TranscriptUnavailable as exc:
            error = f"The conversation could not be loaded ({exc}). Replies and notes below are complete."
        return TicketPage(view, _timeline(transcript, messages), error, patient)

    # ── staff actions ───────────────────────────────────────────────────────────────────
    def claim(self, actor: Actor, ticket_id: int, client: Optional[str] = None) -> ActionResult:
        def change(session: Session, row: TicketRow, now: dt.datetime) -> str:
            if actor.role is Role.AGENT and row.team not in actor.teams:
                raise Forbidden("you can only claim tickets of your own teams")
            self._take(row, actor.id, Event.CLAIM, now)
            return f"team={row.team}"
        return self._act(actor, ticket_id, "ticket_claimed", change, client, pause=True, announce=lambda: True)

    def assign(self, actor: Actor, ticket_id: int, staff_id: int, client: Optional[str] = None) -> ActionResult:
        _require_role(actor, Role.SUPERVISOR)

        new_owner = [False]  # reassigning to the owner again tells the patient nothing new

        def change(session: Session, row: TicketRow, now: dt.datetime) -> str:
            target = session.get(StaffRow, staff_id)
            if target is None or target.disabled or target.role == Role.ADMIN.value:
                raise InvalidInput("assign to an active agent or supervisor")
            new_owner[0] = row.assignee_id != target.id
            self._take(row, target.id, Event.ASSIGN, now)
            return f"to={target.username} team={row.team}"
        return self._act(actor, ticket_id, "ticket_assigned", change, client, pause=True,
                         announce=lambda: new_owner[0])

    def release(self, actor: Actor, ticket_id: int, client: Optional[str] = None) -> ActionResult:
        def change(session: Session, row: TicketRow, now: dt.datetime) -> str:
            _require_owner(actor, row)
            row.state = next_state(TicketState(row.state), Event.RELEASE).value
            row.assignee_id = None
            row.waiting_since, row.overdue_at = now, None
            return f"team={row.team}"
        return self._act(actor, ticket_id, "ticket_released", change, client)

    def transfer(self, actor: Actor, ticket_id: int, team: str, client: Optional[str] = None) -> ActionResult:
        team = _check_team(team)

        def change(session: Session, row: TicketRow, now: dt.datetime) -> str:
            if TicketState(row.state) is TicketState.ASSIGNED:
                _require_owner(actor, row)
            if team == row.team:
                raise InvalidInput("the ticket is already with that team")
            row.state = next_state(TicketState(row.state), Event.TRANSFER).value
            old, row.team = row.team, team
            row.assignee_id = None
            row.waiting_since, row.overdue_at = now, None
            return f"from={old} to={team}"
        return self._act(actor, ticket_id, "ticket_transferred", change, client)

    def resolve(self, actor: Actor, ticket_id: int, reason: str, client: Optional[str] = None) -> ActionResult:
        if reason not in RESOLUTION_REASONS:
            raise InvalidInput(f"pick a resolution reason: {', '.join(RESOLUTION_REASONS)}")

        def change(session: Session, row: TicketRow, now: dt.datetime) -> str:
            if TicketState(row.state) is TicketState.ASSIGNED:
                _require_owner(actor, row)
            row.state = next_state(TicketState(row.state), Event.RESOLVE).value
            row.resolved_at, row.resolution_reason, row.waiting_since = now, reason, None
            if row.contact_key:  # the raw requests behind this ticket are done too
                session.execute(update(HandoffRequest).where(
                    HandoffRequest.contact_key == row.contact_key, HandoffRequest.status == "open")
                    .values(status="closed"))
            return f"reason={reason}"
        return self._act(actor, ticket_id, "ticket_resolved", change, client, resume=True)

    def add_note(self, actor: Actor, ticket_id: int, text: str, client: Optional[str] = None) -> InboxMessage:
        text = _check_text(text, NOTE_MAX, "note")
        now = self._clock()

        def run() -> InboxMessage:
            with audit.transaction(self._sessions) as session:
                row = self._visible(session, actor, ticket_id)
                next_state(TicketState(row.state), Event.NOTE)
                message = MessageRow(ticket_id=row.id, kind=MessageKind.NOTE.value, author_id=actor.id,
                                     text_encrypted=self._seal_text(text), created_at=now)
                session.add(message)
                session.flush()
                audit.append(session, actor, "note_added", at=now, conversation_id=row.conversation_id,
                             ticket_id=row.id, client=client, detail=f"message={message.id}")
                return self._message(message, actor.username)
        return audit.retrying(run)

    def reply(self, actor: Actor, ticket_id: int, text: str, client: Optional[str] = None) -> InboxMessage:
        """Store the reply, hand it to the gateway, record the outcome (one audit row with it).
        Only the ticket's owner replies: there is one voice per conversation."""
        text = _check_text(text, REPLY_MAX, "reply")
        return self._deliver(actor, ticket_id, text, client,
                             lambda conversation_id, message_id: self.replies.send(conversation_id, text, message_id))

    def send_template(self, actor: Actor, ticket_id: int, name: str, values: List[str],
                      client: Optional[str] = None) -> InboxMessage:
        """Send one of the approved templates (``self.templates``): what staff do when the
        patient's 24-hour window has closed. Stored and audited like a reply. Sent in the
        conversation's language; without a version in it, in the clinic's default language,
        and that is recorded (a note on the ticket, ``fallback_from`` in the audit row)."""
        choice = next((t for t in self.templates if t.name == name), None)
        if choice is None:
            raise InvalidInput(f"unknown template {name!r}; approved: {', '.join(t.name for t in self.templates)}")
        language = self.ticket(actor, ticket_id).language
        offer = choice.offer(self.catalogue.whatsapp_code(language), self.default_template_language)
        template = offer.template
        checked = template.check(values)
        rendered = template.render(checked)
        gateway = self.replies
        if not hasattr(gateway, "send_template"):
            raise InvalidInput("templates cannot be sent from this server (no WhatsApp gateway)")
        detail = f"template={template.name} language={template.language}"
        note = None
        if offer.fallback:
            detail += f" fallback_from={offer.wanted}"
            note = lambda result: self._fallback_note(offer, language, result)  # noqa: E731
        return self._deliver(actor, ticket_id, f"[template {template.name}] {rendered}", client,
                             lambda conversation_id, message_id: gateway.send_template(
                                 conversation_id, template, checked, rendered, message_id),
                             detail=detail, note=note)

    def _fallback_note(self, offer: TemplateOffer, language: str, result: ReplyResult) -> str:
        """The ticket note of a template sent in another language than the patient's, e.g.
        "Sent in English (en_US): no Russian (ru) version of template results_ready".
        """
        sent_in = english_name(self.catalogue, catalogue_code(self.catalogue, offer.language) or offer.language)
        wanted = english_name(self.catalogue, language)
        what = "Sent" if result.ok else f"Not delivered ({result.delivery.value}); it was"
        return (f"{what} in {sent_in} ({offer.language}): no {wanted} ({offer.wanted}) version of template "
                f"{offer.name}.")

    def _deliver(self, actor: Actor, ticket_id: int, text: str, client: Optional[str],
                 send: Callable[[str, int], ReplyResult], detail: str = "",
                 note: Optional[Callable[[ReplyResult], str]] = None) -> InboxMessage:
        now = self._clock()
        with self._sessions.begin() as session:
            row = self._visible(session, actor, ticket_id)
            next_state(TicketState(row.state), Event.REPLY)
            if row.assignee_id != actor.id:
                raise Forbidden("only the staff member who has claimed the ticket replies")
            message = MessageRow(ticket_id=row.id, kind=MessageKind.REPLY.value, author_id=actor.id,
                                 text_encrypted=self._seal_text(text), created_at=now,
                                 delivery="sending")
            session.add(message)
            session.flush()
            message_id, conversation_id = message.id, row.conversation_id
        result = _send_safely(lambda: send(conversation_id, message_id), message_id)

        def record() -> InboxMessage:
            done = self._clock()
            with audit.transaction(self._sessions) as session:
                message = session.get(MessageRow, message_id)
                message.delivery, message.delivery_detail = result.delivery.value, result.detail[:300]
                if result.ok:
                    session.execute(
                        update(TicketRow).where(TicketRow.id == ticket_id, TicketRow.first_response_at.is_(None))
                        .values(first_response_at=done, version=TicketRow.version + 1)
                    )
                extra = f" {detail}" if detail else ""
                if note is not None:  # e.g. a template sent in another language: on the ticket
                    note_row = MessageRow(ticket_id=ticket_id, kind=MessageKind.NOTE.value, author_id=actor.id,
                                          text_encrypted=self._seal_text(note(result)), created_at=done)
                    session.add(note_row)
                    session.flush()
                    extra += f" note={note_row.id}"
                audit.append(session, actor, "reply_sent" if result.ok else "reply_not_delivered", at=done,
                             conversation_id=conversation_id, ticket_id=ticket_id, client=client,
                             detail=f"message={message_id} delivery={result.delivery.value}{extra}")
                return self._message(message, actor.username)
        return audit.retrying(record)

    # ── tasks ───────────────────────────────────────────────────────────────────────────
    def tasks(self, actor: Actor, state: str = "open") -> List[Task]:
        teams = _visible_teams(actor)
        with self._sessions() as session:
            rows = session.scalars(select(TaskRow).where(TaskRow.state == state, TaskRow.team.in_(teams))
                                   .order_by(TaskRow.due_at.is_(None), TaskRow.due_at, TaskRow.id))
            return [self._task(row) for row in rows]

    def tasks_for_ticket(self, actor: Actor, ticket_id: int) -> List[Task]:
        with self._sessions() as session:
            self._visible(session, actor, ticket_id)
            rows = session.scalars(select(TaskRow).where(TaskRow.ticket_id == ticket_id).order_by(TaskRow.id))
            return [self._task(row) for row in rows]

    def complete_task(self, actor: Actor, task_id: int, client: Optional[str] = None) -> Task:
        def run() -> Task:
            now = self._clock()
            with audit.transaction(self._sessions) as session:
                row = session.get(TaskRow, task_id)
                if row is None:
                    raise NotFound("no such task")
                _require_team(actor, row.team, "complete tasks of")
                if row.state != "open":
                    raise Conflict("this task is already done")
                row.state, row.done_by_id, row.done_at = "done", actor.id, now
                audit.append(session, actor, "task_done", at=now, conversation_id=row.conversation_id,
                             ticket_id=row.ticket_id, client=client, detail=f"task={row.id}")
                return self._task(row)
        return audit.retrying(run)

    # ── timers and the bot ──────────────────────────────────────────────────────────────
    def sweep_overdue(self) -> List[int]:
        """Flag waiting tickets unclaimed for longer than the setting and re-offer them
        (audit row; the queue puts them on top, highlighted). Returns their ids."""
        limit = dt.timedelta(minutes=self.settings().overdue_minutes)

        def run() -> List[int]:
            now = self._clock()
            flagged = []
            with audit.transaction(self._sessions) as session:
                rows = session.scalars(select(TicketRow).where(
                    TicketRow.state == TicketState.WAITING.value, TicketRow.overdue_at.is_(None),
                    TicketRow.waiting_since < now - limit))
                for row in rows:
                    row.overdue_at = now
                    flagged.append(row.id)
                    audit.append(session, SYSTEM, "ticket_overdue", at=now, conversation_id=row.conversation_id,
                                 ticket_id=row.id, detail=f"team={row.team} re-offered")
            return flagged
        return audit.retrying(run)

    def sync_bot(self) -> int:
        """Bring Rasa in line with the tickets where an earlier pause/resume failed. Returns
        how many conversations still disagree."""
        with self._sessions() as session:
            rows = list(session.scalars(select(TicketRow).where(
                (TicketRow.bot_paused.is_(True) & (TicketRow.state == TicketState.RESOLVED.value))
                | (TicketRow.bot_paused.is_(False) & (TicketRow.state != TicketState.RESOLVED.value)
                   & TicketRow.claimed_at.is_not(None)))))
        left = 0
        for row in rows:
            if self._apply_bot(row.id, row.conversation_id, pause=row.state != TicketState.RESOLVED.value):
                left += 1
        return left

    # ── internals ───────────────────────────────────────────────────────────────────────
    def _act(self, actor: Actor, ticket_id: int, action: str,
             change: Callable[[Session, TicketRow, dt.datetime], str], client: Optional[str],
             pause: bool = False, resume: bool = False,
             announce: Callable[[], bool] = lambda: False) -> ActionResult:
        def run() -> TicketView:
            now = self._clock()
            try:
                with audit.transaction(self._sessions) as session:
                    row = self._visible(session, actor, ticket_id)
                    detail = change(session, row, now)
                    session.flush()
                    audit.append(session, actor, action, at=now, conversation_id=row.conversation_id,
                                 ticket_id=row.id, client=client, detail=detail)
                    return self._view(session, row, now)
            except StaleDataError:
                raise Conflict("someone else changed this ticket just now; reload it") from None
        view = audit.retrying(run)
        warnings: List[str] = []
        if (pause and not view.bot_paused) or (resume and view.bot_paused):
            if self._apply_bot(view.id, view.conversation_id, pause=pause):
                warnings.append("The assistant could not be paused yet; it may still answer. Retrying."
                                if pause else "The assistant could not be resumed yet. Retrying.")
            view = self.ticket_unchecked(view.id)
        # After the pause: the patient's answer to "Nina has joined" must reach Nina, not
        # the assistant.
        if announce():
            not_told = self._announce_join(view.id)
            if not_told:
                warnings.append(not_told)
        return ActionResult(view, " ".join(warnings) or None)

    def _announce_join(self, ticket_id: int) -> Optional[str]:
        """Tell the patient who has taken the conversation over ("Nina from our nurse team
        has joined the chat…"), in the conversation's language, through the reply gateway
        (so the WhatsApp window check, the tracker copy and the delivery outcome are those
        of any reply). Stored as a ``notice`` message in the owner's name, audited as the
        system's doing. Not a first response: the SLA waits for what staff write. Returns
        a warning for staff when the patient could not be told."""
        now = self._clock()
        with self._sessions.begin() as session:
            row = session.get(TicketRow, ticket_id)
            owner = session.get(StaffRow, row.assignee_id) if row is not None and row.assignee_id else None
            if owner is None:
                return None
            language = conversation_languages(session, [row.conversation_id], self.catalogue)[row.conversation_id]
            text = self.patient_texts.staff_joined(language, _first_name(owner), row.team)
            message = MessageRow(ticket_id=row.id, kind=MessageKind.NOTICE.value, author_id=owner.id,
                                 text_encrypted=self._seal_text(text), created_at=now, delivery="sending")
            session.add(message)
            session.flush()
            message_id, conversation_id = message.id, row.conversation_id
            owner_name, owner_username = owner.display_name, owner.username
        result = _send_safely(lambda: self.replies.send(conversation_id, text, message_id), message_id)

        def record() -> None:
            with audit.transaction(self._sessions) as session:
                stored = session.get(MessageRow, message_id)
                stored.delivery, stored.delivery_detail = result.delivery.value, result.detail[:300]
                audit.append(session, SYSTEM, "join_notice_sent" if result.ok else "join_notice_not_delivered",
                             at=self._clock(), conversation_id=conversation_id, ticket_id=ticket_id,
                             detail=f"message={message_id} staff={owner_username} language={language} "
                                    f"delivery={result.delivery.value}")
        audit.retrying(record)
        if result.ok:
            return None
        return f"The patient was not told that {owner_name} joined: {result.detail or result.delivery.value}."

    def ticket_unchecked(self, ticket_id: int) -> TicketView:
        with self._sessions() as session:
            row = session.get(TicketRow, ticket_id)
            if row is None:
                raise NotFound("no such ticket")
            return self._view(session, row, self._clock())

    def _apply_bot(self, ticket_id: int, conversation_id: str, pause: bool) -> bool:
        """Pause or resume; True when it failed (recorded, retried by sync_bot)."""
        try:
            (self.control.pause if pause else self.control.resume)(conversation_id)
        except ControlFailed as exc:
            logger.warning("Could not %s conversation of ticket %s: %s", "pause" if pause else "resume", ticket_id, exc)
            return True
        with audit.transaction(self._sessions) as session:
            session.execute(update(TicketRow).where(TicketRow.id == ticket_id)
                            .values(bot_paused=pause, version=TicketRow.version + 1))
            audit.append(session, SYSTEM, "bot_paused" if pause else "bot_resumed", at=self._clock(),
                         conversation_id=conversation_id, ticket_id=ticket_id)
        return False

    def _take(self, row: TicketRow, staff_id: int, event: Event, now: dt.datetime) -> None:
        row.state = next_state(TicketState(row.state), event).value
        row.assignee_id = staff_id
        row.claimed_at = row.claimed_at or now
        row.waiting_since = None

    def _visible(self, session: Session, actor: Actor, ticket_id: int) -> TicketRow:
        _require_staff(actor)
        if actor.role is Role.ADMIN:
            raise Forbidden("administrators do not see patient conversations")
        row = session.get(TicketRow, ticket_id)
        if row is None:
            raise NotFound("no such ticket")
        if not (actor.sees_team(row.team) or row.assignee_id == actor.id):
            raise Forbidden("this ticket belongs to a team you are not in")
        return row

    def _views(self, session: Session, rows: List[TicketRow], now: dt.datetime,
               overdue_minutes: int) -> List[TicketView]:
        """Views of many tickets: one query for their conversations' languages and one for
        their assignees, whatever the number of rows."""
        languages = conversation_languages(session, (row.conversation_id for row in rows), self.catalogue)
        assignees = {row.assignee_id for row in rows if row.assignee_id}
        if assignees:  # loaded into the session: _view's session.get finds them there
            list(session.scalars(select(StaffRow).where(StaffRow.id.in_(sorted(assignees)))))
        return [self._view(session, row, now, overdue_minutes, languages[row.conversation_id]) for row in rows]

    def _view(self, session: Session, row: TicketRow, now: dt.datetime,
              overdue_minutes: Optional[int] = None, language: Optional[str] = None) -> TicketView:
        if overdue_minutes is None:
            overdue_minutes = self.settings().overdue_minutes
        if language is None:
            language = conversation_languages(session, [row.conversation_id], self.catalogue)[row.conversation_id]
        assignee = session.get(StaffRow, row.assignee_id).display_name if row.assignee_id else None
        state = TicketState(row.state)
        return TicketView(
            id=row.id, conversation_id=row.conversation_id, team=row.team, priority=Priority(row.priority),
            state=state, reason=row.reason, red_flag_category=row.red_flag_category,
            assignee_id=row.assignee_id, assignee=assignee, created_at=aware(row.created_at),
            opened_at=aware(row.opened_at), waiting_since=aware(row.waiting_since),
            claimed_at=aware(row.claimed_at), first_response_at=aware(row.first_response_at),
            resolved_at=aware(row.resolved_at), resolution_reason=row.resolution_reason,
            overdue_at=aware(row.overdue_at), reopen_count=row.reopen_count or 0,
            bot_paused=bool(row.bot_paused),
            sla=sla.compute(state=state, opened_at=row.opened_at, waiting_since=row.waiting_since,
                            first_response_at=row.first_response_at, resolved_at=row.resolved_at,
                            now=now, overdue_minutes=overdue_minutes),
            language=language,
            patient_label=friendly_label(row.conversation_id),
        )

    def _messages(self, session: Session, ticket_id: int) -> List[InboxMessage]:
        rows = session.execute(
            select(MessageRow, StaffRow.display_name).join(StaffRow, StaffRow.id == MessageRow.author_id)
            .where(MessageRow.ticket_id == ticket_id).order_by(MessageRow.id))
        return [self._message(message, author) for message, author in rows]

    def _message(self, row: MessageRow, author: str) -> InboxMessage:
        return InboxMessage(id=row.id, ticket_id=row.ticket_id, kind=MessageKind(row.kind), author=author,
                            text=self._open_text(row.text_encrypted), created_at=aware(row.created_at),
                            delivery=row.delivery, delivery_detail=row.delivery_detail)

    def _task(self, row: TaskRow) -> Task:
        return Task(id=row.id, conversation_id=row.conversation_id, ticket_id=row.ticket_id, team=row.team,
                    note=self._open_text(row.note_encrypted) if row.note_encrypted else "",
                    due_at=aware(row.due_at), state=row.state, created_by=row.created_by,
                    created_at=aware(row.created_at), done_at=aware(row.done_at))



def open_ticket(session: Session, conversation_id: str, team: str, reason: str, red_flag: Optional[str],
                contact_key: Optional[str], now: dt.datetime) -> Tuple[TicketRow, bool, bool, bool]:
    """The open/reuse/reopen/escalate step inside the caller's transaction (which must hold
    ``audit.transaction``). Returns (row, created, reopened, escalated). Used by
    ``Inbox.open_for_handoff`` and by ``HandoffRequests.record``."""
    check_conversation_id(conversation_id)
    team = _check_team(team)
    if reason not in HANDOFF_REASONS:
        raise InvalidInput(f"unknown handoff reason {reason!r}")
    emergency = reason == "emergency"
    priority = Priority.URGENT if emergency else Priority.NORMAL
    active = _active_ticket(session, conversation_id)
    if active is None:
        last = session.execute(
            select(TicketRow).where(TicketRow.conversation_id == conversation_id)
            .order_by(TicketRow.id.desc()).limit(1)
        ).scalar_one_or_none()
        if last is not None and aware(last.resolved_at) and now - aware(last.resolved_at) <= REOPEN_WITHIN:
            last.state = next_state(TicketState(last.state), Event.OPEN).value
            last.team, last.priority, last.reason = team, priority.value, reason
            last.red_flag_category = red_flag
            last.contact_key = contact_key or last.contact_key
            last.assignee_id = None
            last.opened_at = last.waiting_since = now
            last.claimed_at = last.first_response_at = last.resolved_at = None
            last.resolution_reason = last.overdue_at = None
            last.reopen_count = (last.reopen_count or 0) + 1
            session.flush()
            audit.append(session, BOT, "ticket_reopened", at=now, conversation_id=conversation_id,
                         ticket_id=last.id, detail=_open_detail(team, priority, reason, red_flag))
            return last, False, True, emergency
        row = TicketRow(
            conversation_id=conversation_id, contact_key=contact_key, team=team,
            priority=priority.value, state=next_state(None, Event.OPEN).value, reason=reason,
            red_flag_category=red_flag, created_at=now, opened_at=now, waiting_since=now,
            reopen_count=0, bot_paused=False,
        )
        session.add(row)
        session.flush()
        audit.append(session, BOT, "ticket_opened", at=now, conversation_id=conversation_id,
                     ticket_id=row.id, detail=_open_detail(team, priority, reason, red_flag))
        return row, True, False, emergency

    state = TicketState(active.state)
    next_state(state, Event.OPEN)  # always allowed for an active ticket; kept explicit
    escalated = False
    if emergency:
        escalated = True
        active.priority = Priority.URGENT.value
        active.red_flag_category = red_flag or active.red_flag_category
        active.reason = reason
        if active.team != Team.NURSE.value:
            # A red flag needs clinical triage: the nurse queue takes it over, urgently.
            # The bot stays paused if a human already had the conversation.
            active.team = Team.NURSE.value
            active.state = TicketState.WAITING.value
            active.assignee_id = None
            active.waiting_since = now
            active.overdue_at = None
    session.flush()
    audit.append(session, BOT, "emergency_escalated" if escalated else "handoff_repeated", at=now,
                 conversation_id=conversation_id, ticket_id=active.id,
                 detail=_open_detail(active.team, Priority(active.priority), reason, red_flag))
    return active, False, False, escalated


# ── helpers ─────────────────────────────────────────────────────────────────────────────
def _active_ticket(session: Session, conversation_id: str) -> Optional[TicketRow]:
    return session.execute(select(TicketRow).where(
        TicketRow.conversation_id == conversation_id, TicketRow.state != TicketState.RESOLVED.value)
    ).scalar_one_or_none()


def _timeline(transcript: List[TranscriptMessage], messages: List[InboxMessage]) -> List[TimelineItem]:
    in_transcript = {m.inbox_message_id for m in transcript if m.inbox_message_id is not None}
    notices = {m.id: m for m in messages if m.kind is MessageKind.NOTICE}
    items = []
    for m in transcript:
        notice = notices.get(m.inbox_message_id) if m.inbox_message_id is not None else None
        if notice is not None:  # the inbox's own words, not something staff typed
            items.append(TimelineItem(m.at, "notice", m.text, author=notice.author))
        else:
            items.append(TimelineItem(m.at, m.sender, m.text, buttons=m.buttons, tapped=m.tapped, wamid=m.wamid))
    sender = {MessageKind.NOTE: "note", MessageKind.NOTICE: "notice", MessageKind.REPLY: STAFF}
    for m in messages:
        if m.kind is not MessageKind.NOTE and m.id in in_transcript:
            continue  # the gateway appended it to the tracker: shown once
        items.append(TimelineItem(m.created_at, sender[m.kind], m.text,
                                  author=m.author, delivery=m.delivery, delivery_detail=m.delivery_detail))
    return sorted(items, key=lambda item: item.at)


def _send_safely(send: Callable[[], ReplyResult], message_id: int) -> ReplyResult:
    try:
        return send()
    except Exception as exc:  # noqa: BLE001 - a gateway bug must not lose the message
        logger.exception("Reply gateway failed (message %s)", message_id)
        return ReplyResult(Delivery.FAILED, f"could not send ({exc.__class__.__name__}); try again")


def _first_name(staff: StaffRow) -> Optional[str]:
    """The first word of the staff member's display name, for the patient; None when the
    account has none of its own (it then holds the login name, which is not for patients)."""
    name = (staff.display_name or "").strip()
    if not name or name == staff.username:
        return None
    return name.split()[0]


def _queue_rows(session: Session, teams: List[str]) -> List[TicketRow]:
    return list(session.scalars(select(TicketRow).where(
        TicketRow.state != TicketState.RESOLVED.value, TicketRow.team.in_(teams))))


def _my_rows(session: Session, actor: Actor) -> List[TicketRow]:
    return list(session.scalars(select(TicketRow).where(
        TicketRow.assignee_id == actor.id, TicketRow.state == TicketState.ASSIGNED.value)))


def _resolved_rows(session: Session, teams: List[str], limit: int) -> List[TicketRow]:
    return list(session.scalars(select(TicketRow).where(
        TicketRow.state == TicketState.RESOLVED.value, TicketRow.team.in_(teams))
        .order_by(TicketRow.resolved_at.desc()).limit(limit)))


def _by_team(teams: List[str], views: List[TicketView]) -> Dict[str, List[TicketView]]:
    result: Dict[str, List[TicketView]] = {team: [] for team in teams}
    for view in sorted(views, key=_queue_order):
        result[view.team].append(view)
    return result


def _queue_order(view: TicketView):
    return (view.state is not TicketState.WAITING, view.priority is not Priority.URGENT,
            not view.sla.overdue, view.waiting_since or view.opened_at, view.id)


def _visible_teams(actor: Actor) -> List[str]:
    _require_staff(actor)
    if actor.role is Role.SUPERVISOR:
        return [team.value for team in Team]
    if actor.role is Role.AGENT:
        return [team.value for team in Team if team.value in actor.teams]
    raise Forbidden("administrators do not see patient conversations")


def _require_staff(actor: Actor) -> None:
    if not actor.is_staff or actor.role is None:
        raise Forbidden("staff only")


def _require_role(actor: Actor, role: Role) -> None:
    _require_staff(actor)
    if actor.role is not role:
        raise Forbidden(f"{role.value}s only")


def _require_team(actor: Actor, team: str, what: str) -> None:
    _require_staff(actor)
    if not actor.sees_team(team):
        raise Forbidden(f"you can only {what} your own teams")


def _require_owner(actor: Actor, row: TicketRow) -> None:
    if actor.role is not Role.SUPERVISOR and row.assignee_id != actor.id:
        raise Forbidden("only the staff member who has claimed the ticket (or a supervisor) can do this")


def _check_team(team: str) -> str:
    try:
        return Team(str(team).strip().lower()).value
    except ValueError:
        raise InvalidInput(f"unknown team {team!r}; teams: {', '.join(t.value for t in Team)}") from None


def _check_text(text: str, limit: int, what: str) -> str:
    text = (text or "").strip()
    if not text:
        raise InvalidInput(f"the {what} is empty")
    if len(text) > limit:
        raise InvalidInput(f"a {what} has at most {limit} characters")
    return text


def _check_setting(key: str, value: object, source: Optional[str] = None) -> int:
    low, high = InboxSettings.LIMITS[key]
    try:
        number = int(str(value).strip())
    except ValueError:
        number = None
    if number is None or not low <= number <= high:
        raise InvalidInput(f"{source or key} must be a whole number of minutes from {low} to {high}")
    return number


def open_staff_text(stored: str, cipher: ContactCipher, sealer: Sealer) -> str:
    """A staff reply, note or call-back note as stored: sealed with the clinic's keyring, or,
    written before the keyring, with the single Fernet key. (Also read by access on request,
    clinic/privacy_access.py.)"""
    if Sealer.key_id_of(stored) is None:
        return cipher.decrypt(stored)
    return sealer.open(stored)


def _open_detail(team: str, priority: Priority, reason: str, red_flag: Optional[str]) -> str:
    detail = f"team={team} priority={priority.value} reason={reason}"
    return detail + (f" red_flag={red_flag}" if red_flag else "")
