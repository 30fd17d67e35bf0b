"""In-process counters for the channel, exposed as JSON by the connector (no patient data)."""

from __future__ import annotations

import collections
import threading


class Metrics:
    def __init__(self) -> None:
        self._counts: collections.Counter[str] = collections.Counter()
        self._lock = threading.Lock()  # store calls run in worker threads

    def increment(self, name: str, by: int = 1) -> None:
        with self._lock:
            self._counts[name] += by

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(sorted(self._counts.items()))
