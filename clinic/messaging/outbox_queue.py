"""The outbox's durable queue: how every sender that is not a patient's turn sends (issue 14).

Why: a WhatsApp number has one throughput limit (80 messages/s by default, inbound read
receipts included; reference §7). When the staff inbox, reminders and notifications (Rasa's
proactive messages), surveys and broadcasts each called the Graph API with a rate limiter of
their own, the number's limit held only for each of them alone: a broadcast at 60/s plus a
busy hour of live conversations went over it, and Meta answered 130429. Now they all put
their messages into ``wa_outbound`` (state ``queued``, with a ``priority``), and the one
process that owns the outbox (the gateway, or Rasa's channel in the Rasa-only development
mode) drains the queue through its one Graph client and its one limiter
(gateway/outbox.py, ``drain_queue``). Only that process calls the Graph API.

Priorities (lower leaves first): a patient's turn is answered before anything queued (its
replies, emergency guidance included, go out at once through the outbox's per-conversation
drain); then staff replies (a patient is waiting), then reminders and notifications, then
surveys, then broadcasts.

Results: a caller that needs the outcome (the inbox shows staff whether a reply went out;
broadcasts and surveys count sent and failed, and keep the wamid) waits for the row to
reach a final state and reads the outcome back from the table (``OutboxQueue.send``). A
caller that gives up waiting takes a still-queued message back (``withdraw``), so it never
goes out after the caller has reported it as not sent.

What is recorded is checked here, before it is queued: the PHI guard (clinic/phi_guard.py)
refuses a message carrying health information, and the record never holds the patient's
address (``RECORDED_RECIPIENT``: the sender fills "to" only in the request itself).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import re
import time
from typing import Callable, Optional, Union

from clinic import phi_guard
from clinic.messaging.store import (
    DEAD,
    DISMISSED,
    LANGUAGE_FALLBACK,
    QUEUED,
    REFUSED,
    SENDING,
    SENT,
    OutboundItem,
    WhatsAppStore,
)
from whatsapp.metrics import Metrics
from whatsapp.outbound import MessageShapeError, OutboundMessage, Template

logger = logging.getLogger(__name__)

# Lower leaves first. A patient's turn (PRIORITY_TURN) is not queued here: its replies are
# recorded and sent at once, in order, by the outbox.
PRIORITY_TURN = 0
PRIORITY_STAFF_REPLY = 10
PRIORITY_REMINDER = 20  # reminders and notifications (Rasa's proactive messages)
PRIORITY_SURVEY = 30
PRIORITY_BROADCAST = 40
# Their names in the metrics (whatsapp_outbox_queue_depth{priority=...}).
PRIORITY_NAMES = {PRIORITY_TURN: "turn", PRIORITY_STAFF_REPLY: "staff_reply", PRIORITY_REMINDER: "reminder",
                  PRIORITY_SURVEY: "survey", PRIORITY_BROADCAST: "broadcast"}

BLOCKED_PHI = "blocked_phi"
RECORDED_RECIPIENT = "pseudonymous-conversation"
# The refusal of a message its caller took back before anyone sent it.
WITHDRAWN = "withdrawn"
# The outcome of a message still being sent when its caller stopped waiting (the outbox's
# process died in the Graph call and has not come back): it may have reached Meta. The row
# keeps its fate (a restarted outbox resolves it); the caller must not send it again.
UNKNOWN = "unknown"
FINAL_STATES = (SENT, REFUSED, DEAD, DISMISSED)


@dataclasses.dataclass(frozen=True)
class SendOutcome:
    state: str  # sent | refused | dead (| queued: only queued, nobody waited | unknown)
    wamid: Optional[str] = None
    code: Optional[int] = None
    detail: str = ""
    # A template's language as finally sent, and the language Meta refused (132001) before
    # the caller's fallback version went out instead (None: no fallback happened).
    language: Optional[str] = None
    fallback_from: Optional[str] = None
    # Meta may have received a request we got no answer to (gateway/sender.py).
    ambiguous: bool = False


def prepare(message: OutboundMessage, kind: str) -> tuple[str, dict, Optional[str]]:
    """(kind, the payload to record, a refusal or None). The record never holds the
    address: "to" is filled only in the request itself. PHI guard (clinic/phi_guard.py):
    bot, notification and staff messages all pass here; one carrying health information is
    refused, and its record keeps the rules only."""
    findings = phi_guard.check_payload(message.to_payload(RECORDED_RECIPIENT))
    if findings:
        rules = phi_guard.rules_of(findings)
        return kind, {"withheld": BLOCKED_PHI, "rules": rules}, f"{BLOCKED_PHI}: {','.join(rules)}"
    return kind, message.to_payload(RECORDED_RECIPIENT), None


# Where the sender notes a language fallback: alone when the fallback went out, after the
# error ("<error>; after language_fallback: …", gateway/sender.py) when it failed too.
_FALLBACK_NOTE = re.compile(rf"(?:^|; after ){LANGUAGE_FALLBACK}: (\S+) -> (\S+)")


def template_in_language(message: Template, language: str) -> Optional[Template]:
    """``message`` (same template and parameters) in ``language``: a caller's fallback given
    only as a language code. None, with a warning, when it is not a language code."""
    try:
        return dataclasses.replace(message, language=language)
    except MessageShapeError:
        logger.warning("Not a template language code for the fallback: %r", language[:16])
        return None


def outcome_of(item: OutboundItem) -> Optional[SendOutcome]:
    """The outcome a direct send would have returned, read back from the row; None while it
    is still queued or being sent."""
    if item.state not in FINAL_STATES:
        return None
    note = _FALLBACK_NOTE.search(item.error_detail or "")
    language = template_language(item.payload) if item.payload else None
    fallback_from = None
    if note:
        fallback_from, language = note.group(1), note.group(2)
    if item.state == SENT:
        return SendOutcome(SENT, wamid=item.wamid, language=language, fallback_from=fallback_from,
                           ambiguous=item.ambiguous, detail=(item.error_detail or "") if note else "")
    if item.state == REFUSED:
        # Recorded as "<reason>: <detail>" (gateway/sender.py); the outcome carries the reason.
        return SendOutcome(REFUSED, detail=(item.error_detail or "").split(": ", 1)[0])
    return SendOutcome(DEAD, code=item.error_code, detail=item.error_detail or "", language=language,
                       fallback_from=fallback_from, ambiguous=item.ambiguous)


def template_language(payload: Optional[dict]) -> Optional[str]:
    template = (payload or {}).get("template") if (payload or {}).get("type") == "template" else None
    language = template.get("language") if isinstance(template, dict) else None
    code = language.get("code") if isinstance(language, dict) else None
    return code if isinstance(code, str) else None


class OutboxQueue:
    """Puts messages into the outbox's queue, with this caller's ``priority``.

    ``send`` has the gateway sender's signature and returns the same outcome, read back from
    the table once the outbox has sent (or refused, or dead-lettered) the message, so the
    inbox, the broadcast runner and the survey sender use it unchanged. ``enqueue`` only
    queues (Rasa's proactive messages: nothing waits for them; they leave in order).
    ``on_enqueued``: wakes a drain in this process at once (the Rasa-only mode); another
    process's drain finds the row on its next look (WHATSAPP_OUTBOX_POLL_SECONDS).
    """

    def __init__(self, store: WhatsAppStore, priority: int, *, metrics: Optional[Metrics] = None,
                 on_enqueued: Optional[Callable[[], None]] = None, poll_seconds: float = 0.1,
                 wait_seconds: float = 300.0, wait: bool = True, settle_seconds: float = 120.0) -> None:
        self._store = store
        self.priority = priority
        self.metrics = metrics or Metrics()
        self.on_enqueued = on_enqueued
        self.poll_seconds = poll_seconds
        self.wait_seconds = wait_seconds
        self.wait = wait
        self.settle_seconds = settle_seconds

    async def enqueue(self, conversation_id: str, message: OutboundMessage, kind: str,
                      fallback: Union[Template, str, None] = None, priority: Optional[int] = None) -> int:
        """Queue one message (the row's id). ``fallback`` (templates only): the version to send
        once instead when Meta answers 132001 for ``message``'s language (a Template, or only
        a language code for the same template and parameters)."""
        kind, record, refused = prepare(message, kind)
        alternative = None
        if not refused and isinstance(message, Template) and fallback:
            if isinstance(fallback, str):
                fallback = template_in_language(message, fallback)
            if isinstance(fallback, Template) and fallback.language != message.language:
                alternative = fallback.to_payload(RECORDED_RECIPIENT)
        outbound_id = await asyncio.to_thread(
            self._store.enqueue, conversation_id, kind, record,
            self.priority if priority is None else priority, alternative, refused)
        if refused:
            self.metrics.increment(f"outbound_refused_{BLOCKED_PHI}")
            logger.warning("WhatsApp message not sent: %s", BLOCKED_PHI)
        else:
            self.metrics.increment("outbound_queued")
            if self.on_enqueued is not None:
                try:
                    self.on_enqueued()
                except Exception:  # noqa: BLE001 - the drain's next look finds it anyway
                    logger.debug("Could not wake the outbox", exc_info=True)
        return outbound_id

    async def send(self, conversation_id: str, message: OutboundMessage, kind: str,
                   fallback: Union[Template, str, None] = None) -> SendOutcome:
        """Queue one message and wait for its outcome (as ``gateway.sender.Sender.send``);
        without ``wait``, only queue it (the outcome's state is ``queued``, or ``refused``)."""
        outbound_id = await self.enqueue(conversation_id, message, kind, fallback)
        if not self.wait:
            item = await asyncio.to_thread(self._store.outbound_item, outbound_id)
            return (outcome_of(item) if item is not None else None) or SendOutcome(QUEUED)
        return await self.outcome(outbound_id)

    async def outcome(self, outbound_id: int, wait_seconds: Optional[float] = None) -> SendOutcome:
        """Wait for the row's outcome. After ``wait_seconds`` a row still queued is taken back
        (refused, ``withdrawn``: it will never go out); one being sent is waited for."""
        deadline = time.monotonic() + (self.wait_seconds if wait_seconds is None else wait_seconds)
        # Once a row is being sent its outcome comes within a Graph call's time; if it does not
        # (the sending process died mid-call), waiting stops after ``settle_seconds`` more.
        last_deadline: Optional[float] = None
        while True:
            item = await asyncio.to_thread(self._store.outbound_item, outbound_id)
            if item is None:
                return SendOutcome(DEAD, detail="the queued message disappeared")
            outcome = outcome_of(item)
            if outcome is not None:
                return outcome
            if time.monotonic() >= deadline:
                if await asyncio.to_thread(self._store.withdraw, outbound_id,
                                           f"{WITHDRAWN}: not sent within its caller's wait (is the "
                                           "WhatsApp gateway running?)"):
                    self.metrics.increment("outbound_withdrawn")
                    logger.warning("A queued WhatsApp message was not sent in time and was taken back "
                                   "(outbound id %s)", outbound_id)
                    return SendOutcome(REFUSED, detail=WITHDRAWN)
                if last_deadline is None:
                    last_deadline = time.monotonic() + self.settle_seconds
                elif time.monotonic() >= last_deadline:
                    self.metrics.increment("outbound_outcome_unknown")
                    logger.warning("A WhatsApp message was still being sent when its caller stopped waiting "
                                   "(outbound id %s); its outcome stays in wa_outbound", outbound_id)
                    return SendOutcome(UNKNOWN, ambiguous=True,
                                       detail="still being sent when its caller stopped waiting")
                deadline = min(time.monotonic() + 30, last_deadline)  # being sent now: soon known
            await asyncio.sleep(self.poll_seconds)

    # ── crash recovery of a caller (the broadcast runner, the survey sender) ──────────────
    def withdraw(self, outbound_id: int, detail: str) -> bool:
        """Take a queued message back (never sent); False when it is being sent, or was."""
        return self._store.withdraw(outbound_id, f"{WITHDRAWN}: {detail}")

    def settled(self, read: Callable[[], list], seconds: Optional[float] = None) -> list:
        """The records of one message a crashed caller had queued (``read()``: its
        ``wa_outbound`` rows, in order), once the outbox is done with them. Synchronous (a
        recovery runs in a worker thread). One still queued is taken back (withdrawn: the
        caller sends it again itself, exactly once) and left out; one the outbox is sending
        is waited for, up to ``settle_seconds``: what is still ``sending`` then (the
        outbox's process died in the Graph call) stays for the caller to treat as unknown.
        ``seconds``: a shorter wait than ``settle_seconds`` (a caller working under a lease)."""
        deadline = time.monotonic() + (self.settle_seconds if seconds is None else seconds)
        while True:
            records = [r for r in read() if not is_withdrawn(r)]
            queued = [r for r in records if r.state == QUEUED]
            taken = [r for r in queued if self.withdraw(r.id, "its caller stopped before it was sent")]
            if taken:
                continue
            if not any(r.state in (QUEUED, SENDING) for r in records) or time.monotonic() >= deadline:
                return records
            time.sleep(min(self.poll_seconds * 2, 0.5))


def is_withdrawn(record) -> bool:
    """A ``wa_outbound`` row (or item) its caller took back before anyone sent it."""
    return record.state == REFUSED and (record.error_detail or "").startswith(WITHDRAWN)
