"""Sends the clinic's messages to one patient: window check, durable record, Graph call.

Every message is recorded before it is sent; what Meta finally refuses (or what may not be
sent at all, like a free-form message outside the 24-hour customer-service window) stays
in ``wa_outbound`` as a dead letter with its error, and is counted, never silently dropped.
The patient's address is decrypted only here, just before the Graph call.

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
import dataclasses
import datetime as dt
import logging
from typing import Callable, Optional, Union

from clinic import phi_guard
from clinic.privacy import ContactCipher
from whatsapp.errors import TEMPLATE_MISSING, GraphError
from whatsapp.limits import CUSTOMER_SERVICE_WINDOW_SECONDS
from whatsapp.metrics import Metrics
from whatsapp.outbound import MessageShapeError, Template
from whatsapp.store import WhatsAppStore, utcnow

logger = logging.getLogger(__name__)

OUTSIDE_WINDOW = "outside_window"
BLOCKED_PHI = "blocked_phi"
UNKNOWN_CONTACT = "unknown_contact"
RECORDED_RECIPIENT = "pseudonymous-conversation"
# The first words of a note that a message went out in another language than asked: in
# ``wa_outbound.error_detail`` here, and in the survey and broadcast rows of the callers.
LANGUAGE_FALLBACK = "language_fallback"


@dataclasses.dataclass(frozen=True)
class SendOutcome:
    state: str  # sent | refused | dead
    wamid: Optional[str] = None
    code: Optional[int] = None
    detail: str = ""
    # A template's language as finally sent, and the language Meta refused (132001) before
    # the caller's fallback version went out instead (None: no fallback happened).
    language: Optional[str] = None
    fallback_from: Optional[str] = None


class Sender:
    def __init__(
        self,
        client,  # whatsapp.client.GraphClient (duck-typed for tests)
        store: WhatsAppStore,
        cipher: ContactCipher,
        metrics: Metrics,
        clock: Callable[[], dt.datetime] = utcnow,
    ):
        self._client = client
        self._store = store
        self._cipher = cipher
        self._metrics = metrics
        self._clock = clock

    async def send(self, conversation_id: str, message, kind: str,
                   fallback: Union[Template, str, None] = None) -> SendOutcome:
        """Record, check and send one message. ``fallback`` (templates only): the version to
        send once instead when Meta answers 132001 for ``message``'s language: a
        :class:`Template` (its parameters written for that language) or only a language code
        (the same template and parameters in that language)."""
        # The record never holds the address: "to" is filled only in the request itself.
        record = message.to_payload(RECORDED_RECIPIENT)
        # PHI guard (clinic/phi_guard.py): bot, notification and staff messages all pass here;
        # one carrying health information is refused, and its record keeps the rules only.
        findings = phi_guard.check_payload(record)
        if findings:
            rules = phi_guard.rules_of(findings)
            outbound_id = await asyncio.to_thread(
                self._store.queue_outbound, conversation_id, kind, {"withheld": BLOCKED_PHI, "rules": rules})
            return await self._refuse(outbound_id, BLOCKED_PHI, ",".join(rules))
        contact = await asyncio.to_thread(self._store.contact, conversation_id)
        outbound_id = await asyncio.to_thread(self._store.queue_outbound, conversation_id, kind, record)
        if contact is None:
            return await self._refuse(outbound_id, UNKNOWN_CONTACT, "no WhatsApp address for this conversation")
        address_encrypted, last_inbound = contact
        if not isinstance(message, Template) and not self.window_open(last_inbound):
            # Meta would answer 131047; don't even try, and make the refusal visible.
            return await self._refuse(outbound_id, OUTSIDE_WINDOW, "24-hour window closed: templates only")
        address = self._cipher.decrypt(address_encrypted)
        try:
            result = await self._client.send(address, message)
        except GraphError as error:
            alternative = _fallback_version(message, fallback, error)
            if alternative is not None:
                return await self._send_fallback(outbound_id, address, message, alternative, error)
            attempts = getattr(error, "attempts", 1) or 1
            await asyncio.to_thread(
                self._store.outbound_failed, outbound_id, "dead", error.code, _describe(error), attempts
            )
            self._metrics.increment("outbound_dead_letters")
            self._metrics.increment(f"outbound_error_{error.code}")
            logger.warning("WhatsApp send failed for good (code=%s, attempts=%s)", error.code, attempts)
            return SendOutcome("dead", code=error.code, detail=_describe(error))
        try:
            await asyncio.to_thread(self._store.outbound_sent, outbound_id, result.wamid, result.attempts)
        except Exception:  # noqa: BLE001 - the patient has the message; only bookkeeping failed
            logger.exception("Sent, but could not record it (outbound id %s)", outbound_id)
            self._metrics.increment("outbound_record_failed")
        self._metrics.increment("outbound_sent")
        if result.attempts > 1:
            self._metrics.increment("outbound_retried")
        return SendOutcome("sent", wamid=result.wamid, language=_language(message))

    async def _send_fallback(self, outbound_id: int, address: str, message: Template,
                             alternative: Template, refused: GraphError) -> SendOutcome:
        """Meta has no ``message.language`` version (132001): send ``alternative`` once, on
        the same ``wa_outbound`` row, which records the fallback before the call."""
        first_attempts = getattr(refused, "attempts", 1) or 1
        note = (f"{LANGUAGE_FALLBACK}: {message.language} -> {alternative.language} "
                f"(Meta {_describe(refused)})")
        findings = phi_guard.check_payload(alternative.to_payload(RECORDED_RECIPIENT))
        if findings:  # the caller's fallback must pass the guard like any message
            detail = f"{_describe(refused)}; fallback withheld: {BLOCKED_PHI}"
            await asyncio.to_thread(self._store.outbound_failed, outbound_id, "dead", refused.code,
                                    detail, first_attempts)
            self._metrics.increment("outbound_dead_letters")
            self._metrics.increment(f"outbound_error_{refused.code}")
            return SendOutcome("dead", code=refused.code, detail=detail, language=message.language)
        # Recorded before the call (the row stays "sending"): a crash during the second call
        # leaves a row that says which language was being tried.
        await asyncio.to_thread(self._store.outbound_failed, outbound_id, "sending", refused.code,
                                note, first_attempts)
        self._metrics.increment("outbound_template_fallback")
        logger.warning("Template %s not approved in %s (132001): resent in %s",
                       message.name, message.language, alternative.language)
        try:
            result = await self._client.send(address, alternative)
        except GraphError as error:
            attempts = first_attempts + (getattr(error, "attempts", 1) or 1)
            detail = f"{_describe(error)}; after {note}"
            await asyncio.to_thread(self._store.outbound_failed, outbound_id, "dead", error.code,
                                    detail, attempts)
            self._metrics.increment("outbound_dead_letters")
            self._metrics.increment(f"outbound_error_{error.code}")
            logger.warning("WhatsApp send failed for good after the language fallback (code=%s)", error.code)
            return SendOutcome("dead", code=error.code, detail=detail, language=alternative.language,
                               fallback_from=message.language)
        try:
            # outbound_sent keeps error_code/error_detail: the sent row still says 132001
            # and which language went out instead.
            await asyncio.to_thread(self._store.outbound_sent, outbound_id, result.wamid,
                                    first_attempts + result.attempts)
        except Exception:  # noqa: BLE001 - the patient has the message; only bookkeeping failed
            logger.exception("Sent, but could not record it (outbound id %s)", outbound_id)
            self._metrics.increment("outbound_record_failed")
        self._metrics.increment("outbound_sent")
        return SendOutcome("sent", wamid=result.wamid, detail=note, language=alternative.language,
                           fallback_from=message.language)

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


def _fallback_version(message, fallback: Union[Template, str, None],
                      error: GraphError) -> Optional[Template]:
    """The version to resend when Meta refused ``message`` for its language, if any."""
    if error.code != TEMPLATE_MISSING or not isinstance(message, Template) or not fallback:
        return None
    if isinstance(fallback, str):
        try:
            fallback = dataclasses.replace(message, language=fallback)
        except MessageShapeError:
            logger.warning("Not a template language code for the fallback: %r", fallback[:16])
            return None
    if not isinstance(fallback, Template) or fallback.language == message.language:
        return None  # the same language again would be refused the same way
    return fallback


def _language(message) -> Optional[str]:
    return message.language if isinstance(message, Template) else None


def _describe(error: GraphError) -> str:
    parts = [str(error.code) if error.code is not None else f"http {error.http_status}"]
    if getattr(error, "details", None):
        parts.append(str(error.details))
    elif getattr(error, "message", None):
        parts.append(str(error.message))
    return ": ".join(parts)
