"""clinic.scheduling.preferences and answers: a patient's words → windows, names, dates.

"Now" is fixed: Thursday 26 March 2026, 10:30 in Berlin, three days before summer time
starts (Sunday 29 March, 02:00 → 03:00).
"""

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from clinic.scheduling.answers import (
    InvalidBirthDate,
    InvalidName,
    choice_index,
    clean_name,
    match_practitioner,
    match_service,
    parse_birth_date,
    requested_change,
    wants_anyone,
)
from clinic.scheduling.model import Practitioner, Service
from clinic.scheduling.preferences import (
    ClinicClosed,
    DateInPast,
    ImpossibleDate,
    TimeWindow,
    Unparseable,
    parse_preference,
)
from clinic.settings import OpeningHours

TZ = ZoneInfo("Europe/Berlin")
NOW = dt.datetime(2026, 3, 26, 10, 30, tzinfo=TZ)  # a Thursday
HOURS = OpeningHours.parse("mon-fri 08:00-18:00; sat 09:00-12:00").windows


def read(text, now=NOW, hours=HOURS, **kwargs):
    return parse_preference(text, now, TZ, opening_hours=hours, **kwargs)


def utc(moment):
    return moment.astimezone(dt.timezone.utc)


def local(year, month, day, hour=0, minute=0):
    return dt.datetime(year, month, day, hour, minute, tzinfo=TZ)


@pytest.mark.parametrize(
    "text, earliest, latest, day_start, day_end",
    [
        # "next Tuesday" is the Tuesday of next week; mornings are 06:00-12:00 local.
        ("next Tuesday morning", local(2026, 3, 31, 6), local(2026, 3, 31, 12),
         dt.time(6), dt.time(12)),
        ("Next tuesday MORNING please!", local(2026, 3, 31, 6), local(2026, 3, 31, 12),
         dt.time(6), dt.time(12)),
        # "after 3" is 15:00: the clinic is not open at 3 a.m.
        ("tomorrow after 3", local(2026, 3, 27, 15), local(2026, 3, 28), dt.time(15), None),
        ("tmrw after 3pm", local(2026, 3, 27, 15), local(2026, 3, 28), dt.time(15), None),
        ("friday afternoon", local(2026, 3, 27, 12), local(2026, 3, 27, 17),
         dt.time(12), dt.time(17)),
        ("any time next week", local(2026, 3, 30), local(2026, 4, 6), None, None),
        ("as soon as possible", NOW, local(2026, 4, 24), None, None),
        ("asap", NOW, local(2026, 4, 24), None, None),
        ("25 December", local(2026, 12, 25), local(2026, 12, 26), None, None),
        ("the 25th of december", local(2026, 12, 25), local(2026, 12, 26), None, None),
        ("in the evening", local(2026, 3, 26, 17), local(2026, 4, 23, 22),
         dt.time(17), dt.time(22)),
        ("before noon", NOW, local(2026, 4, 23, 12), None, dt.time(12)),
        ("between 9 and 11 on monday", local(2026, 3, 30, 9), local(2026, 3, 30, 11),
         dt.time(9), dt.time(11)),
        ("tomorrow at 10am", local(2026, 3, 27, 10), local(2026, 3, 27, 11),
         dt.time(10), dt.time(11)),
        ("around 4 on wednesday", local(2026, 4, 1, 15), local(2026, 4, 1, 17),
         dt.time(15), dt.time(17)),
        ("monday 10:30", local(2026, 3, 30, 10, 30), local(2026, 3, 30, 11, 30),
         dt.time(10, 30), dt.time(11, 30)),
        # A day of the month that has passed this month means next month's.
        ("the 14th", local(2026, 4, 14), local(2026, 4, 15), None, None),
        ("3/4", local(2026, 4, 3), local(2026, 4, 4), None, None),  # day first
        ("in april", local(2026, 4, 1), local(2026, 5, 1), None, None),
        ("this week", NOW, local(2026, 3, 30), None, None),
        ("next weekend", local(2026, 4, 4), local(2026, 4, 6), None, None),
        ("in 3 days", local(2026, 3, 29), local(2026, 3, 30), None, None),  # hours=None below
        ("friday", local(2026, 3, 27), local(2026, 3, 28), None, None),
        # "thursday" said on a Thursday is today (from now on).
        ("thursday", NOW, local(2026, 3, 27), None, None),
        ("later today", NOW, local(2026, 3, 27), None, None),
        ("this afternoon", local(2026, 3, 26, 12), local(2026, 3, 26, 17), dt.time(12),
         dt.time(17)),
        ("after lunch tomorrow", local(2026, 3, 27, 12), local(2026, 3, 28), dt.time(12), None),
    ],
)
def test_preferences_become_windows(text, earliest, latest, day_start, day_end):
    hours = None if text == "in 3 days" else HOURS  # 29 March is a Sunday
    window = read(text, hours=hours)
    assert (window.earliest, window.latest) == (earliest, latest)
    assert (window.day_start, window.day_end) == (day_start, day_end)
    assert window.earliest.tzinfo is not None


