"""Typed outbound messages that refuse to exist with an invalid shape (reference §5).

Meta rejects an over-long title or an 11th list row with an error *after* the bot has moved
on, and the patient just sees silence. Every limit from :mod:`whatsapp.limits` is therefore
checked when the object is built; ``to_payload`` then emits exactly Meta's JSON.
Error texts name the field and the limit but never copy the content (it may be patient data).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union
from urllib.parse import urlsplit

from whatsapp.limits import (
    BIZ_OPAQUE_CALLBACK_DATA_MAX,
    CTA_DISPLAY_TEXT_MAX,
    FOOTER_MAX,
    HEADER_TEXT_MAX,
    INTERACTIVE_BODY_MAX,
    LIST_BUTTON_MAX,
    LIST_ROW_DESCRIPTION_MAX,
    LIST_ROW_ID_MAX,
    LIST_ROW_TITLE_MAX,
    LIST_ROWS_MAX,
    LIST_SECTION_TITLE_MAX,
    LIST_SECTIONS_MAX,
    LOCATION_REQUEST_BODY_MAX,
    MEDIA_CAPTION_MAX,
    REPLY_BUTTON_ID_MAX,
    REPLY_BUTTON_TITLE_MAX,
    REPLY_BUTTONS_MAX,
    TEMPLATE_QUICK_REPLY_PAYLOAD_MAX,
    TEXT_BODY_MAX,
)
from whatsapp.users import BSUID_MAX, address_fields

__all__ = [
    "Choice",
    "CtaUrl",
    "FlowMessage",
    "ListMessage",
    "ListRow",
    "ListSection",
    "Recorded",
    "LocationRequest",
    "Media",
    "MessageShapeError",
    "OutboundMessage",
    "Reaction",
    "ReplyButton",
    "ReplyButtons",
    "Template",
    "Text",
    "choice_message",
    "mark_read_payload",
    "split_text",
]

MEDIA_KINDS = ("image", "video", "audio", "document", "sticker")
_NO_CAPTION_KINDS = frozenset({"audio", "sticker"})  # Meta rejects captions on these
TEMPLATE_NAME_MAX = 512  # creation-side limit, names are [a-z0-9_] (reference §5.9)
TEMPLATE_BUTTONS_MAX = 10  # a template has at most 10 buttons (reference §5.9)
_TEMPLATE_NAME = re.compile(r"^[a-z0-9_]+$")
# Template text parameters may not contain new lines / tabs or more than 4 consecutive spaces.
_BAD_TEMPLATE_PARAM = re.compile(r"[\n\t]| {5,}")
ELLIPSIS = "…"


class MessageShapeError(ValueError):
    """A message would break one of Meta's shape rules; the text names the field and the limit."""


# ---------------------------------------------------------------------------------------------
# Validation helpers (messages name fields and limits, never the offending content)
# ---------------------------------------------------------------------------------------------


def _check_text(
    value: object, name: str, maximum: int, *, required: bool = True, limit_name: str = ""
) -> None:
    """Non-blank string of at most ``maximum`` characters (None allowed when not required)."""
    if value is None and not required:
        return
    if not isinstance(value, str):
        raise MessageShapeError(f"{name} must be a string")
    if not value.strip():
        raise MessageShapeError(f"{name} must not be empty" + ("" if required else "; omit it"))
    if len(value) > maximum:
        suffix = f" ({limit_name})" if limit_name else ""
        raise MessageShapeError(
            f"{name} is {len(value)} characters; the limit is {maximum}{suffix}"
        )


def _check_id(value: object, name: str, maximum: int, limit_name: str) -> None:
    """Ids come back verbatim in replies: Meta forbids leading/trailing spaces."""
    _check_text(value, name, maximum, limit_name=limit_name)
    assert isinstance(value, str)
    if value != value.strip():
        raise MessageShapeError(f"{name} must not have leading or trailing spaces")


