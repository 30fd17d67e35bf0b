"""The demo clinic: idempotent top-up, opening hours, no Sundays, no overlaps; the CLI."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys

from sqlalchemy import func, select

from clinic.db import create_schema, make_engine, make_session_factory
from clinic.scheduling.demo_data import install_demo_clinic
from clinic.scheduling.tables import PractitionerRow, SlotRow
from tests.conftest import PROJECT_ROOT
from tests.scheduling_support import BERLIN, NOW


def _sessions(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'demo.db'}")
    create_schema(engine)
    return engine, make_session_factory(engine)


def test_install_is_idempotent_and_tops_up(tmp_path):
    engine, sessions = _sessions(tmp_path)
    first = install_demo_clinic(sessions, timezone=BERLIN, weeks=4, now=NOW)
    assert first["locations"] == 2 and first["practitioners"] == 6 and first["services"] == 4
    assert first["slots"] > 2000
    again = install_demo_clinic(sessions, timezone=BERLIN, weeks=4, now=NOW)
    assert again == {"locations": 0, "practitioners": 0, "services": 0, "schedules": 0, "slots": 0}
    # A week later, one more week of slots is added; nothing before it is duplicated.
    later = install_demo_clinic(sessions, timezone=BERLIN, weeks=4, now=NOW + dt.timedelta(days=7))
    assert 0 < later["slots"] < first["slots"] / 3
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(PractitionerRow)) == 6
        latest = session.scalar(select(func.max(SlotRow.start)))
    assert latest > NOW + dt.timedelta(days=34)
    engine.dispose()


def test_slots_are_within_opening_hours_and_never_overlap(tmp_path):
    engine, sessions = _sessions(tmp_path)
    install_demo_clinic(sessions, timezone=BERLIN, weeks=4, now=NOW)
    with sessions() as session:
        rows = session.execute(select(SlotRow.practitioner_id, SlotRow.start, SlotRow.end)
                               .order_by(SlotRow.practitioner_id, SlotRow.start)).all()
    by_practitioner = {}
    for practitioner, start, end in rows:
        local_start, local_end = start.astimezone(BERLIN), end.astimezone(BERLIN)
        assert local_start.weekday() != 6, "no Sunday slots"
        assert dt.time(8) <= local_start.time() and local_end.time() <= dt.time(18)
        if local_start.weekday() == 5:
            assert dt.time(9) <= local_start.time() and local_end.time() <= dt.time(12)
        assert start > NOW
        by_practitioner.setdefault(practitioner, []).append((start, end))
    for slots in by_practitioner.values():
        for (_, previous_end), (start, _) in zip(slots, slots[1:], strict=False):
            assert start >= previous_end
    engine.dispose()


def test_cli(tmp_path):
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    command = [sys.executable, "-m", "clinic.scheduling.demo_data", "--weeks", "2",
               "--database-url", url]
    first = subprocess.run(command, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120)
    assert first.returncode == 0, first.stderr
    assert "6 practitioners added" in first.stdout
    second = subprocess.run(command, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120)
    assert second.returncode == 0 and "0 slots added" in second.stdout
    bad = subprocess.run(command[:3] + ["--weeks", "0"], cwd=PROJECT_ROOT, capture_output=True,
                         text=True, timeout=120)
    assert bad.returncode == 2 and "--weeks" in bad.stderr
