"""Lookup-table entities (the `team`) that also work inside Chinese text.

Rasa's ``RegexEntityExtractor`` with ``use_word_boundaries`` wraps each entry in ``\\b``;
between two Chinese characters there is no word boundary, so "找护士" never matched 护士.
Here an entry must not touch a Latin or Cyrillic letter or a digit (so "nurse" is still
not found in "nursery"), and Chinese entries match wherever they stand.
"""

from __future__ import annotations

from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.nlu.extractors.regex_entity_extractor import RegexEntityExtractor
from rasa.nlu.utils import pattern_utils
from rasa.shared.nlu.training_data.training_data import TrainingData

_LETTER = r"[0-9A-Za-zА-Яа-яЁё]"


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.ENTITY_EXTRACTOR, is_trainable=True)
class ScriptAwareRegexEntityExtractor(RegexEntityExtractor):
    def train(self, training_data: TrainingData) -> Resource:
        patterns = pattern_utils.extract_patterns(
            training_data,
            use_lookup_tables=self._config["use_lookup_tables"],
            use_regexes=self._config["use_regexes"],
            use_only_entities=True,
            use_word_boundaries=False,
        )
        for pattern in patterns:
            body = pattern["pattern"]
            if body.startswith("(?i)"):
                # "(?i)(a|b)" -> "(?i)(?<!L)(a|b)(?!L)": the group stays the whole match.
                inner = body[len("(?i)"):]
                pattern["pattern"] = f"(?i)(?<!{_LETTER}){inner}(?!{_LETTER})"
            else:
                pattern["pattern"] = f"(?<!{_LETTER})(?:{body})(?!{_LETTER})"
        self.patterns = patterns
        self.persist()
        return self._resource