def _check_http_url(value: object, name: str) -> None:
    if not isinstance(value, str) or not value.strip():
        raise MessageShapeError(f"{name} must be a non-empty http(s) URL")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc or value != value.strip():
        raise MessageShapeError(f"{name} must be an absolute http(s) URL")


def _as_tuple(value: object, name: str) -> Tuple[Any, ...]:
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise MessageShapeError(f"{name} must be a list")
    return tuple(value)


def _interactive_extras(
    interactive: Dict[str, Any], header_text: Optional[str], footer: Optional[str]
) -> Dict[str, Any]:
    if header_text is not None:
        interactive["header"] = {"type": "text", "text": header_text}
    if footer is not None:
        interactive["footer"] = {"text": footer}
    return interactive


# ---------------------------------------------------------------------------------------------
# Messages
# ---------------------------------------------------------------------------------------------


class OutboundMessage:
    """Base: subclasses give the ``type`` and the object that goes under that key."""

    _type: str = ""

    def _content(self) -> Dict[str, Any]:  # pragma: no cover - abstract
        raise NotImplementedError

    def to_payload(
        self,
        to: str,
        context_message_id: Optional[str] = None,
        biz_opaque_callback_data: Optional[str] = None,
    ) -> Dict[str, Any]:
        """Meta's ``POST /<PHONE_NUMBER_ID>/messages`` body for this message."""
        _check_text(to, "to", BSUID_MAX)
        payload: Dict[str, Any] = {
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            **address_fields(to),  # "recipient" for a username-only user's BSUID (whatsapp/users.py)
            "type": self._type,
            self._type: self._content(),
        }
        if context_message_id is not None:
            _check_text(context_message_id, "context_message_id", 512)
            payload["context"] = {"message_id": context_message_id}
        if biz_opaque_callback_data is not None:
            _check_text(
                biz_opaque_callback_data,
                "biz_opaque_callback_data",
                BIZ_OPAQUE_CALLBACK_DATA_MAX,
                limit_name="BIZ_OPAQUE_CALLBACK_DATA_MAX",
            )
            payload["biz_opaque_callback_data"] = biz_opaque_callback_data
        return payload


@dataclass(frozen=True)
class Text(OutboundMessage):
    """Plain text; ``preview_url`` renders a preview of the first http(s) link."""

    body: str
    preview_url: bool = False
    _type = "text"

    def __post_init__(self) -> None:
        _check_text(self.body, "Text.body", TEXT_BODY_MAX, limit_name="TEXT_BODY_MAX")
        if not isinstance(self.preview_url, bool):
            raise MessageShapeError("Text.preview_url must be a boolean")

    def _content(self) -> Dict[str, Any]:
        return {"preview_url": self.preview_url, "body": self.body}


@dataclass(frozen=True)
class Recorded(OutboundMessage):
    """A message as ``wa_outbound`` recorded it (``to_payload`` with a placeholder
    recipient), sent again as it was built: after a restart, or when a dead letter is
    retried. Its shape was checked when it was first built."""

    payload: Dict[str, Any]

    def __post_init__(self) -> None:
        kind = self.payload.get("type") if isinstance(self.payload, dict) else None
        if not isinstance(kind, str) or not isinstance(self.payload.get(kind), dict):
            raise MessageShapeError("a recorded message needs its type and that type's object")

    @property
    def type(self) -> str:
        return str(self.payload["type"])

    def to_payload(
        self,
        to: str,
        context_message_id: Optional[str] = None,
        biz_opaque_callback_data: Optional[str] = None,
    ) -> Dict[str, Any]:
        _check_text(to, "to", BSUID_MAX)
        payload = {key: value for key, value in self.payload.items()
                   if key not in ("to", "recipient", "context", "biz_opaque_callback_data")}
        payload.update(address_fields(to))
        if context_message_id is not None:
            _check_text(context_message_id, "context_message_id", 512)
            payload["context"] = {"message_id": context_message_id}
        if biz_opaque_callback_data is not None:
            _check_text(biz_opaque_callback_data, "biz_opaque_callback_data", BIZ_OPAQUE_CALLBACK_DATA_MAX,
                        limit_name="BIZ_OPAQUE_CALLBACK_DATA_MAX")
            payload["biz_opaque_callback_data"] = biz_opaque_callback_data
        return payload


