"""Alembic environment for the clinic database.

Two ways in:
* the ``alembic`` command line: the URL is ``-x url=...``, else ``sqlalchemy.url`` if set,
  else ``clinic.db.database_url()`` (``CLINIC_DATABASE_URL`` or the SQLite file in var/);
* ``clinic.db.create_schema(engine)``: passes an open connection in
  ``config.attributes["connection"]`` and leaves the process's logging alone.

SQLite cannot ALTER most things in place, so migrations run in "batch" mode there (Alembic
copies the table); PostgreSQL alters in place.
"""

from __future__ import annotations

from logging.config import fileConfig

from alembic import context

from clinic.db import Base, database_url, import_models, make_engine

config = context.config

if config.config_file_name is not None and config.attributes.get("configure_logger", True):
    # Command line only: the application configures its own logging.
    fileConfig(config.config_file_name, disable_existing_loggers=False)

import_models()
target_metadata = Base.metadata


def _url() -> str:
    return (context.get_x_argument(as_dictionary=True).get("url")
            or config.get_main_option("sqlalchemy.url")
            or database_url())


def _configure(**kwargs) -> None:
    context.configure(target_metadata=target_metadata, compare_type=True, **kwargs)


def run_migrations_offline() -> None:
    url = _url()
    _configure(url=url, literal_binds=True, dialect_opts={"paramstyle": "named"},
               render_as_batch=url.startswith("sqlite"))
    with context.begin_transaction():
        context.run_migrations()


def _run(connection) -> None:
    _configure(connection=connection, render_as_batch=connection.dialect.name == "sqlite")
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = make_engine(_url())
    try:
        with engine.connect() as connection:
            _run(connection)
            connection.commit()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
