"""Answer or refuse: one logistic regression over a few signals of the best passage.

The search ranks the passages by ``weight`` · coverage + ``sentence_weight`` · the closest
sentence's cosine + the rest · the passage's cosine (the weights chosen by cross-validation on
the tuning set: ``choose_ranking``; session 13 ranked by 0.6 · coverage + 0.4 · cosine) and
then has to decide whether the best one answers the question. Up to session 12 that decision
was four floors chosen on ~50 tuning questions per language; chosen on half of the tuning set,
they did much worse on the other half (docs/measurements.md). Here the decision is the
probability, from one logistic regression the same for every language, that the best passage
is the right answer; the search answers when it is at or above the threshold — one for every
language, or (when cross-validation prefers it: session 17) one per language, each set for
the refusal target on that language's tuning questions, so the language whose near misses
score highest does not hold the others to its threshold.

``FEATURES`` are what the search knows of the best passage, each standardised with the tuning
set's mean and spread:

* ``coverage``: share of the question's IDF-weighted terms the passage has;
* ``cosine``: the sentence encoder's cosine between the question and the passage;
* ``cosine_margin``: that cosine minus the highest cosine of any other passage;
* ``bm25_margin``: its BM25 score minus the best other passage's, over the highest score;
* ``unknown``: IDF-weighted share of the question's terms no passage of the language has;
* ``coverage_margin``: its coverage minus the highest coverage of any other passage;
* ``sentence_cosine``: the cosine of the passage's closest sentence;
* ``sentence_margin``: that minus the closest sentence of any other passage;
* ``soft_coverage``: coverage where a question word the passage lacks counts as much as its
  cosine, in the sentence encoder, with the passage's closest word (session 14);
* ``money_unstated``: 1 when the question asks about money (a price, a sale, paying) and the
  passage says nothing of it (clinic/knowledge/money.py), else 0.

Fitting (``fit``) and the threshold (``lowest_threshold``) are deterministic functions of the
tuning set: ``scripts/evaluate_knowledge.py --fit`` refits them from
tests/data/knowledge/tuning.yml, cross-validates the procedure and writes
clinic/knowledge/decision_rule.json, which the search loads. Plain numpy: the action server
needs no learning library for a dot product.
"""

from __future__ import annotations

import dataclasses
import json
import math
import random
from pathlib import Path
from typing import Dict, List, Mapping, Sequence, Tuple

import numpy as np

FEATURES: Tuple[str, ...] = ("coverage", "cosine", "cosine_margin", "bm25_margin", "unknown",
                             "coverage_margin", "sentence_cosine", "sentence_margin", "soft_coverage",
                             "money_unstated")
RULE_FILE = Path(__file__).with_name("decision_rule.json")


@dataclasses.dataclass(frozen=True)
class LearnedRule:
    """The best passage (by ``weight`` and ``sentence_weight``) answers when ``probability`` ≥
    ``threshold_for`` the question's language: its own threshold when the rule has one
    (``thresholds``), else ``threshold``."""

    weight: float  # of coverage in the ranking score
    features: Tuple[str, ...]
    mean: Tuple[float, ...]
    scale: Tuple[float, ...]
    coefficients: Tuple[float, ...]
    intercept: float
    threshold: float
    refusals: float = 0.96  # how it was fitted: the refusal target the threshold was set for …
    l2: float = 3.0  # … and the regression's L2 penalty (to refit it: ``fit_rule``)
    sentence_weight: float = 0.0  # of the closest sentence's cosine in the ranking; the passage's cosine has the rest
    # Per language (sorted pairs), each set for the refusal target on that language's questions;
    # ``threshold`` is then the strictest of them, for a language the tuning set does not have.
    thresholds: Tuple[Tuple[str, float], ...] = ()

    def threshold_for(self, language: str) -> float:
        return dict(self.thresholds).get(language, self.threshold)

    def probability(self, values: Mapping[str, float]) -> float:
        z = self.intercept + sum(c * (values[name] - m) / s for name, m, s, c
                                 in zip(self.features, self.mean, self.scale, self.coefficients, strict=True))
        return 1.0 / (1.0 + math.exp(-z))

    def to_json(self) -> str:
        raw = dataclasses.asdict(self)
        raw["thresholds"] = dict(self.thresholds)
        return json.dumps(raw, indent=2, ensure_ascii=False) + "\n"

    @classmethod
    def from_json(cls, text: str) -> "LearnedRule":
        raw = json.loads(text)
        rule = cls(weight=float(raw["weight"]), sentence_weight=float(raw.get("sentence_weight", 0.0)),
                   features=tuple(raw["features"]), mean=tuple(raw["mean"]),
                   scale=tuple(raw["scale"]), coefficients=tuple(raw["coefficients"]),
                   intercept=float(raw["intercept"]), threshold=float(raw["threshold"]),
                   refusals=float(raw["refusals"]), l2=float(raw["l2"]),
                   thresholds=tuple(sorted((str(k), float(v)) for k, v in (raw.get("thresholds") or {}).items())))
        if not (len(rule.features) == len(rule.mean) == len(rule.scale) == len(rule.coefficients)):
            raise ValueError("decision rule: features, mean, scale and coefficients differ in length")
        unknown = set(rule.features) - set(FEATURES)
        if unknown:
            raise ValueError(f"decision rule: unknown features {sorted(unknown)}")
        return rule


