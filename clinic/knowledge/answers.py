"""What the dialogue asks of the clinic's documents: answer a patient's question in their
language, and keep the counts the clinic's analytics show (answered / not found / handed over
per document), never the question's text.

Knows nothing of Rasa: the thin action (actions/knowledge.py) passes the question, the
conversation's language and the contact's pseudonymous key, and gets an ``Answer``
(clinic/knowledge/search.py) back.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from typing import Callable, Dict, List, Optional, Tuple

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from clinic.knowledge.curated import passage_answers_better
from clinic.knowledge.search import Answer, Searcher
from clinic.knowledge.tables import KnowledgeDocumentRow, KnowledgeOutcomeRow

logger = logging.getLogger(__name__)

ANSWERED = "answered"
NOT_FOUND = "not_found"
# Shown for not-found questions no approved passage came near at all.
NO_DOCUMENT = "(no document came close)"


class DocumentAnswers:
    # ``clock`` is the caller's (the action server's "now"), so tests pin the outcomes' times.
    def __init__(self, session_factory: sessionmaker, clock: Callable[[], dt.datetime],
                 searcher: Optional[Searcher] = None) -> None:
        self.sessions = session_factory
        self.searcher = searcher or Searcher(session_factory)
        self._clock = clock

    def answer(self, question: str, language: str, contact_key: str) -> Answer:
        """The approved passage that answers ``question`` in ``language``, or a not-found
        Answer; the outcome is counted either way. Counting never costs the patient the
        answer: a failed write is logged (without text) and the answer still goes out."""
        result = self.searcher.answer(question, language)
        outcome = ANSWERED if result.found else NOT_FOUND
        # Not found: the passage the search came closest with (below the threshold) tells the
        # clinic which document the question was near; none when nothing matched at all.
        document_id = result.passage.document_id if result.passage else None
        try:
            with self.sessions.begin() as session:
                session.add(KnowledgeOutcomeRow(at=self._clock(), language=language[:16], outcome=outcome,
                                                document_id=document_id, contact_key=contact_key,
                                                handed_over=False))
        except Exception:  # noqa: BLE001 - analytics must never cost the patient the answer
            logger.exception("Could not count a document answer (outcome=%s)", outcome)
        return result

    def better_than_curated(self, question: str, language: str, curated_text: str) -> Optional[Answer]:
        """The approved passage's answer when it answers ``question`` better than
        ``curated_text`` (the FAQ answer the NLU chose: clinic/knowledge/curated.py), else None.
        Not counted: the answer that goes out is counted where it is sent (``answer``)."""
        result = self.searcher.answer(question, language)
        if not result.found:
            return None
        coverage, subject_words = self.searcher.coverage_of(question, language, curated_text)
        strictest = self.searcher.strictest_threshold()
        return result if passage_answers_better(result, coverage, subject_words, strictest) else None

    def handed_over(self, contact_key: str) -> bool:
        """The contact asked for a person right after a document answer (or a not-found):
        marks that contact's latest outcome. The caller decides "right after" from the
        conversation; False when the contact has no outcome to mark."""
        with self.sessions.begin() as session:
            row = session.scalars(select(KnowledgeOutcomeRow)
                                  .where(KnowledgeOutcomeRow.contact_key == contact_key)
                                  .order_by(KnowledgeOutcomeRow.id.desc()).limit(1)).first()
            if row is None:
                return False
            row.handed_over = True
            return True


@dataclasses.dataclass(frozen=True)
class TopicFigures:
    """One document (its title is the topic the clinic sees) in one language."""

    title: str
    language: str
    answered: int
    not_found: int
    handed_over: int


def outcome_figures(session: Session, since: dt.datetime, until: dt.datetime) -> List[TopicFigures]:
    """Counts per document title and language in [since, until): answered, not found (the
    closest document below the threshold, or NO_DOCUMENT), handed over after either. Most
    not-found first: what the clinic is missing heads the list."""
    rows = session.execute(
        select(KnowledgeDocumentRow.title, KnowledgeOutcomeRow.language, KnowledgeOutcomeRow.outcome,
               KnowledgeOutcomeRow.handed_over, func.count(KnowledgeOutcomeRow.id))
        .join(KnowledgeDocumentRow, KnowledgeDocumentRow.id == KnowledgeOutcomeRow.document_id, isouter=True)
        .where(KnowledgeOutcomeRow.at >= since, KnowledgeOutcomeRow.at < until)
        .group_by(KnowledgeDocumentRow.title, KnowledgeOutcomeRow.language, KnowledgeOutcomeRow.outcome,
                  KnowledgeOutcomeRow.handed_over)).all()
    counts: Dict[Tuple[str, str], List[int]] = {}
    for title, language, outcome, handed, count in rows:
        entry = counts.setdefault((title or NO_DOCUMENT, language), [0, 0, 0])
        entry[0 if outcome == ANSWERED else 1] += count
        if handed:
            entry[2] += count
    figures = [TopicFigures(title, language, *numbers) for (title, language), numbers in counts.items()]
    return sorted(figures, key=lambda f: (-f.not_found, -f.answered, f.title, f.language))
