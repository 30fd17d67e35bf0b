"""Fetching patients' media for staff, in the gateway's processing path (never in the
webhook's acknowledgement: the door only verifies and journals).

For each inbound message with media (the door's ``MediaRef``, clinic/messaging/turn.py), after
the assistant's replies are recorded and handed to the outbox — the patient's reply never
waits for a download — :class:`MediaFetcher` records an ``inbound_media`` row
(clinic/messaging/media.py) and, in the background (a few at a time, so neither the
conversation's next message nor memory waits on a 100 MB document), downloads the bytes with the gateway's one Graph client
(``GraphClient.fetch_media``: ``GET /<media-id>`` then the short-lived URL, each retried with
backoff on 5xx, 429 and network errors), checks them against Meta's size and sha256 and the
maximum for their type (WHATSAPP_MEDIA_MAX_BYTES, gateway/settings.py; Meta's documented
limits by default) and stores them encrypted. Outcomes: ``stored``; ``too_large``,
``failed`` (a 4xx, an expired id or URL, a size or sha256 mismatch: no retry changes them)
and ``unsupported`` with the reason; a transient failure that outlasts the client's retries
leaves the row ``pending`` and the sweep (every WHATSAPP_MEDIA_SWEEP_SECONDS) tries again,
at most WHATSAPP_MEDIA_MAX_ATTEMPTS times. Each fetch first claims its row under a lease
(``inbound_media.lease_until``), so a sweep or another gateway worker never fetches a media
that is being fetched; a crashed worker's lease runs out and the sweep takes the row. Nothing here raises into the turn: a failed
download must never make the patient's message be processed again.

Logs name the row id, the kind and the outcome; never the bytes, a file name or Meta's URL.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any, Mapping, Optional

from clinic.messaging.media import FAILED, TOO_LARGE, MediaStore
from clinic.messaging.turn import InboundTurn
from whatsapp.client import GraphClient
from whatsapp.errors import GraphError
from whatsapp.media import TOO_LARGE as REFUSED_TOO_LARGE
from whatsapp.media import MediaRefused, max_bytes_for
from whatsapp.metrics import Metrics

logger = logging.getLogger(__name__)


class MediaFetcher:
    def __init__(self, store: MediaStore, client: GraphClient, metrics: Metrics, *,
                 max_bytes: Optional[Mapping[str, int]] = None, max_attempts: int = 3,
                 lease_seconds: float = 300.0, max_concurrent: int = 4) -> None:
        self.store = store
        self._client = client
        self._metrics = metrics
        self._max_bytes = dict(max_bytes) if max_bytes else None
        self.max_attempts = max(1, max_attempts)
        # How long one fetch holds its row (both Graph calls with all their retries fit).
        self.lease_seconds = lease_seconds
        self._sweeper: Optional[asyncio.Task[Any]] = None
        # Downloads in flight (each holds its bytes in memory: a few at a time).
        self._in_flight: set[asyncio.Task[None]] = set()
        self._slots = asyncio.Semaphore(max(1, max_concurrent))

    async def take(self, turn: InboundTurn, inbox_id: Optional[int] = None) -> Optional[str]:
        """Record the media of ``turn`` (if it has any) and start fetching it in the
        background: the conversation's next message is not held up by a download (a 100 MB
        document, a Graph outage with its retries). Returns the row's state once recorded
        (``pending`` while the fetch runs). Never raises (apart from cancellation)."""
        if turn.media is None:
            return None
        try:
            media_id, state = await asyncio.to_thread(self.store.record, turn.conversation_id, turn.wamid,
                                                      turn.media, turn.received_at, inbox_id)
        except Exception as error:  # noqa: BLE001 - the patient's turn is done whatever happens here
            self._metrics.increment("media_record_failed")
            logger.error("Recording inbound media failed (%s)", type(error).__name__)
            return None
        if state == "pending":
            self._spawn(media_id)
        elif state != "stored":
            self._metrics.increment(f"media_{state}")
        return state

    def _spawn(self, media_id: str) -> None:
        task = asyncio.get_running_loop().create_task(self._fetch_quietly(media_id))
        self._in_flight.add(task)
        task.add_done_callback(self._in_flight.discard)

    async def _fetch_quietly(self, media_id: str) -> None:
        try:
            async with self._slots:
                await self.fetch(media_id)
        except asyncio.CancelledError:
            raise
        except Exception as error:  # noqa: BLE001 - a database hiccup: the sweep tries again
            self._metrics.increment("media_fetch_crashed")
            logger.error("Fetching inbound media %s failed (%s); the sweep tries again", media_id,
                         type(error).__name__)
            with contextlib.suppress(Exception):
                await asyncio.to_thread(self.store.release, media_id)

    async def idle(self) -> None:
        """Wait for the fetches in flight (tests, shutdown)."""
        while self._in_flight:
            await asyncio.gather(*list(self._in_flight), return_exceptions=True)

    async def fetch(self, media_id: str) -> Optional[str]:
        """One try at a ``pending`` row; returns its state afterwards."""
        pending = await asyncio.to_thread(self.store.pending_of, media_id)
        if pending is None:
            return None
        meta_id, kind, _expected = pending
        attempts = await asyncio.to_thread(self.store.claim, media_id, self.lease_seconds)
        if attempts is None:
            return None  # another fetch has it
        limit = max_bytes_for("audio" if kind == "voice" else kind, self._max_bytes)
        try:
            download = await self._client.fetch_media(meta_id, limit)
        except asyncio.CancelledError:
            # Shutting down: give the row back, so the next start's sweep takes it at once.
            await asyncio.shield(asyncio.to_thread(self.store.release, media_id))
            raise
        except MediaRefused as refused:
            state = TOO_LARGE if refused.reason == REFUSED_TOO_LARGE else FAILED
            await asyncio.to_thread(self.store.mark, media_id, state, str(refused))
            self._metrics.increment(f"media_{state}")
            logger.info("Inbound media %s (%s) not stored: %s", media_id, kind, refused.reason)
            return state
        except GraphError as error:
            if error.retryable or error.pacing:
                if attempts < self.max_attempts:
                    await asyncio.to_thread(self.store.release, media_id)
                    self._metrics.increment("media_retry_later")
                    logger.warning("Inbound media %s (%s): Graph unavailable (HTTP %s), tried %d of %d times; "
                                   "the sweep tries again", media_id, kind, error.http_status, attempts,
                                   self.max_attempts)
                    return "pending"
            reason = f"Graph answered HTTP {error.http_status}" + (f" code {error.code}" if error.code else "")
            await asyncio.to_thread(self.store.mark, media_id, FAILED, reason)
            self._metrics.increment("media_failed")
            logger.warning("Inbound media %s (%s) failed for good: %s", media_id, kind, reason)
            return FAILED
        await asyncio.to_thread(self.store.store, media_id, download.content, download.mime_type)
        self._metrics.increment("media_stored")
        return "stored"

    # ── the sweep: rows left pending (transient failures, a crash mid-download) ─────────
    def start_sweeping(self, interval: float) -> None:
        if interval > 0 and self._sweeper is None:
            self._sweeper = asyncio.get_running_loop().create_task(self._sweep(interval))

    async def stop(self, grace: float = 5.0) -> None:
        """Stop the sweep; fetches in flight get ``grace`` seconds to finish, then are
        cancelled (their rows are given back: pending, for the next start's sweep)."""
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
            self._sweeper = None
        if self._in_flight:
            await asyncio.wait(list(self._in_flight), timeout=grace)
        for task in list(self._in_flight):
            task.cancel()
        await asyncio.gather(*list(self._in_flight), return_exceptions=True)

    async def sweep_once(self, older_than: float = 0.0) -> int:
        done = 0
        for media_id in await asyncio.to_thread(self.store.pending, 20, older_than):
            async with self._slots:
                await self.fetch(media_id)
            done += 1
        return done

    async def _sweep(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                await self.sweep_once()
            except Exception:  # noqa: BLE001 - a database hiccup: next time
                logger.exception("Inbound media sweep failed")
