"""Rasa input channel for the WhatsApp Cloud API: the Rasa side of WhatsApp.

- ``/webhooks/whatsapp/turn``: the gateway's turn (gateway/relay.py) — one inbox message,
  already redacted and pseudonymised, signed with WHATSAPP_INTERNAL_SECRET — through the
  assistant; the answer is the replies, for the gateway to render and send. A retried turn
  the assistant already took in gets the replies it gave then.
- The Rasa-only development mode (without WHATSAPP_GATEWAY): this channel is also the door
  (``gateway.door.Door``: ``/webhooks/whatsapp/webhook``, journal, inbox, outbox) and
  processes the inbox in Rasa's process.
- The paused-conversation safety net (safety_net.py): while a staff member has the
  conversation, a red flag still gets the emergency guidance.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
from typing import Any, Awaitable, Callable, Dict, List, Optional, Text, Tuple

from rasa.core.channels.channel import (
    CollectingOutputChannel,
    InputChannel,
    OutputChannel,
    UserMessage,
)
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse

from clinic.handoff.requests import HandoffRequests
from clinic.language.memory import LanguageMemory
from clinic.messaging.outbox_queue import PRIORITY_REMINDER, OutboxQueue
from clinic.messaging.store import PendingMessage
from clinic.messaging.turn import InboundTurn, TurnReply, TurnRequest
from clinic.redaction import redact
from connectors.whatsapp.output import CHANNEL_NAME, WhatsAppOutput
from connectors.whatsapp.safety_net import PausedSafetyNet
from gateway.door import Door
from gateway.processor import InboxProcessor, mark_read_best_effort, where_it_failed
from gateway.render import deliver_turn
from gateway.settings import WhatsAppSettings
from whatsapp import signature
from whatsapp.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE

logger = logging.getLogger(__name__)


class WhatsAppCollector(CollectingOutputChannel):
    """Collects a turn's replies for the outbox under the WhatsApp channel's name: Rasa picks
    a response's ``channel: whatsapp`` variations (a portal link as a ``cta_url`` button, not
    a bare URL in text) by the output channel's name, and Rasa's collector is "collector"."""

    @classmethod
    def name(cls) -> Text:
        return CHANNEL_NAME


class WhatsAppInput(Door, InputChannel):
    def __init__(self, settings: WhatsAppSettings, database_url: Optional[str] = None,
                 door: str = "channel") -> None:
        super().__init__(settings, database_url, door)
        # Emergencies while a staff member has the conversation (Rasa paused): safety_net.py.
        self.safety_net = PausedSafetyNet(HandoffRequests(self.sessions), self._pseudonym_key, CHANNEL_NAME,
                                          self.sessions)
        # The language of each contact's conversation (clinic.language.memory): decided per
        # message before the assistant reads it, remembered across sessions.
        self.languages = LanguageMemory(self.sessions)
        self._agent = None  # Rasa's agent, known once the server has started
        # Messages the patient did not just ask for (reminders, notifications) go into the
        # outbox's queue (clinic/messaging/outbox_queue.py): the gateway drains it, or this
        # channel's own outbox in the Rasa-only development mode (woken at once here).
        self.proactive = OutboxQueue(self.store, PRIORITY_REMINDER, metrics=self.metrics, wait=False,
                                     on_enqueued=self._wake_outbox)

    @classmethod
    def name(cls) -> Text:
        return CHANNEL_NAME

    @classmethod
    def from_credentials(cls, credentials: Optional[Dict[Text, Any]]) -> InputChannel:
        return cls(WhatsAppSettings.load(credentials))

    def get_output_channel(self) -> Optional[OutputChannel]:
        # Used by Rasa for messages the patient didn't just ask for (trigger_intent, reminders):
        # queued, in order, for the process that owns the outbox. A list's button in the
        # contact's remembered language.
        return WhatsAppOutput(self.proactive, language_of=self.languages.recall)

    def _wake_outbox(self) -> None:
        if not self.settings.gateway and self._worker.running:
            self._worker.call_soon(self.outbox.wake)

    # ── webhook ───────────────────────────────────────────────────────────────────────────
    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        blueprint = Blueprint("whatsapp_webhook", __name__)

        async def handle(message: PendingMessage) -> None:
            turn = message.turn
            await mark_read_best_effort(self.sender, turn.wamid, self.metrics)
            # A retried message Rasa already took in: the replies it gave then.
            replies = await _replies_already_given(self._agent, turn) if turn.attempts > 1 else None
            if replies is None:
                collector = WhatsAppCollector()
                language = await self._run_turn(on_new_message, turn, collector)
                replies = collector.messages
            else:
                language = await self._remembered_language(turn.conversation_id)
            # Every reply recorded before the first is sent (gateway/outbox.py).
            await deliver_turn(self.outbox, turn, TurnReply(tuple(replies), language=language))
            # A photo, voice note or document: fetched and stored for staff (gateway/media.py).
            await self.media.take(turn, message.id)

        self.processor = InboxProcessor(
            self.store, handle, self.settings.max_concurrent_conversations, self.metrics,
            max_attempts=self.settings.inbound_max_attempts, retry_seconds=self.settings.inbound_retry_seconds,
            dead_letter=self.dead_letter, lease_seconds=self.settings.inbox_lease_seconds,
        )

        @blueprint.listener("after_server_start")
        async def resume_inbox(app, _loop) -> None:
            self._agent = getattr(app.ctx, "agent", None)
            if self.settings.gateway:
                # The gateway owns the inbox and its processing. Webhooks that still reach
                # this door go into the inbox, where the gateway's sweep finds them.
                if self.on_new_conversations is None:
                    self.on_new_conversations = lambda _conversations: None
                self.start_flushing()
                return

            async def already_handled(message: PendingMessage) -> bool:
                # Its replies are recorded: the outbox sends those that did not go out.
                # Otherwise it is processed again, and ``handle`` replays the replies if
                # Rasa had already taken it in.
                return await asyncio.to_thread(self.store.turn_recorded, message.turn.wamid)

            # Load the redaction recognizers now, not on the first patient's message.
            await asyncio.to_thread(redact, "warm-up 4111 1111 1111 1111")
            self._worker.start()
            # Webhooks acknowledged before a crash but not yet in the inbox: in first, then
            # recovery (which keeps each conversation's order), then the flusher takes over.
            await self.drain_journal_at_start()
            # Replies recorded but not sent before a crash go first, in order.
            await asyncio.wrap_future(self._worker.submit(self.outbox.resume()))
            await asyncio.wrap_future(self._worker.submit(self.processor.recover(already_handled)))
            self.start_flushing()
            # A periodic look at the inbox: nothing stored there waits for a restart.
            self._worker.call_soon(self.processor.start_sweeping, self.settings.inbox_sweep_seconds)
            # Dead letters' later rounds, and replies nobody is sending (outbox.py).
            self._worker.call_soon(self.outbox.start_sweeping)
            # Every other sender's messages (reminders, notifications, staff replies, surveys,
            # broadcasts): queued in the database, sent from here with the one rate limit.
            self._worker.call_soon(self.outbox.start_draining, self.settings.outbox_poll_seconds)

        @blueprint.listener("before_server_stop")
        async def close_clients(_app, _loop) -> None:
            await self.stop_flushing()
            if self._worker.running:
                await asyncio.wrap_future(self._worker.submit(self.close_client()))
                self._worker.stop()

        @blueprint.route("/", methods=["GET"])
        async def health(_: Request) -> HTTPResponse:
            return response.json({"status": "ok"})

        @blueprint.route("/metrics", methods=["GET"])
        async def metrics(_: Request) -> HTTPResponse:
            return response.json(await self.metrics_report())

        @blueprint.route("/metrics/prometheus", methods=["GET"])
        async def prometheus(_: Request) -> HTTPResponse:
            # Rasa's server owns /metrics' neighbourhood: Prometheus's text format here.
            return response.raw(await self.metrics_exposition(), content_type=METRICS_CONTENT_TYPE)

        @blueprint.route("/webhook", methods=["GET"])
        async def verify(request: Request) -> HTTPResponse:
            status, text = self.handshake(
                request.args.get("hub.mode"),
                request.args.get("hub.verify_token"),
                request.args.get("hub.challenge"),
            )
            return response.text(text, status=status)

        @blueprint.route("/turn", methods=["POST"])
        async def turn(request: Request) -> HTTPResponse:
            status, answer = await self.turn(on_new_message, request.body or b"",
                                             request.headers.get(signature.HEADER))
            return response.json(answer, status=status)

        @blueprint.route("/webhook", methods=["POST"])
        async def receive(request: Request) -> HTTPResponse:
            status, text = await self.receive_webhook(
                request.body or b"", request.headers.get(signature.HEADER)
            )
            return response.text(text, status=status)

        return blueprint

    # ── one turn: the patient's message in, the assistant's replies out ─────────────────────
    async def _run_turn(self, on_new_message: Callable[[UserMessage], Awaitable[Any]],
                        message: InboundTurn, output: OutputChannel,
                        claimed: Optional[bool] = None) -> Optional[str]:
        """The patient's message through the assistant; returns the conversation's language
        (None when it could not be decided)."""
        # Paused for a staff member: Rasa will only log this message, so the emergency
        # safety net is ours to run (and its guidance goes out first).
        language = await self._language_of(message)
        sent_by_safety_net = None
        if message.text and await self.safety_net.is_paused(self._agent, message.conversation_id, claimed):
            sent_by_safety_net = await self.safety_net.check(message.conversation_id, message.text, language)
            for text in sent_by_safety_net or []:
                await output.send_text_message(message.conversation_id, text)
        metadata: Dict[str, Any] = {"whatsapp": {"kind": message.kind, "redacted": list(message.redacted)}}
        if message.title:
            # Rasa keeps the metadata with the user event: the staff inbox's transcript
            # shows this title instead of the payload the assistant reads.
            metadata["whatsapp"]["title"] = message.title
        if language:
            metadata["language"] = language
        await on_new_message(
            UserMessage(
                text=message.text,
                output_channel=output,
                sender_id=message.conversation_id,
                input_channel=self.name(),
                message_id=message.wamid,
                metadata=metadata,
            )
        )
        if sent_by_safety_net:
            await self.safety_net.log_in_tracker(self._agent, message.conversation_id, sent_by_safety_net)
        # A message without text (a photo, a location) decides nothing: the remembered language.
        return language or await self._remembered_language(message.conversation_id)

    async def turn(self, on_new_message: Callable[[UserMessage], Awaitable[Any]], body: bytes,
                   signature_header: Optional[str]) -> Tuple[int, Dict[str, Any]]:
        """``POST /webhooks/whatsapp/turn`` from the gateway: one inbox message (already
        redacted and pseudonymised; signed with the gateway's own secret, WHATSAPP_INTERNAL_SECRET) through
        the assistant; the answer is the replies, in order, for the gateway to send. A retried
        turn (``attempts`` > 1) that the assistant already took in is not processed again:
        the replies it gave then are returned instead."""
        if not signature.verify(body, signature_header, self.settings.internal_secret):
            self.metrics.increment("turn_rejected")
            return 403, {"error": "invalid signature"}
        try:
            request = TurnRequest.from_json(json.loads(body))
        except ValueError:  # not JSON, or not a turn (MalformedTurn)
            return 400, {"error": "malformed turn"}
        message, claimed = request.turn, request.claimed_by_staff
        if message.attempts > 1:
            earlier = await _replies_already_given(self._agent, message)
            if earlier is not None:
                self.metrics.increment("turn_replayed")
                language = await self._remembered_language(message.conversation_id)
                return 200, TurnReply(tuple(earlier), replayed=True, language=language).to_json()
        collector = WhatsAppCollector()
        try:
            language = await self._run_turn(on_new_message, message, collector, claimed)
        except Exception as error:  # noqa: BLE001 - answered as a 500, logged without its text
            # Sanic would log the exception's message, and a tracker store's or a model's can
            # quote the patient's words. The gateway counts the attempt (gateway/relay.py).
            self.metrics.increment("turn_failed")
            logger.error("A WhatsApp turn failed (kind=%s): %s", message.kind, where_it_failed(error))
            return 500, {"error": "the assistant failed on this message"}
        self.metrics.increment("turn_processed")
        return 200, TurnReply(tuple({k: v for k, v in m.items() if k != "recipient_id"}
                                    for m in collector.messages), language=language).to_json()

    async def _language_of(self, message: InboundTurn) -> Optional[str]:
        """The conversation's language after this message (detected, remembered per
        contact). Best effort: without it the NLU component detects from the text alone."""
        if not message.text:
            return None
        try:
            decision = await asyncio.to_thread(self.languages.decide, message.conversation_id, message.text)
        except Exception:  # noqa: BLE001 - the language must never cost the patient a reply
            logger.exception("Language memory unavailable; the assistant detects from the text")
            return None
        if decision.changed:
            self.metrics.increment(f"language_set_{decision.language}")
        return decision.language

    async def _remembered_language(self, conversation_id: str) -> Optional[str]:
        """The contact's remembered language (a replayed turn is not detected again); None
        when the memory cannot be read: the replies still go out, their list labels in English."""
        try:
            return await asyncio.to_thread(self.languages.recall, conversation_id)
        except Exception:  # noqa: BLE001 - the language must never cost the patient a reply
            logger.exception("Language memory unavailable; list labels in English")
            return None


async def _replies_already_given(agent: Any, message: InboundTurn) -> Optional[List[Dict[str, Any]]]:
    """If Rasa already logged this wamid: what the assistant answered it (the bot messages up
    to the patient's next message), as the collecting channel gives them; else None."""
    if agent is None or agent.tracker_store is None:
        return None
    # The full tracker: ``retrieve`` starts at the last SessionStarted, after the welcome.
    store = agent.tracker_store
    tracker = getattr(store, "retrieve_full_tracker", store.retrieve)(message.conversation_id)
    if inspect.isawaitable(tracker):
        tracker = await tracker
    if tracker is None:
        return None
    replies: Optional[List[Dict[str, Any]]] = None
    # A new session's welcome (sent by action_session_start) is logged before the message
    # that opened the session.
    session_preamble: Optional[List[Dict[str, Any]]] = None
    for event in tracker.events:
        kind = type(event).__name__
        if kind == "ActionExecuted" and getattr(event, "action_name", None) == "action_session_start":
            session_preamble = []
        elif kind == "UserUttered":
            if replies is not None:
                break
            if getattr(event, "message_id", None) == message.wamid:
                replies = list(session_preamble or [])
            session_preamble = None
        elif kind == "BotUttered":
            reply = {"text": event.text, **{k: v for k, v in (event.data or {}).items() if v is not None}}
            if replies is not None:
                replies.append(reply)
            elif session_preamble is not None:
                session_preamble.append(reply)
    return replies
