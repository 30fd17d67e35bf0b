"""``GET /metrics`` (Prometheus's text format) for the clinic's web processes (the staff
inbox, the clinic API): the process's own collectors (CPU, memory, open files, garbage
collection, Python version) and HTTP requests counted by method and status class.

A plain ASGI middleware, so this module imports no web framework: ``instrument(app, name)``
adds it to a Starlette/FastAPI app (outermost, so ``/metrics`` touches no session or API
key). Labels are fixed vocabularies: never a path (paths carry ticket ids and portal
tokens), a query or a header.
"""

from __future__ import annotations

from typing import Any, Awaitable, Callable, MutableMapping

from prometheus_client import (
    CollectorRegistry,
    Counter,
    GCCollector,
    PlatformCollector,
    ProcessCollector,
    make_asgi_app,
)

__all__ = ["METRICS_PATH", "MetricsMiddleware", "instrument"]

METRICS_PATH = "/metrics"
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def new_registry() -> CollectorRegistry:
    registry = CollectorRegistry()
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    return registry


class MetricsMiddleware:
    def __init__(self, app: ASGIApp, registry: CollectorRegistry, requests: Counter) -> None:
        self.app = app
        self._requests = requests
        self._exposition = make_asgi_app(registry)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["path"] == METRICS_PATH:
            await self._exposition(scope, receive, send)
            return
        status = {"code": 500}  # an exception before the response started

        async def recording(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, recording)
        finally:
            method = scope.get("method", "")
            self._requests.labels(method=method if method in _METHODS else "other",
                                  status=f"{status['code'] // 100}xx").inc()


def instrument(app: Any, process: str) -> CollectorRegistry:
    """Serve ``/metrics`` on ``app`` (call after its other middleware: this one is then the
    outermost); ``process``: the metrics' prefix (``inbox``, ``clinic_api``). Returns the
    app's registry (a registry per app: tests build many apps)."""
    registry = new_registry()
    requests = Counter(f"{process}_http_requests", "HTTP requests by method and status class",
                       ["method", "status"], registry=registry)
    app.add_middleware(MetricsMiddleware, registry=registry, requests=requests)
    return registry
