"""Routing a request for a person by what the patient wrote (issue 12, item 4): the word
lists of content/routing.yml in every language, and how route() reads a conversation."""

from __future__ import annotations

from typing import Optional

import pytest

from clinic.handoff.routing import RoutingDataError, RoutingWords, default_routing_words
from clinic.handoff.teams import Said, Team, route
from clinic.language.catalogue import default_catalogue


@pytest.fixture(scope="module")
def words() -> RoutingWords:
    return default_routing_words()


@pytest.mark.parametrize("text, team", [
    # English: dictionary forms, so plurals and past tenses count.
    ("I want to talk to a real person about my bill", Team.BILLING),
    ("you charged me twice and I paid the invoices already", Team.BILLING),
    ("my insurer rejected the claims", Team.BILLING),
    ("is the co-pay covered by my health plan", Team.BILLING),
    ("can someone tell me about the side-effects of my new medication", Team.NURSE),
    ("I've had a rash and felt dizzy since the injections", Team.NURSE),
    ("I need help with parking and my appointment", Team.RECEPTION),
    ("can I speak to someone please", None),
    # Russian: lemmas, so every case and tense counts; ё = е.
    ("Хочу поговорить с человеком насчёт счёта", Team.BILLING),
    ("я уже оплатил, а мне снова выставили счет", Team.BILLING),
    ("страховая компания не приняла мой полис", Team.BILLING),
    ("соедините с сотрудником, у меня побочные эффекты от лекарства", Team.NURSE),
    ("после укола болит рука и поднялась температура", Team.NURSE),
    ("где парковаться и как перенести запись", Team.RECEPTION),
    ("позовите живого человека", None),
    # Chinese: the listed characters anywhere in the text.
    ("我想找人工客服问一下账单", Team.BILLING),
    ("医保报销的事情想咨询一下", Team.BILLING),
    ("我想找人咨询一下药物的副作用", Team.NURSE),
    ("打完疫苗以后一直头晕", Team.NURSE),
    ("停车场在哪里，我想改约", Team.RECEPTION),
    ("请帮我转人工", None),
    # Mixed: every language's list runs on every message.
    ("у меня вопрос про insurance", Team.BILLING),
])
def test_the_subject_decides_the_team_in_every_language(words, text, team):
    assert words.team_for(text) == team


def test_the_team_with_most_matches_wins(words):
    text = ("I paid for parking but the invoice shows a second charge and no refund yet, "
            "I checked the bill from my appointment")
    counts = words.counts(text)
    assert counts[Team.BILLING] > counts[Team.RECEPTION] >= 1
    assert words.team_for(text) == Team.BILLING


def test_a_tie_goes_to_the_first_team_of_tie_order(words):
    # One nurse word, one billing word: symptoms must not wait in the billing queue.
    assert words.counts("a bill and a rash") == {Team.BILLING: 1, Team.NURSE: 1}
    assert words.team_for("a bill and a rash") == Team.NURSE
    # One billing word, one reception word.
    assert words.team_for("the bill from my appointment") == Team.BILLING


def test_the_longest_phrase_claims_its_words(words):
    # "sick note" is reception's; its "sick" is not counted again for the nurse.
    assert words.counts("I need a sick note") == {Team.RECEPTION: 1}
    assert words.counts("результат анализа") == {Team.NURSE: 1}


def test_every_supported_language_has_billing_and_nurse_words(words):
    for code in default_catalogue().codes:
        assert {Team.BILLING, Team.NURSE} <= words.teams_in(code), code


@pytest.mark.parametrize("data, message", [
    ({"words": {"en": {"billling": ["bill"]}}}, "unknown team"),
    ({"words": {"en": {"billing": ["bill"], "nurse": ["bills"]}}}, "listed for billing and nurse"),
    ({"words": {"en": {"billing": [42]}}}, "not text"),
    ({"tie_order": ["doctor"], "words": {}}, "unknown team"),
    ({}, "expected 'words'"),
])
def test_a_malformed_list_fails_loudly(data, message):
    with pytest.raises(RoutingDataError, match=message):
        RoutingWords.from_dict(data)


def _billing_words(text: str) -> Optional[Team]:
    return Team.BILLING if "bill" in text else None


@pytest.mark.parametrize("explicit, recent, team", [
    # The issue: a free-text request whose topic is only `request_human`.
    (None, [Said("I want to talk to a real person about my bill", "request_human")], Team.BILLING),
    # A named team (entity or button) wins over the words.
    ("reception", [Said("about my bill", "request_human")], Team.RECEPTION),
    # The latest message first: its words beat an older topic...
    (None, [Said("about my bill", "request_human"), Said("", "clinical_question")], Team.BILLING),
    # ...its topic beats older words...
    (None, [Said("", "clinical_question"), Said("about my bill", "greet")], Team.NURSE),
    # ...and a message with neither words nor topic hands over to the one before.
    (None, [Said("talk to a person", "request_human"), Said("my bill", "faq")], Team.BILLING),
    (None, [Said("talk to a person", "request_human")], Team.RECEPTION),
    (None, [], Team.RECEPTION),
])
def test_route_reads_the_conversation_latest_first(explicit, recent, team):
    assert route(explicit, recent, _billing_words) == team


def test_route_without_word_lists_uses_topics_only():
    assert route(None, [Said("about my bill", "request_human"), Said("", "billing_status")]) == Team.BILLING
