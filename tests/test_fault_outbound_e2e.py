"""Outbound faults end to end (issue 13, items 2, 6, 7), with the real processes: the
simulator (Meta), the WhatsApp gateway, Rasa and the action server, over real HTTP.

- The gateway is SIGKILLed in the middle of a 3-reply turn while Graph answers slowly
  (0.15-0.45 s): after the restart every reply reaches the patient exactly once, in order.
- Graph takes a message but answers after the client's timeout: no duplicate, the row is
  flagged ambiguous and counted on /metrics.
- 60 % of Graph requests fail: every reply is sent or is a dead letter whose patient has a
  follow-up ticket; a dead letter retried later (as staff's Retry does) goes out.
- No patient or reply text in the gateway's or Rasa's logs.

One stack for the module (Rasa takes ~40 s to start); each test uses new patients.
"""

from __future__ import annotations

import itertools
import time

import pytest
from sqlalchemy import select

from benchmarks.stack import Stack, reply_text
from clinic.db import make_engine, make_session_factory
from clinic.inbox.tables import TicketRow
from clinic.messaging.store import InboxRow, OutboundRow, WhatsAppStore

pytestmark = [pytest.mark.model, pytest.mark.servers]
_numbers = itertools.count(1000)
GRACE_SECONDS = 6.0
# A first message that the assistant answers with three replies (welcome, answer, offer).
THREE_REPLY_TEXT = "I have crushing chest pain and cannot breathe"
SAID: list = []  # every patient text of the module, for the log check


def patient() -> str:
    return f"1555041{next(_numbers):04d}"  # synthetic


@pytest.fixture(scope="module")
def stack(trained_model, tmp_path_factory):
    # Meta redelivers webhooks missed during a restart "immediately, then with decreasing
    # frequency": a dense schedule keeps the test short.
    running = Stack(tmp_path_factory.mktemp("outbound-faults"), trained_model, ingress=True,
                    simulator_args=("--retry-schedule", "0,0.3,0.3,0.5,0.5,1,1,1,1,1,1,1,1,1,1,2,2,2"))
    running.env.update({
        # The late-answer test answers after 12 s: past this timeout, and past the 10 s the
        # client had before issue 13 (whose retry then delivered it twice).
        "WHATSAPP_GRAPH_TIMEOUT_SECONDS": "2",
        "WHATSAPP_UNCONFIRMED_GRACE_SECONDS": str(GRACE_SECONDS),
        # One request per round and one later round: with 60 % failures about a third of
        # the replies fail for good (a ticket each) and a quarter are saved by the retry.
        "WHATSAPP_SEND_ATTEMPTS": "1",
        "WHATSAPP_DEAD_LETTER_RETRY_SECONDS": "1",
        "WHATSAPP_OUTBOX_SWEEP_SECONDS": "0.5",
    })
    running.start()
    yield running
    running.stop()


@pytest.fixture(scope="module")
def store(stack) -> WhatsAppStore:
    return WhatsAppStore(make_session_factory(make_engine(f"sqlite:///{stack.database}")))


@pytest.fixture(autouse=True)
def no_faults(stack):
    stack.sim("/_sim/faults", method="DELETE")
    stack.sim("/_sim/config", {"latency_ms": None})
    yield
    stack.sim("/_sim/faults", method="DELETE")
    stack.sim("/_sim/config", {"latency_ms": None})


def say(stack: Stack, wa_id: str, text: str) -> dict:
    SAID.append(text)
    return stack.say(wa_id, text)


def delivered(stack: Stack, wa_id: str) -> list:
    return [m for m in stack.replies(wa_id) if not m.get("error")]


def rows_for(store: WhatsAppStore, wamids: list) -> list:
    with store._sessions() as session:  # noqa: SLF001 - reading the gateway's database
        return list(session.scalars(select(OutboundRow).where(OutboundRow.turn_wamid.in_(wamids))
                                    .order_by(OutboundRow.id)))