@dataclass(frozen=True)
class ReplyButton:
    """One tappable reply button; ``id`` comes back as ``button_reply.id``."""

    id: str
    title: str

    def __post_init__(self) -> None:
        _check_id(self.id, "ReplyButton.id", REPLY_BUTTON_ID_MAX, "REPLY_BUTTON_ID_MAX")
        _check_text(
            self.title, "ReplyButton.title", REPLY_BUTTON_TITLE_MAX,
            limit_name="REPLY_BUTTON_TITLE_MAX",
        )


@dataclass(frozen=True)
class ReplyButtons(OutboundMessage):
    """Up to 3 reply buttons under a body (interactive ``button``)."""

    body: str
    buttons: Sequence[ReplyButton]
    header_text: Optional[str] = None
    footer: Optional[str] = None
    _type = "interactive"

    def __post_init__(self) -> None:
        _check_text(self.body, "ReplyButtons.body", INTERACTIVE_BODY_MAX,
                    limit_name="INTERACTIVE_BODY_MAX")
        _check_text(self.header_text, "ReplyButtons.header_text", HEADER_TEXT_MAX,
                    required=False, limit_name="HEADER_TEXT_MAX")
        _check_text(self.footer, "ReplyButtons.footer", FOOTER_MAX,
                    required=False, limit_name="FOOTER_MAX")
        buttons = _as_tuple(self.buttons, "ReplyButtons.buttons")
        object.__setattr__(self, "buttons", buttons)  # frozen: keep an immutable copy
        if not buttons:
            raise MessageShapeError("ReplyButtons.buttons must not be empty")
        if len(buttons) > REPLY_BUTTONS_MAX:
            raise MessageShapeError(
                f"ReplyButtons.buttons has {len(buttons)} buttons; the limit is "
                f"{REPLY_BUTTONS_MAX} (REPLY_BUTTONS_MAX)"
            )
        if not all(isinstance(button, ReplyButton) for button in buttons):
            raise MessageShapeError("ReplyButtons.buttons must contain ReplyButton items")
        if len({button.title for button in buttons}) != len(buttons):
            raise MessageShapeError("ReplyButtons.buttons titles must be unique")
        if len({button.id for button in buttons}) != len(buttons):
            raise MessageShapeError("ReplyButtons.buttons ids must be unique")

    def _content(self) -> Dict[str, Any]:
        interactive: Dict[str, Any] = {
            "type": "button",
            "body": {"text": self.body},
            "action": {
                "buttons": [
                    {"type": "reply", "reply": {"id": button.id, "title": button.title}}
                    for button in self.buttons
                ]
            },
        }
        return _interactive_extras(interactive, self.header_text, self.footer)


@dataclass(frozen=True)
class ListRow:
    """One selectable row; ``id`` comes back as ``list_reply.id``."""

    id: str
    title: str
    description: Optional[str] = None

    def __post_init__(self) -> None:
        _check_id(self.id, "ListRow.id", LIST_ROW_ID_MAX, "LIST_ROW_ID_MAX")
        _check_text(self.title, "ListRow.title", LIST_ROW_TITLE_MAX,
                    limit_name="LIST_ROW_TITLE_MAX")
        _check_text(self.description, "ListRow.description", LIST_ROW_DESCRIPTION_MAX,
                    required=False, limit_name="LIST_ROW_DESCRIPTION_MAX")

    def to_dict(self) -> Dict[str, Any]:
        row = {"id": self.id, "title": self.title}
        if self.description is not None:
            row["description"] = self.description
        return row


