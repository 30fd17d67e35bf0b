"""The portal's words in each supported language (clinic/portal/texts.yml), and which
language a page is shown in.

A page's language, first that applies: the patient's explicit choice (``?lang=ru``, the
language links on every page), the language of the conversation the link was sent to
(clinic.language.memory: the patient reads the portal in the language they chat in), the
browser's ``Accept-Language``, the clinic's default.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Dict, Iterable, Optional

import yaml

from clinic.language.catalogue import default_catalogue

TEXTS_FILE = Path(__file__).resolve().parent / "texts.yml"
# Hand-written where CLDR's tag is not what browsers and screen readers expect.
HTML_LANG = {"zh": "zh-Hans"}


@functools.lru_cache(maxsize=1)
def texts() -> Dict[str, Dict[str, str]]:
    return yaml.safe_load(TEXTS_FILE.read_text(encoding="utf-8"))["texts"]


def supported() -> tuple:
    return default_catalogue().codes


def default_language() -> str:
    return default_catalogue().default


def text(key: str, language: str, **values: object) -> str:
    """The text in ``language`` (the default language's when missing), placeholders filled."""
    entry = texts()[key]
    template = entry.get(language) or entry[default_language()]
    return template.format(**values) if values else template


def choice(value: Optional[str]) -> Optional[str]:
    """A supported language code from ``?lang=`` (or None)."""
    code = (value or "").strip().lower()
    return code if code in supported() else None


_RANGE = re.compile(r"^\s*([A-Za-z]{1,8}(?:[-_][A-Za-z0-9]{1,8})*|\*)\s*(?:;\s*q\s*=\s*([0-9.]+))?\s*$")


def from_accept_language(header: Optional[str]) -> Optional[str]:
    """The best supported language of an ``Accept-Language`` header (RFC 9110 q-values)."""
    ranked = []
    for position, part in enumerate((header or "").split(",")[:20]):
        match = _RANGE.match(part)
        if not match:
            continue
        try:
            quality = float(match.group(2)) if match.group(2) else 1.0
        except ValueError:
            continue
        base = match.group(1).replace("_", "-").split("-")[0].lower()
        if quality > 0 and base in supported():
            ranked.append((-quality, position, base))
    return min(ranked)[2] if ranked else None


def pick(*candidates: Optional[str]) -> str:
    """The first supported candidate, else the default language."""
    return next((c for c in candidates if c in supported()), default_language())


def html_lang(language: str) -> str:
    return HTML_LANG.get(language, language)


def language_names() -> Iterable[tuple]:
    """(code, the language's own name) for the language links."""
    return [(code, lang.name) for code, lang in default_catalogue().languages.items()]