def load_rule(path: Path = RULE_FILE) -> LearnedRule:
    return LearnedRule.from_json(path.read_text(encoding="utf-8"))


def fit(x: np.ndarray, y: np.ndarray, l2: float = 3.0, iterations: int = 100) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """L2-regularised logistic regression by Newton's method on standardised columns (the
    intercept not penalised): (mean, scale, [intercept, coefficients…]). Deterministic: the
    same rows give the same numbers, whatever the machine's thread count."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale[scale < 1e-9] = 1.0  # a constant column: left as it is, its coefficient goes to 0
    z = np.hstack([np.ones((len(x), 1)), (x - mean) / scale])
    beta = np.zeros(z.shape[1])
    penalty = np.eye(z.shape[1]) * l2
    penalty[0, 0] = 0.0
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-z @ beta))
        gradient = z.T @ (p - y) + penalty @ beta
        hessian = (z * (p * (1 - p))[:, None]).T @ z + penalty
        step = np.linalg.solve(hessian, gradient)
        beta -= step
        if np.abs(step).max() < 1e-10:
            break
    return mean, scale, beta


def probabilities(model: Tuple[np.ndarray, np.ndarray, np.ndarray], x: np.ndarray) -> np.ndarray:
    mean, scale, beta = model
    z = np.hstack([np.ones((len(x), 1)), (np.asarray(x, dtype=np.float64) - mean) / scale])
    return 1.0 / (1.0 + np.exp(-z @ beta))


@dataclasses.dataclass(frozen=True)
class Case:
    """One tuning question: its language, whether the documents answer it, whether the best
    passage is the right one, whether it reaches the rule (shares a term with some passage:
    otherwise it is refused before any rule), and the best passage's features."""

    language: str
    answerable: bool
    right_passage: bool
    reaches_rule: bool
    values: Tuple[float, ...]  # in the order of FEATURES


def outcomes(cases: Sequence[Case], answered: Sequence[bool], indices: Sequence[int]) -> Dict[str, Tuple[int, int, int, int]]:
    """Per language: (answerable answered with the right passage, answerable, unanswerable
    refused, unanswerable) over ``indices``."""
    result: Dict[str, List[int]] = {}
    for i in indices:
        case = cases[i]
        row = result.setdefault(case.language, [0, 0, 0, 0])
        if case.answerable:
            row[0] += int(answered[i] and case.right_passage)
            row[1] += 1
        else:
            row[2] += int(not answered[i])
            row[3] += 1
    return {language: (a, b, c, d) for language, (a, b, c, d) in result.items()}


def lowest_threshold(cases: Sequence[Case], p: np.ndarray, indices: Sequence[int], refusals: float) -> float:
    """The lowest probability threshold (0.01 steps) at which at least ``refusals`` of the
    unanswerable questions among ``indices`` are refused in every language: answer as much
    as the refusal target allows. (Given one language's ``indices``: that language's.)"""
    for step in range(1, 100):
        threshold = step / 100
        answered = [case.reaches_rule and p[i] >= threshold for i, case in enumerate(cases)]
        if all(c >= refusals * d - 1e-9 for _, _, c, d in outcomes(cases, answered, indices).values()):
            return threshold
    return 0.99