@dataclass(frozen=True)
class ListSection:
    """A titled group of rows (Meta's docs mark the title as required)."""

    title: str
    rows: Sequence[ListRow]

    def __post_init__(self) -> None:
        _check_text(self.title, "ListSection.title", LIST_SECTION_TITLE_MAX,
                    limit_name="LIST_SECTION_TITLE_MAX")
        rows = _as_tuple(self.rows, "ListSection.rows")
        object.__setattr__(self, "rows", rows)
        if not rows:
            raise MessageShapeError("ListSection.rows must not be empty")
        if not all(isinstance(row, ListRow) for row in rows):
            raise MessageShapeError("ListSection.rows must contain ListRow items")
        # The 10-row limit counts all sections together: ListMessage checks it.

    def to_dict(self) -> Dict[str, Any]:
        return {"title": self.title, "rows": [row.to_dict() for row in self.rows]}


@dataclass(frozen=True)
class ListMessage(OutboundMessage):
    """Interactive list: a ``button`` label that opens up to 10 rows across up to 10 sections."""

    body: str
    button: str
    sections: Sequence[ListSection]
    header_text: Optional[str] = None
    footer: Optional[str] = None
    _type = "interactive"

    def __post_init__(self) -> None:
        # The list page allows 4096 but the shared OpenAPI BodyObject says 1024: use the safe one.
        _check_text(self.body, "ListMessage.body", INTERACTIVE_BODY_MAX,
                    limit_name="INTERACTIVE_BODY_MAX")
        _check_text(self.button, "ListMessage.button", LIST_BUTTON_MAX,
                    limit_name="LIST_BUTTON_MAX")
        _check_text(self.header_text, "ListMessage.header_text", HEADER_TEXT_MAX,
                    required=False, limit_name="HEADER_TEXT_MAX")
        _check_text(self.footer, "ListMessage.footer", FOOTER_MAX,
                    required=False, limit_name="FOOTER_MAX")
        sections = _as_tuple(self.sections, "ListMessage.sections")
        object.__setattr__(self, "sections", sections)
        if not sections:
            raise MessageShapeError("ListMessage.sections must not be empty")
        if not all(isinstance(section, ListSection) for section in sections):
            raise MessageShapeError("ListMessage.sections must contain ListSection items")
        if len(sections) > LIST_SECTIONS_MAX:
            raise MessageShapeError(
                f"ListMessage.sections has {len(sections)} sections; the limit is "
                f"{LIST_SECTIONS_MAX} (LIST_SECTIONS_MAX)"
            )
        rows = [row for section in sections for row in section.rows]
        if len(rows) > LIST_ROWS_MAX:
            raise MessageShapeError(
                f"ListMessage has {len(rows)} rows across its sections; the limit is "
                f"{LIST_ROWS_MAX} in total (LIST_ROWS_MAX)"
            )
        if len({row.id for row in rows}) != len(rows):
            raise MessageShapeError("ListMessage row ids must be unique across all sections")

    def _content(self) -> Dict[str, Any]:
        interactive: Dict[str, Any] = {
            "type": "list",
            "body": {"text": self.body},
            "action": {
                "button": self.button,
                "sections": [section.to_dict() for section in self.sections],
            },
        }
        return _interactive_extras(interactive, self.header_text, self.footer)


@dataclass(frozen=True)
class CtaUrl(OutboundMessage):
    """One button that opens an http(s) URL (interactive ``cta_url``)."""

    body: str
    display_text: str
    url: str
    header_text: Optional[str] = None
    footer: Optional[str] = None
    _type = "interactive"

    def __post_init__(self) -> None:
        _check_text(self.body, "CtaUrl.body", INTERACTIVE_BODY_MAX,
                    limit_name="INTERACTIVE_BODY_MAX")
        _check_text(self.display_text, "CtaUrl.display_text", CTA_DISPLAY_TEXT_MAX,
                    limit_name="CTA_DISPLAY_TEXT_MAX")
        _check_http_url(self.url, "CtaUrl.url")
        _check_text(self.header_text, "CtaUrl.header_text", HEADER_TEXT_MAX,
                    required=False, limit_name="HEADER_TEXT_MAX")
        _check_text(self.footer, "CtaUrl.footer", FOOTER_MAX,
                    required=False, limit_name="FOOTER_MAX")

    def _content(self) -> Dict[str, Any]:
        interactive: Dict[str, Any] = {
            "type": "cta_url",
            "body": {"text": self.body},
            "action": {
                "name": "cta_url",
                "parameters": {"display_text": self.display_text, "url": self.url},
            },
        }
        return _interactive_extras(interactive, self.header_text, self.footer)


