"""The channel's metrics, in prometheus_client objects of a registry of their own (one per
``Metrics``: tests make many; the process-wide default registry is never used for these).

Callers count events by name (``increment("inbound_new")``); every name is counted in
``whatsapp_events_total{event=...}`` (``snapshot()`` reads it back, for the JSON report),
and the names the operations dashboards need also move a named metric:

- ``whatsapp_inbound_total{result=accepted|deduplicated|rejected}``: messages taken into
  the inbox, duplicates of ones already there, webhook deliveries refused (signature, size,
  body);
- ``whatsapp_turns_total{result=processed|failed}`` and ``whatsapp_turn_seconds`` (how long
  a turn took, observed by the processor through ``time_turn``);
- ``whatsapp_sends_total{result=sent|error|refused|ambiguous, code=...}``: ``code`` is
  Meta's numeric error code or the refusal's reason, else empty;
- ``whatsapp_dead_letters_total{direction=inbound|outbound}``;
- ``whatsapp_window_refusals_total`` (24-hour window closed), ``whatsapp_phi_blocks_total``;
- ``whatsapp_outbox_queue_depth{priority=...}``: set by the process at scrape time
  (``set_queue_depth``).

Labels are fixed vocabularies (event names written in the code, results, Meta's numeric
codes, priority names): never a phone number, a conversation id or a patient's text.
"""

from __future__ import annotations

import re
import threading
import time
from contextlib import contextmanager
from typing import Iterator, Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

__all__ = ["CONTENT_TYPE", "Metrics"]

CONTENT_TYPE = CONTENT_TYPE_LATEST

# An event name as the code writes it; anything else (it would be a bug) is counted as "other".
_EVENT_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")
_CODE = re.compile(r"^[0-9]{1,7}$")

_REFUSAL_REASONS = frozenset({"outside_window", "blocked_phi", "unknown_contact", "no_consent",
                              "opted_out"})
# A turn: from under a second (a rule) to the relay's timeout.
_TURN_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._lock = threading.Lock()  # store calls run in worker threads
        self._events = Counter("whatsapp_events", "Channel events by name", ["event"], registry=self.registry)
        self._inbound = Counter("whatsapp_inbound", "Inbound WhatsApp messages and webhook deliveries by result",
                                ["result"], registry=self.registry)
        self._turns = Counter("whatsapp_turns", "Inbound messages processed (a turn of the assistant) by result",
                              ["result"], registry=self.registry)
        self._turn_seconds = Histogram("whatsapp_turn_seconds", "Time to process one inbound message (a turn)",
                                       buckets=_TURN_BUCKETS, registry=self.registry)
        self._sends = Counter("whatsapp_sends", "Outbound sends by result and error code", ["result", "code"],
                              registry=self.registry)
        self._dead_letters = Counter("whatsapp_dead_letters", "Messages given up on", ["direction"],
                                     registry=self.registry)
        self._window_refusals = Counter("whatsapp_window_refusals",
                                        "Outbound messages refused: 24-hour customer service window closed",
                                        registry=self.registry)
        self._phi_blocks = Counter("whatsapp_phi_blocks", "Outbound messages withheld: protected health information",
                                   registry=self.registry)
        self._queue_depth = Gauge("whatsapp_outbox_queue_depth", "Queued outbound messages by priority",
                                  ["priority"], registry=self.registry)
        self._priorities: set[str] = set()

    def increment(self, name: str, by: int = 1) -> None:
        if by <= 0:
            return
        event = name if _EVENT_NAME.match(name) else "other"
        with self._lock:
            self._events.labels(event=event).inc(by)
        self._named(event, by)

    def _named(self, name: str, by: int) -> None:
        if name == "inbound_new":
            self._inbound.labels(result="accepted").inc(by)
        elif name == "inbound_duplicates":
            self._inbound.labels(result="deduplicated").inc(by)
        elif name.startswith("webhook_") and name != "webhook_accepted":  # signature, size, body
            self._inbound.labels(result="rejected").inc(by)
        elif name == "inbound_processed":
            self._turns.labels(result="processed").inc(by)
        elif name == "inbound_failed":
            self._turns.labels(result="failed").inc(by)
        elif name == "inbound_dead_lettered":
            self._dead_letters.labels(direction="inbound").inc(by)
        elif name == "outbound_dead_letters":
            self._dead_letters.labels(direction="outbound").inc(by)
        elif name == "outbound_sent":
            self._sends.labels(result="sent", code="").inc(by)
        elif name == "outbound_ambiguous":
            self._sends.labels(result="ambiguous", code="").inc(by)
        elif name.startswith("outbound_error_"):
            code = name[len("outbound_error_"):]
            self._sends.labels(result="error", code=code if _CODE.match(code) else "other").inc(by)
        elif name.startswith("outbound_refused_"):
            reason = name[len("outbound_refused_"):]
            self._sends.labels(result="refused", code=reason if reason in _REFUSAL_REASONS else "other").inc(by)
            if reason == "outside_window":
                self._window_refusals.inc(by)
            elif reason == "blocked_phi":
                self._phi_blocks.inc(by)

    @contextmanager
    def time_turn(self) -> Iterator[None]:
        """Observe the time of the block in ``whatsapp_turn_seconds`` (failures included)."""
        started = time.perf_counter()
        try:
            yield
        finally:
            self._turn_seconds.observe(time.perf_counter() - started)

    def set_queue_depth(self, by_priority: Mapping[str, int]) -> None:
        """The outbox's queued rows per priority name; a priority seen before and absent now
        is 0 (its queue emptied)."""
        with self._lock:
            self._priorities.update(by_priority)
            for priority in self._priorities:
                self._queue_depth.labels(priority=priority).set(by_priority.get(priority, 0))

    def snapshot(self) -> dict[str, int]:
        """The event counts by name (the JSON report's ``counters``)."""
        counts: dict[str, int] = {}
        with self._lock:
            for family in self._events.collect():
                for sample in family.samples:
                    if sample.name == "whatsapp_events_total":
                        counts[sample.labels["event"]] = int(sample.value)
        return dict(sorted(counts.items()))

    def exposition(self) -> bytes:
        """Prometheus's text format of this registry (``GET /metrics``; ``CONTENT_TYPE``)."""
        return generate_latest(self.registry)
