"""Async Graph API client for the Cloud API: sending, read receipts and media look-ups.

Runs inside Rasa's event loop, so nothing here blocks: one pooled ``aiohttp`` session, and all
waiting goes through the injectable ``sleep``. Retries follow reference §7: exponential backoff
with full jitter for transient errors, 4^X seconds for the pair rate limit (131056) with that
recipient held back meanwhile, no retry for permanent errors. When it gives up it raises the
last :class:`GraphError` so the caller can dead-letter the message; it never swallows a send.

Ambiguous sends: the Cloud API has no idempotency key, so a message POST that was sent but
got no answer (a timeout after the request went out, a connection dropped mid-exchange) may
or may not have been taken by Meta. Such a POST is never retried here: it raises
:class:`AmbiguousSend` at once, and the caller decides (gateway/outbox.py waits for a
status webhook that names the message, and resends only without one). A connection that
was never made is not ambiguous and is retried like any transient error. Read receipts are
idempotent and keep their retries.

The timeout (``DEFAULT_TIMEOUT_SECONDS``): Meta publishes no latency for the Graph API; the
only latency it documents is what it expects of webhook servers, "median latency not to
exceed 250ms, less than 1% exceeds 1s" (docs/whatsapp reference §4), and sends behave alike
in practice. The simulator answers in milliseconds, 0.15-0.45 s with the latency the fault
tests inject. 20 s is twenty times Meta's 1 % tail: an answer later than that is so rare
that the request is more likely lost than slow, so ambiguous sends stay rare while a lost
request still frees its conversation within seconds. Connecting gets 5 s of its own: a
connection never made sent nothing and is safe to retry quickly.

Logs carry at most the masked recipient, the error code and the attempt: never message
bodies (patient data) and never the access token.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import random
import time
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Dict, Optional
from urllib.parse import quote

import aiohttp

from whatsapp.errors import NETWORK_ERROR_STATUS, GraphError, parse_error
from whatsapp.limits import DEFAULT_THROUGHPUT_PER_SECOND, Limiter, RateLimiter
from whatsapp.media import (
    BAD_METADATA,
    DOWNLOAD_REFUSED,
    EXPIRED,
    NOT_FOUND,
    SHA256_MISMATCH,
    SIZE_MISMATCH,
    TOO_LARGE,
    MediaDownload,
    MediaRefused,
    digest_matches,
)
from whatsapp.outbound import OutboundMessage, mark_read_payload

__all__ = ["AmbiguousSend", "DEFAULT_CONNECT_TIMEOUT_SECONDS", "DEFAULT_TIMEOUT_SECONDS", "GraphClient",
           "SendResult", "mask_recipient"]

logger = logging.getLogger(__name__)

Sleep = Callable[[float], Awaitable[Any]]
# Per-recipient hold-back entries are pruned once the table grows past this size.
_NOT_BEFORE_PRUNE_AT = 1024
# Why these values: see the module docstring ("The timeout").
DEFAULT_TIMEOUT_SECONDS = 20.0
DEFAULT_CONNECT_TIMEOUT_SECONDS = 5.0


class AmbiguousSend(GraphError):
    """The request went out but no usable answer came back: Meta may have taken the
    message. Never retried by the client (a retry could deliver it twice)."""


def mask_recipient(recipient: Optional[str]) -> str:
    """``"…1234"``: enough to correlate log lines, not enough to identify a patient."""
    if not recipient:
        return "…"
    return "…" + recipient[-4:] if len(recipient) > 4 else "…"


@dataclass(frozen=True)
class SendResult:
    """Meta accepted the message (acceptance only: delivery comes later as a status)."""

    wamid: str
    attempts: int
    wa_id: Optional[str] = None
    message_status: Optional[str] = None  # "accepted", or "paced" for paced templates


class GraphClient:
    """Sends messages through ``POST /<version>/<phone_number_id>/messages``.

    Use as ``async with GraphClient(...) as client:`` or call :meth:`close` at shutdown.
    """

    def __init__(
        self,
        base_url: str,
        api_version: str,
        phone_number_id: str,
        access_token: str,
        *,
        rate_per_second: Optional[float] = DEFAULT_THROUGHPUT_PER_SECOND,
        rate_burst: int = 1,
        max_attempts: int = 5,
        base_delay: float = 0.5,
        max_delay: float = 30.0,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT_SECONDS,
        sleep: Sleep = asyncio.sleep,
        rng: Callable[[], float] = random.random,
        clock: Callable[[], float] = time.monotonic,
        limiter: Optional[Limiter] = None,
    ) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if rate_per_second is not None and rate_per_second <= 0:
            raise ValueError("rate_per_second must be positive (or None for no limit)")
        self._base = f"{base_url.rstrip('/')}/{api_version.strip('/')}"
        self._messages_url = f"{self._base}/{quote(phone_number_id, safe='')}/messages"
        self._calls_url = f"{self._base}/{quote(phone_number_id, safe='')}/calls"
        self._settings_url = f"{self._base}/{quote(phone_number_id, safe='')}/settings"
        self.phone_number_id = phone_number_id
        self.__token = access_token  # name-mangled and kept out of repr/logs/errors
        self.max_attempts = max_attempts
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.timeout = timeout
        self.connect_timeout = min(connect_timeout, timeout)
        self._sleep = sleep
        self._rng = rng
        self._clock = clock
        # ``limiter``: another limit than this client's own (one several processes share).
        self._limiter: Optional[Limiter] = limiter or (
            RateLimiter(rate_per_second, rate_burst, clock, sleep) if rate_per_second else None
        )
        # Pair rate limit state: when each recipient may be sent to again, and how many
        # 131056 in a row they have produced (the X in 4^X).
        self._not_before: Dict[str, float] = {}
        self._pacing_streak: Dict[str, int] = {}
        self._session: Optional[aiohttp.ClientSession] = None

    def __repr__(self) -> str:
        return f"GraphClient(base={self._base!r}, phone_number_id={self.phone_number_id!r})"

    # --- lifecycle ------------------------------------------------------------------------

    async def __aenter__(self) -> "GraphClient":
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        session, self._session = self._session, None
        if session is not None and not session.closed:
            await session.close()

    def _get_session(self) -> aiohttp.ClientSession:
        # Created lazily: a ClientSession must be built inside the running event loop.
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.timeout, connect=self.connect_timeout),
                connector=aiohttp.TCPConnector(limit=100),
                raise_for_status=False,
            )
        return self._session

    # --- public API -----------------------------------------------------------------------

    async def send(
        self,
        to: str,
        message: OutboundMessage,
        context_message_id: Optional[str] = None,
        biz_opaque_callback_data: Optional[str] = None,
    ) -> SendResult:
        """Send one message; returns the wamid or raises the final :class:`GraphError`."""
        if not isinstance(message, OutboundMessage):
            raise TypeError("message must be a whatsapp.outbound message")
        payload = message.to_payload(to, context_message_id, biz_opaque_callback_data)
        data, attempts = await self._call("POST", self._messages_url, payload, recipient=to, idempotent=False)
        messages = data.get("messages") if isinstance(data, dict) else None
        first = messages[0] if isinstance(messages, list) and messages else None
        wamid = first.get("id") if isinstance(first, dict) else None
        if not isinstance(wamid, str) or not wamid:
            # Accepted (200) but unreadable: retrying could send it twice, so report instead.
            raise AmbiguousSend(200, None, "HTTP 200 without a message id", attempts=attempts)
        contacts = data.get("contacts")
        contact = contacts[0] if isinstance(contacts, list) and contacts else None
        wa_id = contact.get("wa_id") if isinstance(contact, dict) else None
        status = first.get("message_status") if isinstance(first, dict) else None
        return SendResult(
            wamid=wamid,
            attempts=attempts,
            wa_id=wa_id if isinstance(wa_id, str) else None,
            message_status=status if isinstance(status, str) else None,
        )

    async def mark_read(self, message_id: str, typing: bool = False) -> bool:
        """Blue ticks (and optionally a typing indicator) for an inbound message.

        Best effort: a failure is logged with its code and reported as False, because a
        missing read receipt must never stop the reply that follows.
        """
        payload = mark_read_payload(message_id, typing=typing)
        try:
            data, _ = await self._call("POST", self._messages_url, payload)
        except GraphError as exc:
            logger.warning(
                "WhatsApp mark_read failed (http=%s code=%s attempts=%s)",
                exc.http_status, exc.code, exc.attempts,
            )
            return False
        return isinstance(data, dict) and data.get("success") is True

    async def call_action(self, payload: Dict[str, Any]) -> Dict[str, Any]:
        """``POST /<phone_number_id>/calls`` with a payload of whatsapp/calls.py (connect,
        pre_accept, accept, reject, terminate). Like a message POST it is never repeated
        after an ambiguous failure (a second connect could ring the patient twice); the
        answer is Meta's JSON (``{"calls": [{"id": …}]}`` for connect, ``{"success": true}``)."""
        data, _ = await self._call("POST", self._calls_url, payload, idempotent=False)
        if not isinstance(data, dict):
            raise GraphError(200, None, "the calls endpoint returned a body that is not an object")
        return data

    async def update_settings(self, payload: Dict[str, Any]) -> bool:
        """``POST /<phone_number_id>/settings`` (the calling settings: whatsapp/calls.py).
        Idempotent, so retried like a read."""
        data, _ = await self._call("POST", self._settings_url, payload, rate_limited=False)
        return isinstance(data, dict) and data.get("success") is True

    async def get_media(self, media_id: str) -> Dict[str, Any]:
        """``GET /<media_id>``: the short-lived (5 min) download URL, MIME type, sha256, size."""
        if not isinstance(media_id, str) or not media_id.strip():
            raise ValueError("media_id must be a non-empty string")
        url = f"{self._base}/{quote(media_id, safe='')}"
        params = {"phone_number_id": self.phone_number_id}
        data, _ = await self._call("GET", url, None, params=params, rate_limited=False)
        if not isinstance(data, dict):
            raise GraphError(200, None, "media lookup returned a body that is not an object")
        return data

    async def fetch_media(self, media_id: str, max_bytes: int) -> MediaDownload:
        """A patient's media: ``GET /<media_id>`` (URL, type, sha256, size), then the bytes
        from that URL with the bearer token. Both calls are retried on 5xx, 429 and network
        errors (with backoff, like every idempotent call here). Raises :class:`MediaRefused`
        for an outcome no retry changes: the id unknown or expired (4xx), over ``max_bytes``
        (by its metadata, before any byte is fetched, or by the bytes), a size or sha256 that
        does not match the metadata, or a URL that still answers 4xx after a fresh one was
        asked for (it "expires after 5 minutes"). A transient error that outlasts the retries
        raises the last :class:`GraphError` (the caller may try again later)."""
        info = await self._media_info(media_id)
        size = info.get("file_size")
        if isinstance(size, int) and size > max_bytes:
            raise MediaRefused(TOO_LARGE, f"{size} bytes, at most {max_bytes}")
        attempts = 0
        for round_ in (1, 2):
            url = info.get("url")
            if not isinstance(url, str) or not url.startswith(("http://", "https://")):
                raise MediaRefused(BAD_METADATA, "the media object has no download URL")
            try:
                content, attempts = await self._call("GET", url, None, rate_limited=False, limit=max_bytes)
                break
            except GraphError as exc:
                if exc.retryable or exc.pacing:
                    raise
                if round_ == 2:
                    reason = EXPIRED if exc.http_status in (404, 410) else DOWNLOAD_REFUSED
                    raise MediaRefused(reason, f"the download URL answered HTTP {exc.http_status}") from None
                info = await self._media_info(media_id)  # a fresh URL, once
        if not isinstance(content, bytes):
            raise AssertionError("a download returns bytes")  # pragma: no cover
        if isinstance(size, int) and len(content) != size:
            raise MediaRefused(SIZE_MISMATCH, f"{len(content)} bytes, the metadata said {size}")
        expected = info.get("sha256")
        if isinstance(expected, str) and expected and not digest_matches(expected, content):
            raise MediaRefused(SHA256_MISMATCH, "the bytes' sha256 is not the metadata's")
        mime = info.get("mime_type")
        return MediaDownload(content=content, mime_type=mime if isinstance(mime, str) else "application/octet-stream",
                             sha256=hashlib.sha256(content).hexdigest(), file_size=len(content),
                             attempts=attempts)

    async def _media_info(self, media_id: str) -> Dict[str, Any]:
        try:
            return await self.get_media(media_id)
        except GraphError as exc:
            if exc.retryable or exc.pacing:
                raise
            raise MediaRefused(NOT_FOUND, f"GET /<media_id> answered HTTP {exc.http_status}") from None

    # --- retry loop -------------------------------------------------------------------------

    async def _call(
        self,
        method: str,
        url: str,
        payload: Optional[Dict[str, Any]],
        *,
        recipient: Optional[str] = None,
        params: Optional[Dict[str, str]] = None,
        rate_limited: bool = True,
        idempotent: bool = True,
        limit: Optional[int] = None,
    ) -> tuple[Any, int]:
        """One logical call with retries; returns (decoded JSON, attempts). A call that is
        not ``idempotent`` (a message POST) is never repeated after an ambiguous failure.
        ``limit``: a download; the answer is the body's bytes, at most that many."""
        backoff_attempt = 0
        for attempt in range(1, self.max_attempts + 1):
            if recipient is not None:
                await self._wait_for_recipient(recipient)
            try:
                if rate_limited and self._limiter is not None:
                    async with self._limiter.held():
                        data = await self._request(method, url, payload, params)
                else:
                    data = await self._request(method, url, payload, params, limit)
            except GraphError as exc:
                exc.attempts = attempt
                if isinstance(exc, AmbiguousSend) and not idempotent:
                    self._log_failure(recipient, exc, attempt, None)
                    raise exc
                if exc.pacing and recipient is not None:
                    # Recorded even on the last attempt: later sends to them must wait too.
                    delay, wait_here = self._hold_back(recipient), 0.0
                elif exc.retryable or exc.pacing:
                    backoff_attempt += 1
                    delay = wait_here = self._backoff(backoff_attempt)
                else:
                    self._log_failure(recipient, exc, attempt, None)
                    raise exc
                if attempt >= self.max_attempts:
                    self._log_failure(recipient, exc, attempt, None)
                    raise exc
                self._log_failure(recipient, exc, attempt, delay)
                if wait_here > 0:
                    await self._sleep(wait_here)
                continue  # a pacing wait happens in _wait_for_recipient, before the next try
            if recipient is not None:
                self._pacing_streak.pop(recipient, None)
            return data, attempt
        raise AssertionError("unreachable")  # pragma: no cover

    async def _request(
        self,
        method: str,
        url: str,
        payload: Optional[Dict[str, Any]],
        params: Optional[Dict[str, str]],
        limit: Optional[int] = None,
    ) -> Any:
        """One HTTP exchange. Any failure becomes a GraphError (network ones: http_status 0).
        ``limit``: return the body's bytes (a download), refusing more than ``limit``."""
        headers = {"Authorization": f"Bearer {self.__token}"}
        try:
            async with self._get_session().request(
                method, url, json=payload, params=params, headers=headers
            ) as response:
                status = response.status
                if limit is not None and 200 <= status < 300:
                    return await _read_at_most(response, limit)
                body = await response.read()
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            # Only the class name: aiohttp exceptions can carry the request and its headers.
            # "from None" keeps them off the traceback of the error the caller dead-letters.
            kind = AmbiguousSend if _maybe_received(exc) else GraphError
            raise kind(
                NETWORK_ERROR_STATUS, None, f"network error ({type(exc).__name__})"
            ) from None
        if 200 <= status < 300:
            try:
                return json.loads(body.decode("utf-8")) if body else {}
            except (UnicodeDecodeError, ValueError):
                raise GraphError(status, None, f"HTTP {status} with a body that is not JSON") from None
        raise parse_error(status, body, secrets=(self.__token,))

    # --- pacing helpers ---------------------------------------------------------------------

    def _backoff(self, n: int) -> float:
        """Full jitter: uniform in [0, min(max_delay, base_delay * 2^(n-1))]."""
        ceiling = min(self.max_delay, self.base_delay * (2.0 ** (n - 1)))
        return self._rng() * ceiling

    def _hold_back(self, recipient: str) -> float:
        """Record a 131056 for ``recipient``: no send to them before now + 4^X seconds."""
        streak = self._pacing_streak.get(recipient, 0)
        self._pacing_streak[recipient] = streak + 1
        delay = float(min(4 ** min(streak, 16), self.max_delay))
        until = self._clock() + delay
        self._not_before[recipient] = max(self._not_before.get(recipient, until), until)
        if len(self._not_before) > _NOT_BEFORE_PRUNE_AT:
            self._prune()
        return delay

    async def _wait_for_recipient(self, recipient: str) -> None:
        until = self._not_before.get(recipient)
        if until is None:
            return
        delay = until - self._clock()
        if delay > 0:
            await self._sleep(delay)
        # Another send to the same recipient may have pushed it further meanwhile: respect it.
        if self._not_before.get(recipient, 0.0) <= self._clock():
            self._not_before.pop(recipient, None)

    def _prune(self) -> None:
        now = self._clock()
        for key in [key for key, until in self._not_before.items() if until <= now]:
            del self._not_before[key]
        for key in [key for key in self._pacing_streak if key not in self._not_before]:
            del self._pacing_streak[key]

    def _log_failure(
        self, recipient: Optional[str], exc: GraphError, attempt: int, retry_in: Optional[float]
    ) -> None:
        if retry_in is None:
            logger.warning(
                "WhatsApp call to %s failed (http=%s code=%s attempt=%d/%d); giving up",
                mask_recipient(recipient), exc.http_status, exc.code, attempt, self.max_attempts,
            )
        else:
            logger.info(
                "WhatsApp call to %s failed (http=%s code=%s attempt=%d/%d); retry in %.2fs",
                mask_recipient(recipient), exc.http_status, exc.code, attempt, self.max_attempts,
                retry_in,
            )


async def _read_at_most(response: aiohttp.ClientResponse, limit: int) -> bytes:
    """The body, or MediaRefused(too_large) as soon as it passes ``limit`` (never read whole)."""
    declared = response.content_length
    if declared is not None and declared > limit:
        raise MediaRefused(TOO_LARGE, f"{declared} bytes, at most {limit}")
    chunks: list[bytes] = []
    total = 0
    async for chunk in response.content.iter_chunked(64 * 1024):
        total += len(chunk)
        if total > limit:
            raise MediaRefused(TOO_LARGE, f"more than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _maybe_received(exc: BaseException) -> bool:
    """Whether the server may have received (and acted on) the request: anything but a
    connection that was never made. aiohttp raises ServerTimeoutError("Connection timeout
    to host …") when connecting timed out, and a plain TimeoutError when the whole exchange
    did (the request was sent, the answer was late)."""
    if isinstance(exc, aiohttp.ClientConnectorError):
        return False
    if isinstance(exc, aiohttp.ServerTimeoutError) and str(exc).startswith("Connection timeout"):
        return False
    return True
