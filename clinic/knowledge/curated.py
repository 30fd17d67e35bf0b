"""Curated answers first, documents second — while the curated answer fits the question.

The NLU's FAQ topics are few and broad, so a question the clinic's documents answer
exactly ("Can I bring food for a patient?", «Где взять контейнер для мочи?») is often
taken for the nearest topic ("What to bring", "Preparing for your visit") and given that
text, which does not answer it. Before the curated text goes out, the document search is
asked too: a passage it would answer with, at a confidence every language's threshold would
accept (the strictest: with a threshold per language, a curated text the NLU chose is not
overruled by a passage only a lenient language's threshold lets through), that carries at
least half more of the question's subject than the curated text does, where the curated
text carries less than half of it, answers instead. Questions of one subject word keep the
curated text (one shared word is too little to overrule the NLU).

Chosen on the tuning questions (tests/data/knowledge/tuning.yml) the NLU sends to a topic
with a curated text, weighed against the FAQ topics' own training examples that would leave
their curated text: docs/measurements.md ("session 16").
"""

from __future__ import annotations

from clinic.knowledge.search import Answer

MIN_SUBJECT_WORDS = 2
MIN_LEAD = 0.5  # the passage's coverage of the question minus the curated text's
CURATED_BELOW = 0.5  # a curated text that carries half of the question or more keeps it


def passage_answers_better(answer: Answer, curated_coverage: float, subject_words: int,
                           strictest: float = 0.0) -> bool:
    """Whether ``answer`` (the document search's, for the question) should be sent instead of
    a curated text that carries ``curated_coverage`` of the question's ``subject_words``;
    ``strictest``: the highest threshold of the search's decision (its confidence must reach it)."""
    return (answer.found and answer.confidence >= strictest and subject_words >= MIN_SUBJECT_WORDS
            and curated_coverage < CURATED_BELOW and answer.coverage - curated_coverage >= MIN_LEAD)
