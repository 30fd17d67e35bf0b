"""Creating slots: the only writer of the slot grid, so it is where overlaps are refused.

A slot is a span of one practitioner's time; two overlapping slots of the same practitioner
(at any location) would let two patients book the same minutes. ``add_slots`` therefore
checks every new slot against the practitioner's existing ones and the others in the same
batch, inside the caller's transaction; the unique index on (practitioner, start) backs it
up in the database.
"""

from __future__ import annotations

import datetime as dt
from typing import Iterable, List, Sequence, Tuple
from zoneinfo import ZoneInfo

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from clinic.scheduling.model import SlotStatus
from clinic.scheduling.tables import LocationRow, ScheduleRow, SlotRow

Interval = Tuple[dt.datetime, dt.datetime]


class OverlappingSlot(ValueError):
    """A new slot would overlap another slot of the same practitioner."""


def local_minute(moment: dt.datetime, zone: ZoneInfo) -> int:
    """Minute of the day of ``moment`` on the wall clock of ``zone`` (DST included)."""
    local = moment.astimezone(zone)
    return local.hour * 60 + local.minute


def day_grid(day: dt.date, windows: Sequence[Tuple[dt.time, dt.time]], minutes: int,
             zone: ZoneInfo) -> List[Interval]:
    """Back-to-back slots of ``minutes`` filling each local window of ``day`` (a slot that
    would run past the window's end is left out). Returned in UTC."""
    intervals: List[Interval] = []
    step = dt.timedelta(minutes=minutes)
    for start_time, end_time in windows:
        # Wall-clock arithmetic in the zone, then conversion: a 09:00 slot stays at 09:00
        # local on both sides of a DST change.
        cursor = dt.datetime.combine(day, start_time)
        end = dt.datetime.combine(day, end_time)
        while cursor + step <= end:
            start_utc = cursor.replace(tzinfo=zone).astimezone(dt.timezone.utc)
            end_utc = (cursor + step).replace(tzinfo=zone).astimezone(dt.timezone.utc)
            intervals.append((start_utc, end_utc))
            cursor += step
    return intervals


def add_slots(session: Session, schedule_id: str, intervals: Iterable[Interval]) -> int:
    """Insert free slots for a schedule; returns how many were new.

    A slot identical to an existing one of the same schedule is skipped (so topping up the
    grid is idempotent); any other overlap with the practitioner's slots raises
    ``OverlappingSlot`` and nothing is inserted.
    """
    schedule = session.get(ScheduleRow, schedule_id)
    if schedule is None:
        raise ValueError(f"unknown schedule {schedule_id!r}")
    location = session.get(LocationRow, schedule.location_id)
    zone = ZoneInfo(location.timezone)
    wanted = sorted({(_utc(a), _utc(b)) for a, b in intervals})
    if not wanted:
        return 0
    for start, end in wanted:
        if end <= start:
            raise ValueError(f"slot ends before it starts: {start.isoformat()}")
    existing = session.execute(
        select(SlotRow.start, SlotRow.end, SlotRow.schedule_id)
        .where(SlotRow.practitioner_id == schedule.practitioner_id,
               SlotRow.start < wanted[-1][1], SlotRow.end > wanted[0][0])
        .order_by(SlotRow.start)
    ).all()
    same = {(s, e) for s, e, sid in existing if sid == schedule_id}
    new = [iv for iv in wanted if iv not in same]
    # One sweep over all of the practitioner's intervals in start order: any interval that
    # starts before the previous one ended overlaps it.
    timeline = sorted([(s, e) for s, e, _ in existing] + new)
    for (prev_start, prev_end), (start, _) in zip(timeline, timeline[1:], strict=False):
        if start < prev_end:
            raise OverlappingSlot(
                f"practitioner {schedule.practitioner_id}: slot at {start.isoformat()} overlaps "
                f"the one at {prev_start.isoformat()}"
            )
    if new:
        session.execute(insert(SlotRow), [
            {
                "schedule_id": schedule_id,
                "practitioner_id": schedule.practitioner_id,
                "location_id": schedule.location_id,
                "start": start,
                "end": end,
                "minutes": int((end - start).total_seconds() // 60),
                "local_minute": local_minute(start, zone),
                "status": SlotStatus.FREE.value,
            }
            for start, end in new
        ])
        horizon = new[-1][1]
        if schedule.planning_horizon_end is None or schedule.planning_horizon_end < horizon:
            schedule.planning_horizon_end = horizon
        if schedule.planning_horizon_start is None or schedule.planning_horizon_start > new[0][0]:
            schedule.planning_horizon_start = new[0][0]
    return len(new)


def _utc(moment: dt.datetime) -> dt.datetime:
    if moment.tzinfo is None:
        raise ValueError("slot times must be aware datetimes")
    return moment.astimezone(dt.timezone.utc)
