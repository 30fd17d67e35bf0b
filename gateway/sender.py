"""Sends the clinic's messages to one patient: window check, durable record, Graph call.

Every message is recorded before it is sent; what Meta finally refuses (or what may not be
sent at all, like a free-form message outside the 24-hour customer-service window) stays
in ``wa_outbound`` as a dead letter with its error, and is counted, never silently dropped.
The patient's address is decrypted only here, just before the Graph call.

Bounded attempts, then a dead letter: the client retries transient errors a few times
(``DeliveryPolicy.attempts``); what still fails is ``dead``. A turn's reply (one the patient
is waiting for) then gets later rounds (``DeliveryPolicy.dead_letter_retry``, run by
gateway/outbox.py); when the last round fails, or at once for an error no retry can fix,
``on_final_failure`` is called so a person follows up (gateway/follow_up.py
opens a staff ticket). Messages nobody asked for (reminders, surveys, broadcasts, staff
replies) stay dead letters for their callers, who track them, and for staff.

Ambiguous sends (whatsapp/client.py, ``AmbiguousSend``): the row is flagged, counted, and
the status webhooks are watched for a status naming it (``biz_opaque_callback_data`` is the
row id, echoed by Meta). With one, it is ``sent``: no duplicate. Without one within
``DeliveryPolicy.unconfirmed_grace`` seconds Meta most likely never took it and it is sent
once more (still flagged): a patient without their answer is the worse harm, and a
duplicate now needs Meta to have taken it *and* sent no status for that long.

Language fallback: a template sent in a patient's language that Meta does not have in that
language (132001, "template name does not exist in the translation") is resent once in the
fallback version the caller passed (``send(..., fallback=...)``: the same template in the
clinic's default language). The caller decides what the fallback is (this package knows
nothing of the clinic's languages); the message's ``wa_outbound`` row records it (state
``sent``, ``error_code`` 132001, ``error_detail`` "language_fallback: ru -> en_US ...") and
the outcome tells the caller (``fallback_from``), so a fallback is never silent.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from typing import Any, Callable, Dict, Optional, Protocol, Sequence, Tuple, Union

from clinic import phi_guard
from clinic.clock import utcnow
from clinic.messaging import outbox_queue
from clinic.messaging.outbox_queue import (
    BLOCKED_PHI,
    RECORDED_RECIPIENT,
    SendOutcome,
    template_language,
)
from clinic.messaging.store import (
    DEAD,
    LANGUAGE_FALLBACK,
    SENDING,
    OutboundItem,
    WhatsAppStore,
    callback_data,
)
from clinic.privacy import ContactCipher
from gateway.settings import DeliveryPolicy
from whatsapp.client import AmbiguousSend, SendResult
from whatsapp.errors import TEMPLATE_MISSING, GraphError
from whatsapp.limits import CUSTOMER_SERVICE_WINDOW_SECONDS
from whatsapp.metrics import Metrics
from whatsapp.outbound import MessageShapeError, OutboundMessage, Recorded, Template

logger = logging.getLogger(__name__)

__all__ = ["AMBIGUOUS", "BLOCKED_PHI", "DeliveryPolicy", "OUTSIDE_WINDOW", "RECORDED_RECIPIENT", "SendOutcome",
           "Sender", "UNKNOWN_CONTACT"]

OUTSIDE_WINDOW = "outside_window"
UNKNOWN_CONTACT = "unknown_contact"
AMBIGUOUS = "ambiguous"


# Called with a turn's reply that finally failed; returns the follow-up ticket's id.
FinalFailure = Callable[[OutboundItem], Optional[int]]


class GraphSending(Protocol):
    """What the sender needs of whatsapp.client.GraphClient (tests pass a stand-in)."""

    async def send(self, to: str, message: OutboundMessage, context_message_id: Optional[str] = None,
                   biz_opaque_callback_data: Optional[str] = None) -> SendResult: ...

    async def mark_read(self, message_id: str, typing: bool = False) -> bool: ...


class Sender:
    def __init__(
        self,
        client: GraphSending,
        store: WhatsAppStore,
        cipher: ContactCipher,
        metrics: Metrics,
        clock: Callable[[], dt.datetime] = utcnow,
        policy: Optional[DeliveryPolicy] = None,
        on_final_failure: Optional[FinalFailure] = None,
        proof_poll_seconds: float = 0.25,
    ) -> None:
        self._client = client
        self._store = store
        self._cipher = cipher
        self._metrics = metrics
        self._clock = clock
        self.policy = policy or DeliveryPolicy()
        self.on_final_failure = on_final_failure
        self._proof_poll = proof_poll_seconds

    # ── one message, now (reminders, surveys, broadcasts, staff replies) ──────────────────
    async def send(self, conversation_id: str, message: OutboundMessage, kind: str,
                   fallback: Union[Template, str, None] = None) -> SendOutcome:
        """Record, check and send one message. ``fallback`` (templates only): the version to
        send once instead when Meta answers 132001 for ``message``'s language: a
        :class:`Template` (its parameters written for that language) or only a language code
        (the same template and parameters in that language)."""
        kind, record, refused = self.prepare(message, kind)
        if refused:
            outbound_id = await asyncio.to_thread(self._store.queue_outbound, conversation_id, kind, record)
            return await self._refuse(outbound_id, BLOCKED_PHI, refused.split(": ", 1)[-1])
        outbound_id = await asyncio.to_thread(self._store.queue_outbound, conversation_id, kind, record)
        item = await asyncio.to_thread(self._store.outbound_item, outbound_id)
        if item is None:  # only if the row vanished between two statements (a purge)
            return SendOutcome("refused", detail="the recorded message is gone")
        return await self.deliver(item, message, fallback)

    def prepare(self, message: OutboundMessage, kind: str) -> Tuple[str, Dict[str, Any], Optional[str]]:
        """(kind, the payload to record, a refusal or None): the PHI guard, and a record
        without the address (clinic/messaging/outbox_queue.py, ``prepare``)."""
        return outbox_queue.prepare(message, kind)

    # ── a turn's replies: recorded first, sent in order (gateway/outbox.py) ──────────────
    async def record_turn(self, conversation_id: str, turn_wamid: str,
                          messages: Sequence[tuple[OutboundMessage, str]]) -> list[int]:
        prepared = [self.prepare(message, kind) for message, kind in messages]
        ids = await asyncio.to_thread(self._store.record_turn, conversation_id, turn_wamid, prepared)
        for (_kind, _record, refused) in prepared:
            if refused:
                self._metrics.increment(f"outbound_refused_{BLOCKED_PHI}")
                logger.warning("WhatsApp message not sent: %s", BLOCKED_PHI)
        return ids

    async def deliver(self, item: OutboundItem, message: Optional[OutboundMessage] = None,
                      fallback: Union[OutboundMessage, str, None] = None) -> SendOutcome:
        """Send a row already claimed (state ``sending``). ``message``: as built, else
        rebuilt from the record. An ``ambiguous`` row (interrupted earlier) is first looked
        for among the status webhooks: it may have gone out already."""
        if fallback is None and item.fallback:
            fallback = _recorded(item.fallback)  # queued with its default-language version
        if message is None:
            try:
                message = Recorded(item.payload or {})
            except MessageShapeError as error:
                await asyncio.to_thread(self._store.outbound_failed, item.id, DEAD, None,
                                        f"unreadable record: {error}", item.attempts)
                self._metrics.increment("outbound_dead_letters")
                return SendOutcome(DEAD, detail="unreadable record")
        contact = await asyncio.to_thread(self._store.contact, item.conversation_id)
        if contact is None:
            return await self._refuse(item.id, UNKNOWN_CONTACT, "no WhatsApp address for this conversation")
        address_encrypted, last_inbound = contact
        if not _is_template(message) and not self.window_open(last_inbound):
            # Meta would answer 131047; don't even try, and make the refusal visible.
            return await self._refuse(item.id, OUTSIDE_WINDOW, "24-hour window closed: templates only")
        address = self._cipher.decrypt(address_encrypted)
        attempts = item.attempts
        need_proof, resends_left = item.ambiguous, 1
        while True:
            if need_proof:
                proof = await self._await_proof(item.id)
                if proof is not None:
                    self._metrics.increment("outbound_ambiguous_confirmed")
                    return await self._sent(item.id, proof, attempts, message, ambiguous=True)
                if resends_left == 0:
                    return await self._dead(item, None, f"{AMBIGUOUS}: no answer and no status webhook",
                                            attempts, retryable=True, ambiguous=True)
                resends_left -= 1
                self._metrics.increment("outbound_ambiguous_resent")
                logger.warning("An unconfirmed WhatsApp send is sent again (outbound id %s)", item.id)
            try:
                result = await self._client.send(address, message, biz_opaque_callback_data=callback_data(item.id))
            except AmbiguousSend as error:
                attempts += getattr(error, "attempts", 1) or 1
                self._metrics.increment("outbound_ambiguous")
                logger.warning("WhatsApp send unanswered (%s): maybe delivered; outbound id %s is flagged",
                               error.message, item.id)
                await asyncio.to_thread(self._store.mark_ambiguous, item.id,
                                        f"{AMBIGUOUS}: {error.message}"[:300])
                need_proof = True
                continue
            except GraphError as error:
                alternative = _fallback_version(message, fallback, error)
                if alternative is not None:
                    return await self._send_fallback(item.id, address, message, alternative, error)
                attempts += getattr(error, "attempts", 1) or 1
                self._metrics.increment(f"outbound_error_{error.code}")
                return await self._dead(item, error.code, _describe(error), attempts,
                                        retryable=not error.permanent, ambiguous=need_proof)
            return await self._sent(item.id, result.wamid, attempts + result.attempts, message,
                                    ambiguous=need_proof, retried=result.attempts > 1)

    async def _await_proof(self, outbound_id: int) -> Optional[str]:
        """The wamid of a status webhook naming this row, waiting up to the grace period
        (the door records statuses as they arrive)."""
        deadline = asyncio.get_running_loop().time() + self.policy.unconfirmed_grace
        while True:
            proof = await asyncio.to_thread(self._store.proof_of_send, outbound_id)
            if proof is not None:
                return proof[0]
            if asyncio.get_running_loop().time() >= deadline:
                return None
            await asyncio.sleep(self._proof_poll)

    async def _sent(self, outbound_id: int, wamid: str, attempts: int, message: OutboundMessage, *, ambiguous: bool = False,
                    retried: bool = False) -> SendOutcome:
        try:
            await asyncio.to_thread(self._store.outbound_sent, outbound_id, wamid, attempts)
        except Exception:  # noqa: BLE001 - the patient has the message; only bookkeeping failed
            logger.exception("Sent, but could not record it (outbound id %s)", outbound_id)
            self._metrics.increment("outbound_record_failed")
        self._metrics.increment("outbound_sent")
        if retried:
            self._metrics.increment("outbound_retried")
        return SendOutcome("sent", wamid=wamid, language=_language(message), ambiguous=ambiguous)

    async def _dead(self, item: OutboundItem, code: Optional[int], detail: str, attempts: int, *,
                    retryable: bool, ambiguous: bool = False) -> SendOutcome:
        """A dead letter. A turn's reply gets later rounds while it has some left and the
        error is one a retry can fix; otherwise it has finally failed: a person follows up."""
        rounds = self.policy.dead_letter_retry
        retry_at = None
        if item.turn_wamid is not None and retryable and item.retries < len(rounds):
            retry_at = self._clock() + dt.timedelta(seconds=rounds[item.retries])
        await asyncio.to_thread(self._store.outbound_failed, item.id, DEAD, code, detail, attempts, retry_at)
        self._metrics.increment("outbound_dead_letters")
        logger.warning("WhatsApp send failed (code=%s, attempts=%s)%s", code, attempts,
                       "; retried later" if retry_at else "")
        if retry_at is None and item.turn_wamid is not None:
            await self._finally_failed(item)
        return SendOutcome(DEAD, code=code, detail=detail, ambiguous=ambiguous)

    async def _finally_failed(self, item: OutboundItem) -> None:
        self._metrics.increment("outbound_final_failures")
        if self.on_final_failure is None or item.ticket_id is not None:
            return
        try:
            ticket_id = await asyncio.to_thread(self.on_final_failure, item)
        except Exception:  # noqa: BLE001 - the dead letter stays visible to staff anyway
            logger.exception("Could not open a follow-up ticket for a failed reply (outbound id %s)", item.id)
            self._metrics.increment("outbound_follow_up_failed")
            return
        if ticket_id is not None:
            await asyncio.to_thread(self._store.set_ticket, item.id, ticket_id)
            self._metrics.increment("outbound_follow_up_tickets")

    async def _send_fallback(self, outbound_id: int, address: str, message: OutboundMessage,
                             alternative: OutboundMessage,
                             refused: GraphError) -> SendOutcome:
        """Meta has no ``message.language`` version (132001): send ``alternative`` once, on
        the same ``wa_outbound`` row, which records the fallback before the call."""
        first_attempts = getattr(refused, "attempts", 1) or 1
        note = (f"{LANGUAGE_FALLBACK}: {_language(message)} -> {_language(alternative)} "
                f"(Meta {_describe(refused)})")
        findings = phi_guard.check_payload(alternative.to_payload(RECORDED_RECIPIENT))
        if findings:  # the caller's fallback must pass the guard like any message
            detail = f"{_describe(refused)}; fallback withheld: {BLOCKED_PHI}"
            await asyncio.to_thread(self._store.outbound_failed, outbound_id, DEAD, refused.code,
                                    detail, first_attempts)
            self._metrics.increment("outbound_dead_letters")
            self._metrics.increment(f"outbound_error_{refused.code}")
            return SendOutcome(DEAD, code=refused.code, detail=detail, language=_language(message))
        # Recorded before the call (the row stays "sending"): a crash during the second call
        # leaves a row that says which language was being tried.
        await asyncio.to_thread(self._store.outbound_failed, outbound_id, SENDING, refused.code,
                                note, first_attempts)
        self._metrics.increment("outbound_template_fallback")
        logger.warning("Template %s not approved in %s (132001): resent in %s",
                       _template_name(message), _language(message), _language(alternative))
        try:
            result = await self._client.send(address, alternative,
                                             biz_opaque_callback_data=callback_data(outbound_id))
        except GraphError as error:
            attempts = first_attempts + (getattr(error, "attempts", 1) or 1)
            detail = f"{_describe(error)}; after {note}"
            if isinstance(error, AmbiguousSend):
                self._metrics.increment("outbound_ambiguous")
                await asyncio.to_thread(self._store.mark_ambiguous, outbound_id, detail)
            await asyncio.to_thread(self._store.outbound_failed, outbound_id, DEAD, error.code,
                                    detail, attempts)
            self._metrics.increment("outbound_dead_letters")
            self._metrics.increment(f"outbound_error_{error.code}")
            logger.warning("WhatsApp send failed for good after the language fallback (code=%s)", error.code)
            return SendOutcome(DEAD, code=error.code, detail=detail, language=_language(alternative),
                               fallback_from=_language(message), ambiguous=isinstance(error, AmbiguousSend))
        try:
            # outbound_sent keeps error_code/error_detail: the sent row still says 132001
            # and which language went out instead.
            await asyncio.to_thread(self._store.outbound_sent, outbound_id, result.wamid,
                                    first_attempts + result.attempts)
        except Exception:  # noqa: BLE001 - the patient has the message; only bookkeeping failed
            logger.exception("Sent, but could not record it (outbound id %s)", outbound_id)
            self._metrics.increment("outbound_record_failed")
        self._metrics.increment("outbound_sent")
        return SendOutcome("sent", wamid=result.wamid, detail=note, language=_language(alternative),
                           fallback_from=_language(message))

    def window_open(self, last_inbound: Optional[dt.datetime]) -> bool:
        if last_inbound is None:
            return False
        age = (self._clock() - last_inbound).total_seconds()
        return age < CUSTOMER_SERVICE_WINDOW_SECONDS

    async def mark_read(self, wamid: str, typing: bool = True) -> None:
        """Blue ticks and "typing…" while the reply is computed; a failure never blocks the
        reply (the client logs it and returns False)."""
        if not await self._client.mark_read(wamid, typing=typing):
            self._metrics.increment("mark_read_failed")

    async def _refuse(self, outbound_id: int, reason: str, detail: str) -> SendOutcome:
        await asyncio.to_thread(self._store.outbound_failed, outbound_id, "refused", None, f"{reason}: {detail}", 0)
        self._metrics.increment(f"outbound_refused_{reason}")
        logger.warning("WhatsApp message not sent: %s", reason)
        return SendOutcome("refused", detail=reason)


def _is_template(message: object) -> bool:
    return isinstance(message, Template) or (isinstance(message, Recorded) and message.type == "template")


def _fallback_version(message: OutboundMessage, fallback: Union[OutboundMessage, str, None],
                      error: GraphError) -> Optional[OutboundMessage]:
    """The version to resend when Meta refused ``message`` for its language, if any (a
    Template, or a template as the outbox's queue recorded it)."""
    if error.code != TEMPLATE_MISSING or not _is_template(message) or not fallback:
        return None
    if isinstance(fallback, str):
        if not isinstance(message, Template):
            return None
        fallback = outbox_queue.template_in_language(message, fallback)
    if fallback is None or not _is_template(fallback) or _language(fallback) == _language(message):
        return None  # the same language again would be refused the same way
    return fallback


def _recorded(payload: Dict[str, Any]) -> Optional[Recorded]:
    try:
        return Recorded(payload)
    except MessageShapeError:
        return None


def _language(message: object) -> Optional[str]:
    if isinstance(message, Template):
        return message.language
    if isinstance(message, Recorded):
        return template_language(message.payload)
    return None


def _template_name(message: object) -> Optional[str]:
    if isinstance(message, Template):
        return message.name
    template = message.payload.get("template") if isinstance(message, Recorded) else None
    return template.get("name") if isinstance(template, dict) else None


def _describe(error: GraphError) -> str:
    parts = [str(error.code) if error.code is not None else f"http {error.http_status}"]
    if getattr(error, "details", None):
        parts.append(str(error.details))
    elif getattr(error, "message", None):
        parts.append(str(error.message))
    return ": ".join(parts)
