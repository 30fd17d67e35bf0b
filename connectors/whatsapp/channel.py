"""Rasa input channel for the WhatsApp Cloud API: ``/webhooks/whatsapp/webhook``.

One job: take Meta's webhooks safely and hand each message to the assistant once.
- GET: the verification handshake (echo ``hub.challenge`` when mode and token match).
- POST: check the signature over the raw body (401 missing, 403 wrong), parse (400 on bad
  JSON), store every new message in the durable inbox (redacted, pseudonymised) and every
  status, then answer 200 at once. Processing happens afterwards, per conversation in order
  (``processor.py``); a wamid already stored is never processed again.
Conversation ids given to Rasa are pseudonyms (keyed HMAC of the WhatsApp id): the tracker
store never holds a phone number or the WhatsApp profile name.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import datetime as dt
import hmac
import inspect
import json
import logging
import tempfile
import time
from pathlib import Path
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
from sqlalchemy import exc as sql_errors

import clinic.messaging.store  # noqa: F401  (registers the channel's tables before create_schema)
from clinic.db import VAR_DIR, create_schema, make_engine, make_session_factory
from clinic.handoff.requests import HandoffRequests, Reason
from clinic.handoff.teams import Team
from clinic.language.memory import LanguageMemory
from clinic.messaging.quarantine import WAMID_MAX, Quarantine, storable_wamid
from clinic.messaging.store import NewInbound, PendingMessage, WhatsAppStore
from clinic.privacy import ContactCipher, contact_key, load_pseudonym_key
from clinic.redaction import redact
from connectors.whatsapp.follow_up import follow_up_opener
from connectors.whatsapp.inbound_mapping import to_assistant_input
from connectors.whatsapp.output import CHANNEL_NAME, WhatsAppOutput, deliver_turn
from connectors.whatsapp.processor import InboxProcessor, mark_read_best_effort, where_it_failed
from connectors.whatsapp.safety_net import PausedSafetyNet
from connectors.whatsapp.settings import WhatsAppSettings
from connectors.whatsapp.worker import WorkerLoop
from gateway.outbox import Outbox
from gateway.sender import DeliveryPolicy, Sender
from whatsapp import signature
from whatsapp.client import GraphClient
from whatsapp.inbound import (
    InboundMessage,
    StatusUpdate,
    WebhookBatch,
    WebhookBodyError,
    decode_webhook_body,
    parse_webhook,
)
from whatsapp.journal import InboxJournal
from whatsapp.limits import WEBHOOK_BODY_MAX_BYTES
from whatsapp.metrics import Metrics

logger = logging.getLogger(__name__)


class WhatsAppInput(InputChannel):
    @classmethod
    def name(cls) -> Text:
        return CHANNEL_NAME

    @classmethod
    def from_credentials(cls, credentials: Optional[Dict[Text, Any]]) -> InputChannel:
        return cls(WhatsAppSettings.load(credentials))

    def __init__(self, settings: WhatsAppSettings, database_url: Optional[str] = None,
                 door: str = "channel") -> None:
        self.settings = settings
        self.metrics = Metrics()
        engine = make_engine(database_url)
        # Each door (this channel in Rasa's process, or the separate ingress) owns a journal.
        self.journal = InboxJournal(journal_directory(settings.journal_dir, str(engine.url)) / door,
                                    fsync=settings.journal_fsync)
        # The acknowledgement's own thread: on the shared default pool it would queue behind
        # the inbox's and the sender's database work.
        self._door_thread = concurrent.futures.ThreadPoolExecutor(max_workers=2, thread_name_prefix="whatsapp-door")
        self._flush_wanted: Optional[asyncio.Event] = None
        self._flusher: Optional[asyncio.Task] = None
        create_schema(engine)
        sessions = make_session_factory(engine)
        self.store = WhatsAppStore(sessions)
        # What could not be parsed, applied or answered (clinic/messaging/quarantine.py), and the
        # tickets that make a person follow a dead-lettered message up.
        self.quarantine = Quarantine(sessions)
        self._handoffs = HandoffRequests(sessions)
        self._cipher = ContactCipher.from_environment()
        self._pseudonym_key = load_pseudonym_key()
        # Emergencies while a staff member has the conversation (Rasa paused): safety_net.py.
        self.safety_net = PausedSafetyNet(HandoffRequests(sessions), self._pseudonym_key, CHANNEL_NAME,
                                          sessions)
        # The language of each contact's conversation (clinic.language.memory): decided per
        # message before the assistant reads it, remembered across sessions.
        self.languages = LanguageMemory(sessions)
        self._agent = None  # Rasa's agent, known once the server has started
        # Ingress mode (connectors/whatsapp/ingress.py): a separate process takes the webhooks
        # and calls this with the conversations that have new messages; Rasa's process only
        # processes. None in the Rasa process itself, which submits to its processor.
        self.on_new_conversations: Optional[Callable[[List[str]], None]] = None
        # One pooled HTTP client per event loop: replies are sent from the processing loop,
        # proactive messages (Rasa's trigger_intent) from Sanic's loop.
        # Attempts, timeouts and dead-letter rounds of outbound messages (gateway/sender.py).
        self.delivery = DeliveryPolicy.from_environment()
        self._client = self._graph_client()
        # A turn's reply that finally failed opens a staff ticket (follow_up.py).
        self.sender = Sender(self._client, self.store, self._cipher, self.metrics, policy=self.delivery,
                             on_final_failure=follow_up_opener(sessions, self._pseudonym_key))
        # A turn's replies: recorded, then sent in order; resumed after a crash (outbox.py).
        self.outbox = Outbox(self.sender, self.store, self.metrics)
        self._proactive_client: Optional[GraphClient] = None
        self._proactive_sender: Optional[Sender] = None
        self.processor: Optional[InboxProcessor] = None
        self._worker = WorkerLoop()

    def _graph_client(self) -> GraphClient:
        return GraphClient(
            base_url=self.settings.api_base_url,
            api_version=self.settings.api_version,
            phone_number_id=self.settings.phone_number_id,
            access_token=self.settings.access_token,
            rate_per_second=self.settings.send_rate_per_second,
            max_attempts=self.delivery.attempts,
            timeout=self.delivery.timeout,
        )

    def get_output_channel(self) -> Optional[OutputChannel]:
        # Used by Rasa for messages the patient didn't just ask for (trigger_intent, reminders).
        if self._proactive_sender is None:
            self._proactive_client = self._graph_client()
            self._proactive_sender = Sender(self._proactive_client, self.store, self._cipher, self.metrics,
                                            policy=self.delivery)
        return WhatsAppOutput(self._proactive_sender)

    async def metrics_report(self) -> Dict[str, Any]:
        """Counters and inbox/outbound states (no patient data): ``GET …/metrics`` of Rasa's
        channel and of the gateway."""
        return {"counters": self.metrics.snapshot(),
                "inbox": await asyncio.to_thread(self.store.inbox_counts),
                "outbound": await asyncio.to_thread(self.store.outbound_counts),
                "quarantine": await asyncio.to_thread(self.quarantine.counts)}

    async def close_client(self) -> None:
        """Close the pooled Graph API client (on the loop that used it)."""
        await self._client.close()

    def conversation_id(self, sender_key: str) -> str:
        return contact_key(sender_key, CHANNEL_NAME, self._pseudonym_key)

    # ── webhook ───────────────────────────────────────────────────────────────────────────
    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        blueprint = Blueprint("whatsapp_webhook", __name__)

        async def handle(message: PendingMessage) -> None:
            await mark_read_best_effort(self.sender, message.wamid, self.metrics)
            # A retried message Rasa already took in: the replies it gave then.
            replies = await _replies_already_given(self._agent, message) if message.attempts > 1 else None
            if replies is None:
                collector = CollectingOutputChannel()
                await self._run_turn(on_new_message, message, collector)
                replies = collector.messages
            # Every reply recorded before the first is sent (gateway/outbox.py).
            await deliver_turn(self.outbox, message.conversation_id, message.wamid, replies)

        self.processor = InboxProcessor(
            self.store, handle, self.settings.max_concurrent_conversations, self.metrics,
            max_attempts=self.settings.inbound_max_attempts, retry_seconds=self.settings.inbound_retry_seconds,
            dead_letter=self.dead_letter,
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
                return await asyncio.to_thread(self.store.turn_recorded, message.wamid)

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

        @blueprint.listener("before_server_stop")
        async def close_clients(_app, _loop) -> None:
            await self.stop_flushing()
            if self._worker.running:
                await asyncio.wrap_future(self._worker.submit(self.close_client()))
                self._worker.stop()
            if self._proactive_client is not None:
                await self._proactive_client.close()

        @blueprint.route("/", methods=["GET"])
        async def health(_: Request) -> HTTPResponse:
            return response.json({"status": "ok"})

        @blueprint.route("/metrics", methods=["GET"])
        async def metrics(_: Request) -> HTTPResponse:
            return response.json(await self.metrics_report())

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

    def handshake(
        self, mode: Optional[str], token: Optional[str], challenge: Optional[str]
    ) -> Tuple[int, str]:
        """Meta's verification GET: echo the challenge (as text) only for the right token."""
        if mode == "subscribe" and challenge is not None and hmac.compare_digest(
            (token or "").encode(), self.settings.verify_token.encode()
        ):
            return 200, challenge
        self.metrics.increment("handshake_rejected")
        return 403, "forbidden"

    async def receive_webhook(self, body: bytes, signature_header: Optional[str]) -> Tuple[int, str]:
        """Verify, parse, store durably, then 200; processing is scheduled, not awaited."""
        if len(body) > WEBHOOK_BODY_MAX_BYTES:
            self.metrics.increment("webhook_too_large")
            return 413, "payload too large"
        if not signature_header:
            self.metrics.increment("webhook_signature_missing")
            return 401, "missing signature"
        if not signature.verify(body, signature_header, self.settings.app_secret):
            self.metrics.increment("webhook_signature_invalid")
            return 403, "invalid signature"
        try:
            # Normalised at the door: invalid Unicode replaced, absurd nesting refused
            # (whatsapp/inbound.py), so nothing further on can fail on them.
            payload = decode_webhook_body(body)
        except WebhookBodyError as error:
            # 400, not 500: nothing went wrong on our side, and the body will not improve.
            self.metrics.increment("webhook_bad_json" if error.reason == "malformed_json"
                                   else f"webhook_{error.reason}")
            return 400, "malformed JSON" if error.reason == "malformed_json" else "JSON nested too deeply"

        batch = parse_webhook(payload, received_at=int(time.time()))
        for problem in batch.problems:
            logger.warning("Webhook item skipped: %s", problem)  # problems carry no content
        # Durable before the 200: redacted, pseudonymised records appended to the door's
        # journal (journal.py); the flusher moves them into the inbox and starts processing.
        await asyncio.get_running_loop().run_in_executor(self._door_thread, self._journal_batch, batch)
        self.metrics.increment("webhook_accepted")
        self._wake_flusher()
        return 200, "OK"

    # ── journal → inbox ───────────────────────────────────────────────────────────────────
    def _journal_batch(self, batch: WebhookBatch) -> None:
        """Runs in a worker thread: redaction, pseudonyms, encryption, one append. Each item
        on its own: one that fails here goes to the quarantine (as a journal record, so the
        200 still waits for no database), never sinks the batch."""
        received_at = dt.datetime.now(dt.timezone.utc)
        records: List[dict] = []
        for message in batch.messages:
            try:
                prepared = self._prepare(message)
                if prepared is not None:
                    item, address = prepared
                    records.append(_message_record(item, self._cipher.encrypt(address) if address else None))
            except Exception as error:  # noqa: BLE001 - one bad message must not sink the batch
                self.metrics.increment("inbound_quarantined")
                logger.warning("An inbound WhatsApp message could not be prepared; quarantined: %s",
                               where_it_failed(error))
                records.append(self._quarantine_record(
                    "prepare_failed", type(error).__name__, message.id, message.sender_key, received_at))
        for rejected in batch.rejected:
            self.metrics.increment("inbound_quarantined")
            records.append(self._quarantine_record("unreadable", rejected.reason, rejected.message_id,
                                                   rejected.sender, received_at))
        for status in batch.statuses:
            if len(status.message_id) > WAMID_MAX:
                self.metrics.increment("status_id_too_long")  # not one of ours: none is that long
                continue
            records.append(_status_record(status))
        self.journal.append(records)

    def _quarantine_record(self, reason: str, detail: str, wamid: Optional[str], sender: Optional[str],
                           received_at: dt.datetime) -> dict:
        """A journal record for the quarantine: the reason, a content-free detail and the
        pseudonym of the sender (never their WhatsApp id)."""
        return {"type": "quarantine", "source": "webhook", "reason": reason, "detail": detail,
                "wamid": storable_wamid(wamid) if wamid else None,
                "conversation_id": self.conversation_id(sender) if sender else None,
                "received_at": received_at.isoformat()}

    def _wake_flusher(self) -> None:
        if self._flush_wanted is not None:
            self._flush_wanted.set()

    async def flush_journal(self) -> List[str]:
        """Move every journalled record into the inbox now; returns the conversations that
        got new messages (already handed to processing)."""
        new: List[NewInbound] = []
        try:
            await asyncio.to_thread(self.drain_journal, new)
        finally:
            # Also when a later segment failed: what reached the inbox gets processed now.
            conversations = list(dict.fromkeys(i.conversation_id for i in new if not i.skip))
            if self.on_new_conversations is not None:
                self.on_new_conversations(conversations)
            else:
                self._submit(conversations)
        return conversations

    def start_flushing(self) -> None:
        """Run the flusher on the current event loop (the one that receives webhooks)."""
        if self._flusher is None:
            self._flush_wanted = asyncio.Event()
            self._flush_wanted.set()  # leftovers from before a restart
            self._flusher = asyncio.get_running_loop().create_task(self._flush_forever())

    async def stop_flushing(self) -> None:
        if self._flusher is not None:
            self._flusher.cancel()
            self._flusher = None
        await self.flush_journal()

    async def _flush_forever(self) -> None:
        while True:
            await self._flush_wanted.wait()
            self._flush_wanted.clear()
            try:
                await self.flush_journal()
            except Exception as error:  # noqa: BLE001 - e.g. the database is down: keep the journal, retry
                self.metrics.increment("journal_flush_failed")
                # Where, not what: a database error's text quotes the row it refused.
                logger.error("Moving journalled webhooks into the inbox failed; retrying: %s",
                             where_it_failed(error))
                await asyncio.sleep(1.0)
                self._flush_wanted.set()

    async def drain_journal_at_start(self) -> None:
        """The journal into the inbox before processing starts; if that fails (the database
        is not reachable yet) start anyway: the flusher keeps retrying."""
        try:
            await asyncio.to_thread(self.drain_journal)
        except Exception as error:  # noqa: BLE001 - start-up must not depend on it
            self.metrics.increment("journal_flush_failed")
            logger.error("Moving journalled webhooks into the inbox at start-up failed; the flusher "
                         "retries: %s", where_it_failed(error))

    def drain_journal(self, new: Optional[List[NewInbound]] = None) -> List[NewInbound]:
        """Journal → inbox; the messages that were new are appended to ``new`` as each
        segment commits."""
        new = [] if new is None else new
        self.journal.drain(lambda records: new.extend(self._apply_records(records)))
        return new

    def _apply_records(self, records: List[dict]) -> List[NewInbound]:
        """One journal segment into the database, all at once; if the database refuses it,
        record by record, and a record it still refuses goes to the quarantine with its
        reason. One bad record never blocks the journal (nor the gateway's start-up). Only
        when the database itself is unreachable does the segment stay for the next drain."""
        try:
            return self._apply_together(records)
        except Exception as error:  # noqa: BLE001 - sorted out just below
            if _unreachable(error):
                raise
            logger.warning("A journal segment could not be applied as a whole (%s); applying its %d "
                           "records one by one", type(error).__name__, len(records))
        new: List[NewInbound] = []
        for record in records:
            try:
                new.extend(self._apply_together([record]))
            except Exception as error:  # noqa: BLE001 - the quarantine decides, see _unreachable
                if _unreachable(error):
                    raise
                self._quarantine_journal_record(record, error)
        return new

    def _quarantine_journal_record(self, record: Any, error: Exception) -> None:
        self.metrics.increment("journal_record_quarantined")
        logger.error("A journal record was refused by the database and quarantined: %s", where_it_failed(error))
        fields = record if isinstance(record, dict) else {}

        def text_field(name: str) -> Optional[str]:
            value = fields.get(name)
            return value if isinstance(value, str) else None

        received = text_field("received_at")
        try:
            received_at = dt.datetime.fromisoformat(received) if received else None
        except ValueError:
            received_at = None
        is_message = fields.get("type") == "message"
        try:
            self.quarantine.add(
                "journal", "journal_apply_failed", detail=type(error).__name__, wamid=text_field("wamid"),
                conversation_id=text_field("conversation_id"), kind=text_field("kind"),
                record=fields if is_message else None, received_at=received_at)
        except Exception as failure:  # noqa: BLE001 - the record is worse than thought
            if _unreachable(failure):
                raise
            # Not even its fields can be stored: the reason alone, so the journal moves on.
            self.quarantine.add("journal", "journal_apply_failed",
                                detail=f"{type(error).__name__}; fields unstorable ({type(failure).__name__})")

    def _apply_together(self, records: List[dict]) -> List[NewInbound]:
        """Records into the database: messages and addresses in one transaction, then the
        statuses in the order Meta sent them, then the quarantine's own records."""
        items: List[NewInbound] = []
        contacts: Dict[str, Tuple[str, dt.datetime]] = {}
        statuses = []
        quarantined: List[dict] = []
        for record in records:
            if record.get("type") == "message":
                item = _item_from_record(record)
                items.append(item)
                address = record.get("address_encrypted")
                known = contacts.get(item.conversation_id)
                if address and (known is None or item.received_at > known[1]):
                    contacts[item.conversation_id] = (address, item.received_at)
            elif record.get("type") == "status":
                statuses.append(record)
            elif record.get("type") == "quarantine":
                quarantined.append(record)
        new = self.store.accept(items, contacts)
        self.metrics.increment("inbound_new", len(new))
        if len(items) > len(new):
            self.metrics.increment("inbound_duplicates", len(items) - len(new))
        applied = self.store.record_statuses([
            (r["wamid"], r["status"], dt.datetime.fromisoformat(r["at"]), r.get("code"), r.get("detail"),
             r.get("callback"))
            for r in statuses])
        for record, was_applied in zip(statuses, applied, strict=False):
            self.metrics.increment(f"status_{record['status']}" if was_applied else "status_ignored_stale")
        for record in quarantined:
            self.quarantine.add(record.get("source") or "webhook", record["reason"], detail=record.get("detail"),
                                wamid=record.get("wamid"), conversation_id=record.get("conversation_id"),
                                received_at=dt.datetime.fromisoformat(record["received_at"]))
        return new

    def _submit(self, conversations: List[str]) -> None:
        if self.processor is not None and self._worker.running:
            for conversation_id in conversations:
                # Processing runs on the worker loop (see worker.py); this loop only acks.
                self._worker.call_soon(self.processor.submit, conversation_id)

    # ── one turn: the patient's message in, the assistant's replies out ─────────────────────
    async def _run_turn(self, on_new_message: Callable[[UserMessage], Awaitable[Any]],
                        message: PendingMessage, output: OutputChannel,
                        claimed: Optional[bool] = None) -> None:
        # Paused for a staff member: Rasa will only log this message, so the emergency
        # safety net is ours to run (and its guidance goes out first).
        language = await self._language_of(message)
        sent_by_safety_net = None
        if message.text and await self.safety_net.is_paused(self._agent, message.conversation_id, claimed):
            sent_by_safety_net = await self.safety_net.check(message.conversation_id, message.text, language)
            for text in sent_by_safety_net or []:
                await output.send_text_message(message.conversation_id, text)
        metadata: Dict[str, Any] = {"whatsapp": {"kind": message.kind, "redacted": list(message.redacted)}}
        if message.metadata.get("title"):
            # Rasa keeps the metadata with the user event: the staff inbox's transcript
            # shows this title instead of the payload the assistant reads.
            metadata["whatsapp"]["title"] = message.metadata["title"]
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

    async def dead_letter(self, message: PendingMessage, reason: str) -> None:
        """A message given up on (processor.py): into the quarantine, where staff can retry
        it, and a ticket for the conversation so a person follows the patient up."""
        await asyncio.to_thread(self.quarantine.add, "inbox", reason, detail="the assistant failed on every attempt",
                                wamid=message.wamid, conversation_id=message.conversation_id, kind=message.kind,
                                inbox_id=message.id, attempts=message.attempts)
        key = contact_key(message.conversation_id, CHANNEL_NAME, self._pseudonym_key)
        await asyncio.to_thread(self._handoffs.record, key, Team.RECEPTION, Reason.MESSAGE_FAILED,
                                conversation_id=message.conversation_id)
        self.metrics.increment("inbound_dead_letter_ticket")

    async def _language_of(self, message: PendingMessage) -> Optional[str]:
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
            fields = json.loads(body)
            extra = fields.get("metadata")
            title = extra.get("title") if isinstance(extra, dict) else None
            message = PendingMessage(
                id=0, wamid=str(fields["wamid"]), conversation_id=str(fields["conversation_id"]),
                kind=str(fields["kind"]), text=fields.get("text"),
                metadata={"title": title} if isinstance(title, str) and title else {},
                redacted=tuple(str(r) for r in fields.get("redacted") or ()), state="processing",
                attempts=int(fields.get("attempts") or 1))
            claimed = fields.get("claimed_by_staff")
            claimed = None if claimed is None else bool(claimed)
        except (ValueError, KeyError, TypeError):
            return 400, {"error": "malformed turn"}
        if message.attempts > 1:
            earlier = await _replies_already_given(self._agent, message)
            if earlier is not None:
                self.metrics.increment("turn_replayed")
                return 200, {"messages": earlier, "replayed": True}
        collector = CollectingOutputChannel()
        try:
            await self._run_turn(on_new_message, message, collector, claimed)
        except Exception as error:  # noqa: BLE001 - answered as a 500, logged without its text
            # Sanic would log the exception's message, and a tracker store's or a model's can
            # quote the patient's words. The gateway counts the attempt (ingress.py).
            self.metrics.increment("turn_failed")
            logger.error("A WhatsApp turn failed (kind=%s): %s", message.kind, where_it_failed(error))
            return 500, {"error": "the assistant failed on this message"}
        self.metrics.increment("turn_processed")
        return 200, {"messages": [{k: v for k, v in m.items() if k != "recipient_id"}
                                  for m in collector.messages]}

    def _prepare(self, message: InboundMessage) -> Optional[Tuple[NewInbound, Optional[str]]]:
        sender_key = message.sender_key
        if not sender_key:
            self.metrics.increment("inbound_without_sender")
            return None
        assistant_input = to_assistant_input(message)
        if assistant_input.redacted:
            self.metrics.increment("inbound_redacted")
        if assistant_input.truncated:
            self.metrics.increment("inbound_text_truncated")
        if message.timestamp_replaced:
            self.metrics.increment("inbound_timestamp_replaced")
        wamid = storable_wamid(message.id)
        if wamid != message.id:
            self.metrics.increment("inbound_id_too_long")
        # Reply to the phone/wa_id when Meta gives one; a username-only user by BSUID.
        contact = message.contact
        address = message.from_ or (contact.wa_id if contact else None) or sender_key
        item = NewInbound(
            wamid=wamid,
            conversation_id=self.conversation_id(sender_key),
            kind=assistant_input.kind,
            text=assistant_input.text,
            metadata={"title": assistant_input.title} if assistant_input.title else {},
            redacted=assistant_input.redacted,
            received_at=dt.datetime.fromtimestamp(message.timestamp, dt.timezone.utc),
            skip=assistant_input.text is None,
        )
        return item, address


