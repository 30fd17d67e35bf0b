"""The append-only audit log: who did or saw what, when, in which conversation.

Written in the same transaction as the action it records, so an action without its audit
row cannot happen. There is no update or delete here (and the database refuses both, see
``tables.AUDIT_TRIGGERS``). Each row carries the SHA-256 of its content and of the row
before; ``verify`` recomputes the chain and names the first row that does not fit.
Details never hold message text: action names, ids, teams, reasons chosen by staff.

Retention (clinic/retention.py, docs/data-retention.md): the oldest rows may be purged, and
only by first appending an anchor row (``ANCHOR_ACTION``) whose detail names the
``prev_hash`` of the first row kept. The database lets a row be deleted only below the row
the newest anchor names (the delete trigger), and ``verify`` accepts a chain that does not
start at the genesis hash only when the newest anchor in it names a row that is still there:
removing more rows, or editing the anchor (its own hash is in the chain), is detected.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import threading
import time
from contextlib import contextmanager
from typing import Callable, Iterable, Iterator, List, Optional, TypeVar

from sqlalchemy import func, select, text
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from clinic.inbox.model import Actor, aware
from clinic.inbox.tables import AuditRow

GENESIS = "0" * 64
# The row a purge appends before deleting the oldest rows: {"kept_from": <prev_hash of the
# first row kept>, "trimmed": <rows deleted>}. The delete trigger reads the same key.
ANCHOR_ACTION = "audit_trimmed"
DETAIL_MAX = 500
T = TypeVar("T")

# One writer at a time in this process: the chain needs "read the last hash, append after
# it" to be atomic. Across processes the unique ``prev_hash`` turns a race into an
# IntegrityError, and ``retrying`` runs the whole operation again.
_WRITE_LOCK = threading.RLock()
_PG_LOCK_KEY = 0x1B0C_A0D1  # pg_advisory_xact_lock key: serialises appends across processes


@contextmanager
def transaction(session_factory: sessionmaker) -> Iterator[Session]:
    """A transaction that may append audit rows (holds the process-wide write lock)."""
    with _WRITE_LOCK, session_factory.begin() as session:
        yield session


def retrying(operation: Callable[[], T], attempts: int = 4) -> T:
    """Run ``operation`` again when another process appended to the chain at the same time
    (unique prev_hash) or held SQLite's write lock past its busy timeout."""
    for attempt in range(attempts):
        try:
            return operation()
        except (IntegrityError, OperationalError) as error:
            text = str(error.orig).lower() if getattr(error, "orig", None) else str(error).lower()
            if attempt == attempts - 1 or not ("prev_hash" in text or "locked" in text
                                               or "unique" in text and "inbox_audit" in text):
                raise
            time.sleep(0.02 * (attempt + 1))
    raise AssertionError("unreachable")


def _digest(prev_hash: str, at: dt.datetime, actor: str, actor_id: Optional[int], action: str,
            conversation_id: Optional[str], ticket_id: Optional[int], detail: str,
            client: Optional[str]) -> str:
    # Microseconds are dropped: not every database keeps them the same way.
    canonical = json.dumps(
        [prev_hash, aware(at).replace(microsecond=0).isoformat(), actor, actor_id, action,
         conversation_id, ticket_id, detail, client],
        separators=(",", ":"), ensure_ascii=True,
    )
    return hashlib.sha256(canonical.encode("ascii")).hexdigest()


@dataclasses.dataclass(frozen=True)
class AuditEntry:
    id: int
    at: dt.datetime
    actor: str
    action: str
    conversation_id: Optional[str]
    ticket_id: Optional[int]
    detail: str
    client: Optional[str]


@dataclasses.dataclass(frozen=True)
class ChainCheck:
    ok: bool
    rows: int
    first_bad_id: Optional[int] = None
    problem: str = ""


