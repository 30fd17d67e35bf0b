"""The languages patient-facing text built in code comes out in: en, ru, zh (simplified).

One place that turns whatever a caller has (the ``language`` slot, a contact's stored
language, ``None``) into one of the supported codes, so every formatter falls back to
English the same way instead of failing on a value it does not know.
"""

from __future__ import annotations

import functools
from typing import Optional

from babel import Locale

from clinic.language.catalogue import default_catalogue

# The supported languages and the CLDR locale behind each come from content/languages.yml
# (a new language is a data change). English there is plain "en", not "en_GB": en_GB
# abbreviates September "Sept", which would change the English list rows ("Wed 30 Sep
# 09:20"); the British day-month order comes from explicit patterns (formatting.py).
LANGUAGES = default_catalogue().codes
DEFAULT_LANGUAGE = default_catalogue().default
BABEL_LOCALES = {code: lang.locale for code, lang in default_catalogue().languages.items()}


def language_code(value: Optional[str]) -> str:
    """``"ru"``, ``"ru-RU"``, ``"zh_Hans"``, ``"ZH-cn"`` → ``ru`` / ``zh``; anything else,
    ``None`` included, → ``en``."""
    if not value:
        return DEFAULT_LANGUAGE
    base = str(value).strip().replace("_", "-").split("-")[0].lower()
    return base if base in LANGUAGES else DEFAULT_LANGUAGE


@functools.lru_cache(maxsize=None)
def babel_locale(language: Optional[str]) -> Locale:
    return Locale.parse(BABEL_LOCALES[language_code(language)])


def plural_category(language: Optional[str], number: int) -> str:
    """CLDR plural category (``one``, ``few``, ``many``, ``other``) of ``number``: Russian
    nouns after a number take one of three forms (1 час, 2 часа, 5 часов)."""
    return babel_locale(language).plural_form(number)


# "On Monday" in Russian: "в" / "во" + the accusative, which CLDR does not provide.
_RU_ON_WEEKDAY = ("в понедельник", "во вторник", "в среду", "в четверг", "в пятницу",
                  "в субботу", "в воскресенье")


def ru_on_weekday(weekday: int) -> str:
    """``в понедельник`` … ``в воскресенье`` (0 = Monday)."""
    return _RU_ON_WEEKDAY[weekday]
