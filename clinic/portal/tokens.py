"""Portal links: opaque, signed, expiring, single-use tokens bound to a patient and a document.

Design
------
A token is ``base64url(24 random bytes ‖ first 16 bytes of HMAC-SHA256(key, random))``:
54 characters, nothing inside but randomness and its signature. The URL is
``{portal_url}/t/<token>``: no patient id, no document id, no purpose in it.

* **Stored hashed.** The database keeps SHA-256(token) with the patient, the document, the
  purpose, ``expires_at`` and ``used_at``. A copy of the table opens nothing; a token is
  looked up by its hash (a random 192-bit value needs no slow hash).
* **Signed.** The HMAC (key ``CLINIC_PORTAL_TOKEN_KEY``, or ``var/portal-token.key`` created on
  first use) tells a forged or mistyped token from a real one without a database write,
  and a token from another deployment or a guessed one is refused as ``forged`` before any
  lookup. Why both, rather than a self-contained signed token (JWT-like) alone: a
  self-contained token would have to carry the patient and document (readable by anyone
  holding the link, and in WhatsApp's link previews) and could not be made single-use or
  revoked without a database row anyway.
* **Single use.** :meth:`PortalTokens.redeem` is ``UPDATE … SET used_at=now WHERE
  id=? AND used_at IS NULL AND locked_at IS NULL AND expires_at > now``: of two concurrent
  redemptions exactly one changes the row. Opening the link (:meth:`check`) does not use it
  up — WhatsApp's link preview fetches URLs — only showing the document after the second
  factor does.
* **Second factor.** The demo portal asks for the patient's date of birth; after
  ``MAX_FAILED_CHECKS`` wrong answers the token is locked.
* **Upload links** (purpose ``upload``, clinic/portal/uploads.py) open an upload form
  instead of a document: they are bound to the conversation they were sent to (the patient
  may not have booked yet) and used up by the upload itself, in the same transaction that
  stores the file (``redeem(..., within=…)``). They need no second factor: the page shows
  nothing about the patient, and a link opened by someone else can only add a file that
  staff see next to the conversation.
* **Typed errors.** ``forged`` (bad signature or shape), ``unknown`` (signed but not in the
  database: purged, or from a restored backup), ``expired``, ``used``, ``locked``,
  ``wrong_patient`` (the portal's signed-in patient is someone else).

Every attempt is written to ``portal_access_log`` with the token's row id (or a short hash of
an unknown token): never the token, never the answer to the second factor.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import datetime as dt
import hashlib
import hmac
import secrets
from pathlib import Path
from typing import Callable, List, Optional

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from clinic.clock import utcnow
from clinic.db import VAR_DIR
from clinic.portal.tables import PortalAccessRow, PortalTokenRow

TOKEN_KEY_ENV = "CLINIC_PORTAL_TOKEN_KEY"
DEFAULT_TOKEN_KEY_FILE = VAR_DIR / "portal-token.key"
RANDOM_BYTES = 24
TAG_BYTES = 16
TOKEN_LENGTH = 54  # base64url of 40 bytes, no padding
MAX_FAILED_CHECKS = 5
UPLOAD = "upload"
# A patient's own data (clinic/privacy_access.py): the link from the chat, and the page's
# JSON download minted after the second factor.
ACCESS = "access"
ACCESS_FILE = "access_file"
PURPOSES = ("results", "document", "billing", UPLOAD, ACCESS, ACCESS_FILE)

FORGED = "forged"
UNKNOWN = "unknown"
EXPIRED = "expired"
USED = "used"
LOCKED = "locked"
WRONG_PATIENT = "wrong_patient"
ERRORS = (FORGED, UNKNOWN, EXPIRED, USED, LOCKED, WRONG_PATIENT)


def load_token_key(environ: Optional[dict] = None, key_file: Path = DEFAULT_TOKEN_KEY_FILE) -> bytes:
    from clinic.privacy import secret_from

    return secret_from(environ, TOKEN_KEY_ENV, key_file, lambda: secrets.token_hex(32).encode())


class TokenError(Exception):
    """A token that opens nothing; ``reason`` is one of ``ERRORS``."""

    def __init__(self, reason: str, token_id: Optional[str] = None):
        self.reason = reason
        self.token_id = token_id
        super().__init__(reason)


@dataclasses.dataclass(frozen=True)
class Grant:
    """What a valid token opens."""

    token_id: str
    patient_id: Optional[str]  # None only for an upload link to a patient not yet known
    document_id: str
    purpose: str
    expires_at: dt.datetime
    used_at: Optional[dt.datetime] = None
    conversation_id: Optional[str] = None  # set for upload links


@dataclasses.dataclass(frozen=True)
class Issued:
    token: str  # give to the patient (in the link); never stored, never logged
    token_id: str
    expires_at: dt.datetime


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode("ascii")).hexdigest()


def _ref(token: str) -> str:
    """How an unknown token appears in the access log: a short hash, not the token."""
    return "h:" + hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()[:12]


class PortalTokens:
    def __init__(self, session_factory: sessionmaker, key: bytes, lifetime: dt.timedelta = dt.timedelta(hours=24),
                 clock: Callable[[], dt.datetime] = utcnow):
        if len(key) < 16:
            raise ValueError("the portal token key must be at least 16 bytes")
        self._sessions = session_factory
        self._key = key
        self.lifetime = lifetime
        self._clock = clock

    # ── issuing ─────────────────────────────────────────────────────────────────────────
    def issue(self, patient_id: Optional[str], document_id: str, purpose: str, source: Optional[str] = None,
              lifetime: Optional[dt.timedelta] = None, conversation_id: Optional[str] = None) -> Issued:
        if purpose not in PURPOSES:
            raise ValueError(f"purpose must be one of {PURPOSES}")
        if purpose == UPLOAD:
            # Where the file goes; a patient is optional (a first-time patient's referral letter).
            if not conversation_id or not document_id:
                raise ValueError("an upload link is bound to a conversation and a document kind")
        elif not patient_id or not document_id:
            raise ValueError("a token is bound to a patient and a document")
        random_part = secrets.token_bytes(RANDOM_BYTES)
        token = base64.urlsafe_b64encode(random_part + self._tag(random_part)).decode("ascii").rstrip("=")
        now = self._clock()
        expires_at = now + (lifetime or self.lifetime)
        token_id = "ptk_" + secrets.token_hex(8)
        with self._sessions() as session, session.begin():
            session.add(PortalTokenRow(id=token_id, token_hash=_hash(token), patient_id=patient_id or None,
                                       document_id=document_id, purpose=purpose, source=(source or "")[:80] or None,
                                       conversation_id=conversation_id or None,
                                       created_at=now, expires_at=expires_at, failed_checks=0))
        return Issued(token, token_id, expires_at)

    def _tag(self, random_part: bytes) -> bytes:
        return hmac.new(self._key, random_part, hashlib.sha256).digest()[:TAG_BYTES]

    def signature_valid(self, token: str) -> bool:
        if not isinstance(token, str) or len(token) != TOKEN_LENGTH:
            return False
        try:
            raw = base64.urlsafe_b64decode(token + "==")
        except (binascii.Error, ValueError):
            return False
        if len(raw) != RANDOM_BYTES + TAG_BYTES:
            return False
        return hmac.compare_digest(raw[RANDOM_BYTES:], self._tag(raw[:RANDOM_BYTES]))

    # ── checking and redeeming ──────────────────────────────────────────────────────────
    def check(self, token: str, patient_id: Optional[str] = None, via: str = "portal") -> Grant:
        """What ``token`` would open, without using it up. Raises :class:`TokenError`."""
        row = self._row(token, via)
        grant = self._usable(row, patient_id, via)
        self.log(row.id, "opened", via)
        return grant

    def redeem(self, token: str, patient_id: Optional[str] = None, via: str = "portal",
               within: Optional[Callable[[Session, Grant], None]] = None) -> Grant:
        """Use the token up (once): the caller may now show the document.

        ``within(session, grant)`` runs in the transaction that uses the token up, after the
        conditional UPDATE has won: what it writes (an uploaded file) commits exactly when
        the token is used, and an error in it leaves the token unused for another try.
        """
        row = self._row(token, via)
        self._usable(row, patient_id, via)
        now = self._clock()
        grant = _grant(row, used_at=now)
        with self._sessions() as session, session.begin():
            result = session.execute(
                update(PortalTokenRow)
                .where(PortalTokenRow.id == row.id, PortalTokenRow.used_at.is_(None),
                       PortalTokenRow.locked_at.is_(None), PortalTokenRow.expires_at > now)
                .values(used_at=now).execution_options(synchronize_session=False))
            won = result.rowcount == 1
            if won and within is not None:
                within(session, grant)
        if not won:
            # Someone redeemed (or it expired) between our read and our write.
            self.log(row.id, USED, via)
            raise TokenError(USED, row.id)
        self.log(row.id, "redeemed", via)
        return grant

    def second_factor_failed(self, token_id: str, via: str = "portal") -> bool:
        """Count a wrong second factor; True when the token is now locked."""
        now = self._clock()
        with self._sessions() as session, session.begin():
            session.execute(update(PortalTokenRow).where(PortalTokenRow.id == token_id)
                            .values(failed_checks=PortalTokenRow.failed_checks + 1)
                            .execution_options(synchronize_session=False))
            locked = session.execute(
                update(PortalTokenRow)
                .where(PortalTokenRow.id == token_id, PortalTokenRow.locked_at.is_(None),
                       PortalTokenRow.failed_checks >= MAX_FAILED_CHECKS)
                .values(locked_at=now).execution_options(synchronize_session=False)).rowcount == 1
        self.log(token_id, "second_factor_failed", via)
        if locked:
            self.log(token_id, LOCKED, via)
        return locked

    def _row(self, token: str, via: str) -> PortalTokenRow:
        if not self.signature_valid(token):
            self.log(_ref(str(token)), FORGED, via)
            raise TokenError(FORGED)
        with self._sessions() as session:
            row = session.scalars(select(PortalTokenRow).where(PortalTokenRow.token_hash == _hash(token))).first()
        if row is None:
            self.log(_ref(token), UNKNOWN, via)
            raise TokenError(UNKNOWN)
        return row

    def _usable(self, row: PortalTokenRow, patient_id: Optional[str], via: str) -> Grant:
        reason = None
        if row.used_at is not None:
            reason = USED
        elif row.locked_at is not None:
            reason = LOCKED
        elif self._clock() >= row.expires_at:
            reason = EXPIRED
        elif patient_id is not None and patient_id != row.patient_id:
            reason = WRONG_PATIENT
        if reason:
            self.log(row.id, reason, via)
            raise TokenError(reason, row.id)
        return _grant(row, row.used_at)

    # ── the access log ─────────────────────────────────────────────────────────────────
    def log(self, token_ref: str, outcome: str, via: str) -> None:
        with self._sessions() as session, session.begin():
            session.add(PortalAccessRow(at=self._clock(), token_ref=token_ref[:24], outcome=outcome[:24],
                                        via=via[:80]))

    def access_log(self, limit: int = 100) -> List[dict]:
        with self._sessions() as session:
            rows = session.scalars(select(PortalAccessRow).order_by(PortalAccessRow.id.desc()).limit(limit))
            return [{"at": r.at, "token_ref": r.token_ref, "outcome": r.outcome, "via": r.via} for r in rows]


def _grant(row: PortalTokenRow, used_at: Optional[dt.datetime]) -> Grant:
    return Grant(row.id, row.patient_id, row.document_id, row.purpose, row.expires_at, used_at,
                 row.conversation_id)


def portal_link(portal_url: str, token: str) -> str:
    return f"{portal_url.rstrip('/')}/t/{token}"
