"""Shared set-up for reminder tests: a real SQLite clinic with the demo catalogue, a
scheduling backend whose listener is the reminder planner, and a controllable clock."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Optional
from zoneinfo import ZoneInfo

from clinic.consent import ConsentStore
from clinic.db import create_schema, make_engine, make_session_factory
from clinic.reminders.planner import ReminderPlanner
from clinic.reminders.store import ReminderStore
from clinic.reminders.timing import QuietHours, ReminderPolicy
from clinic.scheduling.demo_data import install_demo_clinic
from clinic.scheduling.model import SlotQuery
from clinic.scheduling.sql_backend import SqlSchedulingBackend

BERLIN = ZoneInfo("Europe/Berlin")
# A Monday morning in winter (UTC+1), far from DST changes.
START = dt.datetime(2030, 1, 7, 9, 0, tzinfo=BERLIN).astimezone(dt.timezone.utc)


class Clock:
    def __init__(self, now: dt.datetime = START):
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, **delta) -> None:
        self.now += dt.timedelta(**delta)


def policy(offsets=(24.0, 2.0), quiet=(dt.time(21), dt.time(8)), followup_hours: Optional[float] = 3) -> ReminderPolicy:
    return ReminderPolicy(offsets_hours=tuple(offsets), quiet=QuietHours(quiet[0], quiet[1], BERLIN),
                          followup_delay=dt.timedelta(hours=followup_hours) if followup_hours else None)


@dataclasses.dataclass
class Clinic:
    url: str
    sessions: object
    backend: SqlSchedulingBackend
    planner: ReminderPlanner
    store: ReminderStore
    consent: ConsentStore
    clock: Clock

    def patient(self, n: int = 1, channel: str = "whatsapp"):
        return self.backend.register_patient(f"contact-{n:04d}", f"Synthetic Patient{n}", dt.date(1980, 1, 1),
                                             f"conv-{n:04d}", channel)

    def slot_at(self, local: dt.datetime, service: str = "gp_consultation"):
        start = local.replace(tzinfo=BERLIN).astimezone(dt.timezone.utc)
        [slot] = self.backend.search_slots(SlotQuery(service_id=service, earliest=start,
                                                     latest=start + dt.timedelta(minutes=1), limit=1))
        assert slot.start == start, (slot.start, start)
        return slot

    def book_at(self, local: dt.datetime, n: int = 1, service: str = "gp_consultation"):
        patient = self.patient(n)
        return self.backend.book(self.slot_at(local, service).id, patient.id, service)


def make_clinic(tmp_path, reminder_policy: Optional[ReminderPolicy] = None, clock: Optional[Clock] = None) -> Clinic:
    clock = clock or Clock()
    url = f"sqlite:///{tmp_path / 'clinic.db'}"
    engine = make_engine(url)
    create_schema(engine)
    sessions = make_session_factory(engine)
    install_demo_clinic(sessions, timezone=BERLIN, weeks=2, now=clock.now)
    planner = ReminderPlanner(reminder_policy or policy(), clock=clock)
    backend = SqlSchedulingBackend(sessions, listeners=(planner,), clock=clock)
    return Clinic(url, sessions, backend, planner, ReminderStore(sessions), ConsentStore(sessions), clock)


def quiet_hours_away_from_now(tz) -> str:
    """Quiet hours that can't start during an end-to-end test, whatever time it runs."""
    now = dt.datetime.now(tz)
    start, end = now + dt.timedelta(hours=6), now + dt.timedelta(hours=7)
    return f"{start:%H:%M}-{end:%H:%M}"
