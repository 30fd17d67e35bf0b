"""Tables of the portal links: one row per token issued, and an append-only access log.

``portal_tokens`` never holds a token: only its SHA-256 (``token_hash``), so a copy of the
database opens nothing. A row binds the token to one patient and one document, for one
purpose, until ``expires_at``; ``used_at`` is set once, by a conditional UPDATE, when the
document is shown (single use). ``failed_checks`` counts wrong second factors; at the
limit the token is locked (``locked_at``).

``portal_access_log``: every attempt (opened, shown, expired, reused, forged, wrong second
factor, uploaded, upload refused...). ``token_ref`` is the token's row id when the token is
known, else a short hash of what was presented: never the token in clear, never a date of
birth, never a file name.

An *upload* link (purpose ``upload``) is bound to the pseudonymous conversation it was sent
to (``conversation_id``: where staff see the file, and the language of the pages) and to a
patient only when one is known: a first-time patient may send a referral letter before
their first booking. Its ``document_id`` is the kind of document asked for
(``insurance_card``, ``referral_letter``, ``document``).

``portal_uploads``: what came through an upload link, encrypted (clinic/portal/uploads.py):
``content`` and ``name_sealed`` are AES-256-GCM ciphertexts; only the sniffed media type,
the size and the time are in clear, for the staff list. ``token_id`` is unique: one upload
per link, enforced by the database as well as by the token's single use.
"""

from __future__ import annotations

from sqlalchemy import Column, ForeignKey, Index, Integer, LargeBinary, String

from clinic.db import Base
from clinic.scheduling.tables import UTCDateTime


class PortalTokenRow(Base):
    __tablename__ = "portal_tokens"

    id = Column(String(24), primary_key=True)  # "ptk_" + hex: safe for logs
    token_hash = Column(String(64), nullable=False, unique=True)
    patient_id = Column(String(32), nullable=True)  # None only for an upload link to an unknown patient
    document_id = Column(String(64), nullable=False)  # for an upload link: the kind asked for
    purpose = Column(String(24), nullable=False)  # results | document | billing | upload
    conversation_id = Column(String(128), nullable=True)  # pseudonymous; set for upload links
    source = Column(String(80), nullable=True)  # notification event id, or "chat"
    created_at = Column(UTCDateTime, nullable=False)
    expires_at = Column(UTCDateTime, nullable=False)
    used_at = Column(UTCDateTime, nullable=True)
    failed_checks = Column(Integer, nullable=False, default=0)
    locked_at = Column(UTCDateTime, nullable=True)

    __table_args__ = (Index("ix_portal_tokens_patient", "patient_id"),)


class PortalAccessRow(Base):
    __tablename__ = "portal_access_log"

    id = Column(Integer, primary_key=True)
    at = Column(UTCDateTime, nullable=False)
    token_ref = Column(String(24), nullable=False)  # ptk_… or "h:" + 12 hex of an unknown token
    outcome = Column(String(24), nullable=False)
    via = Column(String(80), nullable=False)  # portal_demo | api:<key name>

    __table_args__ = (Index("ix_portal_access_log_at", "at"),)


class PortalUploadRow(Base):
    __tablename__ = "portal_uploads"

    id = Column(String(24), primary_key=True)  # "pup_" + hex: safe for logs and URLs
    token_id = Column(String(24), ForeignKey("portal_tokens.id"), nullable=False, unique=True)
    conversation_id = Column(String(128), nullable=False)  # pseudonymous: the inbox ticket's
    patient_id = Column(String(32), nullable=True)
    kind = Column(String(32), nullable=False)  # insurance_card | referral_letter | document
    media_type = Column(String(40), nullable=False)  # sniffed from the bytes, not the name
    size_bytes = Column(Integer, nullable=False)  # of the plaintext
    key_ref = Column(String(16), nullable=False)  # which key sealed it (a key fingerprint)
    name_sealed = Column(LargeBinary, nullable=False)  # the patient's file name, encrypted
    content = Column(LargeBinary, nullable=False)  # nonce ‖ AES-GCM ciphertext ‖ tag
    created_at = Column(UTCDateTime, nullable=False)

    __table_args__ = (Index("ix_portal_uploads_conversation", "conversation_id", "created_at"),)