FLOW_ACTIONS = ("navigate", "data_exchange")
FLOW_TOKEN_MAX = 512  # our own bound: the token comes back on every data request


@dataclass(frozen=True)
class FlowMessage(OutboundMessage):
    """A WhatsApp Flow (interactive ``flow``): a CTA that opens a published Flow.

    ``flow_action="data_exchange"`` makes WhatsApp ask the data endpoint for the first
    screen (``INIT``); ``navigate`` opens ``screen`` with ``data`` as given here.
    """

    body: str
    cta: str
    flow_id: str
    flow_token: str
    flow_action: str = "data_exchange"
    screen: Optional[str] = None
    data: Optional[Dict[str, Any]] = None
    header_text: Optional[str] = None
    footer: Optional[str] = None
    _type = "interactive"

    def __post_init__(self) -> None:
        _check_text(self.body, "FlowMessage.body", INTERACTIVE_BODY_MAX,
                    limit_name="INTERACTIVE_BODY_MAX")
        _check_text(self.cta, "FlowMessage.cta", CTA_DISPLAY_TEXT_MAX,
                    limit_name="CTA_DISPLAY_TEXT_MAX")
        _check_id(self.flow_id, "FlowMessage.flow_id", 64, "flow id")
        _check_id(self.flow_token, "FlowMessage.flow_token", FLOW_TOKEN_MAX, "FLOW_TOKEN_MAX")
        if self.flow_action not in FLOW_ACTIONS:
            raise MessageShapeError("FlowMessage.flow_action must be navigate or data_exchange")
        if self.flow_action == "navigate":
            _check_id(self.screen, "FlowMessage.screen", 128, "screen id")
        elif self.screen is not None or self.data is not None:
            raise MessageShapeError("FlowMessage.screen and data are only for flow_action navigate")
        if self.data is not None and not isinstance(self.data, dict):
            raise MessageShapeError("FlowMessage.data must be an object")
        _check_text(self.header_text, "FlowMessage.header_text", HEADER_TEXT_MAX,
                    required=False, limit_name="HEADER_TEXT_MAX")
        _check_text(self.footer, "FlowMessage.footer", FOOTER_MAX,
                    required=False, limit_name="FOOTER_MAX")

    def _content(self) -> Dict[str, Any]:
        parameters: Dict[str, Any] = {
            "flow_message_version": "3",
            "flow_token": self.flow_token,
            "flow_id": self.flow_id,
            "flow_cta": self.cta,
            "flow_action": self.flow_action,
        }
        if self.flow_action == "navigate":
            action_payload: Dict[str, Any] = {"screen": self.screen}
            if self.data:
                action_payload["data"] = self.data
            parameters["flow_action_payload"] = action_payload
        interactive: Dict[str, Any] = {
            "type": "flow",
            "body": {"text": self.body},
            "action": {"name": "flow", "parameters": parameters},
        }
        return _interactive_extras(interactive, self.header_text, self.footer)


@dataclass(frozen=True)
class LocationRequest(OutboundMessage):
    """Asks the user to share a location; the answer is an inbound ``location`` with context."""

    body: str
    _type = "interactive"

    def __post_init__(self) -> None:
        _check_text(self.body, "LocationRequest.body", LOCATION_REQUEST_BODY_MAX,
                    limit_name="LOCATION_REQUEST_BODY_MAX")

    def _content(self) -> Dict[str, Any]:
        return {
            "type": "location_request_message",
            "body": {"text": self.body},
            "action": {"name": "send_location"},
        }


