"""Poison input through the WhatsApp gateway (issue 13, items 1, 3, 4 and 5), real HTTP all
the way: the simulator (Meta's Graph API and webhooks) → the gateway (gateway/server.py,
its journal, inbox and processor on a real SQLite database) → a stand-in for
Rasa's ``/webhooks/whatsapp/turn`` that fails on one message every time (as Rasa did with
spaCy's E088 on a 2.9 MB text) and answers every other one.

What must hold: the failing message gets a bounded number of attempts, then it is a dead
letter in the quarantine with a ticket, and the patient's next message is answered; a lone
surrogate, absurd timestamps and a 5,000-character message id in signed webhooks are
answered too; nested JSON gets a 400; the gateway restarts cleanly; no text in the logs."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Dict, List

import pytest
from aiohttp import web
from sqlalchemy import select

from clinic.inbox.tables import TicketRow
from clinic.messaging.store import InboxRow
from gateway.door import Door
from gateway.server import PATH, Ingress
from gateway.settings import WhatsAppSettings
from simulator.testing import (
    TEST_ACCESS_TOKEN,
    TEST_APP_SECRET,
    TEST_VERIFY_TOKEN,
    running_simulator,
)
from tests.connector_support import ENCRYPTION_KEY
from whatsapp import signature

pytestmark = pytest.mark.servers
POISON = "poison: the assistant fails on this one"
MAX_ATTEMPTS = 3
INTERNAL_SECRET = "test-internal-secret"  # the gateway's turn calls (never the app secret)


class AssistantStandIn:
    """``POST /webhooks/whatsapp/turn`` as Rasa answers it: the replies, or HTTP 500 for a
    message it fails on. Counts the turns it was asked for, per wamid."""

    def __init__(self) -> None:
        self.turns: Dict[str, int] = {}

    async def turn(self, request: web.Request) -> web.Response:
        body = await request.read()
        if not signature.verify(body, request.headers.get(signature.HEADER), INTERNAL_SECRET):
            return web.json_response({"error": "invalid signature"}, status=403)
        fields = json.loads(body)
        self.turns[fields["wamid"]] = self.turns.get(fields["wamid"], 0) + 1
        if POISON in (fields.get("text") or ""):
            return web.json_response({"error": "E088"}, status=500)
        return web.json_response({"messages": [{"text": f"Answer {len(self.turns)}"}]})


async def serve(app: web.Application) -> tuple:
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, f"http://127.0.0.1:{runner.addresses[0][1]}"


async def serve_assistant() -> tuple:
    """The stand-in for Rasa's turn endpoint on a free port: (stand-in, runner, URL)."""
    assistant = AssistantStandIn()
    app = web.Application()
    app.router.add_post("/webhooks/whatsapp/turn", assistant.turn)
    runner, url = await serve(app)
    return assistant, runner, url


class Gateway:
    def __init__(self, sim, rasa_url: str, database: str) -> None:
        self.sim, self.rasa_url, self.database = sim, rasa_url, database
        self.channel: Door = None  # type: ignore[assignment]
        self.runner: web.AppRunner = None  # type: ignore[assignment]
        self.url = ""

    async def start(self) -> "Gateway":
        settings = WhatsAppSettings(
            verify_token=TEST_VERIFY_TOKEN, app_secret=TEST_APP_SECRET, internal_secret=INTERNAL_SECRET,
            access_token=TEST_ACCESS_TOKEN,
            phone_number_id=self.sim.config.phone_number_id, api_base_url=self.sim.url,
            send_rate_per_second=1000.0, inbox_sweep_seconds=0.2,
            inbound_max_attempts=MAX_ATTEMPTS, inbound_retry_seconds=0.05)
        self.channel = Door(settings, database_url=self.database, door="ingress")  # no Rasa in the gateway
        self.runner, self.url = await serve(Ingress(self.channel, self.rasa_url).app())
        self.sim.simulator.config.webhook_url = self.url + PATH
        return self

    async def stop(self) -> None:
        await self.runner.cleanup()
        self.channel.journal.close()  # the process is gone: so is its journal's lock

    async def post(self, body: bytes) -> int:
        headers = {signature.HEADER: signature.sign(body, TEST_APP_SECRET), "Content-Type": "application/json"}
        async with self.sim.session.post(self.url + PATH, data=body, headers=headers) as response:
            return response.status

    def inbox(self) -> List[InboxRow]:
        with self.channel.store._sessions() as session:
            return list(session.scalars(select(InboxRow).order_by(InboxRow.id)))

    def tickets(self) -> List[TicketRow]:
        with self.channel.store._sessions() as session:
            return list(session.scalars(select(TicketRow)))

    async def metrics(self) -> dict:
        async with self.sim.session.get(self.url + "/webhooks/whatsapp/metrics") as response:
            return await response.json()


async def replies(sim, wa_id: str, count: int, timeout: float = 15.0) -> List[dict]:
    deadline = time.monotonic() + timeout
    while True:
        _, data = await sim.get("/_sim/messages", to=wa_id)
        found = [m for m in data["messages"] if not m.get("error")]
        if len(found) >= count or time.monotonic() > deadline:
            return found
        await asyncio.sleep(0.1)


