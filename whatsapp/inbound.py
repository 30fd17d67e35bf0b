"""Typed inbound webhook models and a tolerant parser (reference §2).

Meta batches up to 1,000 updates per POST across ``entry[] × changes[] × messages[]/statuses[]``
and adds new message types without notice, so the parser walks every item, keeps what it does
not know as :class:`UnknownMessage`, and skips (never raises on) malformed items. Problem notes
name the path and the reason only: a webhook body is patient data and must not leak into logs.

Normalised at the door (``decode_webhook_body``): invalid UTF-8 and code points no database
can store (lone surrogates from a JSON "\\ud800", NUL) become U+FFFD, and a body nested
deeper than any Meta payload is refused, so nothing downstream fails on them. Each item of a
batch is parsed on its own: a bad timestamp keeps the message with the receipt time, and an
item that cannot be read at all is listed in ``WebhookBatch.rejected`` (for the quarantine)
without sinking the rest of the batch.
"""

from __future__ import annotations

import json
import math
import re
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple

from whatsapp.limits import WEBHOOK_UPDATES_MAX

__all__ = [
    "ButtonReply",
    "Contact",
    "ContactsMessage",
    "EditMessage",
    "ErrorDetail",
    "FlowReply",
    "InboundMessage",
    "ListReply",
    "LocationMessage",
    "MEDIA_KINDS",
    "MediaMessage",
    "MessageContext",
    "OrderMessage",
    "ReactionMessage",
    "RevokeMessage",
    "STATUS_RANK",
    "StatusUpdate",
    "SystemMessage",
    "TemplateButtonReply",
    "TextMessage",
    "UnknownInteractive",
    "UnknownMessage",
    "UnsupportedMessage",
    "RejectedItem",
    "WebhookBatch",
    "WebhookBodyError",
    "WebhookError",
    "clean_json",
    "clean_text",
    "decode_webhook_body",
    "parse_webhook",
    "status_supersedes",
]

WEBHOOK_OBJECT = "whatsapp_business_account"
# Inbound messages *and* delivery statuses both arrive under this change field.
MESSAGES_FIELD = "messages"
MEDIA_KINDS = frozenset({"image", "video", "audio", "document", "sticker"})


class _Malformed(Exception):
    """Internal: an item has the wrong shape. The text names fields and types, never values."""


# ---------------------------------------------------------------------------------------------
# The body: decoding and normalising
# ---------------------------------------------------------------------------------------------

# Meta's payloads nest about ten levels deep; a body nested deeper is not one of theirs, and
# json's own limit (about a thousand) would raise RecursionError further on.
MAX_JSON_DEPTH = 64
# Lone UTF-16 surrogates (a JSON "\\ud800" decodes to one) cannot be encoded as UTF-8, so no
# database or file accepts them; PostgreSQL's text type refuses NUL.
_UNENCODABLE = re.compile("[\ud800-\udfff\x00]")
REPLACEMENT_CHARACTER = "\ufffd"


