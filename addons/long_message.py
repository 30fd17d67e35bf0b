"""Rasa NLU component: long messages are not classified on their noise.

The classifier learned from short messages (the longest training example is ~140
characters). On a 5,000-character complaint about parking, a handful of n-grams decide, and
the answer can be "reschedule_appointment" with confidence 1.0, which starts a form the
patient never asked for. Longer than ``max_characters``, a message's intent becomes
``long_message`` (confidence 1.0, the classifier's guess kept below it in the ranking) and
data/rules/handoff.yml passes it to a person, routed by its words (content/routing.yml).

Length is counted per script: a Chinese character carries about as much as a short English
word, so each Han character counts ``han_character_weight`` times (600 characters of
English or Russian, or 200 Chinese characters, with the defaults).

Entities found in a long message are dropped too (they would fill slots from noise: a
service, a date, a team named in passing); ``keep_entities`` (the conversation's
``language``) stay.

Safety: this component sits after the classifiers, the FallbackClassifier and the language
detector, and before addons/red_flag_detector.py, which runs last on every message and
overrides any intent, ``long_message`` included: a red flag in a long message still gets the
emergency guidance or the safety question. The component itself never replaces what a
deterministic component decided (``kept_intents``: a red flag, a language choice, an
unsupported language). When the classifier alone says ``emergency`` with at least
``emergency_confidence_kept`` (the red-flag detector's ``classifier_check_threshold``), the
intent is left for the detector's safety question; ``long_message`` is put second in the
ranking so that the question's "No" goes back to the menu, not to the classifier's
runner-up guess. Below that confidence the detector would only call the message not
understood, so ``long_message`` (a person reads it) is the better answer.

Nothing here logs message text.
"""

from __future__ import annotations

import logging
from typing import Any, Dict, List, Text

from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.shared.nlu.constants import (
    ENTITIES,
    INTENT,
    INTENT_NAME_KEY,
    INTENT_RANKING_KEY,
    PREDICTED_CONFIDENCE_KEY,
    TEXT,
)
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from addons.intents import force_intent
from addons.red_flag_detector import CLASSIFIER_CHECK_THRESHOLD
from clinic.language.scripts import HAN as _HAN

logger = logging.getLogger(__name__)

LONG_MESSAGE_INTENT = "long_message"


def weighted_length(text: str, han_character_weight: float) -> float:
    """Characters without surrounding whitespace, a Han character counting as several."""
    text = text.strip()
    han = len(_HAN.findall(text))
    return len(text) - han + han * han_character_weight


@DefaultV1Recipe.register([DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER], is_trainable=False)
class LongMessageClassifier(GraphComponent):
    @staticmethod
    def get_default_config() -> Dict[Text, Any]:
        return {
            "max_characters": 600,
            "han_character_weight": 3.0,
            "intent": LONG_MESSAGE_INTENT,
            # Decided by deterministic components, never replaced.
            "kept_intents": ["red_flag_check", "choose_language", "unsupported_language"],
            # `emergency` is kept at this confidence or above (always when the red-flag
            # lists set it: 1.0). Same value as RedFlagDetector's classifier_check_threshold.
            "emergency_intent": "emergency",
            "emergency_confidence_kept": CLASSIFIER_CHECK_THRESHOLD,
            "keep_entities": ["language"],
        }

    def __init__(self, config: Dict[Text, Any]) -> None:
        defaults = self.get_default_config()
        merged = {**defaults, **(config or {})}
        self._max = float(merged["max_characters"])
        self._han_weight = float(merged["han_character_weight"])
        self._intent = str(merged["intent"])
        self._kept = frozenset(merged["kept_intents"])
        self._emergency = str(merged["emergency_intent"])
        self._emergency_kept_at = float(merged["emergency_confidence_kept"])
        self._keep_entities = frozenset(merged["keep_entities"])

    @classmethod
    def create(cls, config: Dict[Text, Any], model_storage: ModelStorage, resource: Resource,
               execution_context: ExecutionContext) -> "LongMessageClassifier":
        return cls(config)

    def process_training_data(self, training_data: TrainingData) -> TrainingData:
        return training_data  # trains nothing: the training examples are all short

    def is_long(self, text: str) -> bool:
        return weighted_length(text, self._han_weight) > self._max

    def process(self, messages: List[Message]) -> List[Message]:
        for message in messages:
            text = message.get(TEXT) or ""
            if text.startswith("/") or not self.is_long(text):
                continue  # button payloads carry no patient words
            self._process(message)
        return messages

    def _process(self, message: Message) -> None:
        intent = message.get(INTENT) or {}
        name = intent.get(INTENT_NAME_KEY)
        if name == self._emergency:
            confidence = float(intent.get(PREDICTED_CONFIDENCE_KEY) or 0.0)
            if confidence >= self._emergency_kept_at:
                self._second_in_ranking(message, confidence)
                logger.info("Long message: emergency (%.2f) left to the safety net", confidence)
                return
        elif name in self._kept:
            return
        force_intent(message, self._intent)
        entities = message.get(ENTITIES) or []
        kept = [e for e in entities if e.get("entity") in self._keep_entities]
        if len(kept) != len(entities):
            message.set(ENTITIES, kept, add_to_output=True)
        # The replaced intent's name, and counts only: the text never reaches the logs.
        logger.info("Long message: %s replaced by %s, %d entities dropped", name, self._intent,
                    len(entities) - len(kept))

    def _second_in_ranking(self, message: Message, confidence: float) -> None:
        """``long_message`` right under the classifier's emergency, so the red-flag detector
        takes it, not the classifier's noisy runner-up, as what to go on with after "No"."""
        ranking = [r for r in (message.get(INTENT_RANKING_KEY) or [])
                   if r.get(INTENT_NAME_KEY) != self._intent]
        entry = {INTENT_NAME_KEY: self._intent, PREDICTED_CONFIDENCE_KEY: confidence}
        position = 1 if ranking and ranking[0].get(INTENT_NAME_KEY) == self._emergency else 0
        ranking.insert(position, entry)
        message.set(INTENT_RANKING_KEY, ranking, add_to_output=True)
