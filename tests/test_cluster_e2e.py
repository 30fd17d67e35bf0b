"""The cluster of issue 16 end to end, real processes over real HTTP (benchmarks/cluster.py):
the simulator (Meta) → one door → a PostgreSQL clinic database ← two relays → two Rasa
replicas serving the trained model (CLINIC_TEST_MODEL), which share a PostgreSQL tracker
store and a Redis lock store → an action server; the relays share the number's send rate
in the same Redis and spread turns over both replicas (RASA_URLS, gateway/replicas.py).

First, a turn answered by one replica and retried on the other: the other answers with the
replies the first gave (``replayed``), from the shared tracker store.

Then a burst of 500 messages from 50 patients (10 questions each, written one after the
other; benchmarks/cluster.py's QUESTIONS have ten different approved answers) while one Rasa
replica is killed with SIGKILL and started again, then one relay (the one the door
notifies). What must hold:

- at the simulator, every reply belongs to exactly one reply of one turn (Meta's wamid →
  the outbox's record of the turn it answers), none twice, none missing (every turn's
  replies complete), each patient's in the order they wrote;
- every patient got the same replies to the same questions (the first patient's are the
  reference; the ten are different from each other);
- in the shared tracker store, each patient message was taken in exactly once (one user
  event per wamid): no turn processed twice, even when it was retried on another replica.

Why it could fail, shown once with the control (``CLUSTER_CONTROL=1``; it starts the whole
cluster again, so it is not in the suite's time budget): the same burst with a tracker
store per replica (SQLite each, as two `make run` boxes would have) instead of the shared
one. A conversation's turns then land on two trackers: the second replica to see a patient
greets them again as a new session, a retry on the other replica finds no replies to
replay, and the checks above find it (the last run: see docs/measurements.md, "Cluster").
A relay that waited for a dead replica instead of failing over would still answer every
message, later: that is what tests/test_relay_replicas.py shows at unit level.
"""

from __future__ import annotations

import collections
import datetime as dt
import json
import os
import threading
import time
import urllib.request
from typing import Dict, List

import pytest
from sqlalchemy import create_engine, text

from benchmarks.cluster import Cluster, patients, send_burst, sent_to_patients, turn_of_each_reply
from benchmarks.stack import reply_text
from clinic.messaging.turn import InboundTurn, TurnRequest
from tests.pg_support import fresh_database
from tests.test_rasa_replicas_e2e import tracker_events
from whatsapp import signature

pytestmark = [pytest.mark.model, pytest.mark.servers]

PATIENTS = 50
MESSAGES_EACH = 10
KILL_RASA_AFTER = 100  # messages answered
KILL_RELAY_AFTER = 300
# A killed replica's Redis tickets block their conversations until they expire: shorter than
# Rasa's 60 s, but longer than any turn here (addons/lock_store.py on choosing the lifetime).
CLUSTER_ENV = {"TICKET_LOCK_LIFETIME": "30"}
DEADLINE_SECONDS = 300


def inbox_states(clinic_url: str) -> collections.Counter:
    engine = create_engine(clinic_url, future=True)
    try:
        with engine.connect() as connection:
            return collections.Counter(state for (state,) in connection.execute(text("SELECT state FROM wa_inbox")))
    finally:
        engine.dispose()


def conversations_of(clinic_url: str) -> Dict[str, str]:
    """Inbound wamid → conversation id (the pseudonym Rasa knows the patient by)."""
    engine = create_engine(clinic_url, future=True)
    try:
        with engine.connect() as connection:
            return dict(connection.execute(text("SELECT wamid, conversation_id FROM wa_inbox")).fetchall())
    finally:
        engine.dispose()


def outbox_unsent(clinic_url: str) -> int:
    engine = create_engine(clinic_url, future=True)
    try:
        with engine.connect() as connection:
            return connection.execute(text("SELECT count(*) FROM wa_outbound WHERE state != 'sent'")).scalar_one()
    finally:
        engine.dispose()


