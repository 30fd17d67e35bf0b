"""Slot search on the demo clinic: filters, order, limit, the past, local time of day (DST)."""

from __future__ import annotations

import datetime as dt

import pytest

from clinic.scheduling.model import NotFound, SlotQuery
from tests.scheduling_support import BERLIN, BOTH_DATABASES, NOW, Clock, database_url, demo_backend

WEEK = dt.timedelta(days=7)


@pytest.fixture(params=BOTH_DATABASES)
def backend(request, tmp_path):
    with database_url(request.param, request, tmp_path) as url, demo_backend(url) as (b, _, _):
        yield b


@pytest.fixture
def sqlite_backend(tmp_path):
    clock = Clock()
    with demo_backend(f"sqlite:///{tmp_path / 'c.db'}", clock=clock) as (b, sessions, _):
        b.test_clock = clock
        yield b


def query(service="gp_consultation", earliest=NOW, latest=NOW + 4 * WEEK, **kw) -> SlotQuery:
    return SlotQuery(service_id=service, earliest=earliest, latest=latest, **kw)


def test_soonest_slots_of_practitioners_who_perform_the_service(backend):
    slots = backend.search_slots(query("vaccination", limit=25))
    assert len(slots) == 25
    assert {s.practitioner.id for s in slots} <= {"moreau", "tanaka"}
    starts = [s.start for s in slots]
    assert starts == sorted(starts)
    assert all(s.start > NOW and s.start.tzinfo is not None for s in slots)
    assert all(s.service_id == "vaccination" and s.status.value == "free" for s in slots)
    # The very first one is the earliest nurse slot of the week: Monday 08:00 in Berlin.
    assert slots[0].start.astimezone(BERLIN) == dt.datetime(2025, 3, 24, 8, 0, tzinfo=BERLIN)


def test_practitioner_and_location_filters(backend):
    slots = backend.search_slots(query(practitioner_id="haddad", limit=50))
    assert slots and {s.practitioner.id for s in slots} == {"haddad"}
    slots = backend.search_slots(query(location_id="northgate", limit=100))
    assert slots and {s.location.id for s in slots} == {"northgate"}
    assert {s.practitioner.id for s in slots} <= {"haddad", "lindqvist"}
    # Dr Lindqvist is in Riverside on Mon/Wed/Fri and in Northgate on Tue/Thu/Sat.
    lindqvist = backend.search_slots(query(practitioner_id="lindqvist", location_id="northgate",
                                           limit=100))
    assert lindqvist and {s.start.astimezone(BERLIN).weekday() for s in lindqvist} <= {1, 3, 5}
    # A practitioner who does not perform the service has no slots for it.
    assert backend.search_slots(query(practitioner_id="silva")) == []


def test_unknown_ids_raise_not_found(backend):
    with pytest.raises(NotFound):
        backend.search_slots(query("brain_surgery"))
    with pytest.raises(NotFound):
        backend.search_slots(query(practitioner_id="nobody"))
    with pytest.raises(NotFound):
        backend.search_slots(query(location_id="nowhere"))


def test_earliest_latest_and_limit(backend):
    earliest = dt.datetime(2025, 4, 2, 12, 0, tzinfo=dt.timezone.utc)
    latest = earliest + dt.timedelta(hours=30)
    slots = backend.search_slots(query(earliest=earliest, latest=latest, limit=100))
    assert slots and all(earliest <= s.start <= latest for s in slots)
    assert len(backend.search_slots(query(limit=3))) == 3
    assert len(backend.search_slots(query(limit=100_000))) == 100  # capped
    assert backend.search_slots(query(earliest=latest, latest=earliest)) == []


def test_no_sunday_and_no_night_slots(backend):
    slots = backend.search_slots(query(latest=NOW + 2 * WEEK, limit=100, day_start=dt.time(0),
                                       day_end=dt.time(8)))
    assert slots == []
    everything = backend.search_slots(query("physiotherapy", limit=100))
    assert all(s.start.astimezone(BERLIN).weekday() != 6 for s in everything)


