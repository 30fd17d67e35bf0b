"""The language a clinic-initiated template goes out in (broadcasts, surveys: messages sent
without Rasa, so without the conversation's ``language`` slot).

Each contact's language is the one the WhatsApp door remembered for the conversation
(``clinic.language.memory``, keyed by the pseudonymous conversation id), as its WhatsApp
template code (``ru``, ``zh_CN``, ``en_US``: ``content/languages.yml``). The template goes out
in that language when it is approved in it, else in the sender's default language (the
campaign's, or the clinic's for surveys) — and then the fallback is recorded on the row
(its ``reason``: ``language_fallback: zh_CN -> en_US (...)``), never silent. A contact whose
language is not known simply gets the default (that is not a fallback).

A second safety net is the WhatsApp sender's: a version we believed approved that Meta
answers 132001 for is resent once in the default language (``gateway.sender``), and the
outcome says so (``SendOutcome.fallback_from``); :func:`fallback_note` turns either into the
note the caller records.
"""

from __future__ import annotations

import dataclasses
from typing import Dict, Iterable, Optional, Sequence

from sqlalchemy import select
from sqlalchemy.orm import sessionmaker

from clinic.language.catalogue import Catalogue, default_catalogue
from clinic.language.memory import LanguageMemory
from clinic.language.tables import ContactLanguage
from clinic.messaging.store import LANGUAGE_FALLBACK

__all__ = ["LANGUAGE_FALLBACK", "ContactLanguages", "LanguageChoice", "catalogue_language", "choose",
           "fallback_note", "with_note"]


@dataclasses.dataclass(frozen=True)
class LanguageChoice:
    """What a contact gets: ``language`` (WhatsApp code) for a contact whose language is
    ``wanted``, with ``default`` as the fallback."""

    language: str
    wanted: str
    default: str
    why: str = ""  # why the wanted language was not used (when it was not)

    @property
    def fallback(self) -> bool:
        return self.language != self.wanted

    def note(self) -> Optional[str]:
        """The record of a fallback (None when the contact got their language)."""
        if not self.fallback:
            return None
        return f"{LANGUAGE_FALLBACK}: {self.wanted} -> {self.language} ({self.why or 'not approved in ' + self.wanted})"


def choose(wanted: Optional[str], approved: Sequence[str], default: str, unavailable: Sequence[str] = (),
           why_unavailable: str = "") -> LanguageChoice:
    """``wanted`` (None: not known) when ``approved`` has it and it is not ``unavailable``
    (known missing at Meta), else ``default``."""
    wanted = wanted or default
    if wanted in approved and wanted not in unavailable:
        return LanguageChoice(wanted, wanted, default)
    why = why_unavailable if wanted in unavailable else f"no approved {wanted} version"
    return LanguageChoice(default, wanted, default, why)


def fallback_note(choice: LanguageChoice, outcome) -> Optional[str]:
    """The fallback to record for a send: the sender's (Meta answered 132001 and the default
    version went out) or the choice's own (no approved version in the contact's language)."""
    refused = getattr(outcome, "fallback_from", None)
    if refused:
        sent_in = getattr(outcome, "language", None) or choice.default
        return f"{LANGUAGE_FALLBACK}: {refused} -> {sent_in} (Meta 132001: not approved in {refused})"
    return choice.note()


def with_note(reason: Optional[str], note: Optional[str]) -> Optional[str]:
    """A row's reason with the fallback note first (reasons are cut at 200 characters; the
    note must survive for the counts)."""
    if not note:
        return reason
    return f"{note}; {reason}" if reason else note


def catalogue_language(catalogue: Catalogue, whatsapp_code: str) -> str:
    """The catalogue language (``ru``) of a WhatsApp code (``ru``; ``zh_CN`` → ``zh``), for
    dates and texts in a template's parameters; the default for an unknown code."""
    return next((code for code, language in catalogue.languages.items() if language.whatsapp == whatsapp_code),
                catalogue.default)


class ContactLanguages:
    """conversation id → the WhatsApp template code of the contact's language (None: not known)."""

    def __init__(self, sessions: sessionmaker, catalogue: Optional[Catalogue] = None):
        self.catalogue = catalogue or default_catalogue()
        self._sessions = sessions
        self._memory = LanguageMemory(sessions, self.catalogue)

    @property
    def default(self) -> str:
        """The clinic's default language, as a WhatsApp code."""
        return self.catalogue.whatsapp_code(self.catalogue.default)

    def __call__(self, conversation_id: str) -> Optional[str]:
        return self._whatsapp(self._memory.recall(conversation_id))

    def many(self, conversation_ids: Iterable[str]) -> Dict[str, Optional[str]]:
        """The same for many conversations, in one query (a broadcast's batch)."""
        ids = sorted(set(conversation_ids))
        known: Dict[str, str] = {}
        if ids:
            with self._sessions() as session:
                known = dict(session.execute(select(ContactLanguage.contact_key, ContactLanguage.language)
                                             .where(ContactLanguage.contact_key.in_(ids))).all())
        return {cid: self._whatsapp(known.get(cid)) for cid in ids}

    def _whatsapp(self, code: Optional[str]) -> Optional[str]:
        return self.catalogue.whatsapp_code(code) if self.catalogue.supports(code) else None

    def language(self, whatsapp_code: str) -> str:
        """The catalogue language of a WhatsApp code (see :func:`catalogue_language`)."""
        return catalogue_language(self.catalogue, whatsapp_code)
