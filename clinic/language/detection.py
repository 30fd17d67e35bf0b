"""Which supported language a message is written in, and how sure we are.

Script first (Han, Cyrillic, Latin… by Unicode ranges: cheap and never wrong about the
alphabet), then lingua-language-detector (its models ship inside the package; nothing is
downloaded) restricted to the languages of that script, supported or merely recognised.

Short or ambiguous messages ("ok", "👍", "1", a name, a date) are *weak*: they may set a
new contact's language but never change one already known. A language change needs a
*strong* message: three words and twelve letters (Chinese: four characters), the
patient naming a language ("Русский", "中文", "English"), or a greeting listed for a
language in content/languages.yml ("Здравствуйте", "你好": a patient who starts over in
their own language expects the answer in it).
"""

from __future__ import annotations

import dataclasses
import functools
import re
import unicodedata
from typing import Dict, List, Optional, Sequence

from clinic.language.catalogue import Catalogue, default_catalogue
from clinic.language.latin_russian import reads_as_russian
from clinic.language.pinyin import hanzi_reading
from clinic.redaction import PLACEHOLDER_RE

# Which lingua languages are written in which script (for the recognised ones).
_SCRIPT_OF = {
    "CYRILLIC": {"RUSSIAN", "UKRAINIAN", "BELARUSIAN", "BULGARIAN", "SERBIAN", "KAZAKH",
                 "MACEDONIAN", "MONGOLIAN"},
    "HAN": {"CHINESE"},
}
_URL = re.compile(r"(https?://|www\.)\S+", re.IGNORECASE)
STRONG_WORDS = 3
STRONG_LETTERS = 12
STRONG_HAN = 4
SURE_SUPPORTED = 0.5  # lingua's relative confidence for a supported language
SURE_UNSUPPORTED = 0.85  # ... for calling a message "not in a language we speak"
UNSUPPORTED_MIN_WORDS = 3
# A supported language is also sure with a clear lead: among thirty candidate languages a
# short plain sentence ("do you sell hearing aids?") gets English 0.41, Tagalog 0.18. On the
# NLU data this makes 85 % of the English examples long enough to count strong instead of
# 60 %, while 2 of 313 Russian ones typed in Latin letters (1 before) and none of the pinyin
# ones are taken for English.
CLEAR_LEAD_FLOOR = 0.3
CLEAR_LEAD = 2.0
# Another language is also sure with a clear lead — "Hallo, ich brauche einen Termin" is German
# 0.69, Dutch 0.07, and used to get the English welcome — unless the message reads as Russian in
# Latin letters or as pinyin, which the detector takes for Polish or Swahili with as clear a
# lead (at 0.85 too: "kakie dokumenty vzyat" is Polish 0.9). On the NLU data none of the 8,816
# examples (3,042 in Latin letters: 587 Russian, 312 pinyin) is then called unsupported.
UNSUPPORTED_LEAD_FLOOR = 0.5
UNSUPPORTED_LEAD = 5.0
# ... and ten times the supported language's own confidence: «посоветуй сериал на нетфликсе» is
# Bulgarian 0.72, Russian 0.13 — a Russian patient, not a Bulgarian one (German 0.69 above has
# English at 0.05).
UNSUPPORTED_LEAD_OVER_OURS = 10.0


@dataclasses.dataclass(frozen=True)
class Detection:
    language: Optional[str] = None  # a supported code, when identified
    strong: bool = False  # sure enough to change a conversation's language
    chosen: bool = False  # the patient named the language
    unsupported: Optional[str] = None  # a recognised language we do not speak (lingua name)


def _script(ch: str) -> Optional[str]:
    code = ord(ch)
    if 0x3040 <= code <= 0x30FF:
        return "KANA"
    if 0xAC00 <= code <= 0xD7AF or 0x1100 <= code <= 0x11FF:
        return "HANGUL"
    if 0x3400 <= code <= 0x4DBF or 0x4E00 <= code <= 0x9FFF or 0xF900 <= code <= 0xFAFF:
        return "HAN"
    if not ch.isalpha():
        return None
    name = unicodedata.name(ch, "")
    for script in ("LATIN", "CYRILLIC", "ARABIC", "HEBREW", "GREEK", "THAI", "DEVANAGARI",
                   "BENGALI", "ETHIOPIC"):
        if name.startswith(script):
            return script
    return "OTHER"


def _clean(text: str) -> str:
    # Redaction placeholders ("[card number removed]") are our English, not the patient's.
    return PLACEHOLDER_RE.sub(" ", _URL.sub(" ", text or ""))


