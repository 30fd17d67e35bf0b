"""Build the message objects a simulated user sends (``value.messages[i]``), shaped like
Meta's webhook examples, from the short specs the control API and the chat page use."""

from __future__ import annotations

import base64
import hashlib
import secrets
from typing import Any, Callable, Dict, List, Optional

from .state import Media

# Synthetic media the simulated user "sends" when a spec carries no bytes.
# An 8x8 green JPEG.
TINY_JPEG = base64.b64decode(
    "/9j/4AAQSkZJRgABAQAAAQABAAD/2wBDABALDA4MChAODQ4SERATGCgaGBYWGDEjJR0oOjM9PDkzODdASFxOQERX"
    "RTc4UG1RV19iZ2hnPk1xeXBkeFxlZ2P/2wBDARESEhgVGC8aGi9jQjhCY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2Nj"
    "Y2NjY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2P/wAARCAAIAAgDASIAAhEBAxEB/8QAHwAAAQUBAQEBAQEAAAAAAAAA"
    "AAECAwQFBgcICQoL/8QAtRAAAgEDAwIEAwUFBAQAAAF9AQIDAAQRBRIhMUEGE1FhByJxFDKBkaEII0KxwRVS0fAk"
    "M2JyggkKFhcYGRolJicoKSo0NTY3ODk6Q0RFRkdISUpTVFVWV1hZWmNkZWZnaGlqc3R1dnd4eXqDhIWGh4iJipKT"
    "lJWWl5iZmqKjpKWmp6ipqrKztLW2t7i5usLDxMXGx8jJytLT1NXW19jZ2uHi4+Tl5ufo6erx8vP09fb3+Pn6/8QA"
    "HwEAAwEBAQEBAQEBAQAAAAAAAAECAwQFBgcICQoL/8QAtREAAgECBAQDBAcFBAQAAQJ3AAECAxEEBSExBhJBUQdh"
    "cRMiMoEIFEKRobHBCSMzUvAVYnLRChYkNOEl8RcYGRomJygpKjU2Nzg5OkNERUZHSElKU1RVVldYWVpjZGVmZ2hp"
    "anN0dXZ3eHl6goOEhYaHiImKkpOUlZaXmJmaoqOkpaanqKmqsrO0tba3uLm6wsPExcbHyMnK0tPU1dbX2Nna4uPk"
    "5ebn6Onq8vP09fb3+Pn6/9oADAMBAAIRAxEAPwC1RRRXGfNH/9k="
)
SAMPLE_MEDIA = {
    "image": ("image/jpeg", TINY_JPEG, None),
    "sticker": ("image/webp", b"RIFF\x1a\x00\x00\x00WEBPVP8L\x0d\x00\x00\x00/\x00\x00\x00\x10\x07\x10\x11\x11\x88\x88\xfe\x07\x00", None),
    "video": ("video/mp4", b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom", None),
    "audio": ("audio/ogg; codecs=opus", b"OggS\x00\x02" + b"\x00" * 20, None),
    "document": (
        "application/pdf",
        b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n",
        "sample-document.pdf",
    ),
}
# A fixed synthetic location (the chat page's "Send location").
SAMPLE_LOCATION = {"latitude": 37.4847, "longitude": -122.1477}
MEDIA_TYPES = ("image", "document", "audio", "video", "sticker")


class SpecError(ValueError):
    """The control request does not describe a message."""


def new_media_id() -> str:
    return str(10**15 + secrets.randbelow(9 * 10**15))


def make_media(kind: str, spec: Dict[str, Any]) -> Media:
    mime, data, filename = SAMPLE_MEDIA[kind]
    inner = spec.get(kind) if isinstance(spec.get(kind), dict) else {}
    if spec.get("data_base64"):
        try:
            data = base64.b64decode(spec["data_base64"], validate=True)
        except (ValueError, TypeError) as exc:
            raise SpecError("data_base64 is not valid base64") from exc
    mime = inner.get("mime_type") or spec.get("mime_type") or mime
    filename = inner.get("filename") or spec.get("filename") or filename
    return Media(
        id=new_media_id(),
        data=data,
        mime_type=mime,
        sha256=base64.b64encode(hashlib.sha256(data).digest()).decode(),
        filename=filename,
    )


def build_message(
    spec: Dict[str, Any],
    *,
    wa_id: str,
    wamid: str,
    timestamp: str,
    business_phone: str,
    store_media: Callable[[Media], None],
    from_user_id: Optional[str] = None,
) -> Dict[str, Any]:
    """Return a Meta message object. Key order follows Meta's examples."""
    if not isinstance(spec, dict):
        raise SpecError("a message spec must be a JSON object")
    if "raw" in spec:  # passthrough for unknown/unsupported types; only fill what's missing
        raw = spec["raw"]
        if not isinstance(raw, dict):
            raise SpecError("raw must be a message object")
        message = dict(raw)
        message.setdefault("from", wa_id)
        message.setdefault("id", wamid)
        message.setdefault("timestamp", timestamp)
        return message

    message: Dict[str, Any] = {}
    context = spec.get("context")
    if isinstance(context, str):
        context = {"id": context}
    if isinstance(context, dict):
        if context.get("forwarded") or context.get("frequently_forwarded"):
            message["context"] = {k: v for k, v in context.items() if k in ("forwarded", "frequently_forwarded")}
        elif context.get("id"):
            message["context"] = {"from": context.get("from") or business_phone, "id": context["id"]}
            for key in ("referred_product",):
                if key in context:
                    message["context"][key] = context[key]
    elif context is not None:
        raise SpecError("context must be a wamid string or an object with id")
    if isinstance(spec.get("referral"), dict):
        message["referral"] = spec["referral"]
    message["from"] = wa_id
    if from_user_id:
        message["from_user_id"] = from_user_id
    message["id"] = wamid
    message["timestamp"] = timestamp

    kind = spec.get("type") or ("text" if "text" in spec else None)
    if kind is None:
        raise SpecError("type is required (text, interactive, button_reply, list_reply, button, "
                        "location, image, document, audio, video, sticker, reaction, contacts) or raw")
    if kind == "text":
        text = spec.get("text")
        body = text.get("body") if isinstance(text, dict) else text
        if not isinstance(body, str) or body == "":
            raise SpecError("text needs a non-empty body")
        message["type"] = "text"
        message["text"] = {"body": body}
    elif kind in ("button_reply", "list_reply"):
        reply = spec.get(kind) if isinstance(spec.get(kind), dict) else spec
        if not reply.get("id") or not reply.get("title"):
            raise SpecError(f"{kind} needs an id and a title")
        inner = {"id": reply["id"], "title": reply["title"]}
        if kind == "list_reply" and reply.get("description"):
            inner["description"] = reply["description"]
        message["type"] = "interactive"
        message["interactive"] = {"type": kind, kind: inner}
    elif kind == "interactive":
        if not isinstance(spec.get("interactive"), dict):
            raise SpecError("interactive must be an object")
        message["type"] = "interactive"
        message["interactive"] = spec["interactive"]
    elif kind == "button":
        button = spec.get("button") if isinstance(spec.get("button"), dict) else spec
        payload = button.get("payload")
        text = button.get("text", payload)
        if not payload:
            raise SpecError("button needs a payload")
        message["type"] = "button"
        message["button"] = {"payload": payload, "text": text}
    elif kind == "location":
        loc = spec.get("location") if isinstance(spec.get("location"), dict) else dict(SAMPLE_LOCATION)
        if "latitude" not in loc or "longitude" not in loc:
            raise SpecError("location needs latitude and longitude")
        ordered = {k: loc[k] for k in ("address", "latitude", "longitude", "name", "url") if k in loc}
        ordered["latitude"] = float(loc["latitude"])
        ordered["longitude"] = float(loc["longitude"])
        message["location"] = ordered
        message["type"] = "location"
    elif kind in MEDIA_TYPES:
        media = make_media(kind, spec)
        store_media(media)
        inner = spec.get(kind) if isinstance(spec.get(kind), dict) else {}
        obj: Dict[str, Any] = {}
        if kind in ("image", "video", "document") and (inner.get("caption") or spec.get("caption")):
            obj["caption"] = inner.get("caption") or spec.get("caption")
        if kind == "document":
            obj["filename"] = media.filename or "document.pdf"
        obj["mime_type"] = media.mime_type
        obj["sha256"] = media.sha256
        obj["id"] = media.id
        if kind == "audio":
            obj["voice"] = bool(inner.get("voice", spec.get("voice", True)))
        if kind == "sticker":
            obj["animated"] = bool(inner.get("animated", False))
        message["type"] = kind
        message[kind] = obj
    elif kind == "reaction":
        reaction = spec.get("reaction") if isinstance(spec.get("reaction"), dict) else spec
        if not reaction.get("message_id"):
            raise SpecError("reaction needs a message_id")
        message["type"] = "reaction"
        inner = {"message_id": reaction["message_id"]}
        if "emoji" in reaction:
            inner["emoji"] = reaction["emoji"]
        message["reaction"] = inner
    elif kind == "contacts":
        contacts = spec.get("contacts")
        if not isinstance(contacts, list) or not contacts:
            raise SpecError("contacts needs a non-empty array")
        message["type"] = "contacts"
        message["contacts"] = contacts
    else:
        raise SpecError(f"unknown type {kind!r}: use raw to send any message object")
    return message


def tap_spec(choice: Dict[str, Any], business_wamid: str) -> Dict[str, Any]:
    """The spec of the message a user sends by tapping ``choice`` of a business message."""
    kind = choice["kind"]
    if kind in ("button_reply", "list_reply"):
        spec: Dict[str, Any] = {"type": kind, "id": choice["id"], "title": choice["title"]}
        if choice.get("description"):
            spec["description"] = choice["description"]
    elif kind == "button":
        spec = {"type": "button", "payload": choice["payload"], "text": choice["title"]}
    elif kind == "location":
        spec = {"type": "location", "location": dict(SAMPLE_LOCATION)}
    else:
        raise SpecError(f"cannot tap a {kind}")
    spec["context"] = {"id": business_wamid}
    return spec


def choices_of(payload: Dict[str, Any], rendered: Optional[Dict[str, Any]],
               interactive_choices: Callable[[Dict[str, Any]], List[Dict[str, Any]]]) -> List[Dict[str, Any]]:
    if payload.get("type") == "template" and rendered:
        return [
            {"kind": "button", "id": b["payload"], "payload": b["payload"], "title": b["text"]}
            for b in rendered.get("buttons", [])
            if b["type"] == "quick_reply"
        ]
    return interactive_choices(payload)