@pytest.mark.parametrize("text", ["yesterday", "last monday", "1 January 2020", "3 March",
                                  "today at 8", "last week", "2 weeks ago"])
def test_dates_in_the_past_are_refused(text):
    with pytest.raises(DateInPast):
        read(text)


@pytest.mark.parametrize("text", ["31 February", "30th of feb", "31/04", "32 march",
                                  "29 February"])  # February 2027 has 28 days
def test_impossible_dates_are_refused(text):
    with pytest.raises(ImpossibleDate):
        read(text)


def test_29_february_is_fine_when_the_next_one_exists():
    window = read("29 february", now=local(2027, 6, 1, 9))
    assert window.earliest == local(2028, 2, 29)


@pytest.mark.parametrize("text", ["sunday", "this sunday morning", "in 3 days"])
def test_days_the_clinic_is_closed(text):
    with pytest.raises(ClinicClosed) as raised:
        read(text)
    assert raised.value.day == dt.date(2026, 3, 29)
    assert raised.value.hours_that_day == ()


def test_hours_the_clinic_is_closed_on_an_open_day():
    with pytest.raises(ClinicClosed) as raised:
        read("saturday afternoon")
    assert raised.value.hours_that_day == ((dt.time(9), dt.time(12)),)


def test_public_holidays_can_be_closed_days():
    with pytest.raises(ClinicClosed):
        read("25 December", closed_dates={dt.date(2026, 12, 25)})


@pytest.mark.parametrize("text", ["asdf", "", "   ", "I may come", "blue", "🙂",
                                  "book me in", "x" * 5000])
def test_text_without_a_day_or_time(text):
    with pytest.raises(Unparseable):
        read(text)


def test_never_raises_anything_but_preference_errors():
    from clinic.scheduling.preferences import PreferenceError

    for text in ["31/31/31", "at 99", "between 25 and 26", "0/0", "the 0th", "at 12.75",
                 "in -3 days", "next next tuesday", "{}[]()", "32nd", "after 24:00"]:
        try:
            read(text)
        except PreferenceError:
            pass


def test_summer_time_starts_inside_a_window():
    # Monday after the switch: 08:00 local is 06:00 UTC (it was 07:00 UTC the week before).
    window = read("next monday morning")
    assert window.earliest.utcoffset() == dt.timedelta(hours=2)
    assert window.earliest.astimezone(dt.timezone.utc).hour == 4  # 06:00 local
    assert NOW.utcoffset() == dt.timedelta(hours=1)
    # The Sunday of the switch has 23 hours (measured in UTC: Python subtracts two times of
    # the same zone as wall-clock times).
    sunday = read("sunday", hours=None)
    assert utc(sunday.latest) - utc(sunday.earliest) == dt.timedelta(hours=23)


