"""Several gateway workers end to end (issue 16, item 2; a first part of item 5), real
processes over real HTTP: the simulator (Meta) → a door (``python -m gateway --role door``)
→ one PostgreSQL clinic database ← two relays (``--role relay``), which share the inbox and
the outbox, and the number's send rate in Redis (REDIS_URL) → a stand-in for Rasa's
``/webhooks/whatsapp/turn`` (the real-Rasa replica test is tests/test_rasa_replicas_e2e.py).
The stand-in answers a retried turn with the reply it gave the first time, as Rasa does.

A burst of 200 messages from 20 patients; one relay is killed with SIGKILL while it works
and started again. What must hold, counted at the simulator:

- every message answered exactly once, each patient's answers in the order they wrote;
- the number's limit (the simulator's ``--throughput``, 130429 above it) held by the two
  relays together: no request refused, never more than the limit in any one second; then
  120 queued messages (as staff replies, reminders and broadcasts queue them) drained by
  both relays at once: each sent once, each patient's in order, within the limit.

Why it could fail: without leases, the surviving relay's sweep would requeue (start-up
recovery: re-run) what the other one was processing, and the two relays would take one
conversation's messages at once (answers out of order); without the shared limit, two
relays send up to twice the number's rate (tests/test_replica_inbox.py shows both at unit
level, with controls).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Dict, List

import pytest
from aiohttp import web
from cryptography.fernet import Fernet

from benchmarks.stack import PROJECT_ROOT, free_port
from clinic.db import make_engine, make_session_factory
from clinic.messaging.outbox_queue import PRIORITY_STAFF_REPLY, prepare
from clinic.messaging.store import WhatsAppStore
from clinic.privacy import contact_key
from tests.outbox_support import busiest_second
from tests.pg_support import fresh_database
from whatsapp import signature
from whatsapp.outbound import Text

pytestmark = pytest.mark.servers

PATIENTS = 20
MESSAGES_EACH = 10
LIMIT = 30  # requests per second, for the number (replies and read receipts)
QUEUED_EACH = 6  # queued messages per patient after the burst


class AssistantStandIn:
    """Rasa's turn endpoint: one reply per message (``re: <text>``), the same reply for a
    retried turn; counts the turns asked per wamid."""

    def __init__(self, secret: str) -> None:
        self.secret = secret
        self.turns: Dict[str, int] = {}
        self.answers: Dict[str, dict] = {}

    async def turn(self, request: web.Request) -> web.Response:
        body = await request.read()
        if not signature.verify(body, request.headers.get(signature.HEADER), self.secret):
            return web.json_response({"error": "invalid signature"}, status=403)
        fields = json.loads(body)
        wamid = fields["wamid"]
        self.turns[wamid] = self.turns.get(wamid, 0) + 1
        replayed = wamid in self.answers
        answer = self.answers.setdefault(wamid, {"messages": [{"text": f"re: {fields.get('text')}"}]})
        return web.json_response({**answer, "replayed": replayed})

    async def health(self, _request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})


class StandInServer:
    """The stand-in on its own thread and loop (the test's thread drives processes)."""

    def __init__(self, secret: str) -> None:
        self.assistant = AssistantStandIn(secret)
        self.port = free_port()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def start(self) -> "StandInServer":
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self._serve(), self.loop).result(timeout=10)
        return self

    async def _serve(self) -> None:
        app = web.Application()
        app.router.add_post("/webhooks/whatsapp/turn", self.assistant.turn)
        app.router.add_get("/webhooks/whatsapp/", self.assistant.health)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(timeout=10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


class Processes:
    def __init__(self, workdir: Path, env: dict) -> None:
        self.workdir, self.env = workdir, env
        self.running: Dict[str, subprocess.Popen] = {}
        self.ports: Dict[str, int] = {}

    def start(self, name: str, command: List[str], ready_path: str, **extra_env: str) -> None:
        port = self.ports.setdefault(name, free_port())
        command = [arg.replace("{port}", str(port)) for arg in command]
        env = {**self.env, **extra_env}
        with (self.workdir / f"{name}.log").open("a") as log:
            self.running[name] = subprocess.Popen(command, cwd=PROJECT_ROOT, env=env, stdout=log,
                                                  stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while True:
            if self.running[name].poll() is not None:
                raise RuntimeError(f"{name} exited:\n{self.log(name)[-3000:]}")
            try:
                with urllib.request.urlopen(self.url(name) + ready_path, timeout=2) as reply:
                    if reply.status == 200:
                        return
            except OSError:
                pass
            assert time.monotonic() < deadline, f"{name} did not start:\n{self.log(name)[-3000:]}"
            time.sleep(0.2)

    def gateway(self, name: str, role: str, rasa_url: str, *extra: str) -> None:
        self.start(name, [sys.executable, "-m", "gateway", "--role", role, "--host", "127.0.0.1",
                          "--port", "{port}", "--rasa-url", rasa_url, *extra],
                   "/healthz", WHATSAPP_JOURNAL_DIR=str(self.workdir / f"journal-{name}"))

    def kill(self, name: str) -> None:
        process = self.running.pop(name)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)  # reaped: its pid is gone

    def stop(self) -> None:
        for process in self.running.values():
            process.terminate()
        for process in self.running.values():
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}"

    def log(self, name: str) -> str:
        path = self.workdir / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def call(self, name: str, path: str, data=None) -> dict:
        request = urllib.request.Request(self.url(name) + path, method="POST" if data is not None else "GET",
                                         data=None if data is None else json.dumps(data).encode(),
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=60) as reply:
            return json.loads(reply.read() or b"null")




