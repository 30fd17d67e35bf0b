"""Database engine and sessions for the clinic's own data (not Rasa's tracker store).

SQLAlchemy 1.4 in 2.0 style (``future=True``), so moving to 2.0 later is a version bump.
Embedded default: SQLite under ``var/``; set ``CLINIC_DATABASE_URL`` for PostgreSQL.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import declarative_base, sessionmaker
from sqlalchemy.pool import QueuePool

from clinic.settings import PROJECT_ROOT

DATABASE_URL_ENV = "CLINIC_DATABASE_URL"
VAR_DIR = PROJECT_ROOT / "var"

Base = declarative_base()


def database_url(environ: Optional[dict] = None) -> str:
    environ = os.environ if environ is None else environ
    return environ.get(DATABASE_URL_ENV) or f"sqlite:///{VAR_DIR / 'clinic.db'}"


def make_engine(url: Optional[str] = None) -> Engine:
    url = url or database_url()
    if url.startswith("sqlite:///") and not url.startswith("sqlite:///:memory:"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    options = {}
    if url.startswith("sqlite"):
        # SQLAlchemy 1.4 gives file SQLite a NullPool: a new connection (PRAGMAs, and a WAL
        # checkpoint when it closes) for every session, ~6 ms on the webhook path. A real
        # pool keeps connections open; SQLite connections may move between threads.
        options = {"poolclass": QueuePool, "pool_size": 5, "max_overflow": 10,
                   "connect_args": {"check_same_thread": False}}
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
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA busy_timeout=10000")
            cursor.close()

    return engine


def make_session_factory(engine: Engine) -> sessionmaker:
    return sessionmaker(engine, future=True, expire_on_commit=False)


def create_schema(engine: Engine) -> None:
    """Create missing tables of every model imported so far, plus the clinic's own.

    (Versioned migrations arrive with the scheduling schema.) Other packages that keep
    tables here (e.g. ``whatsapp.store``) are imported by their callers first.
    """
    from clinic.handoff import requests  # noqa: F401  (registers its tables)

    Base.metadata.create_all(engine)
