"""contact_languages: the language each contact's conversation is in (pseudonymous key)."""

from __future__ import annotations

from sqlalchemy import Boolean, Column, DateTime, String

from clinic.db import Base


class ContactLanguage(Base):
    __tablename__ = "contact_languages"

    # The pseudonymous contact key (clinic.privacy): never a phone number.
    contact_key = Column(String(128), primary_key=True)
    language = Column(String(16), nullable=False)
    # True when the patient chose it (menu or "Русский"), False when detected from text.
    chosen = Column(Boolean, nullable=False, default=False)
    updated_at = Column(DateTime(timezone=True), nullable=False)
