"""Runs the real processes of the assistant on this machine: the action server, Rasa (with
the WhatsApp and REST channels) and the WhatsApp Cloud API simulator, each on a free
127.0.0.1 port, with their own temporary databases. Used by end-to-end tests and benchmarks.

Processes can be killed (SIGKILL, like a crash) and restarted against the same databases.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Dict, Optional

import yaml
from cryptography.fernet import Fernet

from clinic.at_rest import TRACKER_KEYS_ENV, Keyring, Sealer, new_key_entry

PROJECT_ROOT = Path(__file__).resolve().parent.parent
STARTUP_SECONDS = 240
# Rasa's and the action server's logs as JSON lines, like every other process (clinic/logs.py).
LOGGING_CONFIG = PROJECT_ROOT / "logging.yml"


def action_endpoint_options() -> Dict[str, Any]:
    """endpoints.yml's action_endpoint settings other than its address (enable_selective_domain)."""
    settings = yaml.safe_load((PROJECT_ROOT / "endpoints.yml").read_text(encoding="utf-8")) or {}
    return {k: v for k, v in (settings.get("action_endpoint") or {}).items() if k != "url"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Stack:
    def __init__(self, workdir: Path, model: Path, simulator_args: tuple = (), ingress: bool = False,
                 split: bool = False):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.model = Path(model)
        self.ports = {"actions": free_port(), "rasa": free_port(), "simulator": free_port(),
                      "inbox": free_port(), "ingress": free_port(), "relay": free_port()}
        # ingress=True: webhooks go to the WhatsApp gateway (gateway/server.py),
        # which runs each turn through Rasa and sends the replies.
        self.ingress = ingress or split
        # split=True: the gateway as two processes, a door (webhooks) and a relay (turns).
        self.split = split
        self.secrets = {
            "WHATSAPP_VERIFY_TOKEN": secrets.token_urlsafe(16),
            "WHATSAPP_APP_SECRET": secrets.token_hex(32),
            # The gateway → Rasa turn calls (never Meta's app secret).
            "WHATSAPP_INTERNAL_SECRET": secrets.token_hex(32),
            "WHATSAPP_ACCESS_TOKEN": "TEST" + secrets.token_urlsafe(32),
            "RASA_AUTH_TOKEN": secrets.token_urlsafe(24),  # Rasa's HTTP API (reminder pushes)
        }
        self.database = self.workdir / "clinic.db"
        self.tracker_database = self.workdir / "tracker.db"
        self.env = {
            **os.environ,
            **self.secrets,
            "RASA_TELEMETRY_ENABLED": "false",
            "TF_CPP_MIN_LOG_LEVEL": "2",
            "SQLALCHEMY_SILENCE_UBER_WARNING": "1",
            "PYTHONWARNINGS": "ignore::DeprecationWarning",
            "WHATSAPP_PHONE_NUMBER_ID": "100000000000001",
            "WHATSAPP_API_VERSION": "v23.0",
            "WHATSAPP_API_BASE_URL": f"http://127.0.0.1:{self.ports['simulator']}",
            "CLINIC_DATABASE_URL": f"sqlite:///{self.database}",
            "CLINIC_PSEUDONYM_KEY": secrets.token_hex(16),
            "CLINIC_ENCRYPTION_KEY": Fernet.generate_key().decode(),
            # Patients' uploads and the media they send in the chat (gateway and inbox).
            "CLINIC_DOCUMENT_KEY": base64.urlsafe_b64encode(secrets.token_bytes(32)).decode(),
            # Rasa's tracker store encrypts every event (addons/encrypted_tracker_store.py).
            TRACKER_KEYS_ENV: new_key_entry(),
            # The staff inbox reaches this Rasa's HTTP API (pause/resume, transcripts).
            "RASA_URL": f"http://127.0.0.1:{self.ports['rasa']}",
            "INBOX_SECRET_KEY": secrets.token_hex(32),
        }
        self.endpoints = self.workdir / "endpoints.yml"
        self.endpoints.write_text(
            self.action_endpoint_yaml() +
            'tracker_store:\n  type: addons.encrypted_tracker_store.EncryptedSQLTrackerStore\n'
            f'  dialect: sqlite\n  db: "{self.tracker_database}"\n'
        )
        self.simulator_args = simulator_args
        self.processes: Dict[str, subprocess.Popen] = {}

    def action_endpoint_yaml(self) -> str:
        """This stack's action server, with endpoints.yml's other settings (selective domain):
        a trained model marks the actions that get the domain, so serving it without the
        setting would test a different Rasa from the one `make run` starts."""
        lines = [f'action_endpoint:\n  url: "http://127.0.0.1:{self.ports["actions"]}/webhook"\n']
        lines += [f"  {key}: {json.dumps(value)}\n" for key, value in action_endpoint_options().items()]
        return "".join(lines)

    def tracker_sealer(self) -> Sealer:
        """Opens (and seals) the tracker store's ``events.data`` values, for tests."""
        return Sealer(Keyring.parse(self.env[TRACKER_KEYS_ENV], TRACKER_KEYS_ENV))

    # ── processes ───────────────────────────────────────────────────────────────────────
    def _start(self, name: str, command: list) -> None:
        # Two files: stderr holds the process's log lines (one JSON object each), stdout
        # what it prints for a person (the inbox's demo accounts, the scheduler's figures).
        with (self.workdir / f"{name}.stdout.log").open("a") as out, \
                (self.workdir / f"{name}.stderr.log").open("a") as err:
            self.processes[name] = subprocess.Popen(
                command, cwd=PROJECT_ROOT, env=self.env, stdout=out, stderr=err
            )

    def start(self) -> "Stack":
        if self.ingress:
            self.env["WHATSAPP_GATEWAY"] = "1"  # Rasa leaves the inbox to the gateway
        self.start_actions()
        self.start_simulator()
        self.start_rasa()
        if self.ingress:
            self.start_ingress()
        return self

    def webhook_url(self) -> str:
        """Where Meta (the simulator) posts webhooks in this arrangement."""
        door = "ingress" if self.ingress else "rasa"
        return f"{self.url(door)}/webhooks/whatsapp/webhook"

    def start_ingress(self, relay_url: Optional[str] = None) -> None:
        command = [sys.executable, "-m", "gateway", "--host", "127.0.0.1",
                   "--port", str(self.ports["ingress"]), "--rasa-url", self.url("rasa")]
        if self.split and "relay" not in self.processes:
            self._start("relay", [sys.executable, "-m", "gateway", "--role", "relay",
                                  "--host", "127.0.0.1", "--port", str(self.ports["relay"]),
                                  "--rasa-url", self.url("rasa")])
            self.wait_for(f"{self.url('relay')}/webhooks/whatsapp/", "relay")
        if self.split:
            command += ["--role", "door", "--relay-url", relay_url or self.url("relay")]
        self._start("ingress", command)
        self.wait_for(f"{self.url('ingress')}/webhooks/whatsapp/", "ingress")

    def start_actions(self) -> None:
        # Through scripts/quiet_rasa.py, as `make run` starts it: none of the warnings this
        # project expects, which Python would print as plain text before logging.yml applies.
        self._start("actions", [sys.executable, "-m", "scripts.quiet_rasa", "run", "actions",
                                "--actions", "actions", "--port", str(self.ports["actions"]),
                                "--logging-config-file", str(LOGGING_CONFIG)])
        self.wait_for(f"{self.url('actions')}/health", "actions")

    def start_simulator(self) -> None:
        self._start("simulator", [
            sys.executable, "-m", "simulator", "--host", "127.0.0.1",
            "--port", str(self.ports["simulator"]),
            "--webhook-url", self.webhook_url(),
            "--auto-read", "0.2", "--delivered-delay", "0.05", *self.simulator_args,
        ])
        self.wait_for(f"{self.url('simulator')}/healthz", "simulator")

    def start_rasa(self) -> None:
        self._start("rasa", [
            sys.executable, "-m", "scripts.quiet_rasa", "run", "--model", str(self.model),
            "--port", str(self.ports["rasa"]), "--interface", "127.0.0.1",
            "--endpoints", str(self.endpoints), "--credentials", "credentials.yml",
            # "=" form: a token_urlsafe value may begin with "-", which argparse reads as an option.
            "--enable-api", f"--auth-token={self.secrets['RASA_AUTH_TOKEN']}",
            "--logging-config-file", str(LOGGING_CONFIG),
        ])
        self.wait_for(f"{self.url('rasa')}/webhooks/whatsapp/", "rasa")

    def start_scheduler(self, poll_seconds: float = 0.5) -> None:
        """The reminder scheduler (clinic.reminders.scheduler), pushing into this Rasa."""
        self._start("scheduler", [sys.executable, "-m", "clinic.reminders.scheduler",
                                  "--rasa-url", self.url("rasa"), "--poll-seconds", str(poll_seconds)])

    def start_inbox(self) -> None:
        """The staff inbox (``python -m inbox --demo``): demo staff accounts, WhatsApp replies
        through the simulator, this Rasa's HTTP API."""
        self._start("inbox", [sys.executable, "-m", "inbox", "--host", "127.0.0.1",
                              "--port", str(self.ports["inbox"]), "--demo"])
        self.wait_for(f"{self.url('inbox')}/inbox/health", "inbox")

    def kill(self, name: str) -> None:
        """SIGKILL: the process gets no chance to finish anything (a crash)."""
        process = self.processes.pop(name)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)

    def stop(self) -> None:
        for process in self.processes.values():
            process.terminate()
        for process in self.processes.values():
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
        self.processes.clear()

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}"

    def log(self, name: str) -> str:
        """Everything the process wrote: its stdout, then its stderr (the log lines)."""
        return self.stdout(name) + self.stderr(name)

    def stdout(self, name: str) -> str:
        path = self.workdir / f"{name}.stdout.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stderr(self, name: str) -> str:
        """The process's log lines."""
        path = self.workdir / f"{name}.stderr.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def wait_for(self, url: str, name: str, seconds: float = STARTUP_SECONDS) -> None:
        """Until ``url`` answers 200; RuntimeError with the log's tail when ``name`` exits or
        ``seconds`` pass."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            process = self.processes[name]
            if process.poll() is not None:
                raise RuntimeError(f"{name} exited early:\n{self.log(name)[-4000:]}")
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(0.5)
        raise RuntimeError(f"{name} not ready after {seconds:.0f}s:\n{self.log(name)[-4000:]}")

    # ── HTTP helpers ────────────────────────────────────────────────────────────────────
    def call(self, name: str, path: str, data: Optional[Any] = None, method: Optional[str] = None,
             timeout: float = 60) -> Any:
        body = None if data is None else json.dumps(data).encode()
        request = urllib.request.Request(
            self.url(name) + path, data=body, method=method or ("POST" if body else "GET"),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=timeout) as response:
            raw = response.read()
        return json.loads(raw) if raw else None

    def sim(self, path: str, data: Optional[Any] = None, method: Optional[str] = None) -> Any:
        return self.call("simulator", path, data, method)

    def say(self, wa_id: str, text: str, **options) -> dict:
        return self.sim(f"/_sim/users/{wa_id}/messages", {"text": text, "name": "Synthetic Patient", **options})

    def replies(self, wa_id: str) -> list:
        return self.sim(f"/_sim/messages?to={wa_id}")["messages"]

    def wait_for_replies(self, wa_id: str, count: int, timeout: float = 60) -> list:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [m for m in self.replies(wa_id) if not m.get("error")]
            if len(found) >= count:
                return found
            time.sleep(0.2)
        raise AssertionError(f"expected {count} replies to {wa_id}, got {len(found)}: {found}")

    def metrics(self) -> dict:
        """The WhatsApp channel's counters and inbox, from whichever process owns the inbox."""
        owner = "relay" if self.split else "ingress" if self.ingress else "rasa"
        return self.call(owner, "/webhooks/whatsapp/metrics")

    def door_metrics(self) -> dict:
        """The counters of the process that takes the webhooks."""
        return self.call("ingress" if self.ingress else "rasa", "/webhooks/whatsapp/metrics")


def reply_text(message: dict) -> str:
    """The visible text of a business message as the simulator recorded it."""
    payload = message.get("payload") or {}
    kind = payload.get("type")
    if kind == "text":
        return payload["text"]["body"]
    if kind == "interactive":
        return payload["interactive"].get("body", {}).get("text", "")
    if kind == "template":
        return f"[template {payload['template']['name']}]"
    return f"[{kind}]"
