"""Patient-facing dates, times and catalogue names in en / ru / zh (clinic.scheduling
formatting and translations, clinic.i18n, actions.labels): the exact wording, the lengths
WhatsApp allows, and English unchanged."""

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from actions.labels import LABELS, label, people
from clinic.i18n import language_code
from clinic.scheduling import formatting
from clinic.scheduling.demo_data import LOCATIONS, SERVICES
from clinic.scheduling.model import (
    Appointment,
    AppointmentStatus,
    Location,
    Practitioner,
    Service,
    Slot,
)
from clinic.scheduling.translations import (
    location_name,
    service_name,
    service_preparation,
    with_translated_synonyms,
)

TZ = ZoneInfo("Europe/Berlin")
# Tuesday 3 March 2026, 09:20 in Berlin (08:20 UTC).
MOMENT = dt.datetime(2026, 3, 3, 8, 20, tzinfo=dt.timezone.utc)
OKAFOR = Practitioner("okafor", "Dr Amara Okafor", "general practice", ("English",))
LINDQVIST = Practitioner("lindqvist", "Dr Jonas Lindqvist", "general practice", ("English",))
RIVERSIDE = Location(**{k: v for k, v in LOCATIONS[0].items()})
BLOOD = Service(**{k: (tuple(v) if k == "synonyms" else v) for k, v in SERVICES[2].items()})


@pytest.mark.parametrize("language, short, long, day", [
    ("en", "Tue 3 Mar 09:20", "Tuesday 3 March 2026 at 09:20", "Sunday 29 March"),
    ("ru", "вт, 3 мар., 09:20", "вторник, 3 марта 2026 г. в 09:20", "воскресенье, 29 марта"),
    ("zh", "3月3日周二 09:20", "2026年3月3日星期二 09:20", "3月29日星期日"),
    # Unknown or unset: English.
    ("fr", "Tue 3 Mar 09:20", "Tuesday 3 March 2026 at 09:20", "Sunday 29 March"),
    (None, "Tue 3 Mar 09:20", "Tuesday 3 March 2026 at 09:20", "Sunday 29 March"),
])
def test_dates_and_times_in_each_language(language, short, long, day):
    assert formatting.short_when(MOMENT, TZ, language=language) == short
    assert formatting.long_when(MOMENT, TZ, language=language) == long
    assert formatting.long_day(dt.date(2026, 3, 29), language=language) == day


def test_english_is_the_default_and_unchanged():
    assert formatting.long_when(MOMENT, TZ) == "Tuesday 3 March 2026 at 09:20"
    assert formatting.short_when(MOMENT, TZ) == "Tue 3 Mar 09:20"
    assert formatting.long_day(dt.date(2026, 9, 30)) == "Wednesday 30 September"
    assert formatting.short_when(dt.datetime(2026, 9, 30, 16, 5, tzinfo=TZ), TZ) == "Wed 30 Sep 16:05"


@pytest.mark.parametrize("language, on, by", [
    ("en", "Sunday 29 March", "Sunday 29 March"),
    # "Ждём вас {visit_date} в {visit_time}", "ожидаем их к {status_expected}".
    ("ru", "в воскресенье, 29 марта", "29 марта (вс)"),
    ("zh", "3月29日星期日", "3月29日星期日"),
])
def test_days_as_the_responses_quote_them(language, on, by):
    day = dt.date(2026, 3, 29)
    assert formatting.on_day(day, language=language) == on
    assert formatting.by_day(day, language=language) == by
    assert formatting.on_day(dt.date(2026, 3, 31), language="ru") == "во вторник, 31 марта"


def test_no_server_locale_or_no_break_spaces_leak_in():
    text = formatting.long_when(MOMENT, TZ, language="ru")
    assert "\u202f" not in text and "\u00a0" not in text


@pytest.mark.parametrize("language", ["en", "ru", "zh"])
def test_list_rows_fit_whatsapp_on_every_day_of_the_year(language):
    start = dt.datetime(2026, 1, 1, 7, 0, tzinfo=TZ)
    for day in range(366):
        moment = start + dt.timedelta(days=day, minutes=day % 60)
        for practitioner in (OKAFOR, LINDQVIST):
            slot = Slot("s", moment, moment, practitioner, RIVERSIDE, "gp_consultation")
            assert len(formatting.slot_title(slot, TZ, True, language=language)) <= 24
        assert len(formatting.short_when(moment, TZ, language=language)) <= 19


