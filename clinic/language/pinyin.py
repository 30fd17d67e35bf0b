"""Reading a message typed in toneless pinyin ("wo xiang yu yue", "tingche") as Chinese words.

Chinese patients on phones often type pinyin without choosing the characters. The NLU sees
such a message as Latin letters: its word counts share nothing with the Chinese training
examples and the sentence encoder reads it as nonsense, so it was understood far less often
than the same message in characters (5-fold CV, docs/measurements.md). ``hanzi_reading`` gives
the most probable characters for it, from jieba's dictionary (which ships inside the package:
nothing is downloaded) with each word's pinyin from pypinyin: the segmentation of the syllables
into dictionary words with the highest product of word frequencies (a unigram model, as
jieba's own segmenter). Tones are lost in typed pinyin, so the reading is a best guess
("xiong kou tong" reads 胸口同, not 胸口痛): the NLU adds it beside the typed words, it never
replaces them, and the red-flag lists still read the message as typed.

A message is read only when every word of it is made of pinyin syllables and it has at least
two syllables: "ok", "hi", "Anna" or an English sentence are not pinyin ("can you" is, and
reads 参有 — harmless beside the English words, which stay).
"""

from __future__ import annotations

import functools
import math
import os
import re
import threading
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

from clinic.language.scripts import HAN_RANGES

_LATIN_WORD = re.compile(r"[a-züv]+", re.IGNORECASE)  # an apostrophe (xi'an) splits words
_ANYTHING_ELSE = re.compile(r"[^\sa-züv0-9.,!?;:'’\"()\-~…，。！？、]", re.IGNORECASE)
_HAN_WORD = re.compile(f"[{HAN_RANGES}]+")
_MAX_WORD_SYLLABLES = 4
_MIN_FREQUENCY = 20  # rarer dictionary words are mostly names and classical terms
# Every toneless syllable of Mandarin (ü written v, as pypinyin and phone keyboards do), without
# the interjections "n" and "hm", which would read English "no" as two syllables.
SYLLABLES = frozenset((
    "a ai an ang ao ba bai ban bang bao bei ben beng bi bian biao bie bin bing bo bu ca cai can "
    "cang cao ce cen ceng cha chai chan chang chao che chen cheng chi chong chou chu chuai chuan "
    "chuang chui chun chuo ci cong cou cu cuan cui cun cuo da dai dan dang dao de deng di dian diao "
    "die ding diu dong dou du duan dui dun duo e ei en er fa fan fang fei fen feng fou fu ga gai "
    "gan gang gao ge gei gen geng gong gou gu gua guai guan guang gui gun guo ha hai han hang hao "
    "he hei hen heng hong hou hu hua huai huan huang hui hun huo ji jia jian jiang jiao jie jin "
    "jing jiong jiu ju juan jue jun ka kai kan kang kao ke ken keng kong kou ku kua kuai kuan kuang "
    "kui kun kuo la lai lan lang lao le lei leng li lia lian liang liao lie lin ling liu long lou "
    "lu luan lun luo lv lve ma mai man mang mao me mei men meng mi mian miao mie min ming miu mo "
    "mou mu na nai nan nang nao ne nei nen neng ni nian niang niao nie nin ning niu nong nou nu "
    "nuan nuo nv nve o ou pa pai pan pang pao pei pen peng pi pian piao pie pin ping po pou pu qi "
    "qia qian qiang qiao qie qin qing qiong qiu qu quan que qun ran rang rao re ren reng ri rong "
    "rou ru ruan rui run ruo sa sai san sang sao se sen seng sha shai shan shang shao she shen "
    "sheng shi shou shu shua shuai shuan shuang shui shun shuo si song sou su suan sui sun suo ta "
    "tai tan tang tao te teng ti tian tiao tie ting tong tou tu tuan tui tun tuo wa wai wan wang "
    "wei wen weng wo wu xi xia xian xiang xiao xie xin xing xiong xiu xu xuan xue xun ya yan yang "
    "yao ye yi yin ying yo yong you yu yuan yue yun za zai zan zang zao ze zei zen zeng zha zhai "
    "zhan zhang zhao zhe zhen zheng zhi zhong zhou zhu zhua zhuai zhuan zhuang zhui zhun zhuo zi "
    "zong zou zu zuan zui zun zuo "
).split())


def _dictionary_path() -> str:
    import jieba

    return os.path.join(os.path.dirname(jieba.__file__), "dict.txt")


@functools.lru_cache(maxsize=1)
def _lexicon() -> Tuple[Dict[str, Tuple[str, float]], float, float]:
    """(toneless pinyin of a word, syllables space-separated → (the most frequent word with
    it, its log-probability)), the lowest log-probability (for a syllable no word has), and
    the log of the dictionary's total frequency (the unigram model's denominator). Built once
    per process (~4 s of pypinyin over ~50,000 words): see ``PinyinReader.warm_up``."""
    import jieba
    from pypinyin import lazy_pinyin

    entries: List[Tuple[str, int]] = []
    total = 0
    with open(os.path.join(os.path.dirname(jieba.__file__), "dict.txt"), encoding="utf-8") as dictionary:
        for line in dictionary:
            word, frequency = line.split()[:2]
            total += int(frequency)
            if int(frequency) >= _MIN_FREQUENCY and len(word) <= _MAX_WORD_SYLLABLES:
                entries.append((word, int(frequency)))
    log_total = math.log(total)
    words: Dict[str, Tuple[str, float]] = {}
    for word, frequency in entries:
        reading = lazy_pinyin(word)
        if not all(s.isascii() and s.isalpha() for s in reading):
            continue  # pypinyin keeps characters it has no reading for
        key = " ".join(reading).replace("ü", "v")
        score = math.log(frequency) - log_total
        if key not in words or words[key][1] < score:
            words[key] = (word, score)
    return words, min(score for _, score in words.values()), log_total


