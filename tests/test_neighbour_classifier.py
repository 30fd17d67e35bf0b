"""The intent classifier that blends logistic regression with the nearest training examples
(addons/neighbour_classifier.py): the blend decides where a straight boundary cannot, it is
a probability distribution, and the examples' vectors survive persist / load."""

from __future__ import annotations

from typing import List, Tuple

import numpy as np
import pytest
import scipy.sparse
from rasa.engine.graph import ExecutionContext
from rasa.engine.storage.local_model_storage import LocalModelStorage
from rasa.engine.storage.resource import Resource
from rasa.shared.nlu.constants import TEXT
from rasa.shared.nlu.training_data.features import Features
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from addons.neighbour_classifier import NeighbourBlendedLogisticRegression, neighbour_votes


def _message(vector: Tuple[float, float], intent: str = "") -> Message:
    data = {TEXT: f"v {vector}"}
    if intent:
        data["intent"] = intent
    message = Message(data=data)
    message.add_features(Features(np.array([vector], dtype=np.float32), "sentence", TEXT, "embeddings"))
    # Counts that say nothing about the intent (one shared n-gram), as the sparse features.
    message.add_features(Features(scipy.sparse.coo_matrix(np.array([[1.0, 0.0]])), "sentence", TEXT, "counts"))
    return message


# Intents on the two axes, both signs: no straight line separates "x" from "y", the
# nearest examples do.
TRAINING = [((1.0, 0.05), "x"), ((-1.0, -0.05), "x"), ((0.95, -0.1), "x"), ((-0.95, 0.1), "x"),
            ((0.05, 1.0), "y"), ((-0.05, -1.0), "y"), ((0.1, 0.95), "y"), ((-0.1, -0.95), "y")]


def _trained(tmp_path, **config) -> Tuple[NeighbourBlendedLogisticRegression, LocalModelStorage, Resource]:
    tmp_path.mkdir(parents=True, exist_ok=True)
    storage, resource = LocalModelStorage(tmp_path), Resource("neighbours")
    full = {**NeighbourBlendedLogisticRegression.get_default_config(), **config}
    classifier = NeighbourBlendedLogisticRegression.create(full, storage, resource, ExecutionContext(None))
    classifier.train(TrainingData([_message(v, i) for v, i in TRAINING]))
    return classifier, storage, resource


def _intents(classifier: NeighbourBlendedLogisticRegression, vectors: List[Tuple[float, float]]) -> List[str]:
    messages = [_message(v) for v in vectors]
    classifier.process(messages)
    return [m.get("intent")["name"] for m in messages]


QUERIES = [(0.9, 0.2), (-0.8, 0.1), (0.15, 0.9), (-0.2, -0.85)]


def test_neighbours_decide_where_a_straight_boundary_cannot(tmp_path) -> None:
    blended, _, _ = _trained(tmp_path / "a", neighbour_weight=0.6)
    linear, _, _ = _trained(tmp_path / "b", neighbour_weight=0.0)
    assert _intents(blended, QUERIES) == ["x", "x", "y", "y"]
    # The regression alone gets at least one of them wrong: the blend is what fixes it.
    assert _intents(linear, QUERIES) != ["x", "x", "y", "y"]


def test_blend_is_a_distribution_and_ranking_is_sorted(tmp_path) -> None:
    classifier, _, _ = _trained(tmp_path, neighbour_weight=0.3)
    message = _message((0.7, 0.7))
    classifier.process([message])
    ranking = message.get("intent_ranking")
    assert sum(entry["confidence"] for entry in ranking) == pytest.approx(1.0, abs=1e-6)
    assert [e["confidence"] for e in ranking] == sorted((e["confidence"] for e in ranking), reverse=True)
    assert message.get("intent") == ranking[0]


def test_memory_survives_persist_and_load(tmp_path) -> None:
    classifier, storage, resource = _trained(tmp_path, neighbour_weight=0.6)
    loaded = NeighbourBlendedLogisticRegression.load(
        classifier.config, storage, resource, ExecutionContext(None))
    assert loaded.memory is not None and loaded.memory.shape == (len(TRAINING), 2)
    assert list(loaded.memory_labels) == [i for _, i in TRAINING]
    assert _intents(loaded, QUERIES) == _intents(classifier, QUERIES)
    assert loaded.clf.C == classifier.config["C"]


def test_votes_weighted_by_similarity_and_empty_without_similar_examples() -> None:
    memory = np.array([[1.0, 0.0], [0.0, 1.0], [0.8, 0.6]], dtype=np.float32)
    labels = np.array(["a", "b", "a"])
    votes = neighbour_votes(np.array([[1.0, 0.0]]), memory, labels, np.array(["a", "b"]), 2)
    assert votes[0, 0] == pytest.approx(1.0)  # the two nearest are both "a"
    opposite = neighbour_votes(np.array([[-1.0, 0.0]]), memory, labels, np.array(["a", "b"]), 3)
    assert opposite.sum() == 0.0


def test_count_neighbours_read_the_wording(tmp_path) -> None:
    """The counts part: messages sharing n-grams with one intent's examples get its votes."""
    storage, resource = LocalModelStorage(tmp_path), Resource("counts")
    config = {**NeighbourBlendedLogisticRegression.get_default_config(),
              "neighbour_weight": 0.0, "count_neighbour_weight": 0.9, "neighbours": 1}
    classifier = NeighbourBlendedLogisticRegression.create(config, storage, resource, ExecutionContext(None))

    def message(counts, vector, intent=""):
        m = Message(data={TEXT: f"c {counts}", **({"intent": intent} if intent else {})})
        m.add_features(Features(np.array([vector], dtype=np.float32), "sentence", TEXT, "embeddings"))
        m.add_features(Features(scipy.sparse.coo_matrix(np.array([counts], dtype=float)), "sentence", TEXT, "counts"))
        return m

    # The sentence vectors point the other way; only the wording says "a" vs "b".
    training = [message([3, 0, 1], (0.0, 1.0), "a"), message([2, 0, 0], (0.1, 1.0), "a"),
                message([0, 3, 1], (1.0, 0.0), "b"), message([0, 2, 0], (1.0, 0.1), "b")]
    classifier.train(TrainingData(training))
    query = message([2, 0, 1], (1.0, 0.0))
    classifier.process([query])
    # Its nearest example by wording is an "a": 0.9 of the distribution is that vote.
    assert query.get("intent")["name"] == "a"
    assert query.get("intent")["confidence"] >= 0.9
    loaded = NeighbourBlendedLogisticRegression.load(config, storage, resource, ExecutionContext(None))
    assert loaded.count_memory is not None and loaded.count_memory.shape == (4, 3)


def test_invalid_configuration_is_refused() -> None:
    with pytest.raises(ValueError):
        NeighbourBlendedLogisticRegression.validate_config({"neighbour_weight": 1.0})
    with pytest.raises(ValueError):
        NeighbourBlendedLogisticRegression.validate_config({"neighbour_weight": 0.6,
                                                            "count_neighbour_weight": 0.5})
    with pytest.raises(ValueError):
        NeighbourBlendedLogisticRegression.validate_config({"C": 0})