async def until(condition, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


def raw_text_message(wa_id: str, wamid: str, body_json: str, timestamp: str = "1763800000") -> dict:
    return {"from": wa_id, "id": wamid, "timestamp": timestamp, "type": "text", "text": {"body": body_json}}


def envelope_text(sim, wa_id: str, messages_json: List[str]) -> str:
    """A webhook body written by hand, so a JSON escape such as \\ud800 reaches the gateway
    exactly as Meta would send it."""
    return ('{"object":"whatsapp_business_account","entry":[{"id":"0","changes":[{"field":"messages","value":'
            '{"messaging_product":"whatsapp","metadata":{"display_phone_number":"15550000000","phone_number_id":"'
            + sim.config.phone_number_id + '"},"contacts":[{"profile":{"name":"P"},"wa_id":"' + wa_id + '"}],'
            '"messages":[' + ",".join(messages_json) + "]}}]}]}")


@pytest.mark.asyncio
async def test_poison_input_through_the_gateway_loses_nothing_and_logs_no_text(tmp_path, monkeypatch, caplog):
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("CLINIC_PSEUDONYM_KEY", "test-pseudonym-key")
    monkeypatch.setenv("CLINIC_ENCRYPTION_KEY", ENCRYPTION_KEY)
    assistant, rasa_runner, rasa_url = await serve_assistant()
    database = f"sqlite:///{tmp_path / 'gateway.db'}"
    async with running_simulator() as sim:
        gateway = await Gateway(sim, rasa_url, database).start()
        try:
            # 4. A message the assistant fails on every time, and the patient's next one.
            patient = "15550101001"
            await sim.user_says(patient, POISON)
            await sim.user_says(patient, "and what are your opening hours")
            [answer] = await replies(sim, patient, 1)
            assert answer["payload"]["text"]["body"].startswith("Answer")
            await until(lambda: any(r.state == "failed" for r in gateway.inbox()))
            [failed] = [r for r in gateway.inbox() if r.state == "failed"]
            assert assistant.turns[failed.wamid] == MAX_ATTEMPTS and failed.attempts == MAX_ATTEMPTS
            await until(lambda: gateway.channel.quarantine.items())
            [item] = gateway.channel.quarantine.items()
            assert (item.source, item.reason, item.inbox_id, item.attempts) == (
                "inbox", "attempts_exhausted", failed.id, MAX_ATTEMPTS)
            await until(lambda: gateway.tickets())
            [ticket] = gateway.tickets()
            assert (ticket.conversation_id, ticket.reason, ticket.team) == (
                failed.conversation_id, "message_failed", "reception")

            # 1, 3 and 5 in signed webhooks: a lone surrogate, absurd timestamps, a
            # 5,000-character id; all answered.
            other = "15550101002"
            await sim.user_says(other, "hello")
            await replies(sim, other, 1)
            long_id = "wamid." + "L" * 5000
            body = envelope_text(sim, other, [
                json.dumps(raw_text_message(other, "wamid.SURROGATE1", "x")).replace('"x"', '"hi \\ud800 there"'),
                json.dumps(raw_text_message(other, "wamid.OVERFLOW1", "overflowing clock",
                                            timestamp="100000000000000000000")),
                json.dumps(raw_text_message(other, "wamid.MILLIS1", "millisecond clock", timestamp="1000000000000")),
                json.dumps(raw_text_message(other, long_id, "a very long id")),
            ])
            result = await sim.post("/_sim/webhooks/raw", {"body": body})
            assert result[1]["webhook"]["attempts"][-1]["status"] == 200
            assert len(await replies(sim, other, 5)) == 5  # hello + the four
            await until(lambda: all(r.state in ("done", "failed") for r in gateway.inbox()))
            assert [r.state for r in gateway.inbox()].count("done") == 6
            # 5. Nested JSON: refused, not a crash.
            assert await gateway.post(b'{"entry":' + b"[" * 50_000 + b"]" * 50_000 + b"}") == 400
            metrics = await gateway.metrics()
            assert metrics["quarantine"]["by_state"] == {"open": 1}
            for counter in ("inbound_dead_lettered", "inbound_id_too_long", "mark_read_skipped",
                            "webhook_too_deep"):
                assert metrics["counters"].get(counter, 0) >= 1, counter
            assert metrics["counters"]["inbound_timestamp_replaced"] == 2
        finally:
            await gateway.stop()

        # A clean restart: the dead letter stays a dead letter, new messages are answered.
        gateway = await Gateway(sim, rasa_url, database).start()
        try:
            await sim.user_says(patient, "are you open on Saturday")
            assert len(await replies(sim, patient, 2)) == 2
            await asyncio.sleep(0.3)
            assert assistant.turns[failed.wamid] == MAX_ATTEMPTS  # not tried again
        finally:
            await gateway.stop()
    await rasa_runner.cleanup()
    logged = "\n".join(f"{r.getMessage()} {r.exc_text or ''}" for r in caplog.records)
    for words in ("poison", "opening hours", "hi \ud800", "hi \ufffd", "overflowing", "millisecond",
                  "very long id", "Saturday", patient, other):
        assert words not in logged
