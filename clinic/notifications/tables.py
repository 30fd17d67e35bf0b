"""Notifications received from the clinic's systems (``POST /api/v1/notifications``).

One row per ``event_id`` (the caller's id): a retried call finds the row and sends nothing
again. ``request_hash`` is the SHA-256 of the canonical request, so the same id with a
different body is a conflict (409), not a silent overwrite. ``params`` holds only the
validated, non-clinical parameters (enums, dates, ticket numbers, opaque document ids).

The message itself goes out through the reminder machinery: ``job_id`` is a row of
``reminder_jobs`` of kind ``notify_<type>``, claimed by the reminder scheduler and sent
exactly once by ``action_send_notification`` (see clinic/reminders/dispatcher.py).
"""

from __future__ import annotations

from sqlalchemy import Column, Index, String, Text

from clinic.db import Base
from clinic.scheduling.tables import UTCDateTime


class NotificationRow(Base):
    __tablename__ = "notifications"

    event_id = Column(String(64), primary_key=True)
    type = Column(String(24), nullable=False)
    patient_id = Column(String(32), nullable=False)
    params = Column(Text, nullable=False)  # JSON, validated and PHI-checked
    request_hash = Column(String(64), nullable=False)
    job_id = Column(String(20), nullable=True)
    created_by = Column(String(80), nullable=False)  # api:<key name>
    created_at = Column(UTCDateTime, nullable=False)

    __table_args__ = (
        Index("ix_notifications_job", "job_id"),
        Index("ix_notifications_patient", "patient_id"),
    )
