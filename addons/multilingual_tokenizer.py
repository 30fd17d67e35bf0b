"""Rasa tokenizer for English, Russian and Chinese in one model.

Whitespace and punctuation split words as Rasa's ``WhitespaceTokenizer`` does; then
- Chinese runs (no spaces between words) are segmented with jieba (the dictionary ships
  inside the package), so "我想预约明天" gives 我 / 想 / 预约 / 明天, not one token;
- Russian words get their dictionary lemma from pymorphy3 (dictionaries ship in
  pymorphy3-dicts-ru) as the token's lemma, which the word-count featurizer uses, so
  "записаться", "записаться", "запишите" share features with "записать";
- every token also gets its romanised form (addons/romanise.py) under "roman", which the
  character n-gram featurizer (addons/romanised_counts.py) counts, so "hochu zapisatsya"
  and "хочу записаться", "qu xiao yu yue" and "取消预约" share features;
- a message typed in pinyin ("wo xiang qu xiao yu yue") also gets the Chinese words it most
  probably spells (clinic/language/pinyin.py, preferring the words of the assistant's own
  Chinese texts), as extra tokens after the typed ones and under PINYIN_READING for the
  sentence embeddings: the typed words stay, the reading is added beside them.
Rasa's own ``JiebaTokenizer`` cannot be used here: jieba cuts Cyrillic into single letters.
"""

from __future__ import annotations

import functools
import hashlib
import re
from pathlib import Path
from typing import Any, Dict, List, Optional, Set, Text

from rasa.engine.graph import ExecutionContext
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.tokenizers.tokenizer import Token
from rasa.nlu.tokenizers.whitespace_tokenizer import WhitespaceTokenizer
from rasa.shared.nlu.constants import TEXT
from rasa.shared.nlu.training_data.message import Message

from addons.romanise import TABLE_PATH, romanise
from addons.romanised_counts import ROMAN
from clinic.language import pinyin
from clinic.language.pinyin import PinyinReader
from clinic.language.scripts import HAN as _HAN
from clinic.language.scripts import HAN_RANGES
from clinic.language.tokens import CYRILLIC as _CYRILLIC
from clinic.language.tokens import jieba_tokenizer, russian_lemma, segment_chinese

PINYIN_READING = "pinyin_reading"  # message key: the Chinese a pinyin message spells
_PROJECT = Path(__file__).resolve().parent.parent
# The assistant's own Chinese texts: its responses and the clinic's content files.
_OWN_TEXTS = ("domain/*.yml", "content/*.yml")

# The words themselves (jieba's segmentation, pymorphy3's lemmas) live in clinic.language.tokens,
# shared with the document search; this module only wraps them in Rasa tokens.
_jieba = jieba_tokenizer


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.MESSAGE_TOKENIZER, is_trainable=False)
class MultilingualTokenizer(WhitespaceTokenizer):
    @staticmethod
    def not_supported_languages() -> Optional[List[Text]]:
        return None

    @staticmethod
    def get_default_config() -> Dict[Text, Any]:
        return WhitespaceTokenizer.get_default_config()

    @classmethod
    def create(cls, config: Dict[Text, Any], model_storage: ModelStorage, resource: Resource,
               execution_context: ExecutionContext) -> "MultilingualTokenizer":
        # Loading a model (or training one) starts reading jieba's dictionary for pinyin in the
        # background: built on the first pinyin message instead, it would stall that turn, and
        # every other conversation on Rasa's event loop, for seconds.
        clinic_pinyin_reader().warm_up()
        return cls(config)

    @classmethod
    def fingerprint_addon(cls, config: Dict[Text, Any]) -> Optional[Text]:
        """Rasa retrains (and re-tokenizes the cached training data) when this class's code
        or config changes, not when what it reads changes: the romanisation table, the pinyin
        reader's code and the words of the assistant's own Chinese texts it prefers."""
        digest = hashlib.sha256()
        digest.update(TABLE_PATH.read_bytes())
        digest.update(Path(pinyin.__file__).read_bytes())
        digest.update("\n".join(clinic_pinyin_reader().preferred).encode("utf-8"))
        return digest.hexdigest()

    def remove_emoji(self, text: Text) -> Text:
        # Rasa's emoji pattern spans U+24C2..U+1F251, which holds every Chinese character:
        # the plain WhitespaceTokenizer silently drops Chinese words next to other words.
        if _HAN.search(text):
            return text
        return super().remove_emoji(text)

    def tokenize(self, message: Message, attribute: Text) -> List[Token]:
        tokens: List[Token] = []
        for token in super().tokenize(message, attribute):
            if _HAN.search(token.text):
                tokens.extend(_segment(token))
            elif _CYRILLIC.search(token.text):
                tokens.append(Token(token.text, token.start, token.end, lemma=russian_lemma(token.text)))
            else:
                tokens.append(token)
        for token in tokens:
            token.set(ROMAN, romanise(token.text))
        reading = clinic_pinyin_reader().reading(message.get(TEXT) or "") if attribute == TEXT else None
        if reading:
            message.set(PINYIN_READING, reading)
            end = tokens[-1].end if tokens else 0
            for word in segment_chinese(reading):
                # Zero-width, after the typed words: no entity or regex match falls on them.
                extra = Token(word, end, end, lemma=word)
                extra.set(ROMAN, word)  # its characters (the typed tokens carry the pinyin)
                tokens.append(extra)
        return tokens


@functools.lru_cache(maxsize=1)
def clinic_pinyin_reader() -> PinyinReader:
    """Reads pinyin preferring the words of the assistant's own Chinese texts (a clinic says
    预约, not 愉悦, for "yu yue"): every word of two or more characters jieba finds in them."""
    words: Set[str] = set()
    han = re.compile(f"[{HAN_RANGES}]+")
    for pattern in _OWN_TEXTS:
        for path in sorted(_PROJECT.glob(pattern)):
            for run in han.findall(path.read_text(encoding="utf-8")):
                words.update(word for word in segment_chinese(run) if len(word) >= 2)
    return PinyinReader(words)


def _segment(token: Token) -> List[Token]:
    pieces = []
    offset = 0
    for word in _jieba().cut(token.text, HMM=True):
        start = token.text.find(word, offset)
        if start < 0:  # jieba never rewrites text; be safe anyway
            start = offset
        offset = start + len(word)
        if word.strip():
            pieces.append(Token(word, token.start + start, token.start + offset))
    return pieces or [token]
