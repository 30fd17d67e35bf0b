"""The WhatsApp gateway's door, with no Rasa inside: ``/webhooks/whatsapp/webhook``.

One job: take Meta's webhooks safely and hand each message to the assistant once.
- GET: the verification handshake (echo ``hub.challenge`` when mode and token match).
- POST: check the signature over the raw body (401 missing, 403 wrong), parse (400 on bad
  JSON), append every new message (redacted, pseudonymised, its words sealed with the
  clinic's keyring: clinic/messaging/journal_lines.py) and every status to the door's
  journal, then answer 200 at once; the flusher moves the journal into the durable inbox.
  Processing happens afterwards, per conversation in order (``processor.py``); a wamid
  already stored is never processed again.
Conversation ids given to Rasa are pseudonyms (keyed HMAC of the WhatsApp id): the tracker
store never holds a phone number or the WhatsApp profile name.

``Door`` also holds what the door's process needs to answer: the store, the quarantine, the
sender and the outbox (a turn's replies recorded, then sent in order). The gateway
(server.py) uses it as is; the Rasa-only development channel
(connectors/whatsapp/channel.py) is a ``Door`` that is also Rasa's ``InputChannel``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import datetime as dt
import hmac
import logging
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

from sqlalchemy import exc as sql_errors

from clinic.at_rest import AtRestError, clinic_sealer
from clinic.at_rest_rotation import check_keys
from clinic.db import VAR_DIR, create_schema, make_engine, make_session_factory
from clinic.handoff.requests import HandoffRequests, Reason
from clinic.handoff.teams import Team
from clinic.messaging.journal_lines import open_record, seal_record
from clinic.messaging.media import MediaStore
from clinic.messaging.outbox_queue import PRIORITY_NAMES
from clinic.messaging.quarantine import WAMID_MAX, Quarantine, storable_wamid
from clinic.messaging.store import PendingMessage, WhatsAppStore
from clinic.messaging.turn import InboundTurn, MediaRef
from clinic.privacy import ContactCipher, contact_key, load_pseudonym_key
from gateway.calls import CallDesk
from gateway.follow_up import follow_up_opener
from gateway.identities import identity_fields, resolve_records
from gateway.inbound_mapping import to_assistant_input
from gateway.media import MediaFetcher
from gateway.outbox import Outbox
from gateway.processor import InboxProcessor, where_it_failed
from gateway.render import CHANNEL_NAME
from gateway.sender import Sender
from gateway.settings import WhatsAppSettings
from gateway.shared_limit import shared_limiter
from gateway.worker import WorkerLoop
from whatsapp import signature
from whatsapp.calls import CALLS_FIELD
from whatsapp.client import GraphClient
from whatsapp.inbound import (
    InboundMessage,
    MediaMessage,
    StatusUpdate,
    UnknownMessage,
    UnsupportedMessage,
    WebhookBatch,
    WebhookBodyError,
    decode_webhook_body,
    parse_webhook,
)
from whatsapp.journal import InboxJournal
from whatsapp.limits import WEBHOOK_BODY_MAX_BYTES
from whatsapp.metrics import Metrics

logger = logging.getLogger(__name__)


class Door:
    """The door and what its process sends with: store, quarantine, sender, outbox."""

    def __init__(self, settings: WhatsAppSettings, database_url: Optional[str] = None,
                 door: str = "channel") -> None:
        self.settings = settings
        self.metrics = Metrics()
        engine = make_engine(database_url)
        # Each door (the gateway's, a relay's, or the Rasa-only channel's) owns a journal.
        self.journal = InboxJournal(journal_directory(settings.journal_dir, str(engine.url)) / door,
                                    fsync=settings.journal_fsync)
        # The acknowledgement's own thread: on the shared default pool it would queue behind
        # the inbox's and the sender's database work.
        self._door_thread = concurrent.futures.ThreadPoolExecutor(max_workers=2, thread_name_prefix="whatsapp-door")
        self._flush_wanted: Optional[asyncio.Event] = None
        self._flusher: Optional[asyncio.Task[Any]] = None
        create_schema(engine)
        sessions = make_session_factory(engine)
        self.store = WhatsAppStore(sessions)
        # What could not be parsed, applied or answered (clinic/messaging/quarantine.py), and the
        # tickets that make a person follow a dead-lettered message up.
        self.quarantine = Quarantine(sessions)
        self._handoffs = HandoffRequests(sessions)
        self._cipher = ContactCipher.from_environment()
        # The clinic's keyring (clinic/at_rest.py): a message's words in the journal and in the
        # inbox are sealed with it. Loaded now: a malformed keyring stops the door at start.
        self._sealer = clinic_sealer()
        check_keys(engine, self._sealer)  # a missing or wrong key: AtRestError naming its id
        self._pseudonym_key = load_pseudonym_key()
        self.sessions = sessions
        # Gateway mode (server.py): a separate process takes the webhooks
        # and calls this with the conversations that have new messages; Rasa's process only
        # processes. None in the Rasa process itself, which submits to its processor.
        self.on_new_conversations: Optional[Callable[[List[str]], None]] = None
        # One pooled HTTP client per event loop: replies are sent from the processing loop,
        # proactive messages (Rasa's trigger_intent) from Sanic's loop.
        # Attempts, timeouts and dead-letter rounds of outbound messages (gateway/sender.py).
        self.delivery = settings.delivery
        self._client = self._graph_client()
        # A turn's reply that finally failed opens a staff ticket (follow_up.py).
        self.sender = Sender(self._client, self.store, self._cipher, self.metrics, policy=self.delivery,
                             on_final_failure=follow_up_opener(sessions, self._pseudonym_key))
        # A turn's replies: recorded, then sent in order; resumed after a crash (outbox.py).
        self.outbox = Outbox(self.sender, self.store, self.metrics)
        # Patients' media, fetched after their turn and stored encrypted for staff (media.py).
        self.media = MediaFetcher(MediaStore.for_database(sessions, str(engine.url)), self._client, self.metrics,
                                  max_bytes=settings.media_max_bytes, max_attempts=settings.media_max_attempts)
        # Voice calls: Meta's call webhooks recorded, staff's call actions sent (calls.py).
        self.calls = CallDesk(sessions, self._client, self._cipher, self.conversation_id, self._pseudonym_key,
                              self.metrics)
        self.processor: Optional[InboxProcessor] = None
        self._worker = WorkerLoop(niceness=settings.worker_niceness)

    def _graph_client(self) -> GraphClient:
        self._shared_limiter = shared_limiter(self.settings.redis_url, self.settings.phone_number_id,
                                              self.settings.send_rate_per_second)
        return GraphClient(
            base_url=self.settings.api_base_url,
            api_version=self.settings.api_version,
            phone_number_id=self.settings.phone_number_id,
            access_token=self.settings.access_token,
            rate_per_second=self.settings.send_rate_per_second,
            max_attempts=self.delivery.attempts,
            timeout=self.delivery.timeout,
            # Several gateway workers share the number's limit in Redis (REDIS_URL).
            limiter=self._shared_limiter,
        )

    async def metrics_exposition(self) -> bytes:
        """The metrics in Prometheus's text format (``GET /metrics``), the outbox's queue
        depth read now. Labels are fixed vocabularies: no patient data."""
        queued = await asyncio.to_thread(self.store.queued_by_priority)
        depth = {name: 0 for name in PRIORITY_NAMES.values()}
        for priority, count in queued.items():
            name = PRIORITY_NAMES.get(priority, "other")
            depth[name] = depth.get(name, 0) + count
        self.metrics.set_queue_depth(depth)
        return self.metrics.exposition()

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
        if self._shared_limiter is not None:
            await self._shared_limiter.close()

    def conversation_id(self, sender_key: str) -> str:
        return contact_key(sender_key, CHANNEL_NAME, self._pseudonym_key)

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
        replies = self.calls.permission_replies(batch.messages)
        if (CALLS_FIELD in batch.ignored_fields or replies) and not await self._record_calls(payload, replies):
            return 500, "calls not recorded; redeliver"
        if replies:  # recorded for staff; not a message for the assistant
            batch.messages = [m for m in batch.messages if m not in replies]
        for problem in batch.problems:
            logger.warning("Webhook item skipped: %s", problem)  # problems carry no content
        # Durable before the 200: redacted, pseudonymised records appended to the door's
        # journal (journal.py); the flusher moves them into the inbox and starts processing.
        await asyncio.get_running_loop().run_in_executor(self._door_thread, self._journal_batch, batch)
        self.metrics.increment("webhook_accepted")
        self._wake_flusher()
        return 200, "OK"

    async def _record_calls(self, payload: object, permission_replies: List[InboundMessage]) -> bool:
        """The ``calls`` field and call-permission replies, into the database before the 200
        (calls.py says why)."""
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(self._door_thread, self.calls.record_webhook, payload)
            if permission_replies:
                await loop.run_in_executor(self._door_thread, self.calls.record_permission_replies,
                                           permission_replies)
        except Exception as error:  # noqa: BLE001 - Meta redelivers a webhook not answered 200
            self.metrics.increment("call_webhook_failed")
            logger.error("A call webhook could not be recorded: %s", where_it_failed(error))
            return False
        return True

    # ── journal → inbox ───────────────────────────────────────────────────────────────────
    def _journal_batch(self, batch: WebhookBatch) -> None:
        """Runs in a worker thread: redaction, pseudonyms, encryption, one append. Each item
        on its own: one that fails here goes to the quarantine (as a journal record, so the
        200 still waits for no database), never sinks the batch."""
        received_at = dt.datetime.now(dt.timezone.utc)
        records: List[Dict[str, Any]] = []
        for message in batch.messages:
            try:
                prepared = self._prepare(message)
                if prepared is not None:
                    item, address = prepared
                    record = _message_record(item, self._cipher.encrypt(address) if address else None)
                    # The identifiers' pseudonyms, settled into one conversation when applied.
                    record.update(identity_fields(message, self.conversation_id, self._cipher))
                    records.append(seal_record(record, self._sealer))
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
                           received_at: dt.datetime) -> Dict[str, Any]:
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
        new: List[InboundTurn] = []
        try:
            await asyncio.to_thread(self.drain_journal, new)
        finally:
            # Also when a later segment failed: what reached the inbox gets processed now.
            conversations = list(dict.fromkeys(i.conversation_id for i in new if not i.record_only))
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
        wanted = self._flush_wanted
        if wanted is None:  # start_flushing makes the event before this task
            return
        while True:
            await wanted.wait()
            wanted.clear()
            try:
                await self.flush_journal()
            except Exception as error:  # noqa: BLE001 - e.g. the database is down: keep the journal, retry
                self.metrics.increment("journal_flush_failed")
                # Where, not what: a database error's text quotes the row it refused. A key
                # problem's text names key ids only, and says what to do.
                logger.error("Moving journalled webhooks into the inbox failed; retrying: %s",
                             str(error) if isinstance(error, AtRestError) else where_it_failed(error))
                await asyncio.sleep(1.0)
                wanted.set()

    async def drain_journal_at_start(self) -> None:
        """The journal into the inbox before processing starts; if that fails (the database
        is not reachable yet) start anyway: the flusher keeps retrying."""
        try:
            await asyncio.to_thread(self.drain_journal)
        except Exception as error:  # noqa: BLE001 - start-up must not depend on it
            self.metrics.increment("journal_flush_failed")
            logger.error("Moving journalled webhooks into the inbox at start-up failed; the flusher "
                         "retries: %s", str(error) if isinstance(error, AtRestError) else where_it_failed(error))

    def drain_journal(self, new: Optional[List[InboundTurn]] = None) -> List[InboundTurn]:
        """Journal → inbox; the messages that were new are appended to ``new`` as each
        segment commits."""
        new = [] if new is None else new
        # A line's words are opened first (journal_lines.py); a key the keyring lacks raises
        # AtRestError and the segment stays for the next drain, whatever the database says.
        self.journal.drain(lambda records: new.extend(
            self._apply_records([open_record(record, self._sealer) for record in records])))
        return new

    def _apply_records(self, records: List[Dict[str, Any]]) -> List[InboundTurn]:
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
        new: List[InboundTurn] = []
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
                "journal", "journal_apply_failed", detail=_error_kind(error), wamid=text_field("wamid"),
                conversation_id=text_field("conversation_id"), kind=text_field("kind"),
                record=fields if is_message else None, received_at=received_at)
        except Exception as failure:  # noqa: BLE001 - the record is worse than thought
            if _unreachable(failure):
                raise
            # Not even its fields can be stored: the reason alone, so the journal moves on.
            self.quarantine.add("journal", "journal_apply_failed",
                                detail=f"{type(error).__name__}; fields unstorable ({type(failure).__name__})")

    def _apply_together(self, records: List[Dict[str, Any]]) -> List[InboundTurn]:
        """Records into the database: messages and addresses in one transaction, then the
        statuses in the order Meta sent them, then the quarantine's own records."""
        records = resolve_records(self.store.sessions, records)  # usernames: gateway/identities.py
        items: List[InboundTurn] = []
        contacts: Dict[str, Tuple[str, dt.datetime]] = {}
        statuses = []
        quarantined: List[Dict[str, Any]] = []
        for record in records:
            if record.get("type") == "message":
                item = InboundTurn.from_json(record)
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

    async def dead_letter(self, message: PendingMessage, reason: str) -> None:
        """A message given up on (processor.py): into the quarantine, where staff can retry
        it, and a ticket for the conversation so a person follows the patient up."""
        turn = message.turn
        await asyncio.to_thread(self.quarantine.add, "inbox", reason, detail="the assistant failed on every attempt",
                                wamid=turn.wamid, conversation_id=turn.conversation_id, kind=turn.kind,
                                inbox_id=message.id, attempts=message.attempts)
        key = contact_key(turn.conversation_id, CHANNEL_NAME, self._pseudonym_key)
        await asyncio.to_thread(self._handoffs.record, key, Team.RECEPTION, Reason.MESSAGE_FAILED,
                                conversation_id=turn.conversation_id)
        self.metrics.increment("inbound_dead_letter_ticket")

    def _prepare(self, message: InboundMessage) -> Optional[Tuple[InboundTurn, Optional[str]]]:
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
        item = InboundTurn(
            wamid=wamid,
            conversation_id=self.conversation_id(sender_key),
            kind=assistant_input.kind,
            text=assistant_input.text,
            received_at=dt.datetime.fromtimestamp(message.timestamp, dt.timezone.utc),
            redacted=assistant_input.redacted,
            title=assistant_input.title,
            media=media_reference(message),
        )
        return item, address


