"""The romanised character feature: a word typed in Latin letters and the same word in its
own script share n-grams (addons/romanise.py, addons/romanised_counts.py)."""

from __future__ import annotations

import pytest
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from addons.multilingual_tokenizer import MultilingualTokenizer
from addons.romanise import romanise
from addons.romanised_counts import ROMAN


@pytest.mark.parametrize(
    "word, roman",
    [
        ("записаться", "zapisacya"),   # ц/тс folded to c, soft sign dropped
        ("zapisatsya", "zapisacya"),   # the same word as patients type it
        ("хочу", "hochu"),
        ("khochu", "hochu"),
        ("Врачу", "vrachu"),
        ("预约", "预约 yu yue"),       # the characters, then toneless pinyin per character
        ("取消", "取消 qu xiao"),
        ("appointment", "appointment"),
        ("👍", "👍"),
    ],
)
def test_romanise(word: str, roman: str) -> None:
    assert romanise(word) == roman


def _romans(text: str) -> list:
    tokenizer = MultilingualTokenizer(MultilingualTokenizer.get_default_config())
    return [token.get(ROMAN) for token in tokenizer.tokenize(Message(data={"text": text}), "text")]


def test_tokenizer_gives_both_spellings_the_same_romanised_words() -> None:
    assert _romans("хочу записаться") == _romans("hochu zapisatsya")
    assert " ".join(_romans("取消预约")) == "取消 qu xiao 预约 yu yue"


def test_featurizer_counts_the_romanised_form(tmp_path) -> None:
    from rasa.engine.graph import ExecutionContext
    from rasa.engine.storage.local_model_storage import LocalModelStorage
    from rasa.engine.storage.resource import Resource

    from addons.romanised_counts import RomanisedCountVectorsFeaturizer

    tokenizer = MultilingualTokenizer(MultilingualTokenizer.get_default_config())
    config = {**RomanisedCountVectorsFeaturizer.get_default_config(),
              "analyzer": "char_wb", "min_ngram": 2, "max_ngram": 5}
    featurizer = RomanisedCountVectorsFeaturizer.create(
        config, LocalModelStorage(tmp_path), Resource("romanised"), ExecutionContext(None))
    cyrillic = Message(data={"text": "отменить запись", "intent": "cancel_appointment"})
    tokenizer.process_training_data(TrainingData([cyrillic]))
    featurizer.train(TrainingData([cyrillic]))

    latin = Message(data={"text": "otmenit zapis"})
    again = Message(data={"text": "Отменить запись"})
    unrelated = Message(data={"text": "opening hours"})
    tokenizer.process([latin, again, unrelated])
    featurizer.process([latin, again, unrelated])

    def features(message: Message):
        sequence, _ = message.get_sparse_features("text")
        return sequence.features.toarray()

    # The transliteration is, to this feature, the very same message as the Cyrillic one.
    assert (features(latin) == features(again)).all()
    assert features(latin).sum() > 10
    assert features(unrelated).sum() < features(latin).sum() / 3
