"""What a deployment keeps on disk, in one place: the databases and the key files under
``var/``, where the PostgreSQL tools are, and how to reach a database without showing its
password.

``KEY_FILES`` is the one list of key files the backup takes (a file that is absent is simply
not there: its key comes from the environment, or no process has needed it yet). Adding a
key file to the product means adding its name here; ``tests/test_operations_backup.py``
fails when a module defines ``VAR_DIR / "<something>.key(s)"`` that this list lacks.
"""

from __future__ import annotations

import dataclasses
import glob
import os
import shutil
from pathlib import Path
from typing import Mapping, Optional, Tuple

from sqlalchemy.engine import URL, make_url

from clinic.db import DATABASE_URL_ENV, VAR_DIR

TRACKER_STORE_URL_ENV = "RASA_TRACKER_STORE_URL"


@dataclasses.dataclass(frozen=True)
class KeyFile:
    name: str                 # file name under var/
    environment: str = ""     # the variable that replaces the file when set ("" = none)
    purpose: str = ""


KEY_FILES: Tuple[KeyFile, ...] = (
    KeyFile("pseudonym.key", "CLINIC_PSEUDONYM_KEY", "contact keys (HMAC of the WhatsApp id)"),
    KeyFile("encryption.key", "CLINIC_ENCRYPTION_KEY", "the patients' WhatsApp addresses"),
    KeyFile("clinic-encryption.keys", "CLINIC_ENCRYPTION_KEYS", "the inbox and journal keyring"),
    KeyFile("tracker-encryption.keys", "TRACKER_ENCRYPTION_KEYS", "Rasa's conversation events"),
    KeyFile("document.key", "CLINIC_DOCUMENT_KEY", "uploaded documents"),
    KeyFile("portal-token.key", "CLINIC_PORTAL_TOKEN_KEY", "portal and upload links"),
    KeyFile("inbox-session.key", "", "staff inbox sessions"),
    KeyFile("whatsapp-internal.key", "WHATSAPP_INTERNAL_SECRET", "gateway ↔ Rasa turn calls"),
    KeyFile("dev-secrets.env", "", "development secrets of `make run`"),
    KeyFile("dev-api-key", "", "the development clinic API key of `make run`"),
    KeyFile("dev-api-key.name", "", "its name"),
    KeyFile("dev-api-key.scopes", "", "its scopes"),
)


@dataclasses.dataclass(frozen=True)
class Deployment:
    """Where this deployment's data is: the var directory, the clinic database and Rasa's
    tracker store (``CLINIC_DATABASE_URL`` / ``RASA_TRACKER_STORE_URL``, else SQLite files
    under the var directory, as every process defaults)."""

    var_dir: Path
    clinic_url: str
    tracker_url: str
    environ_keys: Tuple[str, ...]  # variables of KEY_FILES set in the environment (names only)

    @classmethod
    def from_environment(cls, environ: Optional[Mapping[str, str]] = None,
                         var_dir: Optional[Path] = None) -> "Deployment":
        environ = os.environ if environ is None else environ
        var_dir = Path(var_dir) if var_dir is not None else VAR_DIR
        return cls(
            var_dir=var_dir,
            clinic_url=environ.get(DATABASE_URL_ENV) or f"sqlite:///{var_dir / 'clinic.db'}",
            tracker_url=environ.get(TRACKER_STORE_URL_ENV) or f"sqlite:///{var_dir / 'rasa_tracker.db'}",
            environ_keys=tuple(key.environment for key in KEY_FILES
                               if key.environment and environ.get(key.environment)),
        )

    def key_paths(self) -> Tuple[Tuple[KeyFile, Path], ...]:
        return tuple((key, self.var_dir / key.name) for key in KEY_FILES)


def backend(url: str) -> str:
    """``sqlite`` or ``postgresql`` (anything else is refused by the callers)."""
    return make_url(url).get_backend_name()


def sqlite_path(url: str) -> Path:
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database or parsed.database == ":memory:":
        raise ValueError(f"not a SQLite database file: {shown(url)}")
    return Path(parsed.database)


def shown(url: str) -> str:
    """A database URL fit for a message or a manifest: never its password."""
    return make_url(url).render_as_string(hide_password=True)


def libpq(url: str) -> Tuple[str, dict]:
    """(connection URI for pg_dump/pg_restore, their environment): the password travels in
    PGPASSWORD, not on a command line other users may read."""
    parsed: URL = make_url(url)
    extra = {"PGPASSWORD": parsed.password} if parsed.password else {}
    # A new URL: ``set(password=None)`` means "keep the password" in SQLAlchemy 1.4.
    bare = URL.create("postgresql", username=parsed.username, host=parsed.host, port=parsed.port,
                      database=parsed.database, query=parsed.query)
    return bare.render_as_string(hide_password=False), {**os.environ, **extra}


def postgres_tool(name: str) -> Path:
    """pg_dump / pg_restore: on PATH, else the newest /usr/lib/postgresql/<version>/bin
    (where Debian's packages put them, and where the tests find the server)."""
    found = shutil.which(name)
    if found:
        return Path(found)
    candidates = []
    for path in glob.glob(f"/usr/lib/postgresql/*/bin/{name}"):
        version = Path(path).parent.parent.name
        if os.access(path, os.X_OK):
            candidates.append((int(version) if version.isdigit() else 0, Path(path)))
    if not candidates:
        raise OperationError(f"{name} not found (on PATH or under /usr/lib/postgresql/*/bin): "
                             "install the PostgreSQL client tools of the server's version or newer")
    return max(candidates)[1]


class OperationError(RuntimeError):
    """A refusal or a failure the operator can act on; the message says what to do."""
