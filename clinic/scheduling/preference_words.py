"""Russian and Chinese time preferences, rewritten into the English phrases that
:mod:`clinic.scheduling.preferences` reads.

Why a rewrite rather than a second parser: the rules that matter (what "next Tuesday"
means, "after 3" is 15:00, a passed "3 March" is a mistake, "31 February" does not exist,
the clinic is closed on Sundays) then live in one place and behave the same in every
language. Each rule below maps a phrase patients write to its English equivalent:

    завтра утром                     → tomorrow morning
    в следующий вторник после обеда  → next tuesday after lunch
    послезавтра после 15             → day after tomorrow after 15
    明天上午 / 下周二下午             → tomorrow morning / next tuesday afternoon
    后天3点以后 / 12点前              → day after tomorrow after 3 / before 12
    через неделю после / 一周后       → 1 weeks later (from the appointment being moved)
    в понедельник после этого / 之后的周一 → the monday after

The rules are chosen by the script of the text (Cyrillic, Han), not by the conversation's
``language`` slot, so a preference is read the same when the slot is wrong or unset; the
scripts do not overlap, so the rules cannot disturb English text. What is not rewritten is
left for dateparser, in the conversation's language, the text's, then English.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Callable, List, Optional, Tuple, Union

_CYRILLIC = re.compile(r"[а-яё]", re.IGNORECASE)
_HAN = re.compile(r"[\u3400-\u9fff]")

Rule = Tuple[str, Union[str, Callable[[re.Match], str]]]


def has_cyrillic(text: str) -> bool:
    return bool(_CYRILLIC.search(text))


def has_han(text: str) -> bool:
    return bool(_HAN.search(text))


def to_english(text: str) -> str:
    """``text`` (already lower-cased) with its Russian and Chinese phrases in English."""
    if has_han(text):
        text = _apply(_ZH_RULES, _prepare_chinese(text))
    if has_cyrillic(text):
        text = _apply(_RU_RULES, text.replace("ё", "е"))
    return re.sub(r"\s+", " ", text).strip()


def _apply(rules: List[Tuple[re.Pattern, Union[str, Callable[[re.Match], str]]]],
           text: str) -> str:
    # In order: earlier rules take the longer phrases ("послезавтра" before "завтра").
    # Spaces around every replacement: Chinese has none between words, and the English
    # readers need word boundaries ("3点以后" → " after 3 ").
    for pattern, replacement in rules:
        if callable(replacement):
            text = pattern.sub(lambda m, r=replacement: f" {r(m)} ", text)
        else:
            text = pattern.sub(f" {replacement} ", text)
    return text


def _time_token(hour: str, minute: Optional[str], suffix: str = "") -> str:
    """``3``, ``10:30``, ``3pm``: the forms preferences._HOUR reads (a bare 1..7 is p.m.)."""
    return f"{int(hour)}{':' + minute if minute else ''}{suffix}"


_ENGLISH_WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday",
                     "sunday")
_ENGLISH_MONTHS = ("january", "february", "march", "april", "may", "june", "july", "august",
                   "september", "october", "november", "december")

# ── Russian ──────────────────────────────────────────────────────────────────────────────

# Every case a weekday takes after "в", "на", "по", "до", "к" and in plural ("по средам").
_RU_WEEKDAYS = (
    r"понедельник(?:а|у|ом|ам|и)?|пн",
    r"вторник(?:а|у|ом|ам|и)?|вт",
    r"сред(?:а|у|ы|е|ам)|ср",
    r"четверг(?:а|у|ом|ам|и)?|чт",
    r"пятниц(?:а|у|ы|е|ам)|пт",
    r"суббот(?:а|у|ы|е|ам)|сб",
    r"воскресень(?:е|я|ю|ям)|вс",
)
_RU_WEEKDAY = "|".join(f"(?:{w})" for w in _RU_WEEKDAYS)
_RU_MONTHS = (
    r"январ(?:ь|я|е)|янв", r"феврал(?:ь|я|е)|февр?", r"март(?:а|е)?|мар", r"апрел(?:ь|я|е)|апр",
    r"ма(?:й|я|е)", r"июн(?:ь|я|е)?", r"июл(?:ь|я|е)?", r"август(?:а|е)?|авг",
    r"сентябр(?:ь|я|е)|сент?", r"октябр(?:ь|я|е)|окт", r"ноябр(?:ь|я|е)|нояб?",
    r"декабр(?:ь|я|е)|дек",
)
_RU_MONTH = "|".join(f"(?:{m})" for m in _RU_MONTHS)
_RU_NUMBERS = {"один": 1, "одну": 1, "одного": 1, "два": 2, "две": 2, "двух": 2, "три": 3,
               "трех": 3, "четыре": 4, "пять": 5, "шесть": 6, "семь": 7, "восемь": 8,
               "девять": 9, "десять": 10}
_RU_NUMBER = r"\d{1,2}|" + "|".join(_RU_NUMBERS)
# A clock time as written after a preposition: "15", "15:30", "10.30", "3pm" (rewritten
# from "3 часа дня" first). Not a day of the month ("до 25 декабря", "к 3-му") and not an
# hour that does not exist.
_RU_CLOCK = (r"(?:[01]?\d|2[0-3])(?:[:.][0-5]\d)?(?:am|pm)?|noon")
_RU_NOT_A_DATE = (rf"(?![\d:.])(?!\s*(?:-?(?:го|е|ое|му)\b|числ|{_RU_MONTH})"
                  r"|[./]\d)")
_RU_T = rf"({_RU_CLOCK}){_RU_NOT_A_DATE}"


def _ru_number(word: str) -> int:
    return int(word) if word.isdigit() else _RU_NUMBERS[word]


def _ru_weekday(match: re.Match, group: int = 1) -> str:
    word = match.group(group)
    for index, pattern in enumerate(_RU_WEEKDAYS):
        if re.fullmatch(pattern, word):
            return _ENGLISH_WEEKDAYS[index]
    return word


def _ru_month(word: str) -> str:
    for index, pattern in enumerate(_RU_MONTHS):
        if re.fullmatch(pattern, word):
            return _ENGLISH_MONTHS[index]
    return word


# What "после" / "до" point back to in "через неделю после этого", "в понедельник после
# приёма": the appointment being moved.
_RU_IT = r"(?:этого|того|него|нее|записи|приема|визита|этой даты|той даты|этого дня|того дня)"
# "после обеда", "после работы", "после 15" are times of day, not "after the appointment".
_RU_NOT_A_TIME = r"(?!\s+(?:обеда|работы|школы|уроков|\d))"
_RU_UNITS = {"день": "day", "дня": "day", "дней": "day", "неделю": "week", "недели": "week",
             "недель": "week", "неделя": "week"}
_RU_UNIT = "|".join(sorted(_RU_UNITS, key=len, reverse=True))


def _ru_offset(match: re.Match, direction: str) -> str:
    """"через две недели после этого" → "2 weeks later"; "на день раньше" → "1 days earlier"."""
    count = _ru_number(match.group("count")) if match.group("count") else 1
    return f"{count} {_RU_UNITS[match.group('unit')]}s {direction}"


def _ru_clock_with_part_of_day(match: re.Match) -> str:
    hour, minute, part = match.group(1), match.group(2), match.group(3)
    return _time_token(hour, minute, "am" if part in ("утра", "ночи") else "pm")


def _ru_rules() -> List[Rule]:
    wd = rf"({_RU_WEEKDAY})"
    return [
        # As soon as possible / any time (before "раньше" is read as "before").
        (r"\b(?:как можно (?:скорее|раньше|быстрее|быстрей)|поскорее|побыстрее|поскорей|"
         r"(?:в )?ближайшее (?:свободное )?время|(?:первое|ближайшее) свободное (?:время|окно)|"
         r"чем раньше,? тем лучше|срочно|прямо сейчас)\b", "asap"),
        (r"\b(?:в любое время|любое время|в любой день|любой день|когда угодно|"
         r"без разницы|все равно|неважно|не важно|не имеет значения)\b", "any time"),
        # Relative to the appointment being moved (preferences.py reads them from its
        # start): before "через неделю" (= next week), "следующий вторник" (= next tuesday),
        # "после 15" and "днём" (= afternoon) take the words.
        (r"\b(?:в |во )?(?:то|это|тоже) же время\b|\bв тоже время\b", "same time"),
        (r"\b(?:в )?(?:тот|этот) же день\b", "same day"),
        (r"\b(?:позже|позднее|ближе к концу|в конце) (?:на )?(?:той|этой) же недел[еи]\b|"
         r"\b(?:позже|позднее) на той неделе\b", "later that week"),
        (r"\b(?:на |в )?(?:той|этой|ту|эту) же недел[еюи]\b", "that week"),
        (r"\b(?:на )?(?:следующий|другой) день\b|\bследующим днем\b|"
         r"\b(?:на )?день (?:спустя|позже|позднее)\b|\bднем (?:позже|позднее)\b|"
         rf"\bчерез день после\s+{_RU_IT}\b", "the next day"),
        (rf"\bнакануне\b|\bза день до\s+{_RU_IT}\b|\b(?:на )?день раньше\b|\bднем раньше\b",
         "the day before"),
        (rf"\bчерез\s+(?:(?P<count>{_RU_NUMBER})\s+)?(?P<unit>{_RU_UNIT})\s+после"
         rf"(?:\s+{_RU_IT}\b)?{_RU_NOT_A_TIME}", lambda m: _ru_offset(m, "later")),
        (rf"\b(?:на\s+|спустя\s+)?(?:(?P<count>{_RU_NUMBER})\s+)?(?P<unit>{_RU_UNIT})\s+"
         r"(?:позже|позднее|спустя)\b", lambda m: _ru_offset(m, "later")),
        (rf"\bспустя\s+(?:(?P<count>{_RU_NUMBER})\s+)?(?P<unit>{_RU_UNIT})\b",
         lambda m: _ru_offset(m, "later")),
        (rf"\bна\s+(?:(?P<count>{_RU_NUMBER})\s+)?(?P<unit>{_RU_UNIT})\s+(?:раньше|ранее)\b",
         lambda m: _ru_offset(m, "earlier")),
        (r"\b(?:неделей|недели) (?:позже|позднее)\b", "1 weeks later"),
        (rf"\b(?:в |во |на )?следующ(?:ий|ую|ее|ей)\s+(?:за\s+(?:этим|ним|ней|нею)|после\s+{_RU_IT})"
         rf"\s+({_RU_WEEKDAY})\b", lambda m: f"the following {_ru_weekday(m)}"),
        (rf"\b(?:в |во |на )?({_RU_WEEKDAY})\s+после(?:\s+{_RU_IT}\b|(?=\s*$))",
         lambda m: f"the {_ru_weekday(m)} after"),
        (rf"\b(?:в |во |на )?({_RU_WEEKDAY})\s+(?:до|перед)\s+{_RU_IT}\b",
         lambda m: f"the {_ru_weekday(m)} before"),
        # The past: typed errors, as in English.
        (r"\bпозавчера\b", "2 days ago"),
        (r"\bвчера\b", "yesterday"),
        (r"\b(?:на )?прошлой неделе\b", "last week"),
        (r"\b(?:в )?прошлом месяце\b", "last month"),
        (rf"\b(?:в |во )?прошл(?:ый|ую|ое|ой)\s+{wd}\b", lambda m: f"last {_ru_weekday(m)}"),
        (r"\bназад\b", "ago"),
        # Named days.
        (r"\bпослезавтра\b", "day after tomorrow"),
        (r"\bзавтра\b", "tomorrow"),
        (r"\bсегодня\b", "today"),
        # "через 3 дня", "через неделю", "через две недели".
        (rf"\bчерез\s+({_RU_NUMBER})\s+(?:день|дня|дней)\b",
         lambda m: f"in {_ru_number(m.group(1))} days"),
        (r"\bчерез день\b", "in 2 days"),
        (r"\bчерез\s+(?:2|две)\s+недели\b", "week after next"),
        (r"\bчерез неделю\b", "next week"),
        # Weeks, weekends, months as ranges.
        (r"\b(?:на |в )?(?:следующ(?:ей|ая|ую)|будущ(?:ей|ая|ую)|след\.?) недел(?:е|я|ю)\b",
         "next week"),
        (r"\b(?:на |в )?(?:этой|эту|эта|текущей|текущую) недел(?:е|я|ю)\b", "this week"),
        (r"\b(?:на |в )?(?:следующ(?:их|ие)|будущ(?:их|ие)) выходн(?:ых|ые)\b", "next weekend"),
        (r"\b(?:на |в )?(?:этих |эти )?выходн(?:ых|ые)\b", "weekend"),
        (r"\b(?:в )?(?:следующем|будущем) месяце\b", "next month"),
        (r"\b(?:в )?(?:этом|текущем) месяце\b", "this month"),
        # Clock times with a part of the day: "в 10 утра", "в 3 часа дня", "8 вечера".
        (r"\b(\d{1,2})(?:[:.](\d{2}))?\s*(?:час(?:а|ов)?\s*)?(утра|вечера|ночи)\b",
         _ru_clock_with_part_of_day),
        (r"\b(\d{1,2})(?:[:.](\d{2}))?\s*час(?:а|ов)?\s*(дня)\b", _ru_clock_with_part_of_day),
        (r"\b(\d{1,2})(?:[:.](\d{2}))?\s*(?:час(?:а|ов)?|ч)(?![а-я])\.?",
         lambda m: _time_token(m.group(1), m.group(2))),
        (r"\b(?:в )?полдень\b|\bполудня\b", "noon"),
        # Ranges and limits: "с 9 до 11", "между 9 и 11", "после 15", "до 12", "к 10".
        (rf"\b(?:с|со|от)\s+{_RU_T}\s*(?:до|по|-|–)\s*{_RU_T}",
         lambda m: f"between {m.group(1)} and {m.group(2)}"),
        (rf"\bмежду\s+{_RU_T}\s+и\s+{_RU_T}", lambda m: f"between {m.group(1)} and {m.group(2)}"),
        (rf"\b(?:после|не раньше|не ранее|позже|позднее|с|со)\s+{_RU_T}",
         lambda m: f"after {m.group(1)}"),
        (rf"\b(?:до|не позже|не позднее|раньше|ранее)\s+{_RU_T}",
         lambda m: f"before {m.group(1)}"),
        (rf"\bк\s+{_RU_T}", lambda m: f"by {m.group(1)}"),
        (rf"\b(?:около|примерно в|примерно|где-то в|часов в|ориентировочно в)\s+{_RU_T}",
         lambda m: f"around {m.group(1)}"),
        (rf"\b(?:в|во)\s+{_RU_T}", lambda m: f"at {m.group(1)}"),
        # Parts of the day ("после обеда" as the English "after lunch": from 12:00).
        (r"\bпосле обеда\b", "after lunch"),
        (r"\bдо обеда\b", "before noon"),
        (r"\b(?:в |на )?обед(?:енное время)?\b", "lunchtime"),
        (r"\bпосле работы\b", "after work"),
        (r"\bпосле (?:школы|уроков)\b", "after school"),
        (r"\bво второй половине дня\b", "afternoon"),
        (r"\bв первой половине дня\b", "morning"),
        (r"\bрано утром\b", "early morning"),
        (r"\b(?:с утра|утром|утро|утречком|с утречка)\b", "morning"),
        (r"\b(?:днем|днём)\b", "afternoon"),
        (r"\b(?:вечером|вечер|вечерком)\b", "evening"),
        # Weekdays: "в следующий вторник" is the Tuesday of next week, as in English.
        (rf"\b(?:в |во |на )?(?:следующ(?:ий|ую|ее|ей)|будущ(?:ий|ую|ее)|след\.?)\s+{wd}\b",
         lambda m: f"next {_ru_weekday(m)}"),
        (rf"\b(?:в |во |на )?(?:эт(?:от|у|о|ой)|ближайш(?:ий|ую|ее|ей))\s+{wd}\b",
         lambda m: f"this {_ru_weekday(m)}"),
        (rf"\b(?:в |во |на |по )?{wd}\b", lambda m: _ru_weekday(m)),
        # Dates: "25 декабря", "1 апреля 2027 г.", "25-го", "25 числа", "в апреле".
        (rf"\b(\d{{1,2}})(?:-?(?:го|е|ое))?\s+({_RU_MONTH})\.?(?:\s+(\d{{4}})(?:\s*(?:года|год|г)\b\.?)?)?",
         lambda m: f"{int(m.group(1))} {_ru_month(m.group(2))}"
                   f"{' ' + m.group(3) if m.group(3) else ''}"),
        (r"\b(\d{1,2})(?:-?(?:го|е|ое))?\s+числа\b", lambda m: f"the {int(m.group(1))}th"),
        (r"\b(\d{1,2})-?го\b", lambda m: f"the {int(m.group(1))}th"),
        (rf"\b(?:в )?начале\s+({_RU_MONTH})\b", lambda m: f"early {_ru_month(m.group(1))}"),
        (rf"\b(?:в )?середине\s+({_RU_MONTH})\b", lambda m: f"mid {_ru_month(m.group(1))}"),
        (rf"\b(?:в )?конце\s+({_RU_MONTH})\b", lambda m: f"late {_ru_month(m.group(1))}"),
        (rf"\b(?:в|во)\s+({_RU_MONTH})\b", lambda m: f"in {_ru_month(m.group(1))}"),
        (rf"\b({_RU_MONTH})\b", lambda m: _ru_month(m.group(1))),
        (r"\b(\d{4})\s*(?:года|год|г)\b\.?", lambda m: m.group(1)),
    ]


# ── Chinese ──────────────────────────────────────────────────────────────────────────────

_ZH_DIGITS = {"零": 0, "〇": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6,
              "七": 7, "八": 8, "九": 9}
_ZH_WEEKDAY = r"([一二三四五六日天1-7])"
_ZH_WEEKDAY_INDEX = {"一": 0, "二": 1, "三": 2, "四": 3, "五": 4, "六": 5, "日": 6, "天": 6,
                     "1": 0, "2": 1, "3": 2, "4": 3, "5": 4, "6": 5, "7": 6}
_ZH_WEEK = r"(?:周|星期|礼拜)"
_ZH_PART_AM = ("上午", "早上", "早晨", "凌晨", "清早")
_ZH_PART_PM = ("下午", "晚上", "傍晚")
_ZH_PARTS = "上午|早上|早晨|凌晨|清早|中午|下午|晚上|傍晚"


def _zh_number(text: str) -> int:
    """一 … 三十一 (hours, days of the month, months)."""
    if text.isdigit():
        return int(text)
    if "十" in text:
        tens, _, units = text.partition("十")
        return (_ZH_DIGITS.get(tens, 1) if tens else 1) * 10 + (_ZH_DIGITS.get(units, 0) if units else 0)
    return _ZH_DIGITS.get(text, 0)


def _prepare_chinese(text: str) -> str:
    # Full-width digits and punctuation (１０：３０，) as ASCII; Chinese numerals before a
    # unit ("三点", "十二月二十五日") as digits; "早一点" ("a bit earlier") is not 1 o'clock,
    # nor is the "一时" of "同一时间" ("the same time": 时间/时段/时候 are words for time).
    text = unicodedata.normalize("NFKC", text)
    text = re.sub(r"[。、，,；;！!？?～~…]+", " ", text)
    text = re.sub(r"(?:早|晚|快|再)一点|一点儿", " ", text)
    text = re.sub(r"([零〇一二两三四五六七八九十]{1,3})"
                  r"(?=\s*(?:点|时(?![间段候])|號|号|日|天|个|月|分|刻|年))",
                  lambda m: str(_zh_number(m.group(1))), text)
    return text


def _zh_weekday(match: re.Match, group: int = 1) -> str:
    return _ENGLISH_WEEKDAYS[_ZH_WEEKDAY_INDEX[match.group(group)]]


def _zh_clock(part: Optional[str], hour: str, minute: Optional[str], half: Optional[str]) -> str:
    if half in ("半", "30分"):
        minute = "30"
    elif half == "一刻":
        minute = "15"
    elif half == "三刻":
        minute = "45"
    elif half and half.rstrip("分").isdigit():
        minute = f"{int(half.rstrip('分')):02d}"
    suffix = ""
    if part in _ZH_PART_AM:
        suffix = "am"
    elif part in _ZH_PART_PM or (part == "中午" and int(hour) < 11):
        suffix = "pm"  # "中午1点" is 13:00; "中午12点" is noon
    return _time_token(hour, minute, suffix)


# "下午3点半", "10点15分", "10:30", "9点": the clock, with what can follow it.
_ZH_CLOCK = (rf"({_ZH_PARTS})?\s*(\d{{1,2}})\s*(?:(?:点钟?|时)\s*(半|一刻|三刻|\d{{1,2}}\s*分?)?"
             r"|:(\d{2}))")


def _zh_time(match: re.Match) -> str:
    part, hour, extra, colon_minute, relation = match.groups()
    token = _zh_clock(part, hour, colon_minute, extra)
    if relation in ("以后", "之后", "后", "以後", "之後", "後"):
        return f"after {token}"
    if relation in ("以前", "之前", "前"):
        return f"before {token}"
    if relation in ("左右", "前后", "上下"):
        return f"around {token}"
    return f"at {token}"


def _zh_range(match: re.Match) -> str:
    part1, hour1, extra1, part2, hour2, extra2 = match.groups()
    first = _zh_clock(part1, hour1, None, extra1)
    second = _zh_clock(part2 or part1, hour2, None, extra2)
    return f"between {first} and {second}"


# A count as written before 天 (already digits: "两天" → "2天") or 周/星期 (still "一周").
_ZH_COUNT = r"(\d{1,2}|[一二两三四五六七八九十]{1,3})"
_ZH_WEEKS = r"(?:周|个?星期|个?礼拜)"


def _zh_offset(match: re.Match, direction: str) -> str:
    """"一周后" → "1 weeks later"; "推迟2天" → "2 days later"."""
    count, unit = match.group(1), match.group(2)
    return f"{_zh_number(count)} {'days' if unit == '天' else 'weeks'} {direction}"


def _zh_rules() -> List[Rule]:
    week = _ZH_WEEK
    return [
        (r"越快越好|越早越好|尽快|尽早|最快|最早|马上|立刻|立即|赶紧|急", "asap"),
        (r"随时|任何时间|任何时候|什么时候都(?:行|可以)|哪天都(?:行|可以)|都可以|都行|无所谓",
         "any time"),
        # Relative to the appointment being moved (preferences.py reads them from its
        # start): before "下周" (= next week), "周一" and "N天后" (= in N days, from today).
        (r"同[一1]个?(?:时间|时段)|相同的?(?:时间|时段)|同样的?时间|一样的时间|原来的时间",
         "same time"),
        (r"同[一1]天|当天|那[一1]?天", "same day"),
        (rf"(?:那|同[一1]|当|那[一1])个?{week}的?(?:晚些时候|稍晚|后几天|后面几天)", "later that week"),
        (rf"(?:那|同[一1]|当|那[一1])个?{week}(?![一二三四五六日天1-7末])", "that week"),
        (r"第[二2][天日]|次日|隔天|翌日|后[一1]天", "the next day"),
        (r"前[一1]天|提前[一1]天|早[一1]天", "the day before"),
        (rf"(?:晚|推迟|推后|往后推|往后挪|延后|延迟|顺延)\s*{_ZH_COUNT}\s*(天|{_ZH_WEEKS})",
         lambda m: _zh_offset(m, "later")),
        (rf"(?:早|提前|提早|往前推|往前挪)\s*{_ZH_COUNT}\s*(天|{_ZH_WEEKS})",
         lambda m: _zh_offset(m, "earlier")),
        (rf"{_ZH_COUNT}\s*({_ZH_WEEKS})\s*(?:以后|之后|后|後)", lambda m: _zh_offset(m, "later")),
        (rf"(?:那之后|之后|以后|随后|其后|再往后)的?\s*{week}{_ZH_WEEKDAY}",
         lambda m: f"the {_zh_weekday(m)} after"),
        (rf"(?:之后|随后|再往后)的?(?:那|一)?{week}(?![一二三四五六日天1-7末])", "the following week"),
        # The past.
        (r"前天", "2 days ago"),
        (r"昨天|昨日|昨晚", "yesterday"),
        (rf"上(?:个)?{week}{_ZH_WEEKDAY}", lambda m: f"last {_zh_weekday(m)}"),
        (rf"上(?:个)?{week}", "last week"),
        (r"上(?:个)?月", "last month"),
        (r"(\d{1,3})\s*天(?:以)?前", lambda m: f"{m.group(1)} days ago"),
        # Named days ("大后天" before "后天" before the clock's "以后").
        (r"大后天", "in 3 days"),
        (r"后天", "day after tomorrow"),
        (r"明早", "tomorrow morning"),
        (r"明晚", "tomorrow evening"),
        (r"明天|明日", "tomorrow"),
        (r"今晚", "tonight"),
        (r"今天|今日", "today"),
        (r"(\d{1,3})\s*天(?:以后|之后|后)", lambda m: f"in {m.group(1)} days"),
        # Weekends, weekdays, weeks, months.
        (rf"下(?:个)?{week}?末", "next weekend"),
        (rf"(?:这|本|这个)?{week}末", "weekend"),
        (rf"下下(?:个)?{week}", "week after next"),
        (rf"下(?:个)?{week}{_ZH_WEEKDAY}", lambda m: f"next {_zh_weekday(m)}"),
        (rf"(?:这|本|这个){week}{_ZH_WEEKDAY}", lambda m: f"this {_zh_weekday(m)}"),
        (rf"{week}{_ZH_WEEKDAY}", lambda m: _zh_weekday(m)),
        (rf"下(?:个)?{week}", "next week"),
        (rf"(?:这|本|这个){week}", "this week"),
        (r"下(?:个)?月", "next month"),
        (r"(?:这|本)(?:个)?月", "this month"),
        # Dates: "12月25日", "2027年12月25号", "25号", "4月".
        (r"(?:(\d{4})\s*年\s*)?(\d{1,2})\s*月\s*(\d{1,2})\s*[日号號]?",
         lambda m: f"{int(m.group(3))} {_ENGLISH_MONTHS[int(m.group(2)) - 1]}"
                   f"{' ' + m.group(1) if m.group(1) else ''}"
         if 1 <= int(m.group(2)) <= 12 else f"{m.group(3)}/{m.group(2)}"),
        (r"(\d{1,2})\s*[日号號]", lambda m: f"the {int(m.group(1))}th"),
        (r"(?<!个)(\d{1,2})\s*月份?",
         lambda m: f"in {_ENGLISH_MONTHS[int(m.group(1)) - 1]}" if 1 <= int(m.group(1)) <= 12
         else m.group(0)),
        # Clock ranges and times: "9点到11点", "3点以后", "12点前", "下午3点半".
        (rf"({_ZH_PARTS})?\s*(\d{{1,2}})\s*(?:点钟?|时)?\s*(半|一刻|三刻)?\s*(?:到|至|-|–)\s*"
         rf"({_ZH_PARTS})?\s*(\d{{1,2}})\s*(?:点钟?|时)\s*(半|一刻|三刻)?", _zh_range),
        (rf"{_ZH_CLOCK}\s*(以后|之后|以後|之後|后|後|以前|之前|前|左右|前后|上下)?", _zh_time),
        # Parts of the day.
        (r"(?:午饭|午餐|中饭|吃完饭|饭)(?:以后|之后|后)", "after lunch"),
        (r"(?:午饭|午餐|中饭)(?:以前|之前|前)", "before noon"),
        (r"下班(?:以后|之后|后)", "after work"),
        (r"放学(?:以后|之后|后)", "after school"),
        (r"上午|早上|早晨|清早|早上", "morning"),
        (r"中午|午饭时间|午休时间", "midday"),
        (r"下午", "afternoon"),
        (r"晚上|傍晚|晚间", "evening"),
    ]


_RU_RULES = [(re.compile(pattern), replacement) for pattern, replacement in _ru_rules()]
_ZH_RULES = [(re.compile(pattern), replacement) for pattern, replacement in _zh_rules()]
