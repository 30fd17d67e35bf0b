"""WhatsApp voice calls between staff and patients (issue 19, item 1): what the inbox asks
for, what the gateway sends and what Meta reports, in the clinic's database.

Two tables:

- ``wa_calls``: one row per call, keyed by the conversation's pseudonym (never a phone
  number): direction, who placed or took it (staff id), the ticket and team, its state, and
  once over its outcome, start, end and duration. Never audio. The SDPs (the two ends'
  session descriptions, which carry network addresses) are kept only while the call is
  being set up or running, and erased when it ends.
- ``wa_call_actions``: the queue of call actions for the gateway (the one process that
  talks to Meta): ``connect`` (the staff browser's SDP offer), ``pre_accept`` / ``accept``
  (its SDP answer), ``reject``, ``terminate``. The inbox inserts, the gateway claims one at
  a time (an atomic queued → sending update) and records the outcome.

States of a call: ``requested`` (the inbox asked, the gateway has not sent it yet) →
``ringing`` → ``accepted`` → ``ended``; or ``failed`` (Meta refused the connect). A
user-initiated call starts ``ringing`` and may be ``pre_accepted``. Outcomes: ``completed``
(picked up), ``rejected`` (declined by either side), ``missed`` (never picked up),
``failed``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Iterable, List, Optional

from sqlalchemy import Column, DateTime, ForeignKey, Index, Integer, String, Text, select, update
from sqlalchemy.orm import sessionmaker

from clinic.clock import utcnow
from clinic.db import Base

BUSINESS, USER = "business", "user"
REQUESTED, RINGING, PRE_ACCEPTED, ACCEPTED, ENDED, FAILED = (
    "requested", "ringing", "pre_accepted", "accepted", "ended", "failed")
OPEN_STATES = (REQUESTED, RINGING, PRE_ACCEPTED, ACCEPTED)
COMPLETED, REJECTED, MISSED = "completed", "rejected", "missed"
QUEUED, SENDING, SENT = "queued", "sending", "sent"
# What staff may ask for, by the call's direction and state.
ALLOWED = {
    "pre_accept": (USER, (RINGING,)),
    "accept": (USER, (RINGING, PRE_ACCEPTED)),
    "reject": (USER, (RINGING, PRE_ACCEPTED)),
    "terminate": (None, (REQUESTED, RINGING, PRE_ACCEPTED, ACCEPTED)),
}
OPAQUE_PREFIX = "call:"


class CallError(ValueError):
    """A call action that does not fit the call (its direction or state); the message says why."""


class CallRow(Base):
    __tablename__ = "wa_calls"
    __table_args__ = (Index("ix_wa_calls_state", "state", "team"),)

    id = Column(Integer, primary_key=True)
    call_id = Column(String(191), nullable=True, unique=True)  # Meta's wacid…, once known
    conversation_id = Column(String(64), nullable=False, index=True)
    ticket_id = Column(Integer, nullable=True)
    team = Column(String(16), nullable=True)
    direction = Column(String(8), nullable=False)  # business | user
    state = Column(String(12), nullable=False)
    outcome = Column(String(12), nullable=True)
    staff_id = Column(Integer, nullable=True)  # who placed or took it
    offer_sdp = Column(Text, nullable=True)
    answer_sdp = Column(Text, nullable=True)
    error = Column(String(300), nullable=True)
    created_at = Column(DateTime(timezone=True), nullable=False)
    updated_at = Column(DateTime(timezone=True), nullable=False)
    started_at = Column(DateTime(timezone=True), nullable=True)
    ended_at = Column(DateTime(timezone=True), nullable=True)
    duration_seconds = Column(Integer, nullable=True)


class CallActionRow(Base):
    __tablename__ = "wa_call_actions"
    __table_args__ = (Index("ix_wa_call_actions_queue", "state", "id"),)

    id = Column(Integer, primary_key=True)
    call_row_id = Column(Integer, ForeignKey("wa_calls.id"), nullable=False, index=True)
    action = Column(String(12), nullable=False)
    sdp = Column(Text, nullable=True)
    state = Column(String(8), nullable=False)  # queued | sending | sent | failed
    error = Column(String(300), nullable=True)
    created_at = Column(DateTime(timezone=True), nullable=False)
    done_at = Column(DateTime(timezone=True), nullable=True)


class CallPermissionRow(Base):
    """The patient's last answer to a call-permission request (``call_permission_reply``):
    whether, and until when, the clinic may call them."""

    __tablename__ = "wa_call_permissions"

    conversation_id = Column(String(64), primary_key=True)
    response = Column(String(8), nullable=False)  # accept | reject
    source = Column(String(16), nullable=False)  # user_action | automatic
    expires_at = Column(DateTime(timezone=True), nullable=True)
    answered_at = Column(DateTime(timezone=True), nullable=False)


@dataclasses.dataclass(frozen=True)
class CallPermission:
    response: str
    source: str
    expires_at: Optional[dt.datetime]
    answered_at: dt.datetime

    def allowed(self, now: dt.datetime) -> bool:
        return self.response == "accept" and (self.expires_at is None or self.expires_at > now)


@dataclasses.dataclass(frozen=True)
class Call:
    id: int
    call_id: Optional[str]
    conversation_id: str
    ticket_id: Optional[int]
    team: Optional[str]
    direction: str
    state: str
    outcome: Optional[str]
    staff_id: Optional[int]
    offer_sdp: Optional[str]
    answer_sdp: Optional[str]
    error: Optional[str]
    created_at: dt.datetime
    started_at: Optional[dt.datetime]
    ended_at: Optional[dt.datetime]
    duration_seconds: Optional[int]

    @property
    def open(self) -> bool:
        return self.state in OPEN_STATES


@dataclasses.dataclass(frozen=True)
class CallAction:
    id: int
    call: Call
    action: str
    sdp: Optional[str]


def _aware(value: Optional[dt.datetime]) -> Optional[dt.datetime]:
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=dt.timezone.utc)  # SQLite returns naive datetimes
    return value


def _call(row: CallRow) -> Call:
    return Call(id=row.id, call_id=row.call_id, conversation_id=row.conversation_id, ticket_id=row.ticket_id,
                team=row.team, direction=row.direction, state=row.state, outcome=row.outcome,
                staff_id=row.staff_id, offer_sdp=row.offer_sdp, answer_sdp=row.answer_sdp, error=row.error,
                created_at=_aware(row.created_at) or utcnow(), started_at=_aware(row.started_at),
                ended_at=_aware(row.ended_at), duration_seconds=row.duration_seconds)


def opaque_for(row_id: int) -> str:
    """``biz_opaque_callback_data`` of a call: Meta echoes it in the call's status webhooks,
    which may arrive before the connect's answer names the call."""
    return f"{OPAQUE_PREFIX}{row_id}"


