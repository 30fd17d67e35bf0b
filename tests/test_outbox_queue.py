"""The outbox's queue without Rasa (fast): every sender that is not a patient's turn (staff
replies, reminders, notifications, surveys, broadcasts) queues into ``wa_outbound``; one
outbox drains it, most urgent first, one conversation at a time, through one Graph client
and its one rate limit; callers read their outcome back from the table."""

# ruff: noqa: F811 - ``graph`` is the Graph stand-in fixture of test_connector_sender.py

from __future__ import annotations

import asyncio
import datetime as dt
import time

import pytest
import pytest_asyncio

from clinic.db import create_schema, make_engine, make_session_factory
from clinic.messaging.outbox_queue import (
    BLOCKED_PHI,
    PRIORITY_BROADCAST,
    PRIORITY_REMINDER,
    PRIORITY_STAFF_REPLY,
    PRIORITY_SURVEY,
    UNKNOWN,
    WITHDRAWN,
    OutboxQueue,
    outcome_of,
)
from clinic.messaging.store import OutboundItem, WhatsAppStore
from clinic.privacy import ContactCipher
from gateway.outbox import Outbox
from gateway.sender import OUTSIDE_WINDOW, DeliveryPolicy, Sender
from tests.connector_support import ENCRYPTION_KEY
from tests.test_connector_sender import graph  # noqa: F401 - fixture
from whatsapp.client import GraphClient
from whatsapp.limits import RateLimiter
from whatsapp.metrics import Metrics
from whatsapp.outbound import Template, Text

CONVERSATIONS = [f"c{n}" for n in range(40)]


def address(conversation: str) -> str:
    return f"1650555{int(conversation[1:]):04d}"


class Timed(list):
    """What the stand-in received, and when each request arrived."""

    def __init__(self):
        super().__init__()
        self.arrivals = []

    def append(self, item):
        self.arrivals.append(time.monotonic())
        super().append(item)


@pytest_asyncio.fixture
async def world(graph, tmp_path):
    graph.received = Timed()
    engine = make_engine(f"sqlite:///{tmp_path / 'queue.db'}")
    create_schema(engine)
    store = WhatsAppStore(make_session_factory(engine))
    cipher = ContactCipher(ENCRYPTION_KEY.encode())
    now = dt.datetime.now(dt.timezone.utc)
    store.accept([], {c: (cipher.encrypt(address(c)), now) for c in CONVERSATIONS})
    store.accept([], {"stale": (cipher.encrypt("16505559999"), now - dt.timedelta(days=2))})
    clients = []

    def outbox(rate=None, concurrency=8) -> Outbox:
        client = GraphClient(graph.url, "v23.0", "123", "token", rate_per_second=rate, max_attempts=1)
        clients.append(client)
        sender = Sender(client, store, cipher, Metrics(), policy=DeliveryPolicy(attempts=1))
        box = Outbox(sender, store, Metrics())
        box.queue_concurrency = concurrency
        return box

    yield store, outbox
    for client in clients:
        await client.close()
    engine.dispose()


def to(graph) -> list:
    return [m["to"] for m in graph.received if m.get("type") != "read" and "status" not in m]


@pytest.mark.asyncio
async def test_queued_messages_leave_most_urgent_first_then_oldest(world, graph):
    store, outbox = world
    box = outbox(concurrency=1)
    broadcast = OutboxQueue(store, PRIORITY_BROADCAST)
    survey = OutboxQueue(store, PRIORITY_SURVEY)
    reminder = OutboxQueue(store, PRIORITY_REMINDER)
    staff = OutboxQueue(store, PRIORITY_STAFF_REPLY)
    for conversation in ("c1", "c2", "c3"):
        await broadcast.enqueue(conversation, Text("tip"), "bcast:1")
    await survey.enqueue("c4", Text("how was it"), "survey:1")
    for conversation in ("c5", "c6"):
        await reminder.enqueue(conversation, Text("see you tomorrow"), "text")
    await staff.enqueue("c7", Text("a nurse answers"), "staff_reply")
    assert await box.drain_queue() == 7
    await box.idle()
    assert to(graph) == [address(c) for c in ("c7", "c5", "c6", "c4", "c1", "c2", "c3")]
    assert all(row.state == "sent" and row.wamid for row in store.outbound())


