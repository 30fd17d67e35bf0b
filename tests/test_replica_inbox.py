"""Several gateway workers on one database (issue 16, item 2), without processes: two stores
(two engines, as two processes have) on a real PostgreSQL.

- The claim: a conversation's next message is taken by nobody while one of its messages is
  being processed, by any worker; the claim before leases let a second worker jump ahead.
- Two workers racing on 10 conversations take every message once, in order.
- Recovery takes back only what a dead worker held: an expired lease, or a process of this
  host that no longer exists; never a live worker's row, even one whose turn outlasts the
  lease (the heartbeat renews it).
- The outbox: a live worker's ``sending`` row stops another worker's drain (order kept, not
  resent); a dead worker's row is taken over and sent once.
- The shared rate limit: two limiters sharing one Redis hold N/s together; two in-process
  limiters (the control) do not.
"""

# ruff: noqa: F811 - ``graph`` and ``outbox`` are fixtures of the outbound tests

from __future__ import annotations

import asyncio
import datetime as dt
import random
import subprocess
import threading
import time
from typing import Optional

import pytest
from sqlalchemy import select, update

from clinic.clock import utcnow
from clinic.db import create_schema, make_engine, make_session_factory
from clinic.messaging.leases import forget_local, holder_is_dead, new_worker_id
from clinic.messaging.store import InboxRow, OutboundRow, PendingMessage, WhatsAppStore, _pending
from clinic.messaging.turn import InboundTurn
from gateway.processor import InboxProcessor
from gateway.shared_limit import RedisRateLimiter
from tests.outbox_support import busiest_second
from tests.pg_support import fresh_database
from tests.test_connector_sender import graph  # noqa: F401 - fixture
from tests.test_fault_outbound_outbox import bodies, outbox  # noqa: F401 - fixture
from whatsapp.limits import RateLimiter
from whatsapp.metrics import Metrics
from whatsapp.outbound import Text

FOREIGN = "another-host/4242/live"  # a worker on another machine: judged by its lease only


@pytest.fixture
def two_stores(postgres_url):
    with fresh_database(postgres_url, "replica") as url:
        engines = [make_engine(url), make_engine(url)]
        create_schema(engines[0])
        yield [WhatsAppStore(make_session_factory(engine)) for engine in engines]
        for engine in engines:
            engine.dispose()


def item(n: int, conversation: str) -> InboundTurn:
    return InboundTurn(wamid=f"wamid.{conversation}.{n}", conversation_id=conversation, kind="text",
                       text=f"{conversation}{n}", redacted=(),
                       received_at=dt.datetime(2026, 12, 1, tzinfo=dt.timezone.utc))


def claim_without_leases(store: WhatsAppStore, conversation_id: str) -> Optional[PendingMessage]:
    """The claim before this change (select the oldest pending, then update it): the control."""
    with store._sessions() as session, session.begin():
        row = session.scalars(select(InboxRow).where(InboxRow.conversation_id == conversation_id,
                                                     InboxRow.state == "pending").order_by(InboxRow.id).limit(1)).first()
        if row is None:
            return None
        row.state, row.attempts, row.started_at = "processing", row.attempts + 1, utcnow()
        return _pending(row)


def test_a_second_worker_never_jumps_ahead_in_a_conversation(two_stores):
    first, second = two_stores
    first.accept([item(n, "a") for n in range(3)], {})
    # Control: the old claim gives the second worker m1 while m0 is still being processed
    # (its reply could go out before m0's).
    assert claim_without_leases(first, "a").turn.text == "a0"
    assert claim_without_leases(second, "a").turn.text == "a1"
    with first._sessions() as session, session.begin():
        session.execute(update(InboxRow).values(state="pending", attempts=0))

    a, b = new_worker_id(), new_worker_id()
    taken = first.next_pending("a", a, 30)
    assert (taken.turn.text, taken.lease_owner) == ("a0", a) and taken.lease_until > utcnow()
    assert second.next_pending("a", b, 30) is None  # a0 is being processed: a1 waits
    assert not second.finish(taken.id, None, b) and not second.requeue(taken.id, b)  # not b's
    assert first.finish(taken.id, None, a)
    assert second.next_pending("a", b, 30).turn.text == "a1"


