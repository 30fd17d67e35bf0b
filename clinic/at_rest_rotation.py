"""The clinic keyring's command line (issue 18): ``python -m clinic.at_rest_rotation …``.

What the clinic's keyring (``CLINIC_ENCRYPTION_KEYS``, else ``var/clinic-encryption.keys``;
clinic/at_rest.py) seals:

- the clinic database's message texts: ``wa_inbox.text`` and ``metadata_json`` (a patient's
  message, and a tapped button's title, while it waits for the assistant), ``wa_outbound``'s
  ``payload_json`` and ``fallback_json`` (what the patient is sent, until it is sent or while
  it is a dead letter), ``wa_quarantine.record_json`` (a journal record kept for a retry),
  the staff inbox's ``inbox_messages.text_encrypted`` (staff replies and notes) and
  ``inbox_tasks.note_encrypted`` (call-back notes). The inbox's two were Fernet tokens under
  ``CLINIC_ENCRYPTION_KEY`` before the keyring: they still read, and ``rotate`` re-seals them.
- the words (``text``, ``title``) of each message line in the WhatsApp door's journal
  segments (clinic/messaging/journal_lines.py).

Commands::

    python -m clinic.at_rest_rotation new-key   # a new current key at the top of the key file
    # restart the processes (gateway, Rasa, action server, inbox, scheduler…): they write
    # with the new key; until then they read it (the key file is read again on an unknown id)
    python -m clinic.at_rest_rotation rotate    # re-seal every older value, in batches
    python -m clinic.at_rest_rotation status    # values per key id, per column and in the journal

``rotate`` re-seals ``--batch-size`` rows per transaction (committed each time; a row the
services changed meanwhile is left to them: the update names the old value), so the
services keep running. Journal segments: each door's folder whose door is not running is
rewritten (each segment atomically, under the folder's lock); a running door's folder is
skipped and reported, since that door drains it into the database within seconds (the rows
are then sealed with the database's key, and a second ``rotate`` catches them). ``status``
shows when nothing is left under the old key; only then take it out of the keyring.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from clinic.at_rest import (
    CLINIC_KEYS_ENV,
    DEFAULT_CLINIC_KEY_FILE,
    AtRestError,
    Sealer,
    add_key_to_file,
    clinic_sealer,
    new_key_entry,
)

logger = logging.getLogger(__name__)

Opener = Callable[[str], str]


@dataclasses.dataclass(frozen=True)
class SealedColumn:
    table: str
    column: str
    # Values written before the keyring are Fernet tokens (the inbox's), not plain text.
    fernet_before: bool = False

    @property
    def name(self) -> str:
        return f"{self.table}.{self.column}"


SEALED_COLUMNS = (
    SealedColumn("wa_inbox", "text"),
    SealedColumn("wa_inbox", "metadata_json"),
    SealedColumn("wa_outbound", "payload_json"),
    SealedColumn("wa_outbound", "fallback_json"),
    SealedColumn("wa_quarantine", "record_json"),
    SealedColumn("inbox_messages", "text_encrypted", fernet_before=True),
    SealedColumn("inbox_tasks", "note_encrypted", fernet_before=True),
)


def _raw(column: SealedColumn) -> sa.sql.expression.TableClause:
    """The table as stored (the column as raw text, not through ``SealedText``)."""
    return sa.table(column.table, sa.column("id", sa.Integer), sa.column(column.column, sa.Text))


def reseal_value(value: str, sealer: Sealer, before: Optional[Opener] = None) -> str:
    """``value`` sealed under the current key: a sealed one opened with its key, one written
    before the keyring opened with ``before`` (Fernet) or taken as plain text."""
    if Sealer.key_id_of(value) is None:
        return sealer.seal(before(value) if before is not None else value)
    return sealer.reseal(value)


def reencrypt_column(engine: Engine, column: SealedColumn, sealer: Sealer, before: Optional[Opener] = None,
                     batch_size: int = 500, pause: float = 0.0) -> Dict[str, int]:
    """Re-seal every value of ``column`` not under the current key, ``batch_size`` rows per
    transaction. Returns the values done per former key id (``plaintext``, ``fernet``)."""
    table = _raw(column)
    value = table.c[column.column]
    current = sealer.current_prefix
    done: Dict[str, int] = collections.Counter()
    update = (sa.update(table).where(table.c.id == sa.bindparam("row_id"), value == sa.bindparam("old"))
              .values({column.column: sa.bindparam("new")}))
    last_id = 0
    while True:
        with engine.begin() as connection:
            rows = connection.execute(
                sa.select(table.c.id, value)
                .where(table.c.id > last_id, value.is_not(None),
                       sa.not_(value.startswith(current, autoescape=True)))
                .order_by(table.c.id).limit(batch_size)).all()
            if not rows:
                break
            changes = []
            for row_id, old in rows:
                changes.append({"row_id": row_id, "old": old, "new": reseal_value(old, sealer, before)})
                done[Sealer.key_id_of(old) or ("fernet" if column.fernet_before else "plaintext")] += 1
            connection.execute(update, changes)
            last_id = rows[-1][0]
        logger.info("Re-sealed %d values of %s (up to id %d)", sum(done.values()), column.name, last_id)
        if pause:
            time.sleep(pause)
    return dict(done)


def reencrypt_database(engine: Engine, sealer: Sealer, before: Optional[Opener] = None,
                       batch_size: int = 500, pause: float = 0.0,
                       columns: Iterable[SealedColumn] = SEALED_COLUMNS) -> Dict[str, Dict[str, int]]:
    """Every sealed column of the clinic database; per column, values done per former key."""
    return {column.name: reencrypt_column(engine, column, sealer, before if column.fernet_before else None,
                                          batch_size, pause)
            for column in columns}


def key_counts(engine: Engine, batch_size: int = 2000,
               columns: Iterable[SealedColumn] = SEALED_COLUMNS) -> Dict[str, Dict[str, int]]:
    """Values per key id in each column (``plaintext``/``fernet``: written before the
    keyring); reads only the prefixes. Empty (NULL) values are not counted."""
    result: Dict[str, Dict[str, int]] = {}
    for column in columns:
        table = _raw(column)
        value = table.c[column.column]
        counts: Dict[str, int] = collections.Counter()
        last_id = 0
        while True:
            with engine.connect() as connection:
                rows = connection.execute(
                    sa.select(table.c.id, sa.func.substr(value, 1, 60))
                    .where(table.c.id > last_id, value.is_not(None))
                    .order_by(table.c.id).limit(batch_size)).all()
            if not rows:
                break
            for _row_id, head in rows:
                counts[Sealer.key_id_of(head) or ("fernet" if column.fernet_before else "plaintext")] += 1
            last_id = rows[-1][0]
        result[column.name] = dict(counts)
    return result


def check_keys(engine: Engine, sealer: Sealer, columns: Iterable[SealedColumn] = SEALED_COLUMNS) -> None:
    """Open the newest sealed value of each column: raises ``AtRestError`` naming the key id
    when the keyring lacks its key or has another under its id. A process calls it at start,
    so a missing key stops it there instead of failing message by message."""
    for column in columns:
        table = _raw(column)
        value = table.c[column.column]
        with engine.connect() as connection:
            newest = connection.execute(
                sa.select(value).where(value.is_not(None), value.startswith("enc:", autoescape=True))
                .order_by(table.c.id.desc()).limit(1)).scalar()
        if newest is not None:
            sealer.open(newest)


# ── the journal ─────────────────────────────────────────────────────────────────────────
def journal_directories(roots: Iterable[Path]) -> List[Path]:
    """Each root and its door folders (gateway/door.py: one folder per door)."""
    found: List[Path] = []
    for root in roots:
        root = Path(root)
        if root.is_dir():
            found += [root, *sorted(p for p in root.iterdir() if p.is_dir())]
    return found


def reseal_journals(roots: Iterable[Path], sealer: Sealer) -> Dict[str, Optional[int]]:
    """Rewrite the message lines of every idle door's journal under the current key; per
    folder the lines changed, or None for a folder a running door owns (left to it)."""
    from clinic.messaging.journal_lines import key_id_of_record, reseal_record
    from whatsapp.journal import rewrite_idle

    current = sealer.keyring.current

    def transform(record: Any) -> Any:
        if key_id_of_record(record) in (current, "none"):
            return record
        return reseal_record(record, sealer)

    return {str(directory): rewrite_idle(directory, transform) for directory in journal_directories(roots)}


def journal_key_counts(roots: Iterable[Path]) -> Dict[str, int]:
    """Message lines per key id in every journal segment (``plaintext``: words in clear)."""
    import json

    from clinic.messaging.journal_lines import key_id_of_record
    from whatsapp.journal import SUFFIX

    counts: Dict[str, int] = collections.Counter()
    for directory in journal_directories(roots):
        for path in directory.glob(f"*{SUFFIX}"):
            try:
                lines = path.read_bytes().split(b"\n")
            except FileNotFoundError:  # drained meanwhile
                continue
            for line in lines:
                try:
                    kind = key_id_of_record(json.loads(line)) if line.strip() else "none"
                except ValueError:
                    continue
                if kind != "none":
                    counts[kind] += 1
    return dict(counts)


# ── command line ────────────────────────────────────────────────────────────────────────
def _fernet_opener(environ: Mapping[str, str]) -> Opener:
    """Opens the inbox's values written before the keyring (``CLINIC_ENCRYPTION_KEY``)."""
    from clinic.privacy import ContactCipher

    cipher: List[ContactCipher] = []

    def open_(value: str) -> str:
        if not cipher:
            cipher.append(ContactCipher.from_environment(dict(environ)))
        return cipher[0].decrypt(value)

    return open_


