"""Fixtures for scheduling tests: the demo clinic on a real database (SQLite or PostgreSQL)
with a fixed clock.

NOW is Monday 24 March 2025, 06:00 UTC (07:00 in Berlin); Europe/Berlin moves to summer
time on Sunday 30 March, inside the 4 weeks of demo slots, so DST is always exercised.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from typing import Iterator
from zoneinfo import ZoneInfo

from clinic.db import create_schema, make_engine, make_session_factory
from clinic.scheduling.demo_data import install_demo_clinic
from clinic.scheduling.sql_backend import SqlSchedulingBackend
from tests.pg_support import fresh_database

BERLIN = ZoneInfo("Europe/Berlin")
NOW = dt.datetime(2025, 3, 24, 6, 0, tzinfo=dt.timezone.utc)

# Key tests run on both; PostgreSQL ones skip locally without binaries (fail under CI=true).
BOTH_DATABASES = ["sqlite", "postgresql"]


@contextlib.contextmanager
def database_url(kind: str, request, tmp_path) -> Iterator[str]:
    if kind == "sqlite":
        yield f"sqlite:///{tmp_path / 'clinic.db'}"
    else:
        server = request.getfixturevalue("postgres_url")
        with fresh_database(server) as url:
            yield url


class Clock:
    """A settable clock (tests move time forward)."""

    def __init__(self, now: dt.datetime = NOW):
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now


@contextlib.contextmanager
def demo_backend(url: str, listeners=(), clock=None):
    """(backend, session_factory, engine) on a migrated database holding the demo clinic."""
    engine = make_engine(url)
    try:
        create_schema(engine)
        sessions = make_session_factory(engine)
        install_demo_clinic(sessions, timezone=BERLIN, weeks=4, now=NOW)
        yield SqlSchedulingBackend(sessions, listeners=listeners, clock=clock or Clock()), \
            sessions, engine
    finally:
        engine.dispose()
