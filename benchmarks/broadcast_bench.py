"""Broadcast benchmark (a command, not a test): ``python -m benchmarks.broadcast_bench``.

N opted-in synthetic recipients (default 10,000) get one health tip from the broadcast
runner (``python -m clinic.broadcasts run``, a real process), which queues them into the
outbox; the WhatsApp gateway (``python -m gateway --role relay``, a real process: it owns the
outbox and its one rate limit, WHATSAPP_SEND_RATE = ``--rate``) sends them to the WhatsApp
Cloud API simulator (a real process, enforcing Meta's 80 msg/s as 130429 and the pair rate
as 131056).
Three runs, each on a fresh database and simulator:

  clean     no faults
  faults    5 % of sends answered 503, 2 % 130429, 1 % 131000 (the client retries them)
  crash     the runner is SIGKILLed mid-campaign, restarted, and must finish exactly once

Figures from what the simulator received: throughput (sustained, and the busiest second),
duplicates (a recipient with two messages), losses (a recipient with none, by row state),
pacing (two messages to one recipient within 6 s), rejected sends. Only 127.0.0.1 is used.
"""

from __future__ import annotations

import argparse
import collections
import datetime as dt
import json
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from cryptography.fernet import Fernet

from benchmarks.stack import PROJECT_ROOT, free_port

PHONE_NUMBER_ID = "100000000000001"
TOKEN = "BENCH" + secrets.token_urlsafe(16)
CAMPAIGN_FILE = PROJECT_ROOT / "campaigns" / "flu_season.yml"


# ── seeding (shared with tests/test_broadcasts.py) ──────────────────────────────────────
def wa_id_for(n: int, prefix: str = "1555") -> str:
    return f"{prefix}{n:07d}"


def seed_subscribers(sessions, cipher, count: int, pseudonym_key: bytes, opted_in: bool = True,
                     start: int = 0, prefix: str = "1555") -> List[Tuple[str, str, str]]:
    """``count`` synthetic WhatsApp contacts (encrypted address in ``wa_contacts``) with a
    recorded health-tips opt-in; returns (wa_id, conversation_id, contact_key) per contact.
    Bulk inserts: 10,000 contacts in a few seconds."""
    from clinic.consent import ConsentRow
    from clinic.messaging.store import ContactRow
    from clinic.privacy import contact_key

    now = dt.datetime.now(dt.timezone.utc)
    people = []
    for n in range(start, start + count):
        wa_id = wa_id_for(n, prefix)
        conversation = contact_key(wa_id, "wa", pseudonym_key)  # the channel's pseudonym
        people.append((wa_id, conversation, contact_key(conversation, "whatsapp", pseudonym_key)))
    with sessions() as session, session.begin():
        session.bulk_insert_mappings(ContactRow, [
            {"conversation_id": conv, "address_encrypted": cipher.encrypt(wa_id),
             "last_inbound_at": now - dt.timedelta(days=3), "created_at": now}
            for wa_id, conv, _ in people])
        session.bulk_insert_mappings(ConsentRow, [
            {"contact_key": key, "reminders": True, "health_tips": opted_in,
             "health_tips_changed_at": now, "health_tips_wording": "utter_ask_opt_in@v1",
             "conversation_id": conv, "channel": "whatsapp"}
            for _, conv, key in people])
    return people


def analyse(messages: List[dict], people: List[Tuple[str, str, str]], rows_by_status: Dict[str, int],
            pacing_seconds: float = 6.0) -> dict:
    """Exactly-once and rate figures from the simulator's record of business messages."""
    accepted = [m for m in messages if m.get("status") != "rejected" and m.get("type") == "template"]
    rejected = [m for m in messages if m.get("status") == "rejected"]
    by_user: Dict[str, List[float]] = collections.defaultdict(list)
    for m in accepted:
        by_user[m["wa_id"]].append(m["created_at"])
    expected = {wa_id for wa_id, _, _ in people}
    times = sorted(m["created_at"] for m in accepted)
    busiest = 0
    left = 0
    for right, moment in enumerate(times):  # most messages inside any 1-second window
        while moment - times[left] >= 1.0:
            left += 1
        busiest = max(busiest, right - left + 1)
    pacing_violations = sum(1 for stamps in by_user.values()
                            for a, b in zip(sorted(stamps), sorted(stamps)[1:], strict=False) if b - a < pacing_seconds)
    span = times[-1] - times[0] if len(times) > 1 else 0.0
    return {
        "recipients": len(expected),
        "received": len(accepted),
        "distinct_received": len(by_user),
        "duplicates": sum(len(v) - 1 for v in by_user.values() if len(v) > 1),
        "not_received": len(expected - set(by_user)),
        "unexpected": len(set(by_user) - expected),
        "throughput_per_s": round((len(times) - 1) / span, 1) if span else None,
        "busiest_second": busiest,
        "pacing_violations": pacing_violations,
        "rejected": collections.Counter(str((m.get("error") or {}).get("code")) for m in rejected),
        "rows": rows_by_status,
    }


