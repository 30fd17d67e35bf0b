"""The cluster topology of issue 16 as real processes on this machine, for the cluster test
(tests/test_cluster_e2e.py) and ``make benchmark-cluster`` (benchmarks/cluster_bench.py):

    simulator (Meta) → door (``python -m gateway --role door``) → PostgreSQL clinic database
    ← relays (``--role relay``, RASA_URLS = every replica) → Rasa replicas (``rasa run``,
    WHATSAPP_GATEWAY=1) sharing a PostgreSQL tracker store and a Redis lock store → one
    action server; the relays share the number's send rate in the same Redis.

benchmarks/stack.py's ``Stack`` gives the secrets, the environment, the action server, the
simulator, SIGKILL and logs; this adds the replicas. Each process has a name ("rasa0",
"relay1", "ingress" for the door, "actions", "simulator") and keeps its port when it is
started again. PostgreSQL and Redis are given (tests/pg_support.py, tests/redis_support.py).
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Dict, List, Optional

from benchmarks.stack import LOGGING_CONFIG, PROJECT_ROOT, Stack, free_port

# A webhook's inbox row, a turn's replies and the read receipt must not wait for a sweep
# that runs every few seconds: the values of tests/test_replica_gateway_e2e.py.
FAST_GATEWAY = {
    "WHATSAPP_INBOX_SWEEP_SECONDS": "0.3",
    "WHATSAPP_OUTBOX_SWEEP_SECONDS": "0.5",
    "WHATSAPP_UNCONFIRMED_GRACE_SECONDS": "3",
    "WHATSAPP_INBOX_LEASE_SECONDS": "6",
    "WHATSAPP_INBOUND_RETRY_SECONDS": "0.2",
}
# Rasa keeps its connections to the action server open (aiohttp's pool closes an idle one
# after 15 s); Sanic, under the action server, closes an idle one after 5 s. A call that takes
# a connection the server is closing fails ("Cannot write to closing transport"), Rasa drops
# that action's events and the patient gets fallbacks. Seen in this cluster under load (the
# first run of tests/test_cluster_e2e.py, docs/measurements.md "Cluster"): every Sanic server
# here (the action server, Rasa) keeps idle connections longer than its clients do.
KEEP_ALIVE = {"SANIC_KEEP_ALIVE_TIMEOUT": "75"}


class Cluster:
    def __init__(self, workdir: Path, model: Path, clinic_url: str, tracker_url: str, redis_url: str,
                 replicas: int = 2, relays: int = 2, env: Optional[Dict[str, str]] = None,
                 tracker_urls: Optional[List[str]] = None) -> None:
        """``tracker_urls``: one tracker store per replica instead of the shared one (the
        cluster test's control: what goes wrong when replicas do not share it)."""
        # ingress + split: the simulator posts webhooks to the door ("ingress").
        self.stack = Stack(workdir, model, ingress=True, split=True)
        self.rasa = [f"rasa{n}" for n in range(replicas)]
        self.relays = [f"relay{n}" for n in range(relays)]
        for name in self.rasa + self.relays:
            self.stack.ports[name] = free_port()
        self.tracker_urls = tracker_urls
        self.startup_seconds = float(os.environ.get("CLUSTER_STARTUP_SECONDS") or 600)
        # The project's endpoints.yml (tracker store from RASA_TRACKER_STORE_URL, lock store
        # from REDIS_URL), with this action server's address.
        project = (PROJECT_ROOT / "endpoints.yml").read_text()
        self.endpoints = self.stack.workdir / "cluster-endpoints.yml"
        self.endpoints.write_text(project.replace(
            "http://localhost:5055/webhook", f"http://127.0.0.1:{self.stack.ports['actions']}/webhook"))
        self.stack.env.update({
            "CLINIC_DATABASE_URL": clinic_url,
            "RASA_TRACKER_STORE_URL": tracker_url,
            "REDIS_URL": redis_url,
            "WHATSAPP_GATEWAY": "1",  # the gateway owns the inbox; a replica only answers turns
            "RASA_URLS": ",".join(self.url(name) for name in self.rasa),
            **FAST_GATEWAY,
            **KEEP_ALIVE,
            **(env or {}),
        })

    @property
    def env(self) -> Dict[str, str]:
        return self.stack.env

    def url(self, name: str) -> str:
        return self.stack.url(name)

    # ── processes ─────────────────────────────────────────────────────────────────────────
    def command(self, name: str) -> List[str]:
        if name in self.rasa:
            return [sys.executable, "-m", "scripts.quiet_rasa", "run", "--model", str(self.stack.model),
                    "--port", str(self.stack.ports[name]), "--interface", "127.0.0.1",
                    "--endpoints", str(self.endpoints), "--credentials", "credentials.yml",
                    "--logging-config-file", str(LOGGING_CONFIG)]
        gateway = [sys.executable, "-m", "gateway", "--host", "127.0.0.1", "--port", str(self.stack.ports[name])]
        if name in self.relays:
            return gateway + ["--role", "relay"]
        if name == "ingress":
            return gateway + ["--role", "door", "--relay-url", self.url(self.relays[0])]
        raise KeyError(name)

    def ready_path(self, name: str) -> str:
        return "/webhooks/whatsapp/" if name in self.rasa else "/healthz"

    def launch(self, name: str) -> None:
        """Start ``name`` without waiting for it. Each door (a replica's WhatsApp channel,
        a relay, the door) keeps a journal: one directory each on one host."""
        env = {**self.stack.env, "WHATSAPP_JOURNAL_DIR": str(self.stack.workdir / f"journal-{name}")}
        if name in self.rasa and self.tracker_urls:
            env["RASA_TRACKER_STORE_URL"] = self.tracker_urls[self.rasa.index(name)]
        with (self.stack.workdir / f"{name}.stdout.log").open("a") as out, \
                (self.stack.workdir / f"{name}.stderr.log").open("a") as err:
            self.stack.processes[name] = subprocess.Popen(self.command(name), cwd=PROJECT_ROOT, env=env,
                                                          stdout=out, stderr=err)

    def wait(self, name: str) -> None:
        """Until ``name`` answers (``Stack.wait_for``, with a longer limit: on a machine shared
        with other work, replicas loading the model at once can take minutes)."""
        self.stack.wait_for(self.url(name) + self.ready_path(name), name, self.startup_seconds)

    def restart(self, name: str) -> None:
        self.launch(name)
        self.wait(name)

    def restart_in_background(self, name: str) -> threading.Thread:
        """Started again while the test goes on (a replica's start-up takes tens of seconds)."""
        self.launch(name)
        thread = threading.Thread(target=self.wait, args=(name,), daemon=True)
        thread.start()
        return thread

    def kill(self, name: str) -> None:
        self.stack.kill(name)

    def start(self) -> "Cluster":
        # Everything that does not depend on another process at once: start-up (model
        # loading) is most of the time. Each gateway brings the clinic database to the
        # current schema (serialised by an advisory lock).
        try:
            self.stack.start_actions()
            for name in self.rasa + self.relays:
                self.launch(name)
            for name in self.rasa + self.relays:
                self.wait(name)
            self.restart("ingress")
            self.stack.start_simulator()
        except BaseException:
            self.stop()  # nothing left running when start-up fails
            raise
        return self

    def stop(self) -> None:
        self.stack.stop()

    def pid(self, name: str) -> int:
        return self.stack.processes[name].pid


# ── a burst of patients' messages, and what the simulator got back ───────────────────────
# Ten questions with ten different approved answers (domain/faq.yml: one text per language,
# no random variation), each worded as in its training data: every patient gets the same
# replies, so a reply missing, sent twice or out of order shows in the comparison.
QUESTIONS = (
    "what are your opening hours",
    "where is the clinic located",
    "where can I park",
    "do you accept my insurance",
    "what should I bring to my appointment",
    "how do I prepare for my blood test",
    "what's your phone number",
    "what services do you offer",
    "how can I pay for my visit",
    "privacy policy?",
)


def patients(count: int, prefix: str = "1555888") -> List[str]:
    return [f"{prefix}{n:04d}" for n in range(count)]


def send_burst(cluster: Cluster, wa_ids: List[str], messages: int) -> Dict[str, List[str]]:
    """Every patient writes ``messages`` questions one after the other (the order they wrote),
    all patients at once; returns each patient's inbound wamids in that order."""
    from concurrent.futures import ThreadPoolExecutor

    def write(wa_id: str) -> List[str]:
        # Each returns once the door took the webhook: the inbox has them in this order.
        return [cluster.stack.say(wa_id, QUESTIONS[m % len(QUESTIONS)])["wamid"]
                for m in range(messages)]

    with ThreadPoolExecutor(max_workers=len(wa_ids)) as pool:
        return dict(zip(wa_ids, pool.map(write, wa_ids), strict=True))


def sent_to_patients(cluster: Cluster) -> List[dict]:
    """The business messages the simulator accepted, in the order it took them."""
    return [m for m in cluster.stack.sim("/_sim/messages")["messages"] if m.get("status") != "rejected"]


def turn_of_each_reply(clinic_url: str) -> Dict[str, tuple]:
    """Meta's wamid of each sent reply → (the patient message it answers, its place in that
    turn's replies), from the gateway's outbox (clinic/messaging/store.py, wa_outbound)."""
    from sqlalchemy import create_engine, text

    engine = create_engine(clinic_url, future=True)
    try:
        with engine.connect() as connection:
            rows = connection.execute(text("SELECT wamid, turn_wamid, turn_seq FROM wa_outbound "
                                           "WHERE wamid IS NOT NULL AND turn_wamid IS NOT NULL")).fetchall()
    finally:
        engine.dispose()
    return {wamid: (turn, seq) for wamid, turn, seq in rows}
