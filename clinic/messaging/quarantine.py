"""The inbound quarantine: what the channel received but could not process, and why.

Why a table and not a log line: a message that cannot be parsed, applied to the inbox or
answered must neither block the others (the journal, the batch, the patient's next message)
nor disappear. It comes here with a reason code, staff see it in the inbox
(inbox/quarantine_page.py) and retry or dismiss it there, and the counts are on the
channel's ``/metrics``.

What a row holds: the reason (a code and a content-free detail), when the message was
received, its wamid and pseudonymous conversation id when known, and — only when a retry
needs it — the journal record it came from (redacted text and the Fernet-encrypted address,
exactly what the inbox itself would hold; cleared on retry or dismissal). A message whose
processing attempts ran out keeps its text in its own ``wa_inbox`` row instead (``inbox_id``).
Never a phone number in clear, never a raw webhook body.

Sources:
- ``webhook``: an item of a webhook batch that could not be parsed (no id, no sender…);
  nothing to retry with, so it can only be dismissed.
- ``journal``: a journalled record the database refused (``record_json`` for the retry).
- ``inbox``: a message whose processing attempts ran out (a dead letter; a handoff ticket
  was opened for it).

Synchronous SQLAlchemy, like clinic/messaging/store.py: callers run it in a worker thread.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
from typing import Any, Dict, List, Optional

from sqlalchemy import Column, DateTime, Integer, String, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, sessionmaker

from clinic.at_rest import SealedText
from clinic.clock import utcnow
from clinic.db import Base
from clinic.messaging import identities
from clinic.messaging.store import ContactRow, InboxRow
from whatsapp.inbound import clean_json, clean_text

SOURCES = ("webhook", "journal", "inbox")
STATES = ("open", "retried", "dismissed")
REASON_MAX = 64
DETAIL_MAX = 200
WAMID_MAX = 191

class QuarantineRow(Base):
    __tablename__ = "wa_quarantine"

    id = Column(Integer, primary_key=True)
    source = Column(String(16), nullable=False)  # webhook | journal | inbox
    reason = Column(String(REASON_MAX), nullable=False)  # a code, e.g. attempts_exhausted
    detail = Column(String(DETAIL_MAX), nullable=True)  # content-free (an exception class, a field)
    wamid = Column(String(WAMID_MAX), nullable=True)
    conversation_id = Column(String(64), nullable=True, index=True)  # pseudonymous
    kind = Column(String(32), nullable=True)  # text, image… when known
    inbox_id = Column(Integer, nullable=True)  # the wa_inbox row of a dead letter
    # The journal record (sealed at rest), only while a retry needs it.
    record_json = Column(SealedText, nullable=True)
    state = Column(String(12), nullable=False, index=True)  # open | retried | dismissed
    attempts = Column(Integer, nullable=False, default=0)
    received_at = Column(DateTime(timezone=True), nullable=True)
    created_at = Column(DateTime(timezone=True), nullable=False)
    resolved_at = Column(DateTime(timezone=True), nullable=True)
    resolved_by = Column(String(100), nullable=True)


@dataclasses.dataclass(frozen=True)
class QuarantineItem:
    id: int
    source: str
    reason: str
    detail: Optional[str]
    wamid: Optional[str]
    conversation_id: Optional[str]
    kind: Optional[str]
    inbox_id: Optional[int]
    state: str
    attempts: int
    received_at: Optional[dt.datetime]
    created_at: dt.datetime
    resolved_at: Optional[dt.datetime]
    resolved_by: Optional[str]
    retryable: bool


class NotRetryable(ValueError):
    """Nothing to retry with (an unparsed webhook item), or the item is no longer open."""


# Stands in for a message id too long for the inbox (no wamid of Meta's is; the column holds
# 191): a digest keeps redeliveries deduplicated, and the prefix tells the best-effort
# mark-read not to send it to Graph, which would refuse it.
OVERLONG_ID_PREFIX = "wamid.overlong."


def storable_wamid(wamid: str) -> str:
    if len(wamid) <= WAMID_MAX:
        return wamid
    return OVERLONG_ID_PREFIX + hashlib.sha256(wamid.encode("utf-8", "replace")).hexdigest()


class Quarantine:
    def __init__(self, session_factory: sessionmaker) -> None:
        self._sessions = session_factory

    @property
    def sessions(self) -> sessionmaker:
        return self._sessions

    # ── putting things in ───────────────────────────────────────────────────────────────
    def add(self, source: str, reason: str, *, detail: Optional[str] = None, wamid: Optional[str] = None,
            conversation_id: Optional[str] = None, kind: Optional[str] = None,
            inbox_id: Optional[int] = None, record: Optional[Dict[str, Any]] = None,
            attempts: int = 0, received_at: Optional[dt.datetime] = None) -> int:
        """One item, in its own transaction. Every field is made storable first (cut to its
        column, unencodable code points replaced): quarantining must not fail on the very
        data that put the item here."""
        if source not in SOURCES:
            raise ValueError(f"unknown quarantine source {source!r}")
        row = QuarantineRow(
            source=source, reason=_short(reason, REASON_MAX) or "unknown", detail=_short(detail, DETAIL_MAX),
            wamid=_short(wamid, WAMID_MAX), conversation_id=_short(conversation_id, 64), kind=_short(kind, 32),
            inbox_id=inbox_id, record_json=json.dumps(clean_json(record)) if record is not None else None,
            state="open", attempts=attempts, received_at=received_at, created_at=utcnow())
        with self._sessions() as session, session.begin():
            session.add(row)
            session.flush()
            return row.id

    # ── reading ─────────────────────────────────────────────────────────────────────────
    def items(self, state: Optional[str] = "open", limit: int = 200) -> List[QuarantineItem]:
        query = select(QuarantineRow).order_by(QuarantineRow.id.desc()).limit(max(1, min(limit, 1000)))
        if state:
            query = query.where(QuarantineRow.state == state)
        with self._sessions() as session:
            return [_item(row) for row in session.scalars(query)]

    def get(self, item_id: int) -> Optional[QuarantineItem]:
        with self._sessions() as session:
            row = session.get(QuarantineRow, item_id)
            return _item(row) if row is not None else None

    def message_text(self, item_id: int) -> Optional[str]:
        """The (redacted) text the item holds, for staff who follow it up: a dead letter's
        inbox row, else the journal record's. None when there is none."""
        with self._sessions() as session:
            row = session.get(QuarantineRow, item_id)
            if row is None:
                return None
            if row.inbox_id is not None:
                inbox = session.get(InboxRow, row.inbox_id)
                return inbox.text if inbox is not None else None
            if row.record_json:
                text = json.loads(row.record_json).get("text")
                return text if isinstance(text, str) else None
            return None

    def counts(self) -> Dict[str, Any]:
        """For ``/metrics``: items by state, and the open ones by source and reason."""
        with self._sessions() as session:
            by_state = {state: count for state, count in session.execute(
                select(QuarantineRow.state, func.count()).group_by(QuarantineRow.state))}
            open_by_reason = {f"{source}:{reason}": count for source, reason, count in session.execute(
                select(QuarantineRow.source, QuarantineRow.reason, func.count())
                .where(QuarantineRow.state == "open")
                .group_by(QuarantineRow.source, QuarantineRow.reason))}
        return {"by_state": by_state, "open_by_reason": open_by_reason}

    # ── staff actions, inside the caller's (audited) transaction ──────────────────────────
    def retry(self, session: Session, item_id: int, by: str) -> QuarantineItem:
        """Give the message another go: a dead letter goes back to ``pending`` in the inbox
        with fresh attempts, a journal record is put into the inbox; the channel's sweep
        then processes it. Raises NotRetryable when there is nothing to retry with."""
        row = _open_row(session, item_id)
        now = utcnow()
        if row.inbox_id is not None:
            inbox = session.get(InboxRow, row.inbox_id)
            if inbox is None or inbox.state != "failed":
                raise NotRetryable("the message is no longer waiting in the inbox")
            inbox.state, inbox.attempts, inbox.error = "pending", 0, None
        elif row.record_json:
            _insert_record(session, json.loads(row.record_json), now)
        else:
            raise NotRetryable("nothing to retry with: the webhook item could not be read")
        row.state, row.resolved_at, row.resolved_by = "retried", now, _short(by, 100)
        row.record_json = None  # the text now lives in the inbox, once
        session.flush()
        return _item(row)

    def dismiss(self, session: Session, item_id: int, by: str) -> QuarantineItem:
        """Staff have dealt with it: closed, and the text it kept is deleted."""
        row = _open_row(session, item_id)
        row.state, row.resolved_at, row.resolved_by = "dismissed", utcnow(), _short(by, 100)
        row.record_json = None
        if row.inbox_id is not None:
            session.execute(update(InboxRow).where(InboxRow.id == row.inbox_id, InboxRow.state == "failed")
                            .values(text=None, metadata_json=None))
        session.flush()
        return _item(row)


