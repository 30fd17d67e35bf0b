"""Rasa's SQL tracker store with every event's data encrypted at rest (issue 18).

Why: Rasa's ``SQLTrackerStore`` keeps each event as JSON in the ``events.data`` column: what
the patient wrote, entities, metadata, the bot's answers, in clear, for ever.

What changes: only the type of the ``data`` column. Values are sealed on the way in and
opened on the way out (clinic/at_rest.py: AES-256-GCM, ``enc:v1:<key id>:…``, the key id kept
with each row so keys can rotate); rows written before encryption (plain JSON) still read.
Rasa's own code does everything else, so addons/tracker_cache.py (which patches
``SQLTrackerStore.retrieve``/``save``) works unchanged, and what Rasa queries on and
analytics count stays in clear: ``sender_id`` (already a pseudonymous key), ``type_name``,
``timestamp``, ``intent_name``, ``action_name``.

SQLite: the file is created 0600 whatever the umask and connections use ``secure_delete``
(clinic/db.py). PostgreSQL has no such pragma: see README, Privacy.

Configured in endpoints.yml::

    tracker_store:
      type: addons.encrypted_tracker_store.EncryptedSQLTrackerStore
      dialect: "sqlite"            # or host: "postgresql://…", as Rasa's SQL store
      db: "var/rasa_tracker.db"
      # key_file: "var/tracker-encryption.keys"   (the default)

Keys: ``TRACKER_ENCRYPTION_KEYS`` (``<id>:<base64 key>``, current first, comma-separated),
else the key file, created with one key (mode 0600) on first use. On start the store opens
its oldest and newest rows: a missing or wrong key stops Rasa with a message naming the key
id, instead of every conversation silently starting from nothing.

Rotation (the assistant keeps running)::

    python -m addons.encrypted_tracker_store new-key   # new current key at the top of the file
    # restart Rasa (it now writes with the new key and reads both)
    python -m addons.encrypted_tracker_store rotate    # re-encrypts the other rows, in batches
    python -m addons.encrypted_tracker_store status    # rows per key id (and in clear)

``rotate`` also encrypts rows written before encryption. With ``TRACKER_ENCRYPTION_KEYS``,
``new-key`` prints an entry to put first in the variable (every Rasa process must have the
new key before any writes with it: add it second, restart, then move it first, restart).
"""

from __future__ import annotations

import argparse
import collections
import logging
import sys
import time
import weakref
from pathlib import Path
from typing import Any, Dict, Optional, Text

import sqlalchemy as sa
from rasa.core.tracker_store import SQLTrackerStore, _create_sequence, validate_port
from sqlalchemy import event
from sqlalchemy.orm import declarative_base
from sqlalchemy.types import TypeDecorator

from clinic.at_rest import (
    DEFAULT_TRACKER_KEY_FILE,
    TRACKER_KEYS_ENV,
    AtRestError,
    Keyring,
    Sealer,
    add_key_to_file,
    load_keyring,
    new_key_entry,
)
from clinic.db import private_sqlite_file, secure_sqlite, sqlite_file_of

logger = logging.getLogger(__name__)

# The sealer of each store's engine, found through the dialect the column type is given
# (each engine has its own dialect object): two stores with different keys can share a process.
_SEALERS: "weakref.WeakKeyDictionary[Any, Sealer]" = weakref.WeakKeyDictionary()


def _sealer(dialect) -> Sealer:
    sealer = _SEALERS.get(dialect)
    if sealer is None:
        raise AtRestError("this engine has no tracker encryption keys (use EncryptedSQLTrackerStore)")
    return sealer


class SealedText(TypeDecorator):
    """Text stored sealed (clinic/at_rest.py); plain legacy values read as they are."""

    impl = sa.Text
    cache_ok = True

    def process_bind_param(self, value, dialect):
        return None if value is None else _sealer(dialect).seal(value)

    def process_result_value(self, value, dialect):
        return None if value is None else _sealer(dialect).open(value)


def _events_table() -> sa.Table:
    """The events table as stored (``data`` as raw text), for rotation and status."""
    return sa.table("events", sa.column("id", sa.Integer), sa.column("data", sa.Text))


