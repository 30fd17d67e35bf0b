"""Reading a patient's typed answers during booking: which service, which practitioner,
"anyone", "actually another day", "the second one", a name, a date of birth.

Buttons carry ids, but patients type too ("physio", "dr okafor", "anyone is fine", «любой»,
«другой врач», 第二个), with typos; these helpers turn that text into catalogue entries or
say clearly that they can't. The words for "anyone", the changes of mind, the ordinals and
the titles around a name are data, per language (content/booking_answers.yml); every
language's words are read on every message, as clinic/scheduling/preference_words.py
reads every script, so an answer is understood even when the ``language`` slot is wrong.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import difflib
import functools
import re
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import yaml

from clinic.language.catalogue import choice_key
from clinic.scheduling.model import Practitioner, Service
from clinic.settings import PROJECT_ROOT

ANSWER_WORDS_FILE = PROJECT_ROOT / "content" / "booking_answers.yml"
CHANGES = ("practitioner", "service", "time")  # what validate_booking_form can go back to

_MONTHS = {m: i for i, m in enumerate(
    ["january", "february", "march", "april", "may", "june", "july", "august", "september",
     "october", "november", "december"], start=1)}
MAX_AGE_YEARS = 120


class InvalidAnswer(ValueError):
    """The text doesn't answer the question; the type picks the kind reply."""


class InvalidName(InvalidAnswer):
    pass


class InvalidBirthDate(InvalidAnswer):
    pass


class AnswerWordsError(ValueError):
    """content/booking_answers.yml is malformed; the message names the entry."""


def _clean(text: str) -> str:
    text = (text or "").lower().replace("’", "'")
    return re.sub(r"\s+", " ", re.sub(r"[^\w' -]", " ", text)).strip()


# ── the word lists (content/booking_answers.yml) ───────────────────────────────────────────

_HAN = "\u3400-\u9fff"
_HAN_CHAR = re.compile(f"[{_HAN}]")
# A letter or digit of a script with spaces between words: a Latin or Cyrillic word ends
# where none follows, a Chinese one anywhere.
_LETTER = rf"[^\W{_HAN}]"


def normalise(text: str) -> str:
    """What the word lists are matched against: lower case, NFKC (full-width digits), ё as
    е, apostrophes dropped (don't = dont), other punctuation and hyphens as spaces."""
    # The full-width apostrophe too: choice_key applies NFKC after this.
    return choice_key(re.sub(r"['’‘`＇]", "", text or ""))


def _word_pattern(word: str) -> str:
    """One normalised word or phrase: whole words where its script has spaces."""
    pattern = re.escape(word).replace(r"\ ", r"\s+")
    if not _HAN_CHAR.match(word[0]):
        pattern = rf"(?<!{_LETTER}){pattern}"
    if not _HAN_CHAR.match(word[-1]):
        pattern = rf"{pattern}(?!{_LETTER})"
    return pattern


def _alternatives(words: Any, where: str) -> List[str]:
    if not isinstance(words, list) or not words:
        raise AnswerWordsError(f"{ANSWER_WORDS_FILE.name}: {where}: expected a list of words")
    found = []
    for word in words:
        if not isinstance(word, str) or not normalise(word):
            raise AnswerWordsError(
                f"{ANSWER_WORDS_FILE.name}: {where}: {word!r} is not a word (quote it)")
        found.append(normalise(word))
    return sorted(set(found), key=len, reverse=True)  # "второго" before "второ…"


def _phrase_pattern(phrase: Any, where: str) -> str:
    """Text, or a sequence of alternatives ([[another, different], [doctor, nurse]])."""
    sequence = [[phrase]] if isinstance(phrase, str) else phrase
    if not isinstance(sequence, list) or not sequence:
        raise AnswerWordsError(f"{ANSWER_WORDS_FILE.name}: {where}: {phrase!r} is not a phrase")
    parts = [_alternatives(words, where) for words in sequence]
    pattern = ""
    for index, words in enumerate(parts):
        if index:
            # Chinese words follow each other without a space.
            touching = any(_HAN_CHAR.match(w[-1]) for w in parts[index - 1]) or any(
                _HAN_CHAR.match(w[0]) for w in words)
            pattern += r"\s*" if touching else r"\s+"
        pattern += "(?:" + "|".join(_word_pattern(w) for w in words) + ")"
    return pattern


def _per_language(data: Dict[str, Any], key: str) -> Dict[str, Any]:
    section = data.get(key)
    if not isinstance(section, dict) or not section:
        raise AnswerWordsError(f"{ANSWER_WORDS_FILE.name}: {key}: expected language: words")
    return section


def _phrases(section: Dict[str, Any], where: str) -> re.Pattern:
    patterns = []
    for language, phrases in section.items():
        if not isinstance(phrases, list):
            raise AnswerWordsError(f"{ANSWER_WORDS_FILE.name}: {where}.{language}: expected a list")
        patterns += [_phrase_pattern(p, f"{where}.{language}") for p in phrases]
    return re.compile("|".join(f"(?:{p})" for p in patterns))


