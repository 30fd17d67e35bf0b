"""``python -m clinic.surveys``: plan and send satisfaction surveys.

    plan                 plan surveys for fulfilled visits and resolved tickets (idempotent)
    send [--loop S]      plan, then send what is due (once, or every S seconds until Ctrl-C)
    status               counts by delivery status, answered, average rating, and how many
                         went out in the default language for want of the patient's

The surveys go into the outbox's queue (clinic/messaging/outbox_queue.py, priority
``PRIORITY_SURVEY``); the process that owns the outbox (``python -m gateway``, or Rasa's
channel in the Rasa-only development mode) sends them with the number's one rate limit.

Settings: CLINIC_DATABASE_URL (the gateway's database).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import socket
import sys

from sqlalchemy import func, select

from clinic.consent import ConsentStore
from clinic.db import create_schema, make_engine, make_session_factory
from clinic.logs import configure_logging
from clinic.surveys import planner
from clinic.surveys import tables as t
from clinic.surveys.store import SurveyStore
from clinic.worker_probe import ENV_ADDRESS, address_argument, figures_of, start_probe

logger = logging.getLogger(__name__)


def _visit_day(sessions, settings):
    """appointment id → the visit's date in the clinic's time zone (the sender writes it in
    the patient's language)."""
    from clinic.scheduling.tables import AppointmentRow

    def day(appointment_id: str):
        with sessions() as session:
            row = session.get(AppointmentRow, appointment_id)
            return row.start.astimezone(settings.timezone).date() if row else None
    return day


async def _send(sessions, loop_seconds: float, health_address=None) -> int:
    from clinic.broadcasts.__main__ import build_sender
    from clinic.broadcasts.store import BroadcastStore
    from clinic.messaging.outbox_queue import PRIORITY_SURVEY
    from clinic.settings import load_settings
    from clinic.surveys.sender import SurveySender

    settings = load_settings()
    consent = ConsentStore(sessions)
    broadcasts = BroadcastStore(sessions, consent)
    sender = build_sender(broadcasts, PRIORITY_SURVEY)
    store = SurveyStore(sessions)
    surveys = SurveySender(store, consent, sender, f"{socket.gethostname()}:{os.getpid()}",
                           settings.clinic_name, _visit_day(sessions, settings), broadcasts.last_outbound_at)
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(signum, stop.set)
    # A service (loop_seconds) logs its figures as log lines (JSON, like every process); a
    # single run (a command) prints them for the person who ran it.
    report = print if not loop_seconds else (lambda line: logger.info("%s", line))
    report(f"recovered: {await asyncio.to_thread(surveys.recover, broadcasts.outbound_for)}")
    # A service: alive while its rounds come round (three missed, at least two minutes: stuck).
    probe = start_probe("surveys", health_address, max(3 * loop_seconds, 120), sessions) if loop_seconds else None
    try:
        while True:
            planned = await asyncio.to_thread(planner.plan, sessions, store, consent)
            figures = await surveys.send_due()
            report(f"planned visits={planned[0]} tickets={planned[1]}; sent {figures}")
            if probe is not None:
                probe.beat({**figures_of(figures), "visits_planned": planned[0], "tickets_planned": planned[1]})
            if not loop_seconds:
                return 0
            try:
                await asyncio.wait_for(stop.wait(), loop_seconds)
                return 0
            except asyncio.TimeoutError:
                pass
    finally:
        if probe is not None:
            probe.close()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m clinic.surveys", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default=None)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("plan")
    send = sub.add_parser("send")
    send.add_argument("--loop", type=float, default=0.0, metavar="SECONDS")
    send.add_argument("--health-address", type=address_argument, default=os.environ.get(ENV_ADDRESS, ""),
                      help=f"with --loop: host:port for /healthz, /readyz and /metrics (default: {ENV_ADDRESS})")
    sub.add_parser("status")
    args = parser.parse_args(argv)
    engine = make_engine(args.database_url)
    create_schema(engine)
    sessions = make_session_factory(engine)
    if args.command == "plan":
        print("planned (visits, tickets):", planner.plan(sessions, SurveyStore(sessions), ConsentStore(sessions)))
    elif args.command == "send":
        return asyncio.run(_send(sessions, args.loop, args.health_address))
    else:
        with sessions() as session:
            counts = dict(session.execute(select(t.SurveyRow.status, func.count()).group_by(t.SurveyRow.status)).all())
            answered, average = session.execute(select(func.count(t.SurveyRow.rating), func.avg(t.SurveyRow.rating))).one()
        print(f"surveys by status {counts}; answered {answered}; average rating "
              f"{'-' if average is None else f'{average:.2f}'}; "
              f"language fallbacks {SurveyStore(sessions).fallbacks()}")
    return 0


if __name__ == "__main__":
    # Here, not in main(): tests call main() in their own process, whose logging is pytest's.
    configure_logging("surveys", default_level=logging.WARNING)
    sys.exit(main())
