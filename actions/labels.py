"""The short labels actions put into messages themselves (button titles, list values,
fallback words), per language, from one table: content/labels.yml.

Whole sentences belong in domain responses (with a variation per language); only what a
response cannot hold lives here: titles of buttons built from live data and words that
fill a response's slot. Limits: a reply button title holds 20 characters, a list row 24.
"""

from __future__ import annotations

from typing import Optional

from clinic.i18n import language_code, plural_category
from clinic.labels import LABELS, LABELS_FILE, label

# The table and its reader live in the domain package (clinic/labels.py): the gateway's
# renderer reads it too. Re-exported: the actions and tests import them from here.
__all__ = ["LABELS", "LABELS_FILE", "label", "people"]


def people(count: int, language: Optional[str] = "en") -> str:
    """How many people are ahead: ``nobody`` · ``1 person`` · ``3 people``; Russian
    ``1 человек`` / ``3 человека`` / ``5 человек``; Chinese ``3人``."""
    language = language_code(language)
    if count == 0:
        return label("queue_nobody", language)
    if language == "ru":
        return f"{count} человека" if plural_category("ru", count) == "few" else f"{count} человек"
    if language == "zh":
        return f"{count}人"
    return "1 person" if count == 1 else f"{count} people"
