"""Every word in Latin letters, for the NLU's character n-gram feature.

Patients often type Russian in Latin letters ("hochu zapisatsya") and Chinese in pinyin
("qu xiao yu yue"). Written in their own script, the same words share no character with
those spellings, so the classifier learnt them as separate vocabularies and got about two
in three transliterated messages wrong. Counting character n-grams of one romanised form
of every word (Cyrillic letter by letter, Chinese as toneless pinyin, Latin spelling
variants folded) lets both spellings share features; the word features still count the
original words and lemmas, so nothing the script distinguishes is lost there.

The letter table and rewrites are data: content/romanisation.yml.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Dict, List, Tuple

import yaml

from clinic.language.scripts import HAN as _HAN

TABLE_PATH = Path(__file__).resolve().parent.parent / "content" / "romanisation.yml"


@functools.lru_cache(maxsize=1)
def _table() -> Tuple[Dict[str, str], List[Tuple[str, str]]]:
    with TABLE_PATH.open(encoding="utf-8") as handle:
        data = yaml.safe_load(handle)
    letters = {str(k): str(v) for k, v in (data.get("letters") or {}).items()}
    rewrites = [(str(a), str(b)) for a, b in (data.get("latin_rewrites") or [])]
    return letters, rewrites


@functools.lru_cache(maxsize=100_000)
def romanise(word: str) -> str:
    """One word in Latin letters: "записаться" → "zapisacya", "预约" → "预约 yu yue".

    Chinese words keep their characters beside the pinyin: pinyin alone merges homophones
    ("支付" and "直付" both "zhi fu") and cost the characters' own n-grams (5-fold CV:
    Chinese -0.3 points with pinyin alone, +0.3 with both)."""
    if _HAN.search(word):
        from pypinyin import lazy_pinyin

        return word + " " + " ".join(lazy_pinyin(word))
    letters, rewrites = _table()
    text = "".join(letters.get(char, char) for char in word.lower())
    for old, new in rewrites:
        text = text.replace(old, new)
    return text