def fit_rule(cases: Sequence[Case], indices: Sequence[int], weight: float, refusals: float,
             l2: float = 3.0, features: Tuple[str, ...] = FEATURES, sentence_weight: float = 0.0,
             per_language: bool = False) -> LearnedRule:
    """The rule fitted on ``cases[indices]``: the regression on those reaching the rule (label:
    the best passage is the right answer), the threshold by ``lowest_threshold`` — one for
    every language, or with ``per_language`` one per language, each on its own questions
    (the probabilities are not equally calibrated in every language: one shared threshold is
    set by the language whose wrong answers score highest, and refuses more than the target
    in the others)."""
    columns = [FEATURES.index(name) for name in features]
    values = np.array([case.values for case in cases])[:, columns]
    fitted = [i for i in indices if cases[i].reaches_rule]
    y = np.array([1.0 if cases[i].answerable and cases[i].right_passage else 0.0 for i in fitted])
    model = fit(values[fitted], y, l2)
    p = probabilities(model, values)
    thresholds: Tuple[Tuple[str, float], ...] = ()
    if per_language:
        languages = sorted({cases[i].language for i in indices})
        thresholds = tuple((language, lowest_threshold(cases, p, [i for i in indices if cases[i].language == language],
                                                       refusals)) for language in languages)
        threshold = max(t for _, t in thresholds)
    else:
        threshold = lowest_threshold(cases, p, indices, refusals)
    mean, scale, beta = model
    return LearnedRule(weight=weight, sentence_weight=sentence_weight, features=features, mean=tuple(round(float(v), 6) for v in mean),
                       scale=tuple(round(float(v), 6) for v in scale),
                       coefficients=tuple(round(float(v), 6) for v in beta[1:]),
                       intercept=round(float(beta[0]), 6), threshold=threshold, refusals=refusals, l2=l2,
                       thresholds=thresholds)


def folds(cases: Sequence[Case], k: int, seed: int) -> List[List[int]]:
    """``k`` folds by question, stratified by language and answerable / unanswerable."""
    rng = random.Random(seed)
    out: List[List[int]] = [[] for _ in range(k)]
    strata: Dict[Tuple[str, bool], List[int]] = {}
    for i, case in enumerate(cases):
        strata.setdefault((case.language, case.answerable), []).append(i)
    for key in sorted(strata):
        members = strata[key]
        rng.shuffle(members)
        for j, i in enumerate(members):
            out[j % k].append(i)
    return out


Ranking = Tuple[float, float]  # (weight of coverage, weight of the closest sentence's cosine)


def ranking_top1(cases: Sequence[Case], indices: Sequence[int]) -> float:
    """Mean over languages of the share of answerable questions among ``indices`` whose best
    passage is the right one: how good the ranking is, whatever the decision after it."""
    hits: Dict[str, List[int]] = {}
    for i in indices:
        if cases[i].answerable:
            row = hits.setdefault(cases[i].language, [0, 0])
            row[0] += int(cases[i].right_passage)
            row[1] += 1
    return float(np.mean([a / b for a, b in hits.values()])) if hits else 0.0


def choose_ranking(rankings: Mapping[Ranking, Sequence[Case]], indices: Sequence[int]) -> Ranking:
    """The ranking (each with the tuning questions' cases under it) that puts the right
    passage first for the most answerable questions among ``indices`` (mean over languages);
    ties to the earlier in ``rankings``."""
    best: Tuple[float, int, Ranking] = max((round(ranking_top1(cases, indices), 9), -order, ranking)
                                           for order, (ranking, cases) in enumerate(rankings.items()))
    return best[2]


def cross_validate(rankings: Mapping[Ranking, Sequence[Case]], refusals: float, l2: float = 3.0, k: int = 5,
                   seeds: Sequence[int] = (0, 1, 2, 3, 4),
                   features: Tuple[str, ...] = FEATURES, per_language: bool = False) -> Dict[str, Tuple[float, float]]:
    """Per language (top-1, refusals) on held-out folds: for each seed, each fold is decided
    by the ranking chosen (``choose_ranking``) and the rule fitted (regression and threshold)
    on the other folds; counts pooled. ``rankings``: the cases of the same questions, in the
    same order, under each candidate ranking (one candidate: the ranking is fixed)."""
    first = next(iter(rankings.values()))
    totals: Dict[str, np.ndarray] = {}
    for seed in seeds:
        for fold in folds(first, k, seed):
            held_out = set(fold)
            training = [i for i in range(len(first)) if i not in held_out]
            ranking = choose_ranking(rankings, training) if len(rankings) > 1 else next(iter(rankings))
            cases = rankings[ranking]
            rule = fit_rule(cases, training, ranking[0], refusals, l2, features, sentence_weight=ranking[1],
                            per_language=per_language)
            answered = [case.reaches_rule and rule.probability(dict(zip(FEATURES, case.values, strict=True)))
                        >= rule.threshold_for(case.language) for case in cases]
            for language, counts in outcomes(cases, answered, fold).items():
                totals[language] = totals.get(language, np.zeros(4)) + np.array(counts)
    return {language: (float(t[0] / t[1]), float(t[2] / t[3])) for language, t in sorted(totals.items())}
