"""Two Rasa replicas, one conversation at a time (issue 16, item 3), with real servers: a
throwaway redis-server (the lock store), a throwaway PostgreSQL (the shared SQL tracker
store), one action server and two ``rasa run`` processes with the same model and the
project's endpoints.yml (REDIS_URL and RASA_TRACKER_STORE_URL set, as the README says).

Every conversation's messages are sent at once, alternately to both replicas, through
Rasa's REST channel (each request answers with that message's replies). Then, from the
tracker store:

(a) every message was processed exactly once (one ``user`` event per message sent);
(b) a conversation's turns are never interleaved: each user message is followed by its own
    replies (those its HTTP request got back) and the ``action_listen`` that ends its turn
    before the next user message.

The control (``REPLICAS_CONTROL=1``; it starts the replicas again, so it is not in the
suite's time budget) runs the same burst with in-memory locks (no REDIS_URL) and requires
the same checks to find a violation, so the checks above can fail.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Dict, List

import pytest
from sqlalchemy import create_engine, text

from benchmarks.stack import PROJECT_ROOT, Stack, free_port
from tests.pg_support import fresh_database

pytestmark = [pytest.mark.model, pytest.mark.servers]

CONVERSATIONS = 10
MESSAGES = ["hi", "what are your opening hours", "where can I park", "where are you located", "thank you"]
REPLICAS = ("rasa_a", "rasa_b")


class Replicas:
    """An action server and two Rasa replicas sharing a PostgreSQL tracker store (and, with
    ``redis_url``, a Redis lock store)."""

    def __init__(self, workdir: Path, model: Path, tracker_url: str, redis_url: str = ""):
        self.stack = Stack(workdir, model)  # its environment (secrets, clinic database) and action server
        self.ports = {name: free_port() for name in REPLICAS}
        self.tracker_url = tracker_url
        # The project's endpoints.yml, with this action server's address.
        project = (PROJECT_ROOT / "endpoints.yml").read_text()
        assert "http://localhost:5055/webhook" in project
        self.endpoints = workdir / "endpoints.yml"
        self.endpoints.write_text(project.replace(
            "http://localhost:5055/webhook", f"http://127.0.0.1:{self.stack.ports['actions']}/webhook"))
        # As deployed: WHATSAPP_GATEWAY=1 (the gateway owns the WhatsApp inbox, a replica only
        # answers turns). Each replica still opens a webhook journal: on one host they need
        # a directory each.
        self.env = {**self.stack.env, "RASA_TRACKER_STORE_URL": tracker_url, "REDIS_URL": redis_url,
                    "WHATSAPP_GATEWAY": "1"}

    def start(self) -> "Replicas":
        self.stack.start_actions()
        for name in REPLICAS:  # both at once: start-up is most of this test's time
            log = (self.stack.workdir / f"{name}.log").open("a")
            self.stack.processes[name] = subprocess.Popen(
                [sys.executable, "-m", "rasa", "run", "--model", str(self.stack.model),
                 "--port", str(self.ports[name]), "--interface", "127.0.0.1",
                 "--endpoints", str(self.endpoints), "--credentials", "credentials.yml"],
                cwd=PROJECT_ROOT, env={**self.env, "WHATSAPP_JOURNAL_DIR": str(self.stack.workdir / f"journal-{name}")},
                stdout=log, stderr=subprocess.STDOUT)
        for name in REPLICAS:
            self.stack.wait_for(f"{self.url(name)}/webhooks/rest/", name)
        return self

    def stop(self) -> None:
        self.stack.stop()

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}"

    def say(self, replica: str, sender: str, message: str) -> List[dict]:
        body = json.dumps({"sender": sender, "message": message}).encode()
        request = urllib.request.Request(f"{self.url(replica)}/webhooks/rest/webhook", data=body,
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=120) as response:
            return json.loads(response.read())


def burst(replicas: Replicas) -> Dict[str, Dict[str, List[str]]]:
    """Every message of every conversation at once, alternately to both replicas; the
    replies each request got, by conversation and message."""
    senders = [f"replica-test-{uuid.uuid4().hex[:12]}" for _ in range(CONVERSATIONS)]
    jobs = [(REPLICAS[(c + m) % 2], sender, message)
            for m, message in enumerate(MESSAGES) for c, sender in enumerate(senders)]
    answers: Dict[str, Dict[str, List[str]]] = {sender: {} for sender in senders}

    def send(job) -> None:
        replica, sender, message = job
        try:
            replies = replicas.say(replica, sender, message)
            answers[sender][message] = [r.get("text") or "" for r in replies]
        except OSError as error:  # an HTTP error or time-out: the message failed
            answers[sender][message] = [f"<failed: {error}>"]

    with ThreadPoolExecutor(len(jobs)) as pool:
        list(pool.map(send, jobs))
    return answers


def tracker_events(tracker_url: str, sender: str, sealer) -> List[dict]:
    """The sender's events, decrypted (the tracker store encrypts them at rest: issue 18)."""
    engine = create_engine(tracker_url, future=True)
    try:
        with engine.connect() as connection:
            rows = connection.execute(text("SELECT type_name, data FROM events WHERE sender_id = :s ORDER BY id"),
                                      {"s": sender}).fetchall()
    finally:
        engine.dispose()
    return [{"event": kind, **json.loads(sealer.open(data))} for kind, data in rows]


