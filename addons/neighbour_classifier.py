"""Rasa intent classifier: logistic regression blended with the nearest training examples.

Rasa's ``LogisticRegressionClassifier`` draws one straight boundary per intent through all
the features. Many of the patients' messages that it got wrong in cross-validation are
short or idiomatic ("до завтра" is a goodbye, "走了哈" too, "skolko ya dolzhen" asks for
the bill) and sit, in the multilingual sentence-embedding space, right beside training
examples of the right intent, while a few counts pull the linear score elsewhere. So the
intent distribution is a blend:

    p(intent) = (1 - neighbour_weight - count_neighbour_weight) * p_logistic(intent)
                + neighbour_weight * share of the ``neighbours`` most similar training
                  examples by meaning (cosine of the sentence embeddings, each vote
                  weighted by its similarity) that carry that intent
                + count_neighbour_weight * the same share by wording (cosine of the word
                  and character n-gram counts, which read typos and transliteration)

Both parts are probability distributions, so the blend is one too, and the confidence the
FallbackClassifier and the red-flag detector read keeps its meaning. ``C`` is the logistic
regression's inverse regularisation strength (Rasa's class fixes it at 1.0).

Chosen by 5-fold cross-validation over the three languages' data (docs/measurements.md,
"Nearest training examples").

What is stored with the model: the training examples' unit-length sentence vectors
(float32), their unit-length n-gram count vectors and their intent names, in ``.npz``
files read with ``allow_pickle=False``; no text. A message without a sentence vector or
counts gets that part's weight from the logistic regression instead.
"""

from __future__ import annotations

import logging
from typing import Any, Dict, List, Optional, Text

import numpy as np
import scipy.sparse
from rasa.engine.graph import ExecutionContext
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.classifiers.logistic_regression_classifier import LogisticRegressionClassifier
from rasa.shared.nlu.constants import INTENT, TEXT
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

logger = logging.getLogger(__name__)

MEMORY_FILE = "neighbours.npz"
COUNTS_FILE = "count_neighbours.npz"


def _sentence_vectors(messages: List[Message]) -> Optional[np.ndarray]:
    """Unit-length sentence vectors, one row per message; None when any message lacks one."""
    rows = []
    for message in messages:
        sentence = message.get_dense_features(attribute=TEXT)[1]
        if sentence is None:
            return None
        rows.append(np.asarray(sentence.features, dtype=np.float32).reshape(-1))
    if not rows:
        return None
    vectors = np.vstack(rows)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


def _count_vectors(messages: List[Message]) -> Optional[scipy.sparse.csr_matrix]:
    """Unit-length n-gram count vectors (the sparse sentence features), one row per message."""
    rows = []
    for message in messages:
        sentence = message.get_sparse_features(attribute=TEXT)[1]
        if sentence is None:
            return None
        rows.append(scipy.sparse.csr_matrix(sentence.features, dtype=np.float32))
    if not rows:
        return None
    counts = scipy.sparse.vstack(rows).tocsr()
    norms = np.sqrt(np.asarray(counts.multiply(counts).sum(axis=1))).reshape(-1)
    return scipy.sparse.diags(1.0 / np.maximum(norms, 1e-12)) @ counts


def neighbour_votes(queries: np.ndarray, memory: np.ndarray, memory_labels: np.ndarray,
                    classes: np.ndarray, neighbours: int) -> np.ndarray:
    """Per query, the similarity-weighted share of each class among its nearest examples."""
    return votes_from_similarity(queries @ memory.T, memory_labels, classes, neighbours)


def votes_from_similarity(similarity: np.ndarray, memory_labels: np.ndarray, classes: np.ndarray,
                          neighbours: int) -> np.ndarray:
    """Rows of query-to-example similarities → each class's weighted share among the nearest."""
    k = min(neighbours, similarity.shape[1])
    nearest = np.argpartition(-similarity, k - 1, axis=1)[:, :k]
    index = {name: i for i, name in enumerate(classes)}
    votes = np.zeros((similarity.shape[0], len(classes)), dtype=np.float64)
    for row in range(similarity.shape[0]):
        for j in nearest[row]:
            position = index.get(memory_labels[j])
            if position is not None:
                votes[row, position] += max(float(similarity[row, j]), 0.0)
    totals = votes.sum(axis=1, keepdims=True)
    # A query with no positive similarity to anything gets no vote (all zeros); the
    # classifier then keeps the logistic regression's distribution for it.
    return np.divide(votes, totals, out=np.zeros_like(votes), where=totals > 0)


