"""Removes secrets from patient text before it reaches Rasa, any table or any log.

Payment card numbers and IBANs are found by presidio-analyzer's pattern recognizers, which
also validate their checksums (Luhn, mod-97), so ordinary numbers (dates, phone numbers,
amounts) are left alone. US social security numbers use presidio's recognizer too; its bare
patterns are weak, so weaker matches count only when the message mentions an SSN.
Passwords, PINs and logins have no checksum: a short list of phrasings ("my password is …")
finds the secret that follows. No spaCy model is needed (no NLP context is used).
"""

from __future__ import annotations

import dataclasses
import functools
import re
from typing import Iterable

# What replaces each kind of secret. The NLU data (data/nlu/privacy.yml) uses the same
# placeholders, so the assistant recognises a message that contained a secret.
PLACEHOLDERS = {
    "CREDIT_CARD": "[card number removed]",
    "IBAN_CODE": "[bank account removed]",
    "US_SSN": "[SSN removed]",
    "PASSWORD": "[password removed]",
}

STRONG_SCORE = 0.5  # presidio's score for a pattern it trusts on its own
_SSN_CONTEXT = re.compile(r"\b(ssn|social security|soc sec)\b", re.IGNORECASE)
_PASSWORD = re.compile(
    r"(?P<lead>\b(?:password|passcode|passwd|pwd|pin(?: code)?|login|log-in|username|user name"
    r"|cvv|cvc|security code)"
    r"\s*(?:is|=|:|-)?\s*)(?P<secret>[^\s,;]{3,})",
    re.IGNORECASE,
)
# "pin" is also an English word ("pin the location"): require it to be followed by digits.
_WORD_PIN = re.compile(r"^pin", re.IGNORECASE)


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


def _spans(text: str) -> Iterable[tuple[int, int, str]]:
    ssn_context = bool(_SSN_CONTEXT.search(text))
    for recognizer in _recognizers():
        for result in recognizer.analyze(text, entities=recognizer.supported_entities, nlp_artifacts=None):
            weak_ssn_ok = result.entity_type == "US_SSN" and ssn_context
            if result.score >= STRONG_SCORE or weak_ssn_ok:
                yield result.start, result.end, result.entity_type
    for match in _PASSWORD.finditer(text):
        secret = match.group("secret")
        if _WORD_PIN.match(match.group("lead").strip()) and not any(c.isdigit() for c in secret):
            continue
        yield match.start("secret"), match.end("secret"), "PASSWORD"


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
