"""Pinyin typed without characters is read as the Chinese words it most probably spells
(clinic/language/pinyin.py), and nothing else is."""

import pytest
from rasa.shared.nlu.training_data.message import Message

from addons.multilingual_tokenizer import (
    PINYIN_READING,
    MultilingualTokenizer,
    clinic_pinyin_reader,
)
from clinic.language.pinyin import PinyinReader, hanzi_reading, syllables_of


@pytest.mark.parametrize("typed, reading", [
    ("wo yi jing shuo le hao ji bian le", "我已经说了好几遍了"),
    ("gua hao", "挂号"),
    ("ming tian shang wu", "明天上午"),
    ("Mei yong!!", "没用"),
    ("kuai dao wo le mei?", "快到我了没"),
])
def test_pinyin_reads_as_the_words_it_spells(typed, reading):
    assert hanzi_reading(typed) == reading


def test_words_typed_together_are_split_into_their_syllables():
    assert syllables_of("tingche") == ["ting", "che"]
    assert hanzi_reading("tingche") == "停车"
    assert hanzi_reading("yingye shijian") == "营业时间"


@pytest.mark.parametrize("text", [
    "ok", "hi", "hello", "no", "yes please", "see you", "ciao", "thanks a lot",
    "I want to book an appointment", "hochu zapisatsya", "privet",
    "ma",  # one syllable says too little
    "我要挂号", "gua 号", "Записаться", "9am", "", "👍",
])
def test_what_is_not_pinyin_has_no_reading(text):
    assert hanzi_reading(text) is None


def test_a_syllable_starting_with_a_vowel_begins_its_word():
    # Pinyin writes xi'an for 西安; "xian" is one syllable, "sure" and "ciao" are English.
    assert syllables_of("xian") == ["xian"]
    assert syllables_of("ciao") is None
    assert syllables_of("sure") == ["su", "re"]  # spellable, and so read (beside the English)
    assert hanzi_reading("xi'an") == "西安"


def test_the_clinics_own_words_are_preferred_to_general_chinese():
    # In general Chinese "yu yue" is 愉悦 (delight) and "zhang dan" reads as 长但; a clinic means
    # 预约 (appointment) and 账单 (bill), words of its own responses.
    general = PinyinReader()
    clinic = PinyinReader(["预约", "账单", "not chinese", ""])
    assert general.reading("qu xiao yu yue") != "取消预约"
    assert clinic.reading("qu xiao yu yue") == "取消预约"
    assert clinic.reading("zhang dan zhuang tai") == "账单状态"
    assert clinic.reading("hello") is None


def test_the_assistant_reads_pinyin_with_the_words_of_its_own_texts():
    reader = clinic_pinyin_reader()
    assert reader.reading("ting che wei") == "停车位"  # 停车为 in general Chinese
    assert reader.reading("wo yao qu xiao yu yue") == "我要取消预约"


def _tokens(text: str):
    message = Message(data={"text": text})
    tokens = MultilingualTokenizer(MultilingualTokenizer.get_default_config()).tokenize(message, "text")
    return message, tokens


def test_the_tokenizer_adds_the_reading_after_the_typed_words():
    message, tokens = _tokens("qu xiao yu yue")
    assert [t.text for t in tokens] == ["qu", "xiao", "yu", "yue", "取消", "预约"]
    assert message.get(PINYIN_READING) == "取消预约"
    # The added words take no room in the text, so no entity or regex can land on them …
    assert all(t.start == t.end == len("qu xiao yu yue") for t in tokens[4:])
    # … and they count as the Chinese words they are, for both count featurizers.
    assert [(t.lemma, t.get("roman")) for t in tokens[4:]] == [("取消", "取消"), ("预约", "预约")]


@pytest.mark.parametrize("text", ["cancel my appointment", "取消预约", "otmenit zapis", "ok"])
def test_the_tokenizer_leaves_other_messages_as_they_are(text):
    message, tokens = _tokens(text)
    assert message.get(PINYIN_READING) is None
    assert all(t.end > t.start for t in tokens)


def test_a_pinyin_message_is_embedded_with_the_chinese_it_spells():
    import numpy as np

    from addons.sentence_embeddings import MultilingualSentenceEmbeddings, embed

    component = MultilingualSentenceEmbeddings({**MultilingualSentenceEmbeddings.get_default_config(),
                                                "weight": 1.0}, "embeddings")
    typed, written, english = (Message(data={"text": t}) for t in ("qu xiao yu yue", "取消预约", "cancel it"))
    for message in (typed, written, english):
        _tokens_of(message)
    component.process([typed, written, english])

    def vector(message):
        _, sentence = message.get_dense_features("text")
        return sentence.features[0]

    raw_pinyin, raw_english = embed(["qu xiao yu yue", "cancel it"])
    # The typed pinyin now sits much nearer the same words in characters than the encoder
    # alone puts it; a message that is not pinyin keeps the encoder's vector.
    assert float(vector(typed) @ vector(written)) > float(raw_pinyin @ vector(written)) + 0.2
    assert np.isclose(np.linalg.norm(vector(typed)), 1.0)
    assert np.allclose(vector(english), raw_english)


def _tokens_of(message: Message) -> None:
    MultilingualTokenizer(MultilingualTokenizer.get_default_config()).process([message])


def test_a_new_word_in_the_assistants_chinese_texts_makes_rasa_retrain(tmp_path, monkeypatch):
    import addons.multilingual_tokenizer as tokenizer_module

    (tmp_path / "domain").mkdir()
    (tmp_path / "content").mkdir()
    responses = tmp_path / "domain" / "core.yml"
    responses.write_text("utter_x:\n  - text: 请问您要预约吗\n", encoding="utf-8")
    monkeypatch.setattr(tokenizer_module, "_PROJECT", tmp_path)
    tokenizer_module.clinic_pinyin_reader.cache_clear()
    try:
        before = MultilingualTokenizer.fingerprint_addon({})
        assert "预约" in tokenizer_module.clinic_pinyin_reader().preferred
        responses.write_text("utter_x:\n  - text: 请问您要预约体检吗\n", encoding="utf-8")
        tokenizer_module.clinic_pinyin_reader.cache_clear()
        assert MultilingualTokenizer.fingerprint_addon({}) != before
    finally:
        tokenizer_module.clinic_pinyin_reader.cache_clear()