@pytest.mark.parametrize("language, title", [
    ("en", "Tue 3 Mar 09:20 Okafor"),
    ("ru", "вт, 3 мар. 09:20 Okafor"),
    ("zh", "3月3日周二 09:20 Okafor"),
])
def test_slot_titles_keep_the_surname_whole_where_it_fits(language, title):
    slot = Slot("s", MOMENT, MOMENT, OKAFOR, RIVERSIDE, "gp_consultation")
    assert formatting.slot_title(slot, TZ, True, language=language) == title
    assert formatting.slot_title(slot, TZ, False, language=language) == \
        formatting.short_when(MOMENT, TZ, language=language)
    assert formatting.row_title(MOMENT, TZ, OKAFOR, language=language) == title


def test_appointment_variables_in_russian_and_chinese():
    appointment = Appointment("apt_1", AppointmentStatus.BOOKED, MOMENT, MOMENT, BLOOD, OKAFOR,
                              RIVERSIDE, "p1", "s1", MOMENT)
    en = formatting.appointment_variables(appointment, TZ)
    assert (en["appointment_service"], en["appointment_location"]) == (
        "Blood test", "Riverside Family Clinic (main site)")
    assert en["appointment_preparation"] == BLOOD.preparation
    ru = formatting.appointment_variables(appointment, TZ, language="ru")
    assert ru["appointment_when"] == "вторник, 3 марта 2026 г. в 09:20"
    assert ru["appointment_service"] == "Анализ крови"
    assert ru["appointment_location"] == "Riverside Family Clinic (основное отделение)"
    assert ru["appointment_preparation"].startswith("Можно ли есть и пить перед анализом")
    assert ru["appointment_address"] == en["appointment_address"]  # a postal address
    assert ru["appointment_practitioner"] == "Dr Amara Okafor"  # names as the clinic has them
    zh = formatting.appointment_variables(appointment, TZ, language="zh")
    assert (zh["appointment_when"], zh["appointment_service"]) == ("2026年3月3日星期二 09:20", "验血")
    slot = Slot("s", MOMENT, MOMENT, OKAFOR, RIVERSIDE, "blood_test")
    assert formatting.slot_variables(slot, "验血", TZ, language="zh")["appointment_location"] == \
        "Riverside Family Clinic（总院）"


def test_every_demo_service_and_site_has_russian_and_chinese_wording():
    for data in SERVICES:
        service = Service(**{k: (tuple(v) if k == "synonyms" else v) for k, v in data.items()})
        for language in ("ru", "zh"):
            assert service_name(service, language) != service.name
            assert service_preparation(service, language) != service.preparation
            assert len(service_name(service, language)) <= 24  # a list row
        assert service_name(service, "en") == service.name
    for data in LOCATIONS:
        location = Location(**data)
        assert location_name(location, "ru") != location.name != location_name(location, "zh")


def test_services_without_translations_stay_in_the_clinics_english():
    ehr_service = Service("ehr_42", "Ear syringing", "nursing", 15, "Bring nothing.")
    assert service_name(ehr_service, "ru") == "Ear syringing"
    assert service_preparation(ehr_service, "zh") == "Bring nothing."


def test_translated_synonyms_let_patients_type_the_service_in_their_language():
    from clinic.scheduling.answers import match_service

    catalogue = with_translated_synonyms([BLOOD])
    assert match_service("хочу сдать анализ крови", catalogue).id == "blood_test"
    assert match_service("验血", catalogue).id == "blood_test"
    assert match_service("blood test", catalogue).id == "blood_test"
    assert catalogue[0].synonyms[:len(BLOOD.synonyms)] == BLOOD.synonyms


def test_language_codes():
    assert [language_code(v) for v in ("ru", "RU-ru", "zh_Hans_CN", "zh-CN", "en", "de", "", None)] \
        == ["ru", "ru", "zh", "zh", "en", "en", "en", "en"]


BUTTON_LABELS = ("anyone", "another_time", "anyone_available", "talk_to_reception", "reschedule",
                 "cancel")


def test_every_label_has_three_languages_and_buttons_fit():
    for key, texts in LABELS.items():
        assert set(texts) == {"en", "ru", "zh"} and all(texts.values()), key
    for key in BUTTON_LABELS:
        assert all(len(text) <= 20 for text in LABELS[key].values()), key
    assert label("anyone", "ru") == "Любой специалист" and label("anyone", "xx") == "Anyone"


@pytest.mark.parametrize("count, en, ru, zh", [
    (0, "nobody", "никого", "0人"), (1, "1 person", "1 человек", "1人"),
    (3, "3 people", "3 человека", "3人"), (5, "5 people", "5 человек", "5人"),
    (22, "22 people", "22 человека", "22人"),
])
def test_people_ahead_in_the_queue(count, en, ru, zh):
    assert (people(count), people(count, "ru"), people(count, "zh")) == (en, ru, zh)
