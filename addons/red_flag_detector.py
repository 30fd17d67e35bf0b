"""Rasa NLU component: the emergency safety net.

Runs last in the pipeline, on every message. When the clinician-reviewed phrase list
(``content/red_flags.yml``) matches, it forces the ``emergency`` intent with confidence 1.0,
whatever DIET or the FallbackClassifier decided, and adds two entities:
``red_flag`` (the category, e.g. ``chest_pain``) and ``red_flag_response`` (``emergency`` or
``crisis``) that fill slots of the same names, so the emergency answer (a domain response)
can pick the right wording without waiting for the action server.

The phrase list is read when the model loads, not when it trains: a clinician's edit takes
effect on restart and never needs retraining.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Dict, List, Optional, Text

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

from clinic.safety.red_flags import RedFlagDetector as PhraseDetector
from clinic.safety.red_flags import RedFlagMatch, default_detector

logger = logging.getLogger(__name__)

EMERGENCY_INTENT = "emergency"
EXTRACTOR_NAME = "RedFlagDetector"
RED_FLAGS_KEY = "red_flags"


@DefaultV1Recipe.register(
    [DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER], is_trainable=False
)
class RedFlagDetector(GraphComponent):
    @staticmethod
    def get_default_config() -> Dict[Text, Any]:
        # Relative paths are resolved against the working directory (the project root).
        return {"phrases_file": "content/red_flags.yml", "intent": EMERGENCY_INTENT}

    def __init__(self, config: Dict[Text, Any], detector: PhraseDetector) -> None:
        self._intent = config["intent"]
        self._detector = detector

    @classmethod
    def create(
        cls,
        config: Dict[Text, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> "RedFlagDetector":
        path = Path(config["phrases_file"]).resolve()
        # Fails loudly at start-up if the list is missing or malformed: running without the
        # safety net must never be a silent possibility.
        detector = default_detector(str(path))
        logger.info(
            "Red-flag safety net loaded %d phrases in %d categories from %s",
            len(detector.patterns), len(detector.categories), path,
        )
        return cls(config, detector)

    def process(self, messages: List[Message]) -> List[Message]:
        for message in messages:
            text = message.get(TEXT)
            if not text or text.startswith("/"):
                continue  # button payloads carry no patient words
            matches = self._detector.detect(text)
            if matches:
                self._force_emergency(message, matches)
        return messages

    def process_training_data(self, training_data):  # noqa: D102 - nothing to add in training
        return training_data

    def _force_emergency(self, message: Message, matches: List[RedFlagMatch]) -> None:
        previous: Optional[Dict[Text, Any]] = message.get(INTENT)
        forced = {INTENT_NAME_KEY: self._intent, PREDICTED_CONFIDENCE_KEY: 1.0}
        ranking = [
            r for r in (message.get(INTENT_RANKING_KEY) or []) if r.get(INTENT_NAME_KEY) != self._intent
        ]
        message.set(INTENT, forced, add_to_output=True)
        message.set(INTENT_RANKING_KEY, [forced, *ranking], add_to_output=True)

        # The first crisis match decides the wording (crisis outranks emergency); both
        # entities point at the words that matched, as Rasa's entity format requires.
        chosen = next((m for m in matches if m.category.response == "crisis"), matches[0])
        entities = list(message.get(ENTITIES) or [])
        for name, value in (
            ("red_flag", chosen.category.id),
            ("red_flag_response", chosen.category.response),
        ):
            entities.append(
                {
                    "entity": name,
                    "value": value,
                    "start": chosen.start,
                    "end": chosen.end,
                    "confidence_entity": 1.0,
                    "extractor": EXTRACTOR_NAME,
                }
            )
        message.set(ENTITIES, entities, add_to_output=True)
        message.set(
            RED_FLAGS_KEY,
            {
                "categories": [m.category.id for m in matches],
                "overridden_intent": (previous or {}).get(INTENT_NAME_KEY),
            },
            add_to_output=True,
        )
        # Category ids only: the patient's words never reach the logs.
        logger.info("Red flag detected: %s", ",".join(m.category.id for m in matches))
