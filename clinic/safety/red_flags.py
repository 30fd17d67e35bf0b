"""Deterministic red-flag detector: finds emergency phrases in a patient's message.

Why deterministic: a statistical classifier can miss a life-threatening message it was never
trained on ("my husband went grey and collapsed"). The phrase lists live in
``content/red_flags/<language>.yml`` (one file per language, same 17 categories) so a
clinician can review them; this module only knows how to match.

Every language's list runs on every message, whatever language the conversation is in: a
Russian patient may write one line in English, and the language detector may be wrong.

Matching rules (documented in content/red_flags/README.md for reviewers):
- case and punctuation are ignored; words are compared by lemma (``bleeding`` = ``bleed``,
  ``потерял`` = ``потерять``), Chinese character by character (clinic/safety/normalisers.py);
- ``*`` in a phrase stands for a short gap (up to three words, four Chinese characters).

Context (NegEx-style, per language in the file's ``context`` block): a match with a negation,
hypothetical or historical cue shortly before it ("no chest pain", "what if I get chest
pain", "had a stroke in 2019"), not cut off by a terminator ("but", punctuation), is not
*affirmed*. An affirmed match means the full emergency protocol; a message whose matches are
all non-affirmed gets one safety question instead ("do you have chest pain right now?").
Anything not clearly negated is affirmed: a missed emergency costs more than a spare alarm.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from pathlib import Path
from typing import Dict, FrozenSet, Iterator, List, Optional, Sequence, Tuple, Union

import yaml

from clinic.safety.normalisers import (
    MAX_GAPS,
    YEAR_KEY,
    Token,
    keeps_written_form,
    normaliser_for,
    written_form,
)
from clinic.settings import PROJECT_ROOT

DEFAULT_RED_FLAGS_DIR = PROJECT_ROOT / "content" / "red_flags"
DEFAULT_LANGUAGE = "en"
GAP = "*"
# "=word" in a phrase: that exact form only, not every form of its lemma. Russian "скорую"
# (the ambulance) shares the lemma "скорый" with "скоро" (soon): "вызвать =скорую" catches
# "вызовите скорую" but not "меня ещё не вызвали, скоро?".
EXACT = "="
_EXACT_WORD = re.compile(r"(=[^\W_]+)", re.UNICODE)
AFFIRMED = "affirmed"
CONTEXT_KINDS = ("negated", "hypothetical", "historical")
# Characters that end a cue's scope: "no, I can't breathe" is not a negation of the flag.
SCOPE_BREAKS = set(".,!?;:\n。，！？；：、…")

Key = FrozenSet[str]
GAP_KEY: Key = frozenset({GAP})


class RedFlagDataError(ValueError):
    """A red-flag file is malformed; the message names the file, category and phrase."""


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
    language: str = DEFAULT_LANGUAGE
    context: str = AFFIRMED  # or negated / hypothetical / historical

    @property
    def affirmed(self) -> bool:
        return self.context == AFFIRMED


@dataclasses.dataclass(frozen=True)
class Assessment:
    """What a message asks of the safety net."""

    matches: Tuple[RedFlagMatch, ...]

    @property
    def emergency(self) -> List[RedFlagMatch]:
        return [m for m in self.matches if m.affirmed]

    @property
    def needs_check(self) -> bool:
        """Red flags mentioned, none affirmed: ask once instead of raising the alarm."""
        return bool(self.matches) and not self.emergency

    @property
    def chosen(self) -> Optional[RedFlagMatch]:
        """The match that decides the wording: affirmed first, crisis before emergency."""
        pool = self.emergency or list(self.matches)
        return next((m for m in pool if m.category.response == "crisis"), pool[0] if pool else None)


@dataclasses.dataclass(frozen=True)
class _Pattern:
    category: RedFlagCategory
    phrase: str
    keys: Tuple[Key, ...]


@dataclasses.dataclass(frozen=True)
class _Context:
    window: int = 5
    before: Tuple[Tuple[str, Tuple[Key, ...]], ...] = ()  # (kind, cue)
    after: Tuple[Tuple[str, Tuple[Key, ...]], ...] = ()
    pseudo: Tuple[Tuple[Key, ...], ...] = ()
    terminators: Tuple[Tuple[Key, ...], ...] = ()


class _LanguageList:
    """One language's phrases and context cues, matched with that language's normaliser."""

    def __init__(self, language: str, patterns: Sequence[_Pattern], context: _Context,
                 check_label: Optional[str] = None):
        self.language = language
        # What the safety question calls a red flag only the classifier saw ("a possible emergency").
        self.check_label = check_label
        self.patterns = tuple(patterns)
        self.context = context
        self._normalise = normaliser_for(language)
        self._max_gap = MAX_GAPS.get(language, 3)
        self._by_first_key: Dict[str, List[_Pattern]] = {}
        for pattern in patterns:
            for key in pattern.keys[0]:
                self._by_first_key.setdefault(key, []).append(pattern)

    def detect(self, text: str) -> List[RedFlagMatch]:
        tokens = self._normalise(text)
        # Per message, never on the instance: the detector is shared across threads.
        spans: Dict[str, List[Tuple[int, int]]] = {}
        found: Dict[str, RedFlagMatch] = {}
        for start, token in enumerate(tokens):
            candidates: List[_Pattern] = []
            for key in token.keys:
                candidates.extend(self._by_first_key.get(key, ()))
            for pattern in candidates:
                previous = found.get(pattern.category.id)
                if previous is not None and previous.affirmed:
                    continue
                end = _match_at(pattern.keys, tokens, start, self._max_gap)
                if end is None:
                    continue
                context = self._context_of(text, tokens, start, end, spans)
                if previous is None or context == AFFIRMED:
                    found[pattern.category.id] = RedFlagMatch(
                        pattern.category, pattern.phrase, tokens[start].start,
                        tokens[end - 1].end, self.language, context)
        return list(found.values())

    def _context_of(self, text: str, tokens: Sequence[Token], start: int, end: int,
                    spans: Dict[str, List[Tuple[int, int]]]) -> str:
        ctx = self.context
        if not ctx.before and not ctx.after:
            return AFFIRMED
        # Computed once per message (a long list of pseudo cues made every match slow).
        if "pseudo" not in spans:
            spans["pseudo"] = _spans(ctx.pseudo, tokens, self._max_gap)
            spans["terminators"] = _spans(ctx.terminators, tokens, self._max_gap)
        pseudo, terminators = spans["pseudo"], spans["terminators"]
        breaks = SCOPE_BREAKS | ({" ", "\u3000"} if self.language == "zh" else set())

        def clear(left_end: int, right_start: int) -> bool:
            # No punctuation and no terminator word between the cue and the phrase.
            gap_start = tokens[left_end - 1].end if left_end else 0
            gap_end = tokens[right_start].start if right_start < len(tokens) else len(text)
            # Chinese chat uses a space where other languages put a comma.
            if any(ch in breaks for ch in text[gap_start:gap_end]):
                return False
            return not any(s >= left_end and e <= right_start for s, e in terminators)

        for kind, cue in ctx.before:
            for s in range(max(0, start - ctx.window - len(cue) + 1), start):
                e = _match_at(cue, tokens, s, self._max_gap)
                if e is None or e > start or start - e >= ctx.window:
                    continue
                if any(ps <= s < pe or ps < e <= pe for ps, pe in pseudo):
                    continue
                if clear(e, start):
                    return kind
        for kind, cue in ctx.after:
            # A negation right after the phrase only ("боли в груди нет"), not anywhere in
            # the window: "抽搐了五分钟还没有停" is not a negated seizure. A time in the past
            # may stand further on ("инсульт у мамы был 3 года назад").
            reach = 2 if kind == "negated" else ctx.window
            for s in range(end, min(len(tokens), end + reach)):
                e = _match_at(cue, tokens, s, self._max_gap)
                if e is None:
                    continue
                if any(ps <= s < pe for ps, pe in pseudo):
                    continue
                if clear(end, s):
                    return kind
        return AFFIRMED


class RedFlagDetector:
    """Matches messages against the clinician-reviewed phrase lists of every language."""

    def __init__(self, lists: Sequence[_LanguageList]):
        if not lists:
            raise RedFlagDataError("no red-flag lists")
        self._lists = tuple(lists)
        self.patterns = tuple(p for lst in lists for p in lst.patterns)

    @property
    def languages(self) -> List[str]:
        return [lst.language for lst in self._lists]

    def check_label(self, language: Optional[str]) -> str:
        """The list's words for "a possible emergency" in ``language`` (else the first list's)."""
        for lst in self._lists:
            if lst.language == language and lst.check_label:
                return lst.check_label
        return next((lst.check_label for lst in self._lists if lst.check_label), "a possible emergency")

    @classmethod
    def from_path(cls, path: Union[Path, str, None] = None) -> "RedFlagDetector":
        """A folder of ``<language>.yml`` files (the project's layout), or one file."""
        path = Path(path or DEFAULT_RED_FLAGS_DIR)
        if path.is_dir():
            files = sorted(path.glob("*.yml"), key=lambda f: (f.stem != DEFAULT_LANGUAGE, f.stem))
            if not files:
                raise RedFlagDataError(f"no red-flag files (*.yml) in {path}")
            return cls([_load_file(f) for f in files])
        return cls.from_file(path)

    @classmethod
    def from_file(cls, path: Union[Path, str]) -> "RedFlagDetector":
        return cls([_load_file(Path(path))])

    @classmethod
    def from_data(cls, data: object, source: str = "red flags",
                  language: Optional[str] = None) -> "RedFlagDetector":
        return cls([_parse(data, source, language)])

    @property
    def categories(self) -> List[RedFlagCategory]:
        seen: Dict[str, RedFlagCategory] = {}
        for pattern in self.patterns:
            seen.setdefault(pattern.category.id, pattern.category)
        return list(seen.values())

    def detect_all(self, text: str) -> List[RedFlagMatch]:
        """Every category mentioned in ``text``, with its context, in order of appearance.
        A category affirmed in any language's list counts as affirmed."""
        if not text or not text.strip():
            return []
        found: Dict[str, RedFlagMatch] = {}
        for lst in self._lists:
            for match in lst.detect(text):
                previous = found.get(match.category.id)
                if previous is None or (match.affirmed and not previous.affirmed):
                    found[match.category.id] = match
        return sorted(found.values(), key=lambda m: m.start)

    def detect(self, text: str) -> List[RedFlagMatch]:
        """The affirmed matches: what must get the full emergency protocol."""
        return [m for m in self.detect_all(text) if m.affirmed]

    def assess(self, text: str) -> Assessment:
        return Assessment(tuple(self.detect_all(text)))


def _load_file(path: Path) -> _LanguageList:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise RedFlagDataError(f"red-flag file not found: {path}") from exc
    except yaml.YAMLError as exc:
        raise RedFlagDataError(f"{path}: not valid YAML ({exc})") from exc
    return _parse(data, str(path), None if path.stem not in ("en", "ru", "zh") else path.stem)


def _parse(data: object, source: str, language: Optional[str]) -> _LanguageList:
    if not isinstance(data, dict) or not isinstance(data.get("categories"), dict):
        raise RedFlagDataError(f"{source}: expected a 'categories' mapping")
    language = str(data.get("language") or language or DEFAULT_LANGUAGE)
    patterns: List[_Pattern] = []
    for cat_id, body in data["categories"].items():
        if not isinstance(body, dict) or not body.get("phrases"):
            raise RedFlagDataError(f"{source}: category '{cat_id}' needs a list of phrases")
        response = body.get("response", "emergency")
        if response not in ("emergency", "crisis"):
            raise RedFlagDataError(
                f"{source}: category '{cat_id}': response must be 'emergency' or 'crisis'"
            )
        category = RedFlagCategory(id=str(cat_id), label=str(body.get("label", cat_id)),
                                   response=response)
        for phrase in body["phrases"]:
            keys = _compile(phrase, language)
            if not keys or keys[0] == GAP_KEY or keys[-1] == GAP_KEY:
                raise RedFlagDataError(
                    f"{source}: phrase {phrase!r} in '{cat_id}' must start and end with a word"
                )
            patterns.append(_Pattern(category, str(phrase), keys))
    if not patterns:
        raise RedFlagDataError(f"{source}: no phrases")
    return _LanguageList(language, patterns, _parse_context(data.get("context"), source, language),
                         str(data["check_label"]) if data.get("check_label") else None)


def _parse_context(raw: object, source: str, language: str) -> _Context:
    if raw is None:
        return _Context()
    if not isinstance(raw, dict):
        raise RedFlagDataError(f"{source}: 'context' must be a mapping")

    def cues(name: str) -> List[Tuple[Key, ...]]:
        values = raw.get(name) or []
        if not isinstance(values, list):
            raise RedFlagDataError(f"{source}: context '{name}' must be a list")
        compiled = []
        for cue in values:
            keys = _compile(cue, language)
            if not keys or GAP_KEY in (keys[0], keys[-1]):
                raise RedFlagDataError(f"{source}: context cue {cue!r} must start and end with a word")
            compiled.append(keys)
        return compiled

    window = raw.get("window", 5)
    if not isinstance(window, int) or not 1 <= window <= 20:
        raise RedFlagDataError(f"{source}: context window must be a whole number from 1 to 20")
    before = [("negated", c) for c in cues("negation")]
    before += [("hypothetical", c) for c in cues("hypothetical")]
    before += [("historical", c) for c in cues("historical")]
    after = [("negated", c) for c in cues("negation_after")]
    after += [("historical", c) for c in cues("historical")]
    return _Context(window, tuple(before), tuple(after), tuple(cues("pseudo")),
                    tuple(cues("terminators")))


def _compile(phrase: object, language: str) -> Tuple[Key, ...]:
    if not isinstance(phrase, str):
        # YAML reads a bare no / yes / on as a boolean: the reviewer must quote it.
        raise RedFlagDataError(f"{phrase!r} is not text: write it in quotes (\"no\", \"yes\")")
    # Each stretch between gaps is normalised as a whole, so contractions keep their context.
    return tuple(_normalise_with_gaps(phrase, language))


def _normalise_with_gaps(phrase: str, language: str) -> Iterator[Key]:
    normalise = normaliser_for(language)
    if EXACT in phrase and not keeps_written_form(language):
        raise RedFlagDataError(f"{phrase!r}: exact forms (=word) are only for languages whose "
                               f"words are compared by dictionary lemma (Russian), not {language!r}")
    for chunk_index, chunk in enumerate(phrase.split(GAP)):
        if chunk_index:
            yield GAP_KEY
        for run in _EXACT_WORD.split(chunk):
            if run.startswith(EXACT):
                yield frozenset({written_form(run[len(EXACT):])})
                continue
            for part_index, part in enumerate(run.split(YEAR_KEY)):
                if part_index:
                    yield frozenset({YEAR_KEY})
                for token in normalise(part):
                    yield token.keys


def normalise(text: str, language: str = DEFAULT_LANGUAGE) -> List[str]:
    """The comparison keys of ``text`` (one per word; the sorted first key when a word has
    several), for tests and reviewers."""
    return [sorted(token.keys)[0] if len(token.keys) > 1 and language != "en"
            else next(iter(token.keys)) for token in normaliser_for(language)(text)]


def _match_at(pattern: Sequence[Key], tokens: Sequence[Token], start: int,
              max_gap: int) -> Optional[int]:
    """End index if ``pattern`` matches ``tokens`` from ``start`` (``*`` = 0..max_gap)."""

    def walk(p: int, k: int) -> Optional[int]:
        if p == len(pattern):
            return k
        if pattern[p] == GAP_KEY:
            for skip in range(max_gap + 1):
                if k + skip > len(tokens):
                    break
                end = walk(p + 1, k + skip)
                if end is not None:
                    return end
            return None
        if k < len(tokens) and pattern[p] & tokens[k].keys:
            return walk(p + 1, k + 1)
        return None

    return walk(0, start)


def _spans(cues: Sequence[Tuple[Key, ...]], tokens: Sequence[Token], max_gap: int) -> List[Tuple[int, int]]:
    spans = []
    for cue in cues:
        for start in range(len(tokens)):
            end = _match_at(cue, tokens, start, max_gap)
            if end is not None:
                spans.append((start, end))
    return spans


@functools.lru_cache(maxsize=4)
def default_detector(path: Optional[str] = None) -> RedFlagDetector:
    """The detector for the project's phrase lists, built once per process."""
    return RedFlagDetector.from_path(Path(path) if path else None)
