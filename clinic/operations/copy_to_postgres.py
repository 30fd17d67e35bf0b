"""From the embedded SQLite default to PostgreSQL: copy the clinic database and Rasa's
tracker store, table by table.

    python -m clinic.operations.copy_to_postgres --from sqlite:///var/clinic.db --to postgresql://…
        [--tracker-from sqlite:///var/rasa_tracker.db --tracker-to postgresql://…] [--force]

Stop the services (at least every writer) first: rows written during the copy may be missed,
and the final count check then fails. For the clinic database, the target is brought to the
current schema with the project's Alembic migrations (the source must be at it too: any
service migrates it when it starts); the tracker store's tables (Rasa's ``events``) are
created like the source's when missing and copied as they are: their data is encrypted at
rest and stays readable with the same keyring. Every table is copied in dependency order in
batches, inside one transaction per database (a failure leaves the target as it was after
migrating), PostgreSQL's sequences are set past the highest id, and the row count of every
table is compared with the source's before committing. A target with rows is refused unless
``--force`` (which empties it first). The WhatsApp journal directory and the key files stay
where they are: point CLINIC_DATABASE_URL and RASA_TRACKER_STORE_URL at the new databases and
start the services.
"""

from __future__ import annotations

import argparse
import sys
from typing import Callable, Dict, List, Optional

from sqlalchemy import MetaData, Table, create_engine, func, inspect, select, text
from sqlalchemy.engine import Connection, Engine

from clinic.db import alembic_config, create_schema, make_engine
from clinic.operations.backup import schema_revision
from clinic.operations.layout import Deployment, OperationError, backend, shown, sqlite_path

Say = Callable[[str], None]
SKIPPED_TABLES = ("alembic_version",)  # written by the migrations themselves


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    return ",".join(sorted(ScriptDirectory.from_config(alembic_config()).get_heads()))


def _rows(connection: Connection, table: Table) -> int:
    return connection.execute(select(func.count()).select_from(table)).scalar_one()


def _filled_tables(engine: Engine) -> List[str]:
    metadata = MetaData()
    metadata.reflect(engine)
    with engine.connect() as connection:
        return [name for name, table in sorted(metadata.tables.items())
                if name not in SKIPPED_TABLES and _rows(connection, table)]


def _source_engine(url: str) -> Engine:
    if backend(url) == "sqlite":
        path = sqlite_path(url)
        if not path.is_file() or path.stat().st_size == 0:
            raise OperationError(f"the source {path} does not exist or is empty")
        # mode=rw: never create a missing source.
        return create_engine("sqlite://", future=True, creator=lambda: _sqlite_connect(path))
    return create_engine(url, future=True)


def _sqlite_connect(path):
    import sqlite3

    return sqlite3.connect(f"{path.resolve().as_uri()}?mode=rw", uri=True, timeout=30,
                           detect_types=0, check_same_thread=False)


def _reset_sequences(connection: Connection, tables: List[Table]) -> None:
    """Each serial or identity column's sequence continues after the highest copied id."""
    quote = connection.dialect.identifier_preparer.quote
    for table in tables:
        for column in table.primary_key.columns:
            sequence = connection.execute(text("SELECT pg_get_serial_sequence(:table, :column)"),
                                          {"table": quote(table.name), "column": column.name}).scalar()
            if sequence:
                highest = connection.execute(select(func.max(column))).scalar() or 0
                connection.execute(text("SELECT setval(CAST(:sequence AS regclass), :next, false)"),
                                   {"sequence": sequence, "next": highest + 1})


