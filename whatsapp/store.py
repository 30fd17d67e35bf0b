"""Durable state of the WhatsApp channel: inbox, contacts, outbound messages.

- ``wa_inbox``: every inbound message is written here *before* Meta gets its 200, keyed by
  its wamid, so a redelivery (or a restart) never processes a message twice and a crash
  never loses one. The text waiting for the assistant is already redacted, and is cleared
  once processed (data minimisation).
- ``wa_contacts``: pseudonymous conversation id → encrypted WhatsApp address (to reply) and
  the time of the last inbound message (the 24-hour customer-service window).
- ``wa_outbound``: each message the clinic sends, its delivery status (monotonic: a late
  "delivered" never overwrites "read") and, when it finally failed, the error: a dead
  letter, never a silent drop.

Synchronous SQLAlchemy (2.0 style on 1.4): callers run these methods in a worker thread.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from typing import Iterable, Optional

from sqlalchemy import Column, DateTime, Integer, String, Text, case, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import sessionmaker

from clinic.db import Base
from whatsapp.inbound import status_supersedes


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _aware(moment: Optional[dt.datetime]) -> Optional[dt.datetime]:
    # SQLite returns naive datetimes even for timezone-aware columns.
    if moment is not None and moment.tzinfo is None:
        return moment.replace(tzinfo=dt.timezone.utc)
    return moment


class InboxRow(Base):
    __tablename__ = "wa_inbox"

    id = Column(Integer, primary_key=True)  # arrival order
    wamid = Column(String(191), nullable=False, unique=True)
    conversation_id = Column(String(64), nullable=False, index=True)
    kind = Column(String(32), nullable=False)  # e.g. text, button_reply, image, reaction
    text = Column(Text, nullable=True)  # what the assistant will read (redacted)
    metadata_json = Column(Text, nullable=True)
    redacted = Column(String(64), nullable=True)  # kinds of secrets removed, comma-separated
    state = Column(String(12), nullable=False, index=True)  # pending|processing|done|skipped|failed
    attempts = Column(Integer, nullable=False, default=0)
    error = Column(String(200), nullable=True)
    received_at = Column(DateTime(timezone=True), nullable=False)
    # When processing last started: replies sent after it belong to this message (one
    # conversation is processed strictly in order), which tells a crash-recovery whether the
    # patient was already answered.
    started_at = Column(DateTime(timezone=True), nullable=True)
    processed_at = Column(DateTime(timezone=True), nullable=True)


class ContactRow(Base):
    __tablename__ = "wa_contacts"

    conversation_id = Column(String(64), primary_key=True)
    address_encrypted = Column(Text, nullable=False)
    last_inbound_at = Column(DateTime(timezone=True), nullable=True)
    created_at = Column(DateTime(timezone=True), nullable=False)


class OutboundRow(Base):
    __tablename__ = "wa_outbound"

    id = Column(Integer, primary_key=True)
    conversation_id = Column(String(64), nullable=False, index=True)
    wamid = Column(String(191), nullable=True, unique=True)
    kind = Column(String(32), nullable=False)
    payload_json = Column(Text, nullable=True)  # kept only until sent (or as a dead letter)
    state = Column(String(12), nullable=False, index=True)  # sending|sent|refused|dead
    error_code = Column(Integer, nullable=True)
    error_detail = Column(String(300), nullable=True)
    attempts = Column(Integer, nullable=False, default=0)
    created_at = Column(DateTime(timezone=True), nullable=False)
    updated_at = Column(DateTime(timezone=True), nullable=False)


class StatusRow(Base):
    """Latest delivery status per wamid, from Meta's status webhooks.

    Its own table, keyed by wamid, because a status can arrive before the sender has even
    recorded the wamid Meta gave it (or for messages sent by another tool).
    """

    __tablename__ = "wa_statuses"

    wamid = Column(String(191), primary_key=True)
    status = Column(String(12), nullable=True)  # sent|delivered|read|played|failed
    status_at = Column(DateTime(timezone=True), nullable=True)
    error_code = Column(Integer, nullable=True)
    error_detail = Column(String(300), nullable=True)
    updated_at = Column(DateTime(timezone=True), nullable=False)


@dataclasses.dataclass(frozen=True)
class NewInbound:
    wamid: str
    conversation_id: str
    kind: str
    text: Optional[str]
    metadata: dict
    redacted: tuple[str, ...]
    received_at: dt.datetime
    # Messages that never reach the assistant (reactions, revocations) are stored as skipped.
    skip: bool = False


@dataclasses.dataclass(frozen=True)
class PendingMessage:
    id: int
    wamid: str
    conversation_id: str
    kind: str
    text: Optional[str]
    metadata: dict
    redacted: tuple[str, ...]
    state: str
    started_at: Optional[dt.datetime] = None
    # More than 1: an earlier attempt was interrupted (crash, timeout), so the assistant may
    # already have taken this message in.
    attempts: int = 1


class WhatsAppStore:
    def __init__(self, session_factory: sessionmaker):
        self._sessions = session_factory

    # ── inbound ─────────────────────────────────────────────────────────────────────────
    def accept(self, items: Iterable[NewInbound], contacts: dict[str, tuple[str, dt.datetime]]) -> list[NewInbound]:
        """Store new messages and contact addresses in one transaction; returns the items
        that were new (already-known wamids are ignored: Meta redelivers)."""
        items = list(items)
        new: list[NewInbound] = []
        with self._sessions() as session, session.begin():
            insert = _insert_for(session)
            for item in items:
                result = session.execute(
                    insert(InboxRow)
                    .values(
                        wamid=item.wamid,
                        conversation_id=item.conversation_id,
                        kind=item.kind,
                        text=item.text if not item.skip else None,
                        metadata_json=json.dumps(item.metadata) if item.metadata else None,
                        redacted=",".join(item.redacted) or None,
                        state="skipped" if item.skip else "pending",
                        attempts=0,
                        received_at=item.received_at,
                    )
                    .on_conflict_do_nothing(index_elements=["wamid"])
                )
                if result.rowcount:
                    new.append(item)
            for conversation_id, (address_encrypted, last_inbound) in contacts.items():
                upsert = insert(ContactRow).values(
                    conversation_id=conversation_id,
                    address_encrypted=address_encrypted,
                    last_inbound_at=last_inbound,
                    created_at=utcnow(),
                )
                newer = upsert.excluded.last_inbound_at
                session.execute(upsert.on_conflict_do_update(
                    index_elements=["conversation_id"],
                    set_={
                        "address_encrypted": upsert.excluded.address_encrypted,
                        # The window follows the latest message, whatever order they arrive in.
                        "last_inbound_at": case(
                            (ContactRow.last_inbound_at.is_(None), newer),
                            (newer > ContactRow.last_inbound_at, newer),
                            else_=ContactRow.last_inbound_at,
                        ),
                    },
                ))
        return new

    def next_pending(self, conversation_id: str) -> Optional[PendingMessage]:
        """The oldest unprocessed message of a conversation, marked as processing."""
        with self._sessions() as session, session.begin():
            row = session.scalars(
                select(InboxRow)
                .where(InboxRow.conversation_id == conversation_id, InboxRow.state == "pending")
                .order_by(InboxRow.id)
                .limit(1)
            ).first()
            if row is None:
                return None
            row.state = "processing"
            row.attempts += 1
            row.started_at = utcnow()
            return _pending(row)

    def replied_since(self, conversation_id: str, since: Optional[dt.datetime]) -> bool:
        """Whether anything was sent (or was being sent) to the conversation since ``since``:
        a message whose processing was interrupted after its reply went out must not be
        answered again after a restart, even if Rasa had not saved its tracker yet."""
        if since is None:
            return False
        with self._sessions() as session:
            return session.execute(
                select(OutboundRow.id).where(
                    OutboundRow.conversation_id == conversation_id,
                    OutboundRow.created_at >= since,
                    OutboundRow.state.in_(("sending", "sent")),
                ).limit(1)
            ).first() is not None

    def finish(self, message_id: int, error: Optional[str] = None) -> None:
        with self._sessions() as session, session.begin():
            row = session.get(InboxRow, message_id)
            row.state = "failed" if error else "done"
            row.error = error[:200] if error else None
            row.processed_at = utcnow()
            if not error:
                row.text = None  # processed: the tracker has it, keep no second copy
                row.metadata_json = None

    def requeue(self, message_id: int) -> None:
        with self._sessions() as session, session.begin():
            session.execute(update(InboxRow).where(InboxRow.id == message_id).values(state="pending"))

    def interrupted(self) -> list[PendingMessage]:
        """Messages a previous process started but did not finish (it crashed or was killed)."""
        with self._sessions() as session:
            rows = session.scalars(
                select(InboxRow).where(InboxRow.state == "processing").order_by(InboxRow.id)
            )
            return [_pending(r) for r in rows]

    def pending_conversations(self) -> list[str]:
        with self._sessions() as session:
            rows = session.execute(
                select(InboxRow.conversation_id, func.min(InboxRow.id))
                .where(InboxRow.state == "pending")
                .group_by(InboxRow.conversation_id)
                .order_by(func.min(InboxRow.id))
            )
            return [conversation_id for conversation_id, _ in rows]

    def inbox_counts(self) -> dict[str, int]:
        with self._sessions() as session:
            rows = session.execute(select(InboxRow.state, func.count()).group_by(InboxRow.state))
            return {state: count for state, count in rows}

    # ── contacts ────────────────────────────────────────────────────────────────────────
    def contact(self, conversation_id: str) -> Optional[tuple[str, Optional[dt.datetime]]]:
        with self._sessions() as session:
            row = session.get(ContactRow, conversation_id)
            if row is None:
                return None
            return row.address_encrypted, _aware(row.last_inbound_at)

    # ── outbound ────────────────────────────────────────────────────────────────────────
    def queue_outbound(self, conversation_id: str, kind: str, payload: dict) -> int:
        now = utcnow()
        with self._sessions() as session, session.begin():
            row = OutboundRow(
                conversation_id=conversation_id, kind=kind, payload_json=json.dumps(payload),
                state="sending", attempts=0, created_at=now, updated_at=now,
            )
            session.add(row)
            session.flush()
            return row.id

    def outbound_sent(self, outbound_id: int, wamid: str, attempts: int) -> None:
        with self._sessions() as session, session.begin():
            row = session.get(OutboundRow, outbound_id)
            row.wamid = wamid
            row.state = "sent"
            row.attempts = attempts
            row.payload_json = None
            row.updated_at = utcnow()

    def outbound_failed(
        self, outbound_id: int, state: str, code: Optional[int], detail: str, attempts: int
    ) -> None:
        """``state`` is ``refused`` (never sent, e.g. outside the 24-hour window) or
        ``dead`` (Meta rejected it or every retry failed). The payload is kept."""
        with self._sessions() as session, session.begin():
            row = session.get(OutboundRow, outbound_id)
            row.state = state
            row.error_code = code
            row.error_detail = detail[:300]
            row.attempts = attempts
            row.updated_at = utcnow()

    def record_status(
        self, wamid: str, status: str, at: dt.datetime, code: Optional[int], detail: Optional[str]
    ) -> bool:
        """Apply a status webhook; returns False when it was older news and ignored."""
        return self.record_statuses([(wamid, status, at, code, detail)])[0]

    def record_statuses(
        self, updates: list[tuple[str, str, dt.datetime, Optional[int], Optional[str]]]
    ) -> list[bool]:
        """Apply status webhooks in order, in one transaction (a webhook batch brings many:
        sent, delivered and read for every reply); whether each was applied."""
        if not updates:
            return []
        with self._sessions() as session, session.begin():
            return [self._apply_status(session, *update) for update in updates]

    @staticmethod
    def _apply_status(session, wamid: str, status: str, at: dt.datetime, code: Optional[int],
                      detail: Optional[str]) -> bool:
        insert = _insert_for(session)
        session.execute(
            insert(StatusRow).values(wamid=wamid, updated_at=utcnow())
            .on_conflict_do_nothing(index_elements=["wamid"])
        )
        # Row lock (PostgreSQL; SQLite serialises writers anyway): two webhooks for the
        # same message must not both read the old status.
        row = session.scalars(
            select(StatusRow).where(StatusRow.wamid == wamid).with_for_update()
        ).one()
        if not status_supersedes(status, row.status):
            return False
        row.status, row.status_at = status, at
        if status == "failed":
            row.error_code, row.error_detail = code, (detail or "")[:300]
        row.updated_at = utcnow()
        return True

    def status_of(self, wamid: str) -> Optional[StatusRow]:
        with self._sessions() as session:
            return session.get(StatusRow, wamid)

    def outbound(self, conversation_id: Optional[str] = None) -> list[OutboundRow]:
        with self._sessions() as session:
            query = select(OutboundRow).order_by(OutboundRow.id)
            if conversation_id is not None:
                query = query.where(OutboundRow.conversation_id == conversation_id)
            return list(session.scalars(query))

    def outbound_counts(self) -> dict[str, int]:
        with self._sessions() as session:
            rows = session.execute(select(OutboundRow.state, func.count()).group_by(OutboundRow.state))
            return {state: count for state, count in rows}


def _insert_for(session):
    return postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert


def _pending(row: InboxRow) -> PendingMessage:
    return PendingMessage(
        id=row.id, wamid=row.wamid, conversation_id=row.conversation_id, kind=row.kind,
        text=row.text, metadata=json.loads(row.metadata_json) if row.metadata_json else {},
        redacted=tuple(filter(None, (row.redacted or "").split(","))), state=row.state,
        started_at=_aware(row.started_at), attempts=row.attempts or 1,
    )


def _aware(value: Optional[dt.datetime]) -> Optional[dt.datetime]:
    # SQLite returns naive datetimes for timezone-aware columns; every value stored is UTC.
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=dt.timezone.utc)
    return value
