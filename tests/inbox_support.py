"""Shared set-up for the inbox tests: a real SQLite database at the migrations' head, the
inbox wired to a FakeRasa HTTP server through the real Rasa HTTP clients, staff accounts."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import hashlib
import re
import shutil
import socket
import tempfile
import threading
import time
from pathlib import Path
from typing import Dict

import pyotp
import requests
import uvicorn
from cryptography.fernet import Fernet

from clinic.db import create_schema, make_engine, make_session_factory
from clinic.inbox.audit import AuditLog
from clinic.inbox.model import SYSTEM, Role
from clinic.inbox.rasa_http import RasaConversationControl, RasaHttp, RasaTranscriptSource
from clinic.inbox.service import Inbox, InboxSettings
from clinic.inbox.staff import StaffAccounts, StaffMember
from clinic.inbox.testing import FakeRasa, RecordingReplyGateway
from clinic.privacy import ContactCipher

START = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.timezone.utc)
PASSWORD = "correct horse battery"


def conversation(name: str) -> str:
    """A pseudonymous conversation id, as the WhatsApp channel makes them (64 hex)."""
    return hashlib.sha256(name.encode()).hexdigest()


class Clock:
    def __init__(self, now: dt.datetime = START) -> None:
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, **delta) -> None:
        self.now += dt.timedelta(**delta)


@dataclasses.dataclass
class World:
    inbox: Inbox
    staff: StaffAccounts
    audit: AuditLog
    rasa: FakeRasa
    replies: RecordingReplyGateway
    sessions: object
    clock: Clock
    members: Dict[str, StaffMember]
    secrets: Dict[str, str]

    def totp(self, username: str, at: dt.datetime = None) -> str:
        return pyotp.TOTP(self.secrets[username]).at(at or self.clock())


# name -> (role, teams)
STAFF = {
    "nina": (Role.AGENT, ["nurse"]),
    "noah": (Role.AGENT, ["nurse"]),
    "bill": (Role.AGENT, ["billing"]),
    "sara": (Role.SUPERVISOR, []),
    "adam": (Role.ADMIN, []),
}


_TEMPLATE: dict = {}


def _template(directory: Path) -> dict:
    """One database with the migrations and the staff accounts, made once per test process
    (argon2 hashing is deliberately slow); each test gets a copy of the file."""
    if not _TEMPLATE:
        path = Path(tempfile.mkdtemp(prefix="inbox-template-")) / "clinic.db"
        engine = make_engine(f"sqlite:///{path}")
        create_schema(engine)
        sessions = make_session_factory(engine)
        key = Fernet.generate_key()
        staff = StaffAccounts(sessions, ContactCipher(key), clock=lambda: START)
        secrets = {}
        for name, (role, teams) in STAFF.items():
            account = staff.create(name, PASSWORD, role, teams, display_name=name.title(), by=SYSTEM)
            secrets[name] = account.totp_secret
        engine.dispose()
        _TEMPLATE.update(path=path, key=key, secrets=secrets)
    return _TEMPLATE


def build_world(database_path: Path, rasa: FakeRasa, clock: Clock = None) -> World:
    """A fresh inbox on a copy of the template database at ``database_path``."""
    clock = clock or Clock()
    template = _template(database_path.parent)
    shutil.copyfile(template["path"], database_path)
    engine = make_engine(f"sqlite:///{database_path}")
    create_schema(engine)
    sessions = make_session_factory(engine)
    cipher = ContactCipher(template["key"])
    http = RasaHttp(rasa.url, rasa.token, timeout_seconds=3)
    replies = RecordingReplyGateway(http)
    inbox = Inbox(sessions, cipher, transcripts=RasaTranscriptSource(http),
                  control=RasaConversationControl(http), replies=replies,
                  defaults=InboxSettings(overdue_minutes=15, idle_timeout_minutes=15), clock=clock)
    staff = StaffAccounts(sessions, cipher, clock=clock)
    members = {name: staff.by_username(name) for name in STAFF}
    return World(inbox, staff, AuditLog(sessions), rasa, replies, sessions, clock, members,
                 dict(template["secrets"]))


class LiveClock(Clock):
    """Real time (TOTP codes must match the wall clock in web tests), shiftable."""

    def __init__(self) -> None:
        super().__init__(START)
        self.offset = dt.timedelta(0)

    def __call__(self) -> dt.datetime:
        return dt.datetime.now(dt.timezone.utc) + self.offset

    def advance(self, **delta) -> None:
        self.offset += dt.timedelta(**delta)


CSRF_INPUT = re.compile(r'name="csrf_token" value="([^"]+)"')


@dataclasses.dataclass
class Server:
    url: str
    world: World
    clock_offset: list  # seconds added to the session clock (idle timeout tests)
    server: object
    thread: object


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def running_inbox(world: World):
    """The inbox web app on a real port (uvicorn in a thread), sharing ``world``'s database."""
    from inbox.app import create_app

    offset = [0.0]
    app = create_app(world.inbox, world.staff, world.audit, secret_key="test-secret-key",
                     clock=lambda: time.time() + offset[0], background_seconds=0)
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                           access_log=False, ws="none", lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for _ in range(200):
        if server.started:
            break
        time.sleep(0.025)
    try:
        yield Server(f"http://127.0.0.1:{port}", world, offset, server, thread)
    finally:
        server.should_exit = True
        thread.join(timeout=5)


