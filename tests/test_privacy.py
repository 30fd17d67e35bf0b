"""Pseudonym keys and the contact cipher: environment first, else a 0600 key file; and
redaction at the door (clinic/redaction.py) of Russian and Chinese messages."""

import pytest
from cryptography.fernet import InvalidToken

from clinic.privacy import ContactCipher, contact_key, load_pseudonym_key
from clinic.redaction import (
    PLACEHOLDER_RE,
    PLACEHOLDERS,
    cn_resident_id_ok,
    redact,
    snils_ok,
)


def test_pseudonym_key_is_created_once_and_reused(tmp_path):
    path = tmp_path / "var" / "pseudonym.key"
    first = load_pseudonym_key({}, path)
    assert first == load_pseudonym_key({}, path) and len(first) == 64
    assert oct(path.stat().st_mode)[-3:] == "600"
    assert load_pseudonym_key({"CLINIC_PSEUDONYM_KEY": "from-env"}, path) == b"from-env"


def test_contact_keys_are_stable_per_channel_and_hide_the_number():
    key = b"secret"
    a = contact_key("15550001111", "whatsapp", key)
    assert a == contact_key("15550001111", "whatsapp", key)
    assert a != contact_key("15550001111", "rest", key) != contact_key("15550001111", "whatsapp", b"other")
    assert "15550001111" not in a and len(a) == 64
    with pytest.raises(ValueError):
        contact_key("", "whatsapp", key)


def test_cipher_key_file_and_round_trip(tmp_path):
    path = tmp_path / "encryption.key"
    cipher = ContactCipher.from_environment({}, path)
    token = cipher.encrypt("15550001111")
    assert "15550001111" not in token
    assert ContactCipher.from_environment({}, path).decrypt(token) == "15550001111"
    assert oct(path.stat().st_mode)[-3:] == "600"
    other = ContactCipher.from_environment({"CLINIC_ENCRYPTION_KEY": "kO8ZC5fbQ1YJtC0yGM2Fv3Sk7dxd8xAZ9lVLJ4k7B3I="}, path)
    with pytest.raises(InvalidToken):
        other.decrypt(token)  # a different key cannot read it


# ── redaction at the door (clinic/redaction.py) in Russian and Chinese ─────────────────────
# All numbers are synthetic: SNILS and resident ids computed with their check rules, cards
# with Luhn (test numbers), IBAN the textbook example.

SSN, ID, CARD, BANK, PWD = (PLACEHOLDERS[k] for k in ("RU_SNILS", "CN_RESIDENT_ID", "CREDIT_CARD", "IBAN_CODE",
                                                       "PASSWORD"))


@pytest.mark.parametrize("message,expected,kind", [
    # SNILS: valid check number anywhere, any SNILS-shaped number after the keyword
    ("мой СНИЛС 123-456-789 64", f"мой СНИЛС {SSN}", "RU_SNILS"),
    ("снилс 12345678964", f"снилс {SSN}", "RU_SNILS"),
    ("СНИЛС: 123-456-789 00", f"СНИЛС: {SSN}", "RU_SNILS"),  # wrong check number, after the keyword
    ("номер снилса 11223344500, проверьте", f"номер снилса {SSN}, проверьте", "RU_SNILS"),
    ("snils 987 654 321 00", f"snils {SSN}", "RU_SNILS"),
    ("вот 112-233-445 95 для записи", f"вот {SSN} для записи", "RU_SNILS"),  # valid, no keyword
    ("вот 98765432183", f"вот {SSN}", "RU_SNILS"),
    ("СНИЛС１２３４５６７８９６４", f"СНИЛС{SSN}", "RU_SNILS"),  # full-width digits, glued
    # Russian internal passport, after паспорт / серия
    ("мой паспорт 45 12 345678", f"мой паспорт {ID}", "RU_PASSPORT"),
    ("паспорт: 4512 345678", f"паспорт: {ID}", "RU_PASSPORT"),
    ("Паспорт 4512345678, выдан 12.03.2015", f"Паспорт {ID}, выдан 12.03.2015", "RU_PASSPORT"),
    ("серия 4512 номер 345678", f"серия {ID}", "RU_PASSPORT"),
    ("номер паспорта 345678", f"номер паспорта {ID}", "RU_PASSPORT"),
    ("данные паспорта４５１２　３４５６７８", f"данные паспорта{ID}", "RU_PASSPORT"),
    # Chinese resident identity number: valid anywhere, any ID-shaped number after the keyword
    ("身份证号110101199003074514", f"身份证号{ID}", "CN_RESIDENT_ID"),
    ("我的身份证号码是：11010519491231002X", f"我的身份证号码是：{ID}", "CN_RESIDENT_ID"),
    ("身份证 110101199003074515", f"身份证 {ID}", "CN_RESIDENT_ID"),  # wrong check character
    ("证件号440304198503121230，谢谢", f"证件号{ID}，谢谢", "CN_RESIDENT_ID"),
    ("我的ID是440304198503121235谢谢", f"我的ID是{ID}谢谢", "CN_RESIDENT_ID"),  # valid, no keyword
    ("310115 19900101 5671", ID, "CN_RESIDENT_ID"),
    ("身份证号：１１０１０１１９９００３０７４５１４", f"身份证号：{ID}", "CN_RESIDENT_ID"),
    # cards and IBANs: Cyrillic / Han glued to digits, full-width digits and spaces
    ("карта4111111111111111", f"карта{CARD}", "CREDIT_CARD"),
    ("вот моя карта 2200 1234 5678 9019", f"вот моя карта {CARD}", "CREDIT_CARD"),  # Mir
    ("Номер карты: 5500-0000-0000-0004, срок 09/27", f"Номер карты: {CARD}, срок 09/27", "CREDIT_CARD"),
    ("卡号6222021234567890128有效期09/27", f"卡号{CARD}有效期09/27", "CREDIT_CARD"),  # UnionPay, 19 digits
    ("卡号：４１１１１１１１１１１１１１１１", f"卡号：{CARD}", "CREDIT_CARD"),
    ("４１１１\u3000１１１１\u3000１１１１\u3000１１１１", CARD, "CREDIT_CARD"),
    ("верните на DE89370400440532013000руб", f"верните на {BANK}руб", "IBAN_CODE"),
    ("退款到DE89 3704 0044 0532 0130 00谢谢", f"退款到{BANK}谢谢", "IBAN_CODE"),
    # passwords and logins
    ("мой пароль qwerty123", f"мой пароль {PWD}", "PASSWORD"),
    ("пароль: котик", f"пароль: {PWD}", "PASSWORD"),
    ("Пароль от личного кабинета Qwerty!2, проверьте", f"Пароль от личного кабинета {PWD}, проверьте", "PASSWORD"),
    ("логин ivan.petrov пароль qwerty", f"логин {PWD} пароль {PWD}", "PASSWORD"),
    ("мой логин на госуслугах - 89123456789", f"мой логин на госуслугах - {PWD}", "PASSWORD"),
    ("пин-код 1234", f"пин-код {PWD}", "PASSWORD"),
    ("moy parol qwerty12", f"moy parol {PWD}", "PASSWORD"),
    ("密码是abc12345", f"密码是{PWD}", "PASSWORD"),
    ("我的密码：Abc123!", f"我的密码：{PWD}", "PASSWORD"),
    ("账号zhangsan01，密码zs2026", f"账号{PWD}，密码{PWD}", "PASSWORD"),
    ("用户名：wang_li 帮我看看", f"用户名：{PWD} 帮我看看", "PASSWORD"),
    ("我的门户密码是ｚｓ２０２６ａｂ", f"我的门户密码是{PWD}", "PASSWORD"),
])
def test_russian_and_chinese_secrets_are_redacted(message, expected, kind):
    result = redact(message)
    assert result.text == expected and kind in result.kinds, result