@dataclass(frozen=True)
class Template(OutboundMessage):
    """An approved template: the only thing that can be sent outside the 24 h window.

    ``body_params`` fill {{1}}, {{2}}, ... in order; each quick-reply payload goes to the
    button at the same index and comes back as ``button.payload`` when tapped.
    ``url_button_params`` fill the dynamic suffix of URL buttons (``https://site/t/{{1}}``),
    which come after the quick replies (indexes continue from them).
    """

    name: str
    language: str = "en"
    body_params: Sequence[str] = ()
    quick_reply_payloads: Sequence[str] = ()
    header_text_param: Optional[str] = None
    url_button_params: Sequence[str] = ()
    _type = "template"

    def __post_init__(self) -> None:
        _check_text(self.name, "Template.name", TEMPLATE_NAME_MAX, limit_name="TEMPLATE_NAME_MAX")
        if not _TEMPLATE_NAME.match(self.name):
            raise MessageShapeError("Template.name may only contain a-z, 0-9 and _")
        _check_id(self.language, "Template.language", 16, "language code")
        body_params = _as_tuple(self.body_params, "Template.body_params")
        payloads = _as_tuple(self.quick_reply_payloads, "Template.quick_reply_payloads")
        object.__setattr__(self, "body_params", body_params)
        object.__setattr__(self, "quick_reply_payloads", payloads)
        for index, param in enumerate(body_params):
            _check_text(param, f"Template.body_params[{index}]", INTERACTIVE_BODY_MAX,
                        limit_name="template body limit")
            if _BAD_TEMPLATE_PARAM.search(param):
                raise MessageShapeError(
                    f"Template.body_params[{index}] must not contain new lines, tabs or more "
                    "than 4 consecutive spaces"
                )
        if self.header_text_param is not None:
            _check_text(self.header_text_param, "Template.header_text_param", HEADER_TEXT_MAX,
                        limit_name="HEADER_TEXT_MAX")
            if _BAD_TEMPLATE_PARAM.search(self.header_text_param):
                raise MessageShapeError(
                    "Template.header_text_param must not contain new lines, tabs or more than "
                    "4 consecutive spaces"
                )
        url_params = _as_tuple(self.url_button_params, "Template.url_button_params")
        object.__setattr__(self, "url_button_params", url_params)
        for index, param in enumerate(url_params):
            _check_text(param, f"Template.url_button_params[{index}]", 2000, limit_name="URL length")
        if len(payloads) + len(url_params) > TEMPLATE_BUTTONS_MAX:
            raise MessageShapeError(
                f"Template.quick_reply_payloads has {len(payloads)} items; the limit is "
                f"{TEMPLATE_BUTTONS_MAX} (TEMPLATE_BUTTONS_MAX)"
            )
        for index, payload in enumerate(payloads):
            _check_text(payload, f"Template.quick_reply_payloads[{index}]",
                        TEMPLATE_QUICK_REPLY_PAYLOAD_MAX,
                        limit_name="TEMPLATE_QUICK_REPLY_PAYLOAD_MAX")

    def _content(self) -> Dict[str, Any]:
        components: List[Dict[str, Any]] = []
        if self.header_text_param is not None:
            components.append(
                {"type": "header", "parameters": [{"type": "text", "text": self.header_text_param}]}
            )
        if self.body_params:
            components.append(
                {
                    "type": "body",
                    "parameters": [{"type": "text", "text": param} for param in self.body_params],
                }
            )
        for index, payload in enumerate(self.quick_reply_payloads):
            components.append(
                {
                    "type": "button",
                    "sub_type": "quick_reply",
                    "index": str(index),
                    "parameters": [{"type": "payload", "payload": payload}],
                }
            )
        for offset, param in enumerate(self.url_button_params):
            components.append(
                {
                    "type": "button",
                    "sub_type": "url",
                    "index": str(len(self.quick_reply_payloads) + offset),
                    "parameters": [{"type": "text", "text": param}],
                }
            )
        template: Dict[str, Any] = {"name": self.name, "language": {"code": self.language}}
        if components:
            template["components"] = components
        return template


