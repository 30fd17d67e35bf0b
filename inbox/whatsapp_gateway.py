"""Staff replies to WhatsApp patients: the inbox's ``ReplyGateway`` (and ``TemplateGateway``).

Design: the inbox puts each reply into the outbox's durable queue (``wa_outbound``,
priority ``PRIORITY_STAFF_REPLY``: a patient is waiting, so before reminders and broadcasts;
clinic/messaging/outbox_queue.py) in the same database, and the process that owns the
outbox (the WhatsApp gateway, or Rasa's channel in the Rasa-only development mode) sends it
with the number's one rate limit: the 24-hour window check, dead letters, retries with
backoff, pacing (gateway/sender.py). The inbox waits for the row's outcome (sent / refused
outside the window / failed) to show staff; a reply nobody sent within its wait is taken
back (never sent later behind staff's back) and shown as failed. Why not an endpoint on the
Rasa side: a reply then still reaches the patient while Rasa restarts, and no new
unauthenticated route is added to the webhook server.

After a reply is sent it is appended to the Rasa tracker as a ``bot`` event carrying the
inbox message id (``clinic.inbox.rasa_http.staff_reply_event``), so the transcript — and the
assistant once resumed — sees it, once. If Rasa can't be reached the reply is still
delivered; the ticket page then shows it from the inbox's own record.

Waiting runs on one background event loop; the web app's worker threads wait for each
reply's outcome.
"""

from __future__ import annotations

import logging
from typing import List

from sqlalchemy.orm import sessionmaker

from clinic.inbox.model import Delivery
from clinic.inbox.ports import OUTSIDE_WINDOW_DETAIL, ReplyResult
from clinic.inbox.rasa_http import RasaHttp, staff_reply_event
from clinic.inbox.templates import ApprovedTemplate
from clinic.messaging.outbox_queue import PRIORITY_STAFF_REPLY, UNKNOWN, WITHDRAWN, OutboxQueue
from clinic.messaging.store import WhatsAppStore
from clinic.privacy import ContactCipher
from gateway.sender import OUTSIDE_WINDOW, UNKNOWN_CONTACT, SendOutcome
from gateway.settings import WhatsAppSettings
from gateway.worker import WorkerLoop
from whatsapp.metrics import Metrics
from whatsapp.outbound import MessageShapeError, Template, Text

logger = logging.getLogger(__name__)
SEND_TIMEOUT_SECONDS = 120  # retries with backoff included
# How long a reply may wait in the queue before it is taken back (within SEND_TIMEOUT_SECONDS).
QUEUE_WAIT_SECONDS = 60


class WhatsAppReplyGateway:
    def __init__(self, settings: WhatsAppSettings, sessions: sessionmaker, cipher: ContactCipher,
                 rasa: RasaHttp) -> None:
        self._settings = settings
        self._store = WhatsAppStore(sessions)
        self._cipher = cipher
        self._rasa = rasa
        self.metrics = Metrics()
        self._loop = WorkerLoop("inbox-whatsapp-sender")
        self._queue = OutboxQueue(self._store, PRIORITY_STAFF_REPLY, metrics=self.metrics,
                                  wait_seconds=QUEUE_WAIT_SECONDS)

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
        return await self._queue.send(conversation_id, message, kind)


def outcome_to_result(outcome: SendOutcome) -> ReplyResult:
    if outcome.state == "sent":
        return ReplyResult(Delivery.SENT)
    if outcome.state == "refused" and outcome.detail == OUTSIDE_WINDOW:
        return ReplyResult(Delivery.REFUSED, OUTSIDE_WINDOW_DETAIL)
    if outcome.state == "refused" and outcome.detail == UNKNOWN_CONTACT:
        return ReplyResult(Delivery.REFUSED, "no WhatsApp address for this conversation (not a WhatsApp chat)")
    if outcome.state == "refused" and outcome.detail == WITHDRAWN:
        return ReplyResult(Delivery.FAILED, "WhatsApp sending is not running (not sent); try again")
    if outcome.state == UNKNOWN:
        return ReplyResult(Delivery.FAILED, "WhatsApp sending stopped while this reply was being sent: it may "
                           "have reached the patient; check with them before sending it again")
    return ReplyResult(Delivery.FAILED, f"WhatsApp did not accept it ({outcome.detail or outcome.state})"[:300])


def build_gateway(environ, sessions: sessionmaker, cipher: ContactCipher, rasa: RasaHttp) -> WhatsAppReplyGateway:
    return WhatsAppReplyGateway(WhatsAppSettings.load(environ=environ), sessions, cipher, rasa)
