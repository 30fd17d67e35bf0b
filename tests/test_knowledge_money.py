"""The money signal of the document search's decision (clinic/knowledge/money.py): a question
about a price, a sale or paying, against a passage that says nothing of money."""

from __future__ import annotations

import pytest

from clinic.knowledge.money import mentions_money, money_unstated
from clinic.language.tokens import terms


@pytest.mark.parametrize("text, language", [
    ("How much does an MRI cost?", "en"),
    ("Do you sell hearing aids?", "en"),
    ("Сколько стоит МРТ?", "ru"),
    ("Можно оплатить картой?", "ru"),
    ("核磁共振多少钱？", "zh"),
    ("你们卖助听器吗？", "zh"),
])
def test_questions_about_money_are_recognised(text, language):
    assert mentions_money(text, language)


@pytest.mark.parametrize("text, language", [
    ("How long does an MRI take?", "en"),
    ("Сколько длится МРТ?", "ru"),
    ("核磁共振要多久？", "zh"),
])
def test_other_questions_are_not_about_money(text, language):
    assert not mentions_money(text, language)


def test_the_signal_fires_only_when_the_passage_is_silent_on_money():
    priced = terms("Interpreters for Russian and Chinese are available free of charge.")
    silent = terms("An MRI examination takes 20 to 45 minutes.")
    assert money_unstated("Do I have to pay for an interpreter?", silent, "en")
    assert not money_unstated("Do I have to pay for an interpreter?", priced, "en")
    assert not money_unstated("How long does an MRI take?", silent, "en")
    assert money_unstated("Сколько стоит МРТ?", terms("МРТ длится от 20 до 45 минут."), "ru")
    assert not money_unstated("翻译要收费吗？", terms("俄语和中文翻译免费提供。"), "zh")
    assert not money_unstated("How much is it?", terms("Anything."), "fr")  # a language without a list: never
