"""Backup and restore of the clinic database, Rasa's tracker store and the key files.

    python -m clinic.operations.backup create <directory-or-file> [--keys-separately PATH | --without-keys]
    python -m clinic.operations.backup restore <archive> [--force]

An archive is a gzipped tar written 0600 holding ``manifest.json`` (what is inside, each
member's size and sha256, the clinic schema's Alembic revision, when it was made) and:

* ``databases/clinic.db`` / ``databases/rasa_tracker.db``: SQLite files copied with SQLite's
  online backup API, a consistent snapshot taken while the services keep writing (a file
  copy of a live write-ahead-logged database is not one); or ``databases/*.pgdump``:
  ``pg_dump --format=custom`` when the database is PostgreSQL;
* ``keys/<name>``: the key files under ``var/`` (``layout.KEY_FILES``), unless
  ``--without-keys``; ``--keys-separately PATH`` writes them to a second archive instead,
  to be stored apart from the data (whoever holds both holds the patients' data in clear).

Restore checks every member's sha256 against the manifest, refuses an archive whose schema
revision this code does not know (made by newer code), refuses to replace existing data or
keys unless ``--force`` (then the replaced SQLite files and key files are kept beside, renamed
``*.replaced-<time>``), and writes files 0600. The sha256 sums detect a damaged or altered
member; they are no signature: keep archives where only the operators can write.

Nothing here prints a key, a password or a row.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import io
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

from sqlalchemy import create_engine, inspect, text

from clinic.clock import utcnow
from clinic.db import PRIVATE_MODE, SQLITE_COMPANIONS, alembic_config, private_file
from clinic.operations.layout import (
    Deployment,
    OperationError,
    backend,
    libpq,
    postgres_tool,
    shown,
    sqlite_path,
)

FORMAT = 1
MANIFEST = "manifest.json"
DATABASES = ("clinic", "tracker")  # the clinic's own database, Rasa's tracker store
SQLITE_MEMBER = {"clinic": "databases/clinic.db", "tracker": "databases/rasa_tracker.db"}
PG_MEMBER = {"clinic": "databases/clinic.pgdump", "tracker": "databases/rasa_tracker.pgdump"}
CHUNK = 1 << 20

Say = Callable[[str], None]


# ── creating ──────────────────────────────────────────────────────────────────────────────
def sqlite_online_copy(source: Path, target: Path) -> None:
    """A consistent copy of a live SQLite database (SQLite's backup API, all pages in one
    step under one read transaction: writers in WAL mode carry on meanwhile), checked with
    ``PRAGMA quick_check``. ``target`` is created 0600."""
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_MODE)
    os.close(fd)
    # mode=rw: never create the source (a missing database is the caller's business).
    src = sqlite3.connect(f"{source.resolve().as_uri()}?mode=rw", uri=True, timeout=30)
    try:
        dst = sqlite3.connect(target)
        try:
            src.backup(dst)
            verdict = dst.execute("PRAGMA quick_check").fetchone()[0]
        finally:
            dst.close()
    finally:
        src.close()
    if verdict != "ok":
        raise OperationError(f"the copy of {source.name} fails SQLite's quick_check ({verdict})")
    for suffix in SQLITE_COMPANIONS:
        private_file(Path(f"{target}{suffix}"))


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def schema_revision(url: str) -> Optional[str]:
    """The clinic database's Alembic revision (None: never migrated)."""
    engine = create_engine(url, future=True)
    try:
        with engine.connect() as connection:
            if not inspect(connection).has_table("alembic_version"):
                return None
            revisions = sorted(connection.execute(text("SELECT version_num FROM alembic_version")).scalars())
    finally:
        engine.dispose()
    return ",".join(revisions) or None


def pg_dump(url: str, target: Path) -> None:
    uri, environment = libpq(url)
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_MODE)
    os.close(fd)
    result = subprocess.run(
        [str(postgres_tool("pg_dump")), "--format=custom", "--no-owner", "--no-privileges",
         "--file", str(target), "--dbname", uri],
        env=environment, capture_output=True, text=True, timeout=24 * 3600)
    if result.returncode != 0:
        raise OperationError(f"pg_dump of {shown(url)} failed: {result.stderr.strip()[-800:]}")


