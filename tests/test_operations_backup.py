"""Backup and restore (clinic/operations/backup.py) on real SQLite files and a real
PostgreSQL: a backup taken while a writer keeps inserting is consistent and restores into an
empty var directory, where the project's own code reads the rows back; a damaged or altered
archive, an unknown schema revision and existing data are refused; every file is 0600."""

from __future__ import annotations

import ast
import io
import json
import os
import re
import sqlite3
import tarfile
import threading
from pathlib import Path

import pytest

from clinic.at_rest import Keyring, add_key_to_file
from clinic.db import make_engine, make_session_factory
from clinic.operations import backup
from clinic.operations.layout import KEY_FILES, Deployment, OperationError
from clinic.privacy import load_pseudonym_key
from tests.operations_support import (
    append_audit,
    fill_clinic,
    read_clinic,
    tracker_store,
    tracker_texts,
    tracker_turn,
)
from tests.pg_support import fresh_database

ROOT = Path(__file__).resolve().parents[1]


def deployment(var: Path, **urls) -> Deployment:
    return Deployment.from_environment(urls, var)


def mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


@pytest.fixture
def var(tmp_path) -> Path:
    """A var directory as `make run` leaves it: clinic.db (WAL), rasa_tracker.db, key files."""
    var = tmp_path / "var"
    var.mkdir()
    load_pseudonym_key({}, var / "pseudonym.key")
    keyring = add_key_to_file(var / "tracker-encryption.keys")
    store = tracker_store(keyring, db=var / "rasa_tracker.db")
    tracker_turn(store, "conversation-1", "synthetic: hello")
    store.engine.dispose()
    return var


def archive_members(path: Path) -> dict:
    with tarfile.open(path) as tar:
        return {info.name: tar.extractfile(info).read() for info in tar.getmembers()}


def rewrite(path: Path, change) -> Path:
    """A copy of the archive with ``change(members)`` applied."""
    members = change(archive_members(path))
    altered = path.with_name("altered.tar.gz")
    with tarfile.open(altered, "w:gz") as tar:
        for name, body in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(body)
            tar.addfile(info, io.BytesIO(body))
    return altered


def test_a_backup_taken_while_a_writer_inserts_is_consistent_and_restores(var, tmp_path):
    old_umask = os.umask(0o022)  # the archive must be 0600 whatever the umask
    try:
        written = fill_clinic(f"sqlite:///{var / 'clinic.db'}")
        engine = make_engine(f"sqlite:///{var / 'clinic.db'}")
        sessions = make_session_factory(engine)
        stop, inserted = threading.Event(), []

        def writer():
            while not stop.is_set():
                append_audit(sessions, len(inserted) + 1)
                inserted.append(1)

        (tmp_path / "backups").mkdir()
        thread = threading.Thread(target=writer)
        thread.start()
        try:
            while len(inserted) < 20:
                stop.wait(0.01)
            before = written.audit_rows + len(inserted)
            # The writer's rows sit in the write-ahead log: a copy of clinic.db alone lacks them.
            assert Path(f"{var / 'clinic.db'}-wal").stat().st_size > 0
            [archive] = backup.create(tmp_path / "backups", deployment(var), say=lambda _: None)
            during = written.audit_rows + len(inserted)
        finally:
            stop.set()
            thread.join()
            engine.dispose()
        assert during > before, "the writer did not write while the backup ran"
        assert mode(archive) == 0o600
        names = set(archive_members(archive))
        assert {"manifest.json", "databases/clinic.db", "databases/rasa_tracker.db",
                "keys/pseudonym.key", "keys/tracker-encryption.keys"} == names
        manifest = json.loads(archive_members(archive)["manifest.json"])
        assert manifest["schema_revision"] == backup.schema_revision(f"sqlite:///{var / 'clinic.db'}")
        assert all(len(entry["sha256"]) == 64 and entry["size"] > 0 for entry in manifest["files"])

        restored = tmp_path / "restored-var"
        backup.restore(archive, deployment(restored), say=lambda _: None)
        for name in ("clinic.db", "rasa_tracker.db", "pseudonym.key", "tracker-encryption.keys"):
            assert mode(restored / name) == 0o600, name
            if name.endswith("key") or name.endswith("keys"):
                assert (restored / name).read_bytes() == (var / name).read_bytes()
        with sqlite3.connect(restored / "clinic.db") as connection:
            assert connection.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        rows = read_clinic(f"sqlite:///{restored / 'clinic.db'}", written)  # the chain verifies
        assert before <= rows <= during
        keyring = Keyring.parse((restored / "tracker-encryption.keys").read_text(), "restored")
        store = tracker_store(keyring, db=restored / "rasa_tracker.db")
        assert tracker_texts(store, "conversation-1") == ["synthetic: hello"]
        store.engine.dispose()
    finally:
        os.umask(old_umask)


