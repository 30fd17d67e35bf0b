"""Flow tokens: issued by the assistant with the Flow message, checked on every data
request and on completion.

A token names the conversation (its pseudonym, never a number), the channel, the
patient's language and an expiry, signed with a key derived from the pseudonym key (so the
action server and the gateway, which both hold that key, agree without a shared table).
A token that is forged, expired or for another conversation is refused (HTTP 427).
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import hashlib
import hmac
import json
import secrets
from typing import Optional

PREFIX = "bf1"
# Long enough to fill the form at leisure; after that WhatsApp shows the form as expired
# and the patient books in chat.
DEFAULT_TTL = dt.timedelta(hours=2)


class InvalidFlowToken(ValueError):
    """Forged, damaged, expired or bound to another conversation."""


@dataclasses.dataclass(frozen=True)
class FlowGrant:
    conversation_id: str
    channel: str
    language: str
    expires: dt.datetime


def token_key(pseudonym_key: bytes) -> bytes:
    # A key of its own: a token's signature says nothing about the pseudonyms.
    return hmac.new(pseudonym_key, b"booking-flow-token/v1", hashlib.sha256).digest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def issue(conversation_id: str, channel: str, language: str, pseudonym_key: bytes,
          now: dt.datetime, ttl: dt.timedelta = DEFAULT_TTL) -> str:
    body = {"c": conversation_id, "ch": channel, "l": language,
            "e": int((now + ttl).timestamp()), "n": secrets.token_hex(4)}
    encoded = _b64(json.dumps(body, separators=(",", ":")).encode("utf-8"))
    signature = hmac.new(token_key(pseudonym_key), f"{PREFIX}.{encoded}".encode(), hashlib.sha256)
    return f"{PREFIX}.{encoded}.{_b64(signature.digest()[:16])}"


def verify(token: str, pseudonym_key: bytes, now: dt.datetime,
           conversation_id: Optional[str] = None) -> FlowGrant:
    try:
        prefix, encoded, signature = token.split(".")
    except (AttributeError, ValueError) as error:
        raise InvalidFlowToken("not a flow token") from error
    expected = hmac.new(token_key(pseudonym_key), f"{prefix}.{encoded}".encode(), hashlib.sha256)
    try:
        given = _unb64(signature)
        body = json.loads(_unb64(encoded))
    except ValueError as error:
        raise InvalidFlowToken("not a flow token") from error
    if prefix != PREFIX or not hmac.compare_digest(given, expected.digest()[:16]):
        raise InvalidFlowToken("the signature does not match")
    grant = FlowGrant(conversation_id=str(body["c"]), channel=str(body["ch"]),
                      language=str(body["l"]),
                      expires=dt.datetime.fromtimestamp(int(body["e"]), dt.timezone.utc))
    if now >= grant.expires:
        raise InvalidFlowToken("expired")
    if conversation_id is not None and not hmac.compare_digest(conversation_id, grant.conversation_id):
        raise InvalidFlowToken("issued to another conversation")
    return grant
