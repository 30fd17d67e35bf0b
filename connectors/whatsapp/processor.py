"""Processes the durable inbox: one conversation's messages strictly in arrival order,
several conversations at once, and whatever a crashed process left behind at start-up.

Why from the database and not from memory: the webhook has already answered Meta, so the
inbox row is the only copy of a message until the assistant has handled it.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Awaitable, Callable, Dict

from whatsapp.metrics import Metrics
from whatsapp.store import PendingMessage, WhatsAppStore

logger = logging.getLogger(__name__)

Handler = Callable[[PendingMessage], Awaitable[None]]


class InboxProcessor:
    def __init__(self, store: WhatsAppStore, handle: Handler, max_concurrent: int, metrics: Metrics):
        self._store = store
        self._handle = handle
        self._slots = asyncio.Semaphore(max_concurrent)
        self._metrics = metrics
        self._workers: Dict[str, asyncio.Task] = {}
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
                    message = await asyncio.to_thread(self._store.next_pending, conversation_id)
                    if message is None:
                        break
                    async with self._slots:
                        await self._process(message)
                # No await between this check and leaving: a submit() cannot slip in between.
                if conversation_id not in self._dirty:
                    break
        finally:
            self._workers.pop(conversation_id, None)

    async def _process(self, message: PendingMessage) -> None:
        try:
            await self._handle(message)
        except Exception as error:  # noqa: BLE001 - one bad message must not stop the others
            logger.exception("Processing an inbound WhatsApp message failed (kind=%s)", message.kind)
            self._metrics.increment("inbound_failed")
            await asyncio.to_thread(self._store.finish, message.id, type(error).__name__)
        else:
            self._metrics.increment("inbound_processed")
            await asyncio.to_thread(self._store.finish, message.id)

    async def recover(self, already_handled: Callable[[PendingMessage], Awaitable[bool]]) -> int:
        """Resume after a crash: messages caught mid-processing are finished if the assistant
        already logged them (never answer twice), requeued otherwise; then every pending
        conversation is processed. Returns how many messages were waiting."""
        for message in await asyncio.to_thread(self._store.interrupted):
            if await already_handled(message):
                await asyncio.to_thread(self._store.finish, message.id)
                self._metrics.increment("inbound_recovered_done")
            else:
                await asyncio.to_thread(self._store.requeue, message.id)
                self._metrics.increment("inbound_recovered_requeued")
        conversations = await asyncio.to_thread(self._store.pending_conversations)
        # Counted before the workers start: under load one may take a message at once.
        counts = await asyncio.to_thread(self._store.inbox_counts)
        waiting = counts.get("pending", 0)
        for conversation_id in conversations:
            self.submit(conversation_id)
        if waiting:
            logger.info("Resuming %d unprocessed WhatsApp message(s) from the inbox", waiting)
        return waiting

    def start_sweeping(self, interval: float) -> None:
        """Every ``interval`` seconds, process conversations with pending messages that no
        worker has: messages stored by another process (the ingress) whose notice was lost."""
        if interval > 0 and getattr(self, "_sweeper", None) is None:
            self._sweeper = asyncio.get_running_loop().create_task(self._sweep(interval))

    async def _sweep(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
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