def _describe(counts: Mapping[str, int]) -> str:
    return ", ".join(f"{key}: {n}" for key, n in sorted(counts.items())) or "none"


def main(argv: Optional[List[str]] = None, environ: Optional[Mapping[str, str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m clinic.at_rest_rotation",
                                     description="Keys sealing the clinic database's message texts and the "
                                                 "WhatsApp journal (issue 18).")
    commands = parser.add_subparsers(dest="command", required=True)
    new_key = commands.add_parser("new-key", help="add a new current key (the key file's top line)")
    new_key.add_argument("--key-file", default=str(DEFAULT_CLINIC_KEY_FILE))
    for name, text in (("rotate", "re-seal every value and journal line under the current key, in batches"),
                       ("status", "values per key id")):
        command = commands.add_parser(name, help=text)
        command.add_argument("--database-url", default=None, help="default: CLINIC_DATABASE_URL")
        command.add_argument("--key-file", default=str(DEFAULT_CLINIC_KEY_FILE))
        if name == "rotate":
            command.add_argument("--batch-size", type=int, default=500)
            command.add_argument("--pause", type=float, default=0.05, help="seconds between batches")
    args = parser.parse_args(argv)
    environ = os.environ if environ is None else environ
    try:
        if args.command == "new-key":
            if environ.get(CLINIC_KEYS_ENV):
                print(f"{CLINIC_KEYS_ENV} is set: put this entry first in it (keep the others "
                      f"until `rotate` is done):\n{new_key_entry()}")
                return 0
            keyring = add_key_to_file(Path(args.key_file))
            print(f"{args.key_file}: current key {keyring.current} (older: "
                  f"{', '.join(list(keyring.keys)[1:]) or 'none'}); restart the services, then run `rotate`")
            return 0
        from clinic.db import create_schema, database_url, make_engine
        from clinic.retention import journal_roots

        url = args.database_url or database_url(dict(environ))
        engine = make_engine(url)
        create_schema(engine)
        roots = journal_roots(environ, url)
        if args.command == "rotate":
            sealer = clinic_sealer(environ, Path(args.key_file))
            done = reencrypt_database(engine, sealer, _fernet_opener(environ), args.batch_size, args.pause)
            journals = reseal_journals(roots, sealer)
            print(f"current key {sealer.keyring.current}")
            for column, counts in done.items():
                print(f"{column}: re-sealed {sum(counts.values())} ({_describe(counts)})")
            for directory, changed in journals.items():
                print(f"journal {directory}: " + ("in use by a running door (it drains it into the database; "
                                                  "run rotate again after)" if changed is None
                                                  else f"re-sealed {changed} lines"))
        else:
            for column, counts in key_counts(engine).items():
                print(f"{column}: {_describe(counts)}")
            print(f"journal: {_describe(journal_key_counts(roots))}")
        return 0
    except AtRestError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
