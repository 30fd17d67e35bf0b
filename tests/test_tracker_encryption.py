"""Encryption at rest of Rasa's tracker store, and deleted data gone from the files (issue 18).

The encrypted store (addons/encrypted_tracker_store.py) on SQLite and PostgreSQL: what a
patient wrote is in no stored row (nor the SQLite file) while ``retrieve`` gives it back;
what Rasa and analytics query stays in clear; rows written before encryption still read;
rotation moves every row to the new key in batches while old-key rows read until then; a
missing or wrong key is an error naming the key, never garbage or an empty conversation.
Files holding patient data are 0600 under a 0022 umask; SQLite databases opened by
clinic/db.py overwrite what is deleted or cleared (secure_delete) and a checkpoint leaves
no copy in the write-ahead log.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
from pathlib import Path

import pytest
import sqlalchemy as sa

from addons.encrypted_tracker_store import EncryptedSQLTrackerStore, main
from clinic.at_rest import (
    AtRestError,
    Keyring,
    Sealer,
    UndecryptableError,
    UnknownKeyError,
    add_key_to_file,
    load_keyring,
    new_key_entry,
)
from clinic.db import checkpoint, make_engine
from clinic.privacy import secret_from
from tests.pg_support import fresh_database

SECRET = "QUOKKA-7731 rash spreading on my left arm"
LATER = "ZEBRAFINCH-4402 and now a fever"


@pytest.fixture(autouse=True)
def _read_from_the_database(monkeypatch):
    # addons/tracker_cache.py would hand a store back the tracker it just saved, without
    # reading the database: these tests are about what the database holds.
    monkeypatch.setenv("LEAN_TURNS", "0")
    monkeypatch.delenv("TRACKER_ENCRYPTION_KEYS", raising=False)


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request, tmp_path):
    """(the store's connection settings, a SQLAlchemy URL for reading raw rows, the SQLite
    file or None)."""
    if request.param == "sqlite":
        path = tmp_path / "tracker.db"
        yield {"dialect": "sqlite", "db": str(path)}, f"sqlite:///{path}", path
    else:
        with fresh_database(request.getfixturevalue("postgres_url"), "tracker") as url:
            yield {"host": url}, url, None


@pytest.fixture(scope="module")
def domain():
    from rasa.shared.core.domain import Domain

    return Domain.from_dict({"intents": ["describe_symptoms"], "entities": ["body_part"],
                             "responses": {"utter_sorry": [{"text": "Sorry to hear that."}]}})


def keyring(*entries: str) -> Keyring:
    return Keyring.parse(",".join(entries), "test keyring")


K1, K1_OTHER, K2 = new_key_entry("k1"), new_key_entry("k1"), new_key_entry("k2")


def turn(words: str, start: bool = False) -> list:
    from rasa.shared.core.events import ActionExecuted, BotUttered, SessionStarted, UserUttered

    events = [ActionExecuted("action_session_start"), SessionStarted(), ActionExecuted("action_listen")] if start else []
    return events + [
        UserUttered(words, intent={"name": "describe_symptoms", "confidence": 0.93},
                    entities=[{"entity": "body_part", "value": words.split()[-1], "start": 0, "end": 4}],
                    metadata={"note": words}),
        ActionExecuted("utter_sorry"),
        BotUttered(f"Sorry to hear that: {words}", metadata={"echo": words}),
        ActionExecuted("action_listen"),
    ]


def save(store, sender: str, *events_lists) -> None:
    from rasa.shared.core.trackers import DialogueStateTracker

    async def run():
        tracker = await store.retrieve(sender) or DialogueStateTracker(sender, store.domain.slots)
        for events in events_lists:
            for event in events:
                tracker.update(event)
        await store.save(tracker)

    asyncio.run(run())


def texts(store, sender: str) -> list:
    tracker = asyncio.run(store.retrieve(sender))
    assert tracker is not None
    return [(e.type_name, e.text, e.metadata) for e in tracker.events if e.type_name in ("user", "bot")]


def raw_rows(url: str) -> list:
    engine = sa.create_engine(url, future=True)
    try:
        with engine.connect() as connection:
            return connection.execute(sa.text(
                "SELECT sender_id, type_name, intent_name, action_name, data FROM events ORDER BY id")).all()
    finally:
        engine.dispose()


def stored_bytes(path: Path) -> bytes:
    return b"".join(p.read_bytes() for p in [path, *path.parent.glob(path.name + "-*")])


def open_store(database, domain, ring: Keyring) -> EncryptedSQLTrackerStore:
    settings, _url, _path = database
    return EncryptedSQLTrackerStore(domain, keyring=ring, **settings)


# ── encryption ──────────────────────────────────────────────────────────────────────────
def test_rows_hold_no_clear_text_and_read_back(database, domain):
    _settings, url, path = database
    save(open_store(database, domain, keyring(K1)), "patient-a", turn(SECRET, start=True))

    rows = raw_rows(url)
    assert len(rows) == 7
    assert all(row.data.startswith("enc:v1:k1:") for row in rows)
    assert not any("QUOKKA" in row.data or "left arm" in row.data for row in rows)
    # What Rasa queries on and analytics count stays in clear.
    assert [row.type_name for row in rows] == ["action", "session_started", "action", "user", "action",
                                               "bot", "action"]
    assert [row.intent_name for row in rows if row.type_name == "user"] == ["describe_symptoms"]
    assert [row.action_name for row in rows if row.type_name == "action"] == [
        "action_session_start", "action_listen", "utter_sorry", "action_listen"]
    assert {row.sender_id for row in rows} == {"patient-a"}
    if path is not None:
        assert b"QUOKKA" not in stored_bytes(path)

    # A new store (a restarted Rasa) reads it all back.
    assert texts(open_store(database, domain, keyring(K1)), "patient-a") == [
        ("user", SECRET, {"note": SECRET}), ("bot", f"Sorry to hear that: {SECRET}", {"echo": SECRET})]
    tracker = asyncio.run(open_store(database, domain, keyring(K1)).retrieve("patient-a"))
    assert tracker.latest_message.intent["name"] == "describe_symptoms"
    assert tracker.latest_message.entities[0]["value"] == "arm"


def test_rows_written_before_encryption_still_read_and_rotate_encrypts_them(database, domain):
    from rasa.core.tracker_store import SQLTrackerStore

    settings, url, path = database
    plain = SQLTrackerStore(domain, **settings)
    save(plain, "patient-b", turn(SECRET, start=True))
    plain.engine.dispose()
    assert all(row.data.startswith("{") for row in raw_rows(url))  # Rasa's plain JSON

    store = open_store(database, domain, keyring(K1))
    assert texts(store, "patient-b")[0] == ("user", SECRET, {"note": SECRET})
    save(store, "patient-b", turn(LATER))
    data = [row.data for row in raw_rows(url)]
    assert [d[:10] for d in data].count("enc:v1:k1:") == 4 and sum(d.startswith("{") for d in data) == 7
    assert not any("ZEBRAFINCH" in d for d in data)
    assert store.key_counts() == {"plaintext": 7, "k1": 4}
    assert [t for _k, t, _m in texts(open_store(database, domain, keyring(K1)), "patient-b")] == [
        SECRET, f"Sorry to hear that: {SECRET}", LATER, f"Sorry to hear that: {LATER}"]

    assert store.reencrypt(batch_size=3) == {"plaintext": 7}
    assert all(row.data.startswith("enc:v1:k1:") for row in raw_rows(url))
    assert store.key_counts() == {"k1": 11}
    if path is not None:
        assert b"QUOKKA" not in stored_bytes(path)
    assert [t for _k, t, _m in texts(open_store(database, domain, keyring(K1)), "patient-b")][0] == SECRET


def test_rotation_to_a_new_key(database, domain):
    _settings, url, _path = database
    save(open_store(database, domain, keyring(K1)), "patient-c", turn(SECRET, start=True))

    # The new key is current; the old one is kept for reading: old rows read before rotation.
    rotated = open_store(database, domain, keyring(K2, K1))
    assert texts(rotated, "patient-c")[0][1] == SECRET
    save(rotated, "patient-d", turn(LATER, start=True))
    assert rotated.key_counts() == {"k1": 7, "k2": 7}
    # Without the old key the store refuses to start (its oldest row is under k1).
    with pytest.raises(UnknownKeyError, match="'k1'"):
        open_store(database, domain, keyring(K2))

    commits = []
    sa.event.listen(rotated.engine, "commit", lambda _connection: commits.append(1))
    assert rotated.reencrypt(batch_size=3) == {"k1": 7}
    assert len(commits) >= 3  # one transaction per batch of 3 rows: Rasa keeps working between them
    assert all(row.data.startswith("enc:v1:k2:") for row in raw_rows(url))
    assert rotated.reencrypt() == {}  # nothing left to do

    only_new = open_store(database, domain, keyring(K2))
    assert texts(only_new, "patient-c")[0][1] == SECRET
    assert texts(only_new, "patient-d")[0][1] == LATER


def test_a_wrong_or_missing_key_is_a_clear_error(database, domain, tmp_path):
    # A running store meeting rows under a key it lacks (another process wrote them): an
    # error naming the key, not an empty conversation or garbage.
    running = open_store(database, domain, keyring(K2))
    save(open_store(database, domain, keyring(K1)), "patient-e", turn(SECRET, start=True))
    with pytest.raises(UnknownKeyError, match="'k1', which is not in test keyring"):
        asyncio.run(running.retrieve("patient-e"))

    # Another key under the same id: refused at start, not decrypted into garbage.
    with pytest.raises(UndecryptableError, match="'k1'.*not the one it was written with"):
        open_store(database, domain, keyring(K1_OTHER))
    # The key file lost (a new one is made on first use): the error names the key and the file.
    fresh = load_keyring({}, key_file=tmp_path / "lost.keys")
    with pytest.raises(UnknownKeyError, match=f"'k1', which is not in {tmp_path / 'lost.keys'}"):
        open_store(database, domain, fresh)


def test_keyrings_are_checked():
    with pytest.raises(AtRestError, match="<key id>:<base64 key>"):
        Keyring.parse("not-a-key", "TRACKER_ENCRYPTION_KEYS")
    with pytest.raises(AtRestError, match="'k1' is not 32 bytes"):
        Keyring.parse("k1:c2hvcnQ=", "TRACKER_ENCRYPTION_KEYS")
    with pytest.raises(AtRestError, match="appears twice"):
        Keyring.parse(f"{K1},{K1_OTHER}")
    ring = Keyring.parse(f" {K2}\n{K1} ")
    assert ring.current == "k2" and list(ring.keys) == ["k2", "k1"]
    sealer = Sealer(ring)
    sealed = sealer.seal(SECRET)
    assert sealed.startswith("enc:v1:k2:") and SECRET not in sealed and sealer.open(sealed) == SECRET
    assert sealer.seal(SECRET) != sealed  # a fresh nonce each time
    assert sealer.open('{"event": "user"}') == '{"event": "user"}'  # legacy plain JSON
    tampered = sealed[:-6] + ("A" if sealed[-6] != "A" else "B") + sealed[-5:]
    with pytest.raises(UndecryptableError):
        sealer.open(tampered)
    # The key id is authenticated: a value cannot be passed off as sealed under another key.
    relabelled = Sealer(Keyring.parse(f"{K2},k1:{K2.split(':')[1]}"))
    with pytest.raises(UndecryptableError):
        relabelled.open(sealed.replace("enc:v1:k2:", "enc:v1:k1:"))


def test_the_key_file_and_the_rotation_commands(tmp_path, domain, capsys):
    key_file = tmp_path / "tracker.keys"
    database = tmp_path / "tracker.db"
    endpoints = tmp_path / "endpoints.yml"
    endpoints.write_text("tracker_store:\n  type: addons.encrypted_tracker_store.EncryptedSQLTrackerStore\n"
                         f'  dialect: sqlite\n  db: "{database}"\n  key_file: "{key_file}"\n')
    first = load_keyring(key_file=key_file)  # created on first use
    assert key_file.stat().st_mode & 0o777 == 0o600
    store = EncryptedSQLTrackerStore(domain, db=str(database), key_file=str(key_file))
    save(store, "patient-g", turn(SECRET, start=True))

    assert main(["new-key", "--key-file", str(key_file)]) == 0
    ring = load_keyring(key_file=key_file)
    assert list(ring.keys)[1:] == [first.current] and ring.current != first.current
    assert key_file.stat().st_mode & 0o777 == 0o600
    # The running store meets no row under the new key yet; it would reload the file if it did.
    assert main(["status", "--endpoints", str(endpoints)]) == 0
    assert f"{first.current}: 7" in capsys.readouterr().out
    assert main(["rotate", "--endpoints", str(endpoints), "--batch-size", "2", "--pause", "0"]) == 0
    assert f"re-encrypted 7 rows under key {ring.current}" in capsys.readouterr().out
    assert {row.data[:len(ring.current) + 8] for row in raw_rows(f"sqlite:///{database}")} == {
        f"enc:v1:{ring.current}:"}
    # The store started before the new key: it picks the key up from the file to read.
    assert texts(store, "patient-g")[0][1] == SECRET

    key_file.write_text(K1)  # the keys lost: the command says so and fails
    assert main(["rotate", "--endpoints", str(endpoints)]) == 1
    assert "which is not in" in capsys.readouterr().err


def test_add_key_to_a_missing_file(tmp_path):
    ring = add_key_to_file(tmp_path / "new.keys")
    assert len(ring.keys) == 1
    assert (tmp_path / "new.keys").stat().st_mode & 0o777 == 0o600


# ── files ───────────────────────────────────────────────────────────────────────────────
@pytest.fixture
def loose_umask():
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def test_files_holding_patient_data_are_private_whatever_the_umask(loose_umask, tmp_path, domain):
    from whatsapp.journal import InboxJournal

    # The tracker store's SQLite file.
    store = EncryptedSQLTrackerStore(domain, db=str(tmp_path / "var" / "tracker.db"), keyring=keyring(K1))
    save(store, "patient-h", turn(SECRET, start=True))
    assert mode(tmp_path / "var" / "tracker.db") == 0o600

    # The clinic database and its write-ahead log and shared-memory files.
    engine = make_engine(f"sqlite:///{tmp_path / 'clinic.db'}")
    with engine.begin() as connection:
        connection.exec_driver_sql("CREATE TABLE notes (body TEXT)")
        connection.exec_driver_sql("INSERT INTO notes VALUES ('x')")
        for suffix in ("", "-wal", "-shm"):
            assert mode(tmp_path / f"clinic.db{suffix}") == 0o600, suffix
    engine.dispose()
    # One created before this rule, under a loose umask: made private when opened.
    (tmp_path / "old.db").touch()
    (tmp_path / "old.db").chmod(0o644)
    make_engine(f"sqlite:///{tmp_path / 'old.db'}").dispose()
    assert mode(tmp_path / "old.db") == 0o600

    # The WhatsApp door's journal segments.
    journal = InboxJournal(tmp_path / "journal")
    journal.append([{"text": SECRET}])
    segments = list((tmp_path / "journal").glob("*.jsonl"))
    assert segments and all(mode(p) == 0o600 for p in segments)
    journal.close()

    # Key files under var/: created 0600, an existing looser one tightened.
    secret_from({}, "NO_SUCH_VARIABLE", tmp_path / "new.key", lambda: b"secret")
    assert mode(tmp_path / "new.key") == 0o600
    (tmp_path / "old.key").write_bytes(b"secret")
    assert mode(tmp_path / "old.key") == 0o644
    assert secret_from({}, "NO_SUCH_VARIABLE", tmp_path / "old.key", lambda: b"other") == b"secret"
    assert mode(tmp_path / "old.key") == 0o600
    load_keyring({}, key_file=tmp_path / "tracker.keys")
    assert mode(tmp_path / "tracker.keys") == 0o600


# ── deleted means gone from the file ────────────────────────────────────────────────────
@pytest.fixture
def secure_delete_off_by_default(monkeypatch):
    """Connections start with secure_delete off, as in SQLite's own default build (this
    machine's SQLite is built with it on): what turns it on must be the product's code."""
    original = sqlite3.dbapi2.connect

    def connect(*args, **kwargs):
        connection = original(*args, **kwargs)
        connection.execute("PRAGMA secure_delete=OFF")
        return connection

    monkeypatch.setattr(sqlite3.dbapi2, "connect", connect)


def _delete_and_clear(engine) -> None:
    with engine.begin() as connection:
        connection.exec_driver_sql("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
        for n in range(40):
            connection.exec_driver_sql("INSERT INTO notes (body) VALUES (?)",
                                       (f"{SECRET} #{n}" if n in (7, 8) else f"ordinary note {n:03d}",))
    assert checkpoint(engine)
    with engine.begin() as connection:
        connection.exec_driver_sql("DELETE FROM notes WHERE id = 8")  # deleted
        connection.exec_driver_sql("UPDATE notes SET body = NULL WHERE id = 9")  # cleared


def test_deleted_and_cleared_text_is_gone_from_the_file_and_the_log(secure_delete_off_by_default, tmp_path):
    path = tmp_path / "clinic.db"
    engine = make_engine(f"sqlite:///{path}")
    with engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA secure_delete").scalar() == 1
    _delete_and_clear(engine)
    assert b"QUOKKA" in stored_bytes(path)  # the earlier versions are still in the log
    assert checkpoint(engine)
    assert b"QUOKKA" not in path.read_bytes()
    wal = Path(f"{path}-wal")
    assert not wal.exists() or b"QUOKKA" not in wal.read_bytes()
    with engine.connect() as connection:
        assert connection.exec_driver_sql("SELECT count(*) FROM notes").scalar() == 39
    engine.dispose()

    # The same without secure_delete leaves the text in the file: the check above can fail.
    control = sa.create_engine(f"sqlite:///{tmp_path / 'control.db'}", future=True)
    with control.connect() as connection:
        connection.exec_driver_sql("PRAGMA journal_mode=WAL")
    _delete_and_clear(control)
    assert checkpoint(control)
    assert b"QUOKKA" in (tmp_path / "control.db").read_bytes()
    control.dispose()


def test_the_tracker_store_uses_secure_delete(secure_delete_off_by_default, tmp_path, domain):
    store = EncryptedSQLTrackerStore(domain, db=str(tmp_path / "tracker.db"), keyring=keyring(K1))
    with store.engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA secure_delete").scalar() == 1
