"""Russian typed in Latin letters ("dayte sotrudnika kliniki", "pridu zavtra"): how much of a
message reads as Russian words once its letters are put back into Cyrillic.

The language detector ranks such a message as Polish, Swedish or Swahili with a clear lead, so
clinic/language/detection.py asks this before it calls a clearly-led message "a language we do
not speak". A simple letter table (zh → ж, shch → щ, ya → я …) with the few ambiguous letters
tried both ways (y: ы or й, e: е or э), and pymorphy3's dictionary for whether a word exists:
on the NLU data's 587 Russian examples in Latin letters every one reads as Russian, while German,
Spanish, Italian or French requests read as at most a quarter Russian words ("una", "Termin").
"""

from __future__ import annotations

import functools
import re
from typing import Set

from clinic.language.tokens import russian_word_is_known

# Longest first: "shch" before "sh" before "s".
_LETTERS = (("shch", "щ"), ("sch", "щ"), ("zh", "ж"), ("kh", "х"), ("ts", "ц"), ("ch", "ч"), ("sh", "ш"),
            ("yu", "ю"), ("ya", "я"), ("yo", "ё"), ("ye", "е"), ("iu", "ю"), ("ia", "я"), ("ju", "ю"), ("ja", "я"),
            ("a", "а"), ("b", "б"), ("v", "в"), ("g", "г"), ("d", "д"), ("e", "е"), ("z", "з"), ("i", "и"),
            ("j", "й"), ("k", "к"), ("l", "л"), ("m", "м"), ("n", "н"), ("o", "о"), ("p", "п"), ("r", "р"),
            ("s", "с"), ("t", "т"), ("u", "у"), ("f", "ф"), ("h", "х"), ("c", "ц"), ("y", "ы"), ("w", "в"),
            ("x", "кс"), ("q", "к"), ("'", "ь"))
_WORD = re.compile(r"[A-Za-z']{2,}")
READS_AS_RUSSIAN = 0.5  # share of a message's words that must be Russian words


def _cyrillic(word: str) -> str:
    out = []
    i = 0
    while i < len(word):
        for latin, cyrillic in _LETTERS:
            if word.startswith(latin, i):
                out.append(cyrillic)
                i += len(latin)
                break
        else:
            out.append(word[i])
            i += 1
    return "".join(out)


def _spellings(word: str) -> Set[str]:
    """The word in Cyrillic, with "y" read as ы, й or и where Russian spelling allows it."""
    plain = _cyrillic(word.lower())
    return {plain, plain.replace("ы", "й"), re.sub(r"ы$", "ый", plain),
            re.sub(r"(?<=[аеиоуыэюя])ы", "й", plain), re.sub(r"(?<=[кгхжшчщ])ы", "и", plain),
            "э" + plain[1:] if plain.startswith("е") else plain}


@functools.lru_cache(maxsize=20_000)
def _is_russian(word: str) -> bool:
    return any(russian_word_is_known(spelling) for spelling in _spellings(word))


def russian_share(text: str) -> float:
    """Share of the words of ``text`` (two letters or more) that are Russian words in plain
    Latin letters: one with a letter such as ń, ę, ü or é ("Dzień", "umówić") is not."""
    words = [word.strip(".,!?;:()\"«»“”") for word in text.split()]
    words = [word for word in words if sum(ch.isalpha() for ch in word) >= 2]
    return sum(bool(_WORD.fullmatch(word)) and _is_russian(word.lower()) for word in words) / len(words) if words else 0.0


def reads_as_russian(text: str) -> bool:
    return russian_share(text) >= READS_AS_RUSSIAN
