"""Deterministic red-flag detector: finds emergency phrases in a patient's message.

Why deterministic: a statistical classifier can miss a life-threatening message it was never
trained on ("my husband went grey and collapsed"). The phrase list lives in
``content/red_flags.yml`` so a clinician can review it; this module only knows how to match.

Matching rules (documented in that file for its reviewers):
- case and punctuation are ignored; words are compared by lemma (``bleeding`` = ``bleed``,
  ``seizures`` = ``seizure``), using spaCy's blank English pipeline with lookup tables, so no
  pretrained model is needed;
- contractions are normalised (``can't``, ``cant``, ``cannot`` = ``can not``);
- ``*`` in a phrase stands for up to three words (``pain in * chest`` matches
  ``pain in my chest``).
Negation is deliberately not interpreted: "no chest pain?" still raises the flag, because a
missed emergency costs more than an unneeded safety message.
"""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path
from typing import Iterator, Optional, Sequence

import yaml

from clinic.settings import PROJECT_ROOT

DEFAULT_RED_FLAGS_FILE = PROJECT_ROOT / "content" / "red_flags.yml"
MAX_GAP = 3  # words a "*" may stand for
GAP = "*"

# spaCy splits contractions into pieces whose lookup lemma is not the full word.
_LEMMA_FIXES = {"ca": "can", "wo": "will", "sha": "shall", "nt": "not", "n't": "not", "nt.": "not"}


class RedFlagDataError(ValueError):
    """The red-flag file is malformed; the message names the category and phrase."""


@dataclasses.dataclass(frozen=True)
class RedFlagCategory:
    id: str
    label: str
    # "emergency" (call the emergency number) or "crisis" (mental-health crisis wording)
    response: str


@dataclasses.dataclass(frozen=True)
class RedFlagMatch:
    category: RedFlagCategory
    phrase: str
    start: int  # character offset of the first matched word in the message
    end: int  # character offset just after the last matched word


@dataclasses.dataclass(frozen=True)
class _Pattern:
    category: RedFlagCategory
    phrase: str
    keys: tuple[str, ...]


@functools.lru_cache(maxsize=1)
def _nlp():
    # Imported lazily: spaCy is heavy and only needed once a detector is built.
    import spacy

    nlp = spacy.blank("en")
    nlp.add_pipe("lemmatizer", config={"mode": "lookup"})
    nlp.initialize()
    return nlp


def normalise(text: str) -> list[str]:
    """The comparison keys of ``text``: lower-cased lemmas, punctuation and emoji dropped."""
    return [key for key, _, _ in _keyed_tokens(text)]


def _keyed_tokens(text: str) -> list[tuple[str, int, int]]:
    """(key, start, end) per word; offsets index the original text (same length)."""
    # Lower-casing and straightening apostrophes keep every character at its offset.
    text = text.lower().replace("\u2019", "'").replace("\u2018", "'")
    tokens = []
    for token in _nlp()(text):
        if token.is_punct or token.is_space or not any(ch.isalnum() for ch in token.text):
            continue
        lemma = token.lemma_.lower() or token.text
        tokens.append((_LEMMA_FIXES.get(lemma, lemma), token.idx, token.idx + len(token.text)))
    return tokens


class RedFlagDetector:
    """Matches messages against the clinician-reviewed phrase list."""

    def __init__(self, patterns: Sequence[_Pattern]):
        self._by_first_key: dict[str, list[_Pattern]] = {}
        for pattern in patterns:
            self._by_first_key.setdefault(pattern.keys[0], []).append(pattern)
        self.patterns = tuple(patterns)

    @classmethod
    def from_file(cls, path: Optional[Path] = None) -> "RedFlagDetector":
        path = Path(path or DEFAULT_RED_FLAGS_FILE)
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise RedFlagDataError(f"red-flag file not found: {path}") from exc
        except yaml.YAMLError as exc:
            raise RedFlagDataError(f"{path}: not valid YAML ({exc})") from exc
        return cls.from_data(data, source=str(path))

    @classmethod
    def from_data(cls, data: object, source: str = "red flags") -> "RedFlagDetector":
        if not isinstance(data, dict) or not isinstance(data.get("categories"), dict):
            raise RedFlagDataError(f"{source}: expected a 'categories' mapping")
        patterns: list[_Pattern] = []
        for cat_id, body in data["categories"].items():
            if not isinstance(body, dict) or not body.get("phrases"):
                raise RedFlagDataError(f"{source}: category '{cat_id}' needs a list of phrases")
            response = body.get("response", "emergency")
            if response not in ("emergency", "crisis"):
                raise RedFlagDataError(
                    f"{source}: category '{cat_id}': response must be 'emergency' or 'crisis'"
                )
            category = RedFlagCategory(
                id=str(cat_id), label=str(body.get("label", cat_id)), response=response
            )
            for phrase in body["phrases"]:
                patterns.append(_compile(category, str(phrase), source))
        if not patterns:
            raise RedFlagDataError(f"{source}: no phrases")
        return cls(patterns)

    @property
    def categories(self) -> list[RedFlagCategory]:
        seen: dict[str, RedFlagCategory] = {}
        for pattern in self.patterns:
            seen.setdefault(pattern.category.id, pattern.category)
        return list(seen.values())

    def detect(self, text: str) -> list[RedFlagMatch]:
        """All matches in ``text``, at most one per category, in order of appearance."""
        if not text or not text.strip():
            return []
        tokens = _keyed_tokens(text)
        keys = [key for key, _, _ in tokens]
        found: dict[str, RedFlagMatch] = {}
        for start, key in enumerate(keys):
            for pattern in self._by_first_key.get(key, ()):
                if pattern.category.id in found:
                    continue
                end = _match_at(pattern.keys, keys, start)
                if end is not None:
                    found[pattern.category.id] = RedFlagMatch(
                        pattern.category, pattern.phrase, tokens[start][1], tokens[end - 1][2]
                    )
        return sorted(found.values(), key=lambda m: m.start)


def _compile(category: RedFlagCategory, phrase: str, source: str) -> _Pattern:
    # Each stretch between gaps is normalised as a whole, so contractions keep their context.
    keys = list(_normalise_with_gaps(phrase))
    if not keys or keys[0] == GAP or keys[-1] == GAP:
        raise RedFlagDataError(
            f"{source}: phrase {phrase!r} in '{category.id}' must start and end with a word"
        )
    return _Pattern(category, phrase, tuple(keys))


def _normalise_with_gaps(phrase: str) -> Iterator[str]:
    for chunk_index, chunk in enumerate(phrase.split(GAP)):
        if chunk_index:
            yield GAP
        yield from normalise(chunk)


def _match_at(pattern: Sequence[str], keys: Sequence[str], start: int) -> Optional[int]:
    """End index if ``pattern`` matches ``keys`` from ``start`` (``*`` = 0..MAX_GAP words)."""

    def walk(p: int, k: int) -> Optional[int]:
        if p == len(pattern):
            return k
        if pattern[p] == GAP:
            for skip in range(MAX_GAP + 1):
                if k + skip > len(keys):
                    break
                end = walk(p + 1, k + skip)
                if end is not None:
                    return end
            return None
        if k < len(keys) and keys[k] == pattern[p]:
            return walk(p + 1, k + 1)
        return None

    return walk(0, start)


@functools.lru_cache(maxsize=4)
def default_detector(path: Optional[str] = None) -> RedFlagDetector:
    """The detector for the project's phrase list, built once per process."""
    return RedFlagDetector.from_file(Path(path) if path else None)
