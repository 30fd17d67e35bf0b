"""Rasa's CountVectorsFeaturizer over the romanised form of each word (addons/romanise.py).

The tokenizer (addons/multilingual_tokenizer.py) stores each token's romanised form under
ROMAN; this featurizer counts that instead of the token's text or lemma for the message
text. Labels (intents, responses) are counted as Rasa does.
"""

from __future__ import annotations

from typing import List, Text

from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.nlu.constants import TOKENS_NAMES
from rasa.nlu.featurizers.sparse_featurizer.count_vectors_featurizer import CountVectorsFeaturizer
from rasa.shared.nlu.constants import TEXT
from rasa.shared.nlu.training_data.message import Message

ROMAN = "roman"


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.MESSAGE_FEATURIZER, is_trainable=True)
class RomanisedCountVectorsFeaturizer(CountVectorsFeaturizer):
    def _get_message_tokens_by_attribute(self, message: Message, attribute: Text) -> List[Text]:
        tokens = message.get(TOKENS_NAMES[attribute]) or []
        if attribute != TEXT or not any(token.get(ROMAN) for token in tokens):
            return super()._get_message_tokens_by_attribute(message, attribute)
        return [token.get(ROMAN) or (token.lemma if self.use_lemma else token.text) for token in tokens]