@pytest.mark.asyncio
async def test_one_conversation_at_a_time_and_in_the_order_queued(world, graph):
    store, outbox = world
    box = outbox(concurrency=8)
    queue = OutboxQueue(store, PRIORITY_REMINDER)
    for n in range(5):
        await queue.enqueue("c1", Text(f"part {n}"), "text")
        await queue.enqueue(f"c{n + 2}", Text("other"), "text")
    await box.drain_queue()
    await box.idle()
    bodies = [m["text"]["body"] for m in graph.received if m["to"] == address("c1")]
    assert bodies == [f"part {n}" for n in range(5)]
    assert len(to(graph)) == 10


@pytest.mark.asyncio
async def test_callers_read_their_outcome_back_from_the_table(world, graph):
    store, outbox = world
    box = outbox()
    box.start_draining(poll_seconds=0.05)
    staff = OutboxQueue(store, PRIORITY_STAFF_REPLY, poll_seconds=0.02)
    try:
        sent, outside, blocked = await asyncio.gather(
            staff.send("c1", Text("Your appointment is confirmed"), "staff_reply"),
            staff.send("stale", Text("hello again"), "staff_reply"),
            staff.send("c2", Text("Your HIV test result is positive"), "staff_reply"))
    finally:
        await box.stop()
    assert (sent.state, sent.wamid) == ("sent", store.outbound("c1")[0].wamid) and sent.wamid
    assert (outside.state, outside.detail) == ("refused", OUTSIDE_WINDOW)
    assert (blocked.state, blocked.detail) == ("refused", BLOCKED_PHI)
    assert to(graph) == [address("c1")]


@pytest.mark.asyncio
async def test_a_message_nobody_sent_in_time_is_taken_back_never_sent_later(world, graph):
    store, outbox = world
    staff = OutboxQueue(store, PRIORITY_STAFF_REPLY, poll_seconds=0.02, wait_seconds=0.1)
    outcome = await staff.send("c1", Text("are you there?"), "staff_reply")
    assert (outcome.state, outcome.detail) == ("refused", WITHDRAWN)
    box = outbox()
    assert await box.drain_queue() == 0  # the drain starts late: nothing left to send
    assert to(graph) == []


@pytest.mark.asyncio
async def test_a_caller_stops_waiting_for_a_send_whose_process_died_and_is_told_it_may_have_gone(world, graph):
    store, _outbox = world
    staff = OutboxQueue(store, PRIORITY_STAFF_REPLY, poll_seconds=0.02, wait_seconds=0.1, settle_seconds=0.3)
    outbound_id = await staff.enqueue("c2", Text("your form is ready"), "staff_reply")
    # An outbox took it into the Graph call and died there: the row stays ``sending``.
    assert store.claim(outbound_id) is not None
    started = time.monotonic()
    outcome = await asyncio.wait_for(staff.outcome(outbound_id), 10)
    assert (outcome.state, outcome.ambiguous) == (UNKNOWN, True)
    assert 0.3 <= time.monotonic() - started < 5  # bounded: not extended 30 s at a time forever
    assert store.outbound_item(outbound_id).state == "sending"  # its fate stays for the outbox


@pytest.mark.asyncio
async def test_a_queued_template_falls_back_to_its_default_language_once(world, graph):
    store, outbox = world
    graph.script = [(404, {"error": {"code": 132001, "message": "Template name does not exist in the translation",
                                     "error_data": {"details": "template name (survey) does not exist in ru"}}})]
    box = outbox()
    box.start_draining(poll_seconds=0.05)
    survey = OutboxQueue(store, PRIORITY_SURVEY, poll_seconds=0.02)
    try:
        outcome = await survey.send("c1", Template("visit_survey", "ru", ("Clinic",)), "survey:1", fallback="en_US")
    finally:
        await box.stop()
    assert outcome.state == "sent" and (outcome.fallback_from, outcome.language) == ("ru", "en_US")
    assert [m["template"]["language"]["code"] for m in graph.received] == ["ru", "en_US"]


