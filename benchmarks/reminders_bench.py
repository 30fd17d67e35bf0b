"""Reminder dispatch benchmark (a command, not a test): prints figures.

N reminder jobs fall due at once; the reminder scheduler (a real process) claims them and
pushes each through Rasa's HTTP API (trigger_intent; action server; WhatsApp channel) to
the WhatsApp simulator, which receives one template per patient. Measures jobs/s from
"due" until every template has arrived, and checks that none was sent twice or lost.

    make benchmark-reminders        (python -m benchmarks.reminders_bench --help)
Synthetic patients only; only 127.0.0.1 is used.
"""

from __future__ import annotations

import argparse
import collections
import datetime as dt
import re
import signal
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.stack import PROJECT_ROOT, Stack
from clinic.db import make_engine, make_session_factory
from clinic.messaging.store import WhatsAppStore
from clinic.privacy import ContactCipher, contact_key
from clinic.reminders.planner import ReminderPlanner
from clinic.reminders.store import ReminderStore
from clinic.reminders.tables import ReminderJobRow
from clinic.reminders.timing import QuietHours, ReminderPolicy
from clinic.scheduling.demo_data import install_demo_clinic
from clinic.scheduling.model import SlotQuery
from clinic.scheduling.sql_backend import SqlSchedulingBackend
from clinic.settings import load_settings


def book_patients(stack: Stack, count: int) -> list:
    tz = load_settings().timezone
    sessions = make_session_factory(make_engine(stack.env["CLINIC_DATABASE_URL"]))
    now = dt.datetime.now(dt.timezone.utc)
    install_demo_clinic(sessions, timezone=tz, weeks=6, now=now)
    start, end = (dt.time.fromisoformat(p) for p in stack.env["CLINIC_QUIET_HOURS"].split("-"))
    planner = ReminderPlanner(ReminderPolicy((24.0,), QuietHours(start, end, tz), None))
    backend = SqlSchedulingBackend(sessions, listeners=(planner,))
    key = stack.env["CLINIC_PSEUDONYM_KEY"].encode()
    cipher = ContactCipher(stack.env["CLINIC_ENCRYPTION_KEY"].encode())
    earliest = now + dt.timedelta(days=2)
    slots = []
    while len(slots) < count:  # the search returns at most 100 at a time
        page = backend.search_slots(SlotQuery("gp_consultation", earliest, now + dt.timedelta(days=40), limit=100))
        if not page:
            break
        slots += page
        earliest = page[-1].start + dt.timedelta(seconds=1)
    slots = slots[:count]
    if len(slots) < count:
        raise SystemExit(f"only {len(slots)} free slots for {count} patients")
    wa_ids, contacts = [], {}
    for n, slot in enumerate(slots):
        wa_id = f"1555800{n:04d}"  # synthetic
        conversation = contact_key(wa_id, "whatsapp", key)
        patient = backend.register_patient(contact_key(conversation, "whatsapp", key), "Bench Patient",
                                           dt.date(1980, 1, 1), conversation, "whatsapp")
        backend.book(slot.id, patient.id, "gp_consultation")
        # The channel knows where to write (as after a first message), window long closed.
        contacts[conversation] = (cipher.encrypt(wa_id), now - dt.timedelta(days=3))
        wa_ids.append(wa_id)
    WhatsAppStore(sessions).accept([], contacts)
    return wa_ids


def main_run(args) -> int:
    model = Path(args.model) if args.model else PROJECT_ROOT / "models" / "assistant.tar.gz"
    if not model.exists():
        print("No trained model: run `make train` first.", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="reminder-bench-") as tmp:
        stack = Stack(Path(tmp), model)
        local = dt.datetime.now(load_settings().timezone)
        stack.env["CLINIC_QUIET_HOURS"] = (f"{local + dt.timedelta(hours=6):%H:%M}-"
                                           f"{local + dt.timedelta(hours=7):%H:%M}")
        stack.env["REMINDER_BATCH_SIZE"] = str(args.batch)
        print("Starting the action server, Rasa (with its HTTP API) and the simulator...", flush=True)
        stack.start()
        try:
            wa_ids = book_patients(stack, args.jobs)
            sessions = make_session_factory(make_engine(stack.env["CLINIC_DATABASE_URL"]))
            store = ReminderStore(sessions)
            stack.start_scheduler(poll_seconds=args.poll)
            time.sleep(3)  # the scheduler is up and idle
            t0 = time.monotonic()
            with sessions() as session, session.begin():
                session.execute(ReminderJobRow.__table__.update().values(
                    available_at=dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=1)))
            deadline = t0 + args.timeout
            templates = []
            while time.monotonic() < deadline:
                templates = [m for m in stack.sim("/_sim/messages?type=template")["messages"] if not m.get("error")]
                if len(templates) >= args.jobs:
                    break
                time.sleep(0.1)
            elapsed = time.monotonic() - t0
            time.sleep(2)  # anything sent twice would show up now
            templates = [m for m in stack.sim("/_sim/messages?type=template")["messages"] if not m.get("error")]
            per_user = collections.Counter(m.get("to") for m in templates)
            counts = store.counts()
            scheduler = stack.processes.pop("scheduler")
            scheduler.send_signal(signal.SIGTERM)
            scheduler.wait(30)
            figures = re.findall(r"reminder scheduler figures: .*", stack.log("scheduler"))
            print(f"\nreminders: {args.jobs} due at once, batch {args.batch}, poll {args.poll}s")
            print(f"    templates received {len(templates)}/{args.jobs} in {elapsed:.1f} s: "
                  f"{len(templates) / elapsed:.1f} jobs/s")
            print(f"    duplicates {sum(c - 1 for c in per_user.values() if c > 1)}  "
                  f"patients without a reminder {len(set(wa_ids) - set(per_user))}")
            print(f"    jobs by status: {dict(counts)}")
            if figures:
                print(f"    {figures[-1]}")
        finally:
            stack.stop()
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=200, help="reminders due at once")
    parser.add_argument("--batch", type=int, default=50, help="jobs claimed per scheduler tick")
    parser.add_argument("--poll", type=float, default=1.0, help="scheduler poll interval (s)")
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument("--model", default=None, help="default: models/assistant.tar.gz")
    return main_run(parser.parse_args())


if __name__ == "__main__":
    sys.exit(main())