@pytest.fixture
def cluster(postgres_url, redis_server, tmp_path):
    internal_secret = secrets.token_hex(32)
    env = {
        **os.environ,
        "WHATSAPP_VERIFY_TOKEN": secrets.token_urlsafe(16),
        "WHATSAPP_APP_SECRET": secrets.token_hex(32),
        "WHATSAPP_INTERNAL_SECRET": internal_secret,
        "WHATSAPP_ACCESS_TOKEN": "TEST" + secrets.token_urlsafe(32),
        "WHATSAPP_PHONE_NUMBER_ID": "100000000000001",
        "WHATSAPP_API_VERSION": "v23.0",
        "CLINIC_PSEUDONYM_KEY": secrets.token_hex(16),
        "CLINIC_ENCRYPTION_KEY": Fernet.generate_key().decode(),
        "SQLALCHEMY_SILENCE_UBER_WARNING": "1",
        "PYTHONWARNINGS": "ignore::DeprecationWarning",
        "REDIS_URL": redis_server.url(3),
        "WHATSAPP_SEND_RATE": str(LIMIT),
        "WHATSAPP_INBOX_SWEEP_SECONDS": "0.3",
        "WHATSAPP_OUTBOX_SWEEP_SECONDS": "0.5",
        "WHATSAPP_UNCONFIRMED_GRACE_SECONDS": "3",
        "WHATSAPP_INBOX_LEASE_SECONDS": "6",
        "WHATSAPP_INBOUND_RETRY_SECONDS": "0.2",
    }
    standin = StandInServer(internal_secret).start()
    with fresh_database(postgres_url, "replicas") as database:
        env["CLINIC_DATABASE_URL"] = database
        processes = Processes(tmp_path, env)
        processes.ports["simulator"] = free_port()
        processes.ports["door"] = free_port()
        env["WHATSAPP_API_BASE_URL"] = processes.url("simulator")
        try:
            # Each brings the database to the current schema (serialised: an advisory lock).
            processes.gateway("relay-a", "relay", standin.url)
            processes.gateway("relay-b", "relay", standin.url)
            processes.gateway("door", "door", standin.url, "--relay-url", processes.url("relay-a"))
            processes.start("simulator", [sys.executable, "-m", "simulator", "--host", "127.0.0.1",
                                          "--port", "{port}", "--webhook-url",
                                          processes.url("door") + "/webhooks/whatsapp/webhook",
                                          "--throughput", str(LIMIT), "--auto-read", "0.5",
                                          "--delivered-delay", "0.05"], "/healthz")
            yield processes, standin
        finally:
            processes.stop()
            standin.stop()