def test_summer_time_ends_inside_a_window():
    saturday = local(2026, 10, 24, 10)  # summer time ends Sunday 25 October, 03:00 → 02:00
    weekend = read("this weekend", now=saturday, hours=None)
    assert weekend.latest == local(2026, 10, 26)
    assert utc(weekend.latest) - utc(weekend.earliest) == dt.timedelta(hours=14 + 25)
    monday = read("monday morning", now=saturday)
    assert monday.earliest.utcoffset() == dt.timedelta(hours=1)


def test_window_survives_a_round_trip_through_a_slot_and_makes_a_query():
    window = read("next Tuesday morning")
    again = TimeWindow.from_dict(window.to_dict())
    assert again == window
    query = again.to_query("blood_test", practitioner_id=None, limit=10)
    assert (query.earliest, query.latest, query.day_start, query.day_end) == (
        window.earliest, window.latest, dt.time(6), dt.time(12))



# --- Russian and Chinese ----------------------------------------------------------------
# The same "now" (Thursday 26 March 2026, 10:30): each phrase means what its English
# counterpart in the table above means.

RU_WINDOWS = [
    ("завтра утром", local(2026, 3, 27, 6), local(2026, 3, 27, 12), dt.time(6), dt.time(12)),
    ("Завтра днём", local(2026, 3, 27, 12), local(2026, 3, 27, 17), dt.time(12), dt.time(17)),
    # "после обеда" is the English "after lunch": from 12:00.
    ("в следующий вторник после обеда", local(2026, 3, 31, 12), local(2026, 4, 1),
     dt.time(12), None),
    ("в следующую среду утром", local(2026, 4, 1, 6), local(2026, 4, 1, 12),
     dt.time(6), dt.time(12)),
    ("завтра после 15", local(2026, 3, 27, 15), local(2026, 3, 28), dt.time(15), None),
    ("завтра после 3", local(2026, 3, 27, 15), local(2026, 3, 28), dt.time(15), None),
    ("в пятницу", local(2026, 3, 27), local(2026, 3, 28), None, None),
    ("в пт до 12", local(2026, 3, 27), local(2026, 3, 27, 12), None, dt.time(12)),
    ("сегодня вечером", local(2026, 3, 26, 17), local(2026, 3, 26, 22), dt.time(17),
     dt.time(22)),
    ("в понедельник в 10 утра", local(2026, 3, 30, 10), local(2026, 3, 30, 11),
     dt.time(10), dt.time(11)),
    ("во вторник в 3 часа дня", local(2026, 3, 31, 15), local(2026, 3, 31, 16),
     dt.time(15), dt.time(16)),
    ("с 9 до 11 в понедельник", local(2026, 3, 30, 9), local(2026, 3, 30, 11),
     dt.time(9), dt.time(11)),
    ("в среду около 4", local(2026, 4, 1, 15), local(2026, 4, 1, 17), dt.time(15), dt.time(17)),
    ("как можно скорее", NOW, local(2026, 4, 24), None, None),
    ("в любое время на следующей неделе", local(2026, 3, 30), local(2026, 4, 6), None, None),
    ("вечером", local(2026, 3, 26, 17), local(2026, 4, 23, 22), dt.time(17), dt.time(22)),
    ("25 декабря", local(2026, 12, 25), local(2026, 12, 26), None, None),
    ("1 апреля 2027 г.", local(2027, 4, 1), local(2027, 4, 2), None, None),
    ("14-го числа", local(2026, 4, 14), local(2026, 4, 15), None, None),
    ("в апреле", local(2026, 4, 1), local(2026, 5, 1), None, None),
    ("на этой неделе", NOW, local(2026, 3, 30), None, None),
    ("на следующих выходных", local(2026, 4, 4), local(2026, 4, 6), None, None),
    ("в четверг", NOW, local(2026, 3, 27), None, None),
]

