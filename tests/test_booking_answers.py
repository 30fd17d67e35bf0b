"""The booking form's typed answers in every language (issue 12, follow-up of the
walk-through: «любой» typed to "which practitioner?" was not accepted, and «другой врач» /
换个医生, which utter_ask_booking_slot tells patients to write, were not understood:
clinic/scheduling/answers.py read English only).

The words are data (content/booking_answers.yml); these tests check the parser per language.
The form's validation with them (a Tracker and a CollectingDispatcher):
tests/test_actions_appointments.py, "typed answers in Russian and Chinese".
"""

from __future__ import annotations

import pytest
import yaml

from clinic.language.catalogue import default_catalogue
from clinic.scheduling.answers import (
    ANSWER_WORDS_FILE,
    AnswerWords,
    AnswerWordsError,
    answer_words,
    choice_index,
    match_practitioner,
    requested_change,
    wants_anyone,
)
from clinic.scheduling.model import Practitioner
from tests.conftest import PROJECT_ROOT

LABELS = yaml.safe_load((PROJECT_ROOT / "content" / "labels.yml").read_text(encoding="utf-8"))["labels"]


# --- the data ---------------------------------------------------------------------------


def test_every_kind_of_answer_has_words_in_every_language():
    assert set(answer_words().languages) == set(default_catalogue().codes)


def test_a_word_yaml_reads_as_something_else_is_refused(tmp_path):
    data = yaml.safe_load(ANSWER_WORDS_FILE.read_text(encoding="utf-8"))
    data["choice"]["number_before"]["en"].append(False)  # an unquoted `no`
    path = tmp_path / "booking_answers.yml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    with pytest.raises(AnswerWordsError, match="number_before.en"):
        AnswerWords.from_file(path)


# --- "anyone" -----------------------------------------------------------------------------


@pytest.mark.parametrize("text", [
    # en
    "anyone", "anyone is fine", "I don't mind", "doesnt matter", "no preference", "whoever",
    # ru
    "любой", "Любой!", "любой врач", "к любому врачу", "любого специалиста", "мне всё равно",
    "без разницы", "кто угодно", "кто-нибудь", "не важно", "нет предпочтений",
    # zh
    "随便", "都可以", "都行", "谁都行", "任何人", "哪位都可以", "无所谓", "最早的就行",
])
def test_anyone_in_every_language(text):
    assert wants_anyone(text)


@pytest.mark.parametrize("text", ["Dr Okafor", "okafor please", "доктор Окафор", "Okafor医生",
                                  "company", "другой врач", "换个医生"])
def test_a_name_is_not_anyone(text):
    assert not wants_anyone(text)


@pytest.mark.parametrize("language", sorted(default_catalogue().codes))
def test_the_anyone_buttons_typed_read_as_anyone(language):
    for key in ("anyone", "anyone_available"):
        assert wants_anyone(LABELS[key][language]), (key, language)


# --- changes of mind ------------------------------------------------------------------------


@pytest.mark.parametrize("text, change", [
    # en (as before)
    ("can I see a different doctor", "practitioner"), ("someone else please", "practitioner"),
    ("someone else's doctor", "practitioner"), ("I need something else", "service"),
    ("actually another day", "time"), ("none of these work for me", "time"),
    # ru
    ("другой врач", "practitioner"), ("Другой врач, пожалуйста", "practitioner"),
    ("можно к другому врачу?", "practitioner"), ("хочу другого специалиста", "practitioner"),
    ("поменяйте врача", "practitioner"), ("кто-нибудь другой", "practitioner"),
    ("другую услугу", "service"), ("мне нужно что-то другое", "service"),
    ("другой день", "time"), ("можно другое время?", "time"), ("ничего не подходит", "time"),
    ("эти не подходят", "time"), ("другие варианты", "time"),
    # zh
    ("换个医生", "practitioner"), ("能换一位医生吗", "practitioner"), ("我想看别的医生", "practitioner"),
    ("换人", "practitioner"), ("其他护士", "practitioner"),
    ("换个项目", "service"), ("我要其他服务", "service"),
    ("换个时间", "time"), ("改天吧", "time"), ("其他日期", "time"), ("都不合适", "time"),
])
def test_changes_of_mind_in_every_language(text, change):
    assert requested_change(text) == change


@pytest.mark.parametrize("language", sorted(default_catalogue().codes))
def test_the_another_time_button_typed_reads_as_another_time(language):
    assert requested_change(LABELS["another_time"][language]) == "time"


@pytest.mark.parametrize("text", [
    "tuesday morning", "в следующий вторник утром", "во второй половине дня", "завтра",
    "下周二上午", "明天3点以后", "Dr Okafor", "любой", "随便",
])
def test_a_plain_answer_is_not_a_change(text):
    assert requested_change(text) is None


# --- "the second one" ----------------------------------------------------------------------


@pytest.mark.parametrize("text, index", [
    # en (as before)
    ("2", 1), ("the second one", 1), ("option 3", 2), ("last", 4), ("2nd please", 1),
    # ru
    ("второй", 1), ("вторую, пожалуйста", 1), ("давайте второе", 1), ("первый", 0),
    ("третий вариант", 2), ("вариант 2", 1), ("номер 3", 2), ("последний", 4),
    ("четвёртый", 3), ("четвертый", 3),
    # zh
    ("第二个", 1), ("第二", 1), ("第2个", 1), ("选2", 1), ("我要第三个", 2), ("最后一个", 4),
    ("第一个吧", 0),
])
def test_choices_in_every_language(text, index):
    assert choice_index(text, 5) == index


@pytest.mark.parametrize("text", [
    # Dates and times of day that start with an ordinal are a new preference, not a choice.
    "first thing tomorrow", "last week", "last friday",
    "во второй половине дня", "в первой половине дня", "второго мая", "первого числа",
    "на последней неделе", "в последний понедельник",
    "第二天", "第二周", "第一次",
    # Out of range, or nothing to pick.
    "седьмой", "第七个", "7", "tuesday", "во вторник", "в пятницу",
])
def test_not_choices(text):
    assert choice_index(text, 5) is None


# --- names ---------------------------------------------------------------------------------

PEOPLE = [
    Practitioner("okafor", "Dr Amara Okafor", "gp", ("English",)),
    Practitioner("lindqvist", "Dr Jonas Lindqvist", "gp", ("English",)),
]


@pytest.mark.parametrize("text", ["Dr Okafor please", "к доктору Okafor", "Okafor, пожалуйста",
                                  "我要Okafor医生", "Okafor大夫吧"])
def test_titles_around_a_name_in_every_language(text):
    assert match_practitioner(text, PEOPLE).id == "okafor"
