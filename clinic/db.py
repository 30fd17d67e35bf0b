"""Database engine and sessions for the clinic's own data (not Rasa's tracker store).

SQLAlchemy 1.4 in 2.0 style (``future=True``), so moving to 2.0 later is a version bump.
Embedded default: SQLite under ``var/``; set ``CLINIC_DATABASE_URL`` for PostgreSQL.
"""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path
from typing import Dict, Optional, Tuple

from sqlalchemy import MetaData, create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import declarative_base, sessionmaker
from sqlalchemy.pool import QueuePool

from clinic.settings import PROJECT_ROOT

DATABASE_URL_ENV = "CLINIC_DATABASE_URL"
VAR_DIR = PROJECT_ROOT / "var"

# Named constraints: Alembic migrations (SQLite "batch" mode especially) can only drop or
# alter a constraint they can name.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

Base = declarative_base(metadata=MetaData(naming_convention=NAMING_CONVENTION))


def database_url(environ: Optional[dict] = None) -> str:
    environ = os.environ if environ is None else environ
    return environ.get(DATABASE_URL_ENV) or f"sqlite:///{VAR_DIR / 'clinic.db'}"


PRIVATE_MODE = 0o600
SQLITE_COMPANIONS = ("-wal", "-shm", "-journal")


def private_file(path: Path) -> None:
    """Make ``path`` readable and writable by its owner only (0600), if it exists and is
    looser: files created before this rule, or by a tool under a loose umask."""
    try:
        mode = os.stat(path).st_mode & 0o777
        if mode != PRIVATE_MODE:
            os.chmod(path, PRIVATE_MODE)
    except FileNotFoundError:
        pass


def private_sqlite_file(database: Path) -> None:
    """Create a SQLite database file as 0600 whatever the umask, before SQLite opens it
    (SQLite creates a new file 0644 minus the umask, and gives its -wal, -shm and -journal
    files the database file's mode); tighten an existing one and its companions."""
    database = Path(database)
    database.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(database, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_MODE)
    except FileExistsError:
        pass
    else:
        os.close(fd)  # an empty file is an empty SQLite database
    for path in (database, *(Path(f"{database}{suffix}") for suffix in SQLITE_COMPANIONS)):
        private_file(path)


def sqlite_file_of(url) -> Optional[Path]:
    """The database file of a SQLite URL (text or ``URL``); None for another database or an
    in-memory one."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database or parsed.database == ":memory:" \
            or parsed.database.startswith("file:"):
        return None
    return Path(parsed.database)


def secure_sqlite(cursor) -> None:
    """What this product deletes or clears is not left in the file: SQLite overwrites deleted
    content with zeros (secure_delete; some builds default to it, others do not), and a
    write-ahead log is cut back to what is in use when it restarts (journal_size_limit=0),
    so stale frames of cleared rows do not linger at its end. ``checkpoint`` empties it."""
    cursor.execute("PRAGMA secure_delete=ON")
    cursor.execute("PRAGMA journal_size_limit=0")


def checkpoint(engine: Engine) -> bool:
    """Copy a SQLite write-ahead log into the database and truncate it to zero bytes
    (after a purge or an erasure: the log holds earlier versions of changed pages).
    True when done; False when readers kept it from finishing, or not SQLite."""
    if engine.dialect.name != "sqlite":
        return False
    with engine.connect() as connection:
        busy, _log, _done = connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)").one()
    return not busy


def make_engine(url: Optional[str] = None) -> Engine:
    url = url or database_url()
    database = sqlite_file_of(url)
    if database is not None:
        private_sqlite_file(database)
    options = {}
    if url.startswith("sqlite"):
        # SQLAlchemy 1.4 gives file SQLite a NullPool: a new connection (PRAGMAs, and a WAL
        # checkpoint when it closes) for every session, ~6 ms on the webhook path. A real
        # pool keeps connections open; SQLite connections may move between threads.
        options = {"poolclass": QueuePool, "pool_size": 5, "max_overflow": 10,
                   "connect_args": {"check_same_thread": False, "timeout": 10}}
    engine = create_engine(url, future=True, pool_pre_ping=True, **options)
    if engine.dialect.name == "sqlite":
        # SQLite ignores foreign keys unless asked; several threads write: WAL lets readers
        # and one writer work at once. synchronous=NORMAL in WAL mode keeps every committed
        # transaction across a process crash or kill (what the durable inbox relies on),
        # only a power cut may lose the last ones; FULL costs an fsync per commit (40x
        # slower here) on the webhook path. Use PostgreSQL where power-cut durability matters.
        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record) -> None:  # pragma: no cover - trivial
            cursor = dbapi_connection.cursor()
            # First: switching a new file to WAL needs a moment alone with it, and a process
            # starting while another migrates must wait for that rather than fail.
            cursor.execute("PRAGMA busy_timeout=10000")
            cursor.execute("PRAGMA foreign_keys=ON")
            secure_sqlite(cursor)
            _switch_to_wal(cursor)
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

    return engine


def _switch_to_wal(cursor) -> None:
    """WAL mode, once per database file. Switching needs the file to itself, and SQLite
    answers "database is locked" at once (no busy handler) when another connection is busy
    with it, e.g. a process migrating a new database while another starts: wait and retry
    until the file is in WAL mode (whoever switched it)."""
    import sqlite3
    import time

    deadline = time.monotonic() + 30
    while True:
        if str(cursor.execute("PRAGMA journal_mode").fetchone()[0]).lower() == "wal":
            return
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def make_session_factory(engine: Engine) -> sessionmaker:
    return sessionmaker(engine, future=True, expire_on_commit=False)


def database_problem(sessions: sessionmaker) -> Optional[str]:
    """A readiness check (``GET /readyz`` of the gateway, the inbox, the clinic API): None
    when the database answers ``SELECT 1``, else what went wrong, in words that name neither
    the server nor its credentials (the endpoint needs no login; details go to the log)."""
    from sqlalchemy import text

    try:
        with sessions() as session:
            session.execute(text("SELECT 1"))
        return None
    except Exception as error:  # noqa: BLE001 - any failure means "not ready"
        logging.getLogger(__name__).warning("Readiness: the database did not answer: %s", error)
        return f"unreachable ({type(error).__name__})"


def readiness_report(problems: Dict[str, Optional[str]]) -> Tuple[int, dict]:
    """``GET /readyz``'s status and body from named checks (None: that check passed): 200
    when all passed, else 503, which takes the process out of a load balancer's rotation."""
    failing = {name: problem for name, problem in problems.items() if problem}
    body = {"status": "not ready" if failing else "ready",
            "checks": {name: problem or "ok" for name, problem in problems.items()}}
    return (503 if failing else 200), body


