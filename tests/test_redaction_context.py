"""Issue 12: a number that follows the word naming it (SSN, card, СНИЛС, 身份证…) is removed
whatever its checksum or validity: patients type sample, old and mistyped numbers too.

Every number here fails the rules that decide for numbers without such a word (presidio's
SSN validity rules, Luhn, the SNILS check number, the GB 11643 check character), so each
case would pass through unredacted if only those rules decided.
"""

from __future__ import annotations

import json

import pytest
from sqlalchemy import create_engine
from sqlalchemy import text as sql

from clinic.redaction import PLACEHOLDERS, cn_resident_id_ok, luhn_ok, redact, snils_ok
from tests.connector_support import (
    deliver,
    envelope,
    make_channel,
    opened,
    opened_journal,
    signed,
    text,
)

SSN, CARD, ID = (PLACEHOLDERS[k] for k in ("US_SSN", "CREDIT_CARD", "CN_RESIDENT_ID"))


@pytest.mark.parametrize("message,expected", [
    ("my SSN is 123-45-6789", f"my SSN is {SSN}"),           # the advertised sample number
    ("my ssn: 000-00-0000", f"my ssn: {SSN}"),                # area, group and serial all zero
    ("SSN 666-12-3456 thanks", f"SSN {SSN} thanks"),          # area 666 is never issued
    ("social security number 987-65-4320", f"social security number {SSN}"),  # 9xx area
    ("Social Security: 123 45 6789", f"Social Security: {SSN}"),
    ("soc sec 078051120", f"soc sec {SSN}"),                  # the Woolworth wallet number
    ("SSN no. 123-00-4567, please update", f"SSN no. {SSN}, please update"),
    ("мой SSN 123-45-6789", f"мой SSN {SSN}"),
    ("номер социального страхования 000-12-3456", f"номер социального страхования {SSN}"),
    ("我的SSN是123-45-6789", f"我的SSN是{SSN}"),              # Han letters glued to the keyword
    ("我的社会安全号码是666-12-3456", f"我的社会安全号码是{SSN}"),
])
def test_ssn_shaped_numbers_after_an_ssn_word_are_removed_whatever_their_validity(message, expected):
    result = redact(message)
    assert (result.text, result.kinds) == (expected, ("US_SSN",)), result


@pytest.mark.parametrize("message,expected", [
    ("my card is 4111 1111 1111 1112", f"my card is {CARD}"),
    ("Visa 4111111111111112 exp 09/27", f"Visa {CARD} exp 09/27"),
    ("mastercard 5500-0000-0000-0005", f"mastercard {CARD}"),
    ("amex 3782 822463 10006", f"amex {CARD}"),              # 4-6-5 grouping, 15 digits
    ("credit card number: 1234 5678 9012 3456", f"credit card number: {CARD}"),
    ("debit card no. 1234567890123456", f"debit card no. {CARD}"),
    ("номер карты 1234 5678 9012 3456", f"номер карты {CARD}"),
    ("карта 2200 1234 5678 9010, срок 09/27", f"карта {CARD}, срок 09/27"),  # Mir, Luhn fails
    ("оплачу картой4111111111111112", f"оплачу картой{CARD}"),
    ("卡号1234567890123456", f"卡号{CARD}"),
    ("银行卡 6222 0212 3456 7890 129", f"银行卡 {CARD}"),     # 19-digit UnionPay, Luhn fails
    ("我的信用卡是１２３４－５６７８－９０１２－３４５６", f"我的信用卡是{CARD}"),  # full-width
])
def test_card_shaped_numbers_after_a_card_word_are_removed_even_failing_luhn(message, expected):
    result = redact(message)
    assert (result.text, result.kinds) == (expected, ("CREDIT_CARD",)), result


@pytest.mark.parametrize("message,expected,kind", [
    ("СНИЛС 123-456-789 00", f"СНИЛС {SSN}", "RU_SNILS"),
    ("мой снилс: 11223344501", f"мой снилс: {SSN}", "RU_SNILS"),
    ("身份证110101199003074515", f"身份证{ID}", "CN_RESIDENT_ID"),       # wrong check character
    ("身份证号 990101199013071234", f"身份证号 {ID}", "CN_RESIDENT_ID"),   # no province, no date
])
def test_national_numbers_after_their_keyword_are_removed_failing_their_checks(message, expected, kind):
    result = redact(message)
    assert (result.text, result.kinds) == (expected, (kind,)), result


def test_the_cases_really_fail_every_check():
    """Guards the tests above: they prove the keyword path, not a checksum path."""
    for card in ("4111111111111112", "5500000000000005", "378282246310006", "1234567890123456",
                 "2200123456789010", "6222021234567890129"):
        assert not luhn_ok(card), card
    assert not snils_ok("12345678900") and not snils_ok("11223344501")
    assert not cn_resident_id_ok("110101199003074515") and not cn_resident_id_ok("990101199013071234")
    # presidio's own rules reject these SSNs: without their keyword they stay as typed.
    for number in ("123-45-6789", "000-00-0000", "666-12-3456", "078-05-1120"):
        assert redact(f"order {number}").kinds == (), number


@pytest.mark.parametrize("message", [
    "order 123-45-6789",                              # SSN-shaped, but no SSN word
    "I lost my insurance card, phone 8 912 345 67 89",  # a card word, but 11 digits
    "my card expires 09/27, call +1 650 555 1234",
    "card for 12 people on 2026-03-14 at 10:30",
    "карта пациента готова, приём 14.03.2026 в 10:30",
    "我的卡丢了，电话13812340028",                       # 11-digit mobile, not a card
    "SSN? I'll bring it on 2026-03-14",
])
def test_ordinary_numbers_near_these_words_are_left_alone(message):
    result = redact(message)
    assert (result.text, result.kinds) == (message, ()), result


@pytest.mark.asyncio
async def test_the_door_stores_only_the_redacted_text(tmp_path, monkeypatch):
    """Through the WhatsApp channel's door (signature, parsing, redaction, journal, inbox
    table): neither the journal nor any table keeps the invalid SSN or card number."""
    channel = make_channel(tmp_path, monkeypatch)
    typed = "my SSN is 123-45-6789 and my visa 4111 1111 1111 1112"
    assert await deliver(channel, *signed(envelope(text("16505551234", typed)))) == (200, "OK")

    engine = create_engine(str(channel.store._sessions.kw["bind"].url), future=True)
    with engine.connect() as connection:
        tables = {t: [opened(dict(r._mapping)) for r in connection.execute(sql(f"SELECT * FROM {t}"))]
                  for t in ("wa_inbox", "wa_contacts", "wa_outbound", "wa_statuses")}
    [row] = tables["wa_inbox"]
    assert row["text"] == f"my SSN is {SSN} and my visa {CARD}"
    assert row["redacted"] == "US_SSN,CREDIT_CARD"
    # Opened (the text is sealed at rest: clinic/at_rest.py), to look at what was redacted.
    stored = json.dumps(tables, default=str) + opened_journal(channel.journal.directory)
    for secret in ("123-45-6789", "123456789", "4111 1111 1111 1112", "4111111111111112"):
        assert secret not in stored
