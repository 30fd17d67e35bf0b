"""Reminder jobs in the database: read, claim, and every status change as a conditional
UPDATE checked by its row count, so two schedulers (or a scheduler and a Rasa action)
can never both win the same transition. No read-then-write anywhere.

Synchronous SQLAlchemy (2.0 style on 1.4); async callers run these in a worker thread.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Dict, List, Optional

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.orm import sessionmaker

from clinic.clock import utcnow
from clinic.reminders import tables as t


@dataclasses.dataclass(frozen=True)
class Job:
    id: str
    kind: str
    appointment_id: Optional[str]
    recall_id: Optional[str]
    patient_id: str
    contact_key: str
    conversation_id: str
    channel: str
    planned_for: Optional[dt.datetime]
    due_at: dt.datetime
    expires_at: dt.datetime
    status: str
    reason: Optional[str]
    attempts: int
    claimed_by: Optional[str]
    sent_at: Optional[dt.datetime]


def _job(row: t.ReminderJobRow) -> Job:
    return Job(
        id=row.id, kind=row.kind, appointment_id=row.appointment_id, recall_id=row.recall_id,
        patient_id=row.patient_id, contact_key=row.contact_key,
        conversation_id=row.conversation_id, channel=row.channel, planned_for=row.planned_for,
        due_at=row.due_at, expires_at=row.expires_at, status=row.status, reason=row.reason,
        attempts=row.attempts, claimed_by=row.claimed_by, sent_at=row.sent_at,
    )


class ReminderStore:
    def __init__(self, session_factory: sessionmaker):
        self._sessions = session_factory

    # ── reads ───────────────────────────────────────────────────────────────────────────
    def job(self, job_id: str) -> Optional[Job]:
        with self._sessions() as session:
            row = session.get(t.ReminderJobRow, job_id)
            return _job(row) if row is not None else None

    def jobs_for_appointment(self, appointment_id: str) -> List[Job]:
        with self._sessions() as session:
            rows = session.scalars(select(t.ReminderJobRow)
                                   .where(t.ReminderJobRow.appointment_id == appointment_id)
                                   .order_by(t.ReminderJobRow.due_at))
            return [_job(r) for r in rows]

    def counts(self) -> Dict[str, int]:
        with self._sessions() as session:
            rows = session.execute(select(t.ReminderJobRow.status, func.count())
                                   .group_by(t.ReminderJobRow.status))
            return {status: count for status, count in rows}

    def recall_status(self, recall_id: str) -> Optional[str]:
        with self._sessions() as session:
            row = session.get(t.RecallDueRow, recall_id)
            return row.status if row is not None else None

    # ── the scheduler's transitions ─────────────────────────────────────────────────────
    def claim_due(self, worker: str, now: Optional[dt.datetime] = None, limit: int = 50,
                  stale_after: dt.timedelta = dt.timedelta(minutes=2)) -> List[Job]:
        """Claim up to ``limit`` due jobs for ``worker``: pending ones whose time has come,
        and ``dispatching`` ones whose claim is older than ``stale_after`` (their scheduler
        died mid-push). Each claim is its own conditional UPDATE: with two schedulers
        racing, each job goes to exactly one of them."""
        now = now or utcnow()
        stale_before = now - stale_after
        claimable = or_(
            and_(t.ReminderJobRow.status == t.PENDING, t.ReminderJobRow.available_at <= now),
            and_(t.ReminderJobRow.status == t.DISPATCHING, t.ReminderJobRow.claimed_at < stale_before),
        )
        # Candidates are read outside the write transactions (SQLite: no read-to-write lock
        # upgrade, which would fail at once under contention instead of waiting).
        with self._sessions() as session:
            candidates = list(session.scalars(select(t.ReminderJobRow.id).where(claimable)
                                              .order_by(t.ReminderJobRow.available_at).limit(limit)))
        claimed: List[Job] = []
        for job_id in candidates:
            with self._sessions() as session, session.begin():
                result = session.execute(
                    update(t.ReminderJobRow)
                    .where(t.ReminderJobRow.id == job_id, claimable)
                    .values(status=t.DISPATCHING, claimed_by=worker, claimed_at=now,
                            attempts=t.ReminderJobRow.attempts + 1, updated_at=now)
                    .execution_options(synchronize_session=False)
                )
                if result.rowcount == 1:
                    claimed.append(_job(session.get(t.ReminderJobRow, job_id)))
        return claimed

    def release(self, job_id: str, worker: str, retry_at: dt.datetime, error: str,
                refund_attempt: bool = False) -> bool:
        """Back to pending for a later try (Rasa down or busy). Only the claim holder may."""
        values = dict(status=t.PENDING, available_at=retry_at, reason=error[:200],
                      claimed_by=None, claimed_at=None, updated_at=utcnow())
        if refund_attempt:  # Rasa unreachable: not the job's fault, don't use up its attempts
            values["attempts"] = t.ReminderJobRow.attempts - 1
        return self._transition(job_id, (t.DISPATCHING,), values, worker)

    def fail(self, job_id: str, worker: str, error: str) -> bool:
        return self._transition(job_id, (t.DISPATCHING,),
                                dict(status=t.FAILED, reason=error[:200], updated_at=utcnow()), worker)

    def skip(self, job_id: str, reason: str, worker: Optional[str] = None,
             from_statuses=(t.PENDING, t.DISPATCHING)) -> bool:
        return self._transition(job_id, from_statuses,
                                dict(status=t.SKIPPED, reason=reason[:200], updated_at=utcnow()), worker)

    # ── the Rasa action's transition ────────────────────────────────────────────────────
    def mark_sent(self, job_id: str, now: Optional[dt.datetime] = None) -> bool:
        """``dispatching`` → ``sent``, once. True only for the one caller that made the
        change: that caller, and no other, sends the message."""
        now = now or utcnow()
        return self._transition(job_id, (t.DISPATCHING,), dict(status=t.SENT, sent_at=now, updated_at=now))

    def _transition(self, job_id: str, from_statuses, values: dict, worker: Optional[str] = None) -> bool:
        query = update(t.ReminderJobRow).where(t.ReminderJobRow.id == job_id,
                                               t.ReminderJobRow.status.in_(tuple(from_statuses)))
        if worker is not None:
            query = query.where(t.ReminderJobRow.claimed_by == worker)
        with self._sessions() as session, session.begin():
            result = session.execute(query.values(**values).execution_options(synchronize_session=False))
            return result.rowcount == 1
