"""Judge a ``POST /{version}/{phone_number_id}/messages`` body as Meta would.

Independent of the connector's own code on purpose: the simulator is the referee. Limits
come from ``whatsapp/limits.py`` (reference §5). Conventions for errors:

- missing/mistyped field, unknown key, text/caption too long: code 100 "Invalid parameter";
- a value outside Meta's interactive limits (counts, lengths, uniqueness, URLs): 131009
  "Parameter value is not valid";

and ``error_data.details`` always names the field Meta-style: ``interactive['body']['text']``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, List, Optional

from whatsapp import limits

from .flows_validation import validate_flow_action
from .graph_errors import GraphError, invalid
from .templates import Template, TemplateRegistry, check_and_render
from .usernames import check_recipient

MESSAGE_TYPES = (
    "text",
    "interactive",
    "template",
    "image",
    "document",
    "audio",
    "video",
    "sticker",
    "reaction",
    "location",
    "contacts",
)
MEDIA_TYPES = ("image", "document", "audio", "video", "sticker")
MEDIA_KEYS = {
    "image": {"id", "link", "caption"},
    "video": {"id", "link", "caption"},
    "document": {"id", "link", "caption", "filename"},
    "audio": {"id", "link"},
    "sticker": {"id", "link"},
}
INTERACTIVE_TYPES = ("button", "list", "cta_url", "location_request_message", "call_permission_request",
                     "flow")
URL_RE = re.compile(r"^https?://[^\s/$.?#][^\s]*$", re.IGNORECASE)


@dataclass
class SendRequest:
    """A body that passed validation."""

    kind: str  # "message" or "read"
    body: Dict[str, Any]
    to: Optional[str] = None
    wa_id: Optional[str] = None
    type: Optional[str] = None
    message_id: Optional[str] = None  # read receipts
    typing: bool = False
    template: Optional[Template] = None
    rendered: Optional[Dict[str, Any]] = None
    context_id: Optional[str] = None
    extra: Dict[str, Any] = field(default_factory=dict)


def normalise_phone(value: str) -> str:
    return re.sub(r"[\s+\-().]", "", value)


# ----------------------------------------------------------------------------- helpers


def _obj(parent: Dict[str, Any], key: str, where: str, required: bool = True) -> Optional[Dict[str, Any]]:
    value = parent.get(key)
    if value is None:
        if required:
            raise invalid(where, "is required")
        return None
    if not isinstance(value, dict):
        raise invalid(where, "must be an object")
    return value


def _keys(obj: Dict[str, Any], allowed: Iterable[str], where: str) -> None:
    for key in obj:
        if key not in allowed:
            raise GraphError(100, details=f'Unexpected key "{key}" on param "{where}".')


def _str(
    obj: Dict[str, Any],
    key: str,
    where: str,
    *,
    max_len: Optional[int] = None,
    required: bool = True,
    min_len: int = 1,
    code: int = 131009,
) -> Optional[str]:
    value = obj.get(key)
    if value is None:
        if required:
            raise invalid(where, "is required")
        return None
    if not isinstance(value, str):
        raise invalid(where, "must be a string")
    if len(value) < min_len:
        raise invalid(where, f"is too short: must be at least {min_len} character(s) long", code=code)
    if max_len is not None and len(value) > max_len:
        raise invalid(
            where, f"must be at most {max_len} characters long (got {len(value)})", code=code
        )
    return value


def _url(obj: Dict[str, Any], key: str, where: str) -> str:
    value = _str(obj, key, where, code=131009)
    if not URL_RE.match(value or ""):
        raise invalid(where, f"is not a valid http(s) URL: {value!r}", code=131009)
    return value  # type: ignore[return-value]


def _media(obj: Dict[str, Any], kind: str, where: str, allowed: Iterable[str]) -> None:
    _keys(obj, allowed, where)
    has_id = obj.get("id") not in (None, "")
    has_link = obj.get("link") not in (None, "")
    if has_id and has_link:
        raise invalid(where, "must have either an id or a link, not both")
    if not has_id and not has_link:
        raise invalid(f"{where}['id']", f"is required (or {where}['link'])")
    if has_id and not isinstance(obj["id"], (str, int)):
        raise invalid(f"{where}['id']", "must be a string")
    if has_link:
        _url(obj, "link", f"{where}['link']")
    if "caption" in obj:
        _str(obj, "caption", f"{where}['caption']", max_len=limits.MEDIA_CAPTION_MAX, code=100,
             min_len=0)
    if "filename" in obj:
        _str(obj, "filename", f"{where}['filename']", max_len=240, code=100)


# ----------------------------------------------------------------------------- per type


def _text(body: Dict[str, Any]) -> None:
    text = _obj(body, "text", "text")
    _keys(text, {"body", "preview_url"}, "text")
    _str(text, "body", "text['body']", max_len=limits.TEXT_BODY_MAX, code=100)
    if "preview_url" in text and not isinstance(text["preview_url"], bool):
        raise invalid("text['preview_url']", "must be a boolean")


def _header(inter: Dict[str, Any], itype: str) -> None:
    header = _obj(inter, "header", "interactive['header']", required=False)
    if header is None:
        return
    where = "interactive['header']"
    _keys(header, {"type", "text", "image", "video", "document"}, where)
    htype = header.get("type")
    allowed = ("text",) if itype == "list" else ("text", "image", "video", "document")
    if itype == "location_request_message":
        raise invalid(where, "is not supported for location_request_message", code=131009)
    if htype not in allowed:
        raise invalid(
            f"{where}['type']",
            f"must be one of {{{', '.join(allowed)}}} - got \"{htype}\"",
            code=131009 if htype else 100,
        )
    if htype == "text":
        _str(header, "text", f"{where}['text']", max_len=limits.HEADER_TEXT_MAX)
    else:
        media = _obj(header, htype, f"{where}['{htype}']")
        _media(media, htype, f"{where}['{htype}']", {"id", "link"} | ({"filename"} if htype == "document" else set()))


def _body_footer(inter: Dict[str, Any], itype: str) -> None:
    body = _obj(inter, "body", "interactive['body']")
    _keys(body, {"text"}, "interactive['body']")
    max_len = (
        limits.LOCATION_REQUEST_BODY_MAX
        if itype == "location_request_message"
        else limits.INTERACTIVE_BODY_MAX
    )
    _str(body, "text", "interactive['body']['text']", max_len=max_len)
    footer = _obj(inter, "footer", "interactive['footer']", required=False)
    if footer is not None:
        _keys(footer, {"text"}, "interactive['footer']")
        _str(footer, "text", "interactive['footer']['text']", max_len=limits.FOOTER_MAX)


def _buttons(action: Dict[str, Any]) -> None:
    where = "interactive['action']"
    _keys(action, {"buttons"}, where)
    buttons = action.get("buttons")
    if buttons is None:
        raise invalid(f"{where}['buttons']", "is required")
    if not isinstance(buttons, list):
        raise invalid(f"{where}['buttons']", "must be an array")
    if not 1 <= len(buttons) <= limits.REPLY_BUTTONS_MAX:
        raise invalid(
            f"{where}['buttons']",
            f"has {len(buttons)} buttons: Invalid buttons count. Min allowed buttons: 1, "
            f"Max allowed buttons: {limits.REPLY_BUTTONS_MAX}",
            code=131009,
        )
    titles: set = set()
    ids: set = set()
    for index, button in enumerate(buttons):
        bwhere = f"{where}['buttons'][{index}]"
        if not isinstance(button, dict):
            raise invalid(bwhere, "must be an object")
        _keys(button, {"type", "reply"}, bwhere)
        if button.get("type") != "reply":
            raise invalid(f"{bwhere}['type']", f"must be \"reply\" - got \"{button.get('type')}\"")
        reply = _obj(button, "reply", f"{bwhere}['reply']")
        _keys(reply, {"id", "title"}, f"{bwhere}['reply']")
        button_id = _str(reply, "id", f"{bwhere}['reply']['id']", max_len=limits.REPLY_BUTTON_ID_MAX)
        if button_id != button_id.strip():
            raise invalid(f"{bwhere}['reply']['id']", "must not have leading or trailing spaces", code=131009)
        title = _str(reply, "title", f"{bwhere}['reply']['title']", max_len=limits.REPLY_BUTTON_TITLE_MAX)
        if title in titles:
            raise invalid(f"{bwhere}['reply']['title']", f"duplicates another button title: {title!r} (titles must be unique)", code=131009)
        if button_id in ids:
            raise invalid(f"{bwhere}['reply']['id']", f"duplicates another button id: {button_id!r} (ids must be unique)", code=131009)
        titles.add(title)
        ids.add(button_id)


def _list(action: Dict[str, Any]) -> None:
    where = "interactive['action']"
    _keys(action, {"button", "sections"}, where)
    _str(action, "button", f"{where}['button']", max_len=limits.LIST_BUTTON_MAX)
    sections = action.get("sections")
    if sections is None:
        raise invalid(f"{where}['sections']", "is required")
    if not isinstance(sections, list):
        raise invalid(f"{where}['sections']", "must be an array")
    if not 1 <= len(sections) <= limits.LIST_SECTIONS_MAX:
        raise invalid(
            f"{where}['sections']",
            f"has {len(sections)} sections: Min allowed sections: 1, Max allowed sections: {limits.LIST_SECTIONS_MAX}",
            code=131009,
        )
    total = 0
    row_ids: set = set()
    for sindex, section in enumerate(sections):
        swhere = f"{where}['sections'][{sindex}]"
        if not isinstance(section, dict):
            raise invalid(swhere, "must be an object")
        _keys(section, {"title", "rows"}, swhere)
        _str(section, "title", f"{swhere}['title']", max_len=limits.LIST_SECTION_TITLE_MAX,
             required=len(sections) > 1)
        rows = section.get("rows")
        if rows is None:
            raise invalid(f"{swhere}['rows']", "is required")
        if not isinstance(rows, list) or not rows:
            raise invalid(f"{swhere}['rows']", "must be a non-empty array", code=131009)
        for rindex, row in enumerate(rows):
            rwhere = f"{swhere}['rows'][{rindex}]"
            if not isinstance(row, dict):
                raise invalid(rwhere, "must be an object")
            _keys(row, {"id", "title", "description"}, rwhere)
            row_id = _str(row, "id", f"{rwhere}['id']", max_len=limits.LIST_ROW_ID_MAX)
            _str(row, "title", f"{rwhere}['title']", max_len=limits.LIST_ROW_TITLE_MAX)
            _str(row, "description", f"{rwhere}['description']",
                 max_len=limits.LIST_ROW_DESCRIPTION_MAX, required=False, min_len=0)
            if row_id in row_ids:
                raise invalid(f"{rwhere}['id']", f"duplicates another row id: {row_id!r} (row ids must be unique)", code=131009)
            row_ids.add(row_id)
        total += len(rows)
    if total > limits.LIST_ROWS_MAX:
        raise invalid(
            f"{where}['sections']",
            f"has {total} rows: Total row count exceed max allowed count: {limits.LIST_ROWS_MAX}",
            code=131009,
        )


def _cta(action: Dict[str, Any]) -> None:
    where = "interactive['action']"
    _keys(action, {"name", "parameters"}, where)
    if action.get("name") != "cta_url":
        raise invalid(f"{where}['name']", f"must be \"cta_url\" - got \"{action.get('name')}\"")
    params = _obj(action, "parameters", f"{where}['parameters']")
    _keys(params, {"display_text", "url"}, f"{where}['parameters']")
    _str(params, "display_text", f"{where}['parameters']['display_text']", max_len=limits.CTA_DISPLAY_TEXT_MAX)
    _url(params, "url", f"{where}['parameters']['url']")


def _interactive(body: Dict[str, Any]) -> None:
    inter = _obj(body, "interactive", "interactive")
    _keys(inter, {"type", "header", "body", "footer", "action"}, "interactive")
    itype = inter.get("type")
    if itype is None:
        raise invalid("interactive['type']", "is required")
    if itype not in INTERACTIVE_TYPES:
        raise invalid(
            "interactive['type']",
            f"must be one of {{{', '.join(INTERACTIVE_TYPES)}}} - got \"{itype}\"",
        )
    _header(inter, itype)
    _body_footer(inter, itype)
    action = _obj(inter, "action", "interactive['action']")
    if itype == "button":
        _buttons(action)
    elif itype == "list":
        _list(action)
    elif itype == "cta_url":
        _cta(action)
    elif itype == "call_permission_request":  # voice calls (simulator/calls.py)
        _keys(action, {"name"}, "interactive['action']")
        if action.get("name") != "call_permission_request":
            raise invalid("interactive['action']['name']", "must be \"call_permission_request\"")
    elif itype == "flow":
        validate_flow_action(action)
    else:
        _keys(action, {"name"}, "interactive['action']")
        if action.get("name") != "send_location":
            raise invalid("interactive['action']['name']", f"must be \"send_location\" - got \"{action.get('name')}\"")


def _template(body: Dict[str, Any], registry: TemplateRegistry) -> tuple:
    tpl = _obj(body, "template", "template")
    _keys(tpl, {"name", "language", "components", "namespace"}, "template")
    name = _str(tpl, "name", "template['name']", max_len=512, code=100)
    language = _obj(tpl, "language", "template['language']")
    _keys(language, {"code", "policy"}, "template['language']")
    code = _str(language, "code", "template['language']['code']", code=100)
    template = registry.get(name, code)  # 132001 / 132015 / 132016
    rendered = check_and_render(template, tpl.get("components"))  # 132000 / 100 / 131009
    return template, rendered


def _reaction(body: Dict[str, Any]) -> None:
    reaction = _obj(body, "reaction", "reaction")
    _keys(reaction, {"message_id", "emoji"}, "reaction")
    _str(reaction, "message_id", "reaction['message_id']", code=100)
    emoji = reaction.get("emoji")
    if emoji is None:
        raise invalid("reaction['emoji']", "is required (an empty string removes the reaction)")
    if not isinstance(emoji, str):
        raise invalid("reaction['emoji']", "must be a string")
    if len(emoji) > 10 or re.search(r"[A-Za-z0-9\s]", emoji):
        raise invalid("reaction['emoji']", f"is not a single emoji: {emoji!r}", code=131009)


def _location(body: Dict[str, Any]) -> None:
    loc = _obj(body, "location", "location")
    _keys(loc, {"latitude", "longitude", "name", "address"}, "location")
    for key, bound in (("latitude", 90), ("longitude", 180)):
        value = loc.get(key)
        if value is None:
            raise invalid(f"location['{key}']", "is required")
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise invalid(f"location['{key}']", "must be a number") from None
        if not -bound <= number <= bound:
            raise invalid(f"location['{key}']", f"must be between -{bound} and {bound}", code=131009)
    for key in ("name", "address"):
        _str(loc, key, f"location['{key}']", required=False, max_len=1000, code=100)


def _contacts(body: Dict[str, Any]) -> None:
    contacts = body.get("contacts")
    if not isinstance(contacts, list) or not contacts:
        raise invalid("contacts", "is required and must be a non-empty array")
    for index, contact in enumerate(contacts):
        where = f"contacts[{index}]"
        if not isinstance(contact, dict):
            raise invalid(where, "must be an object")
        name = _obj(contact, "name", f"{where}['name']")
        _str(name, "formatted_name", f"{where}['name']['formatted_name']", code=100)


# ----------------------------------------------------------------------------- entry point


def validate_send(body: Any, registry: TemplateRegistry) -> SendRequest:
    if not isinstance(body, dict):
        raise GraphError(100, details="The request body must be a JSON object.")
    product = body.get("messaging_product")
    if product is None:
        raise GraphError(100, details="The parameter messaging_product is required.")
    if product != "whatsapp":
        raise invalid("messaging_product", f"must be one of {{WHATSAPP}} - got \"{product}\".")

    if "status" in body:  # read receipt, optionally with a typing indicator
        _keys(body, {"messaging_product", "status", "message_id", "typing_indicator"}, "<root>")
        if body["status"] != "read":
            raise invalid("status", f"must be one of {{read}} - got \"{body['status']}\".")
        message_id = _str(body, "message_id", "message_id", code=100)
        typing = body.get("typing_indicator")
        if typing is not None:
            if not isinstance(typing, dict):
                raise invalid("typing_indicator", "must be an object")
            _keys(typing, {"type"}, "typing_indicator")
            if typing.get("type") != "text":
                raise invalid("typing_indicator['type']", f"must be one of {{text}} - got \"{typing.get('type')}\".")
        return SendRequest(kind="read", body=body, message_id=message_id, typing=typing is not None)

    recipient_type = body.get("recipient_type", "individual")
    if recipient_type != "individual":
        raise invalid(
            "recipient_type",
            f"must be \"individual\" (group messaging is not enabled for this number) - got \"{recipient_type}\"",
        )
    to = body.get("to")
    recipient = body.get("recipient")
    if to is None and recipient is None:
        raise GraphError(100, details="The parameter to is required.")
    wa_id = None
    if to is not None:
        if not isinstance(to, str):
            raise invalid("to", "must be a string")
        wa_id = normalise_phone(to)
        if not wa_id.isdigit() or not 7 <= len(wa_id) <= 15:
            raise invalid("to", f"is not a valid WhatsApp phone number: {to!r}")
    else:
        check_recipient(recipient)  # simulator/usernames.py

    mtype = body.get("type", "text")  # Meta's default type is text
    if mtype not in MESSAGE_TYPES:
        raise invalid("type", f"must be one of {{{', '.join(MESSAGE_TYPES)}}} - got \"{mtype}\".")

    context_id = None
    if "context" in body:
        context = _obj(body, "context", "context")
        _keys(context, {"message_id"}, "context")
        context_id = _str(context, "message_id", "context['message_id']", code=100)
    if "biz_opaque_callback_data" in body:
        _str(body, "biz_opaque_callback_data", "biz_opaque_callback_data",
             max_len=limits.BIZ_OPAQUE_CALLBACK_DATA_MAX, code=100)

    request = SendRequest(kind="message", body=body, to=to, wa_id=wa_id, type=mtype, context_id=context_id)
    if recipient is not None and to is None:
        request.extra["recipient"] = recipient
    if mtype == "text":
        _text(body)
    elif mtype == "interactive":
        _interactive(body)
    elif mtype == "template":
        request.template, request.rendered = _template(body, registry)
    elif mtype in MEDIA_TYPES:
        media = _obj(body, mtype, mtype)
        _media(media, mtype, mtype, MEDIA_KEYS[mtype])
    elif mtype == "reaction":
        _reaction(body)
    elif mtype == "location":
        _location(body)
    elif mtype == "contacts":
        _contacts(body)
    return request


def interactive_choices(payload: Dict[str, Any]) -> List[Dict[str, Any]]:
    """What a user can tap on a business message: reply buttons, list rows, quick replies."""
    mtype = payload.get("type")
    if mtype == "interactive":
        inter = payload.get("interactive") or {}
        if inter.get("type") == "button":
            return [
                {"kind": "button_reply", "id": b["reply"]["id"], "title": b["reply"]["title"]}
                for b in inter["action"]["buttons"]
            ]
        if inter.get("type") == "list":
            rows = []
            for section in inter["action"]["sections"]:
                for row in section["rows"]:
                    choice = {"kind": "list_reply", "id": row["id"], "title": row["title"]}
                    if row.get("description"):
                        choice["description"] = row["description"]
                    rows.append(choice)
            return rows
        if inter.get("type") == "location_request_message":
            return [{"kind": "location", "id": "send_location", "title": "Send location"}]
    return []