def test_past_slots_are_never_offered(sqlite_backend):
    backend = sqlite_backend
    slots = backend.search_slots(query(earliest=NOW - 3 * WEEK, limit=5))
    assert slots[0].start > NOW
    # An hour later the first slots have started: they are gone, whatever "earliest" says.
    backend.test_clock.now = slots[2].start
    later = backend.search_slots(query(earliest=NOW, limit=5))
    assert later[0].start > slots[2].start
    assert {s.id for s in slots[:3]}.isdisjoint({s.id for s in later})


def test_time_of_day_window_is_local_and_dst_safe(backend):
    # 08:00-09:00 local: 07:00 UTC before 30 March (CET), 06:00 UTC after (CEST).
    slots = backend.search_slots(query(practitioner_id="okafor", day_start=dt.time(8),
                                       day_end=dt.time(9), limit=100))
    assert slots
    local = [s.start.astimezone(BERLIN) for s in slots]
    assert all(dt.time(8) <= t.time() < dt.time(9) for t in local)
    before = {s.start.hour for s in slots if s.start < dt.datetime(2025, 3, 30, tzinfo=dt.timezone.utc)}
    after = {s.start.hour for s in slots if s.start > dt.datetime(2025, 3, 31, tzinfo=dt.timezone.utc)}
    assert before == {7} and after == {6}
    # Every okafor slot of that hour on working days is there: 4 per day, Mon-Fri, 4 weeks,
    # plus the 08:00 one of the last Monday ("latest" is NOW + 4 weeks = 08:00 local).
    assert len(slots) == 4 * 5 * 4 + 1


def test_afternoon_window_with_minutes(backend):
    slots = backend.search_slots(query("physiotherapy", day_start=dt.time(16, 30),
                                       day_end=dt.time(18), limit=100))
    assert slots
    assert {s.start.astimezone(BERLIN).time() for s in slots} == {dt.time(16, 30), dt.time(17, 0),
                                                                  dt.time(17, 30)}


def test_window_wrapping_midnight(backend):
    # 17:00 -> 08:30 wraps past midnight: late afternoon and early morning slots only.
    slots = backend.search_slots(query(day_start=dt.time(17), day_end=dt.time(8, 30), limit=100))
    times = {s.start.astimezone(BERLIN).time() for s in slots}
    assert times and all(t >= dt.time(17) or t < dt.time(8, 30) for t in times)
    assert dt.time(8, 15) in times and dt.time(17, 0) in times


def test_service_must_fit_in_the_slot(sqlite_backend):
    # Physiotherapy slots are 30 minutes; GP slots 15. A 20-minute service performed by a GP
    # has no slot that fits it.
    from clinic.scheduling.tables import PractitionerServiceRow, ServiceRow

    backend = sqlite_backend
    with backend._sessions() as session, session.begin():
        session.add(ServiceRow(id="long_consult", name="Long consultation",
                               specialty="general practice", duration_minutes=20,
                               preparation="", synonyms=[], active=True))
        session.flush()
        session.add(PractitionerServiceRow(practitioner_id="okafor", service_id="long_consult"))
    assert backend.search_slots(query("long_consult")) == []


def test_catalogue(backend):
    assert {s.id for s in backend.services()} == {"gp_consultation", "vaccination", "blood_test",
                                                   "physiotherapy"}
    assert backend.service("blood_test").duration_minutes == 10
    assert "invitation letter" in backend.service("blood_test").preparation
    assert {p.id for p in backend.practitioners()} == {"okafor", "lindqvist", "haddad", "moreau",
                                                       "tanaka", "silva"}
    assert {p.id for p in backend.practitioners("gp_consultation")} == {"okafor", "lindqvist",
                                                                        "haddad"}
    assert backend.practitioner("silva").languages == ("English", "Portuguese", "Spanish")
    assert {loc.id for loc in backend.locations()} == {"riverside", "northgate"}
    for call, arg in ((backend.service, "nope"), (backend.practitioner, "nope"),
                      (backend.practitioners, "nope")):
        with pytest.raises(NotFound):
            call(arg)