def _row_of_opaque(opaque: Optional[str]) -> Optional[int]:
    if opaque and opaque.startswith(OPAQUE_PREFIX) and opaque[len(OPAQUE_PREFIX):].isdigit():
        return int(opaque[len(OPAQUE_PREFIX):])
    return None


class CallStore:
    def __init__(self, sessions: sessionmaker) -> None:
        self._sessions = sessions

    # ── the inbox ──────────────────────────────────────────────────────────────────────
    def place(self, conversation_id: str, offer_sdp: str, *, staff_id: int, ticket_id: Optional[int],
              team: Optional[str]) -> Call:
        """A staff member calls the patient: the call and its ``connect`` queued for the gateway."""
        now = utcnow()
        with self._sessions() as session, session.begin():
            busy = session.execute(select(CallRow.id).where(
                CallRow.conversation_id == conversation_id, CallRow.state.in_(OPEN_STATES))).first()
            if busy is not None:
                raise CallError("a call with this patient is already in progress")
            row = CallRow(conversation_id=conversation_id, ticket_id=ticket_id, team=team, direction=BUSINESS,
                          state=REQUESTED, staff_id=staff_id, offer_sdp=offer_sdp, created_at=now, updated_at=now)
            session.add(row)
            session.flush()
            session.add(CallActionRow(call_row_id=row.id, action="connect", sdp=offer_sdp, state=QUEUED,
                                      created_at=now))
            return _call(row)

    def ask(self, row_id: int, action: str, *, staff_id: int, sdp: Optional[str] = None) -> Call:
        """Staff answer, decline or end a call: the action queued for the gateway."""
        if action not in ALLOWED:
            raise CallError(f"unknown call action {action!r}")
        direction, states = ALLOWED[action]
        now = utcnow()
        with self._sessions() as session, session.begin():
            row = session.get(CallRow, row_id)
            if row is None:
                raise CallError("no such call")
            if direction is not None and row.direction != direction:
                raise CallError(f"{action} is only for calls from the patient")
            if row.state not in states:
                raise CallError(f"the call is {row.state}: {action} no longer applies")
            if action in ("pre_accept", "accept"):
                if not sdp:
                    raise CallError(f"{action} needs the browser's SDP answer")
                row.answer_sdp = sdp
                row.staff_id = staff_id
            if action == "terminate" and row.state == REQUESTED:
                # Not sent yet: nothing to end at Meta, the connect is withdrawn.
                session.execute(update(CallActionRow).where(
                    CallActionRow.call_row_id == row.id, CallActionRow.state == QUEUED).values(
                    state=FAILED, error="withdrawn", done_at=now))
                self._end(row, MISSED, now)
                return _call(row)
            row.updated_at = now
            session.add(CallActionRow(call_row_id=row.id, action=action, sdp=sdp, state=QUEUED, created_at=now))
            return _call(row)

    def get(self, row_id: int) -> Optional[Call]:
        with self._sessions() as session:
            row = session.get(CallRow, row_id)
            return _call(row) if row is not None else None

    def for_conversation(self, conversation_id: str) -> List[Call]:
        with self._sessions() as session:
            rows = session.scalars(select(CallRow).where(CallRow.conversation_id == conversation_id)
                                   .order_by(CallRow.id)).all()
            return [_call(row) for row in rows]

    def ringing(self, teams: Optional[Iterable[str]] = None) -> List[Call]:
        """Patients' calls waiting to be answered, for these teams (None: every team)."""
        query = select(CallRow).where(CallRow.direction == USER, CallRow.state.in_((RINGING, PRE_ACCEPTED)))
        if teams is not None:
            query = query.where(CallRow.team.in_(list(teams)))
        with self._sessions() as session:
            return [_call(row) for row in session.scalars(query.order_by(CallRow.id)).all()]

    # ── the gateway: the action queue ──────────────────────────────────────────────────
    def claim_next_action(self) -> Optional[CallAction]:
        with self._sessions() as session, session.begin():
            for action in session.scalars(select(CallActionRow).where(CallActionRow.state == QUEUED)
                                          .order_by(CallActionRow.id).limit(10)).all():
                taken = session.execute(update(CallActionRow).where(
                    CallActionRow.id == action.id, CallActionRow.state == QUEUED).values(state=SENDING))
                if taken.rowcount == 1:
                    row = session.get(CallRow, action.call_row_id)
                    return CallAction(id=action.id, call=_call(row), action=action.action, sdp=action.sdp)
        return None

    def action_sent(self, action_id: int, call_id: Optional[str] = None) -> None:
        now = utcnow()
        with self._sessions() as session, session.begin():
            action = session.get(CallActionRow, action_id)
            if action is None:
                return
            action.state, action.done_at, action.sdp = SENT, now, None
            row = session.get(CallRow, action.call_row_id)
            if action.action == "connect" and call_id:
                row.call_id = call_id
                if row.state == REQUESTED:
                    row.state = RINGING
            elif action.action == "pre_accept" and row.state == RINGING:
                row.state = PRE_ACCEPTED
            elif action.action == "accept" and row.state in (RINGING, PRE_ACCEPTED):
                row.state, row.started_at = ACCEPTED, now
            elif action.action == "reject":
                self._end(row, REJECTED, now)
            row.updated_at = now

    def action_failed(self, action_id: int, error: str) -> None:
        """Meta refused (or never got) the action. A refused connect fails the call; a
        refused answer leaves the call to Meta's own terminate webhook."""
        now = utcnow()
        with self._sessions() as session, session.begin():
            action = session.get(CallActionRow, action_id)
            if action is None:
                return
            action.state, action.done_at, action.error, action.sdp = FAILED, now, error[:300], None
            row = session.get(CallRow, action.call_row_id)
            row.error = error[:300]
            if action.action == "connect":
                row.state, row.outcome, row.ended_at = FAILED, FAILED, now
                row.offer_sdp = row.answer_sdp = None
            row.updated_at = now

    # ── call permissions ───────────────────────────────────────────────────────────────
    def record_permission(self, conversation_id: str, response: str, source: str,
                          expires_at: Optional[dt.datetime], answered_at: Optional[dt.datetime] = None) -> None:
        with self._sessions() as session, session.begin():
            row = session.get(CallPermissionRow, conversation_id)
            if row is None:
                row = CallPermissionRow(conversation_id=conversation_id)
                session.add(row)
            row.response, row.source, row.expires_at = response, source[:16], expires_at
            row.answered_at = answered_at or utcnow()

    def permission(self, conversation_id: str) -> Optional[CallPermission]:
        with self._sessions() as session:
            row = session.get(CallPermissionRow, conversation_id)
            if row is None:
                return None
            return CallPermission(response=row.response, source=row.source, expires_at=_aware(row.expires_at),
                                  answered_at=_aware(row.answered_at) or utcnow())

    # ── the gateway: what Meta reports ─────────────────────────────────────────────────
    def _find(self, session, call_id: str, opaque: Optional[str]) -> Optional[CallRow]:
        row = session.scalars(select(CallRow).where(CallRow.call_id == call_id)).first()
        if row is None:
            row_id = _row_of_opaque(opaque)
            row = session.get(CallRow, row_id) if row_id is not None else None
            if row is not None and row.call_id is None:
                row.call_id = call_id
        return row

    def incoming(self, call_id: str, conversation_id: str, offer_sdp: str, *, team: str,
                 ticket_id: Optional[int]) -> Optional[Call]:
        """A patient calls the clinic (a ``connect`` webhook with their offer). None when
        already recorded (a redelivered webhook)."""
        now = utcnow()
        with self._sessions() as session, session.begin():
            if session.scalars(select(CallRow.id).where(CallRow.call_id == call_id)).first() is not None:
                return None
            row = CallRow(call_id=call_id, conversation_id=conversation_id, ticket_id=ticket_id, team=team,
                          direction=USER, state=RINGING, offer_sdp=offer_sdp, created_at=now, updated_at=now)
            session.add(row)
            session.flush()
            return _call(row)

    def answered(self, call_id: str, answer_sdp: str, opaque: Optional[str] = None) -> Optional[Call]:
        """The patient picked up a business-initiated call (``connect`` with their answer)."""
        now = utcnow()
        with self._sessions() as session, session.begin():
            row = self._find(session, call_id, opaque)
            if row is None or row.direction != BUSINESS or row.state not in OPEN_STATES:
                return None
            row.answer_sdp, row.state = answer_sdp, ACCEPTED
            row.started_at = row.started_at or now
            row.updated_at = now
            return _call(row)

    def status(self, call_id: str, status: str, opaque: Optional[str] = None) -> Optional[Call]:
        """``RINGING`` / ``ACCEPTED`` / ``REJECTED`` of a business-initiated call."""
        now = utcnow()
        with self._sessions() as session, session.begin():
            row = self._find(session, call_id, opaque)
            if row is None or row.state not in OPEN_STATES:
                return None
            if status == "RINGING" and row.state == REQUESTED:
                row.state = RINGING
            elif status == "ACCEPTED" and row.state in (REQUESTED, RINGING):
                row.state, row.started_at = ACCEPTED, row.started_at or now
            elif status == "REJECTED":
                row.outcome = REJECTED  # the terminate webhook that follows ends it
            row.updated_at = now
            return _call(row)

    def terminated(self, call_id: str, *, completed: bool, start: Optional[dt.datetime],
                   end: Optional[dt.datetime], duration: Optional[int], opaque: Optional[str] = None,
                   error: Optional[str] = None) -> Optional[Call]:
        """Meta's ``terminate``: the call is over, its outcome and times recorded, SDPs erased."""
        now = utcnow()
        with self._sessions() as session, session.begin():
            row = self._find(session, call_id, opaque)
            if row is None:
                return None
            if row.state == ENDED and row.duration_seconds is not None:
                return _call(row)  # a redelivery
            picked_up = completed and (duration is not None or row.started_at is not None)
            outcome = COMPLETED if picked_up else (row.outcome if row.outcome == REJECTED else MISSED)
            if row.state == ENDED:
                outcome = row.outcome or outcome
            row.started_at = start or row.started_at
            if error:
                row.error = error[:300]
            self._end(row, outcome, end or now)
            if duration is not None:
                row.duration_seconds = duration
            return _call(row)

    @staticmethod
    def _end(row: CallRow, outcome: str, at: dt.datetime) -> None:
        row.state, row.outcome = ENDED, outcome
        row.ended_at = row.ended_at or at
        if row.duration_seconds is None and row.started_at is not None and outcome == COMPLETED:
            row.duration_seconds = max(0, int((_aware(row.ended_at) - _aware(row.started_at)).total_seconds()))
        row.offer_sdp = row.answer_sdp = None  # network addresses: not kept once the call is over
        row.updated_at = at
