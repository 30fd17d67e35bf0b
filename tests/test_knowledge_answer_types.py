"""A question that asks for a time of day or a length of time, and the passage that states one
(clinic/knowledge/answer_types.py): "How long does an MRI take?" is answered by "…takes 20 to
45 minutes", which shares neither "long" nor "take" with it."""

from __future__ import annotations

import numpy as np
import pytest

from clinic.knowledge import answer_types
from clinic.knowledge.answer_types import CLOCK, DURATION, asked, stated
from clinic.knowledge.encoder import TermVectors
from clinic.knowledge.search import Searcher
from clinic.language.tokens import terms
from tests.knowledge_support import fresh_knowledge_base


@pytest.mark.parametrize("question, mark, gone", [
    ("How long does an MRI take?", DURATION, "long"),
    ("how many hours without food before a stomach scan?", DURATION, "hour"),
    ("What time do you close on Saturday?", CLOCK, "time"),
    ("Сколько длится МРТ?", DURATION, "длиться"),
    ("Как долго хранятся забытые вещи?", DURATION, "долго"),
    ("Во сколько вы открываетесь в субботу?", CLOCK, "сколько"),
    ("核磁共振要多久？", DURATION, "多久"),
    ("做心电图要多长时间？", DURATION, "多长时间"),
    ("周六几点开门？", CLOCK, "几点"),
])
def test_the_question_word_becomes_the_mark_of_what_the_answer_states(question, mark, gone):
    rest, marks = asked(question)
    assert marks == [mark]
    assert gone not in terms(rest)  # the question word is consumed, not left as a word to match


@pytest.mark.parametrize("question", [
    "How much does an MRI cost?", "Can I bring a long coat?", "When can I give blood?",
    "Сколько стоит МРТ?", "Можно ли долить воды?", "核磁共振多少钱？", "什么时候可以抽血？",
])
def test_other_questions_ask_for_neither(question):
    assert asked(question) == (question, [])


@pytest.mark.parametrize("text, marks", [
    ("An MRI examination takes 20 to 45 minutes.", [DURATION]),
    ("Results are published within three working days.", [DURATION]),
    ("Visitors are welcome every day from 14:00 to 19:00.", [CLOCK]),
    ("We are open Saturday 9 am to noon.", [CLOCK]),
    ("Come at 7.30am.", [CLOCK]),
    ("МРТ длится от 20 до 45 минут.", [DURATION]),
    ("Отмените приём не позднее чем за 24 часа.", [DURATION]),
    ("Кровь сдают по будням с 07:30 до 10:00.", [CLOCK]),
    ("核磁共振检查需要20到45分钟。", [DURATION]),
    ("我们会在10个工作日内答复每一项投诉。", [DURATION]),
    ("网上预约将暂停六个月。", [DURATION]),
    ("周六09:00至12:00营业。", [CLOCK]),
    ("Open 08:00–18:00; a visit takes half an hour.", [CLOCK, DURATION]),
])
def test_a_passage_is_marked_with_the_times_it_states(text, marks):
    assert stated(text) == marks


@pytest.mark.parametrize("text", [
    "Children under 16 years must come with a parent.",  # an age
    "Детей до 16 лет сопровождает родитель.",
    "16岁以下的儿童必须由父母陪同。",
    "会议室因盘点关闭于第46周。",  # week 46, a date
    "2026年3日", "Please use a day-surgery locker.", "At most two visitors at a time.",
    "A copy costs 2.50 euros.",  # a price, not half past two
])
def test_ages_dates_and_counts_are_not_times(text):
    assert stated(text) == []


TWO_MRI_PASSAGES = """# 检查

## 核磁共振时长

核磁共振检查需要20到45分钟。

## 核磁共振安全

装有心脏起搏器的患者做核磁共振检查前，请在预约时告诉我们。
""".encode()


@pytest.fixture
def kb(tmp_path):
    with fresh_knowledge_base(tmp_path) as knowledge:
        with knowledge.sessions.begin() as session:
            version = knowledge.upload(session, data=TWO_MRI_PASSAGES, name="mri.zh.md", by="reviewer",
                                       title="检查须知")
            knowledge.approve(session, version.id, "reviewer")
        yield knowledge


def test_the_passage_that_states_a_length_of_time_covers_a_how_long_question(kb):
    searcher = Searcher(kb.sessions, encoder=None)
    signals = searcher.signals("核磁共振要多久？", "zh")
    assert signals.query == ["核磁共振", DURATION]
    by_text = {signals.index.passages[i].text: signals.coverage.get(i, 0.0) for i in range(len(signals.index.passages))}
    duration = next(v for t, v in by_text.items() if "20到45分钟" in t)
    safety = next(v for t, v in by_text.items() if "起搏器" in t)
    assert duration == pytest.approx(1.0) and safety < 0.8
    answer = searcher.answer("核磁共振要多久？", "zh")
    assert answer.found and "20到45分钟" in answer.quote


@pytest.mark.parametrize("question", ["How long?", "Сколько времени?", "几点？"])
def test_a_question_word_alone_names_no_subject(kb, question):
    answer = Searcher(kb.sessions, encoder=None).answer(question, "zh")
    assert not answer.found and answer.reason == "no_terms"


def test_without_the_marks_the_two_passages_tie_on_coverage(kb, monkeypatch):
    # What the marks change: the question word alone covers neither passage.
    monkeypatch.setattr(answer_types, "asked", lambda question: (question, []))
    monkeypatch.setattr(answer_types, "stated", lambda text: [])
    signals = Searcher(kb.sessions, encoder=None).signals("核磁共振要多久？", "zh")
    assert DURATION not in signals.query
    assert len(set(round(v, 6) for v in signals.coverage.values())) == 1 and max(signals.coverage.values()) < 1.0


class _Recording:
    def __init__(self) -> None:
        self.texts: list = []

    def __call__(self, texts):
        self.texts.extend(texts)
        rows = np.ones((len(texts), 4), dtype=np.float32)
        return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def test_a_mark_is_matched_exactly_never_embedded():
    encoder = _Recording()
    vectors = TermVectors(encoder)
    closeness = vectors.closeness(["mri", DURATION, CLOCK], ["scan", DURATION])
    assert closeness[1] == 1.0  # the passage states a length of time
    assert closeness[2] == 0.0  # and no time of day: no word of it stands near one
    assert closeness[0] == pytest.approx(1.0)  # every stand-in vector is the same: "mri" ~ "scan"
    assert not any(text.startswith("#") for text in encoder.texts)
