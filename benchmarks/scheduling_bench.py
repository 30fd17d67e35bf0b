"""Scheduling benchmark (a command, not a test): slot-search and booking latency at size.

Builds a synthetic clinic with 100,000 slots and 50,000 appointments (past and future,
fulfilled / no-show / booked / cancelled), then times, through ``SqlSchedulingBackend``
exactly as the assistant calls it:

* ~1,000 varied slot searches (service, anyone or one practitioner, location or not,
  date range, time-of-day window, limit): p50 / p95 / p99;
* a few hundred bookings of slots found by a search: p50 / p95.

    make benchmark-scheduling                          (SQLite file in a temporary folder)
    python -m benchmarks.scheduling_bench --postgres   (throwaway PostgreSQL cluster)
    python -m benchmarks.scheduling_bench --database-url postgresql+psycopg2://...  (empty DB)

Target: search p95 <= 20 ms.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import random
import sys
import tempfile
import time
from zoneinfo import ZoneInfo

from sqlalchemy import func, insert, select, update

from benchmarks.figures import percentile
from clinic.db import create_schema, make_engine, make_session_factory
from clinic.scheduling.demo_data import LOCATIONS, SERVICES
from clinic.scheduling.model import SlotQuery, SlotUnavailable
from clinic.scheduling.slots import add_slots, day_grid
from clinic.scheduling.sql_backend import SqlSchedulingBackend
from clinic.scheduling.tables import (
    AppointmentHistoryRow,
    AppointmentRow,
    LocationRow,
    PatientRow,
    PractitionerRow,
    PractitionerServiceRow,
    ScheduleRow,
    ServiceRow,
    SlotRow,
)

ZONE = ZoneInfo("Europe/Berlin")
SERVICE_OF = {"general practice": ["gp_consultation"], "nursing": ["vaccination", "blood_test"],
              "physiotherapy": ["physiotherapy"]}
WINDOWS = [None, (dt.time(8), dt.time(12)), (dt.time(12), dt.time(17)),
           (dt.time(16), dt.time(19)), (dt.time(9), dt.time(10)), (dt.time(7), dt.time(8))]



def build(sessions, slots_wanted: int, appointments_wanted: int, now: dt.datetime,
          rng: random.Random) -> dict:
    """Catalogue, slots (4 weeks in the past, the rest ahead) and appointments."""
    started = time.perf_counter()
    practitioners = []
    specialties = ["general practice"] * 24 + ["nursing"] * 10 + ["physiotherapy"] * 6
    with sessions() as session, session.begin():
        for loc in LOCATIONS:
            session.add(LocationRow(**loc, timezone=ZONE.key, active=True))
        for svc in SERVICES:
            session.add(ServiceRow(**svc, active=True))
        for n, specialty in enumerate(specialties):
            pid = f"bench{n:02d}"
            practitioners.append((pid, specialty))
            session.add(PractitionerRow(id=pid, name=f"Practitioner {n}", specialty=specialty,
                                        languages=["English"], active=True))
        session.flush()
        for pid, specialty in practitioners:
            for service_id in SERVICE_OF[specialty]:
                session.add(PractitionerServiceRow(practitioner_id=pid, service_id=service_id))
            location_id = LOCATIONS[int(pid[-2:]) % 2]["id"]
            session.add(ScheduleRow(id=f"{pid}-{location_id}", practitioner_id=pid,
                                    location_id=location_id, active=True))
    # Mon-Sat 08:00-12:00 and 13:00-18:00 (Sat mornings only); 15-minute slots (30 for physio).
    per_practitioner = slots_wanted // len(practitioners)
    first_day = (now - dt.timedelta(days=28)).astimezone(ZONE).date()
    with sessions() as session, session.begin():
        for pid, specialty in practitioners:
            schedule_id = session.scalars(select(ScheduleRow.id).where(
                ScheduleRow.practitioner_id == pid)).one()
            minutes = 30 if specialty == "physiotherapy" else 15
            intervals, day = [], first_day
            while len(intervals) < per_practitioner:
                if day.weekday() < 5:
                    windows = [(dt.time(8), dt.time(12)), (dt.time(13), dt.time(18))]
                elif day.weekday() == 5:
                    windows = [(dt.time(8), dt.time(12))]
                else:
                    windows = []
                intervals += day_grid(day, windows, minutes, ZONE)
                day += dt.timedelta(days=1)
            add_slots(session, schedule_id, intervals[:per_practitioner])
    slot_rows = []
    with sessions() as session:
        slot_rows = session.execute(select(SlotRow.id, SlotRow.start, SlotRow.end,
                                           SlotRow.practitioner_id,
                                           SlotRow.location_id)).all()
    # Patients and appointments: bulk inserts (set-up, not what is measured).
    patients = [f"pat_bench{n:06d}" for n in range(appointments_wanted // 4)]
    performs = {}
    for pid, specialty in practitioners:
        performs[pid] = SERVICE_OF[specialty]
    chosen = rng.sample(slot_rows, appointments_wanted)
    with sessions() as session, session.begin():
        session.execute(insert(PatientRow), [
            {"id": p, "contact_key": f"ck_{p}", "name": "Bench Patient",
             "birth_date": dt.date(1970, 1, 1) + dt.timedelta(days=n % 15000),
             "conversation_id": f"conv_{p}", "channel": "whatsapp", "created_at": now,
             "updated_at": now} for n, p in enumerate(patients)])
        appointments, history, busy = [], [], []
        for n, (slot_id, start, end, pid, loc) in enumerate(chosen):
            if start < now:
                status = "fulfilled" if n % 10 else "noshow"
            else:
                status = "cancelled" if n % 12 == 0 else "booked"
            apt_id = f"apt_b{n:09d}"
            appointments.append({
                "id": apt_id, "status": status, "slot_id": slot_id,
                "service_id": performs[pid][n % len(performs[pid])], "patient_id": patients[n % len(patients)],
                "practitioner_id": pid, "location_id": loc, "start": start, "end": end,
                "created": now - dt.timedelta(days=30), "updated_at": now,
                "cancellation_reason": "patient" if status == "cancelled" else None,
                "confirmed_at": None})
            history.append({"appointment_id": apt_id, "at": now - dt.timedelta(days=30),
                            "actor": "patient", "from_status": None, "to_status": status,
                            "slot_id": slot_id, "note": "bench"})
            if status != "cancelled":
                busy.append(slot_id)
        for chunk in range(0, len(appointments), 5000):
            session.execute(insert(AppointmentRow), appointments[chunk:chunk + 5000])
            session.execute(insert(AppointmentHistoryRow), history[chunk:chunk + 5000])
        for chunk in range(0, len(busy), 900):
            session.execute(update(SlotRow).where(SlotRow.id.in_(busy[chunk:chunk + 900]))
                            .values(status="busy").execution_options(synchronize_session=False))
    with sessions() as session:
        counts = {
            "slots": session.scalar(select(func.count()).select_from(SlotRow)),
            "free future slots": session.scalar(select(func.count()).select_from(SlotRow).where(
                SlotRow.status == "free", SlotRow.start > now)),
            "appointments": session.scalar(select(func.count()).select_from(AppointmentRow)),
            "practitioners": len(practitioners),
        }
    counts["build seconds"] = round(time.perf_counter() - started, 1)
    return counts


def random_query(rng: random.Random, now: dt.datetime, performers: dict) -> SlotQuery:
    service = rng.choice(list(performers))
    earliest = now + dt.timedelta(hours=rng.uniform(-48, 24 * 42))
    window = rng.choice(WINDOWS)
    return SlotQuery(
        service_id=service, earliest=earliest,
        latest=earliest + dt.timedelta(days=rng.choice([1, 3, 7, 14, 21])),
        practitioner_id=rng.choice(performers[service]) if rng.random() < 0.4 else None,
        location_id=rng.choice([None, None, "riverside", "northgate"]),
        day_start=window[0] if window else None, day_end=window[1] if window else None,
        limit=rng.choice([3, 5, 10]),
    )


def run(url: str, slots: int, appointments: int, searches: int, bookings: int, seed: int) -> int:
    rng = random.Random(seed)
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    engine = make_engine(url)
    try:
        create_schema(engine)
        sessions = make_session_factory(engine)
        with sessions() as session:
            if session.scalar(select(func.count()).select_from(SlotRow)):
                print("The database already has slots: give an empty database.", file=sys.stderr)
                return 2
        print(f"database: {engine.dialect.name}; building {slots:,} slots and "
              f"{appointments:,} appointments...", flush=True)
        counts = build(sessions, slots, appointments, now, rng)
        print("  " + ", ".join(f"{k}: {v:,}" if isinstance(v, int) else f"{k}: {v}"
                               for k, v in counts.items()))
        if engine.dialect.name == "postgresql":
            with engine.connect() as connection:
                connection.exec_driver_sql("ANALYZE")
                connection.commit()
        backend = SqlSchedulingBackend(sessions, clock=lambda: now)
        performers = {s.id: [p.id for p in backend.practitioners(s.id)] for s in backend.services()}

        for _ in range(50):  # warm-up: connections, statement caches
            backend.search_slots(random_query(rng, now, performers))
        latencies, found = [], 0
        for _ in range(searches):
            query = random_query(rng, now, performers)
            started = time.perf_counter()
            result = backend.search_slots(query)
            latencies.append((time.perf_counter() - started) * 1000)
            found += len(result)
        p95 = percentile(latencies, 95)
        print(f"slot search ({searches} varied queries, {found / searches:.1f} slots/answer): "
              f"p50 {percentile(latencies, 50):.2f} ms, p95 {p95:.2f} ms, "
              f"p99 {percentile(latencies, 99):.2f} ms, max {max(latencies):.2f} ms "
              f"(target p95 <= 20 ms: {'met' if p95 <= 20 else 'NOT met'})")

        patient_ids = [f"pat_bench{n:06d}" for n in range(bookings)]
        book_latencies, lost = [], 0
        for patient_id in patient_ids:
            query = random_query(rng, now, performers)
            candidates = backend.search_slots(query)
            if not candidates:
                continue
            slot = rng.choice(candidates)
            started = time.perf_counter()
            try:
                backend.book(slot.id, patient_id, query.service_id)
            except SlotUnavailable:
                lost += 1
                continue
            book_latencies.append((time.perf_counter() - started) * 1000)
        print(f"booking ({len(book_latencies)} bookings): p50 "
              f"{percentile(book_latencies, 50):.2f} ms, p95 {percentile(book_latencies, 95):.2f} ms"
              + (f" ({lost} slots already taken)" if lost else ""))
    finally:
        engine.dispose()
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    target = parser.add_mutually_exclusive_group()
    target.add_argument("--database-url", help="an EMPTY database (default: temporary SQLite file)")
    target.add_argument("--postgres", action="store_true",
                        help="start a throwaway PostgreSQL cluster (tests/pg_support.py)")
    parser.add_argument("--slots", type=int, default=100_000)
    parser.add_argument("--appointments", type=int, default=50_000)
    parser.add_argument("--searches", type=int, default=1_000)
    parser.add_argument("--bookings", type=int, default=300)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    if args.appointments > args.slots:
        parser.error("--appointments cannot exceed --slots")
    with contextlib.ExitStack() as stack:
        if args.postgres:
            from tests.pg_support import postgres_server

            url = stack.enter_context(postgres_server())
        elif args.database_url:
            url = args.database_url
        else:
            url = f"sqlite:///{stack.enter_context(tempfile.TemporaryDirectory())}/bench.db"
        return run(url, args.slots, args.appointments, args.searches, args.bookings, args.seed)


if __name__ == "__main__":
    sys.exit(main())
