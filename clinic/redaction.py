"""Removes secrets from patient text before it reaches Rasa, any table or any log.

Payment card numbers and IBANs are found by presidio-analyzer's pattern recognizers, which
also validate their checksums (Luhn, mod-97), so ordinary numbers (dates, phone numbers,
amounts) are left alone. US social security numbers use presidio's recognizer too; its bare
patterns are weak, so weaker matches count only when the message mentions an SSN.
After a word that names the number ("SSN", "social security", "card", "visa", "карта",
"卡号", "СНИЛС", "身份证"…), a number of the right shape is removed whatever its checksum or
validity: patients type sample, old and mistyped numbers, and those are still theirs. The
checks only decide for numbers that come without such a word.
Passwords, PINs and logins have no checksum: a short list of phrasings ("my password is …",
"мой пароль …", "密码是…") finds the secret that follows. No spaCy model is needed (no NLP
context is used).

Russian and Chinese messages:

* detection runs on an NFKC view of the message (full-width digits and spaces, "：" and
  the like compare as plain ASCII) and presidio sees that view with every non-ASCII
  character turned into a space, so Cyrillic or Han letters glued to a number
  ("карта4111…", "卡号4111…") don't hide it; the placeholder replaces the original text;
* card numbers presidio's pattern leaves out (Mir 2200–2204 and Mastercard 2-series, 19-digit
  UnionPay 62…/81…) are found by a Luhn-checked pattern of our own;
* SNILS (Russian social insurance number, 11 digits, "123-456-789 01"): anywhere when its
  check number is right (not after "+", "тел…", "phone", "手机"…, nor a Chinese mobile
  number "13…" in a Chinese message); after the word СНИЛС / snils whatever the check
  number (patients mistype);
* Russian internal passport ("45 12 345678", "4512 345678", "4512345678"): only after
  паспорт / серия (ten digits have no checksum);
* Chinese resident identity number (18 characters, the last a digit or X): anywhere when the
  ISO 7064 MOD 11-2 check character, the province and the birth date are right; after
  身份证 / 身份证号 / 证件号 / 社保号 whatever they are.
"""

from __future__ import annotations

import dataclasses
import datetime
import functools
import re
import unicodedata
from typing import Iterable, List, Tuple

# What replaces each kind of secret. The NLU data (data/nlu/*/channel.yml) uses the same
# placeholders, whatever the language, so the assistant recognises a message that contained
# a secret. SNILS is the Russian social insurance number: same placeholder as an SSN.
PLACEHOLDERS = {
    "CREDIT_CARD": "[card number removed]",
    "IBAN_CODE": "[bank account removed]",
    "US_SSN": "[SSN removed]",
    "RU_SNILS": "[SSN removed]",
    "RU_PASSPORT": "[ID number removed]",
    "CN_RESIDENT_ID": "[ID number removed]",
    "PASSWORD": "[password removed]",
}
# Any placeholder in a text (e.g. to leave them out when guessing a message's language).
PLACEHOLDER_RE = re.compile("|".join(re.escape(p) for p in sorted(set(PLACEHOLDERS.values()))))

STRONG_SCORE = 0.5  # presidio's score for a pattern it trusts on its own
# Words that name a US SSN, in the three languages. Latin words are bounded by Latin letters,
# not \b: in "我的SSN是…" the Han letters are word characters and \b would not match.
_SSN_KEYWORD = (r"(?:(?<![a-z])(?:ssn|ss\s*#|social\s+security|soc\.?\s*sec)(?![a-z])"
                r"|социальн[а-яё]*\s+страхован[а-яё]*|社会安全(?:号|码)|社安号)")
_SSN_CONTEXT = re.compile(_SSN_KEYWORD, re.IGNORECASE)
_PASSWORD = re.compile(
    r"(?P<lead>\b(?:password|passcode|passwd|pwd|pin(?: code)?|login|log-in|username|user name"
    r"|cvv|cvc|security code)"
    r"\s*(?:is|=|:|-)?\s*)(?P<secret>[^\s,;]{3,})",
    re.IGNORECASE,
)
# "pin" is also an English word ("pin the location"): require it to be followed by digits.
_WORD_PIN = re.compile(r"^(?:pin|пин)", re.IGNORECASE)

