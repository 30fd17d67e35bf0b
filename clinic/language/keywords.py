"""Keywords the assistant tells patients to send, mapped to intents (content/keywords.yml).

Deterministic because a patient who was told "send START" must not depend on a classifier's
mood, and a keyword must work in every language the assistant speaks.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Dict, Optional

import yaml

from clinic.language.catalogue import choice_key
from clinic.settings import PROJECT_ROOT

DEFAULT_KEYWORDS_FILE = PROJECT_ROOT / "content" / "keywords.yml"


class KeywordDataError(ValueError):
    """content/keywords.yml is malformed."""


class Keywords:
    def __init__(self, by_key: Dict[str, str]):
        self._by_key = by_key

    @classmethod
    def from_file(cls, path: Optional[Path] = None) -> "Keywords":
        path = Path(path or DEFAULT_KEYWORDS_FILE)
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        entries = data.get("keywords")
        if not isinstance(entries, dict):
            raise KeywordDataError(f"{path}: expected a 'keywords' mapping of intent -> words")
        by_key: Dict[str, str] = {}
        for intent, words in entries.items():
            for word in words or []:
                if not isinstance(word, str):
                    raise KeywordDataError(f"{path}: {word!r} under {intent} is not text: quote it")
                key = choice_key(word)
                if key in by_key and by_key[key] != intent:
                    raise KeywordDataError(f"{path}: {word!r} is listed for {by_key[key]} and {intent}")
                by_key[key] = str(intent)
        return cls(by_key)

    def intent_for(self, text: str) -> Optional[str]:
        """The intent when the whole message is a keyword, else None."""
        return self._by_key.get(choice_key(text)) if text else None

    @property
    def words(self) -> Dict[str, str]:
        return dict(self._by_key)


@functools.lru_cache(maxsize=1)
def default_keywords() -> Keywords:
    return Keywords.from_file()