@dataclass(frozen=True)
class Media(OutboundMessage):
    """Image, video, audio, document or sticker, by uploaded ``media_id`` or public ``link``."""

    kind: str
    link: Optional[str] = None
    media_id: Optional[str] = None
    caption: Optional[str] = None
    filename: Optional[str] = None

    def __post_init__(self) -> None:
        if self.kind not in MEDIA_KINDS:
            raise MessageShapeError(f"Media.kind must be one of {', '.join(MEDIA_KINDS)}")
        if (self.link is None) == (self.media_id is None):
            raise MessageShapeError("Media needs exactly one of link or media_id")
        if self.link is not None:
            _check_http_url(self.link, "Media.link")
        else:
            _check_id(self.media_id, "Media.media_id", 256, "media id")
        if self.caption is not None:
            if self.kind in _NO_CAPTION_KINDS:
                raise MessageShapeError(f"Media.caption is not allowed on {self.kind}")
            _check_text(self.caption, "Media.caption", MEDIA_CAPTION_MAX,
                        limit_name="MEDIA_CAPTION_MAX")
        if self.filename is not None:
            if self.kind != "document":
                raise MessageShapeError("Media.filename is only allowed on document")
            _check_text(self.filename, "Media.filename", 240, limit_name="file name")

    @property
    def _type(self) -> str:  # type: ignore[override]
        return self.kind

    def _content(self) -> Dict[str, Any]:
        content: Dict[str, Any] = (
            {"link": self.link} if self.link is not None else {"id": self.media_id}
        )
        if self.caption is not None:
            content["caption"] = self.caption
        if self.filename is not None:
            content["filename"] = self.filename
        return content


@dataclass(frozen=True)
class Reaction(OutboundMessage):
    """React to a message; an empty ``emoji`` removes our earlier reaction."""

    message_id: str
    emoji: str
    _type = "reaction"

    def __post_init__(self) -> None:
        _check_id(self.message_id, "Reaction.message_id", 512, "message id")
        if not isinstance(self.emoji, str) or self.emoji != self.emoji.strip():
            raise MessageShapeError("Reaction.emoji must be a string without surrounding spaces")
        # An emoji with modifiers and joiners is a few code points, never a sentence.
        if len(self.emoji) > 16:
            raise MessageShapeError(
                f"Reaction.emoji is {len(self.emoji)} characters; the limit is 16 (one emoji)"
            )

    def _content(self) -> Dict[str, Any]:
        return {"message_id": self.message_id, "emoji": self.emoji}


def mark_read_payload(message_id: str, typing: bool = False) -> Dict[str, Any]:
    """Read receipt for an inbound message, optionally with a typing indicator (≤25 s).

    This body has no ``to``/``type``: it targets the inbound wamid.
    """
    _check_id(message_id, "message_id", 512, "message id")
    payload: Dict[str, Any] = {
        "messaging_product": "whatsapp",
        "status": "read",
        "message_id": message_id,
    }
    if typing:
        payload["typing_indicator"] = {"type": "text"}
    return payload


# ---------------------------------------------------------------------------------------------
# Splitting long text
# ---------------------------------------------------------------------------------------------

_SENTENCE_END = ".!?…。！？"
_CLOSERS = "\"')]}»”’"


def split_text(text: str, limit: int = TEXT_BODY_MAX) -> List[str]:
    """Split ``text`` into chunks of at most ``limit`` characters.

    Cuts after the last sentence end (., !, ?, …) or new line that fits, else at the last
    space, else hard (never inside a combining sequence). Only whitespace at a cut is dropped;
    blank chunks are never returned (so blank input gives an empty list).
    """
    if limit < 1:
        raise ValueError("limit must be at least 1")
    if not text.strip():
        return []
    if len(text) <= limit:
        return [text]
    chunks: List[str] = []
    rest = text
    while len(rest) > limit:
        cut = _best_cut(rest, limit)
        chunk = rest[:cut].rstrip()
        if chunk.strip():
            chunks.append(chunk)
        rest = rest[cut:].lstrip()
    if rest.strip():
        chunks.append(rest)
    return chunks