@dataclasses.dataclass(frozen=True)
class AnswerWords:
    """content/booking_answers.yml, compiled; every language at once."""

    anyone: re.Pattern
    changes: Tuple[Tuple[str, re.Pattern], ...]
    ordinals: re.Pattern
    ordinal_positions: Dict[str, int]  # normalised word -> index (-1: the last)
    not_a_choice_before: Tuple[str, ...]
    number: re.Pattern
    titles: re.Pattern
    languages: Tuple[str, ...]  # the languages every section has words for

    @classmethod
    def from_file(cls, path: Optional[Path] = None) -> "AnswerWords":
        path = Path(path or ANSWER_WORDS_FILE)
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        sections: List[Dict[str, Any]] = []

        anyone = _per_language(data, "anyone")
        sections.append(anyone)
        change_data = data.get("change")
        if not isinstance(change_data, dict) or not set(change_data) <= set(CHANGES):
            raise AnswerWordsError(f"{path.name}: change: expected some of {CHANGES}")
        changes = []
        for what in change_data:
            section = _per_language(change_data, what)
            sections.append(section)
            changes.append((what, _phrases(section, f"change.{what}")))

        choice = data.get("choice") or {}
        positions: Dict[str, int] = {}
        ordinal_data = _per_language(choice, "ordinals")
        sections.append(ordinal_data)
        for language, by_position in ordinal_data.items():
            if not isinstance(by_position, dict):
                raise AnswerWordsError(f"{path.name}: choice.ordinals.{language}: expected position: words")
            for position, words in by_position.items():
                if position != "last" and not (isinstance(position, int) and position >= 1):
                    raise AnswerWordsError(
                        f"{path.name}: choice.ordinals.{language}: {position!r} is not 1, 2… or last")
                for word in _alternatives(words, f"choice.ordinals.{language}.{position}"):
                    positions[word] = -1 if position == "last" else position - 1
        guards_data = _per_language(choice, "not_a_choice_before")
        before_data = _per_language(choice, "number_before")
        after_data = _per_language(choice, "number_after")
        titles_data = _per_language(data, "practitioner_titles")
        sections += [guards_data, before_data, after_data, titles_data]

        def words_of(section: Dict[str, Any], where: str) -> List[str]:
            return [w for language, words in section.items()
                    for w in _alternatives(words, f"{where}.{language}")]

        ordered = sorted(positions, key=len, reverse=True)
        before = sorted(words_of(before_data, "choice.number_before"), key=len, reverse=True)
        after = sorted(words_of(after_data, "choice.number_after"), key=len, reverse=True)
        number = (rf"(?:(?:{'|'.join(map(re.escape, before))})\s*)?(\d{{1,2}})"
                  rf"(?:\s*(?:{'|'.join(map(re.escape, after))}))?")
        titles = sorted(words_of(titles_data, "practitioner_titles"), key=len, reverse=True)
        languages = set.intersection(*(set(section) for section in sections))
        return cls(
            anyone=_phrases(anyone, "anyone"),
            changes=tuple(changes),
            ordinals=re.compile("|".join(f"({_word_pattern(w)})" for w in ordered)),
            ordinal_positions={w: positions[w] for w in ordered},
            not_a_choice_before=tuple(words_of(guards_data, "choice.not_a_choice_before")),
            number=re.compile(number),
            titles=re.compile("|".join(_word_pattern(w) for w in titles)),
            languages=tuple(sorted(languages)),
        )

    def ordinal_index(self, text: str) -> Optional[int]:
        """The first ordinal in (normalised) ``text`` that is not part of a date or a time of
        day: 0 for "the first one", -1 for "last"."""
        words = list(self.ordinal_positions)
        for match in self.ordinals.finditer(text):
            following = text[match.end():].lstrip()
            if following.startswith(self.not_a_choice_before):
                continue
            return self.ordinal_positions[words[match.lastindex - 1]]
        return None


@functools.lru_cache(maxsize=1)
def answer_words() -> AnswerWords:
    return AnswerWords.from_file()


# ── reading the answers ──────────────────────────────────────────────────────────────────


def requested_change(text: str) -> Optional[str]:
    """``"time"``, ``"practitioner"`` or ``"service"`` when the patient changes an earlier
    answer ("another day", «другой врач», 换个医生), else ``None``."""
    cleaned = normalise(text)
    for what, pattern in answer_words().changes:
        if pattern.search(cleaned):
            return what
    return None


def wants_anyone(text: str) -> bool:
    """"Anyone", «любой», 随便: no preference for a practitioner."""
    return bool(answer_words().anyone.search(normalise(text)))


