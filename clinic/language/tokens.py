"""Words of a text for matching, without Rasa: Chinese segmented by jieba, Russian words by
their dictionary form (pymorphy3), Latin words lower-cased.

Shared by the NLU tokenizer (addons/multilingual_tokenizer.py, which wraps these in Rasa
tokens) and the document search (clinic/knowledge/), so a word means the same thing to both.
Both dictionaries ship inside their packages; nothing is downloaded.
"""

from __future__ import annotations

import functools
import logging
import re
from typing import List

from clinic.language.scripts import HAN, HAN_RANGES

CYRILLIC = re.compile(r"[а-яё]", re.IGNORECASE)
# Runs of Han characters, or of letters/digits of any other script: jieba cuts Cyrillic into
# single letters, so text is split by script before segmenting.
_RUNS = re.compile(rf"[{HAN_RANGES}]+|[^\W{HAN_RANGES}_]+(?:['’-][^\W{HAN_RANGES}_]+)*")


@functools.lru_cache(maxsize=1)
def jieba_tokenizer():
    import jieba

    jieba.setLogLevel(logging.WARNING)  # its start-up banner is not for patients' logs
    tokenizer = jieba.Tokenizer()
    tokenizer.initialize()
    return tokenizer


@functools.lru_cache(maxsize=1)
def _morph():
    import pymorphy3

    return pymorphy3.MorphAnalyzer()


@functools.lru_cache(maxsize=100_000)
def russian_lemma(word: str) -> str:
    parses = _morph().parse(word.lower().replace("ё", "е"))
    return parses[0].normal_form.replace("ё", "е") if parses else word.lower()


def segment_chinese(text: str) -> List[str]:
    """jieba's words of a Han run (precise mode, with its HMM for unknown words)."""
    return [w for w in jieba_tokenizer().cut(text, HMM=True) if w.strip()]


def russian_word_is_known(word: str) -> bool:
    """Whether pymorphy3's dictionary has ``word`` (any form), not a guess of its predictor."""
    return bool(_morph().word_is_known(word.lower().replace("ё", "е")))


@functools.lru_cache(maxsize=100_000)
def english_stem(word: str) -> str:
    """A light, predictable suffix strip ("visits" → "visit", "parking" → "park"), so a
    question and a passage meet on the same word without an English dictionary."""
    word = word.lower().replace("’", "'")
    if word.endswith("'s"):
        word = word[:-2]
    for suffix, keep in (("ies", "y"), ("ing", ""), ("ed", ""), ("es", ""), ("s", "")):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3 and not word.endswith("ss"):
            stem = word[: len(word) - len(suffix)] + keep
            if suffix in ("ing", "ed") and len(stem) > 3 and stem[-1] == stem[-2] and stem[-1] not in "lsz":
                stem = stem[:-1]  # "stopped" → "stop"
            return stem
    return word


def terms(text: str) -> List[str]:
    """The matching terms of ``text`` in order: lemmas, segmented words, stems."""
    result: List[str] = []
    for run in _RUNS.findall(text or ""):
        if HAN.match(run):
            result.extend(segment_chinese(run))
        elif CYRILLIC.search(run):
            result.append(russian_lemma(run))
        elif run.isdigit():
            result.append(run)
        else:
            result.append(english_stem(run))
    return result
