"""The one wire format of a patient's turn: what the door writes to its journal, what the
inbox stores, what the gateway sends to Rasa's ``/turn`` and what comes back.

Why one: a message used to change shape about a dozen times between the webhook and Rasa
(a journal dict, a ``NewInbound``, a row, a ``PendingMessage``, a request dict, another
``PendingMessage``…), each copy with its own idea of which fields exist and how a missing one
reads. Now the door builds one frozen :class:`InboundTurn`; the journal line, the inbox row
and the request body are its ``to_json()``; every reader goes through ``from_json()``, which
checks each field and raises :class:`MalformedTurn` (a ``ValueError``) instead of letting a
``KeyError`` or a wrong type surface later. The answer is a :class:`TurnReply`.

Everything in here is already redacted and pseudonymous: ``conversation_id`` is the contact's
pseudonym, never a phone number, and ``text`` has had identifiers removed at the door.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any, Mapping, Optional

from clinic.clock import utcnow


class MalformedTurn(ValueError):
    """A turn or reply on the wire lacks a field or has one of the wrong type."""


@dataclasses.dataclass(frozen=True)
class MediaRef:
    """A photo, voice note, video, document or sticker the patient sent, as the webhook names
    it: Meta's media id (resolved to bytes later by the gateway, gateway/media.py), never the
    bytes. ``media_id`` None: a type WhatsApp does not support or this product does not know
    (recorded as such). ``filename``: a document's name as the patient's phone gave it."""

    kind: str  # image, audio, voice, video, document, sticker, unsupported, unknown…
    media_id: Optional[str] = None
    mime_type: Optional[str] = None
    sha256: Optional[str] = None
    filename: Optional[str] = None

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "media_id": self.media_id, "mime_type": self.mime_type,
                "sha256": self.sha256, "filename": self.filename}

    @classmethod
    def from_json(cls, data: Any) -> Optional["MediaRef"]:
        if data is None:
            return None
        if not isinstance(data, Mapping):
            raise MalformedTurn("media: an object or null")
        return cls(kind=_required_str(data, "kind"), media_id=_optional_str(data, "media_id"),
                   mime_type=_optional_str(data, "mime_type"), sha256=_optional_str(data, "sha256"),
                   filename=_optional_str(data, "filename"))


@dataclasses.dataclass(frozen=True)
class InboundTurn:
    """One inbound WhatsApp message as the assistant reads it."""

    wamid: str
    conversation_id: str
    kind: str  # text, button_reply, list_reply, image, voice, location, reaction, …
    # What the assistant reads (redacted text or a "/intent{…}" payload); None: the message
    # is recorded but never answered (reactions, revocations, system notices).
    text: Optional[str]
    received_at: dt.datetime
    # Kinds of identifier the door removed from the text ("card", "ssn", …), never the values.
    redacted: tuple[str, ...] = ()
    # The title of the button or list row tapped, when ``text`` is its payload: staff read
    # what the patient saw ("I'll wait here") instead of "/deny".
    title: Optional[str] = None
    # Which attempt at processing this is: above 1, an earlier one was interrupted and the
    # assistant may already have taken the message in (it then replays its replies).
    attempts: int = 1
    # The media the message carries (the door's reference; the gateway downloads it for
    # staff). Never sent to Rasa: the assistant reads ``text`` only.
    media: Optional[MediaRef] = None

    @property
    def record_only(self) -> bool:
        return self.text is None

    def retried(self, attempts: int) -> "InboundTurn":
        return dataclasses.replace(self, attempts=attempts)

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "wamid": self.wamid, "conversation_id": self.conversation_id, "kind": self.kind,
            "text": self.text, "received_at": self.received_at.isoformat(),
            "redacted": list(self.redacted), "title": self.title, "attempts": self.attempts}
        if self.media is not None:
            data["media"] = self.media.to_json()
        return data

    @classmethod
    def from_json(cls, data: Any) -> "InboundTurn":
        if not isinstance(data, Mapping):
            raise MalformedTurn("a turn is a JSON object")
        title = data.get("title")
        legacy = data.get("metadata")  # journal segments written before this format
        if title is None and isinstance(legacy, Mapping):
            title = legacy.get("title")
        text = None if data.get("skip") else _optional_str(data, "text")
        redacted = data.get("redacted") or ()
        if not isinstance(redacted, (list, tuple)) or not all(isinstance(r, str) for r in redacted):
            raise MalformedTurn("redacted: a list of strings")
        attempts = data.get("attempts", 1)
        if isinstance(attempts, bool) or not isinstance(attempts, int) or attempts < 0:
            raise MalformedTurn("attempts: a whole number")
        return cls(
            wamid=_required_str(data, "wamid"),
            conversation_id=_required_str(data, "conversation_id"),
            kind=_required_str(data, "kind"),
            text=text,
            received_at=_moment(data.get("received_at")),
            redacted=tuple(redacted),
            title=title if isinstance(title, str) and title else None,
            attempts=max(1, attempts),
            media=MediaRef.from_json(data.get("media")),
        )


@dataclasses.dataclass(frozen=True)
class TurnRequest:
    """The gateway's call to Rasa: the turn, and whether a staff member has the conversation
    (asked by the gateway so that the assistant's process needn't; None: not asked)."""

    turn: InboundTurn
    claimed_by_staff: Optional[bool] = None

    def to_json(self) -> dict[str, Any]:
        data = {**self.turn.to_json(), "claimed_by_staff": self.claimed_by_staff}
        data.pop("media", None)  # the assistant reads the text only; media ids stay here
        return data

    @classmethod
    def from_json(cls, data: Any) -> "TurnRequest":
        turn = InboundTurn.from_json(data)
        claimed = data.get("claimed_by_staff")
        if claimed is not None and not isinstance(claimed, bool):
            raise MalformedTurn("claimed_by_staff: true, false or null")
        return cls(turn, claimed)


@dataclasses.dataclass(frozen=True)
class TurnReply:
    """The assistant's answer to a turn: its messages in order, as Rasa's collecting output
    channel gives them (``text``, ``buttons``, ``custom``, …; no recipient). ``replayed``:
    the turn was a retry of one already taken in, and these are the replies given then.
    ``language``: the conversation's language the assistant answered in (``en``, ``ru``,
    ``zh``…; None when unknown), for the words the gateway's renderer adds itself (a
    list's button and section title)."""

    messages: tuple[dict[str, Any], ...] = ()
    replayed: bool = False
    language: Optional[str] = None

    def to_json(self) -> dict[str, Any]:
        answer: dict[str, Any] = {"messages": [dict(m) for m in self.messages]}
        if self.replayed:  # said only when true: a first answer is the ordinary case
            answer["replayed"] = True
        if self.language:
            answer["language"] = self.language
        return answer

    @classmethod
    def from_json(cls, data: Any) -> "TurnReply":
        if not isinstance(data, Mapping):
            raise MalformedTurn("a turn's reply is a JSON object")
        messages = data.get("messages") or []
        if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
            raise MalformedTurn("messages: a list of objects")
        return cls(tuple(messages), bool(data.get("replayed")), _optional_str(data, "language"))


def _required_str(data: Mapping[str, Any], name: str) -> str:
    value = data.get(name)
    if not isinstance(value, str) or not value:
        raise MalformedTurn(f"{name}: a non-empty string")
    return value


def _optional_str(data: Mapping[str, Any], name: str) -> Optional[str]:
    value = data.get(name)
    if value is not None and not isinstance(value, str):
        raise MalformedTurn(f"{name}: a string or null")
    return value


def _moment(value: Any) -> dt.datetime:
    """An ISO-8601 moment, as UTC; a turn without one (Rasa's side needs none) reads as now."""
    if value is None:
        return utcnow()
    if not isinstance(value, str):
        raise MalformedTurn("received_at: an ISO-8601 string")
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError as error:
        raise MalformedTurn("received_at: an ISO-8601 string") from error
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.timezone.utc)
