"""What the conversation side (the actions, the WhatsApp connector) asks of the inbox:
how long a patient will probably wait, a call-back request, the patient's 1-5 rating after
a resolved conversation, and whether a human currently owns the conversation.

Kept apart from ``Inbox`` (the staff operations) because the action server has no staff
member, no Rasa HTTP client and no reply gateway: it only reads queues and writes the
patient's own requests, each with its audit row (actor ``bot``).
"""

from __future__ import annotations

import datetime as dt
import os
from typing import Callable, Optional

from sqlalchemy import func, select
from sqlalchemy.orm import sessionmaker

from clinic.clock import utcnow
from clinic.inbox import audit
from clinic.inbox.model import BOT, InvalidInput, TicketState, aware, check_conversation_id
from clinic.inbox.tables import HandoffRatingRow, TaskRow, TicketRow

DEFAULT_MINUTES_PER_WAITING_PATIENT = 5
RATE_WITHIN = dt.timedelta(hours=24)  # a rating belongs to a ticket resolved this recently


class PatientSide:
    def __init__(self, session_factory: sessionmaker, minutes_per_patient: Optional[int] = None,
                 clock: Callable[[], dt.datetime] = utcnow) -> None:
        self._sessions = session_factory
        if minutes_per_patient is None:
            # How long staff take per waiting patient, on average (a clinic setting).
            minutes_per_patient = int(os.environ.get("INBOX_MINUTES_PER_WAITING_PATIENT")
                                      or DEFAULT_MINUTES_PER_WAITING_PATIENT)
        self.minutes_per_patient = max(1, minutes_per_patient)
        self._clock = clock

    # ── queue ────────────────────────────────────────────────────────────────────────
    def waiting_ahead(self, team: str, conversation_id: Optional[str] = None) -> int:
        """Waiting tickets of ``team`` queued before this conversation's (all, if it has none)."""
        with self._sessions() as session:
            mine = self._active(session, conversation_id) if conversation_id else None
            query = select(func.count()).select_from(TicketRow).where(
                TicketRow.team == team, TicketRow.state == TicketState.WAITING.value)
            if mine is not None and mine.waiting_since is not None:
                query = query.where(TicketRow.id != mine.id, TicketRow.waiting_since <= mine.waiting_since)
            return int(session.execute(query).scalar_one())

    def expected_wait_minutes(self, team: str, conversation_id: Optional[str] = None) -> int:
        """A plain estimate: (patients ahead + this one) × minutes per patient."""
        return (self.waiting_ahead(team, conversation_id) + 1) * self.minutes_per_patient

    def mode(self, conversation_id: str) -> str:
        """``human`` while a staff member owns the conversation, else ``bot``."""
        with self._sessions() as session:
            active = self._active(session, conversation_id)
            return "human" if active is not None and active.claimed_at is not None else "bot"

    # ── the patient's requests ───────────────────────────────────────────────────────
    def request_callback(self, conversation_id: str, team: str) -> int:
        """A call-back task for ``team`` (linked to the active ticket, if any). Returns its id."""
        check_conversation_id(conversation_id)

        def run() -> int:
            now = self._clock()
            with audit.transaction(self._sessions) as session:
                active = self._active(session, conversation_id)
                row = TaskRow(conversation_id=conversation_id, ticket_id=active.id if active else None,
                              team=team, note_encrypted=None, due_at=None, state="open",
                              created_by=BOT.username, created_at=now)
                session.add(row)
                session.flush()
                audit.append(session, BOT, "task_created", at=now, conversation_id=conversation_id,
                             ticket_id=row.ticket_id, detail=f"task={row.id} team={team} callback_request")
                return row.id
        return audit.retrying(run)

    def rate(self, conversation_id: str, rating: int) -> Optional[int]:
        """Store ``rating`` (1-5) for the conversation's most recently resolved ticket (within
        RATE_WITHIN). Returns the ticket id, or None when there is nothing to rate."""
        check_conversation_id(conversation_id)
        if not 1 <= int(rating) <= 5:
            raise InvalidInput("a rating is a whole number from 1 to 5")

        def run() -> Optional[int]:
            now = self._clock()
            with audit.transaction(self._sessions) as session:
                ticket = session.execute(
                    select(TicketRow).where(TicketRow.conversation_id == conversation_id,
                                            TicketRow.state == TicketState.RESOLVED.value)
                    .order_by(TicketRow.resolved_at.desc()).limit(1)).scalar_one_or_none()
                if ticket is None or now - aware(ticket.resolved_at) > RATE_WITHIN:
                    return None
                row = session.execute(select(HandoffRatingRow).where(
                    HandoffRatingRow.ticket_id == ticket.id)).scalar_one_or_none()
                if row is None:
                    session.add(HandoffRatingRow(ticket_id=ticket.id, conversation_id=conversation_id,
                                                 team=ticket.team, rating=int(rating), created_at=now))
                else:
                    row.rating, row.created_at = int(rating), now
                audit.append(session, BOT, "handoff_rated", at=now, conversation_id=conversation_id,
                             ticket_id=ticket.id, detail=f"rating={int(rating)} team={ticket.team}")
                return ticket.id
        return audit.retrying(run)

    def rating_for(self, ticket_id: int) -> Optional[int]:
        with self._sessions() as session:
            row = session.execute(select(HandoffRatingRow).where(
                HandoffRatingRow.ticket_id == ticket_id)).scalar_one_or_none()
            return row.rating if row else None

    @staticmethod
    def _active(session, conversation_id: str) -> Optional[TicketRow]:
        return session.execute(select(TicketRow).where(
            TicketRow.conversation_id == conversation_id,
            TicketRow.state != TicketState.RESOLVED.value)).scalar_one_or_none()


def claimed_by_staff(session_factory: sessionmaker, conversation_id: str) -> bool:
    """Whether a staff member has claimed the conversation's open ticket — one indexed query.
    Only such a conversation can be paused (the inbox pauses on claim, resumes on resolve):
    the gateway asks before each turn, so Rasa's process needn't load the tracker to know."""
    with session_factory() as session:
        return session.execute(select(TicketRow.id).where(
            TicketRow.conversation_id == conversation_id, TicketRow.state != "resolved",
            TicketRow.claimed_at.is_not(None)).limit(1)).first() is not None
