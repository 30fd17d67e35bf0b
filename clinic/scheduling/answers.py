"""Reading a patient's typed answers during booking: which service, which practitioner,
"anyone", "actually another day", "the second one", a name, a date of birth.

Buttons carry ids, but patients type too ("physio", "dr okafor", "anyone is fine"), with
typos; these helpers turn that text into catalogue entries or say clearly that they can't.
"""

from __future__ import annotations

import datetime as dt
import difflib
import re
from typing import Optional, Sequence

from clinic.scheduling.model import Practitioner, Service

_ANYONE = re.compile(
    r"\b(any ?one|any ?body|any(?: practitioner| doctor| nurse| of them)?|whoever|"
    r"no preference|don'?t mind|do not mind|doesn'?t matter|does not matter|not fussed|"
    r"first available|soonest|earliest|either|no one in particular|nobody in particular)\b"
)
_TITLES = re.compile(r"\b(dr|doctor|nurse|physio|mr|mrs|ms|miss|prof|with|see|please|pls)\b\.?")

# "actually another day", "different doctor", "something else": the patient changes an
# earlier answer. Checked before reading the text as an answer to the current question.
_CHANGES = (
    ("practitioner", re.compile(
        r"\b(different|another|other|change(?: the)?|new|someone else'?s?|somebody else)\s+"
        r"(doctor|dr|gp|practitioner|nurse|physio(?:therapist)?|person)\b|"
        r"\bsomeone else\b|\bsomebody else\b|\bnot (?:with )?(?:dr|doctor)\b")),
    ("service", re.compile(
        r"\b(different|another|other|wrong|change(?: the)?)\s+"
        r"(service|type|kind of appointment|appointment type|treatment)\b|"
        r"\bsomething else\b")),
    ("time", re.compile(
        r"\b(different|another|other|change(?: the)?|new|later|earlier)\s+"
        r"(day|date|time|slot|week|times|days|dates)\b|"
        r"\bnone of (?:these|those|them)\b|\bnot (?:these|those)\b|"
        r"\b(?:doesn'?t|don'?t|does not|do not|won'?t|can'?t) (?:work|suit|fit)\b")),
)

_ORDINALS = {
    "first": 0, "1st": 0, "second": 1, "2nd": 1, "third": 2, "3rd": 2, "fourth": 3,
    "4th": 3, "fifth": 4, "5th": 4, "sixth": 5, "6th": 5, "seventh": 6, "7th": 6,
    "eighth": 7, "8th": 7, "ninth": 8, "9th": 8, "tenth": 9, "10th": 9, "last": -1,
}

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


def _clean(text: str) -> str:
    text = (text or "").lower().replace("’", "'")
    return re.sub(r"\s+", " ", re.sub(r"[^\w' -]", " ", text)).strip()


def requested_change(text: str) -> Optional[str]:
    """``"time"``, ``"practitioner"`` or ``"service"`` when the patient changes an earlier
    answer, else ``None``."""
    cleaned = _clean(text)
    for what, pattern in _CHANGES:
        if pattern.search(cleaned):
            return what
    return None


def wants_anyone(text: str) -> bool:
    return bool(_ANYONE.search(_clean(text)))


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


def match_practitioner(text: str, practitioners: Sequence[Practitioner]) -> Optional[Practitioner]:
    """By id, full name, or one of the names ("okafor", "dr amara"), typos tolerated."""
    cleaned = _TITLES.sub(" ", _clean(text))
    words = [w for w in cleaned.split() if len(w) > 1]
    if not words:
        return None
    for practitioner in practitioners:
        if " ".join(words) == practitioner.id:
            return practitioner
    scored = []
    for practitioner in practitioners:
        names = [n for n in _TITLES.sub(" ", _clean(practitioner.name)).split() if len(n) > 1]
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
    """"2", "the second one", "option 3", "last" → an index into the offered list."""
    cleaned = _clean(text)
    match = re.fullmatch(r"(?:option |number |no |the )?(\d{1,2})(?: please)?", cleaned)
    if match:
        index = int(match.group(1)) - 1
        return index if 0 <= index < count else None
    for word, index in _ORDINALS.items():
        if re.search(rf"\b{word}\b", cleaned):
            index = count - 1 if index == -1 else index
            return index if 0 <= index < count else None
    return None


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
