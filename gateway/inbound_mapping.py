"""What the assistant reads for each kind of inbound WhatsApp message.

One function per message type (dispatch table), so a new type is one small function.
Everything the assistant says back lives in the domain: media, locations, contact cards and
unknown types become payload intents (``/media_message{"media_kind": "voice"}``) whose
replies are domain responses. Reactions, revocations and system notices are recorded but
not answered.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any, Callable, Optional

from clinic.redaction import redact
from whatsapp import inbound as wa
from whatsapp.limits import TEXT_BODY_MAX


@dataclasses.dataclass(frozen=True)
class AssistantInput:
    """What goes to Rasa for one WhatsApp message (``text`` None: record only)."""

    kind: str
    text: Optional[str]
    redacted: tuple[str, ...] = ()
    # The title of the button or list row the patient tapped, when the assistant reads its
    # payload instead ("/deny"): kept with the message so the transcript staff read shows
    # what the patient saw ("I'll wait here").
    title: Optional[str] = None
    # The text was longer than WhatsApp allows and was cut (see ``cut_text``).
    truncated: bool = False


def _payload(intent: str, **entities: Any) -> str:
    return f"/{intent}{json.dumps(entities, separators=(',', ':'))}" if entities else f"/{intent}"


def _reply_id_or_title(reply_id: str, title: Optional[str]) -> str:
    # Our own buttons carry Rasa payloads ("/intent{...}"); a button made elsewhere (e.g. a
    # template authored in Meta's manager) carries an arbitrary id: read its title instead.
    if reply_id.startswith("/"):
        return reply_id
    return title or reply_id


# WhatsApp's own maximum for a text message: a patient's app cannot send more. A longer body
# (a 2.9 MB text fits under the 3 MB webhook limit) is cut here, before redaction, the
# language detector or any model reads it: spaCy refuses texts over a million characters
# (E088) and every component's time grows with the length.
TEXT_MAX = TEXT_BODY_MAX
# Cut at a space within this many characters of the limit, so a card number or a word is
# not split in two (half a card number would escape redaction).
_CUT_LOOKBACK = 100


def cut_text(body: str, limit: int = TEXT_MAX) -> str:
    """``body`` cut to ``limit`` characters (at a space near the end when there is one)."""
    if len(body) <= limit:
        return body
    space = body.rfind(" ", limit - _CUT_LOOKBACK, limit + 1)
    return body[:space] if space > 0 else body[:limit]


def _text(message: wa.TextMessage) -> AssistantInput:
    result = redact(cut_text(message.body))
    return AssistantInput("text", result.text, result.kinds, truncated=len(message.body) > TEXT_MAX)


# WhatsApp's own limits are 20 (reply button), 24 (list row) and 25 (template button)
# characters; anything longer did not come from a message we sent.
TITLE_MAX = 100


def _tapped(kind: str, reply_id: str, title: Optional[str]) -> AssistantInput:
    text = _reply_id_or_title(reply_id, title)
    shown = None
    if title and title != text:
        # Redacted like typed text: Meta relays whatever title the tapping client sends.
        shown = redact(title[:TITLE_MAX]).text
    return AssistantInput(kind, text, title=shown)


def _button_reply(message: wa.ButtonReply) -> AssistantInput:
    return _tapped("button_reply", message.reply_id, message.title)


def _list_reply(message: wa.ListReply) -> AssistantInput:
    return _tapped("list_reply", message.reply_id, message.title)


def _template_button(message: wa.TemplateButtonReply) -> AssistantInput:
    return _tapped("template_button", message.payload or "", message.text)


def _location(message: wa.LocationMessage) -> AssistantInput:
    # Coordinates only: the place name/address a patient chose to share is not needed.
    text = _payload("share_location", latitude=message.latitude, longitude=message.longitude)
    return AssistantInput("location", text)


def _media(message: wa.MediaMessage) -> AssistantInput:
    kind = "voice" if message.voice else message.kind
    # A caption is text the patient typed: it is not read (the reply explains why) and not
    # stored, like the media itself.
    return AssistantInput(message.kind, _payload("media_message", media_kind=kind))


def _contacts(_: wa.ContactsMessage) -> AssistantInput:
    return AssistantInput("contacts", _payload("media_message", media_kind="contacts"))


def _order(_: wa.OrderMessage) -> AssistantInput:
    return AssistantInput("order", _payload("buy_medication"))


def _flow_reply(message: wa.FlowReply) -> AssistantInput:
    # Our booking Flow's answers (their token is ours: clinic/booking_flow/tokens.py) go to
    # the assistant as one entity, which its flow action reads and checks.
    try:
        answers = json.loads(message.response_json)
    except ValueError:
        answers = None
    token = answers.get("flow_token") if isinstance(answers, dict) else None
    if not isinstance(token, str) or not token.startswith("bf1."):
        return _other(message)
    return AssistantInput("flow_reply", _payload("flow_booking", flow_response=json.dumps(answers)))


def _other(message: wa.InboundMessage) -> AssistantInput:
    return AssistantInput(message.type or "unknown", _payload("media_message", media_kind="other"))


def _record_only(message: wa.InboundMessage) -> AssistantInput:
    return AssistantInput(message.type or "unknown", None)


_HANDLERS: dict[type, Callable[..., AssistantInput]] = {
    wa.TextMessage: _text,
    wa.ButtonReply: _button_reply,
    wa.ListReply: _list_reply,
    wa.TemplateButtonReply: _template_button,
    wa.LocationMessage: _location,
    wa.MediaMessage: _media,
    wa.ContactsMessage: _contacts,
    wa.OrderMessage: _order,
    wa.ReactionMessage: _record_only,
    wa.RevokeMessage: _record_only,
    wa.SystemMessage: _record_only,
    wa.FlowReply: _flow_reply,
    wa.EditMessage: _other,
    wa.UnsupportedMessage: _other,
    wa.UnknownInteractive: _other,
    wa.UnknownMessage: _other,
}


def to_assistant_input(message: wa.InboundMessage) -> AssistantInput:
    handler = _HANDLERS.get(type(message), _other)
    return handler(message)
