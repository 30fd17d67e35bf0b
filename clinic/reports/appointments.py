"""No-show and reminder-confirmation rates: the figures that show whether reminders work.

Counted over appointments that *started* in the period (so a future appointment never
counts as "not yet a no-show"). Attended = arrived, checked-in or fulfilled. An appointment
counts as reminded when at least one appointment reminder was sent for it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Dict, Optional, Set

from sqlalchemy import func, select
from sqlalchemy.orm import sessionmaker

from clinic.scheduling.model import AppointmentStatus
from clinic.scheduling.tables import AppointmentRow

ATTENDED = {AppointmentStatus.ARRIVED.value, AppointmentStatus.CHECKED_IN.value,
            AppointmentStatus.FULFILLED.value}
NOSHOW = AppointmentStatus.NOSHOW.value


@dataclasses.dataclass(frozen=True)
class AppointmentReport:
    since: dt.datetime
    until: dt.datetime
    appointments: int
    by_status: Dict[str, int]
    no_show_rate: Optional[float]
    reminded: int
    reminder_confirmation_rate: Optional[float]
    no_show_rate_reminded: Optional[float]
    no_show_rate_not_reminded: Optional[float]


def _rate(part: int, whole: int) -> Optional[float]:
    return round(part / whole, 4) if whole else None


def _reminded_ids(session, since: dt.datetime, until: dt.datetime) -> Set[str]:
    """Ids of appointments in the period with a sent appointment reminder."""
    from clinic.reminders.tables import ReminderJobRow  # reminders are optional for a backend

    rows = session.execute(
        select(ReminderJobRow.appointment_id)
        .join(AppointmentRow, AppointmentRow.id == ReminderJobRow.appointment_id)
        .where(AppointmentRow.start >= since, AppointmentRow.start < until,
               ReminderJobRow.status == "sent", ReminderJobRow.kind.like("appointment%"))
        .distinct()
    ).scalars()
    return set(rows)


def appointment_report(sessions: sessionmaker, since: dt.datetime, until: dt.datetime) -> AppointmentReport:
    with sessions() as session:
        rows = session.execute(
            select(AppointmentRow.id, AppointmentRow.status, AppointmentRow.confirmed_at)
            .where(AppointmentRow.start >= since, AppointmentRow.start < until)
        ).all()
        by_status = dict(session.execute(
            select(AppointmentRow.status, func.count())
            .where(AppointmentRow.start >= since, AppointmentRow.start < until)
            .group_by(AppointmentRow.status)
        ).all())
        reminded_ids = _reminded_ids(session, since, until)

    def no_show_rate(subset) -> Optional[float]:
        noshows = sum(1 for r in subset if r.status == NOSHOW)
        attended = sum(1 for r in subset if r.status in ATTENDED)
        return _rate(noshows, noshows + attended)

    reminded = [r for r in rows if r.id in reminded_ids]
    not_reminded = [r for r in rows if r.id not in reminded_ids]
    confirmed = sum(1 for r in reminded if r.confirmed_at is not None)
    return AppointmentReport(
        since=since, until=until, appointments=len(rows), by_status=by_status,
        no_show_rate=no_show_rate(rows), reminded=len(reminded),
        reminder_confirmation_rate=_rate(confirmed, len(reminded)),
        no_show_rate_reminded=no_show_rate(reminded),
        no_show_rate_not_reminded=no_show_rate(not_reminded),
    )
