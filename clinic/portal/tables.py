"""Tables of the portal links: one row per token issued, and an append-only access log.

``portal_tokens`` never holds a token: only its SHA-256 (``token_hash``), so a copy of the
database opens nothing. A row binds the token to one patient and one document, for one
purpose, until ``expires_at``; ``used_at`` is set once, by a conditional UPDATE, when the
document is shown (single use). ``failed_checks`` counts wrong second factors; at the
limit the token is locked (``locked_at``).

``portal_access_log``: every attempt (opened, shown, expired, reused, forged, wrong second
factor...). ``token_ref`` is the token's row id when the token is known, else a short hash
of what was presented: never the token in clear, never a date of birth.
"""

from __future__ import annotations

from sqlalchemy import Column, Index, Integer, String

from clinic.db import Base
from clinic.scheduling.tables import UTCDateTime


class PortalTokenRow(Base):
    __tablename__ = "portal_tokens"

    id = Column(String(24), primary_key=True)  # "ptk_" + hex: safe for logs
    token_hash = Column(String(64), nullable=False, unique=True)
    patient_id = Column(String(32), nullable=False)
    document_id = Column(String(64), nullable=False)
    purpose = Column(String(24), nullable=False)  # results | document | billing
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