@pytest.mark.asyncio
async def test_one_limit_holds_whoever_queues_and_whatever_turns_run(world, graph):
    """Staff replies, reminders, a survey round and a broadcast queued, then live turns while
    they drain, through one outbox at 20 messages/s: never more than 20 in any second at the
    Graph API, every message exactly once, and the patient who is waiting is answered before
    the backlog. (Ordered, not timed: how long queueing takes depends on the machine.)"""
    store, outbox = world
    box = outbox(rate=20)
    queues = {priority: OutboxQueue(store, priority, wait=False)
              for priority in (PRIORITY_BROADCAST, PRIORITY_SURVEY, PRIORITY_REMINDER, PRIORITY_STAFF_REPLY)}
    await asyncio.gather(*(queues[PRIORITY_BROADCAST].send(c, Text("tip"), "bcast:9") for c in CONVERSATIONS[:30]))
    await asyncio.gather(*(queues[PRIORITY_SURVEY].send(c, Text("rate us"), "survey:9") for c in CONVERSATIONS[30:]))
    await asyncio.gather(*(queues[PRIORITY_REMINDER].send(c, Text("reminder"), "text") for c in CONVERSATIONS[:10]),
                         *(queues[PRIORITY_STAFF_REPLY].send(c, Text("staff"), "staff_reply")
                           for c in CONVERSATIONS[10:15]))
    box.start_draining(poll_seconds=0.05)
    try:
        await box.deliver_turn("c39", "wamid.TURN", [(Text("answer"), "text")])
        for _ in range(200):
            if len(to(graph)) >= 56:
                break
            await asyncio.sleep(0.05)
        await box.idle()
    finally:
        await box.stop()
    sent = to(graph)
    bodies = [m.get("text", {}).get("body") for m in graph.received]
    assert len(sent) == 56 and len(set(zip(sent, bodies, strict=True))) == 56
    arrivals = sorted(graph.received.arrivals)
    assert max(sum(1 for t in arrivals[i:] if t - start < 1.0) for i, start in enumerate(arrivals)) <= 20
    # Queued behind the 55 it would be last; ahead of them it follows at most the 8 sends the
    # drainer has in flight and what leaves while its own reply is recorded.
    assert bodies.index("answer") < 28 and bodies.count("tip") == 30
    assert all(row.state == "sent" for row in store.outbound())


def test_the_limiter_never_lets_more_than_the_rate_into_any_window():
    clock = [0.0]
    limiter = RateLimiter(20, clock=lambda: clock[0])
    slots = [limiter.reserve() for _ in range(200)]
    assert max(sum(1 for t in slots[i:] if t - start < 1.04) for i, start in enumerate(slots)) <= 20
    assert slots == sorted(slots) and slots[-1] < 200 / 20 * 1.06


