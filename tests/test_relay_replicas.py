"""The relay spreads turns over several Rasa replicas and fails over at once (issue 16;
gateway/replicas.py, gateway/relay.py).

The choice (``Replicas``) on a fake clock: fewest in flight, round robin among ties, a
replica that failed skipped for a while (longer after each failure in a row), then probed.
The relay over real HTTP: stand-ins for Rasa's ``/webhooks/whatsapp/turn`` on real ports,
a "dead" replica being a port nobody listens on (connection refused, as after SIGKILL) or a
replica that drops the connection mid-turn; the relay's back-off sleep is watched, so
"at once" means it never slept.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from typing import Dict, List

import pytest
from aiohttp import web

from benchmarks.stack import free_port
from clinic.messaging.turn import InboundTurn
from gateway import relay as relay_module
from gateway.relay import Relay
from gateway.replicas import Replicas
from gateway.settings import GatewayAddress, WhatsAppConfigError, rasa_urls
from whatsapp import signature
from whatsapp.metrics import Metrics

SECRET = "test-internal-secret"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# ── the choice ─────────────────────────────────────────────────────────────────────────────
def test_turns_go_round_robin_and_to_the_least_busy_replica():
    replicas = Replicas(["http://a", "http://b", "http://c"], clock=Clock())
    assert [replicas.choose().index for _ in range(6)] == [0, 1, 2, 0, 1, 2]  # nothing in flight: in turn
    a, b, c = replicas.replicas
    replicas.started(a), replicas.started(a), replicas.started(b)
    assert replicas.choose() is c  # the idle one
    replicas.started(c)
    assert replicas.choose() is b  # b and c have one each; a two: b (next in turn after c)
    assert replicas.choose(tried={1}) is c  # already tried for this turn: the next


def test_a_failed_replica_is_skipped_for_a_while_then_probed_and_back_when_it_answers():
    clock = Clock()
    replicas = Replicas(["http://a", "http://b"], down_seconds=2.0, max_down_seconds=5.0, clock=clock)
    a, b = replicas.replicas
    replicas.started(a)
    assert replicas.failed(a) == 2.0
    assert [replicas.choose().index for _ in range(4)] == [1, 1, 1, 1]  # a is down
    assert replicas.choose(tried={1}) is None  # b tried, a down: no up one left
    assert replicas.soonest_back(tried={1}) is a  # then the down one, before backing off
    assert replicas.soonest_back(tried={0, 1}) is None  # every one tried: back off
    clock.now += 0.5
    replicas.started(b)
    replicas.failed(b)
    assert replicas.choose() is None  # both down
    assert replicas.soonest_back() is a  # back soonest: the relay tries it first
    replicas.started(b)
    replicas.answered(b)
    clock.now += 2.0
    assert replicas.choose(tried={1}) is a  # its time is up: the next turn probes it
    replicas.started(a)
    assert replicas.failed(a) == 4.0  # failed again: down twice as long
    replicas.started(a)
    assert replicas.failed(a) == 5.0  # capped
    clock.now += 5.0
    replicas.started(a)
    replicas.answered(a)  # answered: up at once, its count of failures reset
    assert (a.failures_in_a_row, a.is_down(clock.now), a.in_flight) == (0, False, 0)
    replicas.started(a)
    assert replicas.failed(a) == 2.0


def test_rasa_urls_setting():
    assert GatewayAddress.load({}).rasa_urls == ("http://127.0.0.1:5005",)
    assert GatewayAddress.load({"RASA_URL": "http://rasa:5005/"}).rasa_url == "http://rasa:5005"
    both = GatewayAddress.load({"RASA_URL": "http://old:5005",
                                "RASA_URLS": "http://a:5005, http://b:5005/,http://a:5005"})
    assert both.rasa_urls == ("http://a:5005", "http://b:5005")  # RASA_URLS wins; once each
    with pytest.raises(WhatsAppConfigError, match="RASA_URLS"):
        GatewayAddress.load({"RASA_URLS": "http://a:5005,rasa-b:5005"})
    with pytest.raises(WhatsAppConfigError, match="no Rasa URL"):
        rasa_urls(" , ")


# ── the relay over real HTTP ───────────────────────────────────────────────────────────────
class ReplicaStandIn:
    """One Rasa replica's turn endpoint. ``answered`` is shared by every stand-in, as Rasa's
    replicas share the tracker store: a retried turn (attempts > 1) another replica already
    answered gets those replies back (``replayed``), as connectors/whatsapp/channel.py does."""

    def __init__(self, name: str, answered: Dict[str, dict], drop_first: int = 0, delay: float = 0.0) -> None:
        self.name, self.answered, self.drop_first, self.delay = name, answered, drop_first, delay
        self.seen: List[dict] = []
        self.in_flight = self.most_in_flight = 0

    async def turn(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        assert signature.verify(body, request.headers.get(signature.HEADER), SECRET)
        fields = json.loads(body)
        self.seen.append(fields)
        if fields["attempts"] > 1 and fields["wamid"] in self.answered:
            return web.json_response({**self.answered[fields["wamid"]], "replayed": True})
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            await asyncio.sleep(self.delay)
        finally:
            self.in_flight -= 1
        answer = {"messages": [{"text": f"{self.name}: {fields['text']}"}]}
        self.answered[fields["wamid"]] = answer
        if self.drop_first > 0:  # took it in, then died before answering
            self.drop_first -= 1
            assert request.transport is not None
            request.transport.close()
            return web.Response()
        return web.json_response(answer)


async def serve(stand_in: ReplicaStandIn, port: int = 0) -> tuple:
    app = web.Application()
    app.router.add_post(relay_module.TURN_PATH, stand_in.turn)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner, f"http://127.0.0.1:{runner.addresses[0][1]}"


def turn(n: int, attempts: int = 1) -> InboundTurn:
    return InboundTurn(wamid=f"wamid.{n}", conversation_id=f"conv-{n % 7}", kind="text", text=f"message {n}",
                       received_at=dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc), attempts=attempts)


@pytest.fixture
def slept(monkeypatch) -> List[float]:
    """The relay's back-off sleeps (none: it failed over at once)."""
    sleeps: List[float] = []

    async def back_off(seconds: float) -> None:
        sleeps.append(seconds)
        await asyncio.sleep(0)

    monkeypatch.setattr(relay_module, "back_off", back_off)
    return sleeps


