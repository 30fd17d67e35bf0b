"""The number's rate limit shared by every process that sends (issue 16): Redis when
``REDIS_URL`` is set, else this process's own ``whatsapp.limits.RateLimiter``.

Why: Meta's throughput limit (WHATSAPP_SEND_RATE, 80/s by default) belongs to the phone
number, not to a process. Two gateway workers each holding an 80/s limiter would send 160/s
and get error 130429 for the excess. Here every request takes a place in one Redis sorted
set per number, in one Lua script (atomic: two workers never both take the last place):

* a place is held from the request's start until ``window`` seconds after it *ended*
  (the same rule as ``RateLimiter.held``: Meta counts a request when it arrives, somewhere
  between our start and its answer; among the requests that arrive within any one second,
  the last to start found every other one still holding its place, so at most ``capacity``
  arrive in any second whatever the latency);
* while a request is in flight its place is marked as held until ``hold_seconds`` ahead, so a
  worker killed mid-request frees its place after that, never for good;
* the time is Redis's (``TIME``), one clock for every worker.

Redis unreachable: the send goes through this process's own limiter (the limit then holds
per process only), with a warning and a counter; a send is never refused for it.
The class satisfies the interface the Graph client uses (``held()``); whatsapp/ imports
nothing of the project, so the limiter is handed to the client from here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from typing import Any, AsyncIterator, Optional

from whatsapp.limits import RateLimiter

logger = logging.getLogger(__name__)

KEY_PREFIX = "clinic:wa-rate:"

# KEYS[1]: the number's sorted set. ARGV: member, capacity, window, hold seconds.
# Returns 0 when a place was taken, else how many milliseconds to wait before asking again.
_TAKE = """
local now = redis.call('TIME')
local t = tonumber(now[1]) + tonumber(now[2]) / 1000000
local capacity = tonumber(ARGV[2])
local window = tonumber(ARGV[3])
local hold = tonumber(ARGV[4])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', t - window)
if redis.call('ZCARD', KEYS[1]) < capacity then
  redis.call('ZADD', KEYS[1], t + hold, ARGV[1])
  redis.call('PEXPIRE', KEYS[1], math.ceil((hold + window) * 1000) + 1000)
  return 0
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
local wait = (tonumber(oldest[2]) + window - t) * 1000
if wait > 50 then wait = 50 end
if wait < 1 then wait = 1 end
return math.ceil(wait)
"""

# The request ended: its place counts until ``window`` after now (KEYS[1]; ARGV: member).
_RELEASE = """
local now = redis.call('TIME')
local t = tonumber(now[1]) + tonumber(now[2]) / 1000000
redis.call('ZADD', KEYS[1], 'XX', t, ARGV[1])
return 1
"""


class RedisRateLimiter:
    """``rate`` requests per second for one phone number, across every process sharing
    ``url``'s Redis (see the module docstring). ``held()`` as ``RateLimiter.held``."""

    def __init__(self, url: str, phone_number_id: str, rate: float, window: float = 1.05,
                 hold_seconds: float = 60.0, fallback: Optional[RateLimiter] = None,
                 client: Any = None) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.capacity = max(1, int(rate))
        self.window = window
        self.hold_seconds = hold_seconds
        self.key = f"{KEY_PREFIX}{phone_number_id}"
        self._url = url
        self._client = client
        self._fallback = fallback or RateLimiter(rate, window=window)
        self._take: Any = None
        self._release: Any = None
        self.fallbacks = 0

    def _scripts(self) -> tuple[Any, Any]:
        if self._take is None:
            if self._client is None:
                import redis.asyncio as redis_asyncio

                self._client = redis_asyncio.Redis.from_url(self._url, socket_timeout=2, socket_connect_timeout=2)
            self._take = self._client.register_script(_TAKE)
            self._release = self._client.register_script(_RELEASE)
        return self._take, self._release

    async def _acquire(self, member: str) -> bool:
        """A place taken in Redis (True), or Redis failed (False: use the fallback)."""
        try:
            take, _ = self._scripts()
            while True:
                wait = int(await take(keys=[self.key], args=[member, self.capacity, self.window,
                                                             self.hold_seconds]))
                if wait == 0:
                    return True
                await asyncio.sleep(wait / 1000.0)
        except (OSError, asyncio.TimeoutError) as error:
            self._redis_failed(error)
            return False
        except Exception as error:  # noqa: BLE001 - redis.RedisError and its kin
            if type(error).__module__.startswith("redis"):
                self._redis_failed(error)
                return False
            raise

    def _redis_failed(self, error: BaseException) -> None:
        self.fallbacks += 1
        logger.warning("The shared rate limit in Redis is unreachable (%s); this process's own "
                       "limit holds meanwhile", type(error).__name__)

    @contextlib.asynccontextmanager
    async def held(self) -> AsyncIterator[None]:
        member = secrets.token_hex(8)
        if not await self._acquire(member):
            async with self._fallback.held():
                yield
            return
        try:
            yield
        finally:
            try:
                _, release = self._scripts()
                await release(keys=[self.key], args=[member])
            except Exception as error:  # noqa: BLE001 - the place expires after hold_seconds
                logger.warning("Releasing a place of the shared rate limit failed (%s)", type(error).__name__)

    async def close(self) -> None:
        if self._client is not None:
            with contextlib.suppress(Exception):
                await self._client.close()


def shared_limiter(redis_url: str, phone_number_id: str, rate: float) -> Optional[RedisRateLimiter]:
    """The Redis limiter when ``REDIS_URL`` is set (``redis_url``: gateway/settings.py), else
    None (the Graph client's own)."""
    url = redis_url.strip()
    if not url:
        return None
    logger.info("Send rate: %s/s for the number, shared in Redis by every gateway worker", rate)
    return RedisRateLimiter(url, phone_number_id, rate)
