"""Which team fits what a patient wrote: per-language word lists in content/routing.yml.

"I want to talk to a real person about my bill" names no team, and the classifier only
says `request_human`: the words "bill", "счёт", "账单" are what tell us it is for billing.
Clinicians and designers keep the lists (content/routing.yml); this module only matches.

Words are compared the way the red-flag safety net compares them
(clinic/safety/normalisers.py): English by spaCy lookup lemma ("paid" = "pay"), Russian by
every pymorphy3 lemma of the form ("счёта" = "счёт"), Chinese character by character (so a
listed word matches as a substring, whatever a segmenter would decide). Every language's
list runs on every message: patients mix languages ("моя insurance"), and a list that finds
nothing costs little. Matches never overlap; the longest phrase claims its words first, so
"sick note" counts for reception and not as the "sick" of the nurse list.

Nothing here logs the text it reads.
"""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path
from typing import Dict, FrozenSet, Iterable, List, Mapping, Optional, Sequence, Tuple

import yaml

from clinic.handoff.teams import Team, parse_team
from clinic.safety.normalisers import Token, normaliser_for
from clinic.settings import PROJECT_ROOT

DEFAULT_ROUTING_FILE = PROJECT_ROOT / "content" / "routing.yml"
# WhatsApp caps a message at 4,096 characters; other channels do not. Reading further adds
# time, not information about the subject.
MAX_CHARACTERS = 20_000


class RoutingDataError(ValueError):
    """content/routing.yml is malformed."""


@dataclasses.dataclass(frozen=True)
class Phrase:
    team: Team
    words: Tuple[FrozenSet[str], ...]  # the keys of each of the phrase's words, in order


@dataclasses.dataclass(frozen=True)
class _Match:
    team: Team
    start: int  # token positions, end exclusive
    end: int


class RoutingWords:
    """Counts each team's listed words in a text and names the team with the most."""

    def __init__(self, phrases: Mapping[str, Sequence[Phrase]], tie_order: Sequence[Team]):
        self._phrases = {language: tuple(items) for language, items in phrases.items()}
        # Every team ranks: one left out of tie_order comes after the listed ones.
        self._rank = {team: i for i, team in enumerate([*tie_order, *(t for t in Team if t not in tie_order)])}
        # Candidate phrases by the keys of their first word, so a message's token is only
        # compared with the phrases that can start there.
        self._by_first_key: Dict[str, Dict[str, List[Phrase]]] = {}
        for language, items in self._phrases.items():
            index: Dict[str, List[Phrase]] = {}
            for phrase in items:
                for key in phrase.words[0]:
                    index.setdefault(key, []).append(phrase)
            self._by_first_key[language] = index

    @property
    def languages(self) -> Tuple[str, ...]:
        return tuple(self._phrases)

    def teams_in(self, language: str) -> FrozenSet[Team]:
        return frozenset(p.team for p in self._phrases.get(language, ()))

    @classmethod
    def from_file(cls, path: Optional[Path] = None) -> "RoutingWords":
        path = Path(path or DEFAULT_ROUTING_FILE)
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        return cls.from_dict(data, source=str(path))

    @classmethod
    def from_dict(cls, data: Mapping, source: str = "routing words") -> "RoutingWords":
        tie_order = []
        for value in data.get("tie_order") or []:
            team = parse_team(str(value))
            if team is None:
                raise RoutingDataError(f"{source}: unknown team {value!r} in tie_order")
            tie_order.append(team)
        words = data.get("words")
        if not isinstance(words, dict):
            raise RoutingDataError(f"{source}: expected 'words': language -> team -> list of words")
        phrases: Dict[str, List[Phrase]] = {}
        for language, by_team in words.items():
            if not isinstance(by_team, dict):
                raise RoutingDataError(f"{source}: {language}: expected team -> list of words")
            normalise = normaliser_for(str(language))
            owner: Dict[Tuple[FrozenSet[str], ...], Team] = {}
            for team_name, items in by_team.items():
                team = parse_team(str(team_name))
                if team is None:
                    raise RoutingDataError(f"{source}: {language}: unknown team {team_name!r}")
                for item in items or []:
                    if not isinstance(item, str):
                        raise RoutingDataError(
                            f"{source}: {language}/{team_name}: {item!r} is not text: quote it")
                    keys = tuple(token.keys for token in normalise(item))
                    if not keys:
                        raise RoutingDataError(f"{source}: {language}/{team_name}: {item!r} has no word")
                    if keys in owner and owner[keys] is not team:
                        raise RoutingDataError(f"{source}: {language}: {item!r} is listed for "
                                               f"{owner[keys].value} and {team.value}")
                    if keys not in owner:  # "vomit" and "vomiting" are one phrase: count it once
                        owner[keys] = team
                        phrases.setdefault(str(language), []).append(Phrase(team, keys))
        return cls(phrases, tie_order)

    def counts(self, text: str) -> Dict[Team, int]:
        """How many non-overlapping listed phrases of each team the text contains."""
        text = (text or "")[:MAX_CHARACTERS]
        counts: Dict[Team, int] = {}
        if not text.strip():
            return counts
        for language, index in self._by_first_key.items():
            if not index:
                continue
            tokens = normaliser_for(language)(text)
            for match in _non_overlapping(_candidates(tokens, index)):
                counts[match.team] = counts.get(match.team, 0) + 1
        return counts

    def team_for(self, text: str) -> Optional[Team]:
        """The team with the most matches (ties: content/routing.yml's tie_order), else None."""
        counts = self.counts(text)
        if not counts:
            return None
        return min(counts, key=lambda team: (-counts[team], self._rank[team]))


def _candidates(tokens: Sequence[Token], index: Mapping[str, Sequence[Phrase]]) -> Iterable[_Match]:
    for start, token in enumerate(tokens):
        seen = set()
        for key in token.keys:
            for phrase in index.get(key, ()):
                if id(phrase) in seen:
                    continue
                seen.add(id(phrase))
                end = start + len(phrase.words)
                if end <= len(tokens) and all(
                        words & tokens[start + i].keys for i, words in enumerate(phrase.words)):
                    yield _Match(phrase.team, start, end)


def _non_overlapping(matches: Iterable[_Match]) -> List[_Match]:
    """Longest first, then leftmost: each token counts for at most one phrase."""
    taken: set = set()
    kept: List[_Match] = []
    for match in sorted(matches, key=lambda m: (-(m.end - m.start), m.start)):
        span = range(match.start, match.end)
        if taken.isdisjoint(span):
            taken.update(span)
            kept.append(match)
    return kept


@functools.lru_cache(maxsize=1)
def default_routing_words() -> RoutingWords:
    """content/routing.yml, read once per process (an edit takes effect on restart)."""
    return RoutingWords.from_file()
