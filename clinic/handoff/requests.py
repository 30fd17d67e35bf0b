"""Recorded requests to talk to a human.

Until the staff inbox exists this is the durable record of who asked for whom and how
urgently, so no request is lost and the inbox can start from it. Stores no message text:
only a pseudonymous contact key, the team, the reason and, for emergencies, the red-flag
category (which staff need for triage).
"""

from __future__ import annotations

import datetime as dt
import enum
from typing import Optional

from sqlalchemy import Column, DateTime, Integer, String, select
from sqlalchemy.orm import sessionmaker

from clinic.db import Base
from clinic.handoff.teams import Team


class Reason(str, enum.Enum):
    PATIENT_REQUEST = "patient_request"
    EMERGENCY = "emergency"


class Priority(str, enum.Enum):
    NORMAL = "normal"
    URGENT = "urgent"


class HandoffRequest(Base):
    __tablename__ = "handoff_requests"

    id = Column(Integer, primary_key=True)
    contact_key = Column(String(64), nullable=False, index=True)
    team = Column(String(16), nullable=False)
    reason = Column(String(32), nullable=False)
    priority = Column(String(16), nullable=False)
    red_flag_category = Column(String(64), nullable=True)
    status = Column(String(16), nullable=False, default="open")
    created_at = Column(DateTime(timezone=True), nullable=False)


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
    ) -> HandoffRequest:
        priority = Priority.URGENT if reason is Reason.EMERGENCY else Priority.NORMAL
        request = HandoffRequest(
            contact_key=contact_key,
            team=team.value,
            reason=reason.value,
            priority=priority.value,
            red_flag_category=red_flag_category,
            status="open",
            created_at=now or dt.datetime.now(dt.timezone.utc),
        )
        with self._sessions() as session, session.begin():
            session.add(request)
        return request

    def open_requests(self, contact_key: Optional[str] = None) -> list[HandoffRequest]:
        query = select(HandoffRequest).where(HandoffRequest.status == "open")
        if contact_key:
            query = query.where(HandoffRequest.contact_key == contact_key)
        with self._sessions() as session:  # type: Session
            return list(session.scalars(query.order_by(HandoffRequest.id)))
