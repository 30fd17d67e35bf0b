"""Liveness, readiness and ``/metrics`` for the clinic's workers that have no web server of
their own (the reminder scheduler, the survey sender): a small HTTP server in a daemon thread,
started when the worker is given an address (``--health-address`` or WORKER_HEALTH_ADDRESS,
e.g. ``0.0.0.0:8095`` in a container; off by default).

- ``GET /healthz`` (liveness): 200 while the worker's loop has come round within
  ``stale_after`` seconds; 503 once it has not (stuck on a hung call, a deadlock), so an
  orchestrator restarts it. A thread answering is not proof enough: the loop must beat.
- ``GET /readyz`` (readiness): 200 when the database answers.
- ``GET /metrics``: the process's collectors, the loop's count and the worker's own figures
  (counts and timings only, never patient data), in Prometheus's text format.
"""

from __future__ import annotations

import http.server
import logging
import threading
import time
from typing import Any, Callable, Mapping, Optional, Tuple

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, generate_latest

from clinic.observability import new_registry

logger = logging.getLogger(__name__)

ENV_ADDRESS = "WORKER_HEALTH_ADDRESS"


def parse_address(value: str) -> Optional[Tuple[str, int]]:
    """``host:port`` (or ``:port``, localhost) → (host, port); empty → None (no server)."""
    value = (value or "").strip()
    if not value:
        return None
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{ENV_ADDRESS} must be host:port, got {value!r}")
    return host or "127.0.0.1", int(port)


def address_argument(value: str) -> Optional[Tuple[str, int]]:
    """``parse_address`` as an argparse ``type`` (a clear usage error, not a traceback)."""
    import argparse

    try:
        return parse_address(value)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


class WorkerProbe:
    def __init__(self, worker: str, stale_after: float, ready: Callable[[], bool],
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.worker = worker
        self.stale_after = stale_after
        self._ready = ready
        self._clock = clock
        self._last_beat = clock()
        self.registry = new_registry()
        self._loops = Counter(f"clinic_{worker}_loops", "Rounds of the worker's loop", registry=self.registry)
        self._figures = Gauge(f"clinic_{worker}_figure", "The worker's own figures (counts, seconds)",
                              ["name"], registry=self.registry)
        self._server: Optional[http.server.ThreadingHTTPServer] = None

    def beat(self, figures: Optional[Mapping[str, float]] = None) -> None:
        """The loop came round (and its figures so far)."""
        self._last_beat = self._clock()
        self._loops.inc()
        for name, value in (figures or {}).items():
            if isinstance(value, (int, float)):
                self._figures.labels(name=name).set(value)

    def alive(self) -> bool:
        return self._clock() - self._last_beat <= self.stale_after

    def ready(self) -> bool:
        try:
            return bool(self._ready())
        except Exception:  # noqa: BLE001 - not ready is the answer, whatever the cause
            return False

    def serve(self, host: str, port: int) -> int:
        """Start answering in a daemon thread; returns the port (0 picks a free one)."""
        probe = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                if self.path == "/healthz":
                    self._answer(*((200, b"alive\n") if probe.alive() else (503, b"stale\n")))
                elif self.path == "/readyz":
                    self._answer(*((200, b"ready\n") if probe.ready() else (503, b"not ready\n")))
                elif self.path == "/metrics":
                    self._answer(200, generate_latest(probe.registry), CONTENT_TYPE_LATEST)
                else:
                    self._answer(404, b"not found\n")

            def _answer(self, status: int, body: bytes, content_type: str = "text/plain; charset=utf-8") -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_args: object) -> None:
                pass  # probes every few seconds: not worth a log line each

        self._server = http.server.ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, name=f"{self.worker}-probe", daemon=True).start()
        bound = self._server.server_address[1]
        logger.info("Health and metrics of the %s on %s:%s", self.worker, host, bound)
        return int(bound)

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()


def database_answers(sessions: Callable[[], Any]) -> Callable[[], bool]:
    """Readiness: a ``SELECT 1`` through the worker's session factory."""
    from sqlalchemy import text

    def check() -> bool:
        with sessions() as session:
            session.execute(text("SELECT 1"))
        return True

    return check


def figures_of(value: object) -> Mapping[str, float]:
    """A worker's figures (a mapping or a dataclass) as name → number, numbers only."""
    import dataclasses

    items = dataclasses.asdict(value) if dataclasses.is_dataclass(value) and not isinstance(value, type) \
        else value if isinstance(value, Mapping) else {}
    return {str(k): float(v) for k, v in items.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


def start_probe(worker: str, address: Optional[Tuple[str, int]], stale_after: float,
                sessions: Callable[[], Any]) -> Optional[WorkerProbe]:
    """The worker's probe, serving at ``address`` (None: no server, nothing to beat)."""
    if address is None:
        return None
    probe = WorkerProbe(worker, stale_after, database_answers(sessions))
    probe.serve(*address)
    return probe