def settled(store: WhatsAppStore, wamids: list, timeout: float = 60) -> list:
    """The turn rows once nothing is queued, sending or waiting for a later round."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = rows_for(store, wamids)
        if rows and all(r.state in ("sent", "dead", "refused") and not (r.state == "dead" and r.retry_at)
                        for r in rows):
            return rows
        time.sleep(0.3)
    raise AssertionError(f"not settled: {[(r.id, r.state, r.retry_at) for r in rows_for(store, wamids)]}")


# ── 2: a crash in the middle of a multi-reply turn ─────────────────────────────────────────
@pytest.mark.parametrize("kill_after", [1, 2])
def test_a_gateway_killed_mid_turn_sends_every_reply_exactly_once(stack, store, kill_after):
    stack.sim("/_sim/config", {"latency_ms": [150, 450]})  # Graph answering slowly
    wa_id = patient()
    sent = say(stack, wa_id, THREE_REPLY_TEXT)
    deadline = time.monotonic() + 90
    while len(delivered(stack, wa_id)) < kill_after:
        assert time.monotonic() < deadline, "no reply before the kill"
        time.sleep(0.02)
    stack.kill("ingress")
    before_restart = len(delivered(stack, wa_id))
    assert before_restart < 3, "the turn finished before the kill: nothing was tested"
    stack.start_ingress()
    stack.wait_for_replies(wa_id, 3, timeout=60)
    rows = settled(store, [sent["wamid"]])
    time.sleep(1.0)  # a duplicate would show up now
    messages = delivered(stack, wa_id)
    assert len(messages) == 3, [reply_text(m)[:40] for m in messages]
    assert [r.state for r in rows] == ["sent"] * 3
    # Exactly the recorded replies, once each, in the order the turn produced them.
    assert [m["wamid"] for m in messages] == [r.wamid for r in rows]
    with store._sessions() as session:  # noqa: SLF001
        inbox_row = session.scalars(select(InboxRow).where(InboxRow.wamid == sent["wamid"])).one()
    assert inbox_row.state == "done"
    counters = stack.metrics()["counters"]
    assert counters.get("outbound_resumed_conversations", 0) >= 1


# ── 6: Graph answers after the client's timeout ────────────────────────────────────────────
def test_a_late_graph_answer_is_flagged_ambiguous_counted_and_not_duplicated(stack, store):
    wa_id = patient()
    stack.sim("/_sim/faults", {"late_ms": 12000, "count": 1, "to": wa_id})
    ambiguous_before = stack.metrics()["outbound"].get("ambiguous", 0)
    sent = say(stack, wa_id, "what are your opening hours")
    stack.wait_for_replies(wa_id, 2, timeout=60)
    time.sleep(3)
    messages = delivered(stack, wa_id)
    assert len(messages) == 2 and len({reply_text(m) for m in messages}) == 2  # no duplicate
    rows = settled(store, [sent["wamid"]])
    assert [r.state for r in rows] == ["sent", "sent"]
    assert rows[0].ambiguous and not rows[1].ambiguous  # the late one is flagged
    assert rows[0].wamid == messages[0]["wamid"]  # confirmed by its status webhook
    report = stack.metrics()
    assert report["outbound"]["ambiguous"] == ambiguous_before + 1
    assert report["counters"].get("outbound_ambiguous", 0) >= 1
    assert report["counters"].get("outbound_ambiguous_confirmed", 0) >= 1


# ── 7: 60 % Graph failures → sent, or a dead letter with a follow-up ticket ────────────────
def test_with_60_percent_graph_failures_every_reply_is_sent_or_followed_up(stack, store):
    stack.sim("/_sim/faults", {"http": 503, "fraction": 0.6, "seed": 13})
    patients = [patient() for _ in range(8)]
    turns = [say(stack, wa_id, "hi")["wamid"] for wa_id in patients]
    rows = settled(store, turns, timeout=120)
    stack.sim("/_sim/faults", method="DELETE")
    assert len(rows) == 2 * len(patients)  # welcome + menu each
    dead = [r for r in rows if r.state == "dead"]
    assert [r.state for r in rows if r.state not in ("sent", "dead")] == []
    assert dead, "with 60 % failures some replies should fail for good (P(none) < 0.1 %)"
    counters = stack.metrics()["counters"]
    assert counters.get("outbound_dead_letter_retried", 0) >= 1  # later rounds ran
    # Every final failure has a ticket: a person follows that patient up.
    with store._sessions() as session:  # noqa: SLF001
        tickets = {t.id: t for t in session.scalars(select(TicketRow))}
    for row in dead:
        assert row.ticket_id in tickets, f"dead letter {row.id} without a ticket"
        assert tickets[row.ticket_id].reason == "reply_failed"
        assert tickets[row.ticket_id].conversation_id == row.conversation_id
    # What was sent went out once: the simulator saw each wamid once.
    for wa_id in patients:
        wamids = [m["wamid"] for m in delivered(stack, wa_id)]
        assert len(wamids) == len(set(wamids))
    print(f"60% faults: {len(rows)} replies, {len(rows) - len(dead)} sent, {len(dead)} dead letters, "
          f"{counters.get('outbound_dead_letter_retried', 0)} later rounds, "
          f"{counters.get('outbound_dead_letter_recovered', 0)} recovered by them")
    # Graph is healthy again: staff's Retry (a due dead letter) delivers them.
    for row in dead:
        assert store.request_retry(row.id)
    if dead:
        rows = settled(store, turns, timeout=60)
        assert all(r.state == "sent" for r in rows)
    by_conversation = {}
    for row in rows:
        by_conversation.setdefault(row.conversation_id, []).append(row.wamid)
    for wa_id in patients:
        wamids = [m["wamid"] for m in delivered(stack, wa_id)]
        assert len(wamids) == 2 and len(set(wamids)) == 2


# ── no message text in any log line ─────────────────────────────────────────────────────────
def test_no_message_text_in_the_gateway_or_rasa_logs(stack):
    assert SAID, "run with the tests above"
    replies = [reply_text(m) for m in stack.sim("/_sim/messages")["messages"] if not m.get("error")]
    # Texts long enough to mean something when found: "hi" is inside "this" and "within",
    # words any log line may hold.
    fragments = ({text[:40] for text in SAID if len(text) >= 12}
                 | {text[:30] for text in replies if len(text) >= 30})
    assert len(fragments) > 2
    for name in ("ingress", "rasa"):
        log = stack.log(name)
        assert log, name
        leaked = [fragment for fragment in fragments if fragment in log]
        assert leaked == [], f"{name} log holds message text: {leaked[:3]}"
    report = stack.metrics()
    print("outbound:", report["outbound"], {k: v for k, v in report["counters"].items()
                                            if k.startswith(("outbound_", "turn_"))})