ZH_WINDOWS = [
    ("明天上午", local(2026, 3, 27, 6), local(2026, 3, 27, 12), dt.time(6), dt.time(12)),
    ("下周二下午", local(2026, 3, 31, 12), local(2026, 3, 31, 17), dt.time(12), dt.time(17)),
    ("下星期三早上", local(2026, 4, 1, 6), local(2026, 4, 1, 12), dt.time(6), dt.time(12)),
    ("明天3点以后", local(2026, 3, 27, 15), local(2026, 3, 28), dt.time(15), None),
    ("明天下午三点以后", local(2026, 3, 27, 15), local(2026, 3, 28), dt.time(15), None),
    ("周五", local(2026, 3, 27), local(2026, 3, 28), None, None),
    ("周五12点前", local(2026, 3, 27), local(2026, 3, 27, 12), None, dt.time(12)),
    ("今晚", local(2026, 3, 26, 17), local(2026, 3, 26, 22), dt.time(17), dt.time(22)),
    ("周一上午10点", local(2026, 3, 30, 10), local(2026, 3, 30, 11), dt.time(10), dt.time(11)),
    ("明天10点半", local(2026, 3, 27, 10, 30), local(2026, 3, 27, 11, 30),
     dt.time(10, 30), dt.time(11, 30)),
    ("周一9点到11点", local(2026, 3, 30, 9), local(2026, 3, 30, 11), dt.time(9), dt.time(11)),
    ("周三4点左右", local(2026, 4, 1, 15), local(2026, 4, 1, 17), dt.time(15), dt.time(17)),
    ("越快越好", NOW, local(2026, 4, 24), None, None),
    ("下周任何时间都可以", local(2026, 3, 30), local(2026, 4, 6), None, None),
    ("12月25日", local(2026, 12, 25), local(2026, 12, 26), None, None),
    ("２０２７年４月１日", local(2027, 4, 1), local(2027, 4, 2), None, None),  # full-width
    ("14号", local(2026, 4, 14), local(2026, 4, 15), None, None),
    ("4月", local(2026, 4, 1), local(2026, 5, 1), None, None),
    ("这周", NOW, local(2026, 3, 30), None, None),
    ("下周末", local(2026, 4, 4), local(2026, 4, 6), None, None),
    ("请帮我约明天中午", local(2026, 3, 27, 11, 30), local(2026, 3, 27, 13, 30),
     dt.time(11, 30), dt.time(13, 30)),
]


@pytest.mark.parametrize("language, text, earliest, latest, day_start, day_end",
                         [("ru", *row) for row in RU_WINDOWS] + [("zh", *row) for row in ZH_WINDOWS])
def test_russian_and_chinese_preferences_become_windows(language, text, earliest, latest,
                                                        day_start, day_end):
    window = read(text, language=language)
    assert (window.earliest, window.latest) == (earliest, latest)
    assert (window.day_start, window.day_end) == (day_start, day_end)


@pytest.mark.parametrize("language, text", [
    ("ru", "послезавтра после 15"), ("ru", "в субботу после обеда"),
    ("zh", "后天3点以后"), ("zh", "周六下午"),
])
def test_saturday_afternoon_is_closed_in_every_language(language, text):
    # 28 March is a Saturday: open 09:00-12:00 only.
    with pytest.raises(ClinicClosed) as raised:
        read(text, language=language)
    assert raised.value.day == dt.date(2026, 3, 28)
    assert raised.value.hours_that_day == ((dt.time(9), dt.time(12)),)


@pytest.mark.parametrize("language, text", [
    ("ru", "послезавтра после 15"), ("zh", "后天3点以后"),
])
def test_day_after_tomorrow_after_3_on_an_open_day(language, text):
    window = read(text, language=language, hours=None)
    assert (window.earliest, window.latest) == (local(2026, 3, 28, 15), local(2026, 3, 29))


@pytest.mark.parametrize("language, text", [
    ("ru", "вчера"), ("ru", "в прошлый понедельник"), ("ru", "на прошлой неделе"),
    ("ru", "3 марта"), ("ru", "2 дня назад"), ("ru", "сегодня в 8"),
    ("zh", "昨天"), ("zh", "上周一"), ("zh", "上周"), ("zh", "3月3日"), ("zh", "前天"),
    ("zh", "今天8点"),
])
def test_past_dates_are_refused_in_russian_and_chinese(language, text):
    with pytest.raises(DateInPast):
        read(text, language=language)


