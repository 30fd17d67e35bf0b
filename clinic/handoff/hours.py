"""When each team is staffed, and how long a patient may wait: the facts behind the
"who, how long, when" a patient is told after asking for a person.

Staffed hours come from the clinic settings (content/clinic.yml): the nurse team answers
during the nurse-line hours, billing & insurance and reception during reception hours.

The wording (``tomorrow at 08:00``, ``about 15 minutes``, ``Mon–Fri 08:00–18:00``) is built
here in the patient's language (en, ru, zh; anything else reads as English). Each phrase
stands on its own so a response can quote it anywhere in its sentence:
ru ``завтра в 08:00`` / ``в понедельник в 08:00`` (no preposition needed before it),
``примерно 15 минут``; zh ``明天 08:00``, ``约15分钟``.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Optional, Sequence, Tuple

from clinic.handoff.teams import Team
from clinic.i18n import babel_locale, language_code, plural_category, ru_on_weekday
from clinic.settings import ClinicSettings, OpeningHours

_WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")

_OPENING = {
    "en": {"today": "today at {clock}", "tomorrow": "tomorrow at {clock}",
           "weekday": "{weekday} at {clock}", "unknown": "the next opening day"},
    "ru": {"today": "сегодня в {clock}", "tomorrow": "завтра в {clock}",
           "weekday": "{weekday} в {clock}", "unknown": "в ближайший рабочий день"},
    "zh": {"today": "今天 {clock}", "tomorrow": "明天 {clock}",
           "weekday": "{weekday} {clock}", "unknown": "下一个工作日"},
}
# Russian nouns after a number: CLDR plural category → form (5 минут, 2 часа, 21 час).
_WAIT = {
    "en": {"minutes": lambda n: f"about {n} minutes", "hours": lambda n: f"about {n} hours"},
    "ru": {"minutes": lambda n: f"примерно {n} {_ru_form(n, 'минута', 'минуты', 'минут')}",
           "hours": lambda n: f"примерно {n} {_ru_form(n, 'час', 'часа', 'часов')}"},
    "zh": {"minutes": lambda n: f"约{n}分钟", "hours": lambda n: f"约{n}小时"},
}
# How opening hours are listed: day range separator, between windows of one day, between days.
_HOURS_PUNCTUATION = {"ru": ("–", " и ", ", "), "zh": ("至", "、", "，")}


def _ru_form(number: int, one: str, few: str, many: str) -> str:
    category = plural_category("ru", number)
    return one if category == "one" else few if category == "few" else many


def team_hours(settings: ClinicSettings, team: Team) -> OpeningHours:
    return settings.nurse_line_hours if team is Team.NURSE else settings.reception_hours


def is_staffed(settings: ClinicSettings, team: Team, moment: Optional[dt.datetime] = None) -> bool:
    local = (moment or settings.now()).astimezone(settings.timezone)
    return team_hours(settings, team).is_open(local)


def next_opening(hours: OpeningHours, moment: dt.datetime) -> Optional[dt.datetime]:
    """The next start of a staffed window after ``moment`` (local, aware), within 8 days."""
    for offset in range(0, 8):
        day = (moment + dt.timedelta(days=offset)).date()
        for start, _end in sorted(hours.windows.get(day.weekday(), ())):
            candidate = dt.datetime.combine(day, start, tzinfo=moment.tzinfo)
            if candidate > moment:
                return candidate
    return None


def describe_opening(opening: Optional[dt.datetime], now: dt.datetime, *,
                     language: Optional[str] = "en") -> str:
    """Patient-facing: ``today at 14:00``, ``tomorrow at 08:00``, ``Monday at 08:00``;
    ``the next opening day`` when no opening is known (``None``)."""
    language = language_code(language)
    words = _OPENING[language]
    if opening is None:
        return words["unknown"]
    days = (opening.date() - now.date()).days
    clock = opening.strftime("%H:%M")
    if days == 0:
        return words["today"].format(clock=clock)
    if days == 1:
        return words["tomorrow"].format(clock=clock)
    return words["weekday"].format(weekday=_weekday(opening.weekday(), language), clock=clock)


def _weekday(weekday: int, language: str) -> str:
    if language == "en":
        return _WEEKDAYS[weekday]
    if language == "ru":
        return ru_on_weekday(weekday)  # "в понедельник в 08:00": no preposition needed
    return babel_locale(language).days["format"]["wide"][weekday]  # 星期一


def describe_wait(minutes: int, *, language: Optional[str] = "en") -> str:
    """``about 5 minutes`` … ``about 2 hours``: rounded up, never falsely precise."""
    words = _WAIT[language_code(language)]
    if minutes <= 60:
        return words["minutes"](max(5, 5 * math.ceil(minutes / 5)))
    return words["hours"](math.ceil(minutes / 60))


def describe_hours(hours: OpeningHours, *, language: Optional[str] = "en") -> str:
    """Staffed hours: ``Mon–Fri 08:00–18:00, Sat 09:00–12:00`` (English: the settings' own
    wording, unchanged) · ``пн–пт 08:00–18:00, сб 09:00–12:00`` ·
    ``周一至周五 08:00–18:00，周六 09:00–12:00``. Consecutive days with the same windows
    are grouped."""
    language = language_code(language)
    if language == "en":
        return hours.describe()
    day_range, and_, between_days = _HOURS_PUNCTUATION[language]
    names = babel_locale(language).days["stand-alone"]["abbreviated"]
    groups: list = []  # [first day, last day, windows]
    for day in range(7):
        windows = tuple(sorted(hours.windows.get(day, ())))
        if not windows:
            continue
        if groups and groups[-1][1] == day - 1 and groups[-1][2] == windows:
            groups[-1][1] = day
        else:
            groups.append([day, day, windows])
    parts = []
    for first, last, windows in groups:
        days = names[first] if first == last else f"{names[first]}{day_range}{names[last]}"
        parts.append(f"{days} {describe_windows(windows, language=language, joiner=and_)}")
    return between_days.join(parts)


def describe_windows(windows: Sequence[Tuple[dt.time, dt.time]], *,
                     language: Optional[str] = "en", joiner: Optional[str] = None) -> str:
    """``08:00–12:00, 13:00–17:00`` (the hours of one day), joined the language's way."""
    language = language_code(language)
    if joiner is None:
        joiner = {"en": ", ", "ru": ", ", "zh": "、"}[language]
    return joiner.join(f"{start:%H:%M}–{end:%H:%M}" for start, end in windows)
