"""Plans reminder jobs from booking changes, inside the booking's own transaction.

:class:`ReminderPlanner` is an ``AppointmentListener`` (clinic.scheduling.backend): the SQL
backend calls it with the session of the transaction that books, moves, cancels or
closes an appointment, so a booking and its reminders are committed together or not at
all. Decisions (see ``timing.py`` for quiet hours):

* booked: one job per offset (``appointment_24h``, ``appointment_2h``…). A reminder whose
  moment has already passed at booking time is recorded as ``skipped`` (``past_at_booking``)
  rather than sent late: the patient has just booked and knows.
* rescheduled: the same rows are re-planned for the new time (unique per appointment and
  kind, so nothing is planned twice); a reminder already sent for the old time is planned
  again for the new one. If the backend gives the new appointment a new id, the old one's
  jobs are skipped (``rescheduled``).
* cancelled: pending jobs are skipped (``cancelled``); nothing more is sent.
* fulfilled: a follow-up ``followup_delay_hours`` later (moved past quiet hours).
  Arrived / checked-in / no-show / entered-in-error: remaining reminders are skipped.

A job that is being dispatched at that moment is reset too: the Rasa action marks a job
sent only while it is still ``dispatching``, so a stale reminder cannot slip out.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from typing import Callable, List, Optional, Tuple

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from clinic.clock import utcnow
from clinic.reminders import tables as t
from clinic.reminders.timing import (
    FOLLOWUP_LIFETIME,
    MIN_GAP,
    RECALL_LIFETIME,
    RECALL_SEND_TIME,
    ReminderPolicy,
)
from clinic.scheduling.model import Appointment, AppointmentStatus

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Recipient:
    patient_id: str
    contact_key: str
    conversation_id: str
    channel: str


@dataclasses.dataclass(frozen=True)
class PlannedTime:
    kind: str
    due_at: Optional[dt.datetime]  # None: skipped
    reason: Optional[str] = None


def appointment_times(policy: ReminderPolicy, start: dt.datetime, now: dt.datetime) -> List[PlannedTime]:
    """When each reminder for a visit at ``start`` goes out (pure: easy to test)."""
    planned: List[PlannedTime] = []
    previous: Optional[dt.datetime] = None
    for offset in policy.offsets_hours:  # largest first
        kind = t.appointment_kind(offset)
        due = start - dt.timedelta(hours=offset)
        moved = policy.quiet.earlier(due)
        if due <= now:
            planned.append(PlannedTime(kind, None, "past_at_booking"))
        elif moved <= now:
            planned.append(PlannedTime(kind, None, "quiet_hours"))
        elif previous is not None and moved <= previous + MIN_GAP:
            planned.append(PlannedTime(kind, None, "quiet_hours_too_close"))
        else:
            planned.append(PlannedTime(kind, moved))
            previous = moved
    return planned


def _recipient_from_patient_table(session: Session, patient_id: str) -> Optional[Recipient]:
    # The embedded backend's patients table; an EHR adapter passes its own lookup.
    from clinic.scheduling.tables import PatientRow

    row = session.get(PatientRow, patient_id)
    if row is None:
        return None
    return Recipient(row.id, row.contact_key, row.conversation_id, row.channel)


class ReminderPlanner:
    def __init__(
        self,
        policy: ReminderPolicy,
        clock: Callable[[], dt.datetime] = utcnow,
        recipient_lookup: Callable[[Session, str], Optional[Recipient]] = _recipient_from_patient_table,
    ) -> None:
        self.policy = policy
        self._clock = clock
        self._recipient = recipient_lookup

    @classmethod
    def from_settings(cls, settings, clock: Optional[Callable[[], dt.datetime]] = None) -> "ReminderPlanner":
        """The planner for ``settings`` (offsets, quiet hours, follow-up delay)."""
        return cls(ReminderPolicy.from_settings(settings), clock=clock or utcnow)

    # ── AppointmentListener ─────────────────────────────────────────────────────────────
    def on_booked(self, session: Session, appointment: Appointment) -> None:
        self._plan_appointment(session, appointment)

    def on_rescheduled(self, session: Session, old: Appointment, new: Appointment) -> None:
        if old.id != new.id:
            self._skip(session, old.id, "rescheduled")
        self._plan_appointment(session, new)

    def on_cancelled(self, session: Session, appointment: Appointment) -> None:
        self._skip(session, appointment.id, "cancelled")

    def on_status_changed(self, session: Session, appointment: Appointment) -> None:
        status = appointment.status
        if status == AppointmentStatus.FULFILLED:
            self._skip(session, appointment.id, "fulfilled", appointment_kinds_only=True)
            self._plan_followup(session, appointment)
        elif status == AppointmentStatus.CANCELLED:
            self._skip(session, appointment.id, "cancelled")
        elif not status.is_active:
            self._skip(session, appointment.id, f"status_{status.value}", appointment_kinds_only=True)

    # ── planning ────────────────────────────────────────────────────────────────────────
    def _plan_appointment(self, session: Session, appointment: Appointment) -> None:
        recipient = self._recipient(session, appointment.patient_id)
        if recipient is None:
            logger.warning("No patient record for appointment %s: no reminders", appointment.id)
            return
        now = self._clock()
        existing = {
            row.kind: row
            for row in session.scalars(
                select(t.ReminderJobRow).where(t.ReminderJobRow.appointment_id == appointment.id)
            )
        }
        planned = appointment_times(self.policy, appointment.start, now)
        for plan in planned:
            self._upsert(session, existing.get(plan.kind), plan, appointment, recipient, now)
        # Offsets removed from the settings since the first plan: don't send those any more.
        kinds = {p.kind for p in planned}
        for kind, row in existing.items():
            if t.is_appointment_kind(kind) and kind not in kinds and row.status in (t.PENDING, t.DISPATCHING):
                self._set_skipped(row, "no_longer_planned", now)

    def _upsert(self, session: Session, row: Optional[t.ReminderJobRow], plan: PlannedTime,
                appointment: Appointment, recipient: Recipient, now: dt.datetime) -> None:
        if row is not None and row.status == t.SENT and row.planned_for == appointment.start:
            return  # already reminded for this very time (e.g. a status-only change)
        if row is None:
            row = t.ReminderJobRow(id=t.new_job_id(), kind=plan.kind, appointment_id=appointment.id,
                                   created_at=now, attempts=0)
            session.add(row)
        row.patient_id = recipient.patient_id
        row.contact_key = recipient.contact_key
        row.conversation_id = recipient.conversation_id
        row.channel = recipient.channel
        row.planned_for = appointment.start
        row.due_at = plan.due_at or appointment.start
        row.available_at = row.due_at
        row.expires_at = appointment.start
        row.status = t.PENDING if plan.due_at else t.SKIPPED
        row.reason = plan.reason
        row.attempts = 0
        row.claimed_by = row.claimed_at = row.sent_at = None
        row.updated_at = now

    def _plan_followup(self, session: Session, appointment: Appointment) -> None:
        if self.policy.followup_delay is None:
            return
        exists = session.scalars(select(t.ReminderJobRow.id).where(
            t.ReminderJobRow.appointment_id == appointment.id,
            t.ReminderJobRow.kind == t.KIND_FOLLOWUP)).first()
        recipient = self._recipient(session, appointment.patient_id)
        if exists or recipient is None:
            return
        now = self._clock()
        due = self.policy.quiet.later(now + self.policy.followup_delay)
        session.add(t.ReminderJobRow(
            id=t.new_job_id(), kind=t.KIND_FOLLOWUP, appointment_id=appointment.id,
            patient_id=recipient.patient_id, contact_key=recipient.contact_key,
            conversation_id=recipient.conversation_id, channel=recipient.channel,
            planned_for=appointment.start, due_at=due, available_at=due,
            expires_at=due + FOLLOWUP_LIFETIME, status=t.PENDING, attempts=0,
            created_at=now, updated_at=now,
        ))

    def _skip(self, session: Session, appointment_id: str, reason: str,
              appointment_kinds_only: bool = False) -> None:
        query = update(t.ReminderJobRow).where(
            t.ReminderJobRow.appointment_id == appointment_id,
            t.ReminderJobRow.status.in_((t.PENDING, t.DISPATCHING)),
        )
        if appointment_kinds_only:
            query = query.where(t.ReminderJobRow.kind.like(t.APPOINTMENT_KIND_PREFIX + "%"))
        session.execute(query.values(status=t.SKIPPED, reason=reason, updated_at=self._clock())
                        .execution_options(synchronize_session=False))

    @staticmethod
    def _set_skipped(row: t.ReminderJobRow, reason: str, now: dt.datetime) -> None:
        row.status, row.reason, row.updated_at = t.SKIPPED, reason, now


# ── recalls ─────────────────────────────────────────────────────────────────────────────
def plan_recalls(session: Session, policy: ReminderPolicy,
                 find_recipient: Callable[[str], Optional[Recipient]],
                 now: Optional[dt.datetime] = None) -> Tuple[int, int]:
    """Turn recalls that are due into jobs (called by the scheduler on each tick).

    Returns (planned, without a reachable patient). The job goes out at 10:00 clinic time
    on the due date (or now, if later), past quiet hours."""
    now = now or utcnow()
    today = policy.local(now).date()
    planned = unreachable = 0
    rows = session.scalars(select(t.RecallDueRow).where(
        t.RecallDueRow.status == t.RECALL_OPEN, t.RecallDueRow.due_date <= today)).all()
    for recall in rows:
        recipient = find_recipient(recall.contact_key)
        if recipient is None:
            unreachable += 1
            continue
        send = dt.datetime.combine(recall.due_date, RECALL_SEND_TIME, tzinfo=policy.quiet.timezone)
        due = policy.quiet.later(max(send.astimezone(dt.timezone.utc), now))
        session.add(t.ReminderJobRow(
            id=t.new_job_id(), kind=t.KIND_RECALL, recall_id=recall.id,
            patient_id=recipient.patient_id, contact_key=recipient.contact_key,
            conversation_id=recipient.conversation_id, channel=recipient.channel,
            planned_for=None, due_at=due, available_at=due, expires_at=due + RECALL_LIFETIME,
            status=t.PENDING, attempts=0, created_at=now, updated_at=now,
        ))
        recall.status, recall.updated_at = t.RECALL_PLANNED, now
        planned += 1
    return planned, unreachable


def add_recall(session: Session, patient_id: str, contact_key: str, topic: str,
               due_date: dt.date, now: Optional[dt.datetime] = None) -> str:
    """Record that a recall falls due (synthetic demo data, or an import from the EHR)."""
    if topic not in ("vaccination", "screening"):
        raise ValueError("topic must be 'vaccination' or 'screening'")
    now = now or utcnow()
    recall_id = t.new_recall_id()
    session.add(t.RecallDueRow(id=recall_id, patient_id=patient_id, contact_key=contact_key,
                               topic=topic, due_date=due_date, status=t.RECALL_OPEN,
                               created_at=now, updated_at=now))
    return recall_id