def _open_row(session: Session, item_id: int) -> QuarantineRow:
    row = session.scalars(select(QuarantineRow).where(QuarantineRow.id == item_id).with_for_update()).first()
    if row is None:
        raise LookupError("no such quarantined item")
    if row.state != "open":
        raise NotRetryable(f"already {row.state}")
    return row


def _insert_record(session: Session, record: Dict[str, Any], now: dt.datetime) -> None:
    """A journal message record into the inbox (ignored if its wamid is already there)."""
    if record.get("type") != "message":
        raise NotRetryable("only messages can be retried")
    record = identities.settle_record(session, record)  # the person's one conversation (usernames)
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    received = _moment(record.get("received_at")) or now
    skip = bool(record.get("skip"))
    # The turn's wire format carries the tapped title as ``title``; journal lines written
    # before it, as ``metadata``. Read leniently: this record is here because it was odd.
    title = record.get("title")
    metadata = {"title": title} if isinstance(title, str) and title else record.get("metadata")
    redacted = record.get("redacted") or []
    session.execute(insert(InboxRow).values(
        wamid=_short(str(record["wamid"]), WAMID_MAX), conversation_id=str(record["conversation_id"])[:64],
        kind=str(record.get("kind") or "unknown")[:32], text=None if skip else record.get("text"),
        metadata_json=json.dumps(metadata) if metadata else None,
        redacted=",".join(str(r) for r in redacted)[:64] or None,
        state="skipped" if skip else "pending", attempts=0, received_at=received,
    ).on_conflict_do_nothing(index_elements=["wamid"]))
    address = record.get("address_encrypted")
    if isinstance(address, str) and address:
        session.execute(insert(ContactRow).values(
            conversation_id=str(record["conversation_id"])[:64], address_encrypted=address,
            last_inbound_at=received, created_at=now,
        ).on_conflict_do_nothing(index_elements=["conversation_id"]))


def _moment(value: object) -> Optional[dt.datetime]:
    if not isinstance(value, str):
        return None
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.timezone.utc)


def _short(value: Optional[str], limit: int) -> Optional[str]:
    if value is None:
        return None
    return clean_text(str(value))[:limit]


def _aware(value: Optional[dt.datetime]) -> Optional[dt.datetime]:
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=dt.timezone.utc)
    return value


def _item(row: QuarantineRow) -> QuarantineItem:
    return QuarantineItem(
        id=row.id, source=row.source, reason=row.reason, detail=row.detail, wamid=row.wamid,
        conversation_id=row.conversation_id, kind=row.kind, inbox_id=row.inbox_id, state=row.state,
        attempts=row.attempts or 0, received_at=_aware(row.received_at), created_at=_aware(row.created_at),
        resolved_at=_aware(row.resolved_at), resolved_by=row.resolved_by,
        retryable=row.state == "open" and (row.inbox_id is not None or bool(row.record_json)))
