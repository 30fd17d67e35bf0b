"""Patient-facing dates and times, always in the clinic's time zone, in the patient's
language (en, ru, zh; anything else reads as English).

Day and month names come from CLDR through Babel with an explicit locale, never from the
server's locale, so Russian gets its grammatical forms ("3 марта", not "3 март") and the
output does not change with the machine. English keeps the clinic's own British-style
wording ("Tuesday 3 March 2026 at 09:20"): CLDR's plain ``en`` is American ("March 3").
Short where WhatsApp limits length: a list row title holds 24 characters, a reply button 20.
"""

from __future__ import annotations

import datetime as dt
from typing import Optional
from zoneinfo import ZoneInfo

from babel.dates import format_date, format_skeleton, format_time

from clinic.i18n import babel_locale, language_code, ru_on_weekday
from clinic.scheduling.model import Appointment, Practitioner, Slot
from clinic.scheduling.translations import location_name, service_name, service_preparation

ROW_TITLE_MAX = 24  # WhatsApp interactive list row title

# Per language: how the date parts are written (Babel pattern or CLDR skeleton / width) and
# how a date and a time are joined.
#   short  list rows and buttons: "Tue 3 Mar" / "вт, 3 мар." / "3月3日周二"
#   long   confirmations: "Tuesday 3 March 2026" / "вторник, 3 марта 2026 г." / "2026年3月3日星期二"
#   day    a day without year: "Sunday 29 March" / "воскресенье, 29 марта" / "3月29日星期日"
_SHORT_DATE = {"en": ("pattern", "EEE d MMM"), "ru": ("skeleton", "MMMEd"),
               "zh": ("skeleton", "MMMEd")}
_LONG_DATE = {"en": ("pattern", "EEEE d MMMM y"), "ru": ("width", "full"), "zh": ("width", "full")}
# CLDR has no "weekday, day month" without a year for ru/zh (its MMMMEEEEd falls back to
# abbreviations), so these two are explicit patterns with CLDR's names.
_DAY = {"en": "EEEE d MMMM", "ru": "EEEE, d MMMM", "zh": "M月d日EEEE"}
_SHORT_JOIN = {"en": "{date} {time}", "ru": "{date}, {time}", "zh": "{date} {time}"}
_LONG_JOIN = {"en": "{date} at {time}", "ru": "{date} в {time}", "zh": "{date} {time}"}


def _plain(text: str) -> str:
    # CLDR puts (narrow) no-break spaces in "2026 г."; plain spaces keep lengths and what
    # tests, templates and the "09:20" matching of typed choices see predictable.
    return text.replace("\u202f", " ").replace("\u00a0", " ")


def _date(day: dt.date, how: tuple, language: str) -> str:
    kind, value = how
    locale = babel_locale(language)
    if kind == "skeleton":
        text = format_skeleton(value, day, locale=locale)
    else:  # an explicit pattern, or a CLDR width ("full")
        text = format_date(day, value, locale=locale)
    return _plain(text)


def _clock(moment: dt.datetime, language: str) -> str:
    # 24-hour clock in every language (CLDR's en default would be "9:20 AM").
    return format_time(moment, "HH:mm", locale=babel_locale(language))


def short_when(moment: dt.datetime, tz: ZoneInfo, *, language: Optional[str] = "en") -> str:
    """``Tue 3 Mar 09:20`` · ``вт, 3 мар., 09:20`` · ``3月3日周二 09:20`` (≤ 19 characters)."""
    language = language_code(language)
    local = moment.astimezone(tz)
    return _SHORT_JOIN[language].format(date=_date(local, _SHORT_DATE[language], language),
                                        time=_clock(local, language))


def long_when(moment: dt.datetime, tz: ZoneInfo, *, language: Optional[str] = "en") -> str:
    """``Tuesday 3 March 2026 at 09:20`` · ``вторник, 3 марта 2026 г. в 09:20`` ·
    ``2026年3月3日星期二 09:20``."""
    language = language_code(language)
    local = moment.astimezone(tz)
    return _LONG_JOIN[language].format(date=_date(local, _LONG_DATE[language], language),
                                       time=_clock(local, language))