@pytest.mark.parametrize("language, text", [
    ("ru", "31 февраля"), ("ru", "30 февраля"), ("ru", "31 апреля"),
    ("zh", "2月31日"), ("zh", "4月31号"), ("zh", "13月5日"),
])
def test_impossible_dates_are_refused_in_russian_and_chinese(language, text):
    with pytest.raises(ImpossibleDate):
        read(text, language=language)


@pytest.mark.parametrize("language, text", [
    ("ru", "в воскресенье"), ("ru", "через 3 дня"), ("ru", "воскресенье утром"),
    ("zh", "周日"), ("zh", "星期天"), ("zh", "三天后"),
])
def test_closed_days_in_russian_and_chinese(language, text):
    with pytest.raises(ClinicClosed) as raised:
        read(text, language=language)
    assert raised.value.day == dt.date(2026, 3, 29)


@pytest.mark.parametrize("language, text", [
    ("ru", "не знаю"), ("ru", "привет"), ("ru", "запишите меня пожалуйста"), ("ru", "да"),
    ("zh", "你好"), ("zh", "不知道"), ("zh", "我想预约"), ("zh", "好的"),
])
def test_russian_and_chinese_text_without_a_day_or_time(language, text):
    with pytest.raises(Unparseable):
        read(text, language=language)


def test_the_language_slot_does_not_have_to_be_right():
    # Rules follow the script: an English conversation can still write Russian or Chinese,
    # and a Russian one English.
    assert read("завтра утром") == read("tomorrow morning")
    assert read("下周二下午") == read("next tuesday afternoon")
    assert read("tomorrow after 3", language="ru") == read("завтра после 3", language="ru")
    assert read("friday", language="fr") == read("friday")  # unknown language: English


def test_dateparser_reads_what_the_rules_leave_in_the_patients_language():
    # "через месяц" (in a month) has no rule: dateparser reads it, in Russian first.
    window = read("через месяц", language="ru", hours=None)
    assert (window.earliest, window.latest) == (local(2026, 4, 26), local(2026, 4, 27))
    assert read("через месяц", language="en", hours=None) == window  # the slot was wrong


def test_russian_and_chinese_never_raise_anything_but_preference_errors():
    from clinic.scheduling.preferences import PreferenceError

    for text in ["до 25 декабря", "в 99", "с 25 до 26", "31.31", "0-го числа", "через 99 дней",
                 "в следующий следующий вторник", "35 декабря", "после после 3", "в 24:00",
                 "二十五点", "99月99日", "0号", "下下下周", "上午下午晚上", "3点到", "到11点",
                 "十十十点", "周八", "明天昨天", "в 10 утра 3 часа дня", "ё" * 3000, "点" * 3000]:
        try:
            read(text, language="ru")
            read(text, language="zh")
        except PreferenceError:
            pass


# --- relative to the appointment being moved (the anchor) ------------------------------
# Moving a Thursday 10 December 2026 10:00 appointment. "Now" is still 26 March 2026: without
# the anchor, "the Monday after" was read as the coming Monday (30 March).

APPOINTMENT = local(2026, 12, 10, 10)  # a Thursday


@pytest.mark.parametrize("language, text, day", [
    ("en", "the Monday after", 14), ("en", "a week later", 17), ("en", "the day after", 11),
    ("en", "two days later", 12), ("en", "the following Tuesday", 15),
    ("en", "the next day", 11), ("en", "the day before", 9),
    ("ru", "в понедельник после этого", 14), ("ru", "через неделю после", 17),
    ("ru", "на следующий день", 11), ("ru", "через два дня после приёма", 12),
    ("ru", "на неделю позже", 17), ("ru", "накануне", 9),
    ("zh", "之后的周一", 14), ("zh", "一周后", 17), ("zh", "第二天", 11), ("zh", "推迟两天", 12),
    ("zh", "前一天", 9),
])
def test_relative_days_count_from_the_appointment_being_moved(language, text, day):
    window = read(text, language=language, anchor=APPOINTMENT)
    assert (window.earliest, window.latest) == (local(2026, 12, day), local(2026, 12, day + 1))
    assert (window.day_start, window.day_end, window.single_day) == (None, None, True)


