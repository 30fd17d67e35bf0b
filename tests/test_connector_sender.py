"""Sending: 24-hour window, durable record, dead letters, Rasa responses → WhatsApp shapes.

A small Graph API stand-in runs on 127.0.0.1 (real HTTP) and answers as scripted.
"""

import datetime as dt
import json

import pytest
import pytest_asyncio
from aiohttp import web

from clinic.db import create_schema, make_engine, make_session_factory
from clinic.privacy import ContactCipher
from connectors.whatsapp.output import WhatsAppOutput
from tests.connector_support import ENCRYPTION_KEY
from whatsapp.client import GraphClient
from whatsapp.metrics import Metrics
from whatsapp.outbound import Template, Text
from whatsapp.sender import Sender
from whatsapp.store import WhatsAppStore

PATIENT = "16505551234"
NOW = dt.datetime(2026, 11, 22, 12, 0, tzinfo=dt.timezone.utc)


class GraphStandIn:
    def __init__(self):
        self.received: list[dict] = []
        self.script: list[tuple[int, dict]] = []  # responses to give, in order; then success

    async def messages(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.received.append(body)
        if body.get("status") == "read":
            return web.json_response({"success": True})
        if self.script:
            status, payload = self.script.pop(0)
            return web.json_response(payload, status=status)
        return web.json_response({"messaging_product": "whatsapp",
                                  "contacts": [{"input": body["to"], "wa_id": body["to"]}],
                                  "messages": [{"id": f"wamid.OUT{len(self.received)}"}]})


@pytest_asyncio.fixture
async def graph():
    stand_in = GraphStandIn()
    app = web.Application()
    app.router.add_post("/v23.0/{phone}/messages", stand_in.messages)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    stand_in.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"
    yield stand_in
    await runner.cleanup()


@pytest_asyncio.fixture
async def sender(graph, tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'out.db'}")
    create_schema(engine)
    store = WhatsAppStore(make_session_factory(engine))
    cipher = ContactCipher(ENCRYPTION_KEY.encode())
    client = GraphClient(graph.url, "v23.0", "123", "token", rate_per_second=None,
                         base_delay=0.001, max_delay=0.01)
    metrics = Metrics()
    sender = Sender(client, store, cipher, metrics, clock=lambda: NOW)
    sender.store, sender.metrics = store, metrics
    yield sender
    await client.close()


def add_contact(sender, conversation="c1", last_inbound=NOW - dt.timedelta(hours=1)):
    encrypted = sender._cipher.encrypt(PATIENT)
    sender.store.accept([], {conversation: (encrypted, last_inbound)})


@pytest.mark.asyncio
async def test_sent_message_is_recorded_without_the_address(sender, graph):
    add_contact(sender)
    outcome = await sender.send("c1", Text("Hello"), "text")
    assert outcome.state == "sent" and outcome.wamid == "wamid.OUT1"
    assert graph.received[0]["to"] == PATIENT and graph.received[0]["text"]["body"] == "Hello"
    [row] = sender.store.outbound("c1")
    assert (row.state, row.wamid, row.payload_json) == ("sent", "wamid.OUT1", None)


@pytest.mark.asyncio
async def test_outside_the_window_only_templates_go_out(sender, graph):
    add_contact(sender, last_inbound=NOW - dt.timedelta(hours=24, seconds=1))
    refused = await sender.send("c1", Text("Hello"), "text")
    sent = await sender.send("c1", Template("appointment_reminder", body_params=("a", "b", "c")), "template")
    assert refused.state == "refused" and refused.detail == "outside_window"
    assert sent.state == "sent"
    assert [m["type"] for m in graph.received] == ["template"]  # the text never reached Meta
    refused_row = sender.store.outbound("c1")[0]
    assert refused_row.state == "refused" and "outside_window" in refused_row.error_detail
    assert json.loads(refused_row.payload_json)["text"]["body"] == "Hello"  # kept, not lost
    assert PATIENT not in refused_row.payload_json
    assert sender.metrics.snapshot()["outbound_refused_outside_window"] == 1


@pytest.mark.asyncio
async def test_permanent_error_becomes_a_dead_letter(sender, graph):
    add_contact(sender)
    graph.script = [(400, {"error": {"message": "(#131026) Message undeliverable", "code": 131026,
                                      "error_data": {"details": "Receiver is incapable"}}})]
    outcome = await sender.send("c1", Text("Hello"), "text")
    assert outcome.state == "dead" and outcome.code == 131026
    [row] = sender.store.outbound("c1")
    assert (row.state, row.error_code, row.attempts) == ("dead", 131026, 1)
    assert "incapable" in row.error_detail and json.loads(row.payload_json)["type"] == "text"


@pytest.mark.asyncio
async def test_transient_errors_are_retried(sender, graph):
    add_contact(sender)
    busy = {"error": {"message": "(#130429) Rate limit hit", "code": 130429}}
    graph.script = [(429, busy), (500, {"error": {"code": 131000, "message": "x"}})]
    outcome = await sender.send("c1", Text("Hello"), "text")
    assert outcome.state == "sent" and len(graph.received) == 3
    assert sender.store.outbound("c1")[0].attempts == 3


@pytest.mark.asyncio
async def test_unknown_conversation_is_refused_not_dropped(sender, graph):
    outcome = await sender.send("nobody", Text("Hello"), "text")
    assert outcome.state == "refused" and graph.received == []
    assert sender.store.outbound("nobody")[0].state == "refused"


@pytest.mark.asyncio
async def test_rasa_buttons_become_reply_buttons_or_a_list(sender, graph):
    add_contact(sender)
    output = WhatsAppOutput(sender)
    three = [{"title": "Book appointment", "payload": "/book_appointment"},
             {"title": "Insurance & billing", "payload": "/insurance_billing"},
             {"title": "Talk to a nurse", "payload": '/request_human{"team": "nurse"}'}]
    await output.send_text_with_buttons("c1", "How can I help?", three)
    four = three + [{"title": "A title that is far too long for a button", "payload": "/menu"}]
    await output.send_text_with_buttons("c1", "More?", four)
    buttons, listing = (m["interactive"] for m in graph.received)
    assert buttons["type"] == "button"
    assert [b["reply"]["id"] for b in buttons["action"]["buttons"]] == [b["payload"] for b in three]
    assert listing["type"] == "list"
    rows = listing["action"]["sections"][0]["rows"]
    assert len(rows) == 4 and all(len(r["title"]) <= 24 for r in rows)


@pytest.mark.asyncio
async def test_long_text_is_split_and_long_bodies_go_before_the_buttons(sender, graph):
    add_contact(sender)
    output = WhatsAppOutput(sender)
    sentence = "This sentence is part of a very long answer. "
    await output.send_text_message("c1", sentence * 200)  # ~9,000 characters
    texts = [m["text"]["body"] for m in graph.received]
    assert len(texts) == 3 and all(len(t) <= 4096 for t in texts)
    assert all(t.endswith(".") for t in texts[:-1])  # cut at sentence boundaries
    graph.received.clear()
    await output.send_text_with_buttons("c1", sentence * 30, [{"title": "OK", "payload": "/affirm"}])
    assert [m["type"] for m in graph.received] == ["text", "interactive"]


@pytest.mark.asyncio
async def test_custom_whatsapp_payloads(sender, graph):
    add_contact(sender)
    output = WhatsAppOutput(sender)
    await output.send_custom_json("c1", {"whatsapp": {"type": "cta_url", "body": "Your portal",
                                                      "display_text": "Open portal", "url": "https://portal.example"}})
    await output.send_custom_json("c1", {"whatsapp": {"type": "location_request", "body": "Where are you?"}})
    await output.send_custom_json("c1", {"whatsapp": {"type": "cta_url", "body": "x", "display_text": "y" * 30, "url": "https://a"}})
    await output.send_custom_json("c1", {"something": "else"})
    kinds = [m["interactive"]["type"] for m in graph.received]
    assert kinds == ["cta_url", "location_request_message"]  # invalid shapes never reach Meta


@pytest.mark.asyncio
async def test_a_status_arriving_before_the_send_is_recorded_is_kept(sender, graph):
    add_contact(sender)
    # Meta's "sent" webhook can beat the sender's own bookkeeping: record it first.
    assert sender.store.record_status("wamid.OUT1", "delivered", NOW, None, None)
    outcome = await sender.send("c1", Text("Hello"), "text")
    assert outcome.wamid == "wamid.OUT1"
    assert sender.store.outbound("c1")[0].state == "sent"
    assert sender.store.status_of("wamid.OUT1").status == "delivered"
    assert not sender.store.record_status("wamid.OUT1", "sent", NOW, None, None)  # stale
