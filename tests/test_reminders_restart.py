"""The scheduler as a real process: Rasa down at first (nothing lost), killed with SIGKILL
mid-run with due jobs pending and claimed, restarted: every job is sent exactly once.

"Rasa" here is a small HTTP server speaking Rasa's API (``/domain``, ``trigger_intent``
with ``?token=``) that does what ``action_send_reminder`` does with a job: the conditional
"mark sent", and a message only if it won. The real Rasa is in test_reminders_e2e.py.
"""

from __future__ import annotations

import asyncio
import collections
import datetime as dt
import os
import signal
import subprocess
import sys
import threading
import time

import pytest
from aiohttp import web

from benchmarks.stack import PROJECT_ROOT, free_port
from clinic.db import create_schema, make_engine, make_session_factory
from clinic.reminders.planner import ReminderPlanner
from clinic.reminders.store import ReminderStore
from clinic.reminders.tables import ReminderJobRow
from clinic.reminders.timing import QuietHours, ReminderPolicy
from clinic.scheduling.demo_data import install_demo_clinic
from clinic.scheduling.model import SlotQuery
from clinic.scheduling.sql_backend import SqlSchedulingBackend
from clinic.settings import load_settings

TZ = load_settings().timezone
TOKEN = "test-token-not-a-secret"


class FakeRasa:
    def __init__(self, store: ReminderStore, delay: float = 0.05):
        self.store, self.delay = store, delay
        self.sent = collections.Counter()
        self.pushes = 0
        self.port = free_port()
        self._loop = asyncio.new_event_loop()
        self._runner = None

    async def _domain(self, request):
        assert request.query.get("token") == TOKEN
        return web.json_response({"session_config": {"session_expiration_time": 0}})

    async def _trigger(self, request):
        if request.query.get("token") != TOKEN:
            return web.json_response({"status": "failure"}, status=401)
        body = await request.json()
        self.pushes += 1
        await asyncio.sleep(self.delay)  # slow enough that a kill lands mid-batch
        job_id = body["entities"]["reminder_job"]
        assert body["name"] == "EXTERNAL_appointment_reminder"
        if await asyncio.to_thread(self.store.mark_sent, job_id):
            self.sent[job_id] += 1
        return web.json_response({"tracker": {}})

    def start(self) -> None:
        app = web.Application()
        app.router.add_get("/domain", self._domain)
        app.router.add_post("/conversations/{cid}/trigger_intent", self._trigger)

        async def serve():
            self._runner = web.AppRunner(app)
            await self._runner.setup()
            await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

        threading.Thread(target=self._loop.run_forever, daemon=True).start()
        asyncio.run_coroutine_threadsafe(serve(), self._loop).result(10)

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)


def scheduler(env, workdir, name):
    log = (workdir / f"{name}.log").open("a")
    return subprocess.Popen([sys.executable, "-m", "clinic.reminders.scheduler"], cwd=PROJECT_ROOT,
                            env=env, stdout=log, stderr=subprocess.STDOUT)


def wait_until(condition, timeout=60, what=""):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.servers
def test_killed_scheduler_restarts_and_every_job_goes_out_exactly_once(tmp_path):
    url = f"sqlite:///{tmp_path / 'clinic.db'}"
    engine = make_engine(url)
    create_schema(engine)
    sessions = make_session_factory(engine)
    now = dt.datetime.now(dt.timezone.utc)
    install_demo_clinic(sessions, timezone=TZ, weeks=3, now=now)
    local_now = now.astimezone(TZ)
    quiet = QuietHours((local_now + dt.timedelta(hours=6)).time().replace(second=0, microsecond=0),
                       (local_now + dt.timedelta(hours=7)).time().replace(second=0, microsecond=0), TZ)
    backend = SqlSchedulingBackend(sessions, listeners=(ReminderPlanner(ReminderPolicy((24.0, 2.0), quiet, None)),))
    earliest = now + dt.timedelta(days=3)
    slots = backend.search_slots(SlotQuery("gp_consultation", earliest, earliest + dt.timedelta(days=10), limit=40))
    for n, slot in enumerate(slots):
        patient = backend.register_patient(f"contact-{n}", "Synthetic Patient", dt.date(1980, 1, 1), f"conv-{n}", "whatsapp")
        backend.book(slot.id, patient.id, "gp_consultation")
    with sessions() as session, session.begin():
        session.execute(ReminderJobRow.__table__.update().values(available_at=now - dt.timedelta(seconds=1)))
        total = session.query(ReminderJobRow).filter_by(status="pending").count()
    assert total == 2 * len(slots) and total >= 60

    store = ReminderStore(sessions)
    rasa = FakeRasa(store)
    env = {**os.environ, "CLINIC_DATABASE_URL": url, "RASA_URL": f"http://127.0.0.1:{rasa.port}",
           "RASA_AUTH_TOKEN": TOKEN, "REMINDER_POLL_SECONDS": "0.2", "REMINDER_BATCH_SIZE": "8",
           "REMINDER_STALE_SECONDS": "1", "CLINIC_QUIET_HOURS": f"{quiet.start:%H:%M}-{quiet.end:%H:%M}",
           "PYTHONWARNINGS": "ignore"}

    first = scheduler(env, tmp_path, "first")
    try:
        time.sleep(2)  # Rasa is down: jobs go back to pending, nothing is lost or used up
        counts = store.counts()
        assert counts.get("sent", 0) == 0 and counts.get("failed", 0) == 0
        rasa.start()
        wait_until(lambda: sum(rasa.sent.values()) >= 15, what="first sends")
        first.send_signal(signal.SIGKILL)  # a crash, mid-batch
        first.wait(10)
        counts = store.counts()
        assert counts.get("pending", 0) + counts.get("dispatching", 0) > 0  # work was left

        second = scheduler(env, tmp_path, "second")
        wait_until(lambda: store.counts() == {"sent": total}, what="all sent")
        second.send_signal(signal.SIGTERM)
        assert second.wait(20) == 0
    finally:
        for process in (first, locals().get("second")):
            if process is not None and process.poll() is None:
                process.kill()
        rasa.stop() if rasa._runner else None

    assert len(rasa.sent) == total and set(rasa.sent.values()) == {1}  # each exactly once
    log = (tmp_path / "second.log").read_text()
    assert "reminder scheduler figures" in log
    assert "Synthetic Patient" not in log + (tmp_path / "first.log").read_text()
