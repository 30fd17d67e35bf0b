"""Pseudonymous contact keys: the clinic's tables never hold a WhatsApp number in clear.

A contact key is HMAC-SHA256(secret, channel + ":" + sender id). The same sender always maps
to the same key (so requests can be linked), but the number cannot be read back from the
database without the secret. The secret comes from ``CLINIC_PSEUDONYM_KEY`` (hex or text) or,
in the embedded default, from ``var/pseudonym.key``, created on first use with mode 0600.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import tempfile
from pathlib import Path
from typing import Callable, Mapping, Optional

from clinic.db import VAR_DIR

PSEUDONYM_KEY_ENV = "CLINIC_PSEUDONYM_KEY"
DEFAULT_KEY_FILE = VAR_DIR / "pseudonym.key"


def secret_from(environ: Optional[Mapping[str, str]], name: str, key_file: Path,
                generate: Callable[[], bytes]) -> bytes:
    """The secret in environment variable ``name``, else the one in ``key_file``, created on
    first use (mode 0600) from ``generate()`` — the embedded default for development. An
    existing key file readable by others is made 0600."""
    environ = os.environ if environ is None else environ
    value = environ.get(name)
    if value:
        return value.encode("utf-8")
    if not key_file.exists():
        key_file.parent.mkdir(parents=True, exist_ok=True)
        # Written whole to a private temporary file, then linked into place: the key file
        # appears complete or not at all. If processes race (a stack starting its services
        # at once), one link wins and every other process reads that key, never an empty
        # file the winner has not written yet.
        fd, temporary = tempfile.mkstemp(dir=key_file.parent, prefix=f".{key_file.name}.")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(generate())
            try:
                os.link(temporary, key_file)
            except FileExistsError:
                pass
        finally:
            os.unlink(temporary)
    if key_file.stat().st_mode & 0o077:  # made before this rule, or by hand: owner only
        key_file.chmod(0o600)
    return key_file.read_bytes().strip()


def load_pseudonym_key(
    environ: Optional[dict] = None, key_file: Path = DEFAULT_KEY_FILE
) -> bytes:
    return secret_from(environ, PSEUDONYM_KEY_ENV, key_file, lambda: secrets.token_hex(32).encode())


def contact_key(sender_id: str, channel: str, key: bytes) -> str:
    """The pseudonymous key for a sender on a channel (64 hex characters)."""
    if not sender_id:
        raise ValueError("sender_id is required")
    message = f"{channel}:{sender_id}".encode("utf-8")
    return hmac.new(key, message, hashlib.sha256).hexdigest()


ENCRYPTION_KEY_ENV = "CLINIC_ENCRYPTION_KEY"
DEFAULT_ENCRYPTION_KEY_FILE = VAR_DIR / "encryption.key"


class ContactCipher:
    """Encrypts what must be reversible (the WhatsApp address to reply to) with Fernet
    (AES-128-CBC + HMAC-SHA256, from the maintained ``cryptography`` package).

    Key: ``CLINIC_ENCRYPTION_KEY`` (a Fernet key: 32 url-safe base64-encoded bytes) or, in
    the embedded default, ``var/encryption.key`` created on first use with mode 0600.
    """

    def __init__(self, key: bytes):
        from cryptography.fernet import Fernet

        self._fernet = Fernet(key)

    @classmethod
    def from_environment(
        cls, environ: Optional[dict] = None, key_file: Path = DEFAULT_ENCRYPTION_KEY_FILE
    ) -> "ContactCipher":
        from cryptography.fernet import Fernet

        return cls(secret_from(environ, ENCRYPTION_KEY_ENV, key_file, Fernet.generate_key))

    def encrypt(self, value: str) -> str:
        return self._fernet.encrypt(value.encode("utf-8")).decode("ascii")

    def decrypt(self, token: str) -> str:
        return self._fernet.decrypt(token.encode("ascii")).decode("utf-8")
