"""Rasa responses → WhatsApp messages: the one renderer, shared by the gateway and the Rasa-only
development channel (connectors/whatsapp/output.py makes it a Rasa ``OutputChannel``), with
no Rasa inside: ``Renderer.send_response`` dispatches a reply dict exactly as Rasa's
``OutputChannel.send_response`` does.


- text: split at sentence boundaries above 4,096 characters;
- buttons / quick replies: reply buttons when ≤ 3 with titles ≤ 20 characters, otherwise an
  interactive list (≤ 10 rows); a body too long for an interactive message goes first as
  text; the list's button, its section title and the "choose" prompt in the conversation's
  language (content/labels.yml, ``whatsapp.*``);
- custom payloads under a ``whatsapp`` key (see README, "Custom WhatsApp responses"):
  ``cta_url``, ``template``, ``location_request``, ``media``, ``flow``;
- images and attachments by link.
Every message is built by ``whatsapp.outbound``, which refuses shapes Meta would reject.

A patient's turn is not sent reply by reply as Rasa produces it: ``deliver_turn`` builds
every WhatsApp message of the turn first, the outbox records them all, then sends them in
order (gateway/outbox.py), so a crash between two replies loses none. Messages nobody
asked for (Rasa's ``trigger_intent``: reminders, notifications) go to the ``sender`` given,
in Rasa's channel the outbox's queue (clinic/messaging/outbox_queue.py).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from typing import Any, Callable, Dict, List, Optional, Text, Tuple

from clinic.labels import label
from clinic.messaging.turn import InboundTurn, TurnReply
from gateway.outbox import Outbox
from gateway.sender import Sender
from whatsapp.calls import CallPermissionRequest
from whatsapp.limits import INTERACTIVE_BODY_MAX, LIST_ROWS_MAX
from whatsapp.outbound import (
    Choice,
    CtaUrl,
    FlowMessage,
    LocationRequest,
    Media,
    MessageShapeError,
    OutboundMessage,
    Template,
    choice_message,
    split_text,
)
from whatsapp.outbound import (
    Text as TextMessage,
)

logger = logging.getLogger(__name__)

CHANNEL_NAME = "whatsapp"
# The English prompt, for callers that name it; a conversation gets its own language's.
CHOOSE_PROMPT = label("whatsapp.choose_prompt", "en")


@dataclasses.dataclass(frozen=True)
class ChoiceLabels:
    """What a list of choices says around the options themselves: the button that opens the
    list, the title over its rows, and the prompt above a list whose text went first."""

    list_button: str
    section_title: str
    prompt: str


def choice_labels(language: Optional[str]) -> ChoiceLabels:
    """The labels in ``language`` (English when it is unknown): content/labels.yml."""
    return ChoiceLabels(label("whatsapp.list_button", language), label("whatsapp.list_section", language),
                        label("whatsapp.choose_prompt", language))


class Renderer:
    """Builds the WhatsApp messages of Rasa's responses and sends them through the sender
    (``collect=True``: only builds them, for the outbox).

    The conversation's language, for the words the renderer adds itself (a list's button and
    section title, the "choose" prompt): ``language`` when one renderer serves one
    conversation's turn, or ``language_of`` (a conversation id → its language, a blocking
    look-up run in a thread) when one renderer serves every conversation (Rasa's output
    channel for reminders). Neither: English."""

    def __init__(self, sender: Optional[Sender], collect: bool = False, language: Optional[str] = None,
                 language_of: Optional[Callable[[str], Optional[str]]] = None) -> None:
        self._sender = sender
        # collect=True: build the messages without sending them (``deliver_turn``).
        self.collected: Optional[List[Tuple[OutboundMessage, str]]] = [] if collect else None
        self._language = language
        self._language_of = language_of

    async def _labels(self, recipient_id: str) -> ChoiceLabels:
        language = self._language
        if language is None and self._language_of is not None:
            try:
                language = await asyncio.to_thread(self._language_of, recipient_id)
            except Exception:  # noqa: BLE001 - an English label is better than no message
                logger.exception("The conversation's language could not be read; list labels in English")
        return choice_labels(language)

    async def send_response(self, recipient_id: Text, message: Dict[Text, Any]) -> None:
        """One of Rasa's response dicts, dispatched as Rasa's ``OutputChannel`` does (it pops
        the keys it handles: pass a copy)."""
        if message.get("quick_replies"):
            await self.send_quick_replies(recipient_id, message.pop("text"), message.pop("quick_replies"), **message)
        elif message.get("buttons"):
            await self.send_text_with_buttons(recipient_id, message.pop("text"), message.pop("buttons"), **message)
        elif message.get("text"):
            await self.send_text_message(recipient_id, message.pop("text"), **message)
        if message.get("custom"):
            await self.send_custom_json(recipient_id, message.pop("custom"), **message)
        if message.get("image"):
            await self.send_image_url(recipient_id, message.pop("image"), **message)
        if message.get("attachment"):
            await self.send_attachment(recipient_id, message.pop("attachment"), **message)
        if message.get("elements"):
            await self.send_elements(recipient_id, message.pop("elements"), **message)

    async def send_text_message(self, recipient_id: Text, text: Text, **kwargs: Any) -> None:
        for chunk in split_text(text):
            await self._send(recipient_id, TextMessage(chunk), "text")

    async def send_text_with_buttons(
        self, recipient_id: Text, text: Text, buttons: List[Dict[Text, Any]], **kwargs: Any
    ) -> None:
        choices = [
            Choice(title=str(b.get("title", "")), id=str(b.get("payload") or b.get("title", "")))
            for b in buttons
        ]
        labels = await self._labels(recipient_id)
        if len(text) > INTERACTIVE_BODY_MAX:
            await self.send_text_message(recipient_id, text)
            text = labels.prompt
        # More than a list can hold: several lists, in order.
        groups = [choices[i : i + LIST_ROWS_MAX] for i in range(0, len(choices), LIST_ROWS_MAX)]
        for index, group in enumerate(groups):
            body = text if index == 0 else labels.prompt
            try:
                message = choice_message(body or labels.prompt, group, list_button=labels.list_button,
                                         section_title=labels.section_title)
            except MessageShapeError as error:
                # e.g. a payload longer than Meta allows: say it as text rather than fail.
                logger.error("Buttons could not be sent as WhatsApp choices: %s", error)
                await self.send_text_message(recipient_id, body)
                continue
            await self._send(recipient_id, message, "choices")

    async def send_quick_replies(
        self, recipient_id: Text, text: Text, quick_replies: List[Dict[Text, Any]], **kwargs: Any
    ) -> None:
        await self.send_text_with_buttons(recipient_id, text, quick_replies, **kwargs)

    async def send_image_url(self, recipient_id: Text, image: Text, **kwargs: Any) -> None:
        await self._send(recipient_id, Media("image", link=image), "image")

    async def send_attachment(self, recipient_id: Text, attachment: Any, **kwargs: Any) -> None:
        if isinstance(attachment, dict) and attachment.get("url"):
            kind = attachment.get("type", "document")
            media = Media(kind, link=attachment["url"], caption=attachment.get("caption"),
                          filename=attachment.get("filename") if kind == "document" else None)
            await self._send(recipient_id, media, kind)
        else:
            await self.send_text_message(recipient_id, str(attachment))

    async def send_elements(self, recipient_id: Text, elements: Any, **kwargs: Any) -> None:
        # Carousels don't exist in WhatsApp: titles as text.
        titles = [str(e.get("title", "")) for e in elements if isinstance(e, dict)]
        if titles:
            await self.send_text_message(recipient_id, "\n".join(titles))

    async def send_custom_json(self, recipient_id: Text, json_message: Dict[Text, Any], **kwargs: Any) -> None:
        spec = (json_message or {}).get("whatsapp")
        if not isinstance(spec, dict):
            logger.warning("Custom response without a 'whatsapp' object is not sent on WhatsApp")
            return
        try:
            message, kind = _custom_message(spec)
        except (MessageShapeError, KeyError, TypeError, ValueError) as error:
            logger.error("Invalid WhatsApp custom response (%s): %s", spec.get("type"), error)
            return
        await self._send(recipient_id, message, kind)

    async def _send(self, recipient_id: str, message: OutboundMessage, kind: str) -> None:
        if self.collected is not None:
            self.collected.append((message, kind))
            return
        if self._sender is None:
            raise RuntimeError("a Renderer without a sender only collects (collect=True)")
        await self._sender.send(recipient_id, message, kind)


async def render(conversation_id: str, replies: List[Dict[str, Any]],
                 language: Optional[str] = None) -> List[Tuple[OutboundMessage, str]]:
    """Rasa's responses of one turn (in order) → the WhatsApp messages and their kinds;
    ``language``: the conversation's, for the words the renderer adds (English if None)."""
    builder = Renderer(None, collect=True, language=language)
    for reply in replies:
        # send_response pops keys: give it a copy (a replayed turn may be used again).
        await builder.send_response(conversation_id, {k: v for k, v in reply.items() if k != "recipient_id"})
    collected = builder.collected or []
    # "May the clinic call you?" comes last in its turn: the action that asks it runs before
    # the rule's reply saying who will help and how long the wait is, and the patient should
    # read that first ("While you wait, … may we call you?").
    return [m for m in collected if m[1] != "call_permission_request"] + \
        [m for m in collected if m[1] == "call_permission_request"]


