"""The ranking of the document search (issue 17, session 13, the ranking): a passage's closest
sentence weighs in the ranking score, its weights are chosen from a grid by the share of
tuning questions whose right passage comes first (``decision.choose_ranking``), cross-validated
together with the decision, and the tuning report sorts the ranking's misses by kind."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from clinic.knowledge import decision
from clinic.knowledge.decision import FEATURES, Case, LearnedRule
from clinic.knowledge.search import Rule, Searcher
from tests.knowledge_support import fresh_knowledge_base
from tests.test_knowledge_encoder import TopicEncoder, _approved

# Two passages under one heading, both with every word of "When are the visiting hours?":
# the first is only loosely about visits as a whole; the second answers in one of its
# sentences, but its other sentences (about the MRI) pull its whole-passage vector away.
NOTICES = b"""# Notices

## Information

Visiting hours do not apply to MRI lockers or jewellery.

Remove jewellery before the MRI. Lockers are provided. Visiting hours are 14:00 to 19:00.

## Parking

Patients can park in the underground car park on River Road.
"""
QUESTION = "When are the visiting hours?"


@pytest.fixture
def kb(tmp_path):
    with fresh_knowledge_base(tmp_path) as knowledge:
        yield knowledge


def _positions(signals):
    passages = signals.index.passages
    loose = next(i for i, p in enumerate(passages) if p.text.startswith("Visiting hours do not apply"))
    answer = next(i for i, p in enumerate(passages) if "14:00 to 19:00" in p.text)
    parking = next(i for i, p in enumerate(passages) if "car park" in p.text)
    return loose, answer, parking


def test_the_closest_sentence_in_the_ranking_brings_the_passage_that_answers_first(kb):
    _approved(kb, NOTICES, title="Notices")
    signals = Searcher(kb.sessions, encoder=TopicEncoder()).signals(QUESTION, "en")
    loose, answer, _ = _positions(signals)
    assert signals.coverage[loose] == signals.coverage[answer] == pytest.approx(1.0)  # words alike
    assert signals.cosine[loose] > signals.cosine[answer]  # as a whole, the loose one is closer …
    assert signals.sentence_cosine[answer] > signals.sentence_cosine[loose]  # … one sentence of the other much closer
    # Session 13's ranking (coverage and the passage's cosine) puts the loose passage first;
    # with the closest sentence weighed in, the one that answers comes first.
    assert int(np.argmax(signals.combined(Rule(weight=0.6)))) == loose
    assert int(np.argmax(signals.combined(Rule(weight=0.3, sentence_weight=0.525)))) == answer
    # Weights that add up: the score is a weighted mean of the three signals.
    score = signals.combined(Rule(weight=0.3, sentence_weight=0.525))[answer]
    assert score == pytest.approx(0.3 * 1.0 + 0.525 * signals.sentence_cosine[answer]
                                  + 0.175 * signals.cosine[answer], abs=1e-6)


def test_the_searcher_answers_with_the_passage_its_rule_ranks_first(kb):
    _approved(kb, NOTICES, title="Notices")
    rule = LearnedRule(weight=0.3, sentence_weight=0.525, features=("coverage",), mean=(0.5,), scale=(1.0,),
                       coefficients=(1.0,), intercept=0.0, threshold=0.5)
    answer = Searcher(kb.sessions, encoder=TopicEncoder(), rule=rule).answer(QUESTION, "en")
    assert answer.found and "14:00 to 19:00" in answer.quote
    before = Searcher(kb.sessions, encoder=TopicEncoder(), rule=dataclasses.replace(rule, weight=0.6, sentence_weight=0.0))
    assert before.answer(QUESTION, "en").quote.startswith("Visiting hours do not apply")


def test_a_rule_file_without_a_sentence_weight_ranks_as_session_13_did():
    raw = LearnedRule(weight=0.6, features=("coverage",), mean=(0.5,), scale=(1.0,), coefficients=(1.0,),
                      intercept=0.0, threshold=0.5, sentence_weight=0.4).to_json()
    old = raw.replace('"sentence_weight": 0.4', '"unused": 0').replace(',\n  "unused": 0', "")
    assert "sentence_weight" not in old
    assert LearnedRule.from_json(old).sentence_weight == 0.0
    assert LearnedRule.from_json(raw).sentence_weight == 0.4


def _cases(rights, unanswerable=0, language="en"):
    """Answerable cases whose best passage is right as ``rights`` says, and unanswerable ones."""
    return ([Case(language, True, right, True, tuple(0.0 for _ in FEATURES)) for right in rights]
            + [Case(language, False, False, True, tuple(0.0 for _ in FEATURES)) for _ in range(unanswerable)])


def test_the_ranking_with_the_most_right_passages_first_is_chosen_ties_to_the_earlier():
    worse = _cases([True, False, False, True]) + _cases([True, True], language="ru")  # en 0.5, ru 1.0
    better = _cases([True, True, False, True]) + _cases([True, False], language="ru")  # en 0.75, ru 0.5
    best = _cases([True, True, True, False]) + _cases([True, True], language="ru")  # en 0.75, ru 1.0
    rankings = {(0.6, 0.0): worse, (0.4, 0.3): better, (0.3, 0.5): best}
    everything = range(len(worse))
    assert decision.ranking_top1(best, everything) == pytest.approx(0.875)  # mean of the languages
    assert decision.choose_ranking(rankings, everything) == (0.3, 0.5)
    # On the first and last English questions only, two rankings tie (both right): the first listed wins.
    assert decision.choose_ranking(rankings, [0, 3]) == (0.6, 0.0)
    assert decision.choose_ranking({(0.4, 0.3): better, (0.6, 0.0): worse}, [0, 3]) == (0.4, 0.3)
    # Unanswerable questions say nothing about the ranking.
    assert decision.ranking_top1(_cases([True], unanswerable=3), range(4)) == 1.0


def test_cross_validation_chooses_the_ranking_on_the_training_folds():
    rng = np.random.default_rng(3)
    n = 60

    def cases(right_share):
        signal = rng.normal(size=n + 30)
        rights = [bool(r) for r in rng.random(n) < right_share]
        out = []
        for i in range(n + 30):
            answerable = i < n
            value = signal[i] + (2.0 if answerable and rights[i] else -2.0)
            out.append(Case("en", answerable, answerable and rights[i], True,
                            tuple(value if name == "cosine" else 0.0 for name in FEATURES)))
        return out

    good, poor = cases(0.95), cases(0.3)
    alone = decision.cross_validate({(0.3, 0.5): good}, refusals=0.9, features=("cosine",), seeds=(0,))
    both = decision.cross_validate({(0.6, 0.0): poor, (0.3, 0.5): good}, refusals=0.9, features=("cosine",),
                                   seeds=(0,))
    # The good ranking wins on every training fold, so the held-out figures are its own.
    assert both == alone
    assert both["en"][0] > decision.cross_validate({(0.6, 0.0): poor}, refusals=0.9, features=("cosine",),
                                                   seeds=(0,))["en"][0]


def test_the_misses_are_sorted_by_kind(kb):
    from scripts.evaluate_knowledge import miss_kind

    _approved(kb, NOTICES, title="Notices")
    searcher = Searcher(kb.sessions, encoder=TopicEncoder())
    signals = searcher.signals(QUESTION, "en")
    loose, answer, parking = _positions(signals)
    # The loose passage first, the answer under the same heading: a neighbour on the same topic.
    assert miss_kind(signals, loose, {answer}) == "same topic"
    # Had the parking passage been the right one: it shares none of the question's words.
    assert miss_kind(signals, loose, {parking}) == "vocabulary"
    parked = searcher.signals("Where can visitors park the car?", "en")
    loose, answer, parking = _positions(parked)
    # "visitor" is not "visit" to the index, but the same first letters: a word form apart.
    assert miss_kind(parked, parking, {answer}) == "word form"
    # The right passage shares "car park" words, another one is first anyway: other words.
    assert miss_kind(parked, loose, {parking}) == "other words"