# ── Russian passwords and logins ──────────────────────────────────────────────────────────
_RU_KEYWORD = (r"\b(?:парол(?:ь|я|ю|ем|е|и|ей)|логин(?:а|у|ом|е|ы)?|пин(?:-?код(?:а|ом|у)?)?|pin-?код"
               r"|parol'?|кодовое\s+слово|код\s+(?:из\s+смс|из\s+sms|подтверждения|безопасности)"
               r"|имя\s+пользователя|cvv-?код|cvc-?код)\b")
# "пароль от личного кабинета …"; each word whole ((?![а-яё]): no quadratic backtracking)
_RU_FILLER = r"(?:\s+[а-яё]+(?![а-яё])){0,3}?"
# A secret with a digit or a Latin letter: the phrase needs no separator ("мой пароль qwerty123").
_RU_PASSWORD = re.compile(
    rf"(?P<lead>{_RU_KEYWORD}{_RU_FILLER}\s*(?:\b(?:это|такой|такая|будет)\b\s*)?[:=—–-]?\s*)"
    r"(?!(?:e-?mail|sms|gmail|wi-?fi|whatsapp|telegram)\b)"
    r"(?P<secret>(?=[^\s,;]{3,})[^\s,;]*?[0-9a-z][^\s,;]*)",
    re.IGNORECASE)
# A secret in Cyrillic letters only: only after an explicit separator ("пароль: котик"), so
# "мой пароль устарел" or "забыл логин от кабинета" stay as they are.
_RU_PASSWORD_WORD = re.compile(
    rf"(?P<lead>{_RU_KEYWORD}{_RU_FILLER}\s*(?:[:=]|[—–-](?=\s)|\b(?:это|такой|такая)\b\s*[:—–-]?)\s*)"
    r"(?P<secret>[а-яё][^\s,;]{2,})",
    re.IGNORECASE)

# ── Chinese passwords and logins (no spaces: the secret is the run of ASCII after the phrase)
_ZH_PASSWORD = re.compile(
    r"(?P<lead>(?:密码|口令|账号|帐号|用户名|登录名|登陆名|账户名|验证码|安全码|pin码)"
    r"[\u4e00-\u9fff]{0,4}?\s*(?:是|为|就是|都是|也是|叫)?\s*[:=]?\s*)"
    r"(?P<secret>(?:(?![,;])[!-~]){3,})",
    re.IGNORECASE)

# ── national numbers ──────────────────────────────────────────────────────────────────────
# Between a keyword and its number, within one sentence; the dot of "no." / "nr." / "ном."
# ("card no. 4111…") abbreviates "number" and does not end the sentence.
_GAP = r"(?:[^\d\n.?!。？！]|(?<=\bno)\.|(?<=\bnr)\.|(?<=\bном)\.){0,25}?"
_SNILS_BARE = re.compile(r"(?<![\d+])\d{3}[- ]?\d{3}[- ]?\d{3}[- ]?\d{2}(?!\d)")
_SNILS_AFTER_KEYWORD = re.compile(rf"(?:\bснилс[а-яё]*|\bsnils[a-z]*){_GAP}(?<!\d)(?P<number>\d(?:[ -]?\d){{8,11}})(?!\d)",
                                  re.IGNORECASE)
_PHONE_BEFORE = re.compile(r"(?:\bтел\w*|\bмоб\w*|\bphone\w*|\btel\b|\bmob\w*|手机|电话|联系方式)[^\d\n]{0,15}$",
                           re.IGNORECASE)
_HAN = re.compile(r"[\u4e00-\u9fff]")
_CN_MOBILE = re.compile(r"1[3-9]\d{9}")
_PASSPORT_AFTER_KEYWORD = re.compile(
    rf"(?:\bпаспорт[а-яё]*|\bpasport[a-z]*|\bсери[яиюе](?![а-яё])){_GAP}(?<!\d)"
    r"(?P<number>\d{2}\s?\d{2}[^\d\n.?!]{0,12}?\d{6}|\d{6})(?!\d)",
    re.IGNORECASE)
_CN_ID_BARE = re.compile(r"(?<!\d)(?P<number>\d{6}[ -]?\d{8}[ -]?\d{3}[\dXx])(?![\dA-Za-z])")
_CN_ID_AFTER_KEYWORD = re.compile(
    rf"(?:身份证(?:号码|号)?|公民身份号码|证件号(?:码)?|社保(?:卡)?号(?:码)?){_GAP}(?<!\d)"
    r"(?P<number>\d(?:[ -]?\d){13,16}[ -]?[\dXx])(?![\dA-Za-z])",
    re.IGNORECASE)
