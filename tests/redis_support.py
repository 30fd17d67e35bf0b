"""A real Redis for tests: a throwaway ``redis-server`` in a temporary directory.

``redis_server`` (session fixture) starts ``redis-server`` (PATH, else /usr/bin) on a free
127.0.0.1 port (TCP, because Rasa's own ``RedisLockStore``, used as the control in
tests/test_lock_store.py, takes a host and port only), without persistence, and removes it at
the end. No ``redis-server`` → the tests are skipped, except under ``CI=true`` where they fail:
CI must not silently stop testing the lock store (``.ci/run`` installs it).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional

import pytest


@dataclass(frozen=True)
class RedisServer:
    host: str
    port: int
    pid: int = 0  # the server's process (benchmarks read its CPU time)

    def url(self, db: int = 1) -> str:
        return f"redis://{self.host}:{self.port}/{db}"


def find_redis_server() -> Optional[str]:
    found = shutil.which("redis-server")
    if found:
        return found
    return "/usr/bin/redis-server" if os.access("/usr/bin/redis-server", os.X_OK) else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    binary = find_redis_server()
    if binary is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("redis-server is required in CI (.ci/run installs it)")
        pytest.skip("redis-server not available")
    with running_redis(binary) as server:
        yield server


@contextlib.contextmanager
def running_redis(binary: str) -> Iterator[RedisServer]:
    """A throwaway ``redis-server`` (the fixture's; benchmarks/cluster_bench.py uses it too)."""
    workdir = Path(tempfile.mkdtemp(prefix="clinic-redis-"))
    port = _free_port()
    log = (workdir / "redis.log").open("w")
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(workdir),
         "--save", "", "--appendonly", "no", "--daemonize", "no"],
        stdout=log, stderr=subprocess.STDOUT)
    try:
        import redis

        client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=1)
        deadline = time.monotonic() + 30
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("redis-server did not start: "
                                       + (workdir / "redis.log").read_text(errors="replace")[-2000:]) from None
                time.sleep(0.05)
        client.close()
        yield RedisServer("127.0.0.1", port, process.pid)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()
        shutil.rmtree(workdir, ignore_errors=True)