def answered_once_in_order(cluster: Cluster, clinic_url: str, tracker_url: str,
                           wamids: Dict[str, List[str]]) -> List[str]:
    """What the checks in the module docstring find wrong (empty: all is well)."""
    found: List[str] = []
    place = {w: (wa_id, i) for wa_id, ws in wamids.items() for i, w in enumerate(ws)}
    turns = turn_of_each_reply(clinic_url)
    replies: Dict[str, Dict[int, str]] = collections.defaultdict(dict)  # inbound wamid → seq → text
    order: Dict[str, List[tuple]] = collections.defaultdict(list)  # patient → (message, seq) as sent
    for message in sent_to_patients(cluster):
        if message["wa_id"] not in wamids:
            continue
        if message["wamid"] not in turns:
            found.append(f"{message['wa_id']}: a message no turn's reply accounts for (sent twice?): "
                         f"{reply_text(message)[:60]!r}")
            continue
        turn, seq = turns[message["wamid"]]
        if seq in replies[turn]:
            found.append(f"{message['wa_id']}: reply {seq} of {turn} sent twice")
        replies[turn][seq] = reply_text(message)
        order[message["wa_id"]].append((place[turn][1], seq))
    reference: List[List[str]] = []
    for n, (wa_id, sent) in enumerate(wamids.items()):
        if order[wa_id] != sorted(order[wa_id]):
            found.append(f"{wa_id}: replies out of order {order[wa_id]}")
        got = []
        for i, wamid in enumerate(sent):
            seqs = sorted(replies.get(wamid, {}))
            if not seqs or seqs != list(range(len(seqs))):
                found.append(f"{wa_id}: message {i} has replies {seqs}")
            got.append([replies.get(wamid, {})[seq] for seq in seqs])
        if n == 0:
            reference = got
        elif got != reference:
            differ = [i for i, (a, b) in enumerate(zip(got, reference, strict=False)) if a != b]
            found.append(f"{wa_id}: replies differ from the first patient's at messages {differ}: "
                         f"{[t[:40] for t in got[differ[0]]] if differ else got}")
    # The reference itself: ten different answers (an answer twice would hide a mix-up).
    answers = [tuple(texts) for texts in reference]
    if len(set(answers)) != len(answers):
        found.append(f"the questions' answers are not all different: {answers}")
    # The shared tracker store: each message taken in once.
    conversation = conversations_of(clinic_url)
    sealer = cluster.stack.tracker_sealer()
    for wa_id, sent in wamids.items():
        events = tracker_events(tracker_url, conversation[sent[0]], sealer)
        taken = collections.Counter(e.get("message_id") for e in events if e["event"] == "user")
        wrong = {i: taken[w] for i, w in enumerate(sent) if taken[w] != 1}
        if wrong:
            found.append(f"{wa_id}: messages taken in a number of times other than once (message: times) {wrong}")
    return found


def retried_turn_is_replayed_by_the_other_replica(cluster: Cluster) -> dict:
    """A turn answered by rasa0, then retried (attempts 2) on rasa1."""
    turn = InboundTurn(wamid="wamid.cluster-replay", conversation_id="cluster-replay-conversation", kind="text",
                       text="where can I park", received_at=dt.datetime.now(dt.timezone.utc))

    def post(replica: str, attempts: int) -> dict:
        body = json.dumps(TurnRequest(turn.retried(attempts), False).to_json()).encode()
        request = urllib.request.Request(
            cluster.url(replica) + "/webhooks/whatsapp/turn", data=body,
            headers={"Content-Type": "application/json",
                     signature.HEADER: signature.sign(body, cluster.env["WHATSAPP_INTERNAL_SECRET"])})
        with urllib.request.urlopen(request, timeout=120) as reply:
            return json.loads(reply.read())

    first, again = post("rasa0", 1), post("rasa1", 2)
    assert first["messages"] and not first.get("replayed"), first
    assert again.get("replayed") is True, again
    assert [(m.get("text"), m.get("buttons")) for m in again["messages"]] == \
        [(m.get("text"), m.get("buttons")) for m in first["messages"]]
    return first