def blended_shift(votes: np.ndarray, logistic: np.ndarray, weight: float) -> np.ndarray:
    """What moving ``weight`` of the distribution to the neighbours' votes adds to it; a
    message with no similar example at all keeps the regression's distribution."""
    votes = np.where(votes.sum(axis=1, keepdims=True) > 0, votes, logistic)
    return weight * (votes - logistic)


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER, is_trainable=True)
class NeighbourBlendedLogisticRegression(LogisticRegressionClassifier):
    @staticmethod
    def get_default_config() -> Dict[Text, Any]:
        return {
            **LogisticRegressionClassifier.get_default_config(),
            "C": 1.0,
            "neighbours": 5,
            "neighbour_weight": 0.3,
            "count_neighbour_weight": 0.0,
        }

    @classmethod
    def validate_config(cls, config: Dict[Text, Any]) -> None:
        if float(config.get("C", 1.0)) <= 0:
            raise ValueError("NeighbourBlendedLogisticRegression: C must be positive")
        weights = [float(config.get(k, 0.0)) for k in ("neighbour_weight", "count_neighbour_weight")]
        if min(weights) < 0.0 or sum(weights) >= 1.0:
            raise ValueError("NeighbourBlendedLogisticRegression: neighbour weights must be >= 0 "
                             "and add up to less than 1")
        if int(config.get("neighbours", 1)) < 1:
            raise ValueError("NeighbourBlendedLogisticRegression: neighbours must be at least 1")

    def __init__(self, config: Dict[Text, Any], name: Text, model_storage: ModelStorage,
                 resource: Resource) -> None:
        super().__init__(config, name, model_storage, resource)
        self.clf.set_params(C=float(self.config["C"]))
        self.memory: Optional[np.ndarray] = None
        self.memory_labels: Optional[np.ndarray] = None
        self.count_memory: Optional[scipy.sparse.csr_matrix] = None

    def train(self, training_data: TrainingData) -> Resource:
        examples = [e for e in training_data.intent_examples if e.get(INTENT) and e.get(TEXT)]
        vectors = _sentence_vectors(examples)
        if vectors is not None:
            self.memory = vectors
            self.memory_labels = np.array([e.get(INTENT) for e in examples])
            self.count_memory = _count_vectors(examples)
        # The parent fits the regression and calls persist(), which stores the memory too.
        return super().train(training_data)

    def persist(self) -> None:
        super().persist()
        if self.memory is None or self.memory_labels is None:
            return
        with self._model_storage.write_to(self._resource) as model_dir:
            np.savez(model_dir / MEMORY_FILE, vectors=self.memory,
                     labels=self.memory_labels.astype(str))
            if self.count_memory is not None:
                scipy.sparse.save_npz(model_dir / COUNTS_FILE, self.count_memory)

    @classmethod
    def load(cls, config: Dict[Text, Any], model_storage: ModelStorage, resource: Resource,
             execution_context: ExecutionContext, **kwargs: Any) -> "NeighbourBlendedLogisticRegression":
        component = super().load(config, model_storage, resource, execution_context, **kwargs)
        assert isinstance(component, NeighbourBlendedLogisticRegression)
        try:
            with model_storage.read_from(resource) as model_dir:
                path = model_dir / MEMORY_FILE
                if path.exists():
                    with np.load(path, allow_pickle=False) as stored:
                        component.memory = stored["vectors"].astype(np.float32)
                        component.memory_labels = stored["labels"]
                if (model_dir / COUNTS_FILE).exists():
                    component.count_memory = scipy.sparse.load_npz(model_dir / COUNTS_FILE).tocsr()
        except ValueError:
            logger.debug("No nearest-example memory stored with %s.", resource.name)
        return component

    def process(self, messages: List[Message]) -> List[Message]:
        if not messages or not hasattr(self.clf, "classes_"):
            return messages
        logistic = self.clf.predict_proba(self._create_X(messages))
        probabilities = logistic.copy()
        k = int(self.config["neighbours"])
        if self.memory_labels is not None:
            weight = float(self.config["neighbour_weight"])
            queries = _sentence_vectors(messages) if weight > 0 and self.memory is not None else None
            if queries is not None and self.memory is not None:
                votes = neighbour_votes(queries, self.memory, self.memory_labels, self.clf.classes_, k)
                probabilities += blended_shift(votes, logistic, weight)
            weight = float(self.config["count_neighbour_weight"])
            counts = _count_vectors(messages) if weight > 0 and self.count_memory is not None else None
            if counts is not None and self.count_memory is not None \
                    and counts.shape[1] == self.count_memory.shape[1]:
                similarity = (counts @ self.count_memory.T).toarray()
                votes = votes_from_similarity(similarity, self.memory_labels, self.clf.classes_, k)
                probabilities += blended_shift(votes, logistic, weight)
        ranking_length = self.config["ranking_length"]
        for message, row in zip(messages, probabilities, strict=True):
            ranking = sorted(({"name": str(name), "confidence": float(confidence)}
                              for name, confidence in zip(self.clf.classes_, row, strict=True)),
                             key=lambda entry: -entry["confidence"])
            message.set(INTENT, ranking[0], add_to_output=True)
            message.set("intent_ranking", ranking[:ranking_length] if ranking_length > 0 else ranking,
                        add_to_output=True)
        return messages
