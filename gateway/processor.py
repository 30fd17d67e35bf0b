"""Processes the durable inbox: one conversation's messages strictly in arrival order,
several conversations at once, and whatever a crashed process left behind at start-up.

Why from the database and not from memory: the webhook has already answered Meta, so the
inbox row is the only copy of a message until the assistant has handled it.

Attempts are bounded (``max_attempts``, WHATSAPP_INBOUND_MAX_ATTEMPTS): a message that keeps
failing — a turn the assistant answers with an error every time, or one that takes the
process down with it — is tried that many times, then becomes a dead letter (``failed``,
handed to ``dead_letter``: the quarantine and a ticket, so a person follows it up) and the
conversation moves on to the patient's next message. Logs name the message's kind and the
error's class and code location, never its text (an exception's message can quote it).

Several workers (gateway processes) may share one inbox (issue 16): each message is taken
under a lease (``lease_owner`` = this worker's id, ``lease_until``), renewed every third of
``lease_seconds`` while its turn runs; a conversation's next message is taken by nobody
while one of its messages is being processed (the store's claim), so its order holds across
workers. Start-up recovery and the periodic sweep take back only rows whose lease expired or
whose worker is known dead (clinic/messaging/leases.py), never a live worker's.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import traceback
from typing import TYPE_CHECKING, AsyncIterator, Awaitable, Callable, Dict, Optional

from clinic.messaging.leases import holder_is_dead, worker_id
from clinic.messaging.quarantine import OVERLONG_ID_PREFIX
from clinic.messaging.store import DEFAULT_LEASE_SECONDS, PendingMessage, WhatsAppStore
from whatsapp.metrics import Metrics

if TYPE_CHECKING:
    from gateway.sender import Sender

logger = logging.getLogger(__name__)

Handler = Callable[[PendingMessage], Awaitable[None]]
# Called once a message is given up on, with a reason code (e.g. ``attempts_exhausted``).
DeadLetter = Callable[[PendingMessage, str], Awaitable[None]]

DEFAULT_MAX_ATTEMPTS = 3
DEFAULT_RETRY_SECONDS = 2.0  # doubled after each failed attempt


def where_it_failed(error: BaseException) -> str:
    """An exception's class and where it was raised (file:line function), without its
    message: exception texts (a database driver's, a model's) can quote the patient's words."""
    frames = traceback.extract_tb(error.__traceback__)[-3:]
    places = " < ".join(f"{f.filename.rsplit('/', 1)[-1]}:{f.lineno} {f.name}" for f in reversed(frames))
    return f"{type(error).__name__} at {places}" if places else type(error).__name__


async def mark_read_best_effort(sender: "Sender", wamid: str, metrics: Metrics) -> None:
    """Blue ticks and "typing…": never worth a patient's reply. Whatever goes wrong (an id
    Graph would refuse, the API down) is counted and logged without content, and ignored."""
    if wamid.startswith(OVERLONG_ID_PREFIX):
        metrics.increment("mark_read_skipped")  # not a real wamid (see clinic/messaging/quarantine.py)
        return
    try:
        await sender.mark_read(wamid, typing=True)
    except Exception as error:  # noqa: BLE001 - best effort by design
        metrics.increment("mark_read_failed")
        logger.warning("Marking a WhatsApp message read failed (%s); the reply goes on", type(error).__name__)


