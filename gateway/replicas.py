"""Which Rasa replica takes the next turn (issue 16): the relay spreads turns over every
replica in RASA_URLS, and sends a turn to another at once when one is down.

Any replica may serve any conversation: they share the tracker store, and the Redis lock
store (addons/lock_store.py) lets one replica at a time process a conversation. So the
choice is about load and outages only:

- the replica with the fewest turns in flight from this relay, ties in turn (round robin):
  a replica slowed down (a long action, a busy core) gets fewer turns while it catches up;
- a replica that refused the connection, dropped it, or did not answer in time is *down*
  for ``down_seconds`` (doubled on each failure in a row, up to ``max_down_seconds``):
  it gets no turns then, so a dead replica costs each turn nothing, not a time-out each;
- once that time is over, the next turn that picks it is the probe: an answer brings it
  back at once, a failure sends it down for longer. Nothing polls a replica in between.

When no up replica is left for a turn, the down ones are tried too, the one back soonest
first; when every replica failed, the relay backs off before the next round (relay.py): a
turn is never dropped for want of a replica.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Callable, Iterable, List, Optional, Set

DOWN_SECONDS = 2.0
MAX_DOWN_SECONDS = 30.0


@dataclasses.dataclass
class Replica:
    index: int
    url: str
    in_flight: int = 0
    failures_in_a_row: int = 0
    down_until: float = 0.0

    def is_down(self, now: float) -> bool:
        return now < self.down_until


class Replicas:
    """The relay's view of its Rasa replicas; one event loop uses it (no lock needed)."""

    def __init__(self, urls: Iterable[str], down_seconds: float = DOWN_SECONDS,
                 max_down_seconds: float = MAX_DOWN_SECONDS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.replicas: List[Replica] = [Replica(i, url.rstrip("/")) for i, url in enumerate(urls)]
        if not self.replicas:
            raise ValueError("at least one Rasa URL")
        self._down_seconds = down_seconds
        self._max_down_seconds = max_down_seconds
        self._clock = clock
        self._next = 0  # round robin among equally loaded replicas

    def __len__(self) -> int:
        return len(self.replicas)

    def choose(self, tried: Optional[Set[int]] = None) -> Optional[Replica]:
        """The replica for the next try of a turn, skipping those ``tried`` for it already:
        an up one with the fewest in flight (round robin among ties). None when every
        untried replica is down (see ``soonest_back``)."""
        now = self._clock()
        tried = tried or set()
        count = len(self.replicas)
        candidates = [self.replicas[(self._next + k) % count] for k in range(count)]
        up = [r for r in candidates if r.index not in tried and not r.is_down(now)]
        if not up:
            return None
        chosen = min(up, key=lambda r: r.in_flight)  # min keeps the first of equals: round robin
        self._next = (chosen.index + 1) % count
        return chosen

    def soonest_back(self, tried: Optional[Set[int]] = None) -> Optional[Replica]:
        """No up replica is left untried: the down one whose down time ends first (it may
        be back already), or None when every replica was tried (then the caller backs off)."""
        left = [r for r in self.replicas if r.index not in (tried or set())]
        return min(left, key=lambda r: r.down_until) if left else None

    def started(self, replica: Replica) -> None:
        replica.in_flight += 1

    def answered(self, replica: Replica) -> None:
        """It answered (any HTTP status): it is up."""
        replica.in_flight -= 1
        replica.failures_in_a_row = 0
        replica.down_until = 0.0

    def failed(self, replica: Replica) -> float:
        """No answer (refused, dropped, timed out): down for a while; returns how long."""
        replica.in_flight -= 1
        replica.failures_in_a_row += 1
        pause = min(self._down_seconds * 2.0 ** (replica.failures_in_a_row - 1), self._max_down_seconds)
        replica.down_until = self._clock() + pause
        return pause