@pytest.mark.parametrize("language, text", [
    ("en", "same time next week"), ("en", "next week, same time"),
    ("ru", "в то же время через неделю"), ("ru", "через неделю в это же время"),
    ("zh", "同一时间下周"), ("zh", "下周同一时间"),
])
def test_same_time_next_week_keeps_the_appointments_time_a_week_later(language, text):
    window = read(text, language=language, anchor=APPOINTMENT)
    assert (window.earliest, window.latest) == (local(2026, 12, 17, 10), local(2026, 12, 17, 11))
    assert (window.day_start, window.day_end) == (dt.time(10), dt.time(11))


def test_same_time_with_another_day_keeps_the_appointments_time():
    window = read("same time on friday", anchor=APPOINTMENT)
    assert (window.earliest, window.latest) == (local(2026, 3, 27, 10), local(2026, 3, 27, 11))
    # An hour the patient names wins over the appointment's.
    window = read("the same day at 3", anchor=APPOINTMENT)
    assert (window.earliest, window.day_start) == (local(2026, 12, 10, 15), dt.time(15))


@pytest.mark.parametrize("language, text", [
    ("en", "later that week"), ("ru", "позже на той же неделе"), ("zh", "那周晚些时候"),
])
def test_later_that_week_is_the_rest_of_the_appointments_week(language, text):
    window = read(text, language=language, anchor=APPOINTMENT)
    assert (window.earliest, window.latest) == (local(2026, 12, 11), local(2026, 12, 14))


@pytest.mark.parametrize("language, text", [
    ("en", "tomorrow"), ("en", "next Monday"), ("en", "10 December"), ("en", "in 3 days"),
    ("en", "next week"), ("en", "the day after tomorrow"), ("en", "friday after 3"),
    ("ru", "завтра"), ("ru", "в следующий понедельник"), ("ru", "через неделю"),
    ("ru", "в понедельник после обеда"),
    ("zh", "明天"), ("zh", "下周一"), ("zh", "三天后"), ("zh", "下周"),
])
def test_ordinary_phrases_still_count_from_today(language, text):
    hours = None if text in ("in 3 days", "三天后") else HOURS  # 29 March is a Sunday
    assert read(text, language=language, anchor=APPOINTMENT, hours=hours) == \
        read(text, language=language, hours=hours)
    assert read("tomorrow", anchor=APPOINTMENT).earliest == local(2026, 3, 27)


def test_without_an_anchor_relative_phrases_count_from_today():
    assert read("the day after").earliest == local(2026, 3, 27)
    assert read("the Monday after").earliest == local(2026, 3, 30)
    with pytest.raises(Unparseable):
        read("same time")  # no appointment, no time to keep


def test_relative_days_are_still_checked_against_today_and_opening_hours():
    with pytest.raises(DateInPast):
        read("the day before", anchor=local(2026, 3, 26, 9))  # the appointment is today
    with pytest.raises(ClinicClosed):
        read("three days later", anchor=APPOINTMENT)  # Sunday 13 December


# --- answers ----------------------------------------------------------------------------

SERVICES = [
    Service("gp_consultation", "GP consultation", "gp", 15, "", ("doctor", "GP", "check-up")),
    Service("blood_test", "Blood test", "nursing", 10, "", ("bloods", "lab test")),
    Service("physiotherapy", "Physiotherapy", "physio", 30, "", ("physio",)),
    Service("vaccination", "Vaccination", "nursing", 10, "", ("vaccine", "jab", "flu shot")),
]
PEOPLE = [
    Practitioner("okafor", "Dr Amara Okafor", "gp", ("English",)),
    Practitioner("lindqvist", "Dr Jonas Lindqvist", "gp", ("English",)),
    Practitioner("moreau", "Nurse Camille Moreau", "nursing", ("French",)),
]