def violations(tracker_url: str, answers: Dict[str, Dict[str, List[str]]], sealer) -> List[str]:
    """What (a) and (b) find wrong, one line per finding (empty: all is well)."""
    found: List[str] = []
    for sender, replies_by_message in answers.items():
        events = tracker_events(tracker_url, sender, sealer)
        for message, replies in replies_by_message.items():
            if any(r.startswith("<failed") for r in replies):
                found.append(f"{sender}: {message!r} failed: {replies[0]}")
        users = [i for i, e in enumerate(events) if e["event"] == "user"]
        texts = [events[i].get("text") for i in users]
        # (a) exactly once each
        if sorted(texts) != sorted(MESSAGES):
            found.append(f"{sender}: user events {texts} for the {len(MESSAGES)} messages sent")
        # (b) each turn whole, with its own replies, before the next user message
        for n, start in enumerate(users):
            end = users[n + 1] if n + 1 < len(users) else len(events)
            turn = events[start + 1:end]
            # The first message's replies begin with the welcome its session start sent.
            before = events[:start] if n == 0 else []
            bot = [e.get("text") or "" for e in before + turn if e["event"] == "bot"]
            expected = replies_by_message.get(events[start].get("text"))
            if expected is not None and bot != expected:
                found.append(f"{sender}: after {events[start].get('text')!r} the tracker has replies "
                             f"{bot}, its request got {expected}")
            actions = [e.get("name") for e in turn if e["event"] == "action"]
            if n + 1 < len(users) and (not actions or actions[-1] != "action_listen"):
                found.append(f"{sender}: {events[users[n + 1]].get('text')!r} came in before the turn of "
                             f"{events[start].get('text')!r} ended (actions {actions})")
    return found


def run_burst(tmp_path, model, postgres_url, redis_url: str):
    with fresh_database(postgres_url, "replicas") as tracker_url:
        replicas = Replicas(tmp_path, model, tracker_url, redis_url).start()
        try:
            started = time.monotonic()
            answers = burst(replicas)
            elapsed = time.monotonic() - started
            return violations(tracker_url, answers, replicas.stack.tracker_sealer()), elapsed
        finally:
            replicas.stop()


def test_two_replicas_process_each_conversation_one_turn_at_a_time(tmp_path, model, postgres_url, redis_server):
    import redis

    def transactions() -> int:
        client = redis.Redis(host=redis_server.host, port=redis_server.port)
        try:
            return client.info("commandstats").get("cmdstat_exec", {}).get("calls", 0)
        finally:
            client.close()

    before = transactions()
    found, elapsed = run_burst(tmp_path, model, postgres_url, redis_server.url(3))
    assert found == [], "\n".join(found[:20])
    # The replicas took their locks in Redis: a ticket and its clean-up per message at least.
    assert transactions() - before >= 2 * CONVERSATIONS * len(MESSAGES)
    print(f"{CONVERSATIONS * len(MESSAGES)} messages through 2 replicas in {elapsed:.1f}s")


@pytest.mark.skipif(os.environ.get("REPLICAS_CONTROL") != "1",
                    reason="the control starts the replicas again (REPLICAS_CONTROL=1 runs it)")
def test_control_in_memory_locks_let_two_replicas_collide(tmp_path, model, postgres_url):
    found, elapsed = run_burst(tmp_path, model, postgres_url, redis_url="")
    print(f"control ({elapsed:.1f}s): {len(found)} violations\n" + "\n".join(found[:30]))
    assert found, "in-memory locks showed no collision: the checks could not tell"
