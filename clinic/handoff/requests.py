"""Recorded requests to talk to a human.

The durable record of who asked for whom and how urgently. Stores no message text: only a
pseudonymous contact key, the team, the reason and, for emergencies, the red-flag category
(which staff need for triage). Given the conversation id (the channel's pseudonym, which
Rasa and the inbox know the conversation by), ``record`` also opens — or reuses, raises to
urgent, reopens — the conversation's staff-inbox ticket in the same transaction, so a
request is never recorded without reaching a queue (see clinic/inbox).
"""

from __future__ import annotations

import datetime as dt
from typing import Optional

from sqlalchemy import select, update
from sqlalchemy.orm import sessionmaker

from clinic.handoff.tables import HandoffRequest, Priority, Reason
from clinic.handoff.teams import Team
from clinic.inbox import audit
from clinic.inbox.service import open_ticket

__all__ = ["HandoffRequest", "HandoffRequests", "Priority", "Reason"]


class HandoffRequests:
    """Writes and reads handoff requests through a session factory."""

    def __init__(self, session_factory: sessionmaker):
        self._sessions = session_factory

    def record(
        self,
        contact_key: str,
        team: Team,
        reason: Reason,
        red_flag_category: Optional[str] = None,
        now: Optional[dt.datetime] = None,
        conversation_id: Optional[str] = None,
    ) -> HandoffRequest:
        priority = Priority.URGENT if reason is Reason.EMERGENCY else Priority.NORMAL
        now = now or dt.datetime.now(dt.timezone.utc)

        def build() -> HandoffRequest:
            return HandoffRequest(
                contact_key=contact_key,
                team=team.value,
                reason=reason.value,
                priority=priority.value,
                red_flag_category=red_flag_category,
                status="open",
                created_at=now,
            )

        if conversation_id is None:
            request = build()
            with self._sessions() as session, session.begin():
                session.add(request)
            return request

        def run() -> HandoffRequest:
            request = build()
            with audit.transaction(self._sessions) as session:
                session.add(request)
                open_ticket(session, conversation_id, team.value, reason.value, red_flag_category,
                            contact_key, now)
            return request

        return audit.retrying(run)

    def close_for(self, contact_key: str) -> int:
        """Mark a contact's open requests done (the inbox resolved their ticket)."""
        with self._sessions() as session, session.begin():
            result = session.execute(
                update(HandoffRequest)
                .where(HandoffRequest.contact_key == contact_key, HandoffRequest.status == "open")
                .values(status="closed")
            )
            return result.rowcount

    def open_requests(self, contact_key: Optional[str] = None) -> list[HandoffRequest]:
        query = select(HandoffRequest).where(HandoffRequest.status == "open")
        if contact_key:
            query = query.where(HandoffRequest.contact_key == contact_key)
        with self._sessions() as session:  # type: Session
            return list(session.scalars(query.order_by(HandoffRequest.id)))
