"""Synthetic record states for the demo: ``python -m clinic.records.demo_data``.

Gives every registered patient (patients appear when they book in chat) a ready lab result
(portal link), a sick note in preparation, an open invoice and a place in today's queue,
unless they already have records. Run it after booking once in the simulator, then ask
"are my results ready?". Nothing here is real.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from typing import Optional, Sequence

from sqlalchemy import select

from clinic.db import create_schema, make_engine, make_session_factory
from clinic.records.store import RecordStore


def seed(sessions, now: Optional[dt.datetime] = None) -> int:
    from clinic.records.tables import PatientRecordRow
    from clinic.scheduling.tables import PatientRow

    now = now or dt.datetime.now(dt.timezone.utc)
    store = RecordStore(sessions)
    seeded = 0
    with sessions() as session:
        patients = list(session.scalars(select(PatientRow.id)))
        known = set(session.scalars(select(PatientRecordRow.patient_id)))
    for patient_id in patients:
        if patient_id in known:
            continue
        suffix = patient_id[-6:]
        store.put(patient_id, "result", "ready", document_id=f"demo-lab-{suffix}")
        store.put(patient_id, "document", "pending", subtype="sick_note", document_id=f"demo-note-{suffix}",
                  expected_at=now + dt.timedelta(days=2))
        store.put(patient_id, "billing", "issued", subtype="invoice", reference=f"INV-{suffix.upper()}",
                  expected_at=now + dt.timedelta(days=14))
        store.put(patient_id, "queue", "waiting", reference="A042", position=3,
                  expected_at=now + dt.timedelta(minutes=15))
        seeded += 1
    return seeded


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args(argv)
    engine = make_engine(args.database_url)
    create_schema(engine)
    print(f"demo records for {seed(make_session_factory(engine))} patient(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
