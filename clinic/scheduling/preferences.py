"""A patient's free-text time preference → a search window in the clinic's time zone.

"next Tuesday morning", "tomorrow after 3", "any time next week", "as soon as possible",
"25 December", "in the evening"... become a :class:`TimeWindow` (dates + an optional
time-of-day filter) that maps onto :class:`clinic.scheduling.model.SlotQuery`.

Why our own handling around dateparser: dateparser reads single dates well ("25 December",
"in 3 days", "14/04") but not what patients add around them (parts of the day, "after 3",
"next week" as a *range*, "next Tuesday"), it silently returns ``None`` for impossible dates
("31 February") and it rolls a day-of-month that has passed back into the past ("the 14th").
Every way a preference can't be used is a typed :class:`PreferenceError` the assistant turns
into a kind reply; nothing here raises anything else for any input text.

Russian and Chinese ("завтра утром", "下周二下午", "后天3点以后") are first rewritten into the
English phrases read below (clinic/scheduling/preference_words.py), so every rule and every
typed error is the same in the three languages; dateparser gets what is left with
``languages=[language, the text's language, "en"]``.

Relative to what? "tomorrow", "next Monday", "in 3 days" and "10 December" count from
today. Phrases that point back to another moment ("the Monday after", "the day after",
"a week later", "same time next week", "later that week", "через неделю после", "第二天",
"之后的周一", "一周后") count from the ``anchor`` when one is given: the start of the
appointment being moved. Without it they count from today (there is nothing else for them
to mean), and "same time" means nothing.
"""

from __future__ import annotations

import calendar
import dataclasses
import datetime as dt
import re
from typing import Collection, Dict, Mapping, Optional, Sequence, Tuple
from zoneinfo import ZoneInfo

import dateparser

from clinic.i18n import language_code
from clinic.scheduling.model import SlotQuery
from clinic.scheduling.preference_words import has_cyrillic, has_han, to_english

# How far ahead "as soon as possible" / "any time" / a bare "in the morning" looks.
DEFAULT_HORIZON_DAYS = 28
# An explicit day and month without a year that passed less than this long ago is taken as
# a mistake ("3 March" said on 26 March), not as next year's date.
RECENTLY_PASSED_DAYS = 60

_WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_WEEKDAY_ALIASES: Dict[str, int] = {}
for _i, _name in enumerate(_WEEKDAYS):
    for _alias in {_name, _name[:3], _name[:4], _name + "s"}:
        _WEEKDAY_ALIASES[_alias] = _i
_WEEKDAY_ALIASES.update({"tues": 1, "weds": 2, "thur": 3, "thurs": 3})
_WEEKDAY_RE = "|".join(sorted(_WEEKDAY_ALIASES, key=len, reverse=True))

_MONTHS: Dict[str, int] = {}
for _i, _name in enumerate(calendar.month_name):
    if _name:
        _MONTHS[_name.lower()] = _i
        _MONTHS[_name[:3].lower()] = _i
_MONTHS["sept"] = 9
_FULL_MONTHS = {name.lower() for name in calendar.month_name if name}
_MONTH_RE = "|".join(sorted(_MONTHS, key=len, reverse=True))

# Parts of the day, as local clinic times.
_PARTS_OF_DAY: Dict[str, Tuple[dt.time, dt.time]] = {
    "morning": (dt.time(6, 0), dt.time(12, 0)),
    "lunchtime": (dt.time(11, 30), dt.time(14, 0)),
    "lunch": (dt.time(11, 30), dt.time(14, 0)),
    "midday": (dt.time(11, 30), dt.time(13, 30)),
    "afternoon": (dt.time(12, 0), dt.time(17, 0)),
    "after work": (dt.time(17, 0), dt.time(22, 0)),
    "after school": (dt.time(15, 0), dt.time(22, 0)),
    "evening": (dt.time(17, 0), dt.time(22, 0)),
    "tonight": (dt.time(17, 0), dt.time(22, 0)),
}

_ASAP = re.compile(
    r"\b(asap|a\.s\.a\.p|as soon as possible|as early as possible|soonest|earliest|"
    r"first (?:available|free|possible)|next (?:available|free)|any ?time|any day|any ?when|"
    r"whenever|no preference|don'?t mind|doesn'?t matter|i'?m flexible|flexible|"
    r"when(?:ever)? you can|as soon as you can|urgent(?:ly)?|right away|soon)\b"
)

