"""Rasa NLU component: the conversation's language.

On every message it sets the entity ``language`` (which fills the ``language`` slot that
every response's variations are conditioned on):
- from the message metadata ``language`` when the WhatsApp door sent it: the door
  remembers each contact's language in the clinic database (clinic.language.memory);
- otherwise from the text itself (REST, ``make shell``): only when the detector is sure, so
  "ok" or a name never switches a conversation, and the slot keeps the language before.
It also forces intents, deterministically (the classifier may not know them):
- the keyword's intent when the message is exactly a keyword the assistant tells patients
  to send (content/keywords.yml: "STOP", "СТОП", "停止", "menu", "меню", "菜单"…);
- ``choose_language`` when the message only names a language ("Русский", "中文", "English");
- ``unsupported_language`` when the message is clearly in a language the clinic does not
  speak; the red-flag detector still runs after this component and wins.
"""

from __future__ import annotations

import logging
from typing import Any, Dict, List, Text

from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.shared.nlu.constants import TEXT
from rasa.shared.nlu.training_data.message import Message

from addons.intents import add_entity, force_intent
from clinic.language.catalogue import Catalogue, default_catalogue
from clinic.language.detection import detect
from clinic.language.keywords import Keywords, default_keywords

logger = logging.getLogger(__name__)

EXTRACTOR_NAME = "LanguageDetector"
CHOOSE_INTENT = "choose_language"
UNSUPPORTED_INTENT = "unsupported_language"
METADATA_KEY = "metadata"


@DefaultV1Recipe.register([DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER], is_trainable=False)
class LanguageDetector(GraphComponent):
    @staticmethod
    def get_default_config() -> Dict[Text, Any]:
        return {}

    def __init__(self, catalogue: Catalogue, keywords: Keywords) -> None:
        self._catalogue = catalogue
        self._keywords = keywords

    @classmethod
    def create(cls, config: Dict[Text, Any], model_storage: ModelStorage, resource: Resource,
               execution_context: ExecutionContext) -> "LanguageDetector":
        # Read when the model loads, not when it trains: a clinic's edit of
        # content/languages.yml takes effect on restart.
        return cls(default_catalogue(), default_keywords())

    def process(self, messages: List[Message]) -> List[Message]:
        for message in messages:
            self._process(message)
        return messages

    def process_training_data(self, training_data):  # noqa: D102 - nothing to add in training
        return training_data

    def _process(self, message: Message) -> None:
        text = message.get(TEXT) or ""
        if not text.strip() or text.startswith("/"):
            return  # button payloads carry their own entities
        metadata = message.get(METADATA_KEY) or {}
        remembered = metadata.get("language") if isinstance(metadata, dict) else None
        detection = detect(text, self._catalogue)
        language = None
        if detection.chosen:
            language = detection.language
            force_intent(message, CHOOSE_INTENT)
        elif self._catalogue.supports(remembered):
            language = remembered
        elif detection.language and detection.strong:
            language = detection.language
        keyword_intent = self._keywords.intent_for(text)
        if keyword_intent and not detection.chosen:
            force_intent(message, keyword_intent)
        elif detection.unsupported and not detection.chosen:
            force_intent(message, UNSUPPORTED_INTENT)
            logger.info("Message in a language the clinic does not speak: %s", detection.unsupported)
        if language:
            add_entity(message, "language", language, 0, len(text), EXTRACTOR_NAME)
