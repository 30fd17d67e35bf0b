"""The outbox: a turn's replies leave in order, survive a crash, and are retried when dead.

Why: a turn often has several replies (a welcome, a menu, the answer) and Graph takes a
fraction of a second for each. Sending them as they were produced meant a crash between
two of them lost the rest silently. Now every reply of a turn is recorded in
``wa_outbound`` (``queued``) before the first is sent; this class then sends a
conversation's unsent replies strictly in the order they were recorded, one conversation
at a time (an asyncio lock per conversation: a later turn's replies wait for an earlier
turn's), and:

- at start-up (``resume``), sends what a crashed process left: ``queued`` rows as they
  are, and rows caught ``sending`` as *ambiguous* (the request may have reached Meta): the
  sender first looks for a status webhook that names the row (proof it went out, so it is
  ``sent``), and sends it again only without one (gateway/sender.py);
- every ``DeliveryPolicy.sweep_seconds`` (``start_sweeping``), retries the dead letters
  whose next round is due (bounded rounds with growing delays, then a person follows up:
  ``Sender.on_final_failure``), picks up recorded replies nobody is sending (a turn whose
  sending failed part-way), and settles rows another process left ``sending`` long ago
  (proof → ``sent``; else a flagged dead letter for staff, never resent blindly: its
  caller may have sent it again already).

The queue (issue 14): every other sender (staff replies, reminders and notifications,
surveys, broadcasts) puts its messages into the same table (``queued``, with a priority;
clinic/messaging/outbox_queue.py) and this class drains them (``start_draining``): most
urgent first, then oldest, never two at once for one conversation (and never beside that
conversation's turn replies: the same lock), at most ``queue_concurrency`` in flight,
all through this process's one sender, whose Graph client holds the number's one rate limit.
A turn's replies do not wait in that queue: they go out at once, so a patient who is
waiting comes before anything queued. The drain looks every ``poll_seconds``
(WHATSAPP_OUTBOX_POLL_SECONDS) and at once when ``wake`` is called.

Several workers (gateway processes) may share the outbox (issue 16). ``claim`` (a
conditional update) keeps two rounds, or two workers, from sending one row, and records the
worker that claimed it. A ``sending`` turn reply found while this process holds the
conversation's lock was interrupted if this worker claimed it, or its worker is known dead
(clinic/messaging/leases.py), or it has been ``sending`` longer than any send takes: it is
then taken over (conditionally: one worker resends it) and sent as ambiguous. A row a live
worker is sending stops this drain: that worker sends the conversation's next replies in
order; a queued message (staff replies, reminders, broadcasts) is claimed only while no
other message of its conversation is being sent by a live worker
(``claim_next_of_conversation``). The number's rate limit is shared between the workers when REDIS_URL is set
(gateway/shared_limit.py). No Rasa inside: the messages are already WhatsApp messages.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import logging
from typing import Any, Coroutine, Dict, Optional, Sequence, Set

from clinic.clock import utcnow
from clinic.messaging.leases import holder_is_dead, worker_id
from clinic.messaging.store import DEAD, QUEUED, SENDING, OutboundItem, WhatsAppStore
from gateway.sender import AMBIGUOUS, DeliveryPolicy, Sender
from whatsapp.metrics import Metrics
from whatsapp.outbound import OutboundMessage

logger = logging.getLogger(__name__)

DEFAULT_QUEUE_CONCURRENCY = 8


class Outbox:
    def __init__(self, sender: Sender, store: WhatsAppStore, metrics: Metrics,
                 policy: Optional[DeliveryPolicy] = None, worker: Optional[str] = None) -> None:
        self.sender = sender
        self.worker = worker or worker_id()
        self._store = store
        self._metrics = metrics
        self.policy = policy or sender.policy
        self._locks: Dict[str, asyncio.Lock] = {}
        self._tasks: Set[asyncio.Task[Any]] = set()
        self._retrying: Set[int] = set()
        self._sweeper: Optional[asyncio.Task[Any]] = None
        self._erasure: Any = None  # clinic.privacy_erasure.PrivacyErasure, made on first sweep
        # The queue (see the module docstring).
        self.poll_seconds = 0.2  # until start_draining (WHATSAPP_OUTBOX_POLL_SECONDS)
        self.queue_concurrency = DEFAULT_QUEUE_CONCURRENCY
        self._drainer: Optional[asyncio.Task[Any]] = None
        self._wake: Optional[asyncio.Event] = None
        self._queue_tasks: Dict[asyncio.Task[Any], str] = {}
        # Conversations whose queued message waits for another worker's send (until when).
        self._held_elsewhere: Dict[str, float] = {}

    def _lock(self, conversation_id: str) -> asyncio.Lock:
        lock = self._locks.get(conversation_id)
        if lock is None:
            lock = self._locks[conversation_id] = asyncio.Lock()
        return lock

    # ── a turn ────────────────────────────────────────────────────────────────────────────
    async def deliver_turn(self, conversation_id: str, turn_wamid: str,
                           messages: Sequence[tuple[OutboundMessage, str]]) -> None:
        """Record every reply of the turn (idempotent per ``turn_wamid``), then send the
        conversation's unsent replies in order."""
        if messages:
            await self.sender.record_turn(conversation_id, turn_wamid, messages)
        await self.drain(conversation_id)

    async def drain(self, conversation_id: str) -> int:
        """Send the conversation's unsent turn replies, oldest first; how many were tried."""
        tried = 0
        async with self._lock(conversation_id):
            while True:
                item = await asyncio.to_thread(self._store.next_unsent, conversation_id)
                if item is None:
                    break
                if item.state == SENDING:
                    if self._sent_elsewhere(item):
                        break  # a live worker sends this conversation's replies, in order
                    if not await asyncio.to_thread(self._store.take_over_sending, item.id,
                                                   item.lease_owner, self.worker):
                        continue  # another worker took it over first
                    # Interrupted mid-request (see the module docstring): maybe delivered.
                    await asyncio.to_thread(self._store.mark_ambiguous, item.id,
                                            f"{AMBIGUOUS}: interrupted while sending")
                    self._metrics.increment("outbound_interrupted")
                    item = dataclasses.replace(item, ambiguous=True)
                else:
                    item = await asyncio.to_thread(self._store.claim, item.id, (QUEUED,), False, self.worker)
                    if item is None:
                        continue
                await self.sender.deliver(item)
                tried += 1
        self._forget_idle_lock(conversation_id)
        return tried

    def _forget_idle_lock(self, conversation_id: str) -> None:
        # The lock is only needed while a conversation has something to send; one with a
        # waiter stays (the waiter must find the same lock, or two drains would race).
        lock = self._locks.get(conversation_id)
        if lock is not None and not lock.locked() and not getattr(lock, "_waiters", None):
            self._locks.pop(conversation_id, None)

    def _stale_after(self) -> float:
        """No send takes longer than every attempt timing out, plus the wait for a proof."""
        return self.policy.attempts * self.policy.timeout + self.policy.unconfirmed_grace + 60

    def _sent_elsewhere(self, item: OutboundItem) -> bool:
        """Whether a ``sending`` row is being sent right now by another, live worker."""
        return self._sending_elsewhere(item.lease_owner, item.updated_at)

    def _sending_elsewhere(self, owner: Optional[str], updated_at: dt.datetime) -> bool:
        if owner is None or owner == self.worker:
            return False
        if holder_is_dead(owner, self.worker):
            return False
        return updated_at > utcnow() - dt.timedelta(seconds=self._stale_after())

    # ── the queue: every other sender's messages ─────────────────────────────────────────
    def start_draining(self, poll_seconds: Optional[float] = None, concurrency: Optional[int] = None) -> None:
        """Drain the queue from now on (on the running loop)."""
        if poll_seconds is not None:
            self.poll_seconds = poll_seconds
        if concurrency is not None:
            self.queue_concurrency = concurrency
        if self._drainer is None:
            self._wake = asyncio.Event()
            self._drainer = asyncio.get_running_loop().create_task(self._drain_queue_forever())

    def wake(self) -> None:
        """Something was queued: look now (call on the drain's loop)."""
        if self._wake is not None:
            self._wake.set()

    async def _drain_queue_forever(self) -> None:
        wake = self._wake
        if wake is None:  # start_draining makes the event before this task
            return
        while True:
            try:
                await self.drain_queue()
            except Exception:  # noqa: BLE001 - a database hiccup: the next look tries again
                logger.exception("Draining the outbox queue failed")
            try:
                await asyncio.wait_for(wake.wait(), self.poll_seconds)
            except asyncio.TimeoutError:
                pass
            wake.clear()

    async def drain_queue(self) -> int:
        """Start sending queued messages, most urgent first, then oldest; one at a time per
        conversation, at most ``queue_concurrency`` at once. Returns when nothing more can be
        started (those started finish in the background); how many were started."""
        started = 0
        while True:
            free = self.queue_concurrency - len(self._queue_tasks)
            if free > 0:
                items = await asyncio.to_thread(self._store.queued, free * 4 + len(self._queue_tasks))
                # Which conversations are in flight is read after the query: a send may have
                # ended meanwhile, and a conversation it freed must not look busy (this call
                # would then return with its next message still queued). A conversation
                # another worker is sending to waits for the next look.
                now = asyncio.get_running_loop().time()
                self._held_elsewhere = {c: until for c, until in self._held_elsewhere.items() if until > now}
                busy = set(self._queue_tasks.values()) | set(self._held_elsewhere)
                picked = []
                for item in items:
                    if item.conversation_id not in busy:
                        busy.add(item.conversation_id)
                        picked.append(item)
                        if len(picked) == free:
                            break
                for item in picked:
                    task = asyncio.get_running_loop().create_task(self._send_queued(item))
                    self._queue_tasks[task] = item.conversation_id
                    task.add_done_callback(self._queue_done)
                started += len(picked)
                if picked:
                    continue
                if not items:
                    return started
            if not self._queue_tasks:
                return started
            # Full, or what is queued waits for a conversation in flight.
            await asyncio.wait(list(self._queue_tasks), return_when=asyncio.FIRST_COMPLETED)

    async def _send_queued(self, item: OutboundItem) -> None:
        lock = self._lock(item.conversation_id)
        async with lock:
            claimed, elsewhere = await asyncio.to_thread(self._store.claim_next_of_conversation, item.id,
                                                         self.worker, self._sending_elsewhere)
            if elsewhere:  # another worker sends to this conversation now: after it
                self._held_elsewhere[item.conversation_id] = asyncio.get_running_loop().time() + self.poll_seconds
            elif claimed is not None:  # else another drain (or its caller's withdraw) took it
                await self.sender.deliver(claimed)
        self._forget_idle_lock(item.conversation_id)

    def _queue_done(self, task: asyncio.Task[Any]) -> None:
        self._queue_tasks.pop(task, None)
        if not task.cancelled() and task.exception() is not None:
            logger.error("Sending a queued WhatsApp message failed (%s); it is settled by the sweep",
                         type(task.exception()).__name__)

    # ── start-up ──────────────────────────────────────────────────────────────────────────
    async def resume(self) -> int:
        """After a crash: send what was recorded but not sent, per conversation in order (in
        the background: recovery of the inbox does not wait for it). How many conversations."""
        conversations = await asyncio.to_thread(self._store.unsent_conversations)
        for conversation_id in conversations:
            self._spawn(self.drain(conversation_id))
        if conversations:
            self._metrics.increment("outbound_resumed_conversations", len(conversations))
            logger.info("Resuming unsent WhatsApp replies in %d conversation(s)", len(conversations))
        return len(conversations)

    # ── the retry job ─────────────────────────────────────────────────────────────────────
    def start_sweeping(self) -> None:
        if self._sweeper is None:
            self._sweeper = asyncio.get_running_loop().create_task(self._sweep_forever())

    async def stop(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        if self._drainer is not None:
            self._drainer.cancel()
            self._drainer = None

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(self.policy.sweep_seconds)
            try:
                await self.sweep()
            except Exception:  # noqa: BLE001 - a database hiccup: the next round tries again
                logger.exception("Outbox sweep failed")

    async def sweep(self, now: Optional[dt.datetime] = None) -> None:
        """One round: due dead letters, orphaned unsent replies, stale ``sending`` rows."""
        now = now or utcnow()
        for outbound_id in await asyncio.to_thread(self._store.due_dead_letters, now):
            if outbound_id not in self._retrying:
                self._retrying.add(outbound_id)
                self._spawn(self._retry(outbound_id))
        for conversation_id in await asyncio.to_thread(self._store.unsent_conversations):
            lock = self._locks.get(conversation_id)
            if lock is None or not lock.locked():
                self._spawn(self.drain(conversation_id))
        stale_after = self._stale_after()
        for outbound_id in await asyncio.to_thread(self._store.stale_sending,
                                                   now - dt.timedelta(seconds=stale_after)):
            await self._settle_stale(outbound_id)
        await self._finish_erasures()

    async def _finish_erasures(self) -> None:
        """Erasure on request from the chat (clinic/privacy_erasure.py): the conversation's
        WhatsApp records and address go once its confirmation is sent, i.e. here, when
        nothing of the conversation waits or is being sent."""
        if self._erasure is None:
            from clinic.privacy_erasure import PrivacyErasure

            self._erasure = PrivacyErasure(self._store.sessions)
        busy = [conversation_id for conversation_id, lock in self._locks.items() if lock.locked()]
        try:
            await asyncio.to_thread(self._erasure.finish_pending, None, busy)
        except Exception:  # noqa: BLE001 - the next sweep tries again
            logger.exception("Finishing an erasure's WhatsApp records failed")

    async def _retry(self, outbound_id: int) -> None:
        try:
            item = await asyncio.to_thread(self._store.outbound_item, outbound_id)
            if item is None:
                return
            async with self._lock(item.conversation_id):
                item = await asyncio.to_thread(self._store.claim, outbound_id, (DEAD,), True, self.worker)
                if item is None:
                    return  # dismissed, or another round took it
                self._metrics.increment("outbound_dead_letter_retried")
                outcome = await self.sender.deliver(item)
                if outcome.state == "sent":
                    self._metrics.increment("outbound_dead_letter_recovered")
        finally:
            self._retrying.discard(outbound_id)

    async def _settle_stale(self, outbound_id: int) -> None:
        item = await asyncio.to_thread(self._store.outbound_item, outbound_id)
        if item is None or item.state != SENDING:
            return
        if item.turn_wamid is not None:
            return  # a turn reply: drain() resends it in order
        proof = await asyncio.to_thread(self._store.proof_of_send, outbound_id)
        if proof is not None:
            await asyncio.to_thread(self._store.outbound_sent, outbound_id, proof[0], item.attempts)
            self._metrics.increment("outbound_ambiguous_confirmed")
            return
        await asyncio.to_thread(self._store.mark_ambiguous, outbound_id, f"{AMBIGUOUS}: left sending")
        await asyncio.to_thread(self._store.outbound_failed, outbound_id, DEAD, None,
                                f"{AMBIGUOUS}: left sending by a process that stopped", item.attempts)
        self._metrics.increment("outbound_dead_letters")
        self._metrics.increment("outbound_ambiguous")

    def _spawn(self, coroutine: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("Sending unsent WhatsApp replies failed (%s); the next sweep retries",
                         type(task.exception()).__name__)

    async def idle(self) -> None:
        """Wait for background sends (tests, shutdown)."""
        while self._tasks or self._queue_tasks:
            await asyncio.gather(*list(self._tasks), *list(self._queue_tasks), return_exceptions=True)
