"""How each language's red-flag phrases and messages are cut into comparable keys.

A message becomes a list of :class:`Token`: the character span of a word (Chinese: of one
character) and the set of keys it may be compared by. A phrase word matches a message word
when their key sets share a key, so an ambiguous Russian form ("стекла": glass or flowed)
matches either reading: the safety net prefers a spare match to a missed one.

- English: spaCy's blank pipeline with lookup lemmas ("bleeding" = "bleed"), contractions
  normalised ("can't" = "can not"). No pretrained model is needed.
- Russian: words by regular expression, ``ё`` = ``е``, every dictionary lemma pymorphy3 knows
  for the form ("потерял" → потерять), so inflection never hides a phrase.
- Chinese: one token per Han character, so word segmentation can never split a phrase
  ("胸口很痛" contains 胸, 口, 很, 痛 whatever a segmenter decides).

In every language a run of Latin letters or digits is one word, so transliterated phrases
("bol v grudi") and numbers match word by word, and a four-digit year also carries the key
``<year>`` that context cues such as "in <year>" use.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from typing import Callable, FrozenSet, List

from clinic.language.scripts import HAN as _HAN

YEAR_KEY = "<year>"
_YEAR = re.compile(r"^(19|20)\d\d$")
# Words: letters and digits (Unicode), apostrophes inside English words kept for spaCy.
_WORD = re.compile(r"[^\W_]+", re.UNICODE)

# spaCy splits contractions into pieces whose lookup lemma is not the full word.
_LEMMA_FIXES = {"ca": "can", "wo": "will", "sha": "shall", "nt": "not", "n't": "not", "nt.": "not"}


@dataclasses.dataclass(frozen=True)
class Token:
    keys: FrozenSet[str]
    start: int  # character offset in the original text
    end: int


Normaliser = Callable[[str], List[Token]]


def _with_year(word: str, keys: set) -> FrozenSet[str]:
    if _YEAR.match(word):
        keys.add(YEAR_KEY)
    return frozenset(keys)


def _prepare(text: str) -> str:
    # Same length as the input, so offsets index the original text.
    return text.lower().replace("\u2019", "'").replace("\u2018", "'").replace("ё", "е")


@functools.lru_cache(maxsize=1)
def _english_nlp():
    # Imported lazily: spaCy is heavy and only needed once a detector is built.
    import spacy

    nlp = spacy.blank("en")
    nlp.add_pipe("lemmatizer", config={"mode": "lookup"})
    nlp.initialize()
    return nlp


def english(text: str) -> List[Token]:
    tokens = []
    for token in _english_nlp()(_prepare(text)):
        if token.is_punct or token.is_space or not any(ch.isalnum() for ch in token.text):
            continue
        lemma = token.lemma_.lower() or token.text
        tokens.append(Token(_with_year(token.text, {_LEMMA_FIXES.get(lemma, lemma)}),
                            token.idx, token.idx + len(token.text)))
    return tokens


@functools.lru_cache(maxsize=1)
def _morph():
    import pymorphy3

    return pymorphy3.MorphAnalyzer()


@functools.lru_cache(maxsize=50_000)
def _russian_lemmas(word: str) -> FrozenSet[str]:
    if not re.search(r"[а-я]", word):
        return frozenset({word})
    return frozenset({word} | {p.normal_form.replace("ё", "е") for p in _morph().parse(word)})


def russian(text: str) -> List[Token]:
    prepared = _prepare(text)
    return [Token(_with_year(m.group(), set(_russian_lemmas(m.group()))), m.start(), m.end())
            for m in _WORD.finditer(prepared)]


def chinese(text: str) -> List[Token]:
    prepared = _prepare(text)
    tokens: List[Token] = []
    for word in _WORD.finditer(prepared):
        chunk, offset = word.group(), word.start()
        position = 0
        while position < len(chunk):
            if _HAN.match(chunk[position]):
                tokens.append(Token(frozenset({chunk[position]}), offset + position,
                                    offset + position + 1))
                position += 1
                continue
            end = position
            while end < len(chunk) and not _HAN.match(chunk[end]):
                end += 1
            piece = chunk[position:end]
            tokens.append(Token(_with_year(piece, {piece}), offset + position, offset + end))
            position = end
    return tokens


NORMALISERS = {"en": english, "ru": russian, "zh": chinese}
# How many tokens a "*" in a phrase may stand for: words, or characters in Chinese.
MAX_GAPS = {"en": 3, "ru": 3, "zh": 4}


def normaliser_for(language: str) -> Normaliser:
    """The language's normaliser; an unknown language is cut into words like Russian
    (regular-expression words, lemmas only for Cyrillic), which is safe for any alphabet."""
    return NORMALISERS.get(language, russian)


def keeps_written_form(language: str) -> bool:
    """Whether the language's tokens carry each word as written beside its lemmas, so that a
    phrase may ask for one exact form ("=скорую"): true where words are lemmatised by
    dictionary (Russian, and unknown alphabets cut like it); English tokens are lemmas only."""
    return normaliser_for(language) is russian


def written_form(word: str) -> str:
    """A word as the tokens carry it: lower case, ё as е."""
    return _prepare(word)


def has_han(text: str) -> bool:
    return bool(_HAN.search(text))