@contextlib.contextmanager
def inbox_with_live_clock(directory: Path):
    """A fresh clinic database in ``directory`` with the inbox on a real port and a fake Rasa
    behind it, on the wall clock: the set-up of the inbox's staff pages' tests."""
    rasa = FakeRasa()
    rasa.start()
    try:
        world = build_world(directory / "clinic.db", rasa, LiveClock())
        with running_inbox(world) as running:
            yield running
    finally:
        rasa.stop()


def csrf_from(html: str) -> str:
    match = CSRF_INPUT.search(html)
    assert match, "no CSRF field on the page"
    return match.group(1)


def login(server: Server, username: str) -> requests.Session:
    """Password then TOTP through the pages; returns a client with the session cookie and
    its CSRF token in ``client.csrf`` (also sent as X-CSRF-Token)."""
    client = requests.Session()
    client.trust_env = False
    page = client.get(f"{server.url}/inbox/login")
    response = client.post(f"{server.url}/inbox/login", data={
        "username": username, "password": PASSWORD, "csrf_token": csrf_from(page.text)})
    assert response.status_code == 200 and "/inbox/login/totp" in response.url, response.text[:300]
    response = client.post(f"{server.url}/inbox/login/totp", data={
        "code": server.world.totp(username), "csrf_token": csrf_from(response.text)})
    assert response.status_code == 200, response.text[:300]
    me = client.get(f"{server.url}/inbox/api/v1/me").json()
    client.csrf = me["csrf_token"]
    client.headers["X-CSRF-Token"] = client.csrf
    return client


DEMO_PASSWORD = "demo-inbox-password"  # inbox/demo.py: every demo account's


def demo_staff_login(stack, username: str, role: str) -> requests.Session:
    """A demo staff account of a running stack (benchmarks/stack.py) logged in through the
    pages: password, then a TOTP code from the key the inbox printed at start-up. The
    client sends its CSRF token as X-CSRF-Token; ``client.base`` is the inbox's URL."""
    match = re.search(rf"{username}\s+{role}\s+TOTP key (\w+)", stack.log("inbox"))
    assert match, stack.log("inbox")[-2000:]
    base = stack.url("inbox")
    client = requests.Session()
    client.trust_env = False
    page = client.get(f"{base}/inbox/login")
    response = client.post(f"{base}/inbox/login", data={
        "username": username, "password": DEMO_PASSWORD, "csrf_token": csrf_from(page.text)})
    assert "/inbox/login/totp" in response.url, response.text[:300]
    response = client.post(f"{base}/inbox/login/totp", data={
        "code": pyotp.TOTP(match.group(1)).now(), "csrf_token": csrf_from(response.text)})
    assert response.status_code == 200
    client.headers["X-CSRF-Token"] = client.get(f"{base}/inbox/api/v1/me").json()["csrf_token"]
    client.base = base
    return client


def inbox_api(client, method: str, path: str, **body):
    """A call to the inbox's JSON API with a ``demo_staff_login`` client; its answer."""
    response = client.request(method, f"{client.base}/inbox/api/v1{path}", json=body or None, timeout=120)
    assert response.status_code == 200, (path, response.status_code, response.text[:500])
    return response.json()