def test_keys_apart_or_left_out(var, tmp_path):
    fill_clinic(f"sqlite:///{var / 'clinic.db'}")
    data, keys = backup.create(tmp_path / "data.tar.gz", deployment(var), keys="separately",
                               keys_archive=tmp_path / "keys.tar.gz", say=lambda _: None)
    assert mode(data) == mode(keys) == 0o600
    assert not any(name.startswith("keys/") for name in archive_members(data))
    assert {name for name in archive_members(keys) if name != "manifest.json"} == {
        "keys/pseudonym.key", "keys/tracker-encryption.keys"}
    [alone] = backup.create(tmp_path / "nokeys.tar.gz", deployment(var), keys="without", say=lambda _: None)
    assert not any(name.startswith("keys/") for name in archive_members(alone))
    restored = tmp_path / "restored"
    backup.restore(data, deployment(restored), say=lambda _: None)
    backup.restore(keys, deployment(restored), say=lambda _: None)
    assert (restored / "pseudonym.key").read_bytes() == (var / "pseudonym.key").read_bytes()
    assert mode(restored / "pseudonym.key") == 0o600


def test_a_damaged_or_altered_archive_is_refused(var, tmp_path):
    fill_clinic(f"sqlite:///{var / 'clinic.db'}")
    [archive] = backup.create(tmp_path / "backup.tar.gz", deployment(var), say=lambda _: None)

    def flip_a_byte(members):
        body = bytearray(members["databases/clinic.db"])
        body[len(body) // 2] ^= 1
        return {**members, "databases/clinic.db": bytes(body)}

    def swap_a_key(members):
        return {**members, "keys/pseudonym.key": b"an attacker's key"}

    def add_a_file(members):
        return {**members, "keys/extra.key": b"x"}

    def from_the_future(members):
        manifest = json.loads(members["manifest.json"])
        manifest["schema_revision"] = "9999_from_a_newer_version"
        return {**members, "manifest.json": json.dumps(manifest).encode()}

    for change, words in ((flip_a_byte, "sha256"), (swap_a_key, "sha256"), (add_a_file, "not in the manifest"),
                          (from_the_future, "the manifest says")):
        altered = rewrite(archive, change)
        target = tmp_path / f"var-{change.__name__}"
        with pytest.raises(OperationError, match=words):
            backup.restore(altered, deployment(target), say=lambda _: None)
        assert not [p for p in target.iterdir()], f"{change.__name__}: something was restored"
        altered.unlink()
    # The untouched archive restores.
    backup.restore(archive, deployment(tmp_path / "var-ok"), say=lambda _: None)


def test_a_backup_of_a_newer_schema_is_refused(var, tmp_path):
    fill_clinic(f"sqlite:///{var / 'clinic.db'}")
    engine = make_engine(f"sqlite:///{var / 'clinic.db'}")
    with engine.begin() as connection:
        connection.exec_driver_sql("UPDATE alembic_version SET version_num = '9999_from_a_newer_version'")
    engine.dispose()
    [archive] = backup.create(tmp_path / "newer.tar.gz", deployment(var), say=lambda _: None)
    with pytest.raises(OperationError, match="9999_from_a_newer_version, which this code does not know"):
        backup.restore(archive, deployment(tmp_path / "restored"), say=lambda _: None)
    assert not (tmp_path / "restored" / "clinic.db").exists()


def test_restore_refuses_existing_data_unless_forced(var, tmp_path):
    written = fill_clinic(f"sqlite:///{var / 'clinic.db'}")
    [archive] = backup.create(tmp_path / "backup.tar.gz", deployment(var), say=lambda _: None)
    other = tmp_path / "other"
    other.mkdir()
    (other / "clinic.db").write_bytes(b"existing data")
    (other / "pseudonym.key").write_bytes(b"another key")
    with pytest.raises(OperationError) as refused:
        backup.restore(archive, deployment(other), say=lambda _: None)
    assert "clinic.db exists" in str(refused.value) and "pseudonym.key" in str(refused.value)
    assert "another key" not in str(refused.value) and "existing data" not in str(refused.value)
    assert (other / "clinic.db").read_bytes() == b"existing data"  # nothing touched
    assert not (other / "rasa_tracker.db").exists()
    backup.restore(archive, deployment(other), force=True, say=lambda _: None)
    read_clinic(f"sqlite:///{other / 'clinic.db'}", written)
    kept = sorted(p.name for p in other.iterdir() if ".replaced-" in p.name)
    assert [name.split(".replaced-")[0] for name in kept] == ["clinic.db", "pseudonym.key"]
    assert all(mode(other / name) == 0o600 for name in kept if name.startswith("pseudonym"))


def test_postgresql_databases_are_dumped_and_restored(var, tmp_path, postgres_url):
    with fresh_database(postgres_url, "bk_src") as source, fresh_database(postgres_url, "bk_dst") as target:
        written = fill_clinic(source)
        [archive] = backup.create(tmp_path / "pg.tar.gz", deployment(var, CLINIC_DATABASE_URL=source),
                                  say=lambda _: None)
        members = archive_members(archive)
        assert members["databases/clinic.pgdump"][:5] == b"PGDMP"  # pg_dump's custom format
        revision = json.loads(members["manifest.json"])["schema_revision"]
        assert revision and revision == backup.schema_revision(source)  # read from the dump
        restored = tmp_path / "restored"
        backup.restore(archive, deployment(restored, CLINIC_DATABASE_URL=target), say=lambda _: None)
        assert read_clinic(target, written) == written.audit_rows
        with pytest.raises(OperationError, match="has tables"):
            backup.restore(archive, deployment(tmp_path / "again", CLINIC_DATABASE_URL=target),
                           say=lambda _: None)


def test_every_key_file_of_the_code_is_in_the_backup_list():
    """A module defining ``VAR_DIR / "<name>.key"`` (or ``.keys``) or a script writing
    ``var/<name>.key``: the name must be in layout.KEY_FILES, or backups silently lack it."""
    listed = {key.name for key in KEY_FILES}
    found = set()
    packages = [d for d in ROOT.iterdir() if (d / "__init__.py").is_file() and d.name != "tests"]
    for path in (path for package in packages for path in package.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.BinOp) and ast.unparse(node.left) == "VAR_DIR" \
                    and isinstance(node.right, ast.Constant) and re.search(r"\.keys?$", str(node.right.value)):
                found.add(node.right.value)
    for path in (ROOT / "scripts").glob("*.sh"):
        found.update(re.findall(r"var/([\w.-]+\.(?:keys?|env))\b", path.read_text(encoding="utf-8")))
    assert {"pseudonym.key", "tracker-encryption.keys", "whatsapp-internal.key"} <= found
    assert found <= listed, f"key files missing from clinic/operations/layout.py KEY_FILES: {found - listed}"


def test_the_command_line_prints_no_key_and_no_patient_data(var, tmp_path, capsys):
    fill_clinic(f"sqlite:///{var / 'clinic.db'}")
    secrets = [(var / name).read_text().strip() for name in ("pseudonym.key", "tracker-encryption.keys")]
    assert backup.main(["create", str(tmp_path / "out"), "--var-dir", str(var)], {}) == 0
    [archive] = list((tmp_path / "out").iterdir())
    assert mode(tmp_path / "out") == 0o700 and mode(archive) == 0o600
    assert backup.main(["restore", str(archive), "--var-dir", str(tmp_path / "restored")], {}) == 0
    assert backup.main(["restore", str(archive), "--var-dir", str(tmp_path / "restored")], {}) == 2
    printed = capsys.readouterr()
    assert "--force" in printed.err
    for text in (printed.out, printed.err):
        assert "Synthetic Patient" not in text and "synthetic" not in text
        assert not any(secret in text or secret.split(":")[-1] in text for secret in secrets)


def test_an_archive_restores_into_the_same_kind_of_database_only(var, tmp_path):
    fill_clinic(f"sqlite:///{var / 'clinic.db'}")
    [archive] = backup.create(tmp_path / "backup.tar.gz", deployment(var), say=lambda _: None)
    elsewhere = deployment(tmp_path / "pg-var", CLINIC_DATABASE_URL="postgresql+psycopg2://clinic:pw@db.invalid/clinic")
    with pytest.raises(OperationError, match="holds sqlite, this deployment uses postgresql") as refused:
        backup.restore(archive, elsewhere, say=lambda _: None)
    assert "pw@" not in str(refused.value) and "copy_to_postgres" in str(refused.value)
    assert not (tmp_path / "pg-var" / "rasa_tracker.db").exists()  # nothing restored at all