# Every module that defines tables on ``Base``: migrations, schema checks and
# ``create_schema`` import them all, so no table is forgotten because its module happened
# not to be imported yet. Optional modules (built by features still in progress) are
# imported when present.
MODEL_MODULES = (
    "clinic.handoff.tables",
    "clinic.messaging.store",
    "clinic.messaging.quarantine",
    "clinic.messaging.media",
    "clinic.messaging.identities",
    "clinic.messaging.calls",
    "clinic.scheduling.tables",
    "clinic.api_keys",
    "clinic.inbox.tables",
    "clinic.portal.tables",
    "clinic.notifications.tables",
    "clinic.records.tables",
    "clinic.broadcasts.tables",
    "clinic.surveys.tables",
    "clinic.language.tables",
    "clinic.knowledge.tables",
    "clinic.privacy_erasure",
)
OPTIONAL_MODEL_MODULES = ("clinic.reminders.tables",)


def import_models() -> None:
    """Import every module defining tables, so ``Base.metadata`` is complete."""
    import importlib

    for name in MODEL_MODULES:
        importlib.import_module(name)
    for name in OPTIONAL_MODEL_MODULES:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name is None or not name.startswith(exc.name):
                raise  # the module exists but one of *its* imports is missing: a real bug


MIGRATIONS_DIR = PROJECT_ROOT / "migrations"
ALEMBIC_INI = PROJECT_ROOT / "alembic.ini"


def alembic_config(connection=None):
    """Alembic configuration of this project; with ``connection``, migrations run on it."""
    from alembic.config import Config

    config = Config(str(ALEMBIC_INI))
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    # Programmatic use must not reconfigure the application's logging.
    config.attributes["configure_logger"] = False
    if connection is not None:
        config.attributes["connection"] = connection
    return config


_heads: Optional[tuple] = None


def _head_revisions() -> tuple:
    """The head revision(s) of migrations/ (read once per process)."""
    global _heads
    if _heads is None:
        from alembic.script import ScriptDirectory

        _heads = tuple(sorted(ScriptDirectory.from_config(alembic_config()).get_heads()))
    return _heads


def _current_revisions(connection) -> tuple:
    from alembic.runtime.migration import MigrationContext

    return tuple(sorted(MigrationContext.configure(connection).get_current_heads()))


def create_schema(engine: Engine) -> None:
    """Bring the database to the current schema: ``alembic upgrade head`` on this engine.

    Fast when already current (one query: the process never re-reads migration files).
    Concurrent callers (the action server and the channel starting together) are
    serialised: a file lock next to a SQLite file, an advisory lock on PostgreSQL.
    """
    import_models()
    with engine.connect() as connection:
        if _current_revisions(connection) == _head_revisions():
            return
    with _migration_lock(engine):
        with engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                # Held until this transaction ends (PostgreSQL runs DDL in transactions).
                connection.exec_driver_sql("SELECT pg_advisory_xact_lock(727274)")
            if _current_revisions(connection) == _head_revisions():
                return
            from alembic import command

            command.upgrade(alembic_config(connection), "head")


@contextlib.contextmanager
def _migration_lock(engine: Engine):
    database = engine.url.database if engine.dialect.name == "sqlite" else None
    if not database or database == ":memory:":
        yield
        return
    import fcntl

    with open(f"{database}.migrate.lock", "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