def append(session: Session, actor: Actor, action: str, *, at: dt.datetime,
           conversation_id: Optional[str] = None, ticket_id: Optional[int] = None,
           detail: str = "", client: Optional[str] = None) -> AuditRow:
    """Add one row inside the caller's transaction."""
    detail = detail[:DETAIL_MAX]
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY})
    last = session.execute(
        select(AuditRow.entry_hash).order_by(AuditRow.id.desc()).limit(1)
    ).scalar_one_or_none()
    prev_hash = last or GENESIS
    at = at.replace(microsecond=0)
    row = AuditRow(
        at=at, actor=actor.username, actor_id=actor.id, action=action,
        conversation_id=conversation_id, ticket_id=ticket_id, detail=detail, client=client,
        prev_hash=prev_hash,
        entry_hash=_digest(prev_hash, at, actor.username, actor.id, action, conversation_id,
                           ticket_id, detail, client),
    )
    session.add(row)
    session.flush()
    return row


class AuditLog:
    """Reading and verifying the log (appending happens through ``append``)."""

    def __init__(self, session_factory: sessionmaker) -> None:
        self._sessions = session_factory

    def entries(self, *, conversation_id: Optional[str] = None, actor: Optional[str] = None,
                action: Optional[str] = None, before_id: Optional[int] = None,
                limit: int = 100) -> List[AuditEntry]:
        """Newest first; ``before_id`` pages backwards."""
        query = select(AuditRow).order_by(AuditRow.id.desc()).limit(max(1, min(limit, 500)))
        if conversation_id:
            query = query.where(AuditRow.conversation_id == conversation_id)
        if actor:
            query = query.where(AuditRow.actor == actor)
        if action:
            query = query.where(AuditRow.action == action)
        if before_id:
            query = query.where(AuditRow.id < before_id)
        with self._sessions() as session:
            return [_entry(row) for row in session.scalars(query)]

    def count(self) -> int:
        with self._sessions() as session:
            return session.execute(select(func.count()).select_from(AuditRow)).scalar_one()

    def verify(self) -> ChainCheck:
        with self._sessions() as session:
            anchor = _newest_anchor(session)
            rows: Iterable[AuditRow] = session.scalars(select(AuditRow).order_by(AuditRow.id))
            prev, count = GENESIS, 0
            for row in rows:
                count += 1
                if count == 1 and row.prev_hash != GENESIS:
                    # The oldest rows are gone: only a purge that anchored the chain first may
                    # have removed them, and no further than the row its anchor names.
                    if anchor is None:
                        return ChainCheck(False, count, row.id,
                                          "rows before it were removed, and no retention anchor says so")
                    named = session.execute(select(AuditRow.id).where(AuditRow.prev_hash == anchor)
                                            ).scalar_one_or_none()
                    if named is None:
                        return ChainCheck(False, count, row.id,
                                          "rows after the retention anchor's first kept row were removed")
                    prev = row.prev_hash
                if row.prev_hash != prev:
                    return ChainCheck(False, count, row.id, "a row before it was removed or changed")
                expected = _digest(row.prev_hash, row.at, row.actor, row.actor_id, row.action,
                                   row.conversation_id, row.ticket_id, row.detail, row.client)
                if row.entry_hash != expected:
                    return ChainCheck(False, count, row.id, "its content was changed")
                prev = row.entry_hash
            return ChainCheck(True, count)


def _newest_anchor(session: Session) -> Optional[str]:
    """The ``kept_from`` hash of the newest anchor row (None: the log was never trimmed)."""
    detail = session.execute(
        select(AuditRow.detail).where(AuditRow.action == ANCHOR_ACTION).order_by(AuditRow.id.desc()).limit(1)
    ).scalar_one_or_none()
    if detail is None:
        return None
    try:
        kept_from = json.loads(detail).get("kept_from")
    except (ValueError, AttributeError):
        return None
    return kept_from if isinstance(kept_from, str) else None


def _entry(row: AuditRow) -> AuditEntry:
    return AuditEntry(id=row.id, at=aware(row.at), actor=row.actor, action=row.action,
                      conversation_id=row.conversation_id, ticket_id=row.ticket_id,
                      detail=row.detail, client=row.client)
