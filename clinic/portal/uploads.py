"""Documents patients send the clinic through a single-use upload link, encrypted at rest.

The assistant asks patients not to send photos of insurance cards or referral letters in
the chat (WhatsApp is not where the clinic keeps documents, and the chat only reads text).
Instead a link ``{portal_url}/t/<token>`` (clinic/portal/tokens.py, purpose ``upload``)
opens an upload form; the file is checked, encrypted and stored, and staff see it in the
inbox next to the conversation the link was sent to.

* **Minting**: :func:`issue_upload_link` (for the action server, like the results links of
  actions/status.py) or ``POST /api/v1/portal/upload-links`` (clinic_api/routes/portal.py).
* **Checks**: at most :data:`MAX_BYTES`; PDF, JPEG or PNG recognised from the first bytes
  of the file (:func:`sniff`), never from its name or the browser's content type, which the
  sender controls. A refused file leaves the link unused, so the patient can try again.
* **Encryption at rest**: AES-256-GCM (``cryptography``) with a random 96-bit nonce per
  value; the associated data binds each ciphertext to its row id and field, so a ciphertext
  copied into another row does not decrypt. The file name is encrypted too (names like
  "Ivanova_insurance.jpg" are personal data). Key: ``CLINIC_DOCUMENT_KEY`` (32 bytes,
  url-safe base64) or, in the embedded default, ``var/document.key`` created on first use
  (mode 0600), read the way the project's other secrets are (clinic.privacy). A separate
  key from ``CLINIC_ENCRYPTION_KEY``: documents can be re-keyed or handed to another system
  without touching the contact addresses. ``key_ref`` (a fingerprint of the key) on each
  row tells "wrong key" from "tampered".
* **Single use**: the token is used up in the transaction that stores the file
  (``PortalTokens.redeem(within=…)``), and ``portal_uploads.token_id`` is unique.
* **Audit**: every upload and every refusal goes to ``portal_access_log`` (the log of portal
  links) with the token's row id, the outcome and the channel, never the file name or its
  bytes; staff downloads are in the inbox's audit log (inbox/documents.py).
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import hashlib
import os
import re
import secrets
import unicodedata
from pathlib import Path
from typing import Callable, List, Optional, Tuple

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from clinic.clock import utcnow
from clinic.db import VAR_DIR
from clinic.portal.tables import PortalUploadRow
from clinic.portal.tokens import (
    UNKNOWN,
    UPLOAD,
    Grant,
    Issued,
    PortalTokens,
    TokenError,
    portal_link,
)

DOCUMENT_KEY_ENV = "CLINIC_DOCUMENT_KEY"
DEFAULT_DOCUMENT_KEY_FILE = VAR_DIR / "document.key"
MAX_BYTES = 10 * 1024 * 1024  # per file: a phone photo or a scanned letter fits easily
# What may be uploaded: the media type recognised from the bytes → what staff read.
MEDIA_TYPES = {"application/pdf": "PDF", "image/jpeg": "JPEG", "image/png": "PNG"}
EXTENSIONS = {"application/pdf": ".pdf", "image/jpeg": ".jpg", "image/png": ".png"}
# What a link may ask for (the token's document_id); "document" when the clinic doesn't say.
# The words are for staff (the inbox is in English); patients read clinic/portal/texts.yml.
KINDS = {"insurance_card": "insurance card", "referral_letter": "referral letter", "document": "document"}
NAME_MAX = 120

# Refusals (UploadRefused.reason); the portal page words each one for the patient.
NO_FILE = "no_file"
TOO_LARGE = "too_large"
WRONG_TYPE = "wrong_type"
REFUSALS = (NO_FILE, TOO_LARGE, WRONG_TYPE)


class UploadRefused(Exception):
    """The file is not accepted; the link stays usable. ``reason`` is one of REFUSALS."""

    def __init__(self, reason: str):
        self.reason = reason
        super().__init__(reason)


class DocumentKeyError(RuntimeError):
    """A stored document was sealed with another key, or its ciphertext was changed."""


def sniff(data: bytes) -> Optional[str]:
    """The media type the bytes themselves show (magic numbers), or None if not accepted.

    PDF: ``%PDF-`` at the start (a PDF reader tolerates it later, but a file that hides its
    header behind other bytes is the classic polyglot trick, and scanners and phones write
    it first). JPEG: SOI marker ``FF D8 FF``. PNG: its 8-byte signature.
    """
    if data.startswith(b"%PDF-"):
        return "application/pdf"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    return None


def clean_name(name: Optional[str], media_type: str) -> str:
    """A file name safe to show and to offer as a download name: no folders, no control
    characters, at most NAME_MAX characters, and the extension of what the file really is."""
    name = unicodedata.normalize("NFC", name or "")
    name = re.split(r"[\\/]", name)[-1]
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C").strip().strip(".")
    stem = name.rsplit(".", 1)[0] if "." in name else name
    stem = stem[:NAME_MAX - 5].strip() or "document"
    return stem + EXTENSIONS[media_type]


def load_document_key(environ: Optional[dict] = None, key_file: Path = DEFAULT_DOCUMENT_KEY_FILE) -> bytes:
    """The 32-byte AES key: ``CLINIC_DOCUMENT_KEY`` (url-safe base64), else ``var/document.key``."""
    from clinic.privacy import secret_from

    encoded = secret_from(environ, DOCUMENT_KEY_ENV, key_file,
                           lambda: base64.urlsafe_b64encode(secrets.token_bytes(32)))
    try:
        key = base64.urlsafe_b64decode(encoded + b"=" * (-len(encoded) % 4))
    except ValueError:
        key = b""
    if len(key) != 32:
        raise ValueError(f"{DOCUMENT_KEY_ENV} must be 32 bytes in url-safe base64 "
                         "(python -c \"import base64,os; print(base64.urlsafe_b64encode(os.urandom(32)).decode())\")")
    return key


class DocumentCipher:
    """AES-256-GCM with a fresh nonce per value; ``aad`` names what the value is."""

    NONCE_BYTES = 12

    def __init__(self, key: bytes):
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        if len(key) != 32:
            raise ValueError("the document key must be 32 bytes")
        self._aead = AESGCM(key)
        self.key_ref = hashlib.sha256(b"clinic-document-key:" + key).hexdigest()[:16]

    @classmethod
    def from_environment(cls, environ: Optional[dict] = None,
                         key_file: Path = DEFAULT_DOCUMENT_KEY_FILE) -> "DocumentCipher":
        return cls(load_document_key(environ, key_file))

    def seal(self, plaintext: bytes, aad: bytes) -> bytes:
        nonce = os.urandom(self.NONCE_BYTES)
        return nonce + self._aead.encrypt(nonce, plaintext, aad)

    def open(self, sealed: bytes, aad: bytes, key_ref: str) -> bytes:
        from cryptography.exceptions import InvalidTag

        if key_ref != self.key_ref:
            raise DocumentKeyError("the document was encrypted with another key "
                                   f"({DOCUMENT_KEY_ENV} or var/document.key changed)")
        try:
            return self._aead.decrypt(sealed[:self.NONCE_BYTES], sealed[self.NONCE_BYTES:], aad)
        except InvalidTag:
            raise DocumentKeyError("the stored document does not decrypt: it was changed") from None


def _aad(upload_id: str, field: str) -> bytes:
    return f"portal_uploads:{upload_id}:{field}".encode("ascii")


@dataclasses.dataclass(frozen=True)
class UploadInfo:
    """What staff see in the list (no content)."""

    id: str
    conversation_id: str
    kind: str
    name: str
    media_type: str
    size_bytes: int
    created_at: dt.datetime

    @property
    def kind_label(self) -> str:
        return KINDS.get(self.kind, self.kind)

    @property
    def type_label(self) -> str:
        return MEDIA_TYPES.get(self.media_type, self.media_type)

    @property
    def size_label(self) -> str:
        if self.size_bytes < 1024:
            return f"{self.size_bytes} B"
        if self.size_bytes < 1024 * 1024:
            return f"{self.size_bytes / 1024:.0f} KB"
        return f"{self.size_bytes / (1024 * 1024):.1f} MB"


class Uploads:
    """Receiving (patients, through the portal) and reading (staff, through the inbox)."""

    def __init__(self, session_factory: sessionmaker, cipher: DocumentCipher,
                 tokens: Optional[PortalTokens] = None, clock: Callable[[], dt.datetime] = utcnow):
        self._sessions = session_factory
        self._cipher = cipher
        self._tokens = tokens  # needed to receive, not to read
        self._clock = clock

    @property
    def sessions(self) -> sessionmaker:
        """For callers that read a document in their own transaction (the inbox's audit row)."""
        return self._sessions

    # ── receiving ───────────────────────────────────────────────────────────────────────
    def receive(self, token: str, filename: Optional[str], data: Optional[bytes], via: str = "portal",
                too_large: bool = False) -> UploadInfo:
        """Check the file, then store it encrypted and use the link up, in one transaction.

        ``too_large``: the caller stopped reading the request past the limit (``data`` is
        then incomplete). Raises TokenError (the link opens nothing) or UploadRefused (the
        link stays usable). Logs the outcome, never the name or the bytes.
        """
        if self._tokens is None:
            raise RuntimeError("Uploads was built without PortalTokens: it can only read")
        grant = self._tokens.check(token, via=via)
        if grant.purpose != UPLOAD:  # a results link posted to as if it were an upload link
            self._tokens.log(grant.token_id, "upload_wrong_link", via)
            raise TokenError(UNKNOWN, grant.token_id)
        media_type = None
        if too_large or (data is not None and len(data) > MAX_BYTES):
            reason = TOO_LARGE
        elif not data:
            reason = NO_FILE
        else:
            media_type = sniff(data)
            reason = None if media_type else WRONG_TYPE
        if reason:
            self._tokens.log(grant.token_id, f"upload_{reason}", via)
            raise UploadRefused(reason)
        assert media_type is not None and data is not None
        upload_id = "pup_" + secrets.token_hex(8)
        name = clean_name(filename, media_type)
        # Encrypted before the transaction: the slow part (10 MB) holds no database lock.
        content = self._cipher.seal(data, _aad(upload_id, "content"))
        name_sealed = self._cipher.seal(name.encode("utf-8"), _aad(upload_id, "name"))
        now = self._clock()

        def store(session: Session, used: Grant) -> None:
            session.add(PortalUploadRow(
                id=upload_id, token_id=used.token_id, conversation_id=used.conversation_id,
                patient_id=used.patient_id, kind=used.document_id if used.document_id in KINDS else "document",
                media_type=media_type, size_bytes=len(data), key_ref=self._cipher.key_ref,
                name_sealed=name_sealed, content=content, created_at=now))

        used = self._tokens.redeem(token, via=via, within=store)
        self._tokens.log(used.token_id, "uploaded", via)
        return UploadInfo(upload_id, used.conversation_id or "", used.document_id, name, media_type,
                          len(data), now)

    # ── reading (staff) ─────────────────────────────────────────────────────────────────
    def for_conversation(self, conversation_id: str, limit: int = 50) -> List[UploadInfo]:
        """The conversation's uploads, newest first, without their content."""
        columns = (PortalUploadRow.id, PortalUploadRow.conversation_id, PortalUploadRow.kind,
                   PortalUploadRow.name_sealed, PortalUploadRow.key_ref, PortalUploadRow.media_type,
                   PortalUploadRow.size_bytes, PortalUploadRow.created_at)
        with self._sessions() as session:
            rows = session.execute(select(*columns).where(PortalUploadRow.conversation_id == conversation_id)
                                   .order_by(PortalUploadRow.created_at.desc(), PortalUploadRow.id)
                                   .limit(limit)).all()
        return [UploadInfo(r.id, r.conversation_id, r.kind, self._name(r.id, r.name_sealed, r.key_ref),
                           r.media_type, r.size_bytes, r.created_at) for r in rows]

    def read(self, session: Session, upload_id: str, conversation_id: str) -> Optional[Tuple[UploadInfo, bytes]]:
        """One upload of ``conversation_id`` with its content, decrypted, in the caller's
        session (so the caller's audit row and the read share a transaction); None if there
        is no such upload in that conversation."""
        row = session.scalars(select(PortalUploadRow).where(PortalUploadRow.id == upload_id,
                                                            PortalUploadRow.conversation_id == conversation_id)).first()
        if row is None:
            return None
        content = self._cipher.open(row.content, _aad(row.id, "content"), row.key_ref)
        info = UploadInfo(row.id, row.conversation_id, row.kind, self._name(row.id, row.name_sealed, row.key_ref),
                          row.media_type, row.size_bytes, row.created_at)
        return info, content

    def _name(self, upload_id: str, sealed: bytes, key_ref: str) -> str:
        return self._cipher.open(sealed, _aad(upload_id, "name"), key_ref).decode("utf-8")


def issue_upload_link(tokens: PortalTokens, portal_url: str, conversation_id: str, kind: str = "document",
                      patient_id: Optional[str] = None, source: str = "chat") -> Tuple[str, Issued]:
    """A single-use link for the patient of ``conversation_id`` to send a document of ``kind``.

    For the action server, like results links (actions/status.py): with the tracker's
    ``sender_id`` (the pseudonymous conversation id), the patient's id when known and
    ``settings.portal_url``; put the returned URL into a slot the response quotes.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {tuple(KINDS)}")
    issued = tokens.issue(patient_id, kind, UPLOAD, source=source, conversation_id=conversation_id)
    return portal_link(portal_url, issued.token), issued
