"""API keys for the clinic's own systems (EHR, lab system, billing) calling our APIs.

A key is shown once when created and stored only as its SHA-256 (a random 256-bit key needs
no slow hash: there is nothing to guess). Each key has a name (who uses it, written in every
change it makes) and scopes (what it may do), and can be revoked.
"""

from __future__ import annotations

import dataclasses
import hashlib
import secrets
from typing import FrozenSet, Iterable, List, Optional

from sqlalchemy import Column, DateTime, Integer, String, select, update
from sqlalchemy.orm import sessionmaker

from clinic.clock import utcnow
from clinic.db import Base

KEY_PREFIX = "ck_"

# Every scope the APIs know. A key with none of the scopes an endpoint needs gets 403.
SCOPES = {
    "appointments:read": "read appointments (status, time, practitioner)",
    "appointments:write": "record outcomes: arrived, fulfilled, no-show",
    "reports:read": "read aggregate reports (no patient data)",
    "notifications:write": "notify patients (results/documents ready, billing, queue, follow-up) and read their status",
    "portal:verify": "verify and use up portal link tokens (the clinic's patient portal)",
    "portal:links": "mint single-use portal links for a patient to upload a document (insurance card, referral letter)",
}


class ApiKeyRow(Base):
    __tablename__ = "api_keys"

    id = Column(Integer, primary_key=True)
    name = Column(String(64), nullable=False, unique=True)
    key_hash = Column(String(64), nullable=False, unique=True)
    scopes = Column(String(512), nullable=False)  # space-separated
    created_at = Column(DateTime(timezone=True), nullable=False)
    revoked_at = Column(DateTime(timezone=True), nullable=True)
    last_used_at = Column(DateTime(timezone=True), nullable=True)


@dataclasses.dataclass(frozen=True)
class ApiClient:
    """The authenticated caller of an API request."""

    name: str
    scopes: FrozenSet[str]

    @property
    def actor(self) -> str:
        return f"api:{self.name}"


class UnknownScope(ValueError):
    pass


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


class ApiKeys:
    def __init__(self, session_factory: sessionmaker) -> None:
        self._sessions = session_factory

    def create(self, name: str, scopes: Iterable[str]) -> str:
        """A new key for ``name``; returns the key itself, which is never stored."""
        scopes = sorted(set(scopes))
        unknown = [s for s in scopes if s not in SCOPES]
        if unknown or not scopes:
            raise UnknownScope(f"unknown or no scopes: {unknown or '(none)'}; known: {sorted(SCOPES)}")
        if not name or len(name) > 64:
            raise ValueError("a key needs a name of 1-64 characters")
        key = KEY_PREFIX + secrets.token_urlsafe(32)
        with self._sessions.begin() as session:
            session.add(ApiKeyRow(name=name, key_hash=_hash(key), scopes=" ".join(scopes),
                                  created_at=utcnow()))
        return key

    def authenticate(self, key: Optional[str]) -> Optional[ApiClient]:
        if not key or not key.startswith(KEY_PREFIX) or len(key) > 200:
            return None
        with self._sessions.begin() as session:
            row = session.execute(
                select(ApiKeyRow).where(ApiKeyRow.key_hash == _hash(key),
                                        ApiKeyRow.revoked_at.is_(None))
            ).scalar_one_or_none()
            if row is None:
                return None
            row.last_used_at = utcnow()
            return ApiClient(name=row.name, scopes=frozenset(row.scopes.split()))

    def revoke(self, name: str) -> bool:
        with self._sessions.begin() as session:
            result = session.execute(
                update(ApiKeyRow).where(ApiKeyRow.name == name, ApiKeyRow.revoked_at.is_(None))
                .values(revoked_at=utcnow())
            )
            return result.rowcount == 1

    def names(self) -> List[str]:
        with self._sessions() as session:
            return list(session.execute(
                select(ApiKeyRow.name).where(ApiKeyRow.revoked_at.is_(None)).order_by(ApiKeyRow.name)
            ).scalars())
