"""clinic/knowledge/curated.py: when an approved passage answers instead of the curated FAQ text."""

import pytest

from clinic.knowledge.curated import passage_answers_better
from clinic.knowledge.search import Answer


def found(coverage: float) -> Answer:
    return Answer(True, "found", 0.9, coverage=coverage)


@pytest.mark.parametrize("answer, curated, words, better", [
    (found(1.0), 0.0, 2, True),
    (found(0.95), 0.4, 3, True),  # over half more, and the text carries under half
    (found(0.89), 0.4, 3, False),  # not half more
    (found(1.0), 0.5, 2, False),  # the text carries half: it answers
    (found(1.0), 0.0, 1, False),  # one subject word does not overrule the NLU
    (Answer(False, "not_found", 0.6, coverage=1.0), 0.0, 3, False),  # under the search's threshold
])
def test_the_passage_answers_only_when_it_carries_much_more_of_the_question(answer, curated, words, better):
    assert passage_answers_better(answer, curated, words) is better


def test_only_a_confidence_every_language_would_accept_overrules_the_curated_text():
    # Found at 0.75 under a lenient language's own threshold (0.7), but under the strictest (0.83).
    lenient = Answer(True, "found", 0.75, coverage=1.0)
    assert passage_answers_better(lenient, 0.0, 2, strictest=0.83) is False
    assert passage_answers_better(lenient, 0.0, 2, strictest=0.75) is True
