"""A dedicated thread running its own asyncio event loop, for processing inbox messages.

Why: Rasa's NLU and policy inference run synchronously inside its async message handling,
tens of milliseconds per message. On Sanic's loop they would delay every webhook
acknowledgement queued behind them (Meta wants 200s fast, or it redelivers). On this loop
they only delay each other, while Sanic's loop keeps verifying, storing and acknowledging.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import sys
import threading
from typing import Any, Callable, Coroutine, Optional

# The worker thread's default niceness (WHATSAPP_WORKER_NICENESS, gateway/settings.py; 0 = same
# priority as the loop that acknowledges webhooks).
WORKER_NICENESS = 10
# Python hands the GIL between threads every 5 ms by default; 1 ms lets Sanic's loop answer a
# webhook sooner while inference runs on the worker thread.
GIL_SWITCH_INTERVAL = 0.001


class WorkerLoop:
    def __init__(self, name: str = "whatsapp-processing", niceness: int = WORKER_NICENESS) -> None:
        self._name = name
        self._niceness = niceness
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._thread: Optional[threading.Thread] = None
        self._ready = threading.Event()
        self._starting = threading.Lock()

    @property
    def running(self) -> bool:
        return self._loop is not None and self._loop.is_running()

    def start(self) -> None:
        # Several threads may start it at once (the inbox's web workers): each returns only
        # once the loop runs.
        with self._starting:
            if self._thread is None:
                sys.setswitchinterval(min(sys.getswitchinterval(), GIL_SWITCH_INTERVAL))
                self._ready.clear()
                self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                self._thread.start()
        self._ready.wait(timeout=10)

    def _run(self) -> None:
        # When an acknowledgement and inference compete for the CPU (and the GIL), let the
        # acknowledgement win: lower this thread's scheduling priority (Linux: per thread).
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), self._niceness)
        except (AttributeError, OSError):  # pragma: no cover - not Linux, or not permitted
            pass
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        self._loop = loop
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            loop.close()

    def _started_loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            raise RuntimeError(f"{self._name}: start() the worker loop first")
        return self._loop

    def submit(self, coroutine: Coroutine[Any, Any, Any]) -> concurrent.futures.Future[Any]:
        """Run a coroutine on the worker loop; the returned future can be awaited elsewhere
        with ``asyncio.wrap_future``."""
        return asyncio.run_coroutine_threadsafe(coroutine, self._started_loop())

    def call_soon(self, callback: Callable[..., Any], *args: Any) -> None:
        self._started_loop().call_soon_threadsafe(callback, *args)

    def stop(self, timeout: float = 10.0) -> None:
        if self._loop is None:
            return
        self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(timeout=timeout)
        self._thread, self._loop = None, None
