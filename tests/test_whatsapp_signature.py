"""X-Hub-Signature-256: HMAC-SHA256 of the raw body with the app secret, compared in constant time."""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest

from whatsapp import signature
from whatsapp.signature import HEADER, PREFIX, sign, verify

SECRET = "app-secret-for-tests"
# Meta signs the bytes it sends, with non-ASCII escaped: re-serialising would not match.
BODY = b'{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"value":{"messages":[{"text":{"body":"Luc\\u00eda"}}]},"field":"messages"}]}]}'


def test_header_constants():
    assert HEADER == "X-Hub-Signature-256"
    assert PREFIX == "sha256="


def test_sign_matches_an_independent_hmac():
    expected = "sha256=" + hmac.new(SECRET.encode(), BODY, hashlib.sha256).hexdigest()
    assert sign(BODY, SECRET) == expected
    assert len(expected) == len("sha256=") + 64


def test_round_trip():
    assert verify(BODY, sign(BODY, SECRET), SECRET)
    assert verify(b"", sign(b"", SECRET), SECRET)


def test_wrong_secret():
    assert not verify(BODY, sign(BODY, "another-secret"), SECRET)


def test_tampered_body():
    header = sign(BODY, SECRET)
    assert not verify(BODY.replace(b"Luc", b"Lux"), header, SECRET)
    assert not verify(BODY + b" ", header, SECRET)


def test_reserialised_json_does_not_verify():
    header = sign(BODY, SECRET)
    reserialised = json.dumps(json.loads(BODY), ensure_ascii=False).encode("utf-8")
    assert reserialised != BODY
    assert not verify(reserialised, header, SECRET)


@pytest.mark.parametrize("header", [
    None,
    "",
    "sha256=",
    "sha256=zzzz",
    "sha256=" + "0" * 64,
    "sha1=" + hmac.new(SECRET.encode(), BODY, hashlib.sha1).hexdigest(),  # legacy header format
    hmac.new(SECRET.encode(), BODY, hashlib.sha256).hexdigest(),  # missing the prefix
    "SHA256=" + hmac.new(SECRET.encode(), BODY, hashlib.sha256).hexdigest(),
    "sha256=" + hmac.new(SECRET.encode(), BODY, hashlib.sha256).hexdigest()[:-1],  # truncated
])
def test_missing_or_garbled_header(header):
    assert verify(BODY, header, SECRET) is False


def test_non_ascii_header_is_rejected_not_raised():
    assert verify(BODY, "sha256=\u00e9\u00e9", SECRET) is False


def test_empty_secret_never_verifies():
    assert not verify(BODY, sign(BODY, ""), "")


def test_trailing_whitespace_in_header_is_tolerated():
    assert verify(BODY, sign(BODY, SECRET) + "\r\n", SECRET)


def test_uses_constant_time_compare(monkeypatch):
    calls = []
    real = hmac.compare_digest

    def spy(a, b):
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(signature.hmac, "compare_digest", spy)
    header = sign(BODY, SECRET)
    assert verify(BODY, header, SECRET)
    assert not verify(BODY, sign(BODY, "wrong"), SECRET)
    assert len(calls) == 2
    assert calls[0] == (header.encode(), header.encode())  # bytes: safe for any header
