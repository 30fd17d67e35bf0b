"""The language of each ticket's conversation, for staff: read from the contact language
memory (``clinic.language``: table ``contact_languages``, keyed by the conversation's
pseudonymous id), many conversations in one query.

Same rule as ``LanguageMemory.language_of``: a conversation whose language is not known (or
no longer supported) is in the clinic's default language — the one the assistant answers
it in.
"""

from __future__ import annotations

import functools
from typing import Dict, Iterable, Optional

from sqlalchemy import select
from sqlalchemy.orm import Session

from clinic.language.catalogue import Catalogue
from clinic.language.tables import ContactLanguage


def conversation_languages(session: Session, conversation_ids: Iterable[str],
                           catalogue: Catalogue) -> Dict[str, str]:
    """conversation id → language code, for every id given (one query, none for no ids)."""
    ids = sorted(set(conversation_ids))
    known: Dict[str, str] = {}
    if ids:
        known = dict(session.execute(
            select(ContactLanguage.contact_key, ContactLanguage.language)
            .where(ContactLanguage.contact_key.in_(ids))).all())
    return {cid: known[cid] if catalogue.supports(known.get(cid)) else catalogue.default for cid in ids}


def english_name(catalogue: Catalogue, code: Optional[str]) -> str:
    """A language (catalogue code like ``ru`` or WhatsApp code like ``zh_CN``) named in
    English for staff notes: "Russian", "Chinese"."""
    if not code:
        return "unknown"
    if catalogue.supports(code):
        return _babel_name(catalogue.get(code).locale) or catalogue.get(code).name
    for language in catalogue.languages.values():
        if language.whatsapp == code:
            return _babel_name(language.locale) or language.name
    return _babel_name(code) or code


def catalogue_code(catalogue: Catalogue, whatsapp_code: str) -> Optional[str]:
    """The catalogue language a WhatsApp template language code belongs to, if any."""
    return next((c for c, language in catalogue.languages.items() if language.whatsapp == whatsapp_code), None)


@functools.lru_cache(maxsize=64)
def _babel_name(locale: str) -> Optional[str]:
    try:
        from babel import Locale

        return Locale.parse(locale).get_language_name("en")
    except Exception:  # noqa: BLE001 - an unknown code is shown as it is
        return None
