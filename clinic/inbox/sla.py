"""Service-level timers per ticket (computed, never stored, so they can't drift).

- waiting: how long it has been in its current queue (transfer restarts it);
- first response: opened → the first staff reply of this episode (running while none);
- resolution: opened → resolved (running while open);
- overdue: waiting unclaimed longer than the configured minutes (default 15): the queue
  highlights it and ``Inbox.sweep_overdue`` re-offers it (audit row, top of the queue).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Optional

from clinic.inbox.model import TicketState, aware

DEFAULT_OVERDUE_MINUTES = 15


@dataclasses.dataclass(frozen=True)
class Sla:
    waiting_seconds: Optional[int]
    first_response_seconds: Optional[int]
    first_response_running: bool
    resolution_seconds: Optional[int]
    resolution_running: bool
    overdue: bool


def compute(*, state: TicketState, opened_at: dt.datetime, waiting_since: Optional[dt.datetime],
            first_response_at: Optional[dt.datetime], resolved_at: Optional[dt.datetime],
            now: dt.datetime, overdue_minutes: int = DEFAULT_OVERDUE_MINUTES) -> Sla:
    opened_at, waiting_since = aware(opened_at), aware(waiting_since)
    first_response_at, resolved_at = aware(first_response_at), aware(resolved_at)
    waiting = None
    if state is TicketState.WAITING and waiting_since is not None:
        waiting = _seconds(now - waiting_since)
    if first_response_at is not None:
        first: Optional[int] = _seconds(first_response_at - opened_at)
    elif state is TicketState.RESOLVED:
        first = None  # resolved without a reply (e.g. the patient no longer needed help)
    else:
        first = _seconds(now - opened_at)
    resolution_end = resolved_at if state is TicketState.RESOLVED else None
    resolution = _seconds((resolution_end or now) - opened_at)
    return Sla(
        waiting_seconds=waiting,
        first_response_seconds=first,
        first_response_running=first_response_at is None and state is not TicketState.RESOLVED,
        resolution_seconds=resolution,
        resolution_running=state is not TicketState.RESOLVED,
        overdue=waiting is not None and waiting > overdue_minutes * 60,
    )


def _seconds(delta: dt.timedelta) -> int:
    return max(0, int(delta.total_seconds()))


def human(seconds: Optional[int]) -> str:
    """``4 min``, ``1 h 05 min``, ``2 d 3 h``: for the pages."""
    if seconds is None:
        return "—"
    minutes = seconds // 60
    if minutes < 1:
        return f"{seconds} s"
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes:02d} min"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h"
