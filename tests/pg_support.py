"""A real PostgreSQL for tests and benchmarks: a throwaway cluster, or ``TEST_POSTGRES_URL``.

``postgres_url`` (session fixture) yields a SQLAlchemy URL of an empty database:

* ``TEST_POSTGRES_URL`` set → that server is used (a database is created on it and dropped
  at the end, so the URL's user needs CREATEDB);
* otherwise a cluster is created with ``initdb``/``pg_ctl`` from /usr/lib/postgresql/*/bin
  (run as the ``postgres`` user via ``runuser`` when we are root, since PostgreSQL refuses
  to run as root) in a temporary directory, listening only on a Unix socket inside its data
  directory (no TCP port opened), and removed at the end;
* no PostgreSQL binaries → the tests are skipped, except under ``CI=true`` where they fail:
  CI must not silently stop testing PostgreSQL (``.ci/run`` installs it).

``fresh_database(server_url)`` gives each test its own database on the same server.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path
from typing import Iterator, List, Optional

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

TEST_POSTGRES_URL_ENV = "TEST_POSTGRES_URL"


class PostgresUnavailable(RuntimeError):
    pass


def find_bindir() -> Optional[Path]:
    """The newest /usr/lib/postgresql/<version>/bin that has initdb and pg_ctl."""
    candidates = []
    for path in glob.glob("/usr/lib/postgresql/*/bin"):
        version = Path(path).parent.name
        if os.access(Path(path) / "initdb", os.X_OK) and os.access(Path(path) / "pg_ctl", os.X_OK):
            candidates.append((int(version) if version.isdigit() else 0, Path(path)))
    return max(candidates)[1] if candidates else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ThrowawayCluster:
    """initdb + pg_ctl in a temporary directory; ``stop()`` removes everything."""

    def __init__(self, bindir: Optional[Path] = None):
        self.bindir = bindir or find_bindir()
        if self.bindir is None:
            raise PostgresUnavailable("PostgreSQL binaries not found under /usr/lib/postgresql/*/bin")
        self.base = Path(tempfile.mkdtemp(prefix="clinic-pg-"))
        self.data = self.base / "data"
        self.port = _free_port()
        self.user = "postgres"
        self._as_postgres: List[str] = []
        if os.geteuid() == 0:
            try:
                entry = pwd.getpwnam("postgres")
            except KeyError as exc:
                raise PostgresUnavailable("running as root but there is no 'postgres' user") from exc
            os.chown(self.base, entry.pw_uid, entry.pw_gid)
            self._as_postgres = ["runuser", "-u", "postgres", "--"]
        self.started = False

    def _run(self, *args: str) -> None:
        result = subprocess.run(self._as_postgres + list(args), capture_output=True, text=True,
                                timeout=120)
        if result.returncode != 0:
            raise PostgresUnavailable(f"{Path(args[0]).name} failed: {result.stderr.strip()[-500:]}")

    def start(self) -> "ThrowawayCluster":
        self._run(str(self.bindir / "initdb"), "-D", str(self.data), "-U", self.user,
                  "--auth=trust", "-E", "UTF8", "--locale=C", "--no-sync")
        # Unix socket only, in the data directory (no TCP port opened); durability off:
        # the cluster lives for one test run.
        options = (f"-p {self.port} -k {self.data} -c listen_addresses='' -c fsync=off "
                   "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200")
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-o", options,
                  "-l", str(self.base / "server.log"), "-w", "-t", "60", "start")
        self.started = True
        return self

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg2://{self.user}@/{database}?host={self.data}&port={self.port}"

    def stop(self) -> None:
        if self.started:
            with contextlib.suppress(Exception):
                self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "immediate",
                          "-w", "stop")
            self.started = False
        shutil.rmtree(self.base, ignore_errors=True)


def create_database(server_url: str, name: str) -> str:
    """Create database ``name`` on the server of ``server_url``; returns its URL."""
    engine = create_engine(server_url, future=True, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        engine.dispose()
    return make_url(server_url).set(database=name).render_as_string(hide_password=False)


def drop_database(server_url: str, name: str) -> None:
    engine = create_engine(server_url, future=True, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        engine.dispose()


@contextlib.contextmanager
def fresh_database(server_url: str, prefix: str = "t") -> Iterator[str]:
    """A new empty database on the same server, dropped afterwards."""
    name = f"{prefix}_{secrets.token_hex(6)}"
    url = create_database(server_url, name)
    try:
        yield url
    finally:
        drop_database(server_url, name)


@contextlib.contextmanager
def postgres_server() -> Iterator[str]:
    """URL of a database on a PostgreSQL server: ``TEST_POSTGRES_URL``'s or a throwaway
    cluster's. Raises ``PostgresUnavailable`` when neither is possible."""
    configured = os.environ.get(TEST_POSTGRES_URL_ENV)
    if configured:
        with fresh_database(configured, "clinic_test") as url:
            yield url
        return
    cluster = ThrowawayCluster()
    try:
        cluster.start()
        yield create_database(cluster.url(), "clinic_test")
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """Session-wide PostgreSQL database URL (see module docstring)."""
    try:
        manager = postgres_server()
        url = manager.__enter__()
    except PostgresUnavailable as exc:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"PostgreSQL is required in CI: {exc}")
        pytest.skip(f"PostgreSQL not available: {exc}")
    try:
        yield url
    finally:
        manager.__exit__(None, None, None)