def _best_cut(text: str, limit: int) -> int:
    """Index to cut ``text`` at, in (0, limit]; ``text`` is longer than ``limit``."""
    sentence = 0
    word = 0
    # A cut at i keeps text[:i]; a boundary needs whitespace right after it (text[i]).
    for i in range(limit, 0, -1):
        char = text[i]
        if not char.isspace():
            continue
        if char == "\n":
            sentence = i
            break
        if not word:
            word = i
        j = i - 1
        while j >= 0 and text[j] in _CLOSERS:  # 'Stop." Then' ends a sentence too
            j -= 1
        if j >= 0 and text[j] in _SENTENCE_END:
            sentence = i
            break
    if sentence:
        return sentence
    if word:
        return word
    # Hard cut: step back over combining marks / joiners so a glyph is not torn apart.
    cut = limit
    while cut > 1 and _joins_previous(text[cut]):
        cut -= 1
    return cut


def _joins_previous(char: str) -> bool:
    return (
        unicodedata.combining(char) != 0
        or char in "\u200d\ufe0e\ufe0f"
        or "\U0001f3fb" <= char <= "\U0001f3ff"  # skin-tone modifiers
    )


# ---------------------------------------------------------------------------------------------
# Choosing between reply buttons and a list
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Choice:
    """One option offered to the user, before it is decided how to show it."""

    title: str
    id: str
    description: Optional[str] = None


def choice_message(
    body: str,
    choices: Sequence[Choice],
    list_button: str = "Options",
    section_title: str = "Options",
) -> Union[ReplyButtons, ListMessage]:
    """Reply buttons when they fit (≤3 choices, titles ≤20), else a single-section list.

    A list row title over 24 characters is shortened at a word boundary with "…", and the full
    title moves to the empty description slot when it fits (≤72). More than 10 choices or a body
    over 1024 characters raise :class:`MessageShapeError`: the caller decides (paginate, or send
    the long text first).
    """
    if isinstance(body, str) and len(body) > INTERACTIVE_BODY_MAX:
        raise MessageShapeError(
            f"choice_message body is {len(body)} characters; the limit is "
            f"{INTERACTIVE_BODY_MAX} (INTERACTIVE_BODY_MAX): send the text separately first"
        )
    choices = _as_tuple(choices, "choices")
    if not choices:
        raise MessageShapeError("choice_message needs at least one choice")
    if not all(isinstance(choice, Choice) for choice in choices):
        raise MessageShapeError("choices must contain Choice items")
    fits_buttons = (
        len(choices) <= REPLY_BUTTONS_MAX
        and all(isinstance(c.title, str) and len(c.title) <= REPLY_BUTTON_TITLE_MAX for c in choices)
        # Buttons cannot show a description: a list keeps it visible.
        and all(c.description is None for c in choices)
    )
    if fits_buttons:
        return ReplyButtons(body=body, buttons=[ReplyButton(c.id, c.title) for c in choices])
    if len(choices) > LIST_ROWS_MAX:
        raise MessageShapeError(
            f"choice_message has {len(choices)} choices; a list holds at most {LIST_ROWS_MAX} "
            "(LIST_ROWS_MAX): paginate or narrow the options"
        )
    rows = [_row_for(choice) for choice in choices]
    return ListMessage(
        body=body,
        button=list_button,
        sections=[ListSection(title=section_title, rows=rows)],
    )


def _row_for(choice: Choice) -> ListRow:
    title, description = choice.title, choice.description
    if isinstance(title, str) and len(title) > LIST_ROW_TITLE_MAX:
        if description is None and len(title) <= LIST_ROW_DESCRIPTION_MAX:
            description = title  # the full wording stays readable under the short title
        title = shorten(title, LIST_ROW_TITLE_MAX)
    return ListRow(id=choice.id, title=title, description=description)


def shorten(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` characters at a word boundary, ending with "…"."""
    if len(text) <= limit:
        return text
    head = text[: limit - len(ELLIPSIS)]
    space = head.rfind(" ")
    if space > 0 and head[:space].strip():
        head = head[:space]
    return head.rstrip() + ELLIPSIS
