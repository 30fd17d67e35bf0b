"""Meta's documented size and count limits for service messages (reference §5.10), and the
one rate limiter that holds a number's throughput (reference §7).

The connector enforces them before sending, and the simulator rejects messages that break
them exactly as Meta would, so a shape error can never reach a patient as silence.
"""

import asyncio
import collections
import contextlib
import time
from typing import Any, AsyncContextManager, AsyncIterator, Awaitable, Callable, Optional, Protocol

TEXT_BODY_MAX = 4096
INTERACTIVE_BODY_MAX = 1024
HEADER_TEXT_MAX = 60
FOOTER_MAX = 60

REPLY_BUTTONS_MAX = 3
REPLY_BUTTON_TITLE_MAX = 20
REPLY_BUTTON_ID_MAX = 256

LIST_BUTTON_MAX = 20
LIST_SECTIONS_MAX = 10
LIST_ROWS_MAX = 10  # across all sections combined
LIST_SECTION_TITLE_MAX = 24
LIST_ROW_TITLE_MAX = 24
LIST_ROW_DESCRIPTION_MAX = 72
LIST_ROW_ID_MAX = 200

CTA_DISPLAY_TEXT_MAX = 20
MEDIA_CAPTION_MAX = 1024
LOCATION_REQUEST_BODY_MAX = 1024
TEMPLATE_QUICK_REPLY_PAYLOAD_MAX = 256  # (not documented by Meta; kept at the button-id size)
BIZ_OPAQUE_CALLBACK_DATA_MAX = 512

WEBHOOK_BODY_MAX_BYTES = 3 * 1024 * 1024
WEBHOOK_UPDATES_MAX = 1000

CUSTOMER_SERVICE_WINDOW_SECONDS = 24 * 60 * 60
DEFAULT_THROUGHPUT_PER_SECOND = 80
# Pair rate limit: about one message every 6 seconds to the same user, bursts borrow quota.
PAIR_RATE_WINDOW_SECONDS = 6


class Limiter(Protocol):
    """What the Graph client needs of a rate limiter: one place per request, held from its
    start until a little after its end (``RateLimiter.held``). Another implementation (a
    limit shared by several processes: gateway/shared_limit.py) can be handed to the client."""

    def held(self) -> AsyncContextManager[None]: ...


class RateLimiter:
    """``rate`` requests per second, held two ways: slots spaced 1/rate apart (GCRA, with
    ``burst`` allowed at once), and never more than ``rate`` in any sliding window of
    ``window`` seconds (a little over 1 s: the event loop wakes late sleepers together, and
    Meta counts requests per second as they arrive; the spacing alone let ~4 % of sends hit
    130429 at exactly 80/s in the broadcast benchmark). Slots are reserved synchronously
    (no await in between), so concurrent callers get distinct ones and the total holds.

    The Graph client (whatsapp/client.py) takes one per request; the process that owns the
    outbox has one client, so this is the number's one limit (clinic/messaging/outbox_queue.py).
    """

    def __init__(self, rate: float, burst: int = 1, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep, window: float = 1.05) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.interval = 1.0 / rate
        self.tolerance = (max(burst, 1) - 1) * self.interval
        self.capacity = max(1, int(rate), max(burst, 1))
        self.window = window
        self._clock = clock
        self._sleep = sleep
        self._tat = float("-inf")  # theoretical arrival time of the next request
        self._recent: "collections.deque[float]" = collections.deque()
        self._places: Optional[asyncio.Semaphore] = None  # made on the loop that uses it

    def reserve(self) -> float:
        """The next free slot (a time on ``clock``), taken now."""
        now = self._clock()
        tat = max(self._tat, now)
        slot = max(now, tat - self.tolerance)
        if len(self._recent) >= self.capacity:
            slot = max(slot, self._recent[-self.capacity] + self.window)
        self._tat = max(tat, slot) + self.interval
        self._recent.append(slot)
        while len(self._recent) > self.capacity:
            self._recent.popleft()
        return slot

    async def acquire(self) -> None:
        delay = self.reserve() - self._clock()
        if delay > 0:
            await self._sleep(delay)

    @contextlib.asynccontextmanager
    async def held(self) -> AsyncIterator[None]:
        """One request, from its slot until ``window`` seconds after it *ended*.

        Why: the slots alone space the requests' starts, but Meta counts them as they
        arrive, somewhere between start and answer; on a loaded machine a sleeper woken late,
        or a slow network, moved one request into the next second's arrivals (the simulator
        saw 21 in one second at a limit of 20 during the full test run). A request also holds
        one of ``capacity`` places until ``window`` (> 1 s) after its answer: among the
        requests that arrive within any one second, the last to start found every other one
        still holding its place (each ended after the second began), so at most ``capacity``
        arrive in any second, whatever the latency. The cost is throughput when answers are
        slow: at most ``capacity`` per (latency + window) seconds."""
        if self._places is None:
            self._places = asyncio.Semaphore(self.capacity)
        places = self._places
        await places.acquire()
        try:
            await self.acquire()
            yield
        finally:
            asyncio.get_running_loop().call_later(self.window, places.release)
