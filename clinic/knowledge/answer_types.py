"""What kind of answer a question asks for, when its question word says: a time of day
("what time…?", «во сколько…?», 几点…?) or a length of time ("how long…?", «как долго…?»,
多久…?).

A question word like these carries the question's point but shares no word with the passage
that answers it: "How long does an MRI take?" is answered by "The MRI takes 20 to 45 minutes",
which has neither "long" nor "take"; 周六几点开门？ by 周六09:00至12:00营业. Kept as words, they
count against the right passage (its coverage falls, and the question seems to ask something
the documents never mention); dropped as stopwords, nothing tells the passage that names a
time from its neighbour that does not. So the search matches them as what classic question
answering calls the expected answer type: the question word is replaced by a mark
(``CLOCK`` or ``DURATION``), and a passage that names a time of day (08:00, 9 am) or a
length of time (20 minutes, 24 часа, 30天) carries the same mark as one of its words.

The patterns of all three languages apply to any text: they do not collide, and a passage
quoting a time in another script still names it. Marks start with "#", which no word the
tokenizer produces does; the sentence encoder never sees them (clinic/knowledge/encoder.py
compares them exactly)."""

from __future__ import annotations

import re
from typing import List, Tuple

MARK = "#"
CLOCK = MARK + "clock"
DURATION = MARK + "duration"

# Numbers as digits or words ("three working days", «трёх рабочих дней», 三个工作日); not "a"
# or "an": "a day-surgery unit" states no length of time.
_NUMBER = (r"(?:\d+(?:[.,]\d+)?|[一二两三四五六七八九十半几]+|"
           r"\b(?:one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|fifteen|twenty|thirty|"
           r"forty|forty-eight|few|several|"
           r"один|одного|одну|одной|два|две|двух|три|трёх|трех|четыре|четырёх|четырех|пять|пяти|шесть|шести|"
           r"семь|семи|восемь|восьми|десять|десяти|пятнадцать|пятнадцати|двадцать|двадцати|тридцать|тридцати|"
           r"сорок|несколько|нескольких))")
_RANGE = rf"{_NUMBER}(?:\s*(?:-|–|—|to|до|至|到|~)\s*{_NUMBER})?"
# Not years: "under 16 years", «до 16 лет» state an age; not 日 or 年: 3日, 2026年 are dates.
_UNITS = (r"(?:minutes?|mins?|hours?|hrs?|days?|weeks?|months?|"
          r"минут[аы]?|мин|час(?:а|ов)?|сут(?:ок|ки)|дн(?:я|ей)|день|недел[ьиюяе]|месяц(?:а|ев)?|"
          r"分钟|小时|钟头|天|周|星期|个月|工作日)")

# A time of day as a passage writes it: 08:00, 7.30 am, 9am, 上午9点 (not 2.50 alone: a price).
_CLOCK_TEXT = re.compile(r"(?<![\d:.,])\d{1,2}:\d{2}(?![\d:])|"
                         r"(?<![\d:.,])\d{1,2}(?:[.:]\d{2})?\s?(?:a\.?m\.?|p\.?m\.?)(?![a-z])|"
                         r"\d{1,2}点(?:半|\d{1,2}分)?", re.IGNORECASE)
# A length of time: 20 to 45 minutes, 24 часа, 8至12小时, 30天, 六个月, half an hour (not 第46周,
# week 46).
_DURATION_TEXT = re.compile(rf"(?<![\d第.,]){_RANGE}\s*(?:working\s+|business\s+|рабочих\s+|рабочий\s+|рабочие\s+|个)?{_UNITS}"
                            r"|half an hour|полчаса|полдня|半小时|半天", re.IGNORECASE)

# The question words that ask for each, consumed from the question before it is split into
# words (so "how long" does not leave "long" behind).
_ASKS_CLOCK = re.compile(r"\bwhat time\b|\bat what hour\b|"
                         r"\bво\s+сколько\b|\bсо\s+скольки\b|\bдо\s+скольки\b|\bв\s+какое\s+время\b|"
                         r"\bв\s+котором\s+часу\b|"
                         r"几点钟?|几时", re.IGNORECASE)
_ASKS_DURATION = re.compile(r"\bhow long\b|\bhow many (?:minutes|hours|days|weeks|months)\b|"
                            r"\bкак\s+долго\b|\bсколько\s+(?:времени|длится|длятся|продолжается|минут|"
                            r"часов|дней|недель|месяцев)\b|\bдолго\s+ли\b|"
                            r"多久|多长时间|多长|多少时间|多少天|几天|几个小时|几小时|几分钟|多少分钟", re.IGNORECASE)


def asked(question: str) -> Tuple[str, List[str]]:
    """The question without the question words that ask for a time or a length of time, and
    the marks they stand for (none when it asks for neither)."""
    marks: List[str] = []
    for pattern, mark in ((_ASKS_CLOCK, CLOCK), (_ASKS_DURATION, DURATION)):
        question, found = pattern.subn(" ", question)
        if found:
            marks.append(mark)
    return question, marks


def stated(text: str) -> List[str]:
    """The marks of what ``text`` states: a time of day, a length of time."""
    marks = []
    if _CLOCK_TEXT.search(text):
        marks.append(CLOCK)
    if _DURATION_TEXT.search(text):
        marks.append(DURATION)
    return marks


def is_mark(term: str) -> bool:
    return term.startswith(MARK)
