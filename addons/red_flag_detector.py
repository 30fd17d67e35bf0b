"""Rasa NLU component: the emergency safety net.

Runs last in the pipeline, on every message. When a clinician-reviewed phrase list
(``content/red_flags/<language>.yml``, every language on every message) matches, it forces
the ``emergency`` intent with confidence 1.0, whatever the classifier or the
FallbackClassifier decided, and adds two entities: ``red_flag`` (the category, e.g.
``chest_pain``) and ``red_flag_response`` (``emergency`` or ``crisis``) that fill slots of
the same names, so the emergency answer (a domain response) can pick the right wording
without waiting for the action server.

When every red flag in the message is negated, hypothetical or historical ("no chest pain,
I just need a check-up"), it forces ``red_flag_check`` instead: one safety question, whose
"Yes, now" is the emergency and whose "No" goes on with what the patient asked (the
classifier's intent, kept in the entity ``safety_check_intent``).

When no list matches but the classifier itself predicted ``emergency`` (a wording no list
has yet), the full protocol is not raised on a statistical guess: with confidence of at
least ``classifier_check_threshold`` the patient gets the same safety question (its text
gives the emergency number at once), below it the message is treated as not understood.
The clinician-reviewed lists, or the patient's "Yes, now", raise the full protocol; this
keeps ordinary messages ("my baby is teething", "I passed on the message") from raising an
urgent ticket, which tests/test_model.py checks on every language's ordinary corpus.

The phrase list is read when the model loads, not when it trains: a clinician's edit takes
effect on restart and never needs retraining.
"""

from __future__ import annotations

import logging
from pathlib import Path
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

from addons.intents import add_entity, force_intent
from clinic.safety.red_flags import Assessment, RedFlagMatch, default_detector
from clinic.safety.red_flags import RedFlagDetector as PhraseDetector

logger = logging.getLogger(__name__)

EMERGENCY_INTENT = "emergency"
# The classifier alone saying `emergency` asks the safety question from this confidence up
# (config.yml sets it; addons/long_message.py keeps such an emergency for the same reason).
CLASSIFIER_CHECK_THRESHOLD = 0.9
CHECK_INTENT = "red_flag_check"
# Intents a "No, not now" tap can resume by payload (/book_appointment...). Others (a clinic
# question, a misunderstanding) go back to the menu: their answer needs the words.
RESUMABLE_INTENTS = frozenset({
    "book_appointment", "reschedule_appointment", "cancel_appointment", "list_appointments",
    "request_human", "request_callback", "insurance_billing", "billing_status",
    "results_status", "document_status", "queue_status", "clinical_question", "greet",
    "menu", "buy_medication", "delete_my_data", "thank", "goodbye",
})
EXTRACTOR_NAME = "RedFlagDetector"
RED_FLAGS_KEY = "red_flags"


@DefaultV1Recipe.register(
    [DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER], is_trainable=False
)
class RedFlagDetector(GraphComponent):
    @staticmethod
    def get_default_config() -> Dict[Text, Any]:
        # Relative paths are resolved against the working directory (the project root): a
        # folder of <language>.yml files, or one file.
        return {"phrases_path": "content/red_flags", "intent": EMERGENCY_INTENT,
                "check_intent": CHECK_INTENT, "classifier_check_threshold": CLASSIFIER_CHECK_THRESHOLD,
                "fallback_intent": "nlu_fallback"}

    def __init__(self, config: Dict[Text, Any], detector: PhraseDetector) -> None:
        self._intent = config["intent"]
        self._check_intent = config.get("check_intent", CHECK_INTENT)
        self._classifier_threshold = float(config.get("classifier_check_threshold",
                                                      CLASSIFIER_CHECK_THRESHOLD))
        self._fallback_intent = config.get("fallback_intent", "nlu_fallback")
        self._detector = detector

    @classmethod
    def create(
        cls,
        config: Dict[Text, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> "RedFlagDetector":
        path = Path(config.get("phrases_path") or config.get("phrases_file") or "content/red_flags").resolve()
        # Fails loudly at start-up if a list is missing or malformed: running without the
        # safety net must never be a silent possibility.
        detector = default_detector(str(path))
        logger.info(
            "Red-flag safety net loaded %d phrases in %d categories (%s) from %s",
            len(detector.patterns), len(detector.categories), ", ".join(detector.languages), path,
        )
        return cls(config, detector)

    def process(self, messages: List[Message]) -> List[Message]:
        for message in messages:
            text = message.get(TEXT)
            if not text or text.startswith("/"):
                continue  # button payloads carry no patient words
            assessment = self._detector.assess(text)
            if assessment.emergency:
                self._force(message, assessment, self._intent)
            elif assessment.needs_check:
                self._force(message, assessment, self._check_intent)
            elif (message.get(INTENT) or {}).get(INTENT_NAME_KEY) == self._intent:
                self._classifier_only(message)
        return messages

    def _classifier_only(self, message: Message) -> None:
        confidence = float((message.get(INTENT) or {}).get(PREDICTED_CONFIDENCE_KEY) or 0.0)
        ranking = [r for r in (message.get(INTENT_RANKING_KEY) or [])
                   if r.get(INTENT_NAME_KEY) not in (self._intent, self._fallback_intent)]
        runner_up = ranking[0][INTENT_NAME_KEY] if ranking else None
        if confidence < self._classifier_threshold:
            force_intent(message, self._fallback_intent)
            message.set(INTENT, {INTENT_NAME_KEY: self._fallback_intent,
                                 PREDICTED_CONFIDENCE_KEY: confidence}, add_to_output=True)
            return
        force_intent(message, self._check_intent)
        language = next((e.get("value") for e in message.get(ENTITIES) or []
                         if e.get("entity") == "language"), None)
        text = message.get(TEXT) or ""
        for name, value in (("red_flag_response", "emergency"),
                            ("red_flag_label", self._detector.check_label(language)),
                            ("safety_check_intent", runner_up if runner_up in RESUMABLE_INTENTS else "menu")):
            add_entity(message, name, value, 0, len(text), EXTRACTOR_NAME)
        message.set(RED_FLAGS_KEY, {"categories": [], "context": "classifier",
                                    "overridden_intent": self._intent}, add_to_output=True)
        logger.info("Red flag to check: the classifier alone said emergency (%.2f)", confidence)

    def process_training_data(self, training_data):  # noqa: D102 - nothing to add in training
        return training_data

    def _force(self, message: Message, assessment: Assessment, intent: Text) -> None:
        previous = force_intent(message, intent)
        # The first crisis match decides the wording (crisis outranks emergency); the
        # entities point at the words that matched, as Rasa's entity format requires.
        chosen: RedFlagMatch = assessment.chosen  # type: ignore[assignment]
        values = [("red_flag", chosen.category.id), ("red_flag_response", chosen.category.response)]
        if intent == self._check_intent:
            values += [("red_flag_label", chosen.category.label),
                       ("safety_check_intent", previous if previous in RESUMABLE_INTENTS else "menu")]
        for name, value in values:
            add_entity(message, name, value, chosen.start, chosen.end, EXTRACTOR_NAME)
        matches = assessment.emergency if intent == self._intent else list(assessment.matches)
        message.set(
            RED_FLAGS_KEY,
            {
                "categories": [m.category.id for m in matches],
                "context": chosen.context,
                "overridden_intent": previous,
            },
            add_to_output=True,
        )
        # Category ids only: the patient's words never reach the logs.
        logger.info("Red flag %s: %s (%s)", "detected" if intent == self._intent else "to check",
                    ",".join(m.category.id for m in matches), chosen.context)
