"""Builds the clinic services the same way for every process that needs them (action
server, clinic API), so a booking or an outcome recorded anywhere plans its reminders."""

from __future__ import annotations

import datetime as dt
from typing import Callable, Optional

from sqlalchemy.orm import sessionmaker

from clinic.reminders.planner import ReminderPlanner
from clinic.scheduling.sql_backend import SqlSchedulingBackend
from clinic.settings import ClinicSettings


def build_scheduling(sessions: sessionmaker, settings: ClinicSettings,
                     clock: Optional[Callable[[], dt.datetime]] = None) -> SqlSchedulingBackend:
    # Reminder planning runs inside each booking transaction (AppointmentListener): a booking
    # and its reminders are committed together or not at all; a fulfilled visit plans its
    # follow-up the same way.
    return SqlSchedulingBackend(
        sessions, listeners=(ReminderPlanner.from_settings(settings, clock),), clock=clock)
