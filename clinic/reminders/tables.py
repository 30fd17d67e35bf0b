"""Tables of the reminder jobs and of the recalls they come from.

``reminder_jobs``: one row per message the clinic intends to send on its own initiative.

* ``kind``: appointment reminders (``appointment_24h``, ``appointment_2h`` — one kind per
  configured offset, ``appointment_<hours>h``), ``followup`` after a fulfilled visit, and
  ``recall`` (vaccination/screening due).
* ``status``: ``pending`` → ``dispatching`` (claimed by a scheduler, pushed to Rasa) →
  ``sent`` (the Rasa action handed the template to the channel), or ``skipped`` with a
  ``reason`` (cancelled, moved, opted out, expired, quiet hours...) or ``failed`` with the
  last error. Every transition is a conditional UPDATE (see ``store.py``).
* Unique per ``(appointment_id, kind)`` and ``(recall_id, kind)``: a booking change re-plans
  the same row, nothing is ever planned twice.
* Who to write to is stored as pseudonyms only (contact key, Rasa conversation id, which on
  WhatsApp is itself a keyed hash): no phone number, no health information. ``planned_for``
  is the appointment start the job was planned for, so a moved appointment is noticed.

``recall_due``: synthetic recalls (a vaccination or screening falls due on a date). The
``topic`` is kept for the clinic's own lists and never leaves the database in a message.
"""

from __future__ import annotations

import secrets

from sqlalchemy import CheckConstraint, Column, Date, Index, Integer, String, UniqueConstraint

import clinic.consent  # noqa: F401  (its tables are part of this schema and migration)
from clinic.db import Base
from clinic.scheduling.tables import UTCDateTime

KIND_FOLLOWUP = "followup"
KIND_RECALL = "recall"
APPOINTMENT_KIND_PREFIX = "appointment_"

PENDING = "pending"
DISPATCHING = "dispatching"
SENT = "sent"
SKIPPED = "skipped"
FAILED = "failed"
STATUSES = (PENDING, DISPATCHING, SENT, SKIPPED, FAILED)

RECALL_OPEN = "open"  # not planned yet
RECALL_PLANNED = "planned"  # a job exists
RECALL_DONE = "done"  # the patient booked / was seen
RECALL_CANCELLED = "cancelled"
RECALL_STATUSES = (RECALL_OPEN, RECALL_PLANNED, RECALL_DONE, RECALL_CANCELLED)


def appointment_kind(offset_hours: float) -> str:
    """``24`` -> ``appointment_24h``; ``1.5`` -> ``appointment_90m``."""
    if float(offset_hours).is_integer():
        return f"{APPOINTMENT_KIND_PREFIX}{int(offset_hours)}h"
    return f"{APPOINTMENT_KIND_PREFIX}{round(offset_hours * 60)}m"


def is_appointment_kind(kind: str) -> bool:
    return kind.startswith(APPOINTMENT_KIND_PREFIX)


def new_job_id() -> str:
    # Opaque: it travels in an external event and appears in logs.
    return "rem_" + secrets.token_hex(6)


def new_recall_id() -> str:
    return "rcl_" + secrets.token_hex(6)


class ReminderJobRow(Base):
    __tablename__ = "reminder_jobs"

    id = Column(String(20), primary_key=True)
    kind = Column(String(24), nullable=False)
    appointment_id = Column(String(64), nullable=True)
    recall_id = Column(String(20), nullable=True)
    patient_id = Column(String(64), nullable=False)
    contact_key = Column(String(64), nullable=False)
    conversation_id = Column(String(128), nullable=False)
    channel = Column(String(32), nullable=False)
    planned_for = Column(UTCDateTime, nullable=True)  # appointment start when planned
    due_at = Column(UTCDateTime, nullable=False)  # when it should go out (after quiet hours)
    available_at = Column(UTCDateTime, nullable=False)  # due_at, or later after a retry
    expires_at = Column(UTCDateTime, nullable=False)  # not worth sending after this
    status = Column(String(12), nullable=False, default=PENDING)
    reason = Column(String(200), nullable=True)  # why skipped / last error (no patient data)
    attempts = Column(Integer, nullable=False, default=0)
    claimed_by = Column(String(64), nullable=True)
    claimed_at = Column(UTCDateTime, nullable=True)
    sent_at = Column(UTCDateTime, nullable=True)
    created_at = Column(UTCDateTime, nullable=False)
    updated_at = Column(UTCDateTime, nullable=False)

    __table_args__ = (
        CheckConstraint(
            "status IN (" + ", ".join(f"'{s}'" for s in STATUSES) + ")", name="status_valid"
        ),
        UniqueConstraint("appointment_id", "kind", name="uq_reminder_jobs_appointment_kind"),
        UniqueConstraint("recall_id", "kind", name="uq_reminder_jobs_recall_kind"),
        # The scheduler's query: due pending jobs, soonest first; stale claims.
        Index("ix_reminder_jobs_status_available", "status", "available_at"),
        Index("ix_reminder_jobs_contact", "contact_key"),
    )


class RecallDueRow(Base):
    __tablename__ = "recall_due"

    id = Column(String(20), primary_key=True)
    patient_id = Column(String(64), nullable=False)
    contact_key = Column(String(64), nullable=False)
    topic = Column(String(32), nullable=False)  # vaccination | screening (internal only)
    due_date = Column(Date, nullable=False)
    status = Column(String(12), nullable=False, default=RECALL_OPEN)
    created_at = Column(UTCDateTime, nullable=False)
    updated_at = Column(UTCDateTime, nullable=False)

    __table_args__ = (
        CheckConstraint(
            "status IN (" + ", ".join(f"'{s}'" for s in RECALL_STATUSES) + ")", name="status_valid"
        ),
        Index("ix_recall_due_status_date", "status", "due_date"),
    )
