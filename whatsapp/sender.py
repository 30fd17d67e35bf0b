"""Sends the clinic's messages to one patient: window check, durable record, Graph call.

Every message is recorded before it is sent; what Meta finally refuses (or what may not be
sent at all, like a free-form message outside the 24-hour customer-service window) stays
in ``wa_outbound`` as a dead letter with its error, and is counted, never silently dropped.
The patient's address is decrypted only here, just before the Graph call.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import logging
from typing import Callable, Optional

from clinic import phi_guard
from clinic.privacy import ContactCipher
from whatsapp.errors import GraphError
from whatsapp.limits import CUSTOMER_SERVICE_WINDOW_SECONDS
from whatsapp.metrics import Metrics
from whatsapp.outbound import Template
from whatsapp.store import WhatsAppStore, utcnow

logger = logging.getLogger(__name__)

OUTSIDE_WINDOW = "outside_window"
BLOCKED_PHI = "blocked_phi"
UNKNOWN_CONTACT = "unknown_contact"
RECORDED_RECIPIENT = "pseudonymous-conversation"


@dataclasses.dataclass(frozen=True)
class SendOutcome:
    state: str  # sent | refused | dead
    wamid: Optional[str] = None
    code: Optional[int] = None
    detail: str = ""


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

    async def send(self, conversation_id: str, message, kind: str) -> SendOutcome:
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
        try:
            result = await self._client.send(self._cipher.decrypt(address_encrypted), message)
        except GraphError as error:
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
        return SendOutcome("sent", wamid=result.wamid)

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


def _describe(error: GraphError) -> str:
    parts = [str(error.code) if error.code is not None else f"http {error.http_status}"]
    if getattr(error, "details", None):
        parts.append(str(error.details))
    elif getattr(error, "message", None):
        parts.append(str(error.message))
    return ": ".join(parts)
