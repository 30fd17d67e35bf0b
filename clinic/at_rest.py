"""Encryption at rest for stored text (issue 18), with keys that can rotate.

A value is sealed with AES-256-GCM (``cryptography``) under the keyring's current key and
stored as ``enc:v1:<key id>:<base64url(nonce + ciphertext + tag)>``; the prefix (version and
key id) is authenticated too. Opening a value picks the key by its id, so rows written under
an older key still read while a rotation re-encrypts them; a value without the prefix is a
row written before encryption (plain text) and is returned as it is.

A keyring is one or more ``<key id>:<base64url 32-byte key>`` entries separated by commas,
spaces or new lines; the first is the current key (new values are sealed with it), the others
are kept for reading. Rasa's tracker store (addons/encrypted_tracker_store.py) reads its
keyring from ``TRACKER_ENCRYPTION_KEYS`` or, in the embedded default, from
``var/tracker-encryption.keys``, created on first use with mode 0600 (``secret_from``).
The clinic database and the WhatsApp journal share a second keyring (``clinic_sealer``):
``CLINIC_ENCRYPTION_KEYS``, else ``var/clinic-encryption.keys`` (0600, created on first use);
``SealedText`` is a column type sealing with it. ``python -m clinic.at_rest_rotation
new-key|rotate|status`` manages that keyring.

Errors are loud: a value sealed under a key id that is not in the keyring, or under a key
that is not the one with its id (InvalidTag), raises ``AtRestError`` naming the key id and
where the keyring came from; never garbage.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import secrets
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, Mapping, Optional, Tuple

from sqlalchemy import Text
from sqlalchemy.types import TypeDecorator

from clinic.db import VAR_DIR, private_file
from clinic.privacy import secret_from

PREFIX = "enc:"
VERSION = "v1"
KEY_BYTES = 32
NONCE_BYTES = 12
KEY_ID_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,40}$")

TRACKER_KEYS_ENV = "TRACKER_ENCRYPTION_KEYS"
DEFAULT_TRACKER_KEY_FILE = VAR_DIR / "tracker-encryption.keys"
# The clinic database's sealed columns and the webhook journal's message lines.
CLINIC_KEYS_ENV = "CLINIC_ENCRYPTION_KEYS"
DEFAULT_CLINIC_KEY_FILE = VAR_DIR / "clinic-encryption.keys"


class AtRestError(RuntimeError):
    """A keyring is malformed, or a stored value cannot be opened with it. (A RuntimeError on
    purpose: Rasa falls back to an in-memory store on ImportError/AttributeError.)"""


class UnknownKeyError(AtRestError):
    """The value was sealed under a key id the keyring does not have."""


class UndecryptableError(AtRestError):
    """The key with the value's id is not the key it was sealed with, or the value changed."""


def new_key_id(taken: Tuple[str, ...] = ()) -> str:
    """``k<UTC date and time>``: tells an operator how old a key is; unique in ``taken``."""
    base = time.strftime("k%Y%m%dT%H%M%S", time.gmtime())
    key_id, n = base, 1
    while key_id in taken:
        n += 1
        key_id = f"{base}-{n}"
    return key_id


def new_key_entry(key_id: Optional[str] = None) -> str:
    key_id = key_id or new_key_id()
    return f"{key_id}:{base64.urlsafe_b64encode(os.urandom(KEY_BYTES)).decode('ascii')}"