def make_relay(urls: List[str], clock: Clock, metrics: Metrics) -> Relay:
    return Relay(urls, SECRET, metrics, lambda _conversation: False,
                 replicas=Replicas(urls, down_seconds=2.0, clock=clock))


@pytest.mark.asyncio
async def test_turns_are_spread_over_the_replicas():
    answered: Dict[str, dict] = {}
    stand_ins = [ReplicaStandIn(name, answered, delay=0.05) for name in ("a", "b")]
    served = [await serve(s) for s in stand_ins]
    relay = make_relay([url for _, url in served], Clock(), Metrics())
    relay.start()
    try:
        replies = await asyncio.gather(*(relay.turn(turn(n)) for n in range(40)))
    finally:
        await relay.close()
        for runner, _ in served:
            await runner.cleanup()
    assert all(len(r.messages) == 1 for r in replies)
    assert sorted(len(s.seen) for s in stand_ins) == [20, 20]  # an even share each
    assert all(s.most_in_flight > 1 for s in stand_ins)  # at the same time, not one after the other
    assert all(r.in_flight == 0 for r in relay.replicas.replicas)


@pytest.mark.asyncio
async def test_a_dead_replica_gets_the_turn_sent_to_another_at_once_then_no_more_turns(slept):
    answered: Dict[str, dict] = {}
    live = ReplicaStandIn("live", answered)
    runner, live_url = await serve(live)
    dead_port = free_port()  # nobody listens: connection refused, as after a SIGKILL
    clock, metrics = Clock(), Metrics()
    relay = make_relay([f"http://127.0.0.1:{dead_port}", live_url], clock, metrics)
    relay.start()
    try:
        first = await relay.turn(turn(0))
        assert first.messages[0]["text"] == "live: message 0"
        assert slept == []  # no back-off: straight to the live replica
        assert live.seen[0]["attempts"] == 2  # said as a retry: the dead one may have taken it in
        for n in range(1, 6):
            await relay.turn(turn(n))
        # Down for a while: the next turns went straight to the live replica, as first tries.
        assert [fields["attempts"] for fields in live.seen[1:]] == [1] * 5
        counters = metrics.snapshot()
        assert (counters["rasa_replica0_down"], counters["rasa_replica1_turns"]) == (1, 6)

        # Back: the first turn after its down time probes it, and it takes turns again.
        revived = ReplicaStandIn("revived", answered)
        revived_runner, _ = await serve(revived, dead_port)
        try:
            clock.now += 2.0
            for n in range(6, 10):
                await relay.turn(turn(n))
            assert len(revived.seen) == 2 and len(live.seen) == 8  # shared again, in turn
        finally:
            await revived_runner.cleanup()
    finally:
        await relay.close()
        await runner.cleanup()


@pytest.mark.asyncio
async def test_a_replica_that_dies_mid_turn_the_retry_on_another_is_answered_with_the_replies_it_gave(slept):
    answered: Dict[str, dict] = {}
    dying = ReplicaStandIn("dying", answered, drop_first=1)  # processes turn 0, then drops the connection
    other = ReplicaStandIn("other", answered)
    served = [await serve(dying), await serve(other)]
    relay = make_relay([url for _, url in served], Clock(), Metrics())
    relay.start()
    try:
        reply = await relay.turn(turn(0))
    finally:
        await relay.close()
        for runner, _ in served:
            await runner.cleanup()
    assert slept == []
    # The other replica was asked as a retry and replayed what the dying one had answered.
    assert [f["attempts"] for f in other.seen] == [2]
    assert reply.replayed and reply.messages[0]["text"] == "dying: message 0"


@pytest.mark.asyncio
async def test_every_replica_down_the_relay_backs_off_and_the_turn_waits_for_one(slept):
    clock = Clock()
    dead = [free_port(), free_port()]
    relay = make_relay([f"http://127.0.0.1:{port}" for port in dead], clock, Metrics())
    relay.start()
    answered: Dict[str, dict] = {}
    back = ReplicaStandIn("back", answered)
    started: List[tuple] = []

    async def restart_after_two_rounds() -> None:
        while len(slept) < 2:
            await asyncio.sleep(0)
        clock.now += 60  # their down time is over
        started.append(await serve(back, dead[1]))

    try:
        helper = asyncio.ensure_future(restart_after_two_rounds())
        reply = await asyncio.wait_for(relay.turn(turn(0)), 30)
        await helper
    finally:
        await relay.close()
        for runner, _ in started:
            await runner.cleanup()
    assert reply.messages[0]["text"] == "back: message 0"
    # Backed off between rounds, longer each time (0.5 s, then 1 s, ± half).
    assert len(slept) >= 2 and 0.25 <= slept[0] <= 0.75 and 0.5 <= slept[1] <= 1.5