_CN_PROVINCES = frozenset("11 12 13 14 15 21 22 23 31 32 33 34 35 36 37 41 42 43 44 45 46 50 51 52 53 54 "
                          "61 62 63 64 65 71 81 82 83 91".split())
_CN_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
# A US SSN after its keyword, whatever presidio's validity rules say (area 000, 666 or 9xx,
# group 00, serial 0000, the advertised sample 123-45-6789 are all still removed).
_SSN_AFTER_KEYWORD = re.compile(
    rf"{_SSN_KEYWORD}{_GAP}(?<![\d+])(?P<number>\d{{3}}[- .]?\d{{2}}[- .]?\d{{4}})(?!\d)",
    re.IGNORECASE)
# A payment card number (13-19 digits, ISO/IEC 7812) after a word naming a card, whether or
# not it passes Luhn. Latin words bounded by Latin letters (see _SSN_KEYWORD); "карт…" also
# covers "номер карты", "карточка"; every Chinese card word ends in 卡 (卡号, 银行卡, 信用卡…).
_CARD_KEYWORD = (r"(?:(?<![a-z])(?:(?:credit|debit|bank|payment)?\s*cards?|cc|visa|master\s*card|amex"
                 r"|american\s+express|maestro|union\s*pay|jcb|diners(?:\s+club)?)(?![a-z])"
                 r"|\bкарт(?:[аыуе]|ой|ою|очк[а-яё]*)?(?![а-яё])|\bкредитк[а-яё]*|\bвиз[аыуе](?![а-яё])"
                 r"|卡|银联)")
_CARD_AFTER_KEYWORD = re.compile(
    rf"{_CARD_KEYWORD}{_GAP}(?<![\d+])(?P<number>\d(?:[ -]?\d){{12,18}})(?!\d)",
    re.IGNORECASE)
# Card numbers presidio's pattern leaves out: Mir, Mastercard 2-series, UnionPay (up to 19).
_EXTRA_CARD = re.compile(r"(?<!\d)(?:220[0-4]|222[1-9]|22[3-9]\d|2[3-6]\d\d|27[01]\d|2720|62\d\d|81\d\d)"
                         r"(?:[ -]?\d){12,15}(?!\d)")


@dataclasses.dataclass(frozen=True)
class Redaction:
    text: str
    kinds: tuple[str, ...]  # entity types removed, e.g. ("CREDIT_CARD",)

    @property
    def changed(self) -> bool:
        return bool(self.kinds)


@functools.lru_cache(maxsize=1)
def _recognizers():
    # Imported lazily: presidio pulls in spaCy; the connector builds this once per process.
    from presidio_analyzer.predefined_recognizers import (
        CreditCardRecognizer,
        IbanRecognizer,
        UsSsnRecognizer,
    )

    return (CreditCardRecognizer(), IbanRecognizer(), UsSsnRecognizer())


def _digits(value: str) -> str:
    return "".join(c for c in value if c.isdigit() or c in "Xx").upper()


def luhn_ok(number: str) -> bool:
    digits = [int(c) for c in _digits(number) if c.isdigit()]
    total = 0
    for index, digit in enumerate(reversed(digits)):
        if index % 2:
            digit = digit * 2 - 9 if digit > 4 else digit * 2
        total += digit
    return bool(digits) and total % 10 == 0


def snils_ok(number: str) -> bool:
    """The SNILS check number (last two digits) of an 11-digit SNILS; numbers up to
    001-001-998 carry none and are not SNILS one would find in a message."""
    digits = _digits(number)
    if len(digits) != 11 or not digits.isdigit() or int(digits[:9]) <= 1001998:
        return False
    total = sum(int(d) * w for d, w in zip(digits[:9], range(9, 0, -1), strict=True))
    check = total % 101 if total > 101 else total
    return (0 if check == 100 or check == 101 else check) == int(digits[9:])


def cn_resident_id_ok(number: str, today: datetime.date | None = None) -> bool:
    """GB 11643: province, birth date (YYYYMMDD, positions 7-14) and the ISO 7064 MOD 11-2
    check character of an 18-character resident identity number."""
    value = _digits(number)
    if len(value) != 18 or not value[:17].isdigit() or value[:2] not in _CN_PROVINCES:
        return False
    try:
        born = datetime.date(int(value[6:10]), int(value[10:12]), int(value[12:14]))
    except ValueError:
        return False
    if not datetime.date(1900, 1, 1) <= born <= (today or datetime.date.today()):
        return False
    total = sum(int(d) * w for d, w in zip(value[:17], _CN_WEIGHTS, strict=True))
    return "10X98765432"[total % 11] == value[17]