def media_reference(message: InboundMessage) -> Optional[MediaRef]:
    """What the gateway needs to fetch a message's media for staff (gateway/media.py): Meta's
    id and metadata, never bytes. A type WhatsApp reports as unsupported, or one this product
    does not know, is referenced without an id, so it is recorded as such."""
    if isinstance(message, MediaMessage):
        return MediaRef(kind="voice" if message.voice else message.kind, media_id=message.media_id,
                        mime_type=message.mime_type, sha256=message.sha256, filename=message.filename)
    if isinstance(message, (UnsupportedMessage, UnknownMessage)):
        return MediaRef(kind=(message.type or "unknown")[:16])
    return None


def _unreachable(error: BaseException) -> bool:
    """Whether a failure to write is the database's (down, locked, disconnected: keep the
    journal and retry) rather than the record's (quarantine it)."""
    return isinstance(error, (OSError, sql_errors.OperationalError, sql_errors.InterfaceError,
                              sql_errors.TimeoutError, sql_errors.DisconnectionError))


def _error_kind(error: BaseException) -> str:
    """The class of what went wrong: a value SQLAlchemy could not bind (a text sealed on its
    way in that cannot be encoded) is named by its cause, not by the wrapper."""
    cause = error.orig if isinstance(error, sql_errors.StatementError) and error.orig is not None else error
    return type(cause).__name__


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


def _message_record(item: InboundTurn, address_encrypted: Optional[str]) -> Dict[str, Any]:
    """A journal line: the turn's wire format, plus the contact's encrypted address (its words
    are then sealed: ``seal_record``)."""
    return {"type": "message", **item.to_json(), "address_encrypted": address_encrypted}


def _status_record(status: StatusUpdate) -> Dict[str, Any]:
    first_error = status.errors[0] if status.errors else None
    return {"type": "status", "wamid": status.message_id, "status": status.status,
            "at": dt.datetime.fromtimestamp(status.timestamp, dt.timezone.utc).isoformat(),
            "code": first_error.code if first_error else None,
            "detail": (first_error.details or first_error.message) if first_error else None,
            # Names the wa_outbound row: proof that Meta took it (gateway/outbox.py).
            "callback": (status.biz_opaque_callback_data or "")[:64] or None}