_FILLER = re.compile(
    r"\b(please|pls|plz|thanks?|thank you|ok(?:ay)?|yes|yeah|sure|hi|hello|maybe|perhaps|"
    r"preferably|ideally|how about|what about|would be (?:good|great|best|ideal|perfect)|"
    r"is (?:good|fine|best|ok|better)|works(?: for me)?|suits me|i'?d (?:like|prefer)|"
    r"i (?:prefer|would prefer|want|need|can do|can come|could come|am free)|can i come|"
    r"could i come|i'?m free|for me|sometime|some time|something|anything|one|a slot|"
    r"an appointment|appointment|slot|time|day|the|on|at|in|of|for|a|an|or|and|"
    r"around|about|during|if possible|possible|then)\b"
)

# Russian and Chinese words around a preference that name no day or time (what is left
# after preference_words rewrote the rest), so they never reach dateparser as a "date".
_FILLER_RU = re.compile(
    r"\b(пожалуйста|пжл|спасибо|можно|мне|нам|меня|удобно|удобнее|хочу|хотел[аи]?|бы|"
    r"записаться|запишите|запись|прием|приём|время|лучше|было|будет|хорошо|давайте|ну|да|"
    r"ок|окей|и|или|а|в|во|на|к|по|тогда|когда|нибудь|где-то|если|возможно|получится|"
    r"подойдет|подойдёт|подходит|устроит|свободно|свободное|есть|ли|как|у|вас|можете)\b"
)
_FILLER_ZH = re.compile(
    r"请问|请|麻烦|谢谢|我想|我要|我|想|要|可以|能不能|能|吗|吧|呢|啊|嗯|好的|好|的|时候|时间|"
    r"最好|预约|挂号|安排|一下|看看|有没有|有空|空|方便|行|就|那|在|是"
)

_HOUR = r"(\d{1,2})(?:[:.h](\d{2}))?\s*(am|pm|a\.m\.|p\.m\.|o'?clock)?"
_NAMED_TIMES = {"noon": dt.time(12, 0), "midday": dt.time(12, 0), "lunch": dt.time(12, 0),
                "lunchtime": dt.time(12, 0)}
_TIME_TOKEN = rf"(?:{_HOUR}|(noon|midday|lunchtime|lunch))"