@dataclass(frozen=True)
class Keyring:
    current: str
    keys: Mapping[str, bytes]  # in order: the current key first
    source: str = "the keyring"  # where it came from, for error messages

    @classmethod
    def parse(cls, text: str, source: str = "the keyring") -> "Keyring":
        keys: Dict[str, bytes] = {}
        for entry in re.split(r"[\s,]+", text.strip()):
            if not entry:
                continue
            key_id, sep, encoded = entry.partition(":")
            if not sep or not KEY_ID_PATTERN.match(key_id):
                raise AtRestError(f"{source}: each key must be '<key id>:<base64 key>' with an id of "
                                  f"letters, digits, '-' or '_' (got an entry starting {entry[:6]!r}…)")
            try:
                key = base64.urlsafe_b64decode(encoded.encode("ascii"))
            except (binascii.Error, ValueError, UnicodeEncodeError):
                key = b""
            if len(key) != KEY_BYTES:
                raise AtRestError(f"{source}: key {key_id!r} is not {KEY_BYTES} bytes of url-safe base64 "
                                  "(make one with `python -m addons.encrypted_tracker_store new-key` or "
                                  "`python -m clinic.at_rest_rotation new-key`)")
            if key_id in keys:
                raise AtRestError(f"{source}: key id {key_id!r} appears twice")
            keys[key_id] = key
        if not keys:
            raise AtRestError(f"{source}: no key")
        return cls(next(iter(keys)), keys, source)

    def render(self) -> str:
        return "\n".join(f"{key_id}:{base64.urlsafe_b64encode(key).decode('ascii')}"
                         for key_id, key in self.keys.items())

    def with_new_key(self, key_id: Optional[str] = None) -> "Keyring":
        """A keyring whose current key is a new one; the others stay for reading."""
        entry = new_key_entry(key_id or new_key_id(tuple(self.keys)))
        return Keyring.parse(entry + "\n" + self.render(), self.source)


def load_keyring(environ: Optional[Mapping[str, str]] = None, name: str = TRACKER_KEYS_ENV,
                 key_file: Path = DEFAULT_TRACKER_KEY_FILE) -> Keyring:
    """The keyring in environment variable ``name``, else in ``key_file`` (created with one
    new key, mode 0600, on first use)."""
    environ = os.environ if environ is None else environ
    text = secret_from(environ, name, key_file, lambda: (new_key_entry() + "\n").encode()).decode("utf-8")
    return Keyring.parse(text, name if environ.get(name) else str(key_file))


def add_key_to_file(key_file: Path) -> Keyring:
    """Put a new current key at the top of ``key_file`` (created if absent), atomically, mode
    0600. The previous keys stay, for reading until a rotation re-encrypted their rows."""
    key_file = Path(key_file)
    keyring = Keyring.parse(key_file.read_text(), str(key_file)) if key_file.exists() else None
    updated = keyring.with_new_key() if keyring else Keyring.parse(new_key_entry(), str(key_file))
    temporary = key_file.with_name(f".{key_file.name}.{secrets.token_hex(4)}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(updated.render() + "\n")
    private_file(temporary)
    os.replace(temporary, key_file)
    return Keyring.parse(updated.render(), str(key_file))


class Sealer:
    """Seals text under the current key; opens text sealed under any key of the keyring.
    ``reload``: called once when a value names a key id the keyring lacks (a key file that
    another process updated), before giving up."""

    def __init__(self, keyring: Keyring, reload: Optional[Callable[[], Keyring]] = None):
        self._reload = reload
        self._use(keyring)

    def _use(self, keyring: Keyring) -> None:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        # One tuple, replaced at once: a thread sealing while another reloads the key file
        # never pairs one key's cipher with another key's id.
        self._state = (keyring, {key_id: AESGCM(key) for key_id, key in keyring.keys.items()},
                       self.prefix(keyring.current))

    @property
    def keyring(self) -> Keyring:
        return self._state[0]

    @property
    def current_prefix(self) -> str:
        return self._state[2]

    @staticmethod
    def prefix(key_id: str) -> str:
        return f"{PREFIX}{VERSION}:{key_id}:"

    @staticmethod
    def key_id_of(value: str) -> Optional[str]:
        """The key id a stored value was sealed under; None for plain (legacy) text."""
        if not value.startswith(PREFIX):
            return None
        parts = value.split(":", 3)
        if len(parts) != 4 or parts[1] != VERSION:
            raise AtRestError(f"stored value has an unknown encryption format {value[:12]!r}…")
        return parts[2]

    def seal(self, text: str) -> str:
        nonce = os.urandom(NONCE_BYTES)
        keyring, ciphers, prefix = self._state
        sealed = ciphers[keyring.current].encrypt(nonce, text.encode("utf-8"), prefix.encode("ascii"))
        return prefix + base64.urlsafe_b64encode(nonce + sealed).decode("ascii")

    def open(self, value: str) -> str:
        key_id = self.key_id_of(value)
        if key_id is None:
            return value  # written before encryption
        cipher = self._state[1].get(key_id)
        if cipher is None and self._reload is not None:
            self._use(self._reload())
            cipher = self._state[1].get(key_id)
        if cipher is None:
            raise UnknownKeyError(
                f"a stored value was encrypted with key {key_id!r}, which is not in {self.keyring.source} "
                f"(it has {', '.join(self.keyring.keys)}): add that key to the keyring, after the current one")
        from cryptography.exceptions import InvalidTag

        prefix = self.prefix(key_id)
        try:
            raw = base64.urlsafe_b64decode(value[len(prefix):].encode("ascii"))
            text = cipher.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], prefix.encode("ascii"))
        except (InvalidTag, binascii.Error, ValueError) as exc:
            raise UndecryptableError(
                f"a stored value encrypted with key {key_id!r} does not open with the key of that id in "
                f"{self.keyring.source}: the key is not the one it was written with, or the value was altered"
            ) from exc
        return text.decode("utf-8")

    def reseal(self, value: str) -> str:
        """``value`` sealed under the current key (plain text gets sealed)."""
        return self.seal(self.open(value))