@pytest.mark.asyncio
async def test_the_limit_holds_where_requests_arrive_whatever_their_latency():
    # Requests that take from 0 to 0.3 s arrive, at worst, when they end: spacing their
    # starts alone let 21+ of them arrive within one second at a limit of 20. Held until
    # a window after they end, no second sees more than 20 arrivals.
    limiter = RateLimiter(20)
    loop = asyncio.get_running_loop()
    arrivals = []

    async def request(n: int) -> None:
        async with limiter.held():
            await asyncio.sleep(0.3 if (n // 20) % 2 == 0 else 0.0)  # slow, then fast, ...
            arrivals.append(loop.time())

    await asyncio.gather(*(request(n) for n in range(60)))
    arrivals.sort()
    assert len(arrivals) == 60
    assert max(sum(1 for t in arrivals[i:] if t - start <= 1.0) for i, start in enumerate(arrivals)) <= 20


@pytest.mark.asyncio
async def test_a_broadcast_through_the_queue_pauses_while_nobody_sends_then_finishes_exactly_once(tmp_path, graph):
    from benchmarks.broadcast_bench import seed_subscribers
    from clinic.broadcasts import tables as t
    from clinic.broadcasts.runner import CampaignPaused, Runner
    from clinic.broadcasts.store import BroadcastStore
    from clinic.consent import ConsentStore

    engine = make_engine(f"sqlite:///{tmp_path / 'broadcast.db'}")
    create_schema(engine)
    sessions = make_session_factory(engine)
    cipher = ContactCipher(ENCRYPTION_KEY.encode())
    people = seed_subscribers(sessions, cipher, 5, b"queue-test-key")
    broadcasts = BroadcastStore(sessions, ConsentStore(sessions))
    campaign = broadcasts.create("queued", "health_tip", "en_US", ["Clinic", "Wash your hands."], ["/opt_out_tips"], 50)
    broadcasts.enqueue_segment(campaign.id)
    store = WhatsAppStore(sessions)
    # No process drains the outbox: what waited too long is taken back, the campaign pauses.
    impatient = OutboxQueue(store, PRIORITY_BROADCAST, poll_seconds=0.02, wait_seconds=0.2)
    with pytest.raises(CampaignPaused):
        await Runner(broadcasts, impatient, "w1", pacing_seconds=0).run("queued")
    assert broadcasts.progress(campaign.id).counts == {t.PENDING: 5}
    client = GraphClient(graph.url, "v23.0", "123", "token", rate_per_second=None, max_attempts=1)
    box = Outbox(Sender(client, store, cipher, Metrics()), store, Metrics())
    box.start_draining(poll_seconds=0.02)
    try:
        queue = OutboxQueue(store, PRIORITY_BROADCAST, poll_seconds=0.02)
        assert await Runner(broadcasts, queue, "w2", pacing_seconds=0).run("queued") == t.DONE
    finally:
        await box.stop()
        await client.close()
    assert broadcasts.progress(campaign.id).counts == {t.SENT: 5}
    assert sorted(m["to"] for m in graph.received) == sorted(wa for wa, _, _ in people)
    assert {row.wamid for row in broadcasts.recipients(campaign.id)} == {
        row.wamid for row in store.outbound() if row.state == "sent"}
    engine.dispose()


@pytest.mark.asyncio
async def test_a_survey_through_the_queue_is_sent_once_and_recorded_with_its_wamid(tmp_path):
    from cryptography.fernet import Fernet
    from sqlalchemy import select

    from clinic.messaging.store import ContactRow
    from clinic.scheduling.model import AppointmentStatus
    from clinic.surveys import planner
    from clinic.surveys import tables as t
    from clinic.surveys.sender import SurveySender
    from clinic.surveys.store import SurveyStore
    from simulator.testing import TEST_ACCESS_TOKEN, running_simulator
    from tests.reminder_support import make_clinic

    clinic = make_clinic(tmp_path)
    appointment = clinic.book_at(dt.datetime(2030, 1, 8, 10, 0))
    clinic.clock.advance(days=1, hours=6)
    clinic.backend.set_status(appointment.id, AppointmentStatus.FULFILLED, "front desk")
    cipher = ContactCipher(Fernet.generate_key())
    surveys = SurveyStore(clinic.sessions, cipher)
    assert planner.plan(clinic.sessions, surveys, clinic.consent, clinic.clock()) == (1, 0)
    with clinic.sessions() as session, session.begin():
        session.add(ContactRow(conversation_id="conv-0001", address_encrypted=cipher.encrypt("15550001234"),
                               created_at=clinic.clock()))
    store = WhatsAppStore(clinic.sessions)
    async with running_simulator() as sim:
        client = GraphClient(sim.url, "v23.0", sim.config.phone_number_id, TEST_ACCESS_TOKEN)
        box = Outbox(Sender(client, store, cipher, Metrics()), store, Metrics())
        box.start_draining(poll_seconds=0.02)
        try:
            sender = SurveySender(surveys, clinic.consent, OutboxQueue(store, PRIORITY_SURVEY, poll_seconds=0.02),
                                  "w1", "Riverside", lambda _id: "Tuesday 8 January", lambda _c: None,
                                  clock=clinic.clock)
            assert await sender.send_due() == {t.SENT: 1}
            assert await sender.send_due() == {}
        finally:
            await box.stop()
            await client.close()
        _, data = await sim.get("/_sim/messages")
    [message] = data["messages"]
    with clinic.sessions() as session:
        survey = session.scalars(select(t.SurveyRow)).one()
    assert survey.status == t.SENT and survey.wamid == message["wamid"]
    assert [(row.kind, row.priority, row.state) for row in store.outbound()] == [
        (t.outbound_kind(survey.id), PRIORITY_SURVEY, "sent")]


def test_a_failed_fallback_is_read_back_with_both_languages():
    # The fallback went out and failed too: the sender records "<error>; after <note>".
    now = dt.datetime(2026, 12, 6, tzinfo=dt.timezone.utc)
    payload = Template("health_tip", language="ru", body_params=("a",)).to_payload("x")
    item = OutboundItem(
        id=1, conversation_id="c1", kind="template", payload=payload, state="dead", attempts=2,
        ambiguous=False, retries=0, retry_at=None, turn_wamid=None, error_code=131026,
        error_detail="Meta 131026 undeliverable; after language_fallback: ru -> en_US (Meta 132001)",
        ticket_id=None, created_at=now, updated_at=now)
    outcome = outcome_of(item)
    assert (outcome.state, outcome.fallback_from, outcome.language) == ("dead", "ru", "en_US")