async def deliver_turn(outbox: Outbox, turn: InboundTurn, reply: TurnReply) -> None:
    """The replies of one turn (Rasa's collected responses, in order): built, recorded
    together, then sent in order by the outbox; in the language the assistant answered in
    (``reply.language``)."""
    messages = await render(turn.conversation_id, list(reply.messages), reply.language)
    await outbox.deliver_turn(turn.conversation_id, turn.wamid, messages)


def _custom_message(spec: Dict[str, Any]) -> Tuple[OutboundMessage, str]:
    kind = spec.get("type")
    if kind == "cta_url":
        return CtaUrl(body=spec["body"], display_text=spec["display_text"], url=spec["url"],
                      header_text=spec.get("header"), footer=spec.get("footer")), kind
    if kind == "template":
        return Template(
            name=spec["name"], language=spec.get("language", "en"),
            body_params=tuple(str(p) for p in spec.get("body_params", ())),
            quick_reply_payloads=tuple(str(p) for p in spec.get("quick_reply_payloads", ())),
            url_button_params=tuple(str(p) for p in spec.get("url_button_params", ())),
        ), kind
    if kind == "flow":
        return FlowMessage(body=spec["body"], cta=spec["cta"], flow_id=spec["flow_id"],
                           flow_token=spec["flow_token"], flow_action=spec.get("flow_action", "data_exchange"),
                           screen=spec.get("screen"), data=spec.get("data")), kind
    if kind == "location_request":
        return LocationRequest(body=spec["body"]), kind
    if kind == "call_permission_request":  # may the clinic call the patient (whatsapp/calls.py)
        return CallPermissionRequest(body=spec["body"]), kind
    if kind == "media":
        return Media(spec["media_type"], link=spec.get("link"), media_id=spec.get("id"),
                     caption=spec.get("caption"), filename=spec.get("filename")), spec["media_type"]
    raise ValueError(f"unknown WhatsApp custom type {kind!r}")