def copy_database(source_url: str, target_url: str, *, clinic_schema: bool, force: bool = False,
                  batch_size: int = 1000, say: Say = print) -> Dict[str, int]:
    """Copy every table of ``source_url`` into the PostgreSQL ``target_url``; returns the row
    count per table. ``clinic_schema``: the clinic database (migrated with Alembic) rather
    than the tracker store (tables created like the source's)."""
    if backend(target_url) != "postgresql":
        raise OperationError(f"the target must be PostgreSQL, not {shown(target_url)}")
    source = _source_engine(source_url)
    target = make_engine(target_url)
    try:
        if clinic_schema:
            at, head = schema_revision(source_url), head_revision()
            if at != head:
                raise OperationError(
                    f"the source is at schema revision {at}, this code at {head}: start a service of "
                    "this version on it once (each migrates the database at start), then copy")
        filled = _filled_tables(target)
        if filled and not force:
            raise OperationError(f"the target {shown(target_url)} already holds rows in "
                                 f"{', '.join(filled)}: nothing copied (--force empties it first)")
        source_tables = MetaData()
        source_tables.reflect(source)
        if clinic_schema:
            create_schema(target)
        else:
            existing = set(inspect(target).get_table_names())
            missing = MetaData()
            for name, table in source_tables.tables.items():
                if name not in existing:
                    copy = table.to_metadata(missing)
                    for column in copy.columns:
                        column.server_default = None  # SQLite's defaults are not PostgreSQL's
            missing.create_all(target)
        target_tables = MetaData()
        target_tables.reflect(target)
        unknown = sorted(set(source_tables.tables) - set(target_tables.tables) - set(SKIPPED_TABLES))
        if unknown:
            raise OperationError(f"tables of the source missing on the target: {', '.join(unknown)}")
        order = [table for table in target_tables.sorted_tables if table.name not in SKIPPED_TABLES]
        counts: Dict[str, int] = {}
        with source.connect() as reader, target.begin() as writer:
            writer.execute(text("SET LOCAL TIME ZONE 'UTC'"))  # SQLite's naive times are UTC
            if force and filled:
                names = ", ".join(writer.dialect.identifier_preparer.format_table(t) for t in order)
                writer.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
            for table in order:
                origin = source_tables.tables.get(table.name)
                if origin is None:
                    counts[table.name] = 0
                    continue
                columns = [c.name for c in origin.columns if c.name in table.columns]
                query = select(*(origin.columns[c] for c in columns)).order_by(
                    *(origin.primary_key.columns or [origin.columns[columns[0]]]))
                result = reader.execution_options(stream_results=True).execute(query)
                copied = 0
                while batch := result.fetchmany(batch_size):
                    writer.execute(table.insert(), [dict(zip(columns, row, strict=True)) for row in batch])
                    copied += len(batch)
                counts[table.name] = copied
            _reset_sequences(writer, order)
            problems = []
            for table in order:
                origin = source_tables.tables.get(table.name)
                expected = _rows(reader, origin) if origin is not None else 0
                found = _rows(writer, table)
                if expected != found or counts[table.name] != found:
                    problems.append(f"{table.name}: {expected} in the source, {found} copied")
            if problems:
                raise OperationError("row counts differ (was a service still writing?), nothing "
                                     "committed:\n  " + "\n  ".join(problems))
        for name, count in counts.items():
            say(f"  {name}: {count}")
        say(f"copied {sum(counts.values())} rows in {len(counts)} tables: {shown(source_url)} → {shown(target_url)}")
        return counts
    finally:
        source.dispose()
        target.dispose()


def main(argv: Optional[List[str]] = None, environ: Optional[dict] = None) -> int:
    deployment = Deployment.from_environment(environ)
    parser = argparse.ArgumentParser(prog="python -m clinic.operations.copy_to_postgres",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--from", dest="source", default=deployment.clinic_url,
                        help="the clinic database to copy (default: this deployment's)")
    parser.add_argument("--to", dest="target", help="the clinic's new PostgreSQL database")
    parser.add_argument("--tracker-from", default=deployment.tracker_url,
                        help="Rasa's tracker store to copy (default: this deployment's)")
    parser.add_argument("--tracker-to", help="the tracker store's new PostgreSQL database")
    parser.add_argument("--force", action="store_true", help="empty a target that holds rows, then copy")
    parser.add_argument("--batch-size", type=int, default=1000)
    args = parser.parse_args(argv)
    if not args.target and not args.tracker_to:
        parser.error("give --to (the clinic database) and/or --tracker-to (Rasa's tracker store)")
    try:
        if args.target:
            print("clinic database:")
            copy_database(args.source, args.target, clinic_schema=True, force=args.force,
                          batch_size=args.batch_size)
        if args.tracker_to:
            print("tracker store:")
            copy_database(args.tracker_from, args.tracker_to, clinic_schema=False, force=args.force,
                          batch_size=args.batch_size)
    except OperationError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print("next: set CLINIC_DATABASE_URL / RASA_TRACKER_STORE_URL to the new databases; the key files "
          "and the WhatsApp journal directory stay as they are")
    return 0


if __name__ == "__main__":  # pragma: no cover - the command line
    raise SystemExit(main())