# ── the clinic's keyring (clinic database, WhatsApp journal) ─────────────────────────────
def load_clinic_keyring(environ: Optional[Mapping[str, str]] = None,
                        key_file: Path = DEFAULT_CLINIC_KEY_FILE) -> Keyring:
    """The keyring of the clinic database and the journal: ``CLINIC_ENCRYPTION_KEYS``, else
    ``key_file`` (created with one new key, mode 0600, on first use)."""
    return load_keyring(environ, CLINIC_KEYS_ENV, key_file)


_CLINIC_SEALERS: Dict[Tuple[str, str], Sealer] = {}
_CLINIC_SEALERS_LOCK = threading.Lock()
_clinic_override: Optional[Sealer] = None


def clinic_sealer(environ: Optional[Mapping[str, str]] = None,
                  key_file: Path = DEFAULT_CLINIC_KEY_FILE) -> Sealer:
    """The process's sealer for the clinic's keyring, loaded once per keyring source (the
    variable's value or the key file). From a key file it reloads the file when a value names
    a key id it lacks (another process added a key: ``new-key``, then restarts)."""
    if _clinic_override is not None:
        return _clinic_override
    environ = os.environ if environ is None else environ
    from_variable = environ.get(CLINIC_KEYS_ENV) or ""
    cache_key = (from_variable, "" if from_variable else str(key_file))
    sealer = _CLINIC_SEALERS.get(cache_key)
    if sealer is None:
        with _CLINIC_SEALERS_LOCK:
            sealer = _CLINIC_SEALERS.get(cache_key)
            if sealer is None:
                reload = None if from_variable else (lambda: load_clinic_keyring({}, key_file))
                sealer = Sealer(load_clinic_keyring(environ, key_file), reload)
                _CLINIC_SEALERS[cache_key] = sealer
    return sealer


@contextmanager
def clinic_keyring_in_use(keyring: Keyring) -> Iterator[Sealer]:
    """Tests (and tools): every ``SealedText`` column and journal line of this process uses
    ``keyring`` inside the block."""
    global _clinic_override
    previous, _clinic_override = _clinic_override, Sealer(keyring)
    try:
        yield _clinic_override
    finally:
        _clinic_override = previous


class SealedText(TypeDecorator):  # type: ignore[misc]
    """A text column stored sealed with the clinic's keyring (``clinic_sealer``); values
    written before encryption (no ``enc:`` prefix) read as they are. Only for columns that
    are never compared or searched in SQL (each value's ciphertext differs)."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: Optional[str], dialect: Any) -> Optional[str]:
        return None if value is None else clinic_sealer().seal(value)

    def process_result_value(self, value: Optional[str], dialect: Any) -> Optional[str]:
        return None if value is None else clinic_sealer().open(value)

