"""The reminder scheduler process: ``python -m clinic.reminders.scheduler``.

Rasa-free; it talks to Rasa over HTTP. Every ``REMINDER_POLL_SECONDS`` it turns due recalls
into jobs, claims due jobs and pushes each into its conversation (see ``dispatcher.py`` for
the exactly-once design). Several schedulers may run at once (e.g. one per host): claims
never overlap. Rasa down: jobs go back to pending and are retried; nothing is lost.
SIGTERM/SIGINT: finishes the current tick, prints its figures and exits 0.

Settings (environment):
  RASA_URL                Rasa server (default http://127.0.0.1:5005); run Rasa with
                          ``--enable-api --auth-token "$RASA_AUTH_TOKEN"``
  RASA_AUTH_TOKEN         token for Rasa's HTTP API (sent as ``?token=``)
  REMINDER_POLL_SECONDS   seconds between ticks (default 30)
  REMINDER_BATCH_SIZE     jobs claimed per tick (default 50)
  REMINDER_STALE_SECONDS  a claim older than this is taken over (default 120; keep it above
                          the push timeout)
  REMINDER_PUSH_TIMEOUT   seconds to wait for Rasa per push (default 30)
  CLINIC_DATABASE_URL     the clinic database (default SQLite under var/)

Retention: the scheduler also runs the purge (clinic/retention.py) every
``retention.purge_every`` of content/clinic.yml (first 5 minutes after start; not with
``--once`` or ``--no-purge``), over the clinic database, Rasa's tracker store
(RASA_TRACKER_STORE_URL, else endpoints.yml) and the webhook journal folder.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import logging
import os
import signal
import socket
import sys
from typing import Optional

from clinic.consent import ConsentStore
from clinic.db import create_schema, make_engine, make_session_factory
from clinic.language.memory import LanguageMemory
from clinic.logs import configure_logging
from clinic.reminders.dispatcher import Dispatcher
from clinic.reminders.planner import Recipient, plan_recalls
from clinic.reminders.rasa_client import RasaPusher
from clinic.reminders.store import ReminderStore
from clinic.reminders.timing import ReminderPolicy
from clinic.retention import PeriodicPurge, build_purger
from clinic.settings import load_settings
from clinic.worker_probe import ENV_ADDRESS, address_argument, figures_of, start_probe

logger = logging.getLogger("clinic.reminders.scheduler")


def _env_float(name: str, default: float) -> float:
    value = os.environ.get(name)
    try:
        return float(value) if value else default
    except ValueError:
        raise SystemExit(f"{name} must be a number (got {value!r})") from None


def build(args) -> tuple:
    import clinic.reminders.tables  # noqa: F401  (register tables)
    from clinic.scheduling.sql_backend import SqlSchedulingBackend

    settings = load_settings()
    policy = ReminderPolicy.from_settings(settings)
    engine = make_engine(args.database_url)
    create_schema(engine)
    sessions = make_session_factory(engine)
    backend = SqlSchedulingBackend(sessions)
    store = ReminderStore(sessions)
    # The contact's language (remembered by the WhatsApp door, keyed by the conversation):
    # the reminder's template goes out in it.
    languages = LanguageMemory(sessions)
    pusher = RasaPusher(args.rasa_url, os.environ.get("RASA_AUTH_TOKEN") or None,
                        timeout_seconds=_env_float("REMINDER_PUSH_TIMEOUT", 30),
                        settings_slots=settings.as_slots(),
                        language_for=lambda job: languages.recall(job.conversation_id))
    dispatcher = Dispatcher(
        store, backend, ConsentStore(sessions), policy.quiet, pusher,
        worker=f"{socket.gethostname()}:{os.getpid()}",
        batch_size=int(_env_float("REMINDER_BATCH_SIZE", 50)),
        stale_after=dt.timedelta(seconds=_env_float("REMINDER_STALE_SECONDS", 120)),
    )
    return sessions, backend, policy, dispatcher, pusher


def _recipient_finder(backend):
    def find(contact_key: str) -> Optional[Recipient]:
        patient = backend.find_patient(contact_key)
        if patient is None:
            return None
        return Recipient(patient.id, patient.contact_key, patient.conversation_id, patient.channel)
    return find


def retention_task(args) -> Optional[PeriodicPurge]:
    """The periodic retention purge this scheduler runs (None with --once or --no-purge)."""
    if args.once or getattr(args, "no_purge", False):
        return None
    retention = load_settings().retention
    return PeriodicPurge(lambda: build_purger(args.database_url, retention=retention),
                         every=retention.purge_every.total_seconds())


async def run(args) -> int:
    sessions, backend, policy, dispatcher, pusher = build(args)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    find = _recipient_finder(backend)
    recalls_planned = 0
    purge = retention_task(args)

    def recalls() -> int:
        with sessions() as session, session.begin():
            planned, _unreachable = plan_recalls(session, policy, find)
            return planned

    async def purging() -> None:
        # Beside the reminder ticks, not inside them: a long purge (the first one on a big
        # database) must not hold reminders back.
        while not stop.is_set():
            await asyncio.to_thread(purge.tick)
            try:
                await asyncio.wait_for(stop.wait(), timeout=min(args.poll_seconds, 60))
            except asyncio.TimeoutError:
                pass

    purger_task = asyncio.create_task(purging()) if purge is not None else None
    # Alive while the ticks come round: three missed polls (at least two minutes) is stuck.
    probe = start_probe("reminders", getattr(args, "health_address", None), max(3 * args.poll_seconds, 120), sessions)
    logger.info("Reminder scheduler %s polling every %ss (Rasa at %s)", dispatcher.worker,
                args.poll_seconds, pusher.base_url)
    try:
        while not stop.is_set():
            try:
                recalls_planned += await asyncio.to_thread(recalls)
                # Drain: when a tick claimed a full batch, go again at once.
                while await dispatcher.run_once() >= dispatcher.batch_size and not stop.is_set():
                    pass
            except Exception:  # noqa: BLE001 - e.g. the database briefly unavailable: next tick
                logger.exception("Reminder tick failed; retrying at the next tick")
            if probe is not None:
                probe.beat({**figures_of(dispatcher.figures), "recalls_planned": recalls_planned})
            if args.once:
                break
            try:
                await asyncio.wait_for(stop.wait(), timeout=args.poll_seconds)
            except asyncio.TimeoutError:
                pass
    finally:
        if purger_task is not None:
            purge.stop()  # a running purge stops after its current batch
            await purger_task
        await pusher.close()
        if probe is not None:
            probe.close()
        figures = {**dispatcher.figures.as_dict(), "recalls_planned": recalls_planned,
                   "jobs": await asyncio.to_thread(dispatcher.store.counts)}
        # Figures only: counts and timings, no patient data.
        print("reminder scheduler figures: " + json.dumps(figures, sort_keys=True), flush=True)
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m clinic.reminders.scheduler", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rasa-url", default=os.environ.get("RASA_URL", "http://127.0.0.1:5005"))
    parser.add_argument("--poll-seconds", type=float, default=_env_float("REMINDER_POLL_SECONDS", 30))
    parser.add_argument("--database-url", default=None, help="default: CLINIC_DATABASE_URL")
    parser.add_argument("--once", action="store_true", help="one tick, then exit (no purge)")
    parser.add_argument("--no-purge", action="store_true",
                        help="do not run the retention purge (run `python -m clinic.retention purge` elsewhere)")
    parser.add_argument("--health-address", type=address_argument, default=os.environ.get(ENV_ADDRESS, ""),
                        help=f"host:port for /healthz, /readyz and /metrics (default: {ENV_ADDRESS}; empty: none)")
    args = parser.parse_args(argv)
    configure_logging("reminders")
    logging.getLogger("aiohttp").setLevel(logging.WARNING)
    return asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