def detect(text: str, catalogue: Optional[Catalogue] = None) -> Detection:
    catalogue = catalogue or default_catalogue()
    if not text or text.lstrip().startswith("/"):
        return Detection()  # empty, or a button payload: no words of the patient's
    chosen = catalogue.chosen_by(text)
    if chosen:
        return Detection(chosen, strong=True, chosen=True)
    greeted = catalogue.greeted_in(text)
    if greeted:
        return Detection(greeted, strong=True)
    text = _clean(text)
    counts: Dict[str, int] = {}
    for ch in text:
        script = _script(ch)
        if script:
            counts[script] = counts.get(script, 0) + 1
    if not counts:
        return Detection()
    # A Chinese character carries about a word: weigh it so "想book一个appointment" is Chinese.
    dominant = max(counts, key=lambda s: counts[s] * (5 if s == "HAN" else 1))
    letters = counts[dominant]
    words = len([w for w in re.split(r"\s+", text) if any(_script(c) == dominant for c in w)])
    if dominant in ("KANA", "HANGUL") or (dominant == "HAN" and counts.get("KANA")):
        name = "JAPANESE" if dominant != "HANGUL" else "KOREAN"
        return Detection(unsupported=name if letters >= 2 else None)
    by_script = _supported_by_script(catalogue)
    if dominant == "HAN":
        code = by_script.get("han")
        strong = letters >= STRONG_HAN
        return Detection(code, strong=strong) if code else Detection(
            unsupported="CHINESE" if strong else None)
    if dominant in ("CYRILLIC", "LATIN"):
        return _by_model(text, dominant, letters, words, catalogue)
    # An alphabet no supported language uses (Arabic, Hebrew, Thai…).
    return Detection(unsupported=dominant if letters >= 4 else None)


def _supported_by_script(catalogue: Catalogue) -> Dict[str, str]:
    """script -> the one supported language written in it (when there is exactly one)."""
    seen: Dict[str, List[str]] = {}
    for language in catalogue.languages.values():
        seen.setdefault(language.script, []).append(language.code)
    return {script: codes[0] for script, codes in seen.items() if len(codes) == 1}


def _by_model(text: str, script: str, letters: int, words: int, catalogue: Catalogue) -> Detection:
    supported = {lang.detector: lang.code for lang in catalogue.languages.values()
                 if lang.script == script.lower()}
    strong = words >= STRONG_WORDS and letters >= STRONG_LETTERS
    only = next(iter(supported.values())) if len(supported) == 1 else None
    if words < STRONG_WORDS and letters < STRONG_LETTERS:
        # Too short for a model to say anything reliable ("ok", "да", a name).
        return Detection(only, strong=False)
    candidates = _candidates(script, catalogue)
    ranking = _ranking(text, candidates)
    if not ranking:
        return Detection(only, strong=False)
    top, confidence = ranking[0]
    runner_up = ranking[1][1] if len(ranking) > 1 else 0.0
    if top in supported:
        sure = confidence >= SURE_SUPPORTED or (
            confidence >= CLEAR_LEAD_FLOOR and confidence >= CLEAR_LEAD * runner_up)
        return Detection(supported[top], strong=strong and sure)
    ours = max((value for name, value in ranking if name in supported), default=0.0)
    sure_other = confidence >= SURE_UNSUPPORTED or (
        confidence >= UNSUPPORTED_LEAD_FLOOR and confidence >= UNSUPPORTED_LEAD * runner_up
        and confidence >= UNSUPPORTED_LEAD_OVER_OURS * ours)
    if words >= UNSUPPORTED_MIN_WORDS and sure_other and not _reads_as_ours(text, catalogue):
        return Detection(unsupported=top)
    # Not sure it is another language: it may be our language typed oddly (transliteration).
    return Detection(only, strong=False)


def _reads_as_ours(text: str, catalogue: Catalogue) -> bool:
    """Latin letters that read as Russian words or as pinyin, when the clinic speaks them."""
    if catalogue.supports("ru") and reads_as_russian(text):
        return True
    return catalogue.supports("zh") and hanzi_reading(text) is not None


def _candidates(script: str, catalogue: Catalogue) -> tuple:
    names = {lang.detector for lang in catalogue.languages.values() if lang.script == script.lower()}
    for name in catalogue.recognised_unsupported:
        in_script = next((s for s, members in _SCRIPT_OF.items() if name in members), "LATIN")
        if in_script == script and name not in ("JAPANESE", "KOREAN"):
            names.add(name)
    return tuple(sorted(names))


def _ranking(text: str, candidates: Sequence[str]) -> List[tuple]:
    detector = _lingua(tuple(candidates))
    if detector is None:
        return []
    return [(value.language.name, value.value)
            for value in detector.compute_language_confidence_values(text)]


@functools.lru_cache(maxsize=8)
def _lingua(names: tuple):
    from lingua import Language, LanguageDetectorBuilder

    languages = [getattr(Language, name) for name in names if hasattr(Language, name)]
    if len(languages) < 2:
        return None
    # Models load lazily per language; only these few are ever loaded.
    return LanguageDetectorBuilder.from_languages(*languages).build()
