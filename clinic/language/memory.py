"""The language of each contact's conversation, remembered in the clinic database.

Why not only Rasa's slot: the tracker forgets with a new session (and the reminder
scheduler, the inbox and broadcasts need the language without loading a tracker).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Optional

from sqlalchemy import select
from sqlalchemy.orm import sessionmaker

from clinic.language.catalogue import Catalogue, default_catalogue
from clinic.language.detection import Detection, detect
from clinic.language.tables import ContactLanguage


@dataclasses.dataclass(frozen=True)
class Decision:
    language: str  # the conversation's language after this message
    changed: bool  # different from what was remembered (or first remembered)
    unsupported: Optional[str] = None  # the message is in a language we don't speak
    chosen: bool = False


def decide(previous: Optional[str], detection: Detection, catalogue: Catalogue) -> Decision:
    """The conversation's language after a message, given what was known before it."""
    if detection.language and catalogue.supports(detection.language) and (
            previous is None or detection.strong or detection.chosen):
        return Decision(detection.language, detection.language != previous,
                        chosen=detection.chosen)
    current = previous if catalogue.supports(previous) else catalogue.default
    return Decision(current, False, unsupported=detection.unsupported)


class LanguageMemory:
    def __init__(self, session_factory: sessionmaker, catalogue: Optional[Catalogue] = None):
        self._sessions = session_factory
        self.catalogue = catalogue or default_catalogue()

    def recall(self, contact_key: str) -> Optional[str]:
        with self._sessions() as session:
            row = session.get(ContactLanguage, contact_key)
            return row.language if row is not None else None

    def language_of(self, contact_key: str) -> str:
        """The contact's language, or the clinic's default when none is known."""
        known = self.recall(contact_key)
        return known if self.catalogue.supports(known) else self.catalogue.default

    def remember(self, contact_key: str, language: str, chosen: bool = False) -> None:
        if not self.catalogue.supports(language):
            raise ValueError(f"unsupported language {language!r}")
        now = dt.datetime.now(dt.timezone.utc)
        with self._sessions.begin() as session:
            row = session.get(ContactLanguage, contact_key, with_for_update=True)
            if row is None:
                session.add(ContactLanguage(contact_key=contact_key, language=language,
                                            chosen=chosen, updated_at=now))
            else:
                row.language, row.chosen, row.updated_at = language, chosen, now

    def decide(self, contact_key: str, text: str) -> Decision:
        """Detect the message's language, update the memory, and say what to answer in."""
        decision = decide(self.recall(contact_key), detect(text, self.catalogue), self.catalogue)
        if decision.changed:
            self.remember(contact_key, decision.language, decision.chosen)
        return decision

    def forget(self, contact_key: str) -> None:
        with self._sessions.begin() as session:
            row = session.get(ContactLanguage, contact_key)
            if row is not None:
                session.delete(row)


def stored_languages(session_factory: sessionmaker) -> dict:
    """contact key -> language, for reports and tests."""
    with session_factory() as session:
        return dict(session.execute(select(ContactLanguage.contact_key, ContactLanguage.language)).all())
