"""Concurrent bookings on a real database: the database, not a read-then-write check, decides.

Threads with their own sessions (and connections from the pool) start together behind a
barrier; on PostgreSQL they really run in parallel, on SQLite the writers are serialised by
the database lock (busy_timeout) and must still neither double-book nor fail with
"database is locked".
"""

from __future__ import annotations

import datetime as dt
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import func, select

from clinic.scheduling.model import SlotQuery, SlotUnavailable
from clinic.scheduling.tables import AppointmentRow, SlotRow
from tests.scheduling_support import BOTH_DATABASES, NOW, database_url, demo_backend

ATTEMPTS = 20


@pytest.fixture(params=BOTH_DATABASES)
def env(request, tmp_path):
    with database_url(request.param, request, tmp_path) as url, \
            demo_backend(url) as (backend, sessions, engine):
        patients = [backend.register_patient(f"ck_{n}", f"Patient {n}", dt.date(1990, 1, 1),
                                             f"conv-{n}", "whatsapp") for n in range(ATTEMPTS)]
        yield backend, sessions, patients


def race(calls):
    """Run the callables at the same moment; returns (results, exceptions)."""
    barrier = threading.Barrier(len(calls))

    def run(call):
        barrier.wait()
        try:
            return call(), None
        except Exception as exc:  # noqa: BLE001 - collected and asserted on
            return None, exc

    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        outcomes = list(pool.map(run, calls))
    return [r for r, _ in outcomes if r is not None], [e for _, e in outcomes if e is not None]


def test_twenty_patients_one_slot_exactly_one_wins(env):
    backend, sessions, patients = env
    slot = backend.search_slots(SlotQuery("gp_consultation", NOW, NOW + dt.timedelta(days=7)))[0]
    won, failed = race([lambda p=p: backend.book(slot.id, p.id, "gp_consultation")
                        for p in patients])
    assert len(won) == 1
    assert len(failed) == ATTEMPTS - 1
    assert all(isinstance(e, SlotUnavailable) for e in failed), failed
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(AppointmentRow)) == 1
        assert session.get(SlotRow, int(slot.id)).status == "busy"
    assert backend.appointment(won[0].id).patient_id in {p.id for p in patients}


def test_twenty_patients_twenty_slots_all_succeed(env):
    backend, sessions, patients = env
    slots = backend.search_slots(SlotQuery("gp_consultation", NOW, NOW + dt.timedelta(days=7),
                                           limit=ATTEMPTS))
    won, failed = race([lambda p=p, s=s: backend.book(s.id, p.id, "gp_consultation")
                        for p, s in zip(patients, slots, strict=True)])
    assert failed == [] and len(won) == ATTEMPTS
    assert len({a.slot_id for a in won}) == ATTEMPTS


def test_two_reschedules_into_one_slot(env):
    backend, sessions, patients = env
    a, b, target = backend.search_slots(SlotQuery("gp_consultation", NOW,
                                                  NOW + dt.timedelta(days=7), limit=3))
    first = backend.book(a.id, patients[0].id, "gp_consultation")
    second = backend.book(b.id, patients[1].id, "gp_consultation")
    won, failed = race([
        lambda: backend.reschedule(first.id, "ck_0", target.id),
        lambda: backend.reschedule(second.id, "ck_1", target.id),
    ])
    assert len(won) == 1 and len(failed) == 1 and isinstance(failed[0], SlotUnavailable)
    loser = second if won[0].id == first.id else first
    # The loser keeps its original slot; the winner's old slot is free again.
    assert backend.appointment(loser.id).slot_id == loser.slot_id
    with sessions() as session:
        busy = set(session.scalars(select(SlotRow.id).where(SlotRow.status == "busy")))
    assert busy == {int(target.id), int(loser.slot_id)}
