"""``python -m clinic.broadcasts``: create, send and follow health-tip campaigns.

    create FILE.yml            create the campaign and queue its segment (opted-in contacts)
    run NAME [--rate R]        send it (throttled, paced, exactly once); Ctrl-C stops
                               cleanly and ``run`` again resumes; so does a crashed runner
    status NAME                progress: pending / sending / sent / skipped / failed / unknown, and
                               language_fallbacks (recipients who got the default language)
    list                       every campaign with its progress
    requeue-unknown NAME       resend rows whose fate a crash left unknown (may duplicate)
    cancel NAME                stop for good (rows not yet sent stay pending, never sent)

The messages go into the outbox's queue (clinic/messaging/outbox_queue.py, priority
``PRIORITY_BROADCAST``: after replies, staff replies, reminders and surveys); the process
that owns the outbox (``python -m gateway``, or Rasa's channel in the Rasa-only development
mode) sends them with the number's one rate limit, so it must be running.

Settings (environment): CLINIC_DATABASE_URL (the gateway's database).
Exit codes: 0 done / stopped, 1 error, 2 campaign paused by a campaign-wide Graph error.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import socket
import sys
from typing import Optional

from clinic.broadcasts import campaign_file
from clinic.broadcasts import tables as t
from clinic.broadcasts.runner import CampaignPaused, Runner
from clinic.broadcasts.store import BroadcastStore, CampaignError
from clinic.db import create_schema, make_engine, make_session_factory
from clinic.logs import configure_logging
from clinic.messaging.outbox_queue import PRIORITY_BROADCAST, OutboxQueue
from clinic.messaging.store import WhatsAppStore


def _store(database_url: Optional[str]) -> BroadcastStore:
    engine = make_engine(database_url)
    create_schema(engine)
    return BroadcastStore(make_session_factory(engine))


def build_sender(store: BroadcastStore, priority: int = PRIORITY_BROADCAST) -> OutboxQueue:
    """The outbox's queue in this database: the gateway sends what is queued and the
    runner reads each outcome back."""
    return OutboxQueue(WhatsAppStore(store.sessions), priority)


async def _run(store: BroadcastStore, name: str, rate: Optional[float], concurrency: int,
               progress_every: float) -> int:
    campaign = await asyncio.to_thread(store.campaign, name)
    sender = build_sender(store)
    runner = Runner(store, sender, f"{socket.gethostname()}:{os.getpid()}", concurrency=concurrency, rate=rate)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        state = await runner.run(name, stop, on_progress=lambda line: print(line, flush=True),
                                 progress_every=progress_every)
    except CampaignPaused as error:
        print(f"{name}: PAUSED by a campaign-wide error: {error}", flush=True)
        return 2
    figures = runner.figures
    print(f"{name}: {state}; this run sent={figures.sent} skipped={figures.skipped} failed={figures.failed} "
          f"deferred={figures.deferred} language_fallbacks={figures.fallbacks} recovered={figures.reconciled} "
          f"rate={figures.rate():.1f}/s", flush=True)
    print(store.progress(campaign.id).line(), flush=True)
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m clinic.broadcasts", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default=None)
    sub = parser.add_subparsers(dest="command", required=True)
    create = sub.add_parser("create")
    create.add_argument("file")
    run = sub.add_parser("run")
    run.add_argument("name")
    run.add_argument("--rate", type=float, default=None, help="messages/s (default: the campaign's)")
    # Messages waiting for their outcome at once (each takes the outbox's look-up interval
    # plus its send): enough for the campaign's rate, which the outbox's one limit caps anyway.
    run.add_argument("--concurrency", type=int, default=32)
    run.add_argument("--progress-every", type=float, default=5.0, metavar="SECONDS")
    for command in ("status", "requeue-unknown", "cancel"):
        sub.add_parser(command).add_argument("name")
    sub.add_parser("list")
    args = parser.parse_args(argv)
    try:
        store = _store(args.database_url)
        if args.command == "create":
            spec = campaign_file.load(args.file)
            campaign = store.create(spec.name, spec.template, spec.language,
                                    spec.params_by_language or spec.params, spec.quick_replies,
                                    spec.rate, spec.description, spec.topic, languages=spec.languages)
            queued = store.enqueue_segment(campaign.id)
            print(f"created {campaign.name}: {queued} opted-in recipients queued (template {campaign.template} "
                  f"in {', '.join(campaign.languages)}, default {campaign.language}; {campaign.rate:g} msg/s)")
            return 0
        if args.command == "run":
            if args.rate is not None and not 0 < args.rate <= campaign_file.MAX_RATE:
                raise CampaignError(f"--rate must be between 0 and {campaign_file.MAX_RATE:g}")
            return asyncio.run(_run(store, args.name, args.rate, args.concurrency, args.progress_every))
        if args.command == "list":
            for campaign in store.campaigns():
                print(store.progress(campaign.id).line())
            return 0
        campaign = store.campaign(args.name)
        if args.command == "status":
            print(store.progress(campaign.id).line())
        elif args.command == "requeue-unknown":
            print(f"{store.requeue_unknown(campaign.id)} rows back to pending")
        elif args.command == "cancel":
            store.set_status(campaign.id, t.CANCELLED)
            print(f"{campaign.name} cancelled")
        return 0
    except CampaignError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    # Here, not in main(): tests call main() in their own process, whose logging is pytest's.
    configure_logging("broadcasts", default_level=logging.WARNING)
    sys.exit(main())
