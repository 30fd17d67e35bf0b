"""Durable state of the WhatsApp channel: inbox, contacts, outbound messages.

- ``wa_inbox``: every inbound message is written here *before* Meta gets its 200, keyed by
  its wamid, so a redelivery (or a restart) never processes a message twice and a crash
  never loses one. The text waiting for the assistant is already redacted, and is cleared
  once processed (data minimisation). While held, the text (and a tapped button's title)
  is sealed with the clinic's keyring (``SealedText``, clinic/at_rest.py).
- ``wa_contacts``: pseudonymous conversation id → encrypted WhatsApp address (to reply) and
  the time of the last inbound message (the 24-hour customer-service window).
- ``wa_outbound``: each message the clinic sends, its delivery status (monotonic: a late
  "delivered" never overwrites "read") and, when it finally failed, the error: a dead
  letter, never a silent drop. The replies of one turn are all recorded (``queued``, with
  the patient's message id and their order) before the first is sent, so a crash between
  two replies loses none: a restarted process sends exactly the ones that did not go out
  (gateway/outbox.py). States: ``queued`` → ``sending`` → ``sent`` | ``refused`` |
  ``dead`` (a dead letter; retried later while ``retry_at`` is set) | ``dismissed`` (a
  dead letter staff closed). ``ambiguous`` marks a row whose request Meta may have taken
  although no answer came back (a timeout, a crash mid-request): a resend could deliver it
  twice, so it is flagged and counted, never hidden behind a plain ``sent``.
  The payload (what the patient reads) is sealed at rest like the inbox's text.

Synchronous SQLAlchemy (2.0 style on 1.4): callers run these methods in a worker thread.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from typing import Callable, Iterable, Optional

from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    case,
    false,
    func,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import sessionmaker

from clinic.at_rest import SealedText
from clinic.clock import utcnow
from clinic.db import Base
from clinic.messaging.turn import InboundTurn, MediaRef
from whatsapp.inbound import status_supersedes

# The first words of a note that a message went out in another language than asked: in
# ``wa_outbound.error_detail`` (gateway/sender.py), and in the survey and broadcast rows.
LANGUAGE_FALLBACK = "language_fallback"
# How long a worker holds an inbox row it is processing unless it renews the lease
# (gateway/processor.py renews it every third of this while the turn runs).
DEFAULT_LEASE_SECONDS = 30.0


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
    # What the assistant will read (redacted), and the tapped title: sealed at rest with the
    # clinic's keyring (clinic/at_rest.py), cleared once processed.
    text = Column(SealedText, nullable=True)
    metadata_json = Column(SealedText, nullable=True)
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
    # Several workers share the inbox (issue 16): who is processing the row, and until when
    # (renewed while the turn runs; clinic/messaging/leases.py). A row is taken back only
    # when its lease expired or its worker is known dead, never from a live worker.
    lease_owner = Column(String(120), nullable=True)
    lease_until = Column(DateTime(timezone=True), nullable=True)


class ContactRow(Base):
    __tablename__ = "wa_contacts"

    conversation_id = Column(String(64), primary_key=True)
    address_encrypted = Column(Text, nullable=False)
    last_inbound_at = Column(DateTime(timezone=True), nullable=True)
    created_at = Column(DateTime(timezone=True), nullable=False)


# Outbound states (see the module docstring).
QUEUED, SENDING, SENT, REFUSED, DEAD, DISMISSED = "queued", "sending", "sent", "refused", "dead", "dismissed"


class OutboundRow(Base):
    __tablename__ = "wa_outbound"
    # A turn's replies are recorded once: recording the same turn again (a retried turn
    # after a crash) changes nothing.
    __table_args__ = (UniqueConstraint("turn_wamid", "turn_seq", name="uq_wa_outbound_turn_seq"),
                      Index("ix_wa_outbound_queue", "state", "priority", "id"))

    id = Column(Integer, primary_key=True)
    conversation_id = Column(String(64), nullable=False, index=True)
    wamid = Column(String(191), nullable=True, unique=True)
    kind = Column(String(32), nullable=False)
    # What the patient is sent, sealed at rest; kept only until sent (or as a dead letter).
    payload_json = Column(SealedText, nullable=True)
    state = Column(String(12), nullable=False, index=True)  # queued|sending|sent|refused|dead|dismissed
    error_code = Column(Integer, nullable=True)
    error_detail = Column(String(300), nullable=True)
    attempts = Column(Integer, nullable=False, default=0)
    created_at = Column(DateTime(timezone=True), nullable=False)
    updated_at = Column(DateTime(timezone=True), nullable=False)
    # The patient's message this reply answers, and its place among that turn's replies
    # (None: a message nobody asked for: reminders, staff replies, broadcasts).
    turn_wamid = Column(String(191), nullable=True)
    turn_seq = Column(Integer, nullable=True)
    # Meta may have taken a request we got no answer to (timeout, crash mid-request).
    ambiguous = Column(Boolean, nullable=False, default=False, server_default=false())
    # A dead letter's later retries: how many rounds ran, and when the next one is due
    # (None: no more automatic retries).
    retries = Column(Integer, nullable=False, default=0, server_default="0")
    retry_at = Column(DateTime(timezone=True), nullable=True, index=True)
    # The staff ticket opened because this reply finally failed (a human follows up).
    ticket_id = Column(Integer, nullable=True)
    # The outbox's queue (clinic/messaging/outbox_queue.py): lower leaves first; a queued
    # template's version in the default language, sent once instead on Meta's 132001.
    priority = Column(Integer, nullable=False, default=0, server_default="0")
    fallback_json = Column(SealedText, nullable=True)
    # The worker that claimed the row (``sending``): another worker's drain leaves a row a
    # live worker is sending alone (clinic/messaging/leases.py, gateway/outbox.py).
    lease_owner = Column(String(120), nullable=True)


class StatusRow(Base):
    """Latest delivery status per wamid, from Meta's status webhooks.

    Its own table, keyed by wamid, because a status can arrive before the sender has even
    recorded the wamid Meta gave it (or for messages sent by another tool).
    """

    __tablename__ = "wa_statuses"

    wamid = Column(String(191), primary_key=True)
    status = Column(String(12), nullable=True)  # sent|delivered|read|played|failed
    status_at = Column(DateTime(timezone=True), nullable=True)
    # Our ``biz_opaque_callback_data``, which Meta echoes in status webhooks: it names the
    # wa_outbound row, so a status proves a send whose answer never reached us.
    callback = Column(String(64), nullable=True, index=True)
    error_code = Column(Integer, nullable=True)
    error_detail = Column(String(300), nullable=True)
    updated_at = Column(DateTime(timezone=True), nullable=False)


@dataclasses.dataclass(frozen=True)
class PendingMessage:
    """An inbox row being processed: the turn (clinic/messaging/turn.py, with the row's
    attempt count) and where its processing stands."""

    id: int
    turn: InboundTurn
    state: str
    started_at: Optional[dt.datetime] = None
    # The worker holding the row and until when (see ``InboxRow.lease_owner``).
    lease_owner: Optional[str] = None
    lease_until: Optional[dt.datetime] = None

    @property
    def attempts(self) -> int:
        return self.turn.attempts


class WhatsAppStore:
    def __init__(self, session_factory: sessionmaker):
        self._sessions = session_factory

    @property
    def sessions(self) -> sessionmaker:
        """The clinic database's sessions (the outbox's sweep finishes erasures with them)."""
        return self._sessions

    # ── inbound ─────────────────────────────────────────────────────────────────────────
    def accept(self, items: Iterable[InboundTurn],
               contacts: dict[str, tuple[str, dt.datetime]]) -> list[InboundTurn]:
        """Store new messages and contact addresses in one transaction; returns the items
        that were new (already-known wamids are ignored: Meta redelivers)."""
        items = list(items)
        new: list[InboundTurn] = []
        with self._sessions() as session, session.begin():
            insert = _insert_for(session)
            for item in items:
                result = session.execute(
                    insert(InboxRow)
                    .values(
                        wamid=item.wamid,
                        conversation_id=item.conversation_id,
                        kind=item.kind,
                        text=item.text,
                        metadata_json=_metadata_json(item),
                        redacted=",".join(item.redacted) or None,
                        state="skipped" if item.record_only else "pending",
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

    def next_pending(self, conversation_id: str, owner: Optional[str] = None,
                     lease_seconds: float = DEFAULT_LEASE_SECONDS) -> Optional[PendingMessage]:
        """The oldest unprocessed message of a conversation, marked as processing (held by
        ``owner`` for ``lease_seconds``), or None: nothing pending, or the conversation
        already has a message being processed (by any worker: one conversation's messages
        are processed strictly one after the other, in arrival order, across workers).

        On PostgreSQL the oldest row is locked ``FOR UPDATE SKIP LOCKED``: a worker that
        finds another one claiming it returns None instead of waiting, and never skips
        ahead to the conversation's next message. The update is conditional (``pending``
        still), so two workers never both take one row, on SQLite too."""
        now = utcnow()
        with self._sessions() as session, session.begin():
            oldest = session.scalars(
                select(InboxRow.id)
                .where(InboxRow.conversation_id == conversation_id, InboxRow.state == "pending")
                .order_by(InboxRow.id).limit(1)
            ).first()
            if oldest is None:
                return None
            row = session.scalars(
                select(InboxRow).where(InboxRow.id == oldest, InboxRow.state == "pending")
                .with_for_update(skip_locked=True)
            ).first()
            if row is None:
                return None  # another worker is claiming it right now
            busy = session.scalars(
                select(InboxRow.id)
                .where(InboxRow.conversation_id == conversation_id, InboxRow.state == "processing")
                .limit(1)
            ).first()
            if busy is not None:
                # In processing elsewhere (or left by a dead worker, until it is taken back):
                # the next message waits, its order kept.
                return None
            taken = session.execute(
                update(InboxRow).where(InboxRow.id == oldest, InboxRow.state == "pending").values(
                    state="processing", attempts=InboxRow.attempts + 1, started_at=now,
                    lease_owner=owner, lease_until=now + dt.timedelta(seconds=lease_seconds) if owner else None,
                ).execution_options(synchronize_session=False)
            )
            if not taken.rowcount:
                return None
            session.refresh(row)
            return _pending(row)

    def renew_lease(self, message_id: int, owner: str, lease_seconds: float) -> bool:
        """Extend ``owner``'s lease on a row it is processing; False when it no longer holds
        it (the lease expired and another worker took the row back)."""
        with self._sessions() as session, session.begin():
            result = session.execute(
                update(InboxRow)
                .where(InboxRow.id == message_id, InboxRow.state == "processing", InboxRow.lease_owner == owner)
                .values(lease_until=utcnow() + dt.timedelta(seconds=lease_seconds))
            )
            return bool(result.rowcount)

    def finish(self, message_id: int, error: Optional[str] = None, owner: Optional[str] = None) -> bool:
        """Done (or ``failed`` with ``error``). With ``owner``: only while that worker still
        holds the row (False otherwise: it was taken back, and is another worker's now)."""
        with self._sessions() as session, session.begin():
            query = select(InboxRow).where(InboxRow.id == message_id)
            if owner is not None:
                query = query.where(InboxRow.lease_owner == owner, InboxRow.state == "processing")
            row = session.scalars(query.with_for_update()).first()
            if row is None:
                return False
            row.state = "failed" if error else "done"
            row.error = error[:200] if error else None
            row.processed_at = utcnow()
            row.lease_owner, row.lease_until = None, None
            if not error:
                row.text = None  # processed: the tracker has it, keep no second copy
                row.metadata_json = None
            return True

    def requeue(self, message_id: int, owner: Optional[str] = None) -> bool:
        """Back to ``pending``; with ``owner``, only while that worker holds the row."""
        with self._sessions() as session, session.begin():
            query = update(InboxRow).where(InboxRow.id == message_id)
            if owner is not None:
                query = query.where(InboxRow.lease_owner == owner, InboxRow.state == "processing")
            result = session.execute(query.values(state="pending", lease_owner=None, lease_until=None))
            return bool(result.rowcount)

    def interrupted(self, now: Optional[dt.datetime] = None,
                    holder_is_dead: Optional[Callable[[Optional[str]], bool]] = None) -> list[PendingMessage]:
        """Messages a worker started but did not finish and nobody is processing any more:
        ``processing`` rows without a lease (taken by a caller without leases), whose lease
        expired, or whose holder ``holder_is_dead`` says is gone. A live worker's rows are
        never among them. Take one over with ``take_over`` before acting on it."""
        now = now or utcnow()
        with self._sessions() as session:
            rows = session.scalars(
                select(InboxRow).where(InboxRow.state == "processing").order_by(InboxRow.id)
            )
            found = []
            for row in rows:
                until = _aware(row.lease_until)
                if (row.lease_owner is None or until is None or until < now
                        or (holder_is_dead is not None and holder_is_dead(row.lease_owner))):
                    found.append(_pending(row))
            return found

    def take_over(self, message: PendingMessage, owner: str, lease_seconds: float,
                  holder_dead: bool = False) -> bool:
        """Hold an interrupted row (``interrupted``) from now on, if it is still held as it
        was seen, by a worker known dead (``holder_dead``) or under an expired lease: two
        workers recovering at once never both take it, and a row its worker renewed or
        finished meanwhile is left alone."""
        now = utcnow()
        with self._sessions() as session, session.begin():
            query = update(InboxRow).where(InboxRow.id == message.id, InboxRow.state == "processing")
            if message.lease_owner is None:
                query = query.where(InboxRow.lease_owner.is_(None))
            else:
                query = query.where(InboxRow.lease_owner == message.lease_owner)
                if not holder_dead:
                    query = query.where(InboxRow.lease_until < now)
            result = session.execute(
                query.values(lease_owner=owner, lease_until=now + dt.timedelta(seconds=lease_seconds))
            )
            return bool(result.rowcount)

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
    def queue_outbound(self, conversation_id: str, kind: str, payload: dict, state: str = SENDING) -> int:
        """One message nobody is waiting on in order (reminders, staff replies): recorded
        as being sent now."""
        now = utcnow()
        with self._sessions() as session, session.begin():
            row = OutboundRow(
                conversation_id=conversation_id, kind=kind, payload_json=json.dumps(payload),
                state=state, attempts=0, created_at=now, updated_at=now,
            )
            session.add(row)
            session.flush()
            return row.id

    def enqueue(self, conversation_id: str, kind: str, payload: dict, priority: int,
                fallback: Optional[dict] = None, refused: Optional[str] = None) -> int:
        """A message for the outbox's queue (``queued``; the process that owns the outbox
        sends it: clinic/messaging/outbox_queue.py), or ``refused`` at once with its reason."""
        now = utcnow()
        with self._sessions() as session, session.begin():
            row = OutboundRow(
                conversation_id=conversation_id, kind=kind, payload_json=json.dumps(payload),
                state=REFUSED if refused else QUEUED, error_detail=(refused or None) and refused[:300],
                attempts=0, created_at=now, updated_at=now, ambiguous=False, retries=0, priority=priority,
                fallback_json=json.dumps(fallback) if fallback else None,
            )
            session.add(row)
            session.flush()
            return row.id

    def queued(self, limit: int) -> list["OutboundItem"]:
        """Queued messages that are not a turn's replies (those leave through ``drain``, in
        their turn's order): most urgent first (``priority``), then oldest."""
        with self._sessions() as session:
            rows = session.scalars(
                select(OutboundRow)
                .where(OutboundRow.state == QUEUED, OutboundRow.turn_wamid.is_(None))
                .order_by(OutboundRow.priority, OutboundRow.id).limit(limit)
            )
            return [_item(row) for row in rows]

    def withdraw(self, outbound_id: int, detail: str) -> bool:
        """Take a queued message back before anyone sends it (its caller gave up waiting):
        ``refused`` with ``detail``; False when it is already being sent (or was)."""
        with self._sessions() as session, session.begin():
            result = session.execute(
                update(OutboundRow).where(OutboundRow.id == outbound_id, OutboundRow.state == QUEUED)
                .values(state=REFUSED, error_detail=detail[:300], updated_at=utcnow())
            )
            return bool(result.rowcount)

    def record_turn(self, conversation_id: str, turn_wamid: str,
                    replies: list[tuple[str, dict, Optional[str]]]) -> list[int]:
        """All the replies of one turn, in order, before the first is sent: ``(kind,
        payload, refused)`` each, ``refused`` a reason when it must not be sent at all.
        Idempotent per turn (a retried turn records nothing twice). Returns the ids of the
        turn's rows in order."""
        now = utcnow()
        with self._sessions() as session, session.begin():
            insert = _insert_for(session)
            for seq, (kind, payload, refused) in enumerate(replies):
                session.execute(
                    insert(OutboundRow).values(
                        conversation_id=conversation_id, kind=kind, payload_json=json.dumps(payload),
                        state=REFUSED if refused else QUEUED, error_detail=(refused or None) and refused[:300],
                        attempts=0, created_at=now, updated_at=now, turn_wamid=turn_wamid, turn_seq=seq,
                        ambiguous=False, retries=0,
                    ).on_conflict_do_nothing(index_elements=["turn_wamid", "turn_seq"])
                )
            return list(session.scalars(
                select(OutboundRow.id).where(OutboundRow.turn_wamid == turn_wamid).order_by(OutboundRow.turn_seq)
            ))

    def turn_recorded(self, turn_wamid: str) -> bool:
        """Whether this patient message's replies are already recorded: then they are sent
        (or being sent) from the outbox, and the message needs no second turn."""
        with self._sessions() as session:
            return session.execute(
                select(OutboundRow.id).where(OutboundRow.turn_wamid == turn_wamid).limit(1)
            ).first() is not None

    def claim(self, outbound_id: int, from_states: tuple[str, ...] = (QUEUED,),
              retry_round: bool = False, owner: Optional[str] = None) -> Optional["OutboundItem"]:
        """Move a row to ``sending`` if it is still in one of ``from_states`` (a conditional
        update: two processes never both send it), recording the worker that claimed it
        (``owner``); the row as it was claimed, or None."""
        values: dict = {"state": SENDING, "updated_at": utcnow(), "lease_owner": owner}
        if retry_round:
            values.update(retries=OutboundRow.retries + 1, retry_at=None)
        with self._sessions() as session, session.begin():
            result = session.execute(
                update(OutboundRow)
                .where(OutboundRow.id == outbound_id, OutboundRow.state.in_(from_states))
                .values(**values)
            )
            if not result.rowcount:
                return None
            return _item(session.get(OutboundRow, outbound_id))

    def claim_next_of_conversation(
        self, outbound_id: int, owner: Optional[str],
        sending_elsewhere: Callable[[Optional[str], dt.datetime], bool],
    ) -> tuple[Optional["OutboundItem"], bool]:
        """Claim a queued message (as ``claim``) only while no other message of its
        conversation is being sent by a live worker (``sending_elsewhere(lease_owner,
        updated_at)``): several workers draining the queue never send two messages of one
        conversation at once, so they arrive in the order they leave. On PostgreSQL the
        conversation is locked for the check (an advisory lock for this transaction).
        Returns (the claimed row or None, whether the conversation was busy)."""
        with self._sessions() as session, session.begin():
            conversation_id = session.scalars(
                select(OutboundRow.conversation_id).where(OutboundRow.id == outbound_id)).first()
            if conversation_id is None:
                return None, False
            if session.get_bind().dialect.name == "postgresql":
                session.execute(select(func.pg_advisory_xact_lock(
                    func.hashtext("wa_outbound:" + conversation_id))))
            sending = session.execute(
                select(OutboundRow.lease_owner, OutboundRow.updated_at)
                .where(OutboundRow.conversation_id == conversation_id, OutboundRow.state == SENDING,
                       OutboundRow.id != outbound_id)
            ).all()
            if any(sending_elsewhere(owner_, _aware(updated_at) or utcnow()) for owner_, updated_at in sending):
                return None, True
            result = session.execute(
                update(OutboundRow).where(OutboundRow.id == outbound_id, OutboundRow.state == QUEUED)
                .values(state=SENDING, updated_at=utcnow(), lease_owner=owner)
            )
            if not result.rowcount:
                return None, False
            return _item(session.get(OutboundRow, outbound_id)), False

    def take_over_sending(self, outbound_id: int, held_by: Optional[str], owner: Optional[str]) -> bool:
        """Hold a ``sending`` row another worker left (it died mid-request), if it is still
        held by ``held_by``: of two workers finding it, one resends it."""
        with self._sessions() as session, session.begin():
            holder = OutboundRow.lease_owner.is_(None) if held_by is None else OutboundRow.lease_owner == held_by
            result = session.execute(
                update(OutboundRow).where(OutboundRow.id == outbound_id, OutboundRow.state == SENDING, holder)
                .values(lease_owner=owner, updated_at=utcnow())
            )
            return bool(result.rowcount)

    def outbound_item(self, outbound_id: int) -> Optional["OutboundItem"]:
        with self._sessions() as session:
            row = session.get(OutboundRow, outbound_id)
            return _item(row) if row is not None else None

    def next_unsent(self, conversation_id: str) -> Optional["OutboundItem"]:
        """The conversation's oldest reply that has not gone out (queued, or interrupted
        while sending): replies leave strictly in the order they were recorded."""
        with self._sessions() as session:
            row = session.scalars(
                select(OutboundRow)
                .where(OutboundRow.conversation_id == conversation_id,
                       OutboundRow.state.in_((QUEUED, SENDING)), OutboundRow.turn_wamid.is_not(None))
                .order_by(OutboundRow.id).limit(1)
            ).first()
            return _item(row) if row is not None else None

    def unsent_conversations(self) -> list[str]:
        """Conversations with turn replies that did not go out (what a crash left)."""
        with self._sessions() as session:
            rows = session.execute(
                select(OutboundRow.conversation_id, func.min(OutboundRow.id))
                .where(OutboundRow.state.in_((QUEUED, SENDING)), OutboundRow.turn_wamid.is_not(None))
                .group_by(OutboundRow.conversation_id).order_by(func.min(OutboundRow.id))
            )
            return [conversation_id for conversation_id, _ in rows]

    def mark_ambiguous(self, outbound_id: int, detail: str) -> None:
        with self._sessions() as session, session.begin():
            session.execute(update(OutboundRow).where(OutboundRow.id == outbound_id).values(
                ambiguous=True, error_detail=detail[:300], updated_at=utcnow()))

    def proof_of_send(self, outbound_id: int) -> Optional[tuple[str, Optional[str]]]:
        """(wamid, status) of a status webhook that names this row (``callback_data``):
        Meta took the message, whatever became of our request."""
        with self._sessions() as session:
            row = session.execute(
                select(StatusRow.wamid, StatusRow.status)
                .where(StatusRow.callback == callback_data(outbound_id)).limit(1)
            ).first()
            return (row[0], row[1]) if row is not None else None

    def outbound_sent(self, outbound_id: int, wamid: str, attempts: int) -> None:
        with self._sessions() as session, session.begin():
            row = session.get(OutboundRow, outbound_id)
            row.wamid = wamid
            row.state = SENT
            row.attempts = attempts
            row.payload_json = None
            row.retry_at = None
            row.updated_at = utcnow()

    def outbound_failed(
        self, outbound_id: int, state: str, code: Optional[int], detail: str, attempts: int,
        retry_at: Optional[dt.datetime] = None,
    ) -> None:
        """``state`` is ``refused`` (never sent, e.g. outside the 24-hour window) or
        ``dead`` (Meta rejected it or every attempt failed; ``retry_at``: when a later
        round tries again). The payload is kept."""
        with self._sessions() as session, session.begin():
            row = session.get(OutboundRow, outbound_id)
            row.state = state
            row.error_code = code
            row.error_detail = detail[:300]
            row.attempts = attempts
            row.retry_at = retry_at
            row.updated_at = utcnow()

    def due_dead_letters(self, now: dt.datetime, limit: int = 50) -> list[int]:
        with self._sessions() as session:
            return list(session.scalars(
                select(OutboundRow.id)
                .where(OutboundRow.state == DEAD, OutboundRow.retry_at.is_not(None), OutboundRow.retry_at <= now)
                .order_by(OutboundRow.retry_at).limit(limit)
            ))

    def stale_sending(self, older_than: dt.datetime) -> list[int]:
        """Rows left ``sending`` by a process that died (no send takes this long)."""
        with self._sessions() as session:
            return list(session.scalars(
                select(OutboundRow.id)
                .where(OutboundRow.state == SENDING, OutboundRow.updated_at < older_than)
                .order_by(OutboundRow.id)
            ))

    def set_ticket(self, outbound_id: int, ticket_id: Optional[int]) -> None:
        with self._sessions() as session, session.begin():
            session.execute(update(OutboundRow).where(OutboundRow.id == outbound_id).values(ticket_id=ticket_id))

    # ── dead letters, for staff (clinic/inbox) ──────────────────────────────────────────
    def dead_letters(self, include_dismissed: bool = False, limit: int = 200) -> list["OutboundItem"]:
        states = (DEAD, DISMISSED) if include_dismissed else (DEAD,)
        with self._sessions() as session:
            rows = session.scalars(
                select(OutboundRow).where(OutboundRow.state.in_(states))
                .order_by(OutboundRow.id.desc()).limit(limit)
            )
            return [_item(row) for row in rows]

    def request_retry(self, outbound_id: int, now: Optional[dt.datetime] = None) -> bool:
        """Staff asked to try a dead letter again: the sending process's retry job takes it
        on its next round."""
        with self._sessions() as session, session.begin():
            result = session.execute(
                update(OutboundRow).where(OutboundRow.id == outbound_id, OutboundRow.state == DEAD)
                .values(retry_at=now or utcnow(), updated_at=utcnow())
            )
            return bool(result.rowcount)

    def dismiss(self, outbound_id: int) -> bool:
        with self._sessions() as session, session.begin():
            result = session.execute(
                update(OutboundRow).where(OutboundRow.id == outbound_id, OutboundRow.state == DEAD)
                .values(state=DISMISSED, retry_at=None, payload_json=None, updated_at=utcnow())
            )
            return bool(result.rowcount)

    def record_status(
        self, wamid: str, status: str, at: dt.datetime, code: Optional[int], detail: Optional[str],
        callback: Optional[str] = None,
    ) -> bool:
        """Apply a status webhook; returns False when it was older news and ignored."""
        return self.record_statuses([(wamid, status, at, code, detail, callback)])[0]

    def record_statuses(self, updates: list[tuple]) -> list[bool]:
        """Apply status webhooks in order, in one transaction (a webhook batch brings many:
        sent, delivered and read for every reply); whether each was applied."""
        if not updates:
            return []
        with self._sessions() as session, session.begin():
            return [self._apply_status(session, *update) for update in updates]

    @staticmethod
    def _apply_status(session, wamid: str, status: str, at: dt.datetime, code: Optional[int],
                      detail: Optional[str], callback: Optional[str] = None) -> bool:
        """(``updates`` items: wamid, status, at, code, detail[, callback])."""
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
        if callback and not row.callback:
            # Even from a stale status: it still proves which row Meta took.
            row.callback = callback[:64]
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

    def queued_by_priority(self) -> dict[int, int]:
        """Queued outbox rows per priority (the metrics' queue depth)."""
        with self._sessions() as session:
            rows = session.execute(select(OutboundRow.priority, func.count())
                                   .where(OutboundRow.state == QUEUED).group_by(OutboundRow.priority))
            return {int(priority or 0): int(count) for priority, count in rows}

    def outbound_counts(self) -> dict[str, int]:
        """Rows per state, plus ``ambiguous`` (flagged rows, whatever their state) and
        ``dead_retry_scheduled`` (dead letters a later round will try again)."""
        with self._sessions() as session:
            rows = session.execute(select(OutboundRow.state, func.count()).group_by(OutboundRow.state))
            counts = {state: count for state, count in rows}
            counts["ambiguous"] = session.execute(
                select(func.count()).select_from(OutboundRow).where(OutboundRow.ambiguous.is_(True))).scalar_one()
            counts["dead_retry_scheduled"] = session.execute(
                select(func.count()).select_from(OutboundRow)
                .where(OutboundRow.state == DEAD, OutboundRow.retry_at.is_not(None))).scalar_one()
            return counts


@dataclasses.dataclass(frozen=True)
class OutboundItem:
    """A ``wa_outbound`` row as the sender and the staff view use it."""

    id: int
    conversation_id: str
    kind: str
    payload: Optional[dict]
    state: str
    attempts: int
    ambiguous: bool
    retries: int
    retry_at: Optional[dt.datetime]
    turn_wamid: Optional[str]
    error_code: Optional[int]
    error_detail: Optional[str]
    ticket_id: Optional[int]
    created_at: dt.datetime
    updated_at: dt.datetime
    # The outbox's queue: its priority, and a template's fallback version (a payload).
    priority: int = 0
    fallback: Optional[dict] = None
    wamid: Optional[str] = None
    # The worker that claimed it (``OutboundRow.lease_owner``).
    lease_owner: Optional[str] = None


def callback_data(outbound_id: int) -> str:
    """Our ``biz_opaque_callback_data`` for a row: Meta echoes it in the message's status
    webhooks. An id only: it carries nothing about the patient."""
    return f"out-{outbound_id}"


def _item(row: OutboundRow) -> OutboundItem:
    return OutboundItem(
        id=row.id, conversation_id=row.conversation_id, kind=row.kind,
        payload=json.loads(row.payload_json) if row.payload_json else None, state=row.state,
        attempts=row.attempts or 0, ambiguous=bool(row.ambiguous), retries=row.retries or 0,
        retry_at=_aware(row.retry_at), turn_wamid=row.turn_wamid, error_code=row.error_code,
        error_detail=row.error_detail, ticket_id=row.ticket_id, created_at=_aware(row.created_at),
        updated_at=_aware(row.updated_at), priority=row.priority or 0,
        fallback=json.loads(row.fallback_json) if row.fallback_json else None, wamid=row.wamid,
        lease_owner=row.lease_owner,
    )


def _metadata_json(item: InboundTurn) -> Optional[str]:
    """What an inbox row keeps besides the text: a tapped title, a media reference."""
    metadata: dict = {}
    if item.title:
        metadata["title"] = item.title
    if item.media is not None:
        metadata["media"] = item.media.to_json()
    return json.dumps(metadata) if metadata else None


def _insert_for(session):
    return postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert


def _pending(row: InboxRow) -> PendingMessage:
    metadata = json.loads(row.metadata_json) if row.metadata_json else {}
    turn = InboundTurn(
        wamid=row.wamid, conversation_id=row.conversation_id, kind=row.kind, text=row.text,
        received_at=_aware(row.received_at) or utcnow(),
        redacted=tuple(filter(None, (row.redacted or "").split(","))),
        title=metadata.get("title") or None, attempts=row.attempts or 1,
        media=MediaRef.from_json(metadata.get("media")),
    )
    return PendingMessage(id=row.id, turn=turn, state=row.state, started_at=_aware(row.started_at),
                          lease_owner=row.lease_owner, lease_until=_aware(row.lease_until))


def _aware(value: Optional[dt.datetime]) -> Optional[dt.datetime]:
    # SQLite returns naive datetimes for timezone-aware columns; every value stored is UTC.
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=dt.timezone.utc)
    return value
