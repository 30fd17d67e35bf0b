"""Helpers for tests and benchmarks: run the simulator in-process on a free port, and a
tiny webhook receiver that records exactly what the simulator posts.

    async with running_simulator(webhook_url=receiver.url) as sim:
        await sim.post("/_sim/users/15550123456/messages", {"text": "hi"})
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Awaitable, Callable, Dict, List, Optional, Union

import aiohttp
from aiohttp import web

from .app import create_app, get_simulator
from .config import SimulatorConfig
from .core import Simulator

TEST_APP_SECRET = "sim-test-app-secret"
TEST_ACCESS_TOKEN = "sim-test-access-token"
TEST_VERIFY_TOKEN = "sim-test-verify-token"


async def _serve(app: web.Application, host: str = "127.0.0.1", port: int = 0) -> tuple:
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound_port = runner.addresses[0][1]
    return runner, f"http://{host}:{bound_port}"


@dataclass
class RunningSimulator:
    url: str
    simulator: Simulator
    session: aiohttp.ClientSession
    token: str

    @property
    def config(self) -> SimulatorConfig:
        return self.simulator.config

    def graph_url(self, path: str = "messages", version: str = "v23.0") -> str:
        return f"{self.url}/{version}/{self.config.phone_number_id}/{path}"

    async def send(self, body: Any, token: Optional[str] = "default") -> tuple:
        """POST a send body to the Graph API; returns (status, json)."""
        headers = {}
        if token is not None:
            headers["Authorization"] = f"Bearer {self.token if token == 'default' else token}"
        async with self.session.post(self.graph_url(), json=body, headers=headers) as resp:
            return resp.status, await resp.json()

    async def post(self, path: str, body: Optional[Dict[str, Any]] = None) -> tuple:
        async with self.session.post(self.url + path, json=body or {}) as resp:
            return resp.status, await resp.json()

    async def get(self, path: str, **params: Any) -> tuple:
        async with self.session.get(self.url + path, params=params) as resp:
            return resp.status, await resp.json()

    async def user_says(self, wa_id: str, text: str, **options: Any) -> Dict[str, Any]:
        status, data = await self.post(f"/_sim/users/{wa_id}/messages", {"text": text, **options})
        assert status == 200, data
        return data


@contextlib.asynccontextmanager
async def running_simulator(**overrides: Any) -> AsyncIterator[RunningSimulator]:
    options: Dict[str, Any] = {
        "app_secret": TEST_APP_SECRET,
        "access_token": TEST_ACCESS_TOKEN,
        "verify_token": TEST_VERIFY_TOKEN,
        "webhook_url": None,
        "delivered_delay": 0.05,
        "retry_schedule": [0.05, 0.1, 0.2],
        "webhook_timeout": 5.0,
    }
    options.update(overrides)
    config = SimulatorConfig(**options)
    app = create_app(config)
    runner, url = await _serve(app, config.host)
    config.port = int(url.rsplit(":", 1)[1])
    session = aiohttp.ClientSession(trust_env=False)
    try:
        yield RunningSimulator(url=url, simulator=get_simulator(app), session=session,
                               token=config.access_token)
    finally:
        await session.close()
        await runner.cleanup()


@dataclass
class Received:
    body: bytes
    headers: Dict[str, str]
    at: float
    status: int

    def json(self) -> Any:
        import json

        return json.loads(self.body)


Responder = Callable[["Received"], Union[int, Awaitable[int]]]


@dataclass
class WebhookReceiver:
    """Records every POST; answers with ``statuses`` in turn (then 200), or ``responder``."""

    statuses: List[int] = field(default_factory=list)
    responder: Optional[Responder] = None
    delay: float = 0.0
    received: List[Received] = field(default_factory=list)
    verify_token: str = TEST_VERIFY_TOKEN
    url: str = ""
    _runner: Optional[web.AppRunner] = None
    _event: asyncio.Event = field(default_factory=asyncio.Event)

    async def start(self) -> "WebhookReceiver":
        app = web.Application()
        app.router.add_post("/webhook", self._post)
        app.router.add_get("/webhook", self._get)
        self._runner, base = await _serve(app)
        self.url = base + "/webhook"
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _get(self, request: web.Request) -> web.Response:
        q = request.query
        if q.get("hub.mode") == "subscribe" and q.get("hub.verify_token") == self.verify_token:
            return web.Response(text=q.get("hub.challenge", ""))
        return web.Response(status=403, text="forbidden")

    async def _post(self, request: web.Request) -> web.Response:
        body = await request.read()
        item = Received(body=body, headers=dict(request.headers), at=time.time(), status=200)
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.responder is not None:
            result = self.responder(item)
            status = await result if asyncio.iscoroutine(result) else result
        elif self.statuses:
            status = self.statuses.pop(0)
        else:
            status = 200
        item.status = int(status)  # type: ignore[arg-type]
        self.received.append(item)
        self._event.set()
        return web.Response(status=item.status, text="ok" if item.status == 200 else "error")

    async def wait_for(self, predicate: Callable[[List[Received]], bool], timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while not predicate(self.received):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"timed out; received {len(self.received)} webhooks")
            self._event.clear()
            try:
                await asyncio.wait_for(self._event.wait(), min(remaining, 0.2))
            except asyncio.TimeoutError:
                pass

    def payloads(self) -> List[Any]:
        return [r.json() for r in self.received]

    def statuses_for(self, wamid: str) -> List[str]:
        out = []
        for payload in self.payloads():
            for entry in payload.get("entry", []):
                for change in entry.get("changes", []):
                    for status in change.get("value", {}).get("statuses", []) or []:
                        if status.get("id") == wamid:
                            out.append(status["status"])
        return out