# Counts in anchored offsets ("two days later", "a week earlier"); Russian and Chinese
# arrive as digits.
_COUNTS = {"a": 1, "an": 1, "one": 1, "two": 2, "a couple of": 2, "couple of": 2, "three": 3,
           "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9, "ten": 10}
_COUNT_RE = r"\d{1,2}|" + "|".join(sorted(_COUNTS, key=len, reverse=True))


class PreferenceError(ValueError):
    """The preference can't be used; the message is for logs, the type picks the reply."""


class Unparseable(PreferenceError):
    """No day or time could be read from the text."""


class DateInPast(PreferenceError):
    def __init__(self, day: dt.date) -> None:
        super().__init__(f"{day.isoformat()} is in the past")
        self.day = day


class ImpossibleDate(PreferenceError):
    """A date that no calendar has, e.g. "31 February"."""

    def __init__(self, text: str) -> None:
        super().__init__(f"{text!r} is not a real date")
        self.text = text


class ClinicClosed(PreferenceError):
    """The clinic is closed on that day (or at those hours on that day)."""

    def __init__(self, day: dt.date, hours_that_day: Sequence[Tuple[dt.time, dt.time]] = ()) -> None:
        super().__init__(f"closed on {day.isoformat()}")
        self.day = day
        self.hours_that_day = tuple(hours_that_day)


@dataclasses.dataclass(frozen=True)
class TimeWindow:
    """Where to look for slots: ``earliest``..``latest`` (aware, clinic time zone), and an
    optional time-of-day filter applied on every day of it."""

    earliest: dt.datetime
    latest: dt.datetime
    day_start: Optional[dt.time] = None
    day_end: Optional[dt.time] = None
    single_day: bool = False  # the patient named one day ("tomorrow", "25 December")

    def to_query(self, service_id: str, practitioner_id: Optional[str] = None,
                 limit: int = 10) -> SlotQuery:
        return SlotQuery(service_id=service_id, earliest=self.earliest, latest=self.latest,
                         practitioner_id=practitioner_id, day_start=self.day_start,
                         day_end=self.day_end, limit=limit)

    def to_dict(self) -> Dict[str, Optional[str]]:
        """JSON-safe form (kept in a conversation slot between turns)."""
        return {
            "earliest": self.earliest.isoformat(),
            "latest": self.latest.isoformat(),
            "day_start": self.day_start.strftime("%H:%M") if self.day_start else None,
            "day_end": self.day_end.strftime("%H:%M") if self.day_end else None,
            "single_day": self.single_day,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> "TimeWindow":
        def time_of(value: object) -> Optional[dt.time]:
            return dt.time.fromisoformat(str(value)) if value else None

        return cls(
            earliest=dt.datetime.fromisoformat(str(data["earliest"])),
            latest=dt.datetime.fromisoformat(str(data["latest"])),
            day_start=time_of(data.get("day_start")),
            day_end=time_of(data.get("day_end")),
            single_day=bool(data.get("single_day")),
        )


@dataclasses.dataclass
class _Reading:
    """What has been understood so far."""

    first_day: Optional[dt.date] = None
    last_day: Optional[dt.date] = None  # inclusive
    day_start: Optional[dt.time] = None
    day_end: Optional[dt.time] = None
    asap: bool = False

    @property
    def has_days(self) -> bool:
        return self.first_day is not None

    def set_days(self, first: dt.date, last: Optional[dt.date] = None) -> None:
        self.first_day, self.last_day = first, last or first


def parse_preference(
    text: str,
    now: dt.datetime,
    timezone: ZoneInfo,
    opening_hours: Optional[Mapping[int, Sequence[Tuple[dt.time, dt.time]]]] = None,
    closed_dates: Collection[dt.date] = (),
    horizon_days: int = DEFAULT_HORIZON_DAYS,
    date_order: str = "DMY",
    language: Optional[str] = "en",
    anchor: Optional[dt.datetime] = None,
) -> TimeWindow:
    """Read ``text`` as of ``now``.

    ``opening_hours`` maps a weekday (0 = Monday) to the clinic's opening windows (e.g.
    ``ClinicSettings.reception_hours.windows``); a day without windows, or in
    ``closed_dates`` (public holidays), is closed. ``date_order`` reads numeric dates
    ("3/4" is 3 April with DMY). ``language`` (en, ru, zh; the conversation's) is the one
    dateparser tries first; Russian and Chinese phrases are understood whatever it says.
    ``anchor`` (aware) is what "the day after", "a week later", "the Monday after",
    "same time"... refer to: the start of the appointment being moved. Everything else
    still counts from ``now``, and nothing before today is ever offered.
    """
    now = now.astimezone(timezone)
    today = now.date()
    local_anchor = anchor.astimezone(timezone) if anchor is not None else None
    original = text or ""
    remaining = to_english(_normalise(original))
    if not remaining:
        raise Unparseable("empty preference")
    reading = _Reading()

    remaining = _read_times_of_day(remaining, reading)
    if _ASAP.search(remaining):
        reading.asap = True
        remaining = _ASAP.sub(" ", remaining)
    # Before the readers of "next week", "tomorrow", "monday": "the monday after" must not
    # be read as this coming Monday, nor "the day after" as "the day after tomorrow".
    remaining = _read_anchored(remaining, today, local_anchor, reading)
    remaining = _read_ranges(remaining, today, reading)
    remaining = _read_explicit_dates(remaining, today, reading, date_order)
    remaining = _read_named_days(remaining, today, reading)

    leftover = _FILLER.sub(" ", remaining)
    leftover = _FILLER_ZH.sub(" ", _FILLER_RU.sub(" ", leftover))
    leftover = re.sub(r"[^\w/.:-]+", " ", leftover).strip()
    # Any letters (not only a-z): an untranslated Russian phrase goes to dateparser too.
    if re.search(r"[^\W\d_]", leftover) and not reading.has_days:
        day = _dateparser_day(leftover, now, timezone, date_order, language)
        if day is not None:
            reading.set_days(day)
            leftover = ""
    understood = reading.has_days or reading.asap or reading.day_start or reading.day_end
    if not understood:
        raise Unparseable(f"no date or time in {original!r}")
    return _window(reading, now, timezone, opening_hours, closed_dates, horizon_days)


# --- steps ------------------------------------------------------------------------------


def _normalise(text: str) -> str:
    text = text.lower().replace("’", "'").replace("–", "-")
    text = re.sub(r"[!?;,()\"]+", " ", text)
    text = re.sub(r"(?<!\d)\.|\.(?!\d)", " ", text)  # keep "10.30" and "25.12"
    text = re.sub(r"\b(tmrw|tmr|tmrow|tomoz|tomorow|tommorow|tommorrow|tomoro|2morrow|2moro)\b",
                  "tomorrow", text)
    text = re.sub(r"\bnxt\b", "next", text)
    text = re.sub(r"\b(wk)\b", "week", text)
    return re.sub(r"\s+", " ", text).strip()


def _to_time(hour: str, minute: Optional[str], suffix: Optional[str], named: Optional[str],
             meaning_after: bool = True) -> Optional[dt.time]:
    """"3" → 15:00 (the clinic isn't open at 3 a.m.), "10" → 10:00, "3:30pm" → 15:30."""
    if named:
        return _NAMED_TIMES[named]
    h, m = int(hour), int(minute or 0)
    if m > 59:
        return None
    suffix = (suffix or "").replace(".", "").replace("'", "")
    if suffix == "pm" and h < 12:
        h += 12
    elif suffix == "am" and h == 12:
        h = 0
    elif suffix in ("", "oclock") and 1 <= h <= 7:
        h += 12  # "after 3", "at 5": afternoon hours
    if h > 23:
        return None
    return dt.time(h, m)


def _read_times_of_day(text: str, reading: _Reading) -> str:
    def between(match: re.Match) -> str:
        start = _to_time(*match.group(1, 2, 3, 4))
        end = _to_time(*match.group(5, 6, 7, 8))
        if start and end:
            if end <= start and end.hour < 12:  # "between 11 and 1"
                end = dt.time(end.hour + 12, end.minute)
            reading.day_start, reading.day_end = start, end
        return " "

    text = re.sub(rf"\b(?:between|from)\s+{_TIME_TOKEN}\s*(?:and|-|to|till|until)\s*{_TIME_TOKEN}",
                  between, text)

    def after(match: re.Match) -> str:
        start = _to_time(*match.group(1, 2, 3, 4))
        if start:
            reading.day_start = start
        return " "

    text = re.sub(rf"\b(?:after|from|later than|not before|no earlier than)\s+{_TIME_TOKEN}",
                  after, text)

    def before(match: re.Match) -> str:
        end = _to_time(*match.group(1, 2, 3, 4))
        if end:
            reading.day_end = end
        return " "

    text = re.sub(rf"\b(?:before|by|until|till|earlier than|no later than)\s+{_TIME_TOKEN}",
                  before, text)

    def at(match: re.Match) -> str:
        start = _to_time(*match.group(2, 3, 4, 5))
        if start is None:
            return match.group(0)  # "at 25.12" is not a time; leave it for the date readers
        if start:
            spread = 60 if match.group(1) in ("around", "about", "ish") else 0
            reading.day_start, reading.day_end = _hour_from(start, spread)
        return " "

    # A bare number is only a time with "at"/"around" or an am/pm/":mm" marker.
    text = re.sub(rf"\b(at|around|about)\s+{_TIME_TOKEN}(?!\s*(?:st|nd|rd|th)\b)", at, text)
    text = re.sub(r"\b()(\d{1,2})(?:[:h](\d{2}))?\s*(am|pm|a\.m\.|p\.m\.)()", at, text)
    text = re.sub(r"\b()(\d{1,2})[:h](\d{2})()()\b", at, text)

    for phrase in sorted(_PARTS_OF_DAY, key=len, reverse=True):
        pattern = rf"\b(?:early |late |in the |this |during the )?{phrase}s?\b"
        if not re.search(pattern, text):
            continue
        start, end = _PARTS_OF_DAY[phrase]
        reading.day_start = reading.day_start or start  # "morning after 10": 10:00-12:00
        reading.day_end = reading.day_end or end
        # "this afternoon" and "tonight" are today's; "in the afternoon" is any day's.
        today_phrase = phrase == "tonight" or re.search(rf"\bthis {phrase}", text)
        text = re.sub(pattern, " today " if today_phrase else " ", text)
    if reading.day_start and reading.day_end and reading.day_end <= reading.day_start:
        # "morning after 3": nothing matches; keep the explicit hour, drop the part of day.
        reading.day_end = None
    return text


def _hour_from(start: dt.time, minutes_before: int = 0) -> Tuple[dt.time, dt.time]:
    """"at 10": 10:00-11:00 ("around 10": from 09:00), kept inside the day."""
    centre = dt.datetime.combine(dt.date(2000, 1, 1), start)
    first = centre - dt.timedelta(minutes=minutes_before)
    last = centre + dt.timedelta(minutes=60)
    return (first.time() if first.date() == centre.date() else dt.time(0, 0),
            last.time() if last.date() == centre.date() else dt.time(23, 59))


# Phrases that count from the anchor (the appointment being moved), in the order tried:
# longer phrases before the shorter ones inside them ("later that week" before "that week").
# Each gives (first day, last day) from the anchor's day; ``None`` for the last is "the
# same day". What is not matched here is read as usual, from today.
_ANCHORED: Tuple[Tuple[str, str], ...] = (
    # "two days later", "a week after that", "3 weeks afterwards" (not "2 days after
    # tomorrow", which counts from today).
    ("later", rf"\b(?P<count>{_COUNT_RE}) (?P<unit>day|week)s? (?:later|after(?:wards?)?"
              r"(?: (?:that|it))?|from (?:then|that(?: day| date)?))\b"
              r"(?! (?:tomorrow|today|next)\b)"),
    ("earlier", rf"\b(?P<count>{_COUNT_RE}) (?P<unit>day|week)s? (?:earlier|before(?:hand)?"
                r"(?: (?:that|it))?)\b(?! (?:yesterday|today|last)\b)"),
    # "the day after" (not "the day after tomorrow"), "the next day", "the following day".
    ("next_day", r"\b(?:(?:on )?the )?(?:next|following) day\b|"
                 r"\b(?:on )?the day after\b(?! (?:tomorrow|next)\b)"),
    ("day_before", r"\b(?:on )?the day before\b(?! (?:yesterday|last)\b)"),
    # "the Monday after", "the following Tuesday", "the next Friday after that".
    ("weekday_after", rf"\b(?:on )?(?:the )?(?:next )?(?P<weekday>{_WEEKDAY_RE}) "
                      r"(?:after|following)\b(?! next\b)|"
                      rf"\b(?:on )?(?:the )?following (?P<weekday2>{_WEEKDAY_RE})\b"),
    ("weekday_before", rf"\b(?:on )?(?:the )?(?P<weekday>{_WEEKDAY_RE}) before\b"
                       r"(?! (?:next|last)\b)"),
    ("week_after", r"\b(?:the )?(?:following week|week after)\b(?! next\b)"),
    ("week_before", r"\b(?:the )?(?:previous|preceding) week\b|\bthe week before\b"),
    ("later_that_week", r"\blater (?:on )?(?:in )?(?:that|the same|that same|the) week\b"),
    ("earlier_that_week", r"\bearlier (?:on )?(?:in )?(?:that|the same|that same|the) week\b"),
    ("that_week", r"\b(?:in )?(?:(?:the |that )?same|that) week\b"),
    ("that_day", r"\b(?:on )?(?:(?:the |that )?same|that) day\b"),
)
_ANCHORED_RE = tuple((name, re.compile(pattern)) for name, pattern in _ANCHORED)
_SAME_TIME = re.compile(r"\b(?:at )?(?:the |that )?same time(?: of (?:the )?day)?\b")


def _read_anchored(text: str, today: dt.date, anchor: Optional[dt.datetime],
                   reading: _Reading) -> str:
    """Phrases relative to the appointment being moved (``anchor``, local), or to today
    when there is none."""
    same_time = _SAME_TIME.search(text)
    if same_time:
        text = text[: same_time.start()] + " " + text[same_time.end():]
        if anchor is not None:
            # The appointment's time of day, unless the patient also named an hour.
            if reading.day_start is None and reading.day_end is None:
                reading.day_start, reading.day_end = _hour_from(anchor.time().replace(
                    second=0, microsecond=0))
            # "same time next week" is a week after the appointment, not next week's range.
            text = re.sub(r"\b(?:the )?(?:next|following) week\b|\bthe week after\b(?! next)",
                          " a week later ", text)
    base = anchor.date() if anchor is not None else today
    for name, pattern in _ANCHORED_RE:
        match = pattern.search(text)
        if not match:
            continue
        first, last = _anchored_days(name, match, base)
        if first > last:
            raise Unparseable(f"nothing is {match.group(0)!r} {base.isoformat()}")
        reading.set_days(first, last)
        return text[: match.start()] + " " + text[match.end():]
    return text


def _anchored_days(name: str, match: re.Match, base: dt.date) -> Tuple[dt.date, dt.date]:
    groups = match.groupdict()
    if name in ("later", "earlier"):
        count = groups["count"]
        amount = int(count) if count.isdigit() else _COUNTS[count]
        days = amount * (7 if groups["unit"] == "week" else 1)
        day = base + dt.timedelta(days=days if name == "later" else -days)
        return day, day
    if name in ("next_day", "day_before"):
        day = base + dt.timedelta(days=1 if name == "next_day" else -1)
        return day, day
    if name == "weekday_after":
        weekday = _WEEKDAY_ALIASES[groups.get("weekday") or groups["weekday2"]]
        # Strictly after: the Monday after a Monday appointment is a week later.
        day = base + dt.timedelta(days=(weekday - base.weekday() - 1) % 7 + 1)
        return day, day
    if name == "weekday_before":
        weekday = _WEEKDAY_ALIASES[groups["weekday"]]
        day = base - dt.timedelta(days=(base.weekday() - weekday - 1) % 7 + 1)
        return day, day
    monday, sunday = _monday(base), _monday(base) + dt.timedelta(days=6)
    if name == "week_after":
        return monday + dt.timedelta(days=7), sunday + dt.timedelta(days=7)
    if name == "week_before":
        return monday - dt.timedelta(days=7), sunday - dt.timedelta(days=7)
    if name == "later_that_week":
        return base + dt.timedelta(days=1), sunday
    if name == "earlier_that_week":
        return monday, base - dt.timedelta(days=1)
    if name == "that_week":
        return monday, sunday
    return base, base  # that_day


def _monday(day: dt.date) -> dt.date:
    return day - dt.timedelta(days=day.weekday())


def _read_ranges(text: str, today: dt.date, reading: _Reading) -> str:
    patterns = [
        (r"\b(?:the )?week after next\b", lambda: _week(today, 2)),
        (r"\bnext week(?:end)?\b", None),
        (r"\b(?:this|current|later this|rest of (?:the|this)) week\b",
         lambda: (today, _monday(today) + dt.timedelta(days=6))),
        (r"\b(?:this |the )?weekend\b", None),
        (r"\bnext month\b", lambda: _month(today, 1)),
        (r"\b(?:this|rest of (?:the|this)) month\b", lambda: (today, _month(today, 0)[1])),
    ]
    for pattern, days in patterns:
        match = re.search(pattern, text)
        if not match:
            continue
        phrase = match.group(0)
        if "weekend" in phrase:
            saturday = _monday(today) + dt.timedelta(days=5)
            if phrase.startswith("next"):
                saturday += dt.timedelta(days=7)
            first, last = max(saturday, today), saturday + dt.timedelta(days=1)
        elif phrase == "next week":
            first, last = _week(today, 1)
        else:
            first, last = days()
        reading.set_days(first, last)
        return text[: match.start()] + " " + text[match.end():]
    return text


def _week(today: dt.date, weeks_ahead: int) -> Tuple[dt.date, dt.date]:
    monday = _monday(today) + dt.timedelta(weeks=weeks_ahead)
    return monday, monday + dt.timedelta(days=6)


def _month(today: dt.date, months_ahead: int) -> Tuple[dt.date, dt.date]:
    year, month = today.year, today.month + months_ahead
    year, month = year + (month - 1) // 12, (month - 1) % 12 + 1
    return dt.date(year, month, 1), dt.date(year, month, calendar.monthrange(year, month)[1])


def _read_named_days(text: str, today: dt.date, reading: _Reading) -> str:
    if re.search(rf"\b(yesterday|last (?:week|month|{_WEEKDAY_RE})|ago)\b", text):
        raise DateInPast(today - dt.timedelta(days=1))
    simple = [
        (r"\b(?:the )?day after tomorrow\b", 2),
        (r"\btomorrow\b", 1),
        (r"\btoday\b|\bthis (?:afternoon|evening|morning)\b|\bnow\b", 0),
    ]
    for pattern, offset in simple:
        match = re.search(pattern, text)
        if match and not reading.has_days:
            reading.set_days(today + dt.timedelta(days=offset))
            return text[: match.start()] + " " + text[match.end():]
    match = re.search(rf"\b(?:(next|this|coming|on|the) )?({_WEEKDAY_RE})\b", text)
    if match and not reading.has_days:
        weekday = _WEEKDAY_ALIASES[match.group(2)]
        ahead = (weekday - today.weekday()) % 7
        if match.group(1) == "next":
            # "next Tuesday" = the Tuesday of next week.
            day = _monday(today) + dt.timedelta(days=7 + weekday)
        else:
            day = today + dt.timedelta(days=ahead)  # today included ("friday" on a Friday)
        reading.set_days(day)
        return text[: match.start()] + " " + text[match.end():]
    return text


def _read_explicit_dates(text: str, today: dt.date, reading: _Reading, date_order: str) -> str:
    """Day + month in words or digits, checked against the calendar before anything else."""
    patterns = [
        rf"\b(?P<day>\d{{1,2}})(?:st|nd|rd|th)?(?: of)? (?P<month>{_MONTH_RE})\b(?: (?P<year>\d{{4}}))?",
        rf"\b(?P<month>{_MONTH_RE}) (?:the )?(?P<day>\d{{1,2}})(?:st|nd|rd|th)?\b(?:,? (?P<year>\d{{4}}))?",
        r"\b(?P<a>\d{1,2})[/.](?P<b>\d{1,2})(?:[/.](?P<year>\d{2,4}))?\b",
    ]
    for pattern in patterns:
        match = re.search(pattern, text)
        if not match:
            continue
        groups = match.groupdict()
        if "a" in groups:
            first, second = int(groups["a"]), int(groups["b"])
            day, month = (second, first) if date_order.upper().startswith("M") else (first, second)
        else:
            day = int(groups["day"])
            month = _MONTHS[groups["month"]]
        year = groups.get("year")
        resolved = _resolve_day_month(day, month, int(year) if year else None, today,
                                      match.group(0))
        if not reading.has_days:
            reading.set_days(resolved)
        return text[: match.start()] + " " + text[match.end():]
    match = re.search(r"\b(?:the )?(\d{1,2})(st|nd|rd|th)\b", text)
    if match:
        day = int(match.group(1))
        if not 1 <= day <= 31:
            raise ImpossibleDate(match.group(0))
        candidate = _day_of_month(today.year, today.month, day)
        if candidate is None or candidate < today:
            year, month = (today.year + 1, 1) if today.month == 12 else (today.year, today.month + 1)
            candidate = _day_of_month(year, month, day)
            if candidate is None:  # "the 31st" said in a month followed by a 30-day month
                year, month = (year + 1, 1) if month == 12 else (year, month + 1)
                candidate = _day_of_month(year, month, day)
        if candidate is None:
            raise ImpossibleDate(match.group(0))
        if not reading.has_days:
            reading.set_days(candidate)
        return text[: match.start()] + " " + text[match.end():]
    match = re.search(rf"\b(early |late |mid |in |during )?({_MONTH_RE})\b(?: (\d{{4}}))?", text)
    # "may" alone is usually the verb ("I may be late"), and "mar", "jun"... are rare
    # words: a month alone counts when written out in full, or after "in", "early"...
    if match and (match.group(1) or (match.group(2) in _FULL_MONTHS and match.group(2) != "may")):
        # A whole month: "in April" (this year's, or next year's once it has passed).
        month = _MONTHS[match.group(2)]
        year = int(match.group(3)) if match.group(3) else today.year
        if not match.group(3) and month < today.month:
            year += 1
        first, last = dt.date(year, month, 1), _month(dt.date(year, month, 1), 0)[1]
        if last < today:
            raise DateInPast(last)
        if not reading.has_days:
            reading.set_days(max(first, today), last)
        return text[: match.start()] + " " + text[match.end():]
    return text


def _day_of_month(year: int, month: int, day: int) -> Optional[dt.date]:
    try:
        return dt.date(year, month, day)
    except ValueError:
        return None


def _resolve_day_month(day: int, month: int, year: Optional[int], today: dt.date,
                       said: str) -> dt.date:
    if not 1 <= month <= 12 or not 1 <= day <= 31:
        raise ImpossibleDate(said)
    if year is not None:
        if year < 100:
            year += 2000
        resolved = _day_of_month(year, month, day)
        if resolved is None:
            raise ImpossibleDate(said)
        return resolved
    # The month never has that many days (29 February is checked on the year it lands in).
    longest = 29 if month == 2 else calendar.monthrange(2001, month)[1]
    if day > longest:
        raise ImpossibleDate(said)
    this_year = _day_of_month(today.year, month, day)
    if this_year is not None and this_year >= today:
        return this_year
    if this_year is not None and (today - this_year).days <= RECENTLY_PASSED_DAYS:
        raise DateInPast(this_year)
    next_year = _day_of_month(today.year + 1, month, day)
    if next_year is None:
        raise ImpossibleDate(said)  # 29 February, and next year is not a leap year
    return next_year


def _dateparser_day(text: str, now: dt.datetime, timezone: ZoneInfo,
                    date_order: str, language: Optional[str] = "en") -> Optional[dt.date]:
    settings = {
        "PREFER_DATES_FROM": "future",
        "TIMEZONE": str(timezone.key),
        "RETURN_AS_TIMEZONE_AWARE": True,
        "RELATIVE_BASE": now.replace(tzinfo=None),
        "DATE_ORDER": date_order,
        "STRICT_PARSING": False,
    }
    try:
        # The conversation's language first, then the one the text is written in (the
        # slot may be wrong), then English.
        written_in = ["ru"] if has_cyrillic(text) else ["zh"] if has_han(text) else []
        languages = list(dict.fromkeys([language_code(language), *written_in, "en"]))
        parsed = dateparser.parse(text, languages=languages, settings=settings)
    except Exception:  # noqa: BLE001 - dateparser may raise on odd input; it's just "unread"
        return None
    if parsed is None:
        return None
    day = parsed.astimezone(timezone).date()
    if day < now.date():
        raise DateInPast(day)
    return day


def _window(reading: _Reading, now: dt.datetime, tz: ZoneInfo,
            opening_hours: Optional[Mapping[int, Sequence[Tuple[dt.time, dt.time]]]],
            closed_dates: Collection[dt.date], horizon_days: int) -> TimeWindow:
    today = now.date()
    if reading.has_days:
        first, last = reading.first_day, reading.last_day
        single = first == last
    else:
        first, last, single = today, today + dt.timedelta(days=horizon_days), False
    assert first is not None and last is not None
    if last < today:
        raise DateInPast(last)
    earliest = max(_at(first, reading.day_start or dt.time(0, 0), tz), now)
    if reading.day_end is not None:
        latest = _at(last, reading.day_end, tz)
    else:
        latest = _at(last + dt.timedelta(days=1), dt.time(0, 0), tz)
    if latest <= now:
        raise DateInPast(last)  # e.g. "today at 8" said at 10:30
    if single and opening_hours is not None:
        hours = tuple(opening_hours.get(first.weekday(), ()))
        if first in closed_dates or not hours:
            raise ClinicClosed(first)
        wanted_start = reading.day_start or dt.time(0, 0)
        wanted_end = reading.day_end or dt.time(23, 59, 59)
        if not any(start < wanted_end and wanted_start < end for start, end in hours):
            raise ClinicClosed(first, hours)
    return TimeWindow(earliest=earliest, latest=latest, day_start=reading.day_start,
                      day_end=reading.day_end, single_day=single)


def _at(day: dt.date, time: dt.time, tz: ZoneInfo) -> dt.datetime:
    """Local wall time on ``day``; zoneinfo picks the right UTC offset across DST changes."""
    return dt.datetime.combine(day, time, tzinfo=tz)