def _secure_delete(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    try:
        secure_sqlite(cursor)
    finally:
        cursor.close()


ERASURE_SLOT = "data_erasure"  # domain/privacy.yml


def erasure_confirmed(tracker) -> bool:
    """True when the conversation holds the erasure's confirmation (its events are erased
    with it, so only the turn that confirmed it, or a save that failed to erase, has it)."""
    from rasa.shared.core.events import SlotSet

    return any(isinstance(event, SlotSet) and event.key == ERASURE_SLOT and event.value == "done"
               for event in reversed(tracker.events))


class EncryptedSQLTrackerStore(SQLTrackerStore):
    """``SQLTrackerStore`` whose ``events.data`` is encrypted; same table, same columns."""

    Base = declarative_base()

    class SQLEvent(Base):  # Rasa's columns (rasa/core/tracker_store.py), ``data`` sealed
        __tablename__ = "events"

        id = sa.Column(sa.Integer, _create_sequence(__tablename__), primary_key=True)
        sender_id = sa.Column(sa.String(255), nullable=False, index=True)
        type_name = sa.Column(sa.String(255), nullable=False)
        timestamp = sa.Column(sa.Float)
        intent_name = sa.Column(sa.String(255))
        action_name = sa.Column(sa.String(255))
        data = sa.Column(SealedText)

    def __init__(self, domain=None, dialect: Text = "sqlite", host: Optional[Text] = None,
                 port: Optional[int] = None, db: Text = "rasa.db", username: Optional[Text] = None,
                 password: Optional[Text] = None, event_broker=None, login_db: Optional[Text] = None,
                 query: Optional[Dict] = None, key_file: Optional[Text] = None,
                 keyring: Optional[Keyring] = None, **kwargs: Any) -> None:
        key_path = Path(key_file) if key_file else DEFAULT_TRACKER_KEY_FILE
        if keyring is None:
            keyring = load_keyring(key_file=key_path)
        reload = None
        if keyring.source == str(key_path):  # a key file another process may add a key to
            def reload() -> Keyring:
                return load_keyring(key_file=key_path)
        database = sqlite_file_of(self.get_db_url(dialect, host, validate_port(port), db, username,
                                                  password, login_db, query))
        if database is not None:
            private_sqlite_file(database)
        super().__init__(domain, dialect, host, port, db, username, password, event_broker, login_db,
                         query, **kwargs)
        self.sealer = Sealer(keyring, reload)
        _SEALERS[self.engine.dialect] = self.sealer
        if self.engine.dialect.name == "sqlite":
            event.listen(self.engine, "connect", _secure_delete)
            self.engine.dispose()  # no connection opened before the listener stays in the pool
        self.check_keys()

    # ── erasure on request (clinic/privacy_erasure.py) ─────────────────────────────────
    async def save(self, tracker) -> None:
        """Rasa's save; then, when this conversation's patient confirmed "delete my data"
        (``action_erase_my_data`` set ``data_erasure`` to ``done``), every event of the
        conversation is deleted, the ones just saved too. Done here because Rasa holds the
        conversation in memory during the turn and would write back whatever the action
        server deleted; the patient's next message starts a new conversation."""
        await super().save(tracker)
        if erasure_confirmed(tracker):
            deleted = self.erase_conversation(tracker.sender_id)
            logger.info("Erasure on request: %s tracker events deleted", deleted)

    def erase_conversation(self, sender_id: Text) -> int:
        from clinic.db import checkpoint

        try:
            from addons.tracker_cache import TRACKERS

            TRACKERS.kept.pop((id(self), sender_id), None)
        except ImportError:  # pragma: no cover - the cache is optional
            pass
        with self.session_scope() as session:
            deleted = session.query(self.SQLEvent).filter(self.SQLEvent.sender_id == sender_id).delete(
                synchronize_session=False)
            session.commit()
        checkpoint(self.engine)  # SQLite: deleted rows' pages out of the write-ahead log
        return deleted

    def check_keys(self) -> None:
        """Open the oldest and the newest row: raises AtRestError when the keyring cannot."""
        with self.session_scope() as session:
            first, last = session.query(sa.func.min(self.SQLEvent.id), sa.func.max(self.SQLEvent.id)).one()
            for row_id in {first, last} - {None}:
                session.query(self.SQLEvent.data).filter(self.SQLEvent.id == row_id).scalar()

    # ── rotation ────────────────────────────────────────────────────────────────────────
    def reencrypt(self, batch_size: int = 500, pause: float = 0.0) -> Dict[str, int]:
        """Re-encrypt every row not under the current key (plain rows included), in batches
        of ``batch_size`` rows, one transaction each, so Rasa keeps reading and writing in
        between (``pause`` seconds between batches). Returns rows done per former key id
        (``plaintext`` for rows written before encryption)."""
        events = _events_table()
        current = self.sealer.current_prefix
        done: Dict[str, int] = collections.Counter()
        update = (sa.update(events)
                  .where(events.c.id == sa.bindparam("row_id"), events.c.data == sa.bindparam("old"))
                  .values(data=sa.bindparam("new")))
        last_id = 0
        while True:
            with self.engine.begin() as connection:
                rows = connection.execute(
                    sa.select(events.c.id, events.c.data)
                    .where(events.c.id > last_id, events.c.data.is_not(None),
                           sa.not_(events.c.data.startswith(current, autoescape=True)))
                    .order_by(events.c.id).limit(batch_size)).all()
                if not rows:
                    break
                changes = []
                for row_id, data in rows:
                    changes.append({"row_id": row_id, "old": data, "new": self.sealer.reseal(data)})
                    done[self.sealer.key_id_of(data) or "plaintext"] += 1
                connection.execute(update, changes)
                last_id = rows[-1][0]
            logger.info("Re-encrypted %d tracker rows (up to id %d)", sum(done.values()), last_id)
            if pause:
                time.sleep(pause)
        return dict(done)

    def key_counts(self, batch_size: int = 2000) -> Dict[str, int]:
        """Rows per key id (``plaintext``: not encrypted); reads only the prefixes."""
        events = _events_table()
        counts: Dict[str, int] = collections.Counter()
        last_id = 0
        while True:
            with self.engine.connect() as connection:
                rows = connection.execute(
                    sa.select(events.c.id, sa.func.substr(events.c.data, 1, 60))
                    .where(events.c.id > last_id).order_by(events.c.id).limit(batch_size)).all()
            if not rows:
                return dict(counts)
            for _row_id, head in rows:
                counts["null" if head is None else (Sealer.key_id_of(head) or "plaintext")] += 1
            last_id = rows[-1][0]


# ── command line ────────────────────────────────────────────────────────────────────────
def store_from_endpoints(endpoints: str) -> EncryptedSQLTrackerStore:
    """The tracker store of ``endpoints`` (its SQL settings; even if its type is still Rasa's
    plain ``SQL``: rotating then encrypts the existing rows)."""
    from rasa.core.utils import read_endpoint_config

    config = read_endpoint_config(endpoints, "tracker_store")
    if config is None:
        raise SystemExit(f"{endpoints} has no tracker_store")
    kind = (config.type or "").lower()
    if kind != "sql" and not kind.endswith(".encryptedsqltrackerstore"):
        raise SystemExit(f"{endpoints}: tracker_store type {config.type!r} is not a SQL tracker store")
    return EncryptedSQLTrackerStore(host=config.url, **config.kwargs)


def main(argv: Optional[list] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m addons.encrypted_tracker_store",
                                     description="Keys of the encrypted tracker store.")
    commands = parser.add_subparsers(dest="command", required=True)
    new_key = commands.add_parser("new-key", help="add a new current key (the key file's top line)")
    new_key.add_argument("--key-file", default=str(DEFAULT_TRACKER_KEY_FILE))
    for name, text in (("rotate", "re-encrypt every row under the current key, in batches"),
                       ("status", "rows per key id")):
        command = commands.add_parser(name, help=text)
        command.add_argument("--endpoints", default="endpoints.yml")
        if name == "rotate":
            command.add_argument("--batch-size", type=int, default=500)
            command.add_argument("--pause", type=float, default=0.05, help="seconds between batches")
    args = parser.parse_args(argv)
    try:
        if args.command == "new-key":
            import os

            if os.environ.get(TRACKER_KEYS_ENV):
                print(f"{TRACKER_KEYS_ENV} is set: put this entry first in it (keep the others "
                      f"until `rotate` is done):\n{new_key_entry()}")
                return 0
            keyring = add_key_to_file(Path(args.key_file))
            print(f"{args.key_file}: current key {keyring.current} (older: "
                  f"{', '.join(list(keyring.keys)[1:]) or 'none'}); restart Rasa, then run `rotate`")
            return 0
        store = store_from_endpoints(args.endpoints)
        if args.command == "rotate":
            done = store.reencrypt(args.batch_size, args.pause)
            print(f"re-encrypted {sum(done.values())} rows under key {store.sealer.keyring.current}: "
                  + (", ".join(f"{n} from {key}" for key, n in sorted(done.items())) or "none needed"))
        else:
            counts = store.key_counts()
            print(", ".join(f"{key}: {n}" for key, n in sorted(counts.items())) or "no rows")
        return 0
    except AtRestError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