class WebhookBodyError(ValueError):
    """The body is not a JSON document we can read; ``reason`` is a code (no content)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def clean_text(value: str) -> str:
    """``value`` with every code point no database can store replaced by U+FFFD."""
    return _UNENCODABLE.sub(REPLACEMENT_CHARACTER, value)


def clean_json(value: Any) -> Any:
    """A decoded JSON value with every string (and key) passed through ``clean_text``.
    Iterative, so a deeply nested value cannot raise RecursionError here."""
    if isinstance(value, str):
        return clean_text(value)
    if not isinstance(value, (dict, list)):
        return value
    root: List[Any] = [value]
    stack: List[Tuple[Any, Any, Any]] = [(root, 0, value)]
    while stack:
        parent, key, node = stack.pop()
        copy: Any
        if isinstance(node, dict):
            copy = {}
            for k, v in node.items():
                k = clean_text(k) if isinstance(k, str) else k
                copy[k] = clean_text(v) if isinstance(v, str) else v
                if isinstance(v, (dict, list)):
                    stack.append((copy, k, v))
        else:
            copy = [clean_text(v) if isinstance(v, str) else v for v in node]
            stack.extend((copy, index, v) for index, v in enumerate(node) if isinstance(v, (dict, list)))
        parent[key] = copy
    return root[0]


def _deeper_than(value: Any, limit: int) -> bool:
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            return True
        children = node.values() if isinstance(node, dict) else node
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return False


def decode_webhook_body(body: bytes) -> object:
    """The raw POST body as JSON, normalised (see the module's docstring). Raises
    WebhookBodyError("malformed_json" or "too_deep")."""
    text = body.decode("utf-8-sig", errors="replace")  # invalid UTF-8 → U+FFFD, not a 400
    try:
        payload = json.loads(text)
    except RecursionError:
        raise WebhookBodyError("too_deep") from None
    except ValueError:
        raise WebhookBodyError("malformed_json") from None
    if isinstance(payload, (dict, list)) and _deeper_than(payload, MAX_JSON_DEPTH):
        raise WebhookBodyError("too_deep")
    return clean_json(payload)


# ---------------------------------------------------------------------------------------------
# Small models
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Contact:
    """``value.contacts[i]``: who sent the message, as WhatsApp knows them."""

    wa_id: Optional[str]
    user_id: Optional[str]  # business-scoped user id (BSUID), present since the 2026 rollout
    profile_name: Optional[str]
    parent_user_id: Optional[str] = None
    username: Optional[str] = None  # ``profile.username``: the WhatsApp username, when the user has one

    @property
    def key(self) -> Optional[str]:
        """Stable conversation key: the BSUID survives phone-number withholding, wa_id may not."""
        return self.user_id or self.wa_id


@dataclass(frozen=True, kw_only=True)
class MessageContext:
    """``messages[i].context``: a quoted business message, a product inquiry or a forward."""

    from_: Optional[str]
    id: Optional[str]
    forwarded: bool = False
    frequently_forwarded: bool = False
    referred_product: Optional[Dict[str, Any]] = None


@dataclass(frozen=True, kw_only=True)
class ErrorDetail:
    """One element of an ``errors[]`` array (messages, statuses or value level).

    Meta's ``title`` duplicates ``message``; branch on ``code`` and ``details`` instead.
    """

    code: Optional[int]
    title: Optional[str] = None
    message: Optional[str] = None
    details: Optional[str] = None
    href: Optional[str] = None


@dataclass(frozen=True, kw_only=True)
class WebhookError(ErrorDetail):
    """A value-level ``value.errors[]`` item: a system, app or account problem, not a message."""

    phone_number_id: Optional[str] = None
    waba_id: Optional[str] = None


# ---------------------------------------------------------------------------------------------
# Messages
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class InboundMessage:
    """Fields every inbound message shares. ``raw`` is the message object exactly as received."""

    id: str  # wamid: the natural dedupe key
    timestamp: int  # Unix seconds (Meta sends a string)
    type: str
    from_: Optional[str]
    from_user_id: Optional[str]
    contact: Optional[Contact]
    phone_number_id: Optional[str]
    context: Optional[MessageContext]
    raw: Dict[str, Any]
    referral: Optional[Dict[str, Any]] = None  # Click-to-WhatsApp ad that started the chat
    errors: List[ErrorDetail] = field(default_factory=list)
    # Meta's timestamp was missing or absurd (milliseconds, year 33658…): the receipt time
    # stands in, so the message is kept.
    timestamp_replaced: bool = False

    @property
    def sender_key(self) -> Optional[str]:
        """Who to key the conversation on: the BSUID when present, else the phone/wa_id."""
        contact = self.contact
        return (
            self.from_user_id
            or (contact.user_id if contact else None)
            or self.from_
            or (contact.wa_id if contact else None)
        )


@dataclass(frozen=True, kw_only=True)
class TextMessage(InboundMessage):
    body: str


@dataclass(frozen=True, kw_only=True)
class ButtonReply(InboundMessage):
    """The user tapped one of our interactive reply buttons."""

    reply_id: str
    title: str


@dataclass(frozen=True, kw_only=True)
class ListReply(InboundMessage):
    """The user picked a row of our interactive list."""

    reply_id: str
    title: str
    description: Optional[str] = None


@dataclass(frozen=True, kw_only=True)
class FlowReply(InboundMessage):
    """A WhatsApp Flow completed (``nfm_reply``); ``response_json`` is a JSON *string*."""

    response_json: str
    body: Optional[str] = None
    name: Optional[str] = None


@dataclass(frozen=True, kw_only=True)
class TemplateButtonReply(InboundMessage):
    """A quick-reply tap on a *template* (``type: "button"``), not an interactive button."""

    payload: Optional[str]
    text: Optional[str]


@dataclass(frozen=True, kw_only=True)
class LocationMessage(InboundMessage):
    """A shared pin; a "current location" share carries only the coordinates."""

    latitude: float
    longitude: float
    name: Optional[str] = None
    address: Optional[str] = None
    url: Optional[str] = None


@dataclass(frozen=True, kw_only=True)
class MediaMessage(InboundMessage):
    """Image, video, audio (``voice`` for recorded notes), document or sticker.

    ``media_id`` resolves to a short-lived download URL via ``GET /<media_id>`` (reference §2.2).
    """

    kind: str
    media_id: str
    mime_type: Optional[str] = None
    sha256: Optional[str] = None
    caption: Optional[str] = None
    filename: Optional[str] = None
    voice: bool = False
    url: Optional[str] = None


@dataclass(frozen=True, kw_only=True)
class ReactionMessage(InboundMessage):
    """An emoji reaction to one of our messages; ``emoji`` None means it was removed."""

    message_id: str
    emoji: Optional[str] = None

    @property
    def removed(self) -> bool:
        return not self.emoji


@dataclass(frozen=True, kw_only=True)
class ContactsMessage(InboundMessage):
    """Shared contact cards (names, phones, ...), kept as Meta's dicts."""

    contacts: List[Dict[str, Any]]


@dataclass(frozen=True, kw_only=True)
class OrderMessage(InboundMessage):
    catalog_id: Optional[str]
    product_items: List[Dict[str, Any]]
    text: Optional[str] = None


@dataclass(frozen=True, kw_only=True)
class SystemMessage(InboundMessage):
    """E.g. ``user_changed_number`` (``new_wa_id`` is the new number) or
    ``user_changed_user_id`` (``new_user_id`` is the new BSUID; the old one is the message's
    ``from_user_id``). Has no contacts array."""

    body: Optional[str]
    system_type: Optional[str]
    new_wa_id: Optional[str] = None
    new_user_id: Optional[str] = None
    new_parent_user_id: Optional[str] = None


@dataclass(frozen=True, kw_only=True)
class UnsupportedMessage(InboundMessage):
    """Something WhatsApp would not forward (131051) or could not fetch (131060).

    ``errors`` (inherited) carries Meta's codes; ``unsupported_type`` is e.g. "poll_creation".
    """

    unsupported_type: Optional[str] = None


@dataclass(frozen=True, kw_only=True)
class RevokeMessage(InboundMessage):
    """The user deleted a message they had sent us."""

    original_message_id: Optional[str]


@dataclass(frozen=True, kw_only=True)
class EditMessage(InboundMessage):
    """The user edited a message; ``new_body`` is the new text or caption when there is one."""

    original_message_id: Optional[str]
    new_body: Optional[str] = None


@dataclass(frozen=True, kw_only=True)
class UnknownInteractive(InboundMessage):
    """An ``interactive`` sub-type we do not model (e.g. ``call_permission_reply``)."""

    interactive_type: Optional[str]


@dataclass(frozen=True, kw_only=True)
class UnknownMessage(InboundMessage):
    """Any other ``type``: kept so the bot can say it could not read it, never a crash."""


# ---------------------------------------------------------------------------------------------
# Statuses
# ---------------------------------------------------------------------------------------------

# Delivery progress of one outgoing message. Statuses arrive out of order (reference §2.3), so a
# status may only replace a lower-ranked one: a late "delivered" never overwrites "read".
# "failed" is terminal and outside the ranking: it is always recorded (with its errors) and
# nothing replaces it afterwards. Unknown status strings rank 0: recorded only when nothing is.
STATUS_RANK: Dict[str, int] = {"sent": 1, "delivered": 2, "read": 3, "played": 4}
FAILED = "failed"


def status_supersedes(new: str, current: Optional[str]) -> bool:
    """Whether ``new`` should replace the stored ``current`` status of a message."""
    if new == FAILED:
        return True  # terminal and carries the errors; re-recording a duplicate is harmless
    if current is None:
        return True
    if current == FAILED:
        return False
    return STATUS_RANK.get(new, 0) > STATUS_RANK.get(current, 0)


@dataclass(frozen=True, kw_only=True)
class StatusUpdate:
    """``value.statuses[i]``: what happened to a message *we* sent."""

    message_id: str
    status: str  # sent | delivered | read | failed | played; other strings are kept as-is
    timestamp: int
    recipient_id: Optional[str]
    errors: List[ErrorDetail] = field(default_factory=list)
    timestamp_replaced: bool = False
    biz_opaque_callback_data: Optional[str] = None
    conversation: Optional[Dict[str, Any]] = None
    pricing: Optional[Dict[str, Any]] = None
    phone_number_id: Optional[str] = None
    recipient_user_id: Optional[str] = None
    raw: Dict[str, Any] = field(default_factory=dict)

    @property
    def failed(self) -> bool:
        return self.status == FAILED


# ---------------------------------------------------------------------------------------------
# Batch and parser
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RejectedItem:
    """A message the parser could not read. ``reason`` names the path and the problem only;
    ``message_id`` and ``sender`` (the raw WhatsApp id: pseudonymise before storing) are
    given when the item had them as strings."""

    where: str
    reason: str
    message_id: Optional[str] = None
    sender: Optional[str] = None


@dataclass
class WebhookBatch:
    """Everything one webhook POST carried, in order, plus content-free notes on what was skipped."""

    messages: List[InboundMessage] = field(default_factory=list)
    statuses: List[StatusUpdate] = field(default_factory=list)
    errors: List[WebhookError] = field(default_factory=list)
    problems: List[str] = field(default_factory=list)
    # Messages that could not be parsed at all (also noted in ``problems``).
    rejected: List[RejectedItem] = field(default_factory=list)
    # Change fields other than "messages" (account_update, group_*, ...): not ours to handle.
    ignored_fields: List[str] = field(default_factory=list)

    @property
    def update_count(self) -> int:
        return len(self.messages) + len(self.statuses) + len(self.errors)


def parse_webhook(payload: object, received_at: Optional[int] = None) -> WebhookBatch:
    """Parse a decoded webhook body. Never raises for shape problems; see ``problems``.
    ``received_at`` (Unix seconds, default now) stands in for absurd timestamps."""
    batch = WebhookBatch()
    received = int(time.time()) if received_at is None else int(received_at)
    if not isinstance(payload, dict):
        batch.problems.append(f"payload: expected a JSON object, got {_kind(payload)}")
        return batch
    if payload.get("object") != WEBHOOK_OBJECT:
        batch.problems.append(f"payload: 'object' is not {WEBHOOK_OBJECT!r}")
        return batch
    entries = payload.get("entry")
    if not isinstance(entries, list):
        batch.problems.append(f"payload.entry: expected a list, got {_kind(entries)}")
        return batch

    for e_index, entry in enumerate(entries):
        where = f"entry[{e_index}]"
        if not isinstance(entry, dict):
            batch.problems.append(f"{where}: expected an object, got {_kind(entry)}")
            continue
        waba_id = _opt_str(entry.get("id"))
        changes = entry.get("changes")
        if not isinstance(changes, list):
            batch.problems.append(f"{where}.changes: expected a list, got {_kind(changes)}")
            continue
        for c_index, change in enumerate(changes):
            c_where = f"{where}.changes[{c_index}]"
            if not isinstance(change, dict):
                batch.problems.append(f"{c_where}: expected an object, got {_kind(change)}")
                continue
            change_field = change.get("field")
            if change_field != MESSAGES_FIELD:
                batch.ignored_fields.append(
                    change_field if isinstance(change_field, str) else f"<{_kind(change_field)}>"
                )
                continue
            value = change.get("value")
            if not isinstance(value, dict):
                batch.problems.append(f"{c_where}.value: expected an object, got {_kind(value)}")
                continue
            _parse_value(value, f"{c_where}.value", waba_id, batch, received)

    # Meta documents at most 1,000 updates per POST. More is noted but still processed:
    # dropping a patient's message would be worse than a large batch (the body size is capped).
    if batch.update_count > WEBHOOK_UPDATES_MAX:
        batch.problems.append(
            f"payload: {batch.update_count} updates exceed the documented maximum of "
            f"{WEBHOOK_UPDATES_MAX} per batch"
        )
    return batch


def _parse_value(value: Dict[str, Any], where: str, waba_id: Optional[str], batch: WebhookBatch,
                 received: int) -> None:
    metadata = value.get("metadata")
    phone_number_id = (
        _opt_str(metadata.get("phone_number_id")) if isinstance(metadata, dict) else None
    )
    contacts = _parse_contacts(value.get("contacts"), f"{where}.contacts", batch.problems)

    # One entry per kind of item: its key, its parser and the batch's list that collects it.
    parsers: Tuple[Tuple[str, Callable[[Any, str], Any], List[Any]], ...] = (
        ("messages", lambda item, w: _parse_message(item, w, phone_number_id, contacts, received),
         batch.messages),
        ("statuses", lambda item, w: _parse_status(item, w, phone_number_id, received), batch.statuses),
        ("errors", lambda item, w: _parse_webhook_error(item, w, phone_number_id, waba_id),
         batch.errors),
    )
    for name, parse_one, sink in parsers:
        items = value.get(name)
        if items is None:
            continue
        if not isinstance(items, list):
            batch.problems.append(f"{where}.{name}: expected a list, got {_kind(items)}")
            continue
        for index, item in enumerate(items):
            item_where = f"{where}.{name}[{index}]"
            try:
                parsed = parse_one(item, item_where)
            except _Malformed as exc:
                problem = f"{item_where}: skipped, {exc}"
            except Exception as exc:  # a webhook must never crash the receiver
                # Only the class name: builtin exception texts can quote the offending value.
                problem = f"{item_where}: skipped, {type(exc).__name__}"
            else:
                sink.append(parsed)
                if getattr(parsed, "timestamp_replaced", False):
                    batch.problems.append(f"{item_where}: timestamp missing or out of range, receipt time used")
                continue
            batch.problems.append(problem)
            if name == "messages":
                batch.rejected.append(_rejected(item, item_where, problem))


def _rejected(item: object, where: str, problem: str) -> RejectedItem:
    fields = item if isinstance(item, dict) else {}
    message_id, sender = fields.get("id"), fields.get("from_user_id") or fields.get("from")
    return RejectedItem(where=where, reason=problem,
                        message_id=message_id if isinstance(message_id, str) and message_id else None,
                        sender=sender if isinstance(sender, str) and sender else None)


def _parse_contacts(raw: object, where: str, problems: List[str]) -> List[Contact]:
    if raw is None:
        return []  # normal for system messages and status-only changes
    if not isinstance(raw, list):
        problems.append(f"{where}: expected a list, got {_kind(raw)}")
        return []
    contacts = []
    for index, item in enumerate(raw):
        if not isinstance(item, dict):
            problems.append(f"{where}[{index}]: skipped, expected an object, got {_kind(item)}")
            continue
        profile = item.get("profile")
        contacts.append(
            Contact(
                wa_id=_opt_str(item.get("wa_id")),
                user_id=_opt_str(item.get("user_id")),
                profile_name=_opt_str(profile.get("name")) if isinstance(profile, dict) else None,
                parent_user_id=_opt_str(item.get("parent_user_id")),
                username=_opt_str(profile.get("username")) if isinstance(profile, dict) else None,
            )
        )
    return contacts


def _match_contact(
    contacts: List[Contact], from_: Optional[str], from_user_id: Optional[str]
) -> Optional[Contact]:
    """The contact entry for a message: by BSUID, then by wa_id; a lone contact is assumed.

    Meta notes wa_id "may not always match" ``from``, so with a single contact we take it.
    """
    if from_user_id:
        for contact in contacts:
            if contact.user_id == from_user_id:
                return contact
    if from_:
        for contact in contacts:
            if contact.wa_id == from_:
                return contact
    return contacts[0] if len(contacts) == 1 else None


def _parse_message(
    item: object, where: str, phone_number_id: Optional[str], contacts: List[Contact], received: int
) -> InboundMessage:
    msg = _require_dict(item, "message")
    from_ = _opt_str_field(msg, "from")
    from_user_id = _opt_str_field(msg, "from_user_id")
    contact = _match_contact(contacts, from_, from_user_id)
    msg_type = _require_str(msg, "type")
    timestamp, replaced = _timestamp(msg, received)
    common: Dict[str, Any] = dict(
        id=_require_str(msg, "id"),
        timestamp=timestamp,
        timestamp_replaced=replaced,
        type=msg_type,
        from_=from_,
        from_user_id=from_user_id,
        contact=contact,
        phone_number_id=phone_number_id,
        context=_parse_context(msg.get("context")),
        raw=msg,
        referral=msg.get("referral") if isinstance(msg.get("referral"), dict) else None,
        errors=_parse_error_list(msg.get("errors")),
    )
    parser = _MESSAGE_PARSERS.get(msg_type, _unknown)
    message = parser(msg, common)
    if message.sender_key is None:
        raise _Malformed("no sender: neither from/from_user_id nor a matching contact")
    return message


def _parse_context(raw: object) -> Optional[MessageContext]:
    if not isinstance(raw, dict):
        return None
    product = raw.get("referred_product")
    return MessageContext(
        from_=_opt_str(raw.get("from")),
        id=_opt_str(raw.get("id")),
        forwarded=raw.get("forwarded") is True,
        frequently_forwarded=raw.get("frequently_forwarded") is True,
        referred_product=product if isinstance(product, dict) else None,
    )


# --- one parser per message type ------------------------------------------------------------

Parser = Callable[[Dict[str, Any], Dict[str, Any]], InboundMessage]


def _text(msg: Dict[str, Any], common: Dict[str, Any]) -> InboundMessage:
    text = _require_dict(msg.get("text"), "text")
    return TextMessage(**common, body=_require_str(text, "body", "text.body"))


def _interactive(msg: Dict[str, Any], common: Dict[str, Any]) -> InboundMessage:
    interactive = _require_dict(msg.get("interactive"), "interactive")
    sub_type = _opt_str(interactive.get("type"))
    if sub_type == "button_reply":
        reply = _require_dict(interactive.get("button_reply"), "interactive.button_reply")
        return ButtonReply(
            **common,
            reply_id=_require_str(reply, "id", "interactive.button_reply.id"),
            title=_opt_str_field(reply, "title", "interactive.button_reply.title") or "",
        )
    if sub_type == "list_reply":
        reply = _require_dict(interactive.get("list_reply"), "interactive.list_reply")
        return ListReply(
            **common,
            reply_id=_require_str(reply, "id", "interactive.list_reply.id"),
            title=_opt_str_field(reply, "title", "interactive.list_reply.title") or "",
            description=_opt_str_field(reply, "description", "interactive.list_reply.description"),
        )
    if sub_type == "nfm_reply":
        reply = _require_dict(interactive.get("nfm_reply"), "interactive.nfm_reply")
        return FlowReply(
            **common,
            response_json=_require_str(reply, "response_json", "interactive.nfm_reply.response_json"),
            body=_opt_str_field(reply, "body", "interactive.nfm_reply.body"),
            name=_opt_str_field(reply, "name", "interactive.nfm_reply.name"),
        )
    return UnknownInteractive(**common, interactive_type=sub_type)


def _button(msg: Dict[str, Any], common: Dict[str, Any]) -> InboundMessage:
    button = _require_dict(msg.get("button"), "button")
    return TemplateButtonReply(
        **common,
        payload=_opt_str_field(button, "payload", "button.payload"),
        text=_opt_str_field(button, "text", "button.text"),
    )


def _location(msg: Dict[str, Any], common: Dict[str, Any]) -> InboundMessage:
    location = _require_dict(msg.get("location"), "location")
    return LocationMessage(
        **common,
        latitude=_require_coordinate(location, "latitude", 90.0),
        longitude=_require_coordinate(location, "longitude", 180.0),
        name=_opt_str_field(location, "name", "location.name"),
        address=_opt_str_field(location, "address", "location.address"),
        url=_opt_str_field(location, "url", "location.url"),
    )


def _media(msg: Dict[str, Any], common: Dict[str, Any]) -> InboundMessage:
    kind = common["type"]
    media = _require_dict(msg.get(kind), kind)
    return _media_from(media, kind, common)


def _media_from(media: Dict[str, Any], kind: str, common: Dict[str, Any]) -> MediaMessage:
    return MediaMessage(
        **common,
        kind=kind,
        media_id=_require_str(media, "id", f"{kind}.id"),
        mime_type=_opt_str_field(media, "mime_type", f"{kind}.mime_type"),
        sha256=_opt_str_field(media, "sha256", f"{kind}.sha256"),
        caption=_opt_str_field(media, "caption", f"{kind}.caption"),
        filename=_opt_str_field(media, "filename", f"{kind}.filename"),
        voice=media.get("voice") is True,
        url=_opt_str_field(media, "url", f"{kind}.url"),
    )


def _reaction(msg: Dict[str, Any], common: Dict[str, Any]) -> InboundMessage:
    reaction = _require_dict(msg.get("reaction"), "reaction")
    # Removal arrives as "emoji": "" or with no emoji key at all: both become None.
    emoji = _opt_str_field(reaction, "emoji", "reaction.emoji") or None
    return ReactionMessage(
        **common,
        message_id=_require_str(reaction, "message_id", "reaction.message_id"),
        emoji=emoji,
    )


def _contacts(msg: Dict[str, Any], common: Dict[str, Any]) -> InboundMessage:
    cards = msg.get("contacts")
    if not isinstance(cards, list):
        raise _Malformed(f"contacts: expected a list, got {_kind(cards)}")
    return ContactsMessage(**common, contacts=[card for card in cards if isinstance(card, dict)])


def _order(msg: Dict[str, Any], common: Dict[str, Any]) -> InboundMessage:
    order = _require_dict(msg.get("order"), "order")
    items = order.get("product_items")
    if items is not None and not isinstance(items, list):
        raise _Malformed(f"order.product_items: expected a list, got {_kind(items)}")
    return OrderMessage(
        **common,
        catalog_id=_opt_str_field(order, "catalog_id", "order.catalog_id"),
        product_items=[item for item in items or [] if isinstance(item, dict)],
        text=_opt_str_field(order, "text", "order.text"),
    )


def _system(msg: Dict[str, Any], common: Dict[str, Any]) -> InboundMessage:
    system = _require_dict(msg.get("system"), "system")
    return SystemMessage(
        **common,
        body=_opt_str_field(system, "body", "system.body"),
        system_type=_opt_str_field(system, "type", "system.type"),
        new_wa_id=_opt_str_field(system, "wa_id", "system.wa_id"),
        new_user_id=_opt_str_field(system, "user_id", "system.user_id"),
        new_parent_user_id=_opt_str_field(system, "parent_user_id", "system.parent_user_id"),
    )


def _unsupported(msg: Dict[str, Any], common: Dict[str, Any]) -> InboundMessage:
    # The "unsupported" object is optional (absent in Meta's own example).
    unsupported = msg.get("unsupported")
    unsupported_type = (
        _opt_str(unsupported.get("type")) if isinstance(unsupported, dict) else None
    )
    return UnsupportedMessage(**common, unsupported_type=unsupported_type)


def _revoke(msg: Dict[str, Any], common: Dict[str, Any]) -> InboundMessage:
    revoke = _require_dict(msg.get("revoke"), "revoke")
    return RevokeMessage(
        **common,
        original_message_id=_opt_str_field(revoke, "original_message_id", "revoke.original_message_id"),
    )


def _edit(msg: Dict[str, Any], common: Dict[str, Any]) -> InboundMessage:
    edit = _require_dict(msg.get("edit"), "edit")
    new_body = None
    inner = edit.get("message")
    if isinstance(inner, dict):
        inner_type = inner.get("type")
        inner_obj = inner.get(inner_type) if isinstance(inner_type, str) else None
        if isinstance(inner_obj, dict):
            new_body = _opt_str(inner_obj.get("body")) or _opt_str(inner_obj.get("caption"))
    return EditMessage(
        **common,
        original_message_id=_opt_str_field(edit, "original_message_id", "edit.original_message_id"),
        new_body=new_body,
    )


def _unknown(msg: Dict[str, Any], common: Dict[str, Any]) -> InboundMessage:
    return UnknownMessage(**common)


_MESSAGE_PARSERS: Dict[str, Parser] = {
    "text": _text,
    "interactive": _interactive,
    "button": _button,
    "location": _location,
    "reaction": _reaction,
    "contacts": _contacts,
    "order": _order,
    "system": _system,
    "unsupported": _unsupported,
    "unknown": _unsupported,  # legacy name for "unsupported" still accepted by Meta's OpenAPI
    "revoke": _revoke,
    "edit": _edit,
    **{kind: _media for kind in MEDIA_KINDS},
}


# --- statuses and errors -------------------------------------------------------------------


def _parse_status(item: object, where: str, phone_number_id: Optional[str], received: int) -> StatusUpdate:
    status = _require_dict(item, "status")
    timestamp, replaced = _timestamp(status, received)
    conversation = status.get("conversation")
    pricing = status.get("pricing")
    return StatusUpdate(
        message_id=_require_str(status, "id"),
        status=_require_str(status, "status"),
        timestamp=timestamp,
        timestamp_replaced=replaced,
        recipient_id=_opt_str_field(status, "recipient_id"),
        recipient_user_id=_opt_str_field(status, "recipient_user_id"),
        errors=_parse_error_list(status.get("errors")),
        biz_opaque_callback_data=_opt_str_field(status, "biz_opaque_callback_data"),
        conversation=conversation if isinstance(conversation, dict) else None,
        pricing=pricing if isinstance(pricing, dict) else None,
        phone_number_id=phone_number_id,
        raw=status,
    )


def _error_fields(raw: Mapping[str, Any]) -> Dict[str, Any]:
    code = raw.get("code")
    if isinstance(code, str) and code.strip().isdigit():
        code = int(code)
    error_data = raw.get("error_data")
    return dict(
        code=code if isinstance(code, int) and not isinstance(code, bool) else None,
        title=_opt_str(raw.get("title")),
        message=_opt_str(raw.get("message")),
        details=_opt_str(error_data.get("details")) if isinstance(error_data, dict) else None,
        href=_opt_str(raw.get("href")),
    )


def _parse_error_list(raw: object) -> List[ErrorDetail]:
    if not isinstance(raw, list):
        return []
    return [ErrorDetail(**_error_fields(item)) for item in raw if isinstance(item, dict)]


def _parse_webhook_error(
    item: object, where: str, phone_number_id: Optional[str], waba_id: Optional[str]
) -> WebhookError:
    error = _require_dict(item, "error")
    return WebhookError(**_error_fields(error), phone_number_id=phone_number_id, waba_id=waba_id)


# --- field helpers: error texts name the field and the JSON kind, never the value ----------


def _kind(value: object) -> str:
    """JSON name of a value's type, for problem notes."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _opt_str(value: object) -> Optional[str]:
    return value if isinstance(value, str) else None


def _require_dict(value: object, name: str) -> Dict[str, Any]:
    if not isinstance(value, dict):
        raise _Malformed(f"{name}: expected an object, got {_kind(value)}")
    return value


def _require_str(obj: Mapping[str, Any], key: str, name: Optional[str] = None) -> str:
    value = obj.get(key)
    if not isinstance(value, str) or not value:
        raise _Malformed(f"{name or key}: expected a non-empty string, got {_kind(value)}")
    return value


def _opt_str_field(obj: Mapping[str, Any], key: str, name: Optional[str] = None) -> Optional[str]:
    value = obj.get(key)
    if value is not None and not isinstance(value, str):
        raise _Malformed(f"{name or key}: expected a string, got {_kind(value)}")
    return value


# Before WhatsApp existed: no real message was sent earlier. A timestamp more than a day after
# its receipt is as impossible (milliseconds sent as seconds give year 33658).
EARLIEST_TIMESTAMP = 1230768000  # 2009-01-01
LATEST_AFTER_RECEIPT_SECONDS = 24 * 60 * 60
_SECONDS = re.compile(r"[0-9]{1,12}(?:\.[0-9]*)?")


def _timestamp(obj: Mapping[str, Any], received: int) -> Tuple[int, bool]:
    """Unix seconds (Meta sends a string), and whether the receipt time stood in for a
    missing or absurd value: one bad field must not cost the patient their message."""
    value = obj.get("timestamp")
    seconds: Optional[int] = None
    if isinstance(value, bool):
        seconds = None
    elif isinstance(value, int):
        seconds = value
    elif isinstance(value, float) and math.isfinite(value) and abs(value) < 1e12:
        seconds = int(value)
    elif isinstance(value, str) and _SECONDS.fullmatch(value.strip()):
        seconds = int(value.strip().split(".")[0])
    if seconds is None or not EARLIEST_TIMESTAMP <= seconds <= received + LATEST_AFTER_RECEIPT_SECONDS:
        return received, True
    return seconds, False


def _require_coordinate(obj: Mapping[str, Any], key: str, bound: float) -> float:
    value = obj.get(key)
    number: Optional[float] = None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        number = float(value)
    elif isinstance(value, str):  # Meta's OpenAPI types coordinates as strings
        try:
            number = float(value)
        except ValueError:
            number = None
    if number is None or not math.isfinite(number) or abs(number) > bound:
        raise _Malformed(f"location.{key}: expected a number within ±{bound:g}")
    return number
