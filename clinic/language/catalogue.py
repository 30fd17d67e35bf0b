"""The supported languages, read once from ``content/languages.yml`` (typed, validated)."""

from __future__ import annotations

import dataclasses
import functools
import os
import re
import unicodedata
from pathlib import Path
from typing import Callable, Dict, Mapping, Optional, Sequence, Tuple

from clinic.settings import PROJECT_ROOT
from clinic.yaml_files import load_yaml_file

DEFAULT_LANGUAGES_FILE = PROJECT_ROOT / "content" / "languages.yml"
LANGUAGES_FILE_ENV = "CLINIC_LANGUAGES_FILE"
SCRIPTS = ("latin", "cyrillic", "han")


class LanguageDataError(ValueError):
    """content/languages.yml is malformed; the message names the entry."""


@dataclasses.dataclass(frozen=True)
class Language:
    code: str
    name: str
    detector: str
    script: str
    locale: str
    whatsapp: str
    dateparser: str
    choose: Tuple[str, ...]
    # Greetings that switch a conversation to this language when sent on their own: short,
    # but unmistakable ("Здравствуйте", "你好"), unlike a name or "ok".
    greet: Tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class Catalogue:
    default: str
    languages: Mapping[str, Language]
    recognised_unsupported: Tuple[str, ...]

    @property
    def codes(self) -> Tuple[str, ...]:
        return tuple(self.languages)

    def get(self, code: Optional[str]) -> Language:
        """The language, or the default one for an unknown or missing code."""
        return self.languages.get(code or "", self.languages[self.default])

    def supports(self, code: Optional[str]) -> bool:
        return bool(code) and code in self.languages

    def chosen_by(self, text: str) -> Optional[str]:
        """The language a message on its own names ("Русский", "中文", "english please")."""
        return self._language_of_phrase(text, lambda language: (*language.choose, language.name))

    def greeted_in(self, text: str) -> Optional[str]:
        """The language of a message that is only a greeting of its ("Здравствуйте!", "你好")."""
        return self._language_of_phrase(text, lambda language: language.greet)

    def _language_of_phrase(self, text: str, phrases: Callable[[Language], Sequence[str]]) -> Optional[str]:
        """The first language one of whose ``phrases`` the whole message is (see choice_key)."""
        key = choice_key(text)
        if not key:
            return None
        for language in self.languages.values():
            if key in {choice_key(phrase) for phrase in phrases(language)}:
                return language.code
        return None

    def whatsapp_code(self, code: Optional[str]) -> str:
        return self.get(code).whatsapp


def choice_key(text: str) -> str:
    """Case, punctuation, emoji and spacing ignored: "Русский!" = "русский"."""
    text = unicodedata.normalize("NFKC", text or "").lower().replace("ё", "е")
    return re.sub(r"[\W_]+", " ", text).strip()


def load_catalogue(path: Optional[Path] = None, environ: Optional[Mapping[str, str]] = None) -> Catalogue:
    environ = os.environ if environ is None else environ
    path = Path(path or environ.get(LANGUAGES_FILE_ENV) or DEFAULT_LANGUAGES_FILE)
    raw = load_yaml_file(path, LanguageDataError, "languages file")
    entries = raw.get("languages")
    if not isinstance(entries, dict) or not entries:
        raise LanguageDataError(f"{path}: expected a 'languages' mapping")
    languages: Dict[str, Language] = {}
    for code, body in entries.items():
        if not isinstance(body, dict):
            raise LanguageDataError(f"{path}: language '{code}' must be a mapping")
        missing = [k for k in ("name", "detector", "script", "locale", "whatsapp") if not body.get(k)]
        if missing:
            raise LanguageDataError(f"{path}: language '{code}' needs {', '.join(missing)}")
        if body["script"] not in SCRIPTS:
            raise LanguageDataError(f"{path}: language '{code}': script must be one of {SCRIPTS}")
        languages[str(code)] = Language(
            code=str(code), name=str(body["name"]), detector=str(body["detector"]).upper(),
            script=str(body["script"]), locale=str(body["locale"]), whatsapp=str(body["whatsapp"]),
            dateparser=str(body.get("dateparser") or code),
            choose=tuple(str(word) for word in body.get("choose") or ()),
            greet=tuple(str(word) for word in body.get("greet") or ()))
    default = str(raw.get("default") or next(iter(languages)))
    if default not in languages:
        raise LanguageDataError(f"{path}: default language '{default}' is not listed")
    others = tuple(str(name).upper() for name in raw.get("recognised_unsupported") or ())
    return Catalogue(default, languages, others)


@functools.lru_cache(maxsize=1)
def default_catalogue() -> Catalogue:
    """The project's catalogue, read once per process."""
    return load_catalogue()