def long_day(day: dt.date, *, language: Optional[str] = "en") -> str:
    """``Sunday 29 March`` · ``воскресенье, 29 марта`` · ``3月29日星期日``."""
    language = language_code(language)
    return _date(day, ("pattern", _DAY[language]), language)


def on_day(day: dt.date, *, language: Optional[str] = "en") -> str:
    """The day something happens on, for "we'll see you {visit_date} at {visit_time}":
    ``Sunday 29 March`` (English responses say "on" themselves) · ``в воскресенье, 29 марта``
    (Russian needs "в"/"во" and the accusative) · ``3月29日星期日``."""
    language = language_code(language)
    if language != "ru":
        return long_day(day, language=language)
    return f"{ru_on_weekday(day.weekday())}, {_date(day, ('pattern', 'd MMMM'), language)}"


def by_day(day: dt.date, *, language: Optional[str] = "en") -> str:
    """The day something is expected by, for "we expect them by {status_expected}":
    ``Sunday 29 March`` · ``29 марта (вс)`` (after "к"/"до" Russian cannot start with the
    weekday's name) · ``3月29日星期日``."""
    language = language_code(language)
    if language != "ru":
        return long_day(day, language=language)
    return _date(day, ("pattern", "d MMMM (ccc)"), language)


def clock(moment: dt.datetime, tz: ZoneInfo, *, language: Optional[str] = "en") -> str:
    """``09:20`` in the clinic's time zone (the same in the three languages)."""
    return _clock(moment.astimezone(tz), language_code(language))


def surname(practitioner: Practitioner) -> str:
    return practitioner.name.split()[-1] if practitioner.name.split() else practitioner.name


def row_title(moment: dt.datetime, tz: ZoneInfo, practitioner: Optional[Practitioner] = None,
              *, language: Optional[str] = "en") -> str:
    """A list row or button title: ``Tue 3 Mar 09:20``, or with the practitioner
    ``Tue 3 Mar 09:20 Okafor`` · ``вт, 3 мар. 09:20 Okafor`` · ``3月3日周二 09:20 Okafor``
    (cut to 24 characters: the surname is what gets cut)."""
    if practitioner is None:
        return short_when(moment, tz, language=language)[:ROW_TITLE_MAX].rstrip()
    language = language_code(language)
    local = moment.astimezone(tz)
    # Date and time joined by a plain space here: Russian's ", " costs a character the
    # surname needs ("вт, 16 июн. 08:00 Okafor" is exactly 24).
    when = f"{_date(local, _SHORT_DATE[language], language)} {_clock(local, language)}"
    return f"{when} {surname(practitioner)}"[:ROW_TITLE_MAX].rstrip()


def slot_title(slot: Slot, tz: ZoneInfo, with_practitioner: bool, *,
               language: Optional[str] = "en") -> str:
    """A list row title for a free slot, with the practitioner's surname when anyone may
    see the patient (see :func:`row_title`)."""
    return row_title(slot.start, tz, slot.practitioner if with_practitioner else None,
                     language=language)


def appointment_variables(appointment: Appointment, tz: ZoneInfo, *,
                          language: Optional[str] = "en") -> dict:
    """The values the appointment responses quote (``{appointment_when}``...), with the
    service and site in the patient's language where content/services.yml has them."""
    return {
        "appointment_id": appointment.id,
        "appointment_when": long_when(appointment.start, tz, language=language),
        "appointment_service": service_name(appointment.service, language),
        "appointment_practitioner": appointment.practitioner.name,
        "appointment_location": location_name(appointment.location, language),
        "appointment_address": appointment.location.address,
        "appointment_preparation": service_preparation(appointment.service, language),
    }


def slot_variables(slot: Slot, service_name: str, tz: ZoneInfo, *,
                   language: Optional[str] = "en") -> dict:
    """The same values for a slot the patient is about to confirm (``service_name`` as the
    caller already has it in the patient's language)."""
    return {
        "appointment_when": long_when(slot.start, tz, language=language),
        "appointment_service": service_name,
        "appointment_practitioner": slot.practitioner.name,
        "appointment_location": location_name(slot.location, language),
        "appointment_address": slot.location.address,
    }