def _normalised(text: str) -> Tuple[str, List[int], List[int]]:
    """The NFKC form of ``text`` and, for each of its characters, the span of ``text`` it
    comes from (a base character and its combining marks are normalised together)."""
    chars: List[str] = []
    starts: List[int] = []
    ends: List[int] = []
    i = 0
    while i < len(text):
        j = i + 1
        while j < len(text) and unicodedata.combining(text[j]):
            j += 1
        for char in unicodedata.normalize("NFKC", text[i:j]):
            chars.append(char)
            starts.append(i)
            ends.append(j)
        i = j
    return "".join(chars), starts, ends


def _password_spans(norm: str) -> Iterable[Tuple[int, int]]:
    for pattern in (_PASSWORD, _RU_PASSWORD, _RU_PASSWORD_WORD, _ZH_PASSWORD):
        for match in pattern.finditer(norm):
            secret = match.group("secret")
            if _WORD_PIN.match(match.group("lead").strip()) and not any(c.isdigit() for c in secret):
                continue
            yield match.start("secret"), match.end("secret")


def _number_spans(norm: str) -> Iterable[Tuple[int, int, str]]:
    for match in _SSN_AFTER_KEYWORD.finditer(norm):
        yield match.start("number"), match.end("number"), "US_SSN"
    for match in _CARD_AFTER_KEYWORD.finditer(norm):
        yield match.start("number"), match.end("number"), "CREDIT_CARD"
    for match in _SNILS_AFTER_KEYWORD.finditer(norm):
        yield match.start("number"), match.end("number"), "RU_SNILS"
    han = bool(_HAN.search(norm))
    for match in _SNILS_BARE.finditer(norm):
        number = match.group()
        if not snils_ok(number) or _PHONE_BEFORE.search(norm[max(0, match.start() - 30):match.start()]):
            continue
        if han and _CN_MOBILE.fullmatch(number):
            continue  # a Chinese mobile number in a Chinese message, not a SNILS
        yield match.start(), match.end(), "RU_SNILS"
    for match in _PASSPORT_AFTER_KEYWORD.finditer(norm):
        yield match.start("number"), match.end("number"), "RU_PASSPORT"
    for match in _CN_ID_AFTER_KEYWORD.finditer(norm):
        yield match.start("number"), match.end("number"), "CN_RESIDENT_ID"
    for match in _CN_ID_BARE.finditer(norm):
        if cn_resident_id_ok(match.group("number")):
            yield match.start("number"), match.end("number"), "CN_RESIDENT_ID"
    for match in _EXTRA_CARD.finditer(norm):
        if luhn_ok(match.group()):
            yield match.start(), match.end(), "CREDIT_CARD"


def _spans(text: str) -> Iterable[tuple[int, int, str]]:
    norm, starts, ends = _normalised(text)
    # presidio's patterns use \b: Cyrillic or Han letters glued to a number would hide it.
    ascii_view = "".join(c if c.isascii() else " " for c in norm)
    found: List[Tuple[int, int, str]] = []
    ssn_context = bool(_SSN_CONTEXT.search(norm))
    for recognizer in _recognizers():
        for result in recognizer.analyze(ascii_view, entities=recognizer.supported_entities, nlp_artifacts=None):
            weak_ssn_ok = result.entity_type == "US_SSN" and ssn_context
            if result.score >= STRONG_SCORE or weak_ssn_ok:
                found.append((result.start, result.end, result.entity_type))
    found.extend(_number_spans(norm))
    found.extend((start, end, "PASSWORD") for start, end in _password_spans(norm))
    for start, end, kind in found:
        if end > start:
            yield starts[start], ends[end - 1], kind


def redact(text: str) -> Redaction:
    """``text`` with every secret replaced by its placeholder; overlapping finds merge."""
    if not text:
        return Redaction(text or "", ())
    spans = sorted(_spans(text))
    merged: list[list] = []
    for start, end, kind in spans:
        if merged and start < merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
            continue
        merged.append([start, end, kind])
    if not merged:
        return Redaction(text, ())
    out, cursor = [], 0
    for start, end, kind in merged:
        out.append(text[cursor:start])
        out.append(PLACEHOLDERS[kind])
        cursor = end
    out.append(text[cursor:])
    kinds = tuple(dict.fromkeys(kind for _, _, kind in merged))
    return Redaction("".join(out), kinds)
