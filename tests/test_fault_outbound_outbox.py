"""The outbox without Rasa (fast): a local Graph API stand-in over real HTTP, a real SQLite
store. Replies leave in the order they were recorded; a row a crash left ``sending`` is sent
again only without a status webhook naming it; a dead turn reply gets its later round, then
one follow-up, never two."""

# ruff: noqa: F811 - ``graph`` is the Graph stand-in fixture of test_connector_sender.py

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest
import pytest_asyncio

from clinic.db import create_schema, make_engine, make_session_factory
from clinic.messaging.store import WhatsAppStore, callback_data
from clinic.privacy import ContactCipher
from gateway.outbox import Outbox
from gateway.sender import DeliveryPolicy, Sender
from tests.connector_support import ENCRYPTION_KEY
from tests.test_connector_sender import PATIENT, GraphStandIn, graph  # noqa: F401 - fixture
from whatsapp.client import GraphClient
from whatsapp.metrics import Metrics
from whatsapp.outbound import Text

BUSY = (503, {"error": {"code": 131016, "message": "Service temporarily unavailable"}})


@pytest_asyncio.fixture
async def outbox(graph, tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'outbox.db'}")
    create_schema(engine)
    store = WhatsAppStore(make_session_factory(engine))
    cipher = ContactCipher(ENCRYPTION_KEY.encode())
    store.accept([], {"c1": (cipher.encrypt(PATIENT), dt.datetime.now(dt.timezone.utc))})
    client = GraphClient(graph.url, "v23.0", "123", "token", rate_per_second=None, max_attempts=1,
                         base_delay=0.001, max_delay=0.01)
    followed_up = []

    def follow_up(item):
        followed_up.append(item.id)
        return 77

    policy = DeliveryPolicy(attempts=1, unconfirmed_grace=0.3, dead_letter_retry=(0.0,), sweep_seconds=0.1)
    sender = Sender(client, store, cipher, Metrics(), policy=policy, on_final_failure=follow_up,
                    proof_poll_seconds=0.05)
    box = Outbox(sender, store, sender._metrics)
    box.store, box.followed_up = store, followed_up
    yield box
    await client.close()


def bodies(graph) -> list:
    return [m["text"]["body"] for m in graph.received if m.get("type") == "text"]


@pytest.mark.asyncio
async def test_after_a_crash_only_what_did_not_go_out_is_sent_in_order(outbox, graph):
    store = outbox.store
    ids = await outbox.sender.record_turn("c1", "wamid.IN1", [(Text(f"reply {n}"), "text") for n in (1, 2, 3)])
    # The crashed process had sent reply 1, and was sending reply 2 when it died: Meta took
    # it (a status webhook names the row). Reply 3 never started.
    store.claim(ids[0])
    store.outbound_sent(ids[0], "wamid.OUT-before-1", 1)
    store.claim(ids[1])
    store.record_statuses([("wamid.OUT-before-2", "sent", dt.datetime.now(dt.timezone.utc), None, None,
                            callback_data(ids[1]))])
    assert await outbox.resume() == 1
    await outbox.idle()
    assert bodies(graph) == ["reply 3"]  # reply 2 was proven sent: not sent again
    rows = store.outbound("c1")
    assert [(r.state, r.wamid, r.ambiguous) for r in rows] == [
        ("sent", "wamid.OUT-before-1", False), ("sent", "wamid.OUT-before-2", True), ("sent", "wamid.OUT1", False)]
    assert graph.received[0]["biz_opaque_callback_data"] == callback_data(ids[2])


@pytest.mark.asyncio
async def test_an_interrupted_send_without_proof_is_sent_again_once(outbox, graph):
    store = outbox.store
    ids = await outbox.sender.record_turn("c1", "wamid.IN2", [(Text("only reply"), "text")])
    store.claim(ids[0])  # crashed before (or while) the request went out; no status came
    await outbox.resume()
    await outbox.idle()
    assert bodies(graph) == ["only reply"]
    [row] = store.outbound("c1")
    assert (row.state, row.ambiguous) == ("sent", True)  # flagged: it may have gone out twice
    assert outbox.sender._metrics.snapshot()["outbound_ambiguous_resent"] == 1


@pytest.mark.asyncio
async def test_a_dead_turn_reply_gets_its_later_round_then_one_follow_up(outbox, graph):
    graph.script = [BUSY, BUSY, BUSY, BUSY]
    await outbox.deliver_turn("c1", "wamid.IN3", [(Text("first"), "text"), (Text("second"), "text")])
    rows = outbox.store.outbound("c1")
    assert [r.state for r in rows] == ["dead", "dead"] and all(r.retry_at for r in rows)
    assert outbox.followed_up == []  # a later round is due: nobody is bothered yet
    await outbox.sweep(dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=1))
    await outbox.idle()
    rows = outbox.store.outbound("c1")
    assert [(r.state, r.retries, r.retry_at, r.ticket_id) for r in rows] == [
        ("dead", 1, None, 77), ("dead", 1, None, 77)]
    assert sorted(outbox.followed_up) == [rows[0].id, rows[1].id]  # one each
    # Graph is back; staff retry one: it goes out, and no second ticket is opened.
    assert outbox.store.request_retry(rows[0].id)
    await outbox.sweep(dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=1))
    await outbox.idle()
    assert outbox.store.outbound("c1")[0].state == "sent" and bodies(graph)[-1] == "first"
    assert len(outbox.followed_up) == 2


@pytest.mark.asyncio
async def test_a_permanent_error_is_followed_up_at_once(outbox, graph):
    graph.script = [(400, {"error": {"code": 131026, "message": "Message undeliverable"}})]
    await outbox.deliver_turn("c1", "wamid.IN4", [(Text("hello"), "text")])
    [row] = outbox.store.outbound("c1")
    assert (row.state, row.retry_at, row.ticket_id) == ("dead", None, 77)
    item = outbox.store.outbound_item(row.id)
    assert dataclasses.asdict(item)["payload"]["text"]["body"] == "hello"  # kept for staff