def run_burst(cluster: Cluster, clinic_url: str, tracker_url: str, kills: bool = True,
              count: int = PATIENTS) -> dict:
    wamids: Dict[str, List[str]] = {}
    burst = threading.Thread(target=lambda: wamids.update(send_burst(cluster, patients(count), MESSAGES_EACH)))
    total = count * MESSAGES_EACH
    events: Dict[str, float] = {}
    started = time.monotonic()
    burst.start()
    restarting = None
    deadline = started + DEADLINE_SECONDS
    while True:
        states = inbox_states(clinic_url)
        done = states["done"]
        if kills and "rasa_killed" not in events and done >= KILL_RASA_AFTER:
            cluster.kill("rasa0")
            events["rasa_killed"] = done
            restarting = cluster.restart_in_background("rasa0")
        if kills and "relay_killed" not in events and done >= KILL_RELAY_AFTER:
            cluster.kill("relay0")
            events["relay_killed"] = done
            cluster.restart("relay0")
        if done + states["failed"] >= total and not burst.is_alive() and outbox_unsent(clinic_url) == 0:
            break
        assert time.monotonic() < deadline, f"{dict(states)} of {total} after {DEADLINE_SECONDS} s"
        time.sleep(0.5)
    elapsed = time.monotonic() - started
    burst.join()
    if restarting is not None:
        restarting.join(timeout=240)
    time.sleep(2.0)  # anything sent twice would arrive now
    assert states["failed"] == 0, dict(states)
    return {"wamids": wamids, "elapsed": elapsed, "events": events,
            "problems": answered_once_in_order(cluster, clinic_url, tracker_url, wamids)}


@pytest.fixture
def databases(postgres_url):
    with fresh_database(postgres_url, "cluster_clinic") as clinic, fresh_database(postgres_url, "cluster_tracker") as tracker:
        yield clinic, tracker


def test_a_burst_through_two_relays_and_two_rasa_replicas_each_killed_once_is_answered_once_in_order(
        tmp_path, model, databases, redis_server):
    clinic_url, tracker_url = databases
    began = time.monotonic()
    cluster = Cluster(tmp_path, model, clinic_url, tracker_url, redis_server.url(4), env=CLUSTER_ENV).start()
    try:
        start_up = time.monotonic() - began
        retried_turn_is_replayed_by_the_other_replica(cluster)
        result = run_burst(cluster, clinic_url, tracker_url)
        assert result["problems"] == [], "\n".join(result["problems"][:20])
        # Both replicas served turns, and the surviving relay failed over from the killed one.
        counters = cluster.stack.call("relay1", "/webhooks/whatsapp/metrics")["counters"]
        assert counters.get("rasa_replica0_turns", 0) > 0 and counters.get("rasa_replica1_turns", 0) > 0, counters
        assert counters.get("rasa_replica0_down", 0) >= 1, counters
        replayed = sum(cluster.stack.call(name, "/webhooks/whatsapp/metrics")["counters"].get("turn_replayed", 0)
                       for name in cluster.rasa)
        print(f"\n{PATIENTS * MESSAGES_EACH} messages answered once, in order, in {result['elapsed']:.1f} s "
              f"(start-up {start_up:.0f} s, total {time.monotonic() - began:.0f} s); rasa0 killed after "
              f"{result['events']['rasa_killed']} answered, relay0 after {result['events']['relay_killed']}; "
              f"relay1: {counters.get('rasa_replica0_turns', 0)}/{counters.get('rasa_replica1_turns', 0)} turns "
              f"to rasa0/rasa1, rasa0 down {counters.get('rasa_replica0_down', 0)} time(s), "
              f"{counters.get('turn_retried', 0)} tries again; {replayed} turn(s) replayed since the replicas' start")
    finally:
        cluster.stop()


@pytest.mark.skipif(os.environ.get("CLUSTER_CONTROL") != "1",
                    reason="the control starts the cluster again (CLUSTER_CONTROL=1 runs it)")
def test_control_a_tracker_store_per_replica_breaks_the_checks(tmp_path, model, databases, redis_server):
    clinic_url, tracker_url = databases
    own = [f"sqlite:///{tmp_path / f'tracker-{n}.db'}" for n in range(2)]
    cluster = Cluster(tmp_path, model, clinic_url, tracker_url, redis_server.url(5), env=CLUSTER_ENV,
                      tracker_urls=own).start()
    try:
        # The checks read the first replica's tracker store (the other's turns are not there).
        # Fewer patients: the fault shows at once.
        result = run_burst(cluster, clinic_url, own[0], kills=False, count=10)
    finally:
        cluster.stop()
    print(f"control ({result['elapsed']:.1f} s): {len(result['problems'])} findings\n"
          + "\n".join(result["problems"][:15]))
    assert result["problems"], "a tracker store per replica went unnoticed: the checks could not tell"