@pytest.mark.parametrize("text, service_id", [
    ("a blood test please", "blood_test"), ("bloods", "blood_test"), ("physio", "physiotherapy"),
    ("fisiotherapy", "physiotherapy"), ("flu shot for me", "vaccination"),
    ("vacination", "vaccination"), ("GP consultation", "gp_consultation"),
    ("see a doctor", "gp_consultation"), ("blood_test", "blood_test"),
])
def test_services_are_matched_by_name_synonym_or_spelling(text, service_id):
    assert match_service(text, SERVICES).id == service_id


@pytest.mark.parametrize("text", ["dentist", "", "a haircut", "x-ray"])
def test_unknown_services_are_not_guessed(text):
    assert match_service(text, SERVICES) is None


def test_close_spellings_only_when_asked_for():
    assert match_service("a blood pressure check", SERVICES, fuzzy=False) is None
    assert match_service("need to book a blood test", SERVICES, fuzzy=False).id == "blood_test"


@pytest.mark.parametrize("text, practitioner_id", [
    ("Dr Okafor", "okafor"), ("okafor", "okafor"), ("dr okafr", "okafor"),
    ("with Jonas please", "lindqvist"), ("nurse moreau", "moreau"), ("lindqvist", "lindqvist"),
])
def test_practitioners_are_matched_by_name(text, practitioner_id):
    assert match_practitioner(text, PEOPLE).id == practitioner_id


@pytest.mark.parametrize("text", ["dr zebedee", "dr", "anyone", "the doctor", ""])
def test_unknown_practitioners_are_not_guessed(text):
    assert match_practitioner(text, PEOPLE) is None


def test_anyone_and_changes_of_mind():
    assert wants_anyone("anyone is fine") and wants_anyone("I don't mind")
    assert not wants_anyone("Dr Okafor")
    assert requested_change("actually another day") == "time"
    assert requested_change("none of these work for me") == "time"
    assert requested_change("can I see a different doctor") == "practitioner"
    assert requested_change("someone else please") == "practitioner"
    assert requested_change("I need something else") == "service"
    assert requested_change("tuesday morning") is None


def test_choices_by_number_or_ordinal():
    assert choice_index("2", 5) == 1
    assert choice_index("the second one", 5) == 1
    assert choice_index("option 3", 5) == 2
    assert choice_index("last", 5) == 4
    assert choice_index("7", 5) is None
    assert choice_index("tuesday", 5) is None


@pytest.mark.parametrize("text, name", [("Maria Jensen", "Maria Jensen"),
                                        ("my name is Tom Becker", "Tom Becker"),
                                        ("Zoë O'Neill-Ramos", "Zoë O'Neill-Ramos")])
def test_names(text, name):
    assert clean_name(text) == name


@pytest.mark.parametrize("text", ["", "A", "123456789", "Maria 1985", "DE89 3704 0044",
                                  "one two three four five six seven", "x" * 100])
def test_not_names(text):
    with pytest.raises(InvalidName):
        clean_name(text)


@pytest.mark.parametrize("text, born", [
    ("14/03/1985", dt.date(1985, 3, 14)), ("14.03.1985", dt.date(1985, 3, 14)),
    ("1985-03-14", dt.date(1985, 3, 14)), ("14 March 1985", dt.date(1985, 3, 14)),
    ("March 14th, 1985", dt.date(1985, 3, 14)), ("born 1 june 1978", dt.date(1978, 6, 1)),
])
def test_birth_dates(text, born):
    assert parse_birth_date(text, NOW.date()) == born


@pytest.mark.parametrize("text", ["31/02/1985", "14/03/2030", "14/03/1885", "14/03", "1985",
                                  "yesterday", "", "next tuesday"])
def test_not_birth_dates(text):
    with pytest.raises(InvalidBirthDate):
        parse_birth_date(text, NOW.date())
