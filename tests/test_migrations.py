"""Alembic migrations: head == the models, downgrade to base, legacy databases, create_schema."""

from __future__ import annotations

import datetime as dt
import threading

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import insert, inspect, select

from clinic.db import Base, alembic_config, create_schema, import_models, make_engine
from tests.scheduling_support import database_url

BOTH = ["sqlite", "postgresql"]


@pytest.fixture(params=BOTH)
def engine(request, tmp_path):
    with database_url(request.param, request, tmp_path) as url:
        engine = make_engine(url)
        yield engine
        engine.dispose()


def _upgrade(engine, target="head"):
    with engine.begin() as connection:
        command.upgrade(alembic_config(connection), target)


def _differences(engine):
    import_models()
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return compare_metadata(context, Base.metadata)


def test_upgrade_from_empty_gives_exactly_the_models(engine):
    _upgrade(engine)
    assert _differences(engine) == []
    tables = set(inspect(engine).get_table_names()) - {"alembic_version"}
    assert tables == set(Base.metadata.tables)


def test_downgrade_to_base_and_back(engine):
    _upgrade(engine)
    with engine.begin() as connection:
        command.downgrade(alembic_config(connection), "base")
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    _upgrade(engine)
    assert _differences(engine) == []


def test_create_schema_runs_the_migrations_and_is_idempotent(engine):
    create_schema(engine)
    create_schema(engine)
    assert _differences(engine) == []
    with engine.connect() as connection:
        assert MigrationContext.configure(connection).get_current_heads()


def test_partial_unique_index_exists_after_migration(engine):
    create_schema(engine)
    indexes = {ix["name"]: ix for ix in inspect(engine).get_indexes("appointments")}
    assert indexes["uq_appointments_slot_holding"]["unique"]


def test_database_created_before_migrations_is_adopted(tmp_path):
    """var/clinic.db files made by create_all (WhatsApp + handoff tables, no alembic_version)
    keep their rows and gain the new tables."""
    from clinic.messaging.store import InboxRow

    engine = make_engine(f"sqlite:///{tmp_path / 'legacy.db'}")
    import_models()
    legacy = [Base.metadata.tables[name] for name in
              ("handoff_requests", "wa_inbox", "wa_contacts", "wa_outbound", "wa_statuses")]
    Base.metadata.create_all(engine, tables=legacy)
    with engine.begin() as connection:
        connection.execute(insert(InboxRow).values(
            wamid="wamid.1", conversation_id="c1", kind="text", state="done", attempts=1,
            received_at=dt.datetime(2025, 1, 1, tzinfo=dt.timezone.utc)))
    create_schema(engine)
    assert _differences(engine) == []
    with engine.connect() as connection:
        assert connection.execute(select(InboxRow.wamid)).scalars().all() == ["wamid.1"]
    engine.dispose()


def test_concurrent_create_schema_on_a_fresh_sqlite_file(tmp_path):
    url = f"sqlite:///{tmp_path / 'race.db'}"
    errors = []
    barrier = threading.Barrier(4)

    def run():
        engine = make_engine(url)
        try:
            barrier.wait()
            create_schema(engine)
        except Exception as exc:  # noqa: BLE001 - asserted below
            errors.append(exc)
        finally:
            engine.dispose()

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    engine = make_engine(url)
    assert _differences(engine) == []
    engine.dispose()