def syllables_of(word: str) -> Optional[List[str]]:
    """The fewest pinyin syllables that spell ``word`` ("tingche" → ting che), or None.
    As in pinyin's spelling rules, a syllable beginning with a, e or o starts the word
    (inside one, pinyin writes an apostrophe: "xi'an"): so "sure", "ciao" or "language" are
    not pinyin."""
    word = word.lower().replace("ü", "v")
    best: List[Optional[List[str]]] = [[]] + [None] * len(word)
    for end in range(1, len(word) + 1):
        for start in range(max(0, end - 6), end):  # the longest syllable has 6 letters
            piece = word[start:end]
            if best[start] is not None and piece in SYLLABLES and (start == 0 or piece[0] not in "aeo"):
                candidate = best[start] + [piece]  # type: ignore[operator]
                if best[end] is None or len(candidate) < len(best[end]):  # type: ignore[arg-type]
                    best[end] = candidate
    return best[-1]


class PinyinReader:
    """Reads pinyin messages, preferring the clinic's own words: a word of ``preferred`` (the
    Chinese words of the assistant's responses, say) counts as if it were as frequent as a
    common word (jieba's dictionary is general Chinese: "yu yue" is 愉悦 there, 预约 in a
    clinic)."""

    # Frequency a preferred word is scored with: about that of 医生 or 时间 in jieba's dictionary.
    PREFERRED_FREQUENCY = 50_000

    def __init__(self, preferred: Iterable[str] = ()) -> None:
        self._preferred = sorted({w for w in preferred if _HAN_WORD.fullmatch(w)})
        self._words: Optional[Dict[str, Tuple[str, float]]] = None
        self._floor = 0.0
        self._building = threading.Lock()
        self.reading = functools.lru_cache(maxsize=4096)(self._reading)

    def warm_up(self) -> threading.Thread:
        """Build the lexicon in a background thread, so the first pinyin message does not
        hold up its turn (and every other patient's) for the seconds it takes."""
        thread = threading.Thread(target=self._lexicon, name="pinyin-lexicon", daemon=True)
        thread.start()
        return thread

    @property
    def preferred(self) -> List[str]:
        """The preferred words, sorted."""
        return list(self._preferred)

    def _lexicon(self) -> Tuple[Dict[str, Tuple[str, float]], float]:
        with self._building:  # one build, whether the warm-up or a message gets here first
            if self._words is None:
                self._words, self._floor = self._build()
        return self._words, self._floor

    def _build(self) -> Tuple[Dict[str, Tuple[str, float]], float]:
        general, floor, log_total = _lexicon()
        words = dict(general)
        if self._preferred:
            from pypinyin import lazy_pinyin

            preferred = math.log(self.PREFERRED_FREQUENCY) - log_total
            for word in self._preferred:
                key = " ".join(lazy_pinyin(word)).replace("ü", "v")
                if key in words and words[key][1] >= preferred:
                    continue  # a more frequent word already has this reading
                if all(part in SYLLABLES for part in key.split()):
                    words[key] = (word, preferred)
        return words, floor

    def _decode(self, syllables: Sequence[str]) -> str:
        words, floor = self._lexicon()
        n = len(syllables)
        best: List[Optional[Tuple[float, List[str]]]] = [(0.0, [])] + [None] * n
        for end in range(1, n + 1):
            for start in range(max(0, end - _MAX_WORD_SYLLABLES), end):
                before = best[start]
                entry = words.get(" ".join(syllables[start:end]))
                if before is None or entry is None:
                    continue
                score = before[0] + entry[1]
                current = best[end]
                if current is None or score > current[0]:
                    best[end] = (score, before[1] + [entry[0]])
            previous = best[end - 1]
            if best[end] is None and previous is not None:
                # A syllable no dictionary word has (rare): kept as typed, at the floor.
                best[end] = (previous[0] + floor, previous[1] + [syllables[end - 1]])
        last = best[n]
        return "".join(last[1]) if last else ""

    def _reading(self, text: str) -> Optional[str]:
        if not text or _ANYTHING_ELSE.search(text):
            return None
        words = _LATIN_WORD.findall(text)
        if not words:
            return None
        syllables: List[str] = []
        for word in words:
            pieces = syllables_of(word)
            if pieces is None:
                return None
            syllables.extend(pieces)
        if len(syllables) < 2:
            return None
        return self._decode(syllables) or None


_GENERAL = PinyinReader()


def hanzi_reading(text: str) -> Optional[str]:
    """The characters a pinyin message most probably stands for (general Chinese), or None
    when ``text`` is not pinyin (any non-Latin letter, a word that is not pinyin syllables,
    fewer than two syllables)."""
    return _GENERAL.reading(text)