# ── the benchmark ───────────────────────────────────────────────────────────────────────
class Bench:
    def __init__(self, workdir: Path, count: int, rate: float, concurrency: int):
        self.workdir, self.count, self.rate, self.concurrency = workdir, count, rate, concurrency
        self.port = free_port()
        self.env = {
            **os.environ, "WHATSAPP_ACCESS_TOKEN": TOKEN, "WHATSAPP_APP_SECRET": secrets.token_hex(16),
            "WHATSAPP_PHONE_NUMBER_ID": PHONE_NUMBER_ID, "WHATSAPP_API_VERSION": "v23.0",
            "WHATSAPP_API_BASE_URL": f"http://127.0.0.1:{self.port}",
            "CLINIC_ENCRYPTION_KEY": Fernet.generate_key().decode(),
            "CLINIC_PSEUDONYM_KEY": secrets.token_hex(16), "SQLALCHEMY_SILENCE_UBER_WARNING": "1",
        }
        self.simulator: Optional[subprocess.Popen] = None
        self.gateway: Optional[subprocess.Popen] = None

    def start_simulator(self) -> None:
        log = (self.workdir / "simulator.log").open("a")
        self.simulator = subprocess.Popen(
            [sys.executable, "-m", "simulator", "--host", "127.0.0.1", "--port", str(self.port),
             "--webhook-url", "none", "--throughput", "80", "--pair-rate", "1", "--delivered-delay", "0.2",
             "--log-level", "WARNING"],
            cwd=PROJECT_ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.time() + 30
        import urllib.request
        while time.time() < deadline:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=1).read()
                return
            except OSError:
                time.sleep(0.2)
        raise SystemExit("the simulator did not start (see simulator.log)")

    def stop_simulator(self) -> None:
        if self.simulator is not None:
            self.simulator.terminate()
            self.simulator.wait(10)
            self.simulator = None

    def start_gateway(self) -> None:
        """The process that owns the outbox: it sends what the runner queues."""
        import urllib.request

        port = free_port()
        env = {**self.env, "WHATSAPP_VERIFY_TOKEN": secrets.token_urlsafe(16),
               "WHATSAPP_INTERNAL_SECRET": secrets.token_hex(32), "WHATSAPP_SEND_RATE": str(self.rate),
               "WHATSAPP_OUTBOX_POLL_SECONDS": "0.05"}
        log = (self.workdir / "gateway.log").open("a")
        self.gateway = subprocess.Popen(
            [sys.executable, "-m", "gateway", "--role", "relay", "--host", "127.0.0.1", "--port", str(port),
             "--rasa-url", "http://127.0.0.1:9"], cwd=PROJECT_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.time() + 120
        while time.time() < deadline:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/webhooks/whatsapp/", timeout=1).read()
                return
            except OSError:
                time.sleep(0.2)
        raise SystemExit("the gateway did not start (see gateway.log)")

    def stop_gateway(self) -> None:
        if self.gateway is not None:
            self.gateway.terminate()
            self.gateway.wait(30)
            self.gateway = None

    def prepare(self, name: str) -> Tuple[str, list]:
        from clinic.db import create_schema, make_engine, make_session_factory
        from clinic.privacy import ContactCipher

        database = self.workdir / f"{name}.db"
        url = f"sqlite:///{database}"
        engine = make_engine(url)
        create_schema(engine)
        sessions = make_session_factory(engine)
        cipher = ContactCipher(self.env["CLINIC_ENCRYPTION_KEY"].encode())
        people = seed_subscribers(sessions, cipher, self.count, self.env["CLINIC_PSEUDONYM_KEY"].encode())
        engine.dispose()
        self.env["CLINIC_DATABASE_URL"] = url
        created = self.cli("create", str(CAMPAIGN_FILE))
        assert created.returncode == 0, created.stderr
        return url, people

    def cli(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "clinic.broadcasts", *args], cwd=PROJECT_ROOT,
                              env=self.env, capture_output=True, text=True, timeout=3600)

    def run_args(self) -> List[str]:
        return [sys.executable, "-m", "clinic.broadcasts", "run", "flu_season", "--rate", str(self.rate),
                "--concurrency", str(self.concurrency), "--progress-every", "10"]

    def sim(self, path: str, body: Optional[dict] = None):
        import urllib.request
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}",
                                         data=None if body is None else json.dumps(body).encode(),
                                         headers={"Content-Type": "application/json"},
                                         method="GET" if body is None else "POST")
        with urllib.request.urlopen(request, timeout=60) as response:
            return json.loads(response.read())

    def rows(self) -> Dict[str, int]:
        from sqlalchemy import func, select

        from clinic.broadcasts.tables import RecipientRow
        from clinic.db import make_engine, make_session_factory

        engine = make_engine(self.env["CLINIC_DATABASE_URL"])
        try:
            with make_session_factory(engine)() as session:
                return dict(session.execute(select(RecipientRow.status, func.count())
                                            .group_by(RecipientRow.status)).all())
        finally:
            engine.dispose()

    def one(self, name: str, faults: Optional[list] = None, crash_after: Optional[float] = None) -> dict:
        self.start_simulator()
        try:
            _, people = self.prepare(name)
            self.start_gateway()
            if faults:
                self.sim("/_sim/faults", {"faults": faults})
            started = time.perf_counter()
            log = (self.workdir / f"runner-{name}.log").open("a")
            runs = 1
            process = subprocess.Popen(self.run_args(), cwd=PROJECT_ROOT, env=self.env, stdout=log,
                                       stderr=subprocess.STDOUT)
            killed_at_rows = None
            if crash_after is not None:
                time.sleep(crash_after)
                process.send_signal(signal.SIGKILL)
                process.wait(30)
                killed_at_rows = self.rows()
                runs += 1
                process = subprocess.Popen(self.run_args(), cwd=PROJECT_ROOT, env=self.env, stdout=log,
                                           stderr=subprocess.STDOUT)
            code = process.wait(3600)
            elapsed = time.perf_counter() - started
            messages = self.sim("/_sim/messages")["messages"]
            figures = analyse(messages, people, self.rows())
            figures.update({"run": name, "exit_code": code, "runner_processes": runs,
                            "wall_seconds": round(elapsed, 1)})
            if killed_at_rows is not None:
                figures["rows_at_kill"] = killed_at_rows
            return figures
        finally:
            self.stop_gateway()
            self.stop_simulator()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipients", type=int, default=10_000)
    parser.add_argument("--rate", type=float, default=80.0, help="runner rate, msg/s (Meta's default ceiling: 80)")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--runs", default="clean,faults,crash")
    parser.add_argument("--crash-after", type=float, default=None,
                        help="seconds before the SIGKILL (default: 40%% of the expected duration)")
    parser.add_argument("--out", default=str(PROJECT_ROOT / "results" / "broadcast_bench.json"))
    args = parser.parse_args(argv)
    crash_after = args.crash_after or max(2.0, 0.4 * args.recipients / args.rate)
    faults = [{"http": 503, "fraction": 0.05, "seed": 1}, {"code": 130429, "fraction": 0.02, "seed": 2},
              {"code": 131000, "fraction": 0.01, "seed": 3}]
    results = []
    with tempfile.TemporaryDirectory(prefix="broadcast-bench-") as tmp:
        bench = Bench(Path(tmp), args.recipients, args.rate, args.concurrency)
        for name in [r.strip() for r in args.runs.split(",") if r.strip()]:
            print(f"── {name}: {args.recipients} recipients at {args.rate:g} msg/s …", flush=True)
            figures = bench.one(name, faults=faults if name == "faults" else None,
                                crash_after=crash_after if name == "crash" else None)
            print(json.dumps(figures, indent=2, default=str), flush=True)
            results.append(figures)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2, default=str))
    ok = all(r["duplicates"] == 0 and r["pacing_violations"] == 0 and r["unexpected"] == 0 for r in results)
    print(f"written {args.out}; exactly-once and pacing {'held' if ok else 'VIOLATED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
