"""The synthetic demo clinic: 2 sites, 6 practitioners, 4 services, 4 weeks of slots.

Every name is invented. Preparation texts are non-clinical, approved-style instructions
(what to bring, where instructions are), never medical advice.

Idempotent, so ``make run`` runs it every time: it creates what is missing and tops up the
slot grid so there are always ``--weeks`` weeks of slots ahead; existing rows, bookings and
slots are left alone.

    python -m clinic.scheduling.demo_data [--weeks 4] [--database-url URL]
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from typing import Dict, List, Optional, Sequence, Tuple
from zoneinfo import ZoneInfo

from sqlalchemy.orm import sessionmaker

from clinic.scheduling.slots import add_slots, day_grid
from clinic.scheduling.tables import (
    LocationRow,
    PractitionerRow,
    PractitionerServiceRow,
    ScheduleRow,
    ServiceRow,
)

DEFAULT_WEEKS = 4

# Same places as the approved FAQ texts (domain/faq.yml, utter_faq/location and parking):
# a patient must never read two addresses for one site.
LOCATIONS = [
    dict(id="riverside", name="Riverside Family Clinic (main site)",
         address="12 Riverside Avenue, Rivertown",
         directions="Entrance next to the pharmacy, 2nd floor, lift available. Buses 7 and 12 "
                    "stop outside (\"Riverside Clinic\").",
         parking="Riverside multi-storey car park behind the building: first hour free with a "
                 "ticket stamped at reception; two disabled bays at the entrance."),
    dict(id="northgate", name="Northgate branch", address="4 Northgate Street, Rivertown",
         directions="Ground floor, step-free.",
         parking="Free street parking on Northgate Street (2 hours max)."),
]

PRACTITIONERS = [
    dict(id="okafor", name="Dr Amara Okafor", specialty="general practice",
         languages=["English", "French"]),
    dict(id="lindqvist", name="Dr Jonas Lindqvist", specialty="general practice",
         languages=["English", "German", "Swedish"]),
    dict(id="haddad", name="Dr Leila Haddad", specialty="general practice",
         languages=["English", "Arabic"]),
    dict(id="moreau", name="Nurse Camille Moreau", specialty="nursing",
         languages=["English", "French", "German"]),
    dict(id="tanaka", name="Nurse Kenji Tanaka", specialty="nursing",
         languages=["English", "Japanese"]),
    dict(id="silva", name="Rafael Silva", specialty="physiotherapy",
         languages=["English", "Portuguese", "Spanish"]),
]

SERVICES = [
    dict(id="gp_consultation", name="GP consultation", specialty="general practice",
         duration_minutes=15,
         preparation="Please arrive 5 minutes early and bring your insurance card and a "
                     "list of the medicines you take.",
         synonyms=["doctor", "GP", "check-up", "checkup", "consultation", "see a doctor",
                   "appointment with the doctor"]),
    dict(id="vaccination", name="Vaccination", specialty="nursing", duration_minutes=10,
         preparation="Please bring your vaccination card or record if you have one.",
         synonyms=["vaccine", "jab", "shot", "flu shot", "immunisation", "immunization",
                   "booster"]),
    dict(id="blood_test", name="Blood test", specialty="nursing", duration_minutes=10,
         preparation="Any instructions about eating or drinking beforehand are in your "
                     "invitation letter; if you have none, please ask reception. Bring "
                     "the lab form if you were given one.",
         synonyms=["blood work", "bloods", "blood sample", "lab test", "blood draw"]),
    dict(id="physiotherapy", name="Physiotherapy", specialty="physiotherapy",
         duration_minutes=30,
         preparation="Please wear comfortable clothing and bring your referral letter if "
                     "you have one.",
         synonyms=["physio", "physical therapy", "physiotherapist", "back pain exercises"]),
]

PERFORMS = {
    "okafor": ["gp_consultation"],
    "lindqvist": ["gp_consultation"],
    "haddad": ["gp_consultation"],
    "moreau": ["vaccination", "blood_test"],
    "tanaka": ["vaccination", "blood_test"],
    "silva": ["physiotherapy"],
}

Hours = Dict[int, List[Tuple[str, str]]]  # weekday (0 = Monday) -> local windows


def _weekdays(days: Sequence[int], *windows: Tuple[str, str]) -> Hours:
    return {d: list(windows) for d in days}


MON_FRI = range(0, 5)
# (schedule id, practitioner, location, slot minutes, weekly hours). Within opening hours
# (mon-fri 08:00-18:00, sat 09:00-12:00), never on Sundays. Dr Lindqvist works at both
# sites on different days, so his slots never overlap.
SCHEDULES = [
    ("okafor-riverside", "okafor", "riverside", 15,
     _weekdays(MON_FRI, ("08:00", "12:00"), ("13:00", "17:00"))),
    ("lindqvist-riverside", "lindqvist", "riverside", 15,
     _weekdays([0, 2, 4], ("08:00", "12:00"))),
    ("lindqvist-northgate", "lindqvist", "northgate", 15,
     {**_weekdays([1, 3], ("13:00", "18:00")), 5: [("09:00", "12:00")]}),
    ("haddad-northgate", "haddad", "northgate", 15,
     _weekdays(MON_FRI, ("09:00", "13:00"), ("14:00", "17:00"))),
    ("moreau-riverside", "moreau", "riverside", 15,
     {**_weekdays(MON_FRI, ("08:00", "12:00"), ("14:00", "16:00")), 5: [("09:00", "12:00")]}),
    ("tanaka-northgate", "tanaka", "northgate", 15,
     _weekdays(range(0, 4), ("08:00", "12:00"), ("13:00", "15:00"))),
    ("silva-riverside", "silva", "riverside", 30,
     _weekdays(MON_FRI, ("10:00", "13:00"), ("14:00", "18:00"))),
]


def _time(text: str) -> dt.time:
    hours, minutes = text.split(":")
    return dt.time(int(hours), int(minutes))


def install_demo_clinic(session_factory: sessionmaker, *, timezone: Optional[ZoneInfo] = None,
                        weeks: int = DEFAULT_WEEKS,
                        now: Optional[dt.datetime] = None) -> Dict[str, int]:
    """Create the demo catalogue if missing and top up slots to ``weeks`` weeks after
    ``now``. Returns counts of what was added. Safe to run any number of times."""
    if timezone is None:
        from clinic.settings import load_settings

        timezone = load_settings().timezone
    now = (now or dt.datetime.now(dt.timezone.utc)).astimezone(dt.timezone.utc)
    added = {"locations": 0, "practitioners": 0, "services": 0, "schedules": 0, "slots": 0}
    with session_factory() as session, session.begin():
        for data in LOCATIONS:
            if session.get(LocationRow, data["id"]) is None:
                session.add(LocationRow(**data, timezone=timezone.key, active=True))
                added["locations"] += 1
        for data in PRACTITIONERS:
            if session.get(PractitionerRow, data["id"]) is None:
                session.add(PractitionerRow(**data, active=True))
                added["practitioners"] += 1
        for data in SERVICES:
            if session.get(ServiceRow, data["id"]) is None:
                session.add(ServiceRow(**data, active=True))
                added["services"] += 1
        session.flush()
        for practitioner_id, service_ids in PERFORMS.items():
            for service_id in service_ids:
                if session.get(PractitionerServiceRow, (practitioner_id, service_id)) is None:
                    session.add(PractitionerServiceRow(practitioner_id=practitioner_id,
                                                       service_id=service_id))
        for schedule_id, practitioner_id, location_id, _, _ in SCHEDULES:
            if session.get(ScheduleRow, schedule_id) is None:
                session.add(ScheduleRow(id=schedule_id, practitioner_id=practitioner_id,
                                        location_id=location_id, active=True))
                added["schedules"] += 1
        session.flush()

        today = now.astimezone(timezone).date()
        days = [today + dt.timedelta(days=n) for n in range(weeks * 7 + 1)]
        for schedule_id, _, _, minutes, hours in SCHEDULES:
            intervals = []
            for day in days:
                windows = [(_time(a), _time(b)) for a, b in hours.get(day.weekday(), ())]
                intervals += [iv for iv in day_grid(day, windows, minutes, timezone)
                              if iv[0] > now]
            added["slots"] += add_slots(session, schedule_id, intervals)
    return added


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        description="Create the synthetic demo clinic (idempotent) and top up its slots.")
    parser.add_argument("--weeks", type=int, default=DEFAULT_WEEKS,
                        help="weeks of slots to keep ahead (default %(default)s)")
    parser.add_argument("--database-url", default=None,
                        help="default: CLINIC_DATABASE_URL or the SQLite file under var/")
    args = parser.parse_args(argv)
    if not 1 <= args.weeks <= 52:
        parser.error("--weeks must be between 1 and 52")

    from clinic.db import create_schema, make_engine, make_session_factory

    engine = make_engine(args.database_url)
    try:
        create_schema(engine)
        added = install_demo_clinic(make_session_factory(engine), weeks=args.weeks)
    finally:
        engine.dispose()
    print("demo clinic: " + ", ".join(f"{n} {k} added" for k, n in added.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