def test_a_burst_through_two_relays_one_killed_is_answered_once_in_order_within_the_limit(cluster):
    processes, standin = cluster
    started = time.monotonic()
    patients = [f"1555777{n:04d}" for n in range(PATIENTS)]

    def write(n: int, wa_id: str) -> None:
        for m in range(MESSAGES_EACH):  # one after the other: the order the patient wrote
            processes.call("simulator", f"/_sim/users/{wa_id}/messages", {"text": f"p{n:02d} m{m:02d}"})

    def answers() -> List[dict]:
        return [m for m in processes.call("simulator", "/_sim/messages")["messages"]
                if (m.get("payload") or {}).get("type") == "text" and m.get("status") != "rejected"]

    with concurrent.futures.ThreadPoolExecutor(max_workers=PATIENTS) as pool:
        writing = [pool.submit(write, n, wa_id) for n, wa_id in enumerate(patients)]
        # Kill one relay while both work: some replies out, most still to come.
        deadline = time.monotonic() + 60
        while len(answers()) < 40:
            assert time.monotonic() < deadline, "no answers before the kill"
            time.sleep(0.05)
        sent_by_a = processes.call("relay-a", "/webhooks/whatsapp/metrics")["counters"].get("outbound_sent", 0)
        processes.kill("relay-a")
        killed_at = len(answers())
        for future in writing:
            future.result(timeout=60)
    processes.gateway("relay-a", "relay", standin.url)  # started again, same name and port

    total = PATIENTS * MESSAGES_EACH
    deadline = time.monotonic() + 60
    while len(answers()) < total:
        assert time.monotonic() < deadline, f"{len(answers())} of {total} answered"
        time.sleep(0.2)
    time.sleep(2.0)  # anything sent twice would arrive now
    everything = processes.call("simulator", "/_sim/messages")["messages"]
    got = answers()

    # Exactly once, each patient's answers in the order they wrote.
    for n, wa_id in enumerate(patients):
        texts = [m["payload"]["text"]["body"] for m in got if m["wa_id"] == wa_id]
        assert texts == [f"re: p{n:02d} m{m:02d}" for m in range(MESSAGES_EACH)], (wa_id, texts)
    assert len(standin.assistant.turns) == total
    # The number's limit, held by both relays together.
    refused = [m for m in everything if m.get("status") == "rejected"]
    assert refused == [], refused[:3]
    assert busiest_second([m["created_at"] for m in everything]) <= LIMIT
    sent_by_b = processes.call("relay-b", "/webhooks/whatsapp/metrics")["counters"].get("outbound_sent", 0)
    assert sent_by_a > 0 and sent_by_b > 0, (sent_by_a, sent_by_b)  # both relays sent
    retried = sum(1 for count in standin.assistant.turns.values() if count > 1)
    print(f"{total} answered once in {time.monotonic() - started:.1f} s; relay-a killed after {killed_at} "
          f"answers ({sent_by_a} its own); {retried} turn(s) asked again; "
          f"busiest second {busiest_second([m['created_at'] for m in everything])}/{LIMIT}")

    # The outbox's queue (staff replies, reminders, broadcasts) drained by both relays at
    # once: more than the limit's worth at a time, so each relay alone would go over it.
    engine = make_engine(processes.env["CLINIC_DATABASE_URL"])
    store = WhatsAppStore(make_session_factory(engine))
    key = processes.env["CLINIC_PSEUDONYM_KEY"].encode()
    queued_at = time.time()
    for m in range(QUEUED_EACH):
        for wa_id in patients:
            kind, payload, _ = prepare(Text(f"note {m} for {wa_id}"), "text")
            store.enqueue(contact_key(wa_id, "whatsapp", key), kind, payload, PRIORITY_STAFF_REPLY)
    deadline = time.monotonic() + 60
    while {row.state for row in store.outbound()} - {"sent"}:
        assert time.monotonic() < deadline, store.outbound_counts()
        time.sleep(0.2)
    time.sleep(1.0)
    everything = processes.call("simulator", "/_sim/messages")["messages"]
    notes = [m for m in everything if m["created_at"] >= queued_at and m.get("status") != "rejected"
             and "note" in json.dumps(m.get("payload"))]
    for wa_id in patients:
        texts = [m["payload"]["text"]["body"] for m in notes if m["wa_id"] == wa_id]
        assert texts == [f"note {m} for {wa_id}" for m in range(QUEUED_EACH)], texts  # once each, in order
    assert [m for m in everything if m.get("status") == "rejected"] == []
    moments = [m["created_at"] for m in everything if m["created_at"] >= queued_at]
    assert busiest_second(moments) <= LIMIT
    counters = [processes.call(name, "/webhooks/whatsapp/metrics")["counters"] for name in ("relay-a", "relay-b")]
    engine.dispose()
    print(f"{len(notes)} queued notes in {max(moments) - min(moments):.1f} s, busiest second "
          f"{busiest_second(moments)}/{LIMIT}; sent per relay since its start: "
          f"{[c.get('outbound_sent', 0) for c in counters]}")
    assert all(c.get("outbound_sent", 0) > 0 for c in counters)