@pytest.mark.parametrize("message", [
    "Приём 12.03.1985 в 10:30, кабинет 214",
    "Дата рождения 12.03.1985",
    "Запись на 2026年3月3日 14:00",
    "Стоимость 1500 руб, оплата на месте",
    "Позвоните 8 (912) 345-67-89 или +7 912 345 67 89",
    "мой телефон 89123450007",  # SNILS check number right, but a phone number
    "+79123450007",
    "номер заказа 12345678901",  # 11 digits, no keyword, wrong SNILS check number
    "12345678901",
    "Приём в кабинете 305, талон А042",
    "Серия процедур: 10 сеансов по 1500 руб",
    "Возьмите паспорт и полис, приём в 09:30",
    "мой пароль устарел",
    "забыл пароль от кабинета, помогите",
    "пароль приходит в смс?",
    "не помню логин от госуслуг",
    "预约时间2026年3月3日上午10:30，诊室305",
    "费用200元，请带身份证",
    "手机13812340028",  # SNILS check number right, but a Chinese mobile number
    "我的电话是13812340028，谢谢",
    "110101199003074515",  # ID-shaped, wrong check character, no keyword
    "110101199013074514",  # impossible birth date
    "密码忘了，怎么办",
    "登录名是张三",
    "验证码没收到",
])
def test_ordinary_russian_and_chinese_numbers_are_left_alone(message):
    result = redact(message)
    assert (result.text, result.kinds) == (message, ()), result


def test_english_redaction_is_unchanged():
    assert redact("pay with 4111 1111 1111 1111, refund DE89 3704 0044 0532 0130 00").text == \
        f"pay with {CARD}, refund {BANK}"
    assert redact("my ssn is 536-22-8726").kinds == ("US_SSN",)
    assert redact("pin the location").kinds == ()
    assert redact("login: sam@example.com").text == f"login: {PWD}"


def test_check_rules_and_placeholders():
    assert snils_ok("112-233-445 95") and snils_ok("12345678964") and not snils_ok("12345678901")
    assert not snils_ok("00100199800")  # numbers up to 001-001-998 carry no check number
    assert cn_resident_id_ok("11010519491231002X") and cn_resident_id_ok("11010519491231002x")
    assert not cn_resident_id_ok("110105194912310021") and not cn_resident_id_ok("990105194912310025")
    text = redact("снилс 12345678964, 身份证110101199003074514, пароль: котик").text
    assert set(PLACEHOLDER_RE.findall(text)) == {SSN, ID, PWD}
    assert PLACEHOLDER_RE.sub("", text) == "снилс , 身份证, пароль: "


def test_a_key_file_is_never_read_half_written(tmp_path):
    """Services that start at once race to create the same key file: the loser must read the
    winner's whole key, never an empty file (it did when the file was created before its key
    was generated and written)."""
    import threading
    import time

    from clinic.privacy import secret_from

    path = tmp_path / "race.key"
    started, results = threading.Event(), {}

    def slow() -> bytes:
        started.set()
        time.sleep(0.5)
        return b"first-key"

    def first() -> None:
        results["first"] = secret_from({}, "NO_SUCH_VARIABLE", path, slow)

    thread = threading.Thread(target=first)
    thread.start()
    assert started.wait(5)
    results["second"] = secret_from({}, "NO_SUCH_VARIABLE", path, lambda: b"second-key")
    thread.join()
    assert results["first"] == results["second"] == b"second-key"
    assert path.stat().st_mode & 0o777 == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["race.key"]  # no temporary file left