def test_two_workers_racing_take_every_message_once_in_order(two_stores):
    conversations = [f"c{n}" for n in range(10)]
    two_stores[0].accept([item(n, c) for n in range(8) for c in conversations], {})
    lock = threading.Lock()
    active: dict = {}
    seen: dict = {c: [] for c in conversations}
    overlaps: list = []

    def work(store: WhatsAppStore, owner: str) -> None:
        rng = random.Random(owner)
        idle_rounds = 0
        while idle_rounds < 3:
            took = False
            for conversation in rng.sample(conversations, len(conversations)):
                message = store.next_pending(conversation, owner, 30)
                if message is None:
                    continue
                took = True
                with lock:
                    if active.get(conversation):
                        overlaps.append((conversation, active[conversation], message.turn.text))
                    active[conversation] = message.turn.text
                    seen[conversation].append(message.turn.text)
                time.sleep(rng.random() * 0.003)
                with lock:
                    active[conversation] = None
                assert store.finish(message.id, None, owner)
            idle_rounds = 0 if took else idle_rounds + 1

    threads = [threading.Thread(target=work, args=(two_stores[n % 2], new_worker_id())) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert overlaps == []
    assert seen == {c: [f"{c}{n}" for n in range(8)] for c in conversations}
    assert two_stores[0].inbox_counts() == {"done": 80}


def dead_local_worker() -> str:
    """The id a worker of this host had whose process has exited (and was reaped)."""
    process = subprocess.Popen(["true"])
    process.wait()
    host = new_worker_id().split("/")[0]  # this host (and pid namespace)
    return f"{host}/{process.pid}/gone"


def hold(store: WhatsAppStore, conversation: str, owner: str, seconds: float) -> PendingMessage:
    message = store.next_pending(conversation, owner, seconds)
    assert message is not None
    return message


@pytest.mark.asyncio
async def test_recovery_takes_back_only_what_dead_workers_held(two_stores):
    first, second = two_stores
    first.accept([item(n, c) for c in "abc" for n in range(2)], {})
    live = hold(first, "a", FOREIGN, 30)  # a worker elsewhere, alive: its lease runs
    dead = hold(first, "b", dead_local_worker(), 30)  # this host, process gone
    expiring = hold(first, "c", "third-host/1/slow", 0.5)  # elsewhere, stops renewing
    assert not holder_is_dead(FOREIGN) and holder_is_dead(dead.lease_owner)
    handled: list = []

    async def handle(message):
        handled.append(message.turn.text)

    async def not_yet_answered(_message):
        return False

    processor = InboxProcessor(second, handle, 4, Metrics(), worker=new_worker_id(), lease_seconds=5)
    await processor.recover(not_yet_answered)
    await processor.idle()
    assert handled == ["b0", "b1"]  # the dead worker's message again, then the next
    processor.start_sweeping(0.1)
    await asyncio.sleep(1.0)
    await processor.idle()
    assert handled[2:] == ["c0", "c1"]  # once the lease expired, in order
    counts = {(r.conversation_id, r.state) for r in rows(second)}
    assert ("a", "processing") in counts and ("a", "pending") in counts  # a live worker's: untouched
    assert [r.lease_owner for r in rows(second) if r.id == live.id] == [FOREIGN]
    assert expiring.id and dead.id


def rows(store: WhatsAppStore) -> list:
    with store._sessions() as session:
        return list(session.scalars(select(InboxRow).order_by(InboxRow.id)))


@pytest.mark.asyncio
async def test_a_turn_longer_than_the_lease_keeps_it(two_stores):
    first, second = two_stores
    first.accept([item(n, "a") for n in range(2)], {})
    handled: list = []

    def handler(name: str, seconds: float):
        async def handle(message):
            handled.append((name, message.turn.text, "start"))
            await asyncio.sleep(seconds if message.turn.text == "a0" else 0)
            handled.append((name, message.turn.text, "end"))
        return handle

    async def not_yet_answered(_message):
        return False

    slow = InboxProcessor(first, handler("slow", 1.5), 2, Metrics(), worker=new_worker_id(), lease_seconds=0.6)
    other = InboxProcessor(second, handler("other", 0), 2, Metrics(), worker=new_worker_id(), lease_seconds=0.6)
    slow.submit("a")
    await asyncio.sleep(0.1)
    await other.recover(not_yet_answered)
    other.start_sweeping(0.1)
    await asyncio.sleep(2.0)
    await slow.idle()
    await other.idle()
    # a0 was never taken from the slow worker; a1 came after it, from either worker.
    assert handled[:2] == [("slow", "a0", "start"), ("slow", "a0", "end")]
    assert [h[1:] for h in handled[2:]] == [("a1", "start"), ("a1", "end")]
    assert first.inbox_counts() == {"done": 2}


@pytest.mark.asyncio
async def test_a_worker_that_stopped_renewing_loses_its_row_to_one_other(two_stores):
    first, second = two_stores
    first.accept([item(0, "a")], {})
    gone = new_worker_id()
    message = hold(first, "a", gone, 30)
    forget_local(gone)  # as if its process had died (same pid: an earlier incarnation)
    [found] = second.interrupted(None, lambda owner: holder_is_dead(owner))
    assert second.take_over(found, "x/1/a", 30, holder_dead=True)
    assert not first.take_over(found, "x/1/b", 30, holder_dead=True)  # taken already
    assert not first.finish(message.id, None, gone)  # the old holder's late result is ignored


# ── the outbox ──────────────────────────────────────────────────────────────────────────────
@pytest.mark.asyncio
async def test_a_live_workers_send_stops_another_drain_and_a_dead_ones_is_sent_once(outbox, graph):
    store = outbox.store
    ids = await outbox.sender.record_turn("c1", "wamid.IN1", [(Text(f"reply {n}"), "text") for n in (1, 2)])
    store.claim(ids[0], owner=FOREIGN)  # another machine's worker is sending reply 1 right now
    assert await outbox.drain("c1") == 0
    assert bodies(graph) == []  # neither resent nor overtaken by reply 2
    # That worker dies (here: a process of this host that is gone): its row is taken over.
    with store._sessions() as session, session.begin():
        session.execute(update(OutboundRow).where(OutboundRow.id == ids[0])
                        .values(lease_owner=dead_local_worker()))
    assert await outbox.drain("c1") == 2
    assert bodies(graph) == ["reply 1", "reply 2"]
    assert [(r.state, r.ambiguous) for r in store.outbound("c1")] == [("sent", True), ("sent", False)]


# ── the shared rate limit ───────────────────────────────────────────────────────────────────


async def hammer(limiters: list, requests_each: int) -> list:
    starts: list = []

    async def one(limiter) -> None:
        async with limiter.held():
            starts.append(time.monotonic())
            await asyncio.sleep(0.02)

    await asyncio.gather(*(one(limiter) for limiter in limiters for _ in range(requests_each)))
    return starts


@pytest.mark.asyncio
async def test_two_workers_share_one_rate_limit_in_redis(redis_server):
    rate = 8
    shared = [RedisRateLimiter(redis_server.url(), "555", rate) for _ in range(2)]  # two clients
    try:
        starts = await hammer(shared, 16)
    finally:
        for limiter in shared:
            await limiter.close()
    assert len(starts) == 32 and busiest_second(starts) <= rate
    assert sum(limiter.fallbacks for limiter in shared) == 0
    # Control: each worker with its own limit sends up to twice the number's rate.
    own = await hammer([RateLimiter(rate), RateLimiter(rate)], 8)
    assert busiest_second(own) > rate


@pytest.mark.asyncio
async def test_redis_unreachable_falls_back_to_the_process_limit():
    limiter = RedisRateLimiter("redis://127.0.0.1:1/0", "555", 50)
    starts = await hammer([limiter], 3)
    assert len(starts) == 3 and limiter.fallbacks == 3
    await limiter.close()


def test_a_conversations_queued_messages_are_never_sent_by_two_workers_at_once(two_stores):
    first, second = two_stores
    ids = [first.enqueue("x", "text", {"type": "text", "text": {"body": f"tip {n}"}}, 20) for n in range(2)]
    claimed, busy = first.claim_next_of_conversation(ids[0], FOREIGN, lambda owner, at: owner == FOREIGN)
    assert claimed is not None and not busy and claimed.lease_owner == FOREIGN

    def live(owner, _at):
        return not holder_is_dead(owner)

    # Control: the plain claim sends tip 1 beside tip 0 (it could arrive first).
    assert second.claim(ids[1]) is not None
    with second._sessions() as session, session.begin():
        session.execute(update(OutboundRow).where(OutboundRow.id == ids[1]).values(state="queued"))
    assert second.claim_next_of_conversation(ids[1], "me/1/x", live) == (None, True)
    first.outbound_sent(ids[0], "wamid.tip0", 1)
    claimed, busy = second.claim_next_of_conversation(ids[1], "me/1/x", live)
    assert claimed is not None and claimed.id == ids[1] and not busy
    assert second.claim(ids[1]) is None  # and nobody claims it twice


def test_only_a_process_of_this_host_and_pid_namespace_is_judged_dead_by_its_pid():
    gone = dead_local_worker()
    host, pid, _ = gone.split("/")
    assert holder_is_dead(gone)
    # The same host name seen from another pid namespace (a container on the host's network)
    # or another boot: its pid means nothing here, so only its lease's expiry counts.
    name = host.split("~")[0]
    assert not holder_is_dead(f"{name}~00000000/{pid}/gone")
    assert not holder_is_dead(f"{name}/{pid}/gone") and not holder_is_dead("garbage")