def _unreachable(error: BaseException) -> bool:
    """Whether a failure to write is the database's (down, locked, disconnected: keep the
    journal and retry) rather than the record's (quarantine it)."""
    return isinstance(error, (OSError, sql_errors.OperationalError, sql_errors.InterfaceError,
                              sql_errors.TimeoutError, sql_errors.DisconnectionError))


def journal_directory(configured: str, database_url: str) -> Path:
    """WHATSAPP_JOURNAL_DIR, else beside a SQLite database file (so each test or benchmark
    stack, with its own database, has its own journal), else var/whatsapp-journal."""
    if configured:
        return Path(configured)
    if database_url.startswith("sqlite:///") and ":memory:" not in database_url:
        database = Path(database_url.removeprefix("sqlite:///"))
        return database.with_name(database.name + "-whatsapp-journal")
    if database_url.startswith("sqlite"):
        return Path(tempfile.mkdtemp(prefix="whatsapp-journal-"))  # nothing else is durable either
    return VAR_DIR / "whatsapp-journal"


def _message_record(item: NewInbound, address_encrypted: Optional[str]) -> dict:
    return {"type": "message", "wamid": item.wamid, "conversation_id": item.conversation_id,
            "kind": item.kind, "text": item.text, "metadata": item.metadata,
            "redacted": list(item.redacted), "received_at": item.received_at.isoformat(),
            "skip": item.skip, "address_encrypted": address_encrypted}


def _item_from_record(record: dict) -> NewInbound:
    return NewInbound(
        wamid=record["wamid"], conversation_id=record["conversation_id"], kind=record["kind"],
        text=record.get("text"), metadata=record.get("metadata") or {},
        redacted=tuple(record.get("redacted") or ()),
        received_at=dt.datetime.fromisoformat(record["received_at"]), skip=bool(record.get("skip")))


def _status_record(status: StatusUpdate) -> dict:
    first_error = status.errors[0] if status.errors else None
    return {"type": "status", "wamid": status.message_id, "status": status.status,
            "at": dt.datetime.fromtimestamp(status.timestamp, dt.timezone.utc).isoformat(),
            "code": first_error.code if first_error else None,
            "detail": (first_error.details or first_error.message) if first_error else None,
            # Names the wa_outbound row: proof that Meta took it (gateway/outbox.py).
            "callback": (status.biz_opaque_callback_data or "")[:64] or None}


async def _replies_already_given(agent: Any, message: PendingMessage) -> Optional[List[Dict[str, Any]]]:
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
