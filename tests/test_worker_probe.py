"""Liveness, readiness and /metrics for the workers without a web server of their own
(issue 16, item 4; clinic/worker_probe.py): the reminder scheduler and the survey sender.

- The probe: alive while the loop beats, 503 once it has not beaten for ``stale_after``; ready
  while the database answers; the worker's figures in Prometheus's text format.
- The real scheduler process (``python -m clinic.reminders.scheduler``) with
  WORKER_HEALTH_ADDRESS answers all three over HTTP, its loop count rising as it ticks.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from benchmarks.stack import PROJECT_ROOT, free_port
from clinic.worker_probe import WorkerProbe, address_argument, figures_of, parse_address


def get(url: str):
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def test_alive_while_the_loop_beats_and_stale_after_it_stops():
    now = [100.0]
    probe = WorkerProbe("reminders", stale_after=60, ready=lambda: True, clock=lambda: now[0])
    port = probe.serve("127.0.0.1", 0)
    try:
        assert get(f"http://127.0.0.1:{port}/healthz")[0] == 200
        now[0] += 61  # the loop is stuck
        assert get(f"http://127.0.0.1:{port}/healthz") == (503, "stale\n")
        probe.beat({"sent": 3, "failed": 0, "skipped_quiet": 1.5})
        assert get(f"http://127.0.0.1:{port}/healthz")[0] == 200
        status, metrics = get(f"http://127.0.0.1:{port}/metrics")
        assert status == 200
        assert "clinic_reminders_loops_total 1.0" in metrics
        assert 'clinic_reminders_figure{name="sent"} 3.0' in metrics
        assert "process_cpu_seconds_total" in metrics
        assert get(f"http://127.0.0.1:{port}/nothing")[0] == 404
    finally:
        probe.close()


def test_not_ready_while_the_database_does_not_answer():
    def database():
        raise OSError("connection refused")

    probe = WorkerProbe("surveys", stale_after=60, ready=database)
    port = probe.serve("127.0.0.1", 0)
    try:
        assert get(f"http://127.0.0.1:{port}/readyz") == (503, "not ready\n")
        assert get(f"http://127.0.0.1:{port}/healthz")[0] == 200  # alive: restarting it would not help
    finally:
        probe.close()


def test_addresses_and_figures():
    assert parse_address("") is None and parse_address("0.0.0.0:8095") == ("0.0.0.0", 8095)
    assert parse_address(":8095") == ("127.0.0.1", 8095)
    for bad in ("8095x", "host", "host:0", "host:70000"):
        with pytest.raises(ValueError):
            parse_address(bad)
    import argparse
    with pytest.raises(argparse.ArgumentTypeError):
        address_argument("nope")
    assert figures_of({"sent": 2, "note": "x", "flag": True}) == {"sent": 2.0}


@pytest.mark.servers
def test_the_scheduler_process_answers_its_probes(tmp_path):
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT), "WORKER_HEALTH_ADDRESS": f"127.0.0.1:{port}",
           "CLINIC_DATABASE_URL": f"sqlite:///{tmp_path / 'clinic.db'}", "LOG_FORMAT": "text"}
    process = subprocess.Popen([sys.executable, "-m", "clinic.reminders.scheduler", "--poll-seconds", "0.2",
                                "--no-purge", "--rasa-url", "http://127.0.0.1:9"], cwd=PROJECT_ROOT, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if get(f"http://127.0.0.1:{port}/healthz")[0] == 200:
                    break
            except OSError:
                pass
            assert process.poll() is None, process.stdout.read().decode()[-2000:]
            time.sleep(0.2)
        assert get(f"http://127.0.0.1:{port}/readyz") == (200, "ready\n")
        loops = []
        for _ in range(2):
            metrics = get(f"http://127.0.0.1:{port}/metrics")[1]
            line = next(line for line in metrics.splitlines() if line.startswith("clinic_reminders_loops_total"))
            loops.append(float(line.split()[-1]))
            time.sleep(1.0)
        assert loops[1] > loops[0] >= 1  # the ticks come round
        assert 'clinic_reminders_figure{name="recalls_planned"}' in metrics
    finally:
        process.terminate()
        process.wait(timeout=30)