class InboxProcessor:
    def __init__(self, store: WhatsAppStore, handle: Handler, max_concurrent: int, metrics: Metrics,
                 max_attempts: int = DEFAULT_MAX_ATTEMPTS, retry_seconds: float = DEFAULT_RETRY_SECONDS,
                 dead_letter: Optional[DeadLetter] = None, worker: Optional[str] = None,
                 lease_seconds: float = DEFAULT_LEASE_SECONDS):
        self._store = store
        self.worker = worker or worker_id()
        self.lease_seconds = lease_seconds
        self._already_handled: Optional[Callable[[PendingMessage], Awaitable[bool]]] = None
        self._handle = handle
        self._slots = asyncio.Semaphore(max_concurrent)
        self._metrics = metrics
        self._max_attempts = max(1, max_attempts)
        self._retry_seconds = retry_seconds
        self._dead_letter = dead_letter
        self._workers: Dict[str, asyncio.Task[None]] = {}
        self._dirty: set[str] = set()

    def submit(self, conversation_id: str) -> None:
        """New messages are waiting for this conversation (call after they are stored)."""
        self._dirty.add(conversation_id)
        if conversation_id not in self._workers:
            task = asyncio.get_running_loop().create_task(self._work(conversation_id))
            self._workers[conversation_id] = task

    async def _work(self, conversation_id: str) -> None:
        try:
            while True:
                self._dirty.discard(conversation_id)
                while True:
                    message = await asyncio.to_thread(self._store.next_pending, conversation_id,
                                                      self.worker, self.lease_seconds)
                    if message is None:
                        break
                    async with self._leased(message):
                        async with self._slots:
                            retry_in = await self._process(message)
                        if retry_in is not None:
                            # Back in the queue, still first in its conversation, after a pause
                            # (a passing fault may be gone by then) that holds no slot.
                            await asyncio.sleep(retry_in)
                            await asyncio.to_thread(self._store.requeue, message.id, self.worker)
                # No await between this check and leaving: a submit() cannot slip in between.
                if conversation_id not in self._dirty:
                    break
        finally:
            self._workers.pop(conversation_id, None)

    @contextlib.asynccontextmanager
    async def _leased(self, message: PendingMessage) -> AsyncIterator[None]:
        """Renew the message's lease while the body runs (a turn may take longer than one
        lease: Rasa busy, retries of the Graph calls)."""
        heartbeat = asyncio.get_running_loop().create_task(self._renew(message.id))
        try:
            yield
        finally:
            heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heartbeat

    async def _renew(self, message_id: int) -> None:
        while True:
            await asyncio.sleep(self.lease_seconds / 3)
            try:
                held = await asyncio.to_thread(self._store.renew_lease, message_id, self.worker,
                                               self.lease_seconds)
            except Exception:  # noqa: BLE001 - a database hiccup: the next beat tries again
                logger.exception("Renewing an inbox lease failed")
                continue
            if not held:
                self._metrics.increment("inbound_lease_lost")
                logger.warning("This worker's lease on an inbox message expired and another worker "
                               "took it back; its outcome here is not recorded")
                return

    async def _process(self, message: PendingMessage) -> Optional[float]:
        """Handle one message; returns the pause before its next attempt, or None when it is
        finished (done or given up on)."""
        try:
            with self._metrics.time_turn():
                await self._handle(message)
        except Exception as error:  # noqa: BLE001 - one bad message must not stop the others
            logger.error("Processing an inbound WhatsApp message failed (kind=%s, attempt %d of %d): %s",
                         message.turn.kind, message.attempts, self._max_attempts, where_it_failed(error))
            if message.attempts < self._max_attempts:
                self._metrics.increment("inbound_attempt_failed")
                return float(self._retry_seconds * 2.0 ** (message.attempts - 1))
            await self._give_up(message, type(error).__name__)
        else:
            self._metrics.increment("inbound_processed")
            await asyncio.to_thread(self._store.finish, message.id, None, self.worker)
        return None

    async def _give_up(self, message: PendingMessage, error: str) -> None:
        """A dead letter: ``failed`` in the inbox (its text kept for a retry by staff), then
        the quarantine and a ticket through ``dead_letter``. The conversation goes on."""
        self._metrics.increment("inbound_failed")
        self._metrics.increment("inbound_dead_lettered")
        if not await asyncio.to_thread(self._store.finish, message.id, error, self.worker):
            return  # no longer this worker's (taken back after its lease expired)
        if self._dead_letter is None:
            return
        try:
            await self._dead_letter(message, "attempts_exhausted")
        except Exception as failure:  # noqa: BLE001 - the inbox row already says failed
            self._metrics.increment("dead_letter_record_failed")
            logger.error("Recording a dead-lettered WhatsApp message failed: %s", where_it_failed(failure))

    async def recover(self, already_handled: Callable[[PendingMessage], Awaitable[bool]]) -> int:
        """Resume after a crash: messages a dead worker caught mid-processing are finished if
        the assistant already logged them (never answer twice), requeued otherwise; then every
        pending conversation is processed. Returns how many messages were waiting."""
        self._already_handled = already_handled
        await self._take_back(already_handled)
        conversations = await asyncio.to_thread(self._store.pending_conversations)
        # Counted before the workers start: under load one may take a message at once.
        counts = await asyncio.to_thread(self._store.inbox_counts)
        waiting = counts.get("pending", 0)
        for conversation_id in conversations:
            self.submit(conversation_id)
        if waiting:
            logger.info("Resuming %d unprocessed WhatsApp message(s) from the inbox", waiting)
        return waiting

    async def _take_back(self, already_handled: Callable[[PendingMessage], Awaitable[bool]]) -> int:
        """Rows left ``processing`` by a worker that is gone (lease expired, or its process
        known dead): each is taken over atomically first, so two workers recovering at once
        never both act on one, and a live worker's row is never touched."""
        def dead(owner: Optional[str]) -> bool:
            return holder_is_dead(owner, self.worker)

        taken = 0
        for message in await asyncio.to_thread(self._store.interrupted, None, dead):
            if message.lease_owner == self.worker:
                continue  # ours, still running here
            holder_dead = dead(message.lease_owner)
            if not await asyncio.to_thread(self._store.take_over, message, self.worker,
                                           self.lease_seconds, holder_dead):
                continue
            taken += 1
            if await already_handled(message):
                await asyncio.to_thread(self._store.finish, message.id, None, self.worker)
                self._metrics.increment("inbound_recovered_done")
            elif message.attempts >= self._max_attempts:
                # Every attempt ended with the process gone (it is what kills it, perhaps):
                # not one more try.
                logger.error("An inbound WhatsApp message was interrupted on each of its %d attempts; "
                             "giving up (kind=%s)", message.attempts, message.turn.kind)
                await self._give_up(message, "interrupted")
            else:
                await asyncio.to_thread(self._store.requeue, message.id, self.worker)
                self._metrics.increment("inbound_recovered_requeued")
        return taken

    def start_sweeping(self, interval: float) -> None:
        """Every ``interval`` seconds, take back what dead workers held (after ``recover``)
        and process conversations with pending messages that no worker here has: messages
        stored by another process (the door) whose notice was lost or went to another relay,
        or a conversation another worker held when this one last looked."""
        if interval > 0 and getattr(self, "_sweeper", None) is None:
            self._sweeper = asyncio.get_running_loop().create_task(self._sweep(interval))

    async def _sweep(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                if self._already_handled is not None:
                    # Another worker died mid-turn: its messages, once its lease is over.
                    await self._take_back(self._already_handled)
                conversations = await asyncio.to_thread(self._store.pending_conversations)
            except Exception:  # noqa: BLE001 - a database hiccup: try again next time
                logger.exception("Inbox sweep failed")
                continue
            for conversation_id in conversations:
                if conversation_id not in self._workers:
                    self._metrics.increment("inbound_swept")
                    self.submit(conversation_id)

    async def idle(self) -> None:
        """Wait until every conversation's queue is empty (tests, shutdown)."""
        while self._workers:
            await asyncio.gather(*list(self._workers.values()), return_exceptions=True)
