"""From SQLite to PostgreSQL (clinic/operations/copy_to_postgres.py), on real SQLite files and
a real PostgreSQL: the project's code reads the copied rows back on PostgreSQL, new rows get
new ids (the sequences were moved past the copied ones), the tracker store's encrypted events
stay readable with the same keyring, and a target with rows is refused."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select, text

from clinic.at_rest import Keyring, new_key_entry
from clinic.db import make_engine, make_session_factory
from clinic.inbox.tables import AuditRow
from clinic.messaging.store import WhatsAppStore
from clinic.messaging.turn import InboundTurn
from clinic.operations import copy_to_postgres
from clinic.operations.layout import OperationError
from clinic.scheduling.sql_backend import SqlSchedulingBackend
from tests.operations_support import (
    CONTACT,
    CONVERSATION,
    append_audit,
    fill_clinic,
    read_clinic,
    tracker_store,
    tracker_texts,
    tracker_turn,
)
from tests.pg_support import fresh_database
from tests.scheduling_support import NOW, Clock


def quiet(_line: str) -> None:
    pass


def test_the_clinic_database_moves_to_postgresql(tmp_path, postgres_url):
    source = f"sqlite:///{tmp_path / 'clinic.db'}"
    written = fill_clinic(source)
    with fresh_database(postgres_url, "copy") as target:
        counts = copy_to_postgres.copy_database(source, target, clinic_schema=True, say=quiet)
        assert counts["inbox_audit"] == 2 and counts["appointments"] == 1 and counts["wa_inbox"] == 1
        assert counts["slots"] > 100  # several batches of the demo clinic's slots
        # Read back through the project's code, on PostgreSQL (times, the audit chain).
        assert read_clinic(target, written) == 2
        engine = make_engine(target)
        try:
            assert engine.dialect.name == "postgresql"
            sessions = make_session_factory(engine)
            # New rows take new ids: the sequences continue after the copied ones.
            append_audit(sessions, 1)
            WhatsAppStore(sessions).accept([InboundTurn("wamid.after", CONVERSATION, "text", "later", NOW)], {})
            with engine.connect() as connection:
                assert connection.execute(text("SELECT count(*) FROM inbox_audit")).scalar() == 3
                assert connection.execute(text("SELECT count(*) FROM wa_inbox")).scalar() == 2
                revision = connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
            assert revision == copy_to_postgres.head_revision()
        finally:
            engine.dispose()

        # A target with rows is refused, and left as it was.
        with pytest.raises(OperationError, match="already holds rows"):
            copy_to_postgres.copy_database(source, target, clinic_schema=True, say=quiet)
        assert read_clinic(target, written) == 3
        # --force empties it and copies again.
        counts = copy_to_postgres.copy_database(source, target, clinic_schema=True, force=True, say=quiet)
        assert counts["inbox_audit"] == 2 and read_clinic(target, written) == 2


def test_a_source_behind_the_code_is_refused(tmp_path, postgres_url):
    source = f"sqlite:///{tmp_path / 'clinic.db'}"
    fill_clinic(source)
    engine = make_engine(source)
    with engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = '0016_worker_leases'"))
    engine.dispose()
    with fresh_database(postgres_url, "behind") as target:
        with pytest.raises(OperationError, match="schema revision 0016_worker_leases"):
            copy_to_postgres.copy_database(source, target, clinic_schema=True, say=quiet)


def test_the_tracker_store_moves_verbatim_and_stays_readable(tmp_path, postgres_url, capsys):
    keyring = Keyring.parse(new_key_entry("k1"), "test")
    store = tracker_store(keyring, db=tmp_path / "rasa_tracker.db")
    for n in range(3):
        tracker_turn(store, "conversation-a", f"synthetic {n}")
    tracker_turn(store, "conversation-b", "synthetic b")
    with store.engine.connect() as connection:
        stored = connection.execute(text("SELECT id, data FROM events ORDER BY id")).all()
    store.engine.dispose()
    assert all("synthetic" not in data for _id, data in stored)  # encrypted at rest
    with fresh_database(postgres_url, "tracker") as target:
        # Through the command line (as the README says), in batches of 3 rows.
        assert copy_to_postgres.main(["--tracker-from", f"sqlite:///{tmp_path / 'rasa_tracker.db'}",
                                      "--tracker-to", target, "--batch-size", "3"], {}) == 0
        printed = capsys.readouterr().out
        assert f"events: {len(stored)}" in printed and "synthetic" not in printed
        moved = tracker_store(keyring, url=target)
        try:
            with moved.engine.connect() as connection:
                assert connection.execute(text("SELECT id, data FROM events ORDER BY id")).all() == stored
            assert tracker_texts(moved, "conversation-a") == [f"synthetic {n}" for n in range(3)]
            tracker_turn(moved, "conversation-b", "after the move")  # the id sequence continues
            assert tracker_texts(moved, "conversation-b") == ["synthetic b", "after the move"]
        finally:
            moved.engine.dispose()
        with pytest.raises(OperationError, match="events"):
            copy_to_postgres.copy_database(f"sqlite:///{tmp_path / 'rasa_tracker.db'}", target,
                                           clinic_schema=False, say=quiet)


def test_the_command_line_refuses_a_missing_source_and_a_sqlite_target(tmp_path, capsys):
    missing = f"sqlite:///{tmp_path / 'none.db'}"
    assert copy_to_postgres.main(["--from", missing, "--to", "postgresql://nobody@/nowhere"], {}) == 2
    assert "does not exist" in capsys.readouterr().err
    assert not (tmp_path / "none.db").exists()
    assert copy_to_postgres.main(["--from", missing, "--to", f"sqlite:///{tmp_path / 'b.db'}"], {}) == 2
    assert "must be PostgreSQL" in capsys.readouterr().err


def test_naive_sqlite_times_arrive_as_utc(tmp_path, postgres_url):
    """SQLite keeps UTC times without an offset; PostgreSQL must read them as UTC whatever
    its own time zone (the copy sets its session's). (The audit chain itself is not checked
    here: AuditLog.verify fails on a PostgreSQL whose time zone is not UTC, copied or not —
    clinic/inbox/model.py ``aware`` keeps the server's offset.)"""
    source = f"sqlite:///{tmp_path / 'clinic.db'}"
    written = fill_clinic(source)
    with fresh_database(postgres_url, "tz") as target:
        engine = make_engine(target)
        with engine.connect() as connection:
            database = connection.execute(text("SELECT current_database()")).scalar()
            connection.execute(text(f"ALTER DATABASE \"{database}\" SET timezone TO 'America/New_York'"))
            connection.commit()
        engine.dispose()
        copy_to_postgres.copy_database(source, target, clinic_schema=True, say=quiet)
        engine = make_engine(target)
        try:
            backend = SqlSchedulingBackend(make_session_factory(engine), clock=Clock())
            assert backend.appointment(written.appointment_id, CONTACT).start == written.start
            with make_session_factory(engine)() as session:
                times = session.scalars(select(AuditRow.at).order_by(AuditRow.id)).all()
            assert times == [NOW, NOW]  # the same instants (aware datetimes compare as instants)
            assert times[0].utcoffset() != dt.timedelta(0)  # the server's zone did apply
        finally:
            engine.dispose()


def test_the_password_never_reaches_a_command_line():
    from clinic.operations.layout import libpq, shown

    uri, environment = libpq("postgresql+psycopg2://clinic:s3cret-pw@db.example:5433/clinic?sslmode=require")
    assert uri == "postgresql://clinic@db.example:5433/clinic?sslmode=require"
    assert environment["PGPASSWORD"] == "s3cret-pw"
    assert "s3cret-pw" not in shown("postgresql+psycopg2://clinic:s3cret-pw@db.example/clinic")
