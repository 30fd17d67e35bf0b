"""Staff replies to WhatsApp patients: the inbox's ``ReplyGateway`` (and ``TemplateGateway``).

Design: the inbox process sends itself, with the connector's own durable sender
(``gateway.sender.Sender``: the 24-hour window check, the ``wa_outbound`` record, dead
letters, retries with backoff, pacing) built from the same environment (WhatsApp settings,
``CLINIC_ENCRYPTION_KEY`` for the patient's encrypted address) and the same database
(``wa_contacts`` says where and when the patient last wrote). Why not an endpoint on the
Rasa side: a reply then still reaches the patient while Rasa restarts, the inbox gets the
exact outcome back (sent / refused outside the window / failed) to show staff, and no new
unauthenticated route is added to the webhook server. The one thing shared with the channel
process is WhatsApp's throughput limit: each process paces itself (staff replies are human
paced, far below it).

After a reply is sent it is appended to the Rasa tracker as a ``bot`` event carrying the
inbox message id (``clinic.inbox.rasa_http.staff_reply_event``), so the transcript — and the
assistant once resumed — sees it, once. If Rasa can't be reached the reply is still
delivered; the ticket page then shows it from the inbox's own record.

Sending runs on one background event loop (the sender and its HTTP client are async); the
web app's worker threads wait for each send's outcome.
"""

from __future__ import annotations

import logging
from typing import List, Optional

from sqlalchemy.orm import sessionmaker

from clinic.inbox.model import Delivery
from clinic.inbox.ports import OUTSIDE_WINDOW_DETAIL, ReplyResult
from clinic.inbox.rasa_http import RasaHttp, staff_reply_event
from clinic.inbox.templates import ApprovedTemplate
from clinic.messaging.store import WhatsAppStore
from clinic.privacy import ContactCipher
from gateway.sender import OUTSIDE_WINDOW, UNKNOWN_CONTACT, DeliveryPolicy, Sender, SendOutcome
from gateway.settings import WhatsAppSettings
from gateway.worker import WorkerLoop
from whatsapp.client import GraphClient
from whatsapp.metrics import Metrics
from whatsapp.outbound import MessageShapeError, Template, Text

logger = logging.getLogger(__name__)
SEND_TIMEOUT_SECONDS = 120  # retries with backoff included


class WhatsAppReplyGateway:
    def __init__(self, settings: WhatsAppSettings, sessions: sessionmaker, cipher: ContactCipher,
                 rasa: RasaHttp) -> None:
        self._settings = settings
        self._store = WhatsAppStore(sessions)
        self._cipher = cipher
        self._rasa = rasa
        self.metrics = Metrics()
        self._loop = WorkerLoop("inbox-whatsapp-sender")
        self._sender: Optional[Sender] = None

    # ── ports ────────────────────────────────────────────────────────────────────────
    def send(self, conversation_id: str, text: str, inbox_message_id: int) -> ReplyResult:
        try:
            message = Text(text)
        except MessageShapeError as exc:
            return ReplyResult(Delivery.REFUSED, f"WhatsApp would refuse this text: {exc}"[:300])
        return self._deliver(conversation_id, message, "staff_reply", text, inbox_message_id)

    def send_template(self, conversation_id: str, template: ApprovedTemplate, values: List[str],
                      rendered: str, inbox_message_id: int) -> ReplyResult:
        try:
            message = Template(name=template.name, language=template.language, body_params=tuple(values),
                               quick_reply_payloads=template.quick_reply_payloads)
        except MessageShapeError as exc:
            return ReplyResult(Delivery.REFUSED, f"WhatsApp would refuse this template: {exc}"[:300])
        return self._deliver(conversation_id, message, "staff_template", rendered, inbox_message_id)

    def close(self) -> None:
        if self._sender is not None and self._loop.running:
            self._loop.submit(self._client.close()).result(timeout=10)
        self._loop.stop()

    # ── internals ────────────────────────────────────────────────────────────────────
    def _deliver(self, conversation_id: str, message, kind: str, transcript_text: str,
                 inbox_message_id: int) -> ReplyResult:
        self._loop.start()
        future = self._loop.submit(self._send(conversation_id, message, kind))
        try:
            outcome: SendOutcome = future.result(timeout=SEND_TIMEOUT_SECONDS)
        except Exception as exc:  # noqa: BLE001 - timeout or a bug: staff may retry, text kept
            logger.exception("Staff reply could not be sent (message %s)", inbox_message_id)
            return ReplyResult(Delivery.FAILED, f"could not send ({exc.__class__.__name__}); try again")
        result = outcome_to_result(outcome)
        if result.ok:
            try:
                self._rasa.append(conversation_id, [staff_reply_event(transcript_text, inbox_message_id)])
            except Exception as exc:  # noqa: BLE001 - delivered; only the tracker copy is missing
                logger.warning("Reply %s delivered but not added to the conversation: %s", inbox_message_id, exc)
        return result

    async def _send(self, conversation_id: str, message, kind: str) -> SendOutcome:
        if self._sender is None:  # created on the loop that uses its pooled HTTP session
            policy = DeliveryPolicy.from_environment()
            self._client = GraphClient(
                base_url=self._settings.api_base_url, api_version=self._settings.api_version,
                phone_number_id=self._settings.phone_number_id, access_token=self._settings.access_token,
                rate_per_second=self._settings.send_rate_per_second, max_attempts=policy.attempts,
                timeout=policy.timeout)
            self._sender = Sender(self._client, self._store, self._cipher, self.metrics, policy=policy)
        return await self._sender.send(conversation_id, message, kind)


def outcome_to_result(outcome: SendOutcome) -> ReplyResult:
    if outcome.state == "sent":
        return ReplyResult(Delivery.SENT)
    if outcome.state == "refused" and outcome.detail == OUTSIDE_WINDOW:
        return ReplyResult(Delivery.REFUSED, OUTSIDE_WINDOW_DETAIL)
    if outcome.state == "refused" and outcome.detail == UNKNOWN_CONTACT:
        return ReplyResult(Delivery.REFUSED, "no WhatsApp address for this conversation (not a WhatsApp chat)")
    return ReplyResult(Delivery.FAILED, f"WhatsApp did not accept it ({outcome.detail or outcome.state})"[:300])


def whatsapp_configured(environ) -> bool:
    return bool(environ.get("WHATSAPP_ACCESS_TOKEN") and environ.get("WHATSAPP_PHONE_NUMBER_ID"))


def build_gateway(environ, sessions: sessionmaker, cipher: ContactCipher, rasa: RasaHttp) -> WhatsAppReplyGateway:
    return WhatsAppReplyGateway(WhatsAppSettings.load(environ=environ), sessions, cipher, rasa)