def _archive_path(destination: Path, stamp: str, kind: str) -> Path:
    """A directory (an existing one, or a new name without a suffix: created 0700) gets a
    dated file name; anything else is the archive's own name, which must be new."""
    if not destination.exists() and not destination.suffix:
        destination.mkdir(mode=0o700, parents=True)
    if destination.is_dir():
        return destination / f"clinic-{kind}-{stamp}.tar.gz"
    if destination.exists():
        raise OperationError(f"{destination} exists: give a new file name or a directory")
    return destination


def _write_archive(path: Path, staging: Path, members: List[str], manifest: dict) -> None:
    """A gzipped tar, 0600 from its first byte, moved into place when complete."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE_MODE)
    try:
        with os.fdopen(fd, "wb") as raw, tarfile.open(fileobj=raw, mode="w:gz") as archive:
            body = json.dumps(manifest, indent=2, sort_keys=True).encode("utf-8")
            _add(archive, MANIFEST, io.BytesIO(body), len(body))
            for member in members:
                with open(staging / member, "rb") as handle:
                    _add(archive, member, handle, (staging / member).stat().st_size)
            raw.flush()
            os.fsync(raw.fileno())
        os.replace(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    private_file(path)


def _add(archive: tarfile.TarFile, name: str, handle, size: int) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = size, PRIVATE_MODE, int(utcnow().timestamp())
    archive.addfile(info, handle)


def _entry(staging: Path, member: str) -> dict:
    path = staging / member
    return {"member": member, "size": path.stat().st_size, "sha256": sha256_of(path)}


def create(destination: Path, deployment: Deployment, *, keys: str = "with",
           keys_archive: Optional[Path] = None, say: Say = print) -> List[Path]:
    """Write the archive(s); returns their paths. ``keys``: ``with`` (in the data archive),
    ``without``, or ``separately`` (to ``keys_archive``)."""
    if keys not in ("with", "without", "separately") or (keys == "separately") != (keys_archive is not None):
        raise ValueError("keys: 'with', 'without' or 'separately' with keys_archive")
    now = utcnow()
    stamp = now.strftime("%Y%m%dT%H%M%SZ")
    path = _archive_path(Path(destination), stamp, "backup")
    second = _archive_path(Path(keys_archive), stamp, "keys") if keys_archive is not None else None
    if second is not None and second.resolve() == path.resolve():
        raise OperationError("the key archive must be another file than the data archive")
    # Beside the archive (not /tmp): the copies hold patient data until they are archived.
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".clinic-backup-", dir=path.parent))
    try:
        (staging / "databases").mkdir()
        (staging / "keys").mkdir()
        databases, data_members = [], []
        revision = None
        for name, url in (("clinic", deployment.clinic_url), ("tracker", deployment.tracker_url)):
            kind = backend(url)
            if kind == "sqlite":
                source = sqlite_path(url)
                if not source.exists() or source.stat().st_size == 0:
                    say(f"{name} database: {source} does not exist yet, nothing to back up")
                    databases.append({"name": name, "engine": "sqlite", "member": None})
                    continue
                member = SQLITE_MEMBER[name]
                sqlite_online_copy(source, staging / member)
                if name == "clinic":
                    revision = schema_revision(f"sqlite:///{staging / member}")
            elif kind == "postgresql":
                member = PG_MEMBER[name]
                pg_dump(url, staging / member)
                if name == "clinic":
                    revision = dump_revision(staging / member)
            else:
                raise OperationError(f"{name} database: {shown(url)} is neither SQLite nor PostgreSQL")
            databases.append({"name": name, "engine": kind, "member": member, "source": shown(url)})
            data_members.append(member)
            say(f"{name} database: {shown(url)} → {member} ({(staging / member).stat().st_size} bytes)")
        key_members = []
        if keys != "without":
            for key, source in deployment.key_paths():
                if source.is_file():
                    member = f"keys/{key.name}"
                    shutil.copyfile(source, staging / member)
                    os.chmod(staging / member, PRIVATE_MODE)
                    key_members.append(member)
        base = {"format": FORMAT, "created_at": now.isoformat(),
                "keys_from_environment": list(deployment.environ_keys)}
        written = []
        if keys == "separately":
            manifest = {**base, "kind": "keys", "files": [_entry(staging, m) for m in key_members],
                        "data_archive": path.name}
            _write_archive(second, staging, key_members, manifest)
            written.append(second)
        members = data_members + (key_members if keys == "with" else [])
        manifest = {**base, "kind": "data", "schema_revision": revision, "databases": databases,
                    "files": [_entry(staging, m) for m in members],
                    "keys": {"with": "included", "without": "not included",
                             "separately": f"in {second.name if second else ''}"}[keys]}
        _write_archive(path, staging, members, manifest)
        written.insert(0, path)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    say(f"written (0600): {path}" + (f"; key files: {second}" if second else ""))
    if key_members:
        say(f"key files: {', '.join(m.split('/', 1)[1] for m in key_members)}"
            + ("" if keys == "separately" else
               " — in the same archive as the data: whoever reads it reads the data; "
               "--keys-separately keeps them apart"))
    if deployment.environ_keys:
        say("keys set in the environment are not in any archive (keep them with your secrets): "
            + ", ".join(deployment.environ_keys))
    return written


# ── restoring ─────────────────────────────────────────────────────────────────────────────
@dataclasses.dataclass
class Opened:
    manifest: dict
    staging: Path
    files: Dict[str, Path]  # member → extracted file


def _safe_member(name: str) -> bool:
    parts = Path(name).parts
    return (bool(parts) and not Path(name).is_absolute() and ".." not in parts
            and parts[0] in ("databases", "keys") and len(parts) == 2)


def open_archive(archive: Path, staging: Path) -> Opened:
    """Extract into ``staging`` (0700) and check the members against the manifest: nothing
    missing, nothing extra, every size and sha256 as recorded."""
    try:
        tar = tarfile.open(archive, mode="r:*")
    except (tarfile.TarError, OSError) as error:
        raise OperationError(f"{archive} is not a readable backup archive ({error})") from error
    with tar:
        try:
            manifest_member = tar.getmember(MANIFEST)
            manifest = json.loads(tar.extractfile(manifest_member).read())
        except (KeyError, ValueError, AttributeError) as error:
            raise OperationError(f"{archive} has no readable {MANIFEST}: not a backup of this product") from error
        if manifest.get("format") != FORMAT or manifest.get("kind") not in ("data", "keys"):
            raise OperationError(f"{archive}: unknown backup format {manifest.get('format')!r}")
        expected = {entry["member"]: entry for entry in manifest.get("files", [])}
        if not all(_safe_member(name) for name in expected):
            raise OperationError(f"{archive}: the manifest names a file outside databases/ and keys/")
        files: Dict[str, Path] = {}
        for info in tar.getmembers():
            if info.name == MANIFEST:
                continue
            if info.name not in expected or not info.isfile():
                raise OperationError(f"{archive}: {info.name!r} is not in the manifest: refused")
            target = staging / info.name
            target.parent.mkdir(mode=0o700, exist_ok=True)
            digest, size = hashlib.sha256(), 0
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_MODE)
            with os.fdopen(fd, "wb") as out, tar.extractfile(info) as source:
                for chunk in iter(lambda: source.read(CHUNK), b""):
                    digest.update(chunk)
                    size += len(chunk)
                    out.write(chunk)
            entry = expected[info.name]
            if size != entry["size"] or digest.hexdigest() != entry["sha256"]:
                raise OperationError(f"{archive}: {info.name} does not match its sha256 in the manifest "
                                     "(damaged or altered): nothing restored")
            files[info.name] = target
        missing = sorted(set(expected) - set(files))
        if missing:
            raise OperationError(f"{archive}: missing {', '.join(missing)}: nothing restored")
    return Opened(manifest, staging, files)


def check_revision(revision: Optional[str]) -> None:
    """Refuse a schema revision the code does not know (a backup made by newer code)."""
    if not revision:
        return
    from alembic.script import ScriptDirectory
    from alembic.util import CommandError

    scripts = ScriptDirectory.from_config(alembic_config())
    for one in revision.split(","):
        try:
            known = scripts.get_revision(one)
        except CommandError:
            known = None
        if known is None:
            raise OperationError(
                f"the archive's clinic schema is at revision {one}, which this code does not know "
                "(it was made by a newer version): restore it with that version or newer")


def archived_revision(opened: Opened) -> Optional[str]:
    """The schema revision of the clinic database in the archive itself (not the manifest's
    word): its ``alembic_version`` table."""
    member = next((database["member"] for database in opened.manifest.get("databases", [])
                   if database["name"] == "clinic" and database.get("member")), None)
    if member is None:
        return None
    if member.endswith(".db"):
        return schema_revision(f"sqlite:///{opened.files[member]}")
    return dump_revision(opened.files[member])


def dump_revision(dump: Path) -> Optional[str]:
    """The ``alembic_version`` rows of a ``pg_dump --format=custom`` file (no server needed)."""
    result = subprocess.run(
        [str(postgres_tool("pg_restore")), "--data-only", "--table=alembic_version", "--file=-",
         str(dump)], capture_output=True, text=True, timeout=600)
    if result.returncode != 0:
        raise OperationError(f"pg_restore cannot read {dump.name}: {result.stderr.strip()[-800:]}")
    revisions, inside = [], False
    for line in result.stdout.splitlines():
        if line.startswith("COPY ") and "alembic_version" in line:
            inside = True
        elif inside and line == "\\.":
            break
        elif inside and line.strip():
            revisions.append(line.strip())
    return ",".join(sorted(revisions)) or None


def _postgres_is_empty(url: str) -> bool:
    engine = create_engine(url, future=True)
    try:
        with engine.connect() as connection:
            return not inspect(connection).get_table_names()
    finally:
        engine.dispose()


def _sqlite_is_empty(path: Path) -> bool:
    return not path.exists() or path.stat().st_size == 0


def _set_aside(path: Path, stamp: str) -> Optional[Path]:
    """Rename an existing file (and a SQLite file's companions) to ``*.replaced-<stamp>``."""
    if not path.exists():
        return None
    aside = path.with_name(f"{path.name}.replaced-{stamp}")
    for suffix in ("", *SQLITE_COMPANIONS):
        current = Path(f"{path}{suffix}")
        if current.exists():
            os.replace(current, Path(f"{aside}{suffix}"))
            private_file(Path(f"{aside}{suffix}"))  # old keys and data: owner only too
    return aside


def _place(source: Path, target: Path) -> None:
    """Copy ``source`` to ``target`` (0600), atomically."""
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.restoring")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE_MODE)
    with os.fdopen(fd, "wb") as out, open(source, "rb") as handle:
        shutil.copyfileobj(handle, out, CHUNK)
        out.flush()
        os.fsync(out.fileno())
    os.replace(partial, target)
    private_file(target)


def pg_restore(dump: Path, url: str, clean: bool) -> None:
    uri, environment = libpq(url)
    command = [str(postgres_tool("pg_restore")), "--no-owner", "--no-privileges", "--exit-on-error",
               "--single-transaction", "--dbname", uri]
    if clean:
        command += ["--clean", "--if-exists"]
    result = subprocess.run(command + [str(dump)], env=environment, capture_output=True,
                            text=True, timeout=24 * 3600)
    if result.returncode != 0:
        raise OperationError(f"pg_restore into {shown(url)} failed: {result.stderr.strip()[-800:]}")


def restore(archive: Path, deployment: Deployment, *, force: bool = False, say: Say = print) -> None:
    archive = Path(archive)
    deployment.var_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".clinic-restore-", dir=deployment.var_dir))
    try:
        opened = open_archive(archive, staging)
        manifest = opened.manifest
        if manifest["kind"] == "data":
            revision = archived_revision(opened)
            if revision != manifest.get("schema_revision"):
                raise OperationError(f"{archive}: the clinic database is at revision {revision}, the "
                                     f"manifest says {manifest.get('schema_revision')}: refused")
            check_revision(revision)
        plan: List[Tuple[str, Callable[[], str]]] = []
        refusals: List[str] = []
        stamp = utcnow().strftime("%Y%m%dT%H%M%SZ")
        targets = {"clinic": deployment.clinic_url, "tracker": deployment.tracker_url}
        for database in manifest.get("databases", []):
            if not database.get("member"):
                continue
            name, kind, member = database["name"], database["engine"], database["member"]
            url = targets[name]
            if backend(url) != kind:
                refusals.append(f"{name} database: the archive holds {kind}, this deployment uses "
                                f"{backend(url)} ({shown(url)}); restore where it was made, then move "
                                "with clinic.operations.copy_to_postgres")
                continue
            if kind == "sqlite":
                target = sqlite_path(url)
                if not _sqlite_is_empty(target) and not force:
                    refusals.append(f"{name} database: {target} exists and is not empty (--force replaces it)")

                def put(source=opened.files[member], target=target) -> str:
                    aside = _set_aside(target, stamp)
                    _place(source, target)
                    return f"{target}" + (f" (the previous one kept as {aside.name})" if aside else "")
            else:
                empty = _postgres_is_empty(url)
                if not empty and not force:
                    refusals.append(f"{name} database: {shown(url)} has tables (--force replaces them)")

                def put(source=opened.files[member], url=url, clean=not empty) -> str:
                    pg_restore(source, url, clean)
                    return shown(url)
            plan.append((f"{name} database", put))
        for member, extracted in sorted(opened.files.items()):
            if not member.startswith("keys/"):
                continue
            target = deployment.var_dir / member.split("/", 1)[1]
            if target.exists() and target.read_bytes() != extracted.read_bytes():
                if not force:
                    refusals.append(f"key file {target.name}: a different one exists (--force replaces it)")

            def put_key(source=extracted, target=target) -> str:
                if target.exists() and target.read_bytes() == source.read_bytes():
                    private_file(target)
                    return f"{target} (unchanged)"
                aside = _set_aside(target, stamp)
                _place(source, target)
                return f"{target}" + (f" (the previous one kept as {aside.name})" if aside else "")
            plan.append((f"key file {target.name}", put_key))
        if refusals:
            raise OperationError("nothing restored:\n  " + "\n  ".join(refusals))
        for label, action in plan:
            say(f"restored {label}: {action()}")
        if manifest["kind"] == "data" and manifest.get("keys") != "included":
            say(f"key files: {manifest.get('keys')} — restore them too, or the encrypted data stays unreadable")
        if manifest.get("keys_from_environment"):
            say("set again in the environment: " + ", ".join(manifest["keys_from_environment"]))
    finally:
        shutil.rmtree(staging, ignore_errors=True)


