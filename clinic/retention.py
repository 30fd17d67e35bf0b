"""Retention (issue 18): delete what is past its period, in batches; record the counts.

Periods per kind come from ``retention:`` in content/clinic.yml (clinic/settings.py,
``RetentionSettings``); why each default: docs/data-retention.md. What each kind deletes:

- ``conversation_text``: Rasa's tracker events (``events`` table of the tracker store's
  database: RASA_TRACKER_STORE_URL, else endpoints.yml's SQLite file) older than the period.
- ``inbox_rows``: ``wa_quarantine`` items created before the cutoff; finished ``wa_inbox``
  rows (done, skipped, failed) received before it, except one a remaining quarantine item
  still points at. Pending or processing rows are the queue: never deleted.
- ``journal_segments``: webhook journal files (whatsapp/journal.py) not modified within the
  period; drained segments are already deleted by the door, so these are leftovers. The
  segment a live door is appending to is never touched.
- ``delivery_statuses``: ``wa_statuses`` rows, and ``wa_outbound`` rows in a final state
  (sent, refused, dismissed, or dead with no retry due) last updated before the cutoff.
- ``staff_inbox``: replies and notes (``inbox_messages``) of tickets resolved before the
  cutoff, and done call-back tasks (``inbox_tasks``). Ticket rows (no text) stay for the
  analytics.
- ``uploaded_files``: uploaded documents (``portal_uploads``: the encrypted bytes live in
  the database, not on disk).
- ``media``: photos, voice notes, videos, documents and stickers patients sent in the chat
  (``inbound_media`` rows received before the cutoff, and their sealed files in the media
  folder, clinic/messaging/media.py; the file goes with its row, in the same batch).
- ``survey_comments``: the free-text comment of a survey answer is cleared (the rating stays).
- ``audit_log``: the oldest rows, after an anchor row (clinic/inbox/audit.py) so the hash chain
  still verifies.

Each batch is its own transaction (``batch_size`` rows), so the assistant keeps working while a
purge runs. The counts, never any content, go to the audit log as one ``retention_purge`` row
(only when something was deleted). SQLite files are checkpointed afterwards (clinic/db.py) so
deleted text does not linger in the write-ahead log (secure_delete zeroes the freed pages).

Command line::

    python -m clinic.retention purge [--dry-run]   # or: make purge ARGS=--dry-run
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import fcntl
import json
import logging
import os
import re
import sys
import threading
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Mapping, Optional

import yaml
from sqlalchemy import and_, delete, func, inspect, or_, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.orm import sessionmaker

from clinic.clock import utcnow
from clinic.settings import PROJECT_ROOT, RetentionSettings

logger = logging.getLogger("clinic.retention")

PURGE_ACTION = "retention_purge"
TRACKER_URL_ENV = "RASA_TRACKER_STORE_URL"
KINDS = ("conversation_text", "inbox_rows", "journal_segments", "delivery_statuses", "staff_inbox",
         "uploaded_files", "media", "survey_comments", "audit_log")


@dataclasses.dataclass
class PurgeReport:
    counts: Dict[str, int]
    dry_run: bool
    audit_head: Optional[str] = None  # the chain's newest hash after the purge (a witness to keep)
    failed: List[str] = dataclasses.field(default_factory=list)  # kinds whose purge raised

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def as_dict(self) -> dict:
        return {"counts": self.counts, "dry_run": self.dry_run, "audit_head": self.audit_head,
                "failed": self.failed}


def tracker_database_url(environ: Optional[Mapping[str, str]] = None,
                         endpoints: Path = PROJECT_ROOT / "endpoints.yml") -> Optional[str]:
    """Where Rasa's tracker store keeps its events, found as Rasa finds it: the
    ``RASA_TRACKER_STORE_URL`` variable when set, else endpoints.yml's ``dialect``/``db``
    (SQLite, relative to the project). None when it is not a SQL store."""
    environ = os.environ if environ is None else environ
    if environ.get(TRACKER_URL_ENV):
        return environ[TRACKER_URL_ENV]
    try:
        config = (yaml.safe_load(endpoints.read_text(encoding="utf-8")) or {}).get("tracker_store") or {}
    except FileNotFoundError:
        return None
    url = str(config.get("url") or "")
    if url and not re.search(r"\$\{", url):
        return url
    if str(config.get("dialect", "sqlite")) != "sqlite" or not config.get("db"):
        return None
    database = Path(str(config["db"]))
    return f"sqlite:///{database if database.is_absolute() else PROJECT_ROOT / database}"


class Purger:
    """One purge over the clinic database (and the tracker store's, and journal folders)."""

    def __init__(self, engine: Engine, retention: RetentionSettings, *,
                 tracker_engine: Optional[Engine] = None, journal_roots: Iterable[Path] = (),
                 clock: Callable[[], dt.datetime] = utcnow) -> None:
        self.engine = engine
        self.sessions = sessionmaker(engine, future=True, expire_on_commit=False)
        self.retention = retention
        self.tracker_engine = tracker_engine
        self.journal_roots = [Path(p) for p in journal_roots]
        self.clock = clock
        self.batch = retention.batch_size
        # Set (from another thread) to stop after the current batch: the scheduler's SIGTERM.
        self.stopping = threading.Event()

    # ── the whole purge ──────────────────────────────────────────────────────────────
    def run(self, dry_run: bool = False) -> PurgeReport:
        from clinic.db import checkpoint

        now = self.clock().astimezone(dt.timezone.utc)
        counts: Dict[str, int] = {}
        failed: List[str] = []
        for kind in KINDS:
            period = getattr(self.retention, kind)
            counts[kind] = 0
            if period is None:  # kept for ever
                continue
            try:
                counts[kind] = getattr(self, f"_{kind}")(now - period, dry_run)
            except Exception:  # noqa: BLE001 - one store failing must not keep the others' data
                logger.exception("Retention purge of %s failed; the other kinds go on", kind)
                failed.append(kind)
        report = PurgeReport(counts, dry_run, failed=failed)
        if not dry_run:
            if report.total or failed:
                self._record(counts, failed, now)
            for engine in (self.engine, self.tracker_engine):
                if engine is not None:
                    checkpoint(engine)
        report.audit_head = self._audit_head()
        return report

    def _record(self, counts: Dict[str, int], failed: List[str], now: dt.datetime) -> None:
        from clinic.inbox import audit
        from clinic.inbox.model import SYSTEM

        # A failed kind's count is what its last finished batch left uncounted: 0 here.
        summary = {"deleted": counts, **({"failed": failed} if failed else {})}
        detail = json.dumps(summary, separators=(",", ":"), sort_keys=True)

        def write() -> None:
            with audit.transaction(self.sessions) as session:
                audit.append(session, SYSTEM, PURGE_ACTION, at=now, detail=detail)
        audit.retrying(write)

    def _audit_head(self) -> Optional[str]:
        from clinic.inbox.tables import AuditRow

        with self.sessions() as session:
            return session.execute(select(AuditRow.entry_hash).order_by(AuditRow.id.desc()).limit(1)
                                   ).scalar_one_or_none()

    # ── batches ──────────────────────────────────────────────────────────────────────
    def _batches(self, engine: Engine, table, key, condition, dry_run: bool, *,
                 clear: Optional[dict] = None) -> int:
        """Delete (or, with ``clear``, update) the rows matching ``condition``, ``batch`` at a
        time, one transaction each; returns how many. Dry run: only counts."""
        if dry_run:
            with engine.connect() as connection:
                return connection.execute(select(func.count()).select_from(table).where(condition)).scalar_one()
        total = 0
        while not self.stopping.is_set():
            with engine.begin() as connection:
                keys = connection.execute(select(key).where(condition).order_by(key).limit(self.batch)
                                          ).scalars().all()
                if not keys:
                    break
                if clear is None:
                    connection.execute(delete(table).where(key.in_(keys)))
                else:
                    connection.execute(update(table).where(key.in_(keys)).values(**clear))
            total += len(keys)
            if len(keys) < self.batch:
                break
        return total

    # ── kinds ────────────────────────────────────────────────────────────────────────
    def _conversation_text(self, cutoff: dt.datetime, dry_run: bool) -> int:
        engine = self.tracker_engine
        if engine is None or not inspect(engine).has_table("events"):
            return 0
        from sqlalchemy import MetaData, Table

        events = Table("events", MetaData(), autoload_with=engine)
        # Rasa stores each event's time as seconds since the epoch (a float).
        return self._batches(engine, events, events.c.id, events.c.timestamp < cutoff.timestamp(), dry_run)

    def _inbox_rows(self, cutoff: dt.datetime, dry_run: bool) -> int:
        from clinic.messaging.quarantine import QuarantineRow
        from clinic.messaging.store import InboxRow

        quarantined = self._batches(self.engine, QuarantineRow.__table__, QuarantineRow.id,
                                    QuarantineRow.created_at < cutoff, dry_run)
        still_quarantined = select(QuarantineRow.inbox_id).where(QuarantineRow.inbox_id.is_not(None))
        if dry_run:  # the quarantine rows counted above are still there
            still_quarantined = still_quarantined.where(QuarantineRow.created_at >= cutoff)
        inbox = self._batches(self.engine, InboxRow.__table__, InboxRow.id,
                              and_(InboxRow.received_at < cutoff,
                                   InboxRow.state.in_(("done", "skipped", "failed")),
                                   InboxRow.id.not_in(still_quarantined)), dry_run)
        return quarantined + inbox

    def _delivery_statuses(self, cutoff: dt.datetime, dry_run: bool) -> int:
        from clinic.messaging.store import DEAD, DISMISSED, REFUSED, SENT, OutboundRow, StatusRow

        statuses = self._batches(self.engine, StatusRow.__table__, StatusRow.wamid,
                                 StatusRow.updated_at < cutoff, dry_run)
        finished = or_(OutboundRow.state.in_((SENT, REFUSED, DISMISSED)),
                       and_(OutboundRow.state == DEAD, OutboundRow.retry_at.is_(None)))
        outbound = self._batches(self.engine, OutboundRow.__table__, OutboundRow.id,
                                 and_(OutboundRow.updated_at < cutoff, finished), dry_run)
        return statuses + outbound

    def _staff_inbox(self, cutoff: dt.datetime, dry_run: bool) -> int:
        from clinic.inbox.tables import MessageRow, TaskRow, TicketRow

        resolved_before = select(TicketRow.id).where(TicketRow.state == "resolved",
                                                     TicketRow.resolved_at < cutoff)
        messages = self._batches(self.engine, MessageRow.__table__, MessageRow.id,
                                 MessageRow.ticket_id.in_(resolved_before), dry_run)
        tasks = self._batches(self.engine, TaskRow.__table__, TaskRow.id,
                              and_(TaskRow.state == "done", TaskRow.done_at < cutoff), dry_run)
        return messages + tasks

    def _uploaded_files(self, cutoff: dt.datetime, dry_run: bool) -> int:
        from clinic.portal.tables import PortalUploadRow as UploadRow

        return self._batches(self.engine, UploadRow.__table__, UploadRow.id,
                             UploadRow.created_at < cutoff, dry_run)

    def _media(self, cutoff: dt.datetime, dry_run: bool) -> int:
        from clinic.messaging.media import (
            InboundMediaRow,
            MediaStore,
            delete_media_rows,
            media_directory,
        )

        if not inspect(self.engine).has_table(InboundMediaRow.__tablename__):
            return 0  # a database not yet migrated to 0018
        condition = InboundMediaRow.received_at < cutoff
        if dry_run:
            return self._batches(self.engine, InboundMediaRow.__table__, InboundMediaRow.id, condition, True)
        files = MediaStore(self.sessions, media_directory(str(self.engine.url)))
        total = 0
        while not self.stopping.is_set():
            with self.sessions.begin() as session:
                batch = list(session.scalars(select(InboundMediaRow.id).where(condition)
                                             .order_by(InboundMediaRow.id).limit(self.batch)))
                ids = delete_media_rows(session, InboundMediaRow.id.in_(batch)) if batch else []
            files.delete_files(ids)
            total += len(ids)
            if len(batch) < self.batch:
                break
        return total

    def _survey_comments(self, cutoff: dt.datetime, dry_run: bool) -> int:
        from clinic.surveys.tables import SurveyRow

        return self._batches(self.engine, SurveyRow.__table__, SurveyRow.id,
                             and_(SurveyRow.comment_encrypted.is_not(None), SurveyRow.commented_at < cutoff),
                             dry_run, clear={"comment_encrypted": None})

    def _journal_segments(self, cutoff: dt.datetime, dry_run: bool) -> int:
        deleted = 0
        limit = cutoff.timestamp()
        for root in self.journal_roots:
            if not root.is_dir():
                continue
            for directory in [root, *sorted(p for p in root.iterdir() if p.is_dir())]:
                deleted += _purge_journal_directory(directory, limit, dry_run)
        return deleted

    def _audit_log(self, cutoff: dt.datetime, dry_run: bool) -> int:
        from clinic.inbox import audit
        from clinic.inbox.model import SYSTEM
        from clinic.inbox.tables import AuditRow

        with self.sessions() as session:
            first_kept = session.execute(select(func.min(AuditRow.id)).where(AuditRow.at >= cutoff)).scalar()
            older = select(func.count()).select_from(AuditRow)
            if first_kept is not None:
                older = older.where(AuditRow.id < first_kept)
            trimmed = session.execute(older).scalar_one()
        if dry_run or not trimmed:
            return trimmed

        # 1. Anchor the chain at the first row kept (its prev_hash), in the chain itself.
        def anchor() -> int:
            with audit.transaction(self.sessions) as session:
                if first_kept is not None:
                    kept_from = session.get(AuditRow, first_kept).prev_hash
                else:  # every row is past its period: the anchor row itself is the first kept
                    kept_from = session.execute(select(AuditRow.entry_hash).order_by(AuditRow.id.desc())
                                                .limit(1)).scalar_one()
                detail = json.dumps({"kept_from": kept_from, "trimmed": trimmed}, separators=(",", ":"))
                row = audit.append(session, SYSTEM, audit.ANCHOR_ACTION, at=self.clock(), detail=detail)
                return first_kept if first_kept is not None else row.id
        below = audit.retrying(anchor)
        # 2. Delete below it, in batches (the delete trigger allows nothing else).
        deleted = 0
        while not self.stopping.is_set():
            with audit.transaction(self.sessions) as session:
                ids = session.execute(select(AuditRow.id).where(AuditRow.id < below).order_by(AuditRow.id)
                                      .limit(self.batch)).scalars().all()
                if ids:
                    session.execute(delete(AuditRow).where(AuditRow.id.in_(ids)))
            deleted += len(ids)
            if len(ids) < self.batch:
                break
        return deleted


def _purge_journal_directory(directory: Path, older_than: float, dry_run: bool) -> int:
    from whatsapp.journal import SUFFIX

    segments = sorted(p for p in directory.glob(f"*{SUFFIX}") if p.stem.isdigit())
    if not segments:
        return 0
    lock_path = directory / ".lock"
    fd = os.open(lock_path, os.O_CREAT | os.O_RDWR, 0o600) if lock_path.exists() else None
    try:
        if fd is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                # A live door owns it: its newest segment is the one it appends to.
                segments = segments[:-1]
        deleted = 0
        for path in segments:
            try:
                if path.stat().st_mtime < older_than:
                    if not dry_run:
                        path.unlink()
                    deleted += 1
            except FileNotFoundError:  # drained by its door meanwhile
                pass
        return deleted
    finally:
        if fd is not None:
            os.close(fd)  # releases the lock if taken


def journal_roots(environ: Optional[Mapping[str, str]] = None, database_url: str = "") -> List[Path]:
    """The webhook journal folder (gateway/door.py ``journal_directory``): each door has a
    subfolder."""
    from clinic.db import VAR_DIR

    environ = os.environ if environ is None else environ
    if environ.get("WHATSAPP_JOURNAL_DIR"):
        return [Path(environ["WHATSAPP_JOURNAL_DIR"])]
    if database_url.startswith("sqlite:///") and ":memory:" not in database_url:
        database = Path(database_url.removeprefix("sqlite:///"))
        return [database.with_name(database.name + "-whatsapp-journal")]
    return [VAR_DIR / "whatsapp-journal"]


def build_purger(database_url: Optional[str] = None, tracker_url: Optional[str] = None,
                 retention: Optional[RetentionSettings] = None) -> Purger:
    """The purge of this deployment: the clinic database (CLINIC_DATABASE_URL), the tracker
    store's (``tracker_database_url``), the journal folder, the periods of clinic.yml."""
    from clinic.db import create_schema, make_engine, sqlite_file_of
    from clinic.db import database_url as clinic_url
    from clinic.settings import load_settings

    url = database_url or clinic_url()
    engine = make_engine(url)
    create_schema(engine)
    tracker_url = tracker_url or tracker_database_url()
    tracker_engine = None
    if tracker_url:
        database = sqlite_file_of(tracker_url)
        if database is None or database.exists():  # never create an empty tracker database
            tracker_engine = make_engine(tracker_url)
    return Purger(engine, retention or load_settings().retention, tracker_engine=tracker_engine,
                  journal_roots=journal_roots(database_url=url))


class PeriodicPurge:
    """The scheduler's purge (clinic/reminders/scheduler.py): ``tick`` runs one when due —
    ``first_after`` seconds after start (a scheduler restarted often still purges; a short
    test run never does), then every ``every`` seconds. A failed purge is logged and tried
    again at the next period; it never stops the scheduler."""

    def __init__(self, make_purger: Callable[[], Purger], every: float, first_after: float = 300.0,
                 clock: Optional[Callable[[], float]] = None) -> None:
        import time

        self._make = make_purger
        self._purger: Optional[Purger] = None
        self.every = every
        self.clock = clock or time.monotonic
        self.next_at = self.clock() + first_after
        self.runs = 0
        self._stopped = False

    def stop(self) -> None:
        """Stop a running purge after its current batch (from another thread)."""
        self._stopped = True
        if self._purger is not None:
            self._purger.stopping.set()

    def tick(self) -> Optional[PurgeReport]:
        if self._stopped or self.clock() < self.next_at:
            return None
        self.next_at = self.clock() + self.every
        try:
            if self._purger is None:
                self._purger = self._make()
            report = self._purger.run()
        except Exception:  # noqa: BLE001 - e.g. the database briefly unavailable: next period
            logger.exception("Retention purge failed; trying again in %ss", self.every)
            return None
        self.runs += 1
        logger.info("Retention purge: %s", json.dumps(report.as_dict(), sort_keys=True))
        return report


def main(argv: Optional[list] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m clinic.retention", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    purge = commands.add_parser("purge", help="delete what is past its retention period")
    purge.add_argument("--dry-run", action="store_true", help="count only; delete nothing")
    purge.add_argument("--database-url", default=None, help="default: CLINIC_DATABASE_URL")
    purge.add_argument("--tracker-url", default=None,
                       help="the tracker store's database (default: RASA_TRACKER_STORE_URL, else endpoints.yml)")
    args = parser.parse_args(argv)
    from clinic.logs import configure_logging

    configure_logging("retention")
    report = build_purger(args.database_url, args.tracker_url).run(dry_run=args.dry_run)
    # Counts only, never content.
    print(json.dumps(report.as_dict(), sort_keys=True), flush=True)
    return 1 if report.failed else 0


if __name__ == "__main__":
    sys.exit(main())
