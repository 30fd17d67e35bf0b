"""Liveness and readiness probes (issue 16, item 4): ``GET /healthz`` (the process answers)
and ``GET /readyz`` (its database answers; the gateway's turn-running roles also need Rasa)
on the WhatsApp gateway, the staff inbox and the clinic API. Each app is served on a real
port; readiness is shown both ready and not ready (a database that cannot be opened, a Rasa
that does not answer)."""

from __future__ import annotations

import contextlib
import threading
import time

import pytest
import requests
import uvicorn
from aiohttp import web

from clinic.api_keys import ApiKeys
from clinic.db import create_schema, make_engine, make_session_factory
from gateway.door import Door
from gateway.server import Ingress
from tests.connector_support import ENCRYPTION_KEY, settings
from tests.inbox_support import FakeRasa, LiveClock, build_world, running_inbox
from tests.test_fault_inbound_gateway import serve


def unopenable(directory) -> object:
    """Sessions on a "database" SQLite cannot open: a directory."""
    from sqlalchemy import create_engine

    return make_session_factory(create_engine(f"sqlite:///{directory}", future=True))


def get(url: str) -> tuple:
    response = requests.get(url, timeout=10)
    return response.status_code, response.json()


# ── the gateway (aiohttp) ──────────────────────────────────────────────────────────────────
async def fetch(session, url: str) -> tuple:
    async with session.get(url) as response:
        return response.status, await response.json()


@pytest.mark.asyncio
async def test_gateway_probes(tmp_path, monkeypatch):
    import aiohttp

    monkeypatch.setenv("CLINIC_PSEUDONYM_KEY", "test-pseudonym-key")
    monkeypatch.setenv("CLINIC_ENCRYPTION_KEY", ENCRYPTION_KEY)
    # A stand-in for Rasa's WhatsApp channel (the blueprint's health route).
    rasa = web.Application()
    rasa.router.add_get("/webhooks/whatsapp/", lambda _: web.json_response({"status": "ok"}))
    rasa_runner, rasa_url = await serve(rasa)
    channel = Door(settings(), database_url=f"sqlite:///{tmp_path / 'clinic.db'}", door="ingress")
    # The probes only, without the app's start-up (journal, inbox recovery, outbox).
    app = web.Application()
    ingress, door_ingress = Ingress(channel, rasa_url), Ingress(channel, rasa_url, role="door", relay_url="http://x")
    app.router.add_get("/healthz", ingress.healthz)
    app.router.add_get("/readyz", ingress.readyz)
    app.router.add_get("/door/readyz", door_ingress.readyz)
    runner, url = await serve(app)
    try:
        async with aiohttp.ClientSession() as session:
            assert await fetch(session, f"{url}/healthz") == (200, {"status": "ok"})
            assert await fetch(session, f"{url}/readyz") == (
                200, {"status": "ready", "checks": {"database": "ok", "rasa": "ok"}})

            await rasa_runner.cleanup()  # Rasa is gone: the gateway cannot run turns
            status, body = await fetch(session, f"{url}/readyz")
            assert status == 503 and body["checks"]["database"] == "ok"
            assert body["checks"]["rasa"].startswith("unreachable")
            # A door does not call Rasa: still ready.
            assert (await fetch(session, f"{url}/door/readyz"))[0] == 200
            # Alive all along.
            assert (await fetch(session, f"{url}/healthz"))[0] == 200

            # The database cannot be opened: not ready, whatever the role.
            channel.sessions = unopenable(tmp_path)
            status, body = await fetch(session, f"{url}/door/readyz")
            assert status == 503 and body["checks"]["database"].startswith("unreachable")
            assert str(tmp_path) not in str(body)  # no server, path or credentials in the answer
    finally:
        await runner.cleanup()
        channel.journal.close()


# ── the staff inbox (FastAPI) ──────────────────────────────────────────────────────────────
def test_inbox_probes(tmp_path):
    rasa = FakeRasa()
    rasa.start()
    try:
        world = build_world(tmp_path / "clinic.db", rasa, LiveClock())
        with running_inbox(world) as server:
            assert get(f"{server.url}/healthz") == (200, {"status": "ok"})
            assert get(f"{server.url}/readyz") == (200, {"status": "ready", "checks": {"database": "ok"}})
            # Neither probe needs a session, nor gets a session cookie.
            assert "inbox_session" not in requests.get(f"{server.url}/readyz", timeout=10).cookies

            world.inbox._sessions = unopenable(tmp_path)
            status, body = get(f"{server.url}/readyz")
            assert status == 503 and body["checks"]["database"].startswith("unreachable")
            assert get(f"{server.url}/healthz")[0] == 200
    finally:
        rasa.stop()


# ── the clinic API (FastAPI) ───────────────────────────────────────────────────────────────
@contextlib.contextmanager
def running_api(sessions):
    from clinic.scheduling.sql_backend import SqlSchedulingBackend
    from clinic_api.app import create_app

    server = uvicorn.Server(uvicorn.Config(
        create_app(SqlSchedulingBackend(sessions), ApiKeys(sessions), sessions), host="127.0.0.1", port=0,
        log_level="warning", access_log=False, ws="none"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for _ in range(200):
        if server.started:
            break
        time.sleep(0.025)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=5)


def test_clinic_api_probes(tmp_path, monkeypatch):
    monkeypatch.setenv("CLINIC_PSEUDONYM_KEY", "test-pseudonym-key")
    monkeypatch.setenv("CLINIC_ENCRYPTION_KEY", ENCRYPTION_KEY)
    engine = make_engine(f"sqlite:///{tmp_path / 'clinic.db'}")
    create_schema(engine)
    with running_api(make_session_factory(engine)) as api:
        # No API key needed for either.
        assert get(f"{api}/healthz") == (200, {"status": "ok"})
        assert get(f"{api}/readyz") == (200, {"status": "ready", "checks": {"database": "ok"}})
    with running_api(unopenable(tmp_path)) as api:
        assert get(f"{api}/healthz") == (200, {"status": "ok"})
        status, body = get(f"{api}/readyz")
        assert status == 503 and body == {"status": "not ready", "checks": {"database": "unreachable (OperationalError)"}}