# ── command line ──────────────────────────────────────────────────────────────────────────
def main(argv: Optional[List[str]] = None, environ: Optional[dict] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m clinic.operations.backup", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    make = commands.add_parser("create", help="write a backup archive")
    make.add_argument("destination", type=Path,
                      help="a directory (a dated name is chosen inside; created when it has no suffix) or a new file")
    apart = make.add_mutually_exclusive_group()
    apart.add_argument("--keys-separately", type=Path, metavar="PATH",
                       help="write the key files to this second archive (directory or file), not with the data")
    apart.add_argument("--without-keys", action="store_true", help="leave the key files out")
    back = commands.add_parser("restore", help="restore an archive (data or keys)")
    back.add_argument("archive", type=Path)
    back.add_argument("--force", action="store_true",
                      help="replace existing data and key files (kept beside as *.replaced-<time>)")
    for command in (make, back):
        command.add_argument("--var-dir", type=Path, default=None,
                             help="the deployment's var directory (default: var/ of the project)")
    args = parser.parse_args(argv)
    deployment = Deployment.from_environment(environ, args.var_dir)
    try:
        if args.command == "create":
            keys = "separately" if args.keys_separately else "without" if args.without_keys else "with"
            create(args.destination, deployment, keys=keys, keys_archive=args.keys_separately)
        else:
            restore(args.archive, deployment, force=args.force)
    except OperationError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":  # pragma: no cover - the command line
    raise SystemExit(main())