def match_service(text: str, services: Sequence[Service], fuzzy: bool = True) -> Optional[Service]:
    """By id, name or synonym (whole words), then, with ``fuzzy``, by a close spelling
    ("fisio", "vacine"). Without it, only what the patient plainly named."""
    cleaned = _clean(text)
    if not cleaned:
        return None
    for service in services:
        if cleaned == service.id or cleaned == service.name.lower():
            return service
    best: Optional[Service] = None
    best_length = 0
    for service in services:
        for word in (service.name, *service.synonyms):
            phrase = _clean(word)
            if phrase and re.search(rf"\b{re.escape(phrase)}s?\b", cleaned):
                if len(phrase) > best_length:  # "blood test" beats "test"
                    best, best_length = service, len(phrase)
    if best or not fuzzy:
        return best
    vocabulary = {}
    for service in services:
        for word in (service.name, *service.synonyms):
            vocabulary[_clean(word)] = service
    for token in [cleaned, *cleaned.split()]:
        close = difflib.get_close_matches(token, list(vocabulary), n=1, cutoff=0.8)
        if close:
            return vocabulary[close[0]]
    return None


def _without_titles(text: str) -> List[str]:
    """The words of a name as typed, without "Dr", «доктор», 医生, "please"…"""
    cleaned = answer_words().titles.sub(" ", normalise(text))
    return [w for w in cleaned.split() if len(w) > 1]


def match_practitioner(text: str, practitioners: Sequence[Practitioner]) -> Optional[Practitioner]:
    """By id, full name, or one of the names ("okafor", "dr amara"), typos tolerated."""
    words = _without_titles(text)
    if not words:
        return None
    for practitioner in practitioners:
        if " ".join(words) == practitioner.id:
            return practitioner
    scored = []
    for practitioner in practitioners:
        names = _without_titles(practitioner.name)
        score = 0.0
        for word in words:
            for name in names:
                ratio = difflib.SequenceMatcher(None, word, name).ratio()
                if ratio >= 0.8:
                    score += ratio
        if score:
            scored.append((score, practitioner))
    if not scored:
        return None
    scored.sort(key=lambda item: item[0], reverse=True)
    if len(scored) > 1 and scored[0][0] == scored[1][0]:
        return None  # two people fit equally: ask again rather than guess
    return scored[0][1]


def choice_index(text: str, count: int) -> Optional[int]:
    """"2", "the second one", "option 3", "last", «второй», «вариант 2», 第二个, 选2 → an
    index into the offered list."""
    words = answer_words()
    cleaned = normalise(text)
    match = words.number.fullmatch(cleaned)
    if match:
        index = int(match.group(1)) - 1
        return index if 0 <= index < count else None
    index = words.ordinal_index(cleaned)
    if index is None:
        return None
    index = count - 1 if index == -1 else index
    return index if 0 <= index < count else None


def clean_name(text: str) -> str:
    """A person's name as typed: letters (any script), spaces, hyphens, apostrophes."""
    name = re.sub(r"\s+", " ", (text or "").strip())
    name = re.sub(r"^(my name is|i am|i'm|it's|its|name:?)\s+", "", name, flags=re.I)
    if not 2 <= len(name) <= 80:
        raise InvalidName("a name is 2 to 80 characters")
    if any(ch.isdigit() for ch in name) or not re.fullmatch(r"[^\W\d_][\w' .-]*", name):
        raise InvalidName("a name has letters only")
    if len(name.split()) > 6:
        raise InvalidName("that looks like a sentence, not a name")
    return name


def parse_birth_date(text: str, today: dt.date) -> dt.date:
    """Strict: a full date with a four-digit year (3/4/1985 is read day-first, 1985-04-03,
    3 April 1985, April 3 1985). Not in the future, not more than 120 years ago."""
    cleaned = _clean(text.replace("/", " / ").replace(".", " . ")) if text else ""
    cleaned = cleaned.replace(" / ", "/").replace(" . ", ".")
    day = month = year = None
    m = re.search(r"\b(\d{4})-(\d{1,2})-(\d{1,2})\b", text or "")
    if m:
        year, month, day = int(m.group(1)), int(m.group(2)), int(m.group(3))
    if year is None:
        m = re.search(r"\b(\d{1,2})[/.\- ](\d{1,2})[/.\- ](\d{4})\b", text or "")
        if m:
            day, month, year = int(m.group(1)), int(m.group(2)), int(m.group(3))
    if year is None:
        m = re.search(r"\b(\d{1,2})(?:st|nd|rd|th)?(?: of)? ([a-z]+),? (\d{4})\b", cleaned)
        if m and _month(m.group(2)):
            day, month, year = int(m.group(1)), _month(m.group(2)), int(m.group(3))
    if year is None:
        m = re.search(r"\b([a-z]+) (\d{1,2})(?:st|nd|rd|th)?,? (\d{4})\b", cleaned)
        if m and _month(m.group(1)):
            day, month, year = int(m.group(2)), _month(m.group(1)), int(m.group(3))
    if year is None:
        raise InvalidBirthDate("write the full date, e.g. 14/03/1985")
    try:
        born = dt.date(year, month, day)
    except ValueError as exc:
        raise InvalidBirthDate("not a real date") from exc
    if born > today:
        raise InvalidBirthDate("in the future")
    if (today.year - born.year) > MAX_AGE_YEARS:
        raise InvalidBirthDate("more than 120 years ago")
    return born


def _month(word: str) -> Optional[int]:
    if word in _MONTHS:
        return _MONTHS[word]
    for name, number in _MONTHS.items():
        if len(word) >= 3 and name.startswith(word):
            return number
    return None
