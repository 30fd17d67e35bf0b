"""Sends a campaign: throttled, paced per patient, exactly once across crashes (see below).

Why the WhatsApp sender directly and not Rasa
---------------------------------------------
A broadcast is one approved template to thousands of contacts, with nothing to decide per
conversation: going through Rasa (``trigger_intent`` per contact, like reminders) would cost
a tracker load, a policy run, an action call and a tracker write per message, put 10,000
synthetic turns into the tracker store, and share Rasa's event loop with live patients. The
runner is its own process that puts each message into the outbox's durable queue
(clinic/messaging/outbox_queue.py, the lowest priority: replies, staff replies, reminders and
surveys go first); the process that owns the outbox (the gateway) sends it with the
channel's own parts (the ``wa_outbound`` record, dead letters, 131056 per-patient hold-back,
the address decrypted only for the call, the number's one rate limit), and the runner reads
the outcome back from the table. (Tests may hand the runner a ``gateway.sender.Sender``
instead: the same ``send``.) A tap on the template's "Stop tips" button reaches Rasa like
any message.

Throughput and pacing
---------------------
* A token bucket (``rate`` messages/s, default 60, Meta's default ceiling is 80 per number)
  is taken *before* the message is queued: the campaign's own pace. The number's limit is
  held by the outbox, whatever else sends at once (WHATSAPP_SEND_RATE, issue 14), and
  everything else goes before the campaign's messages there.
* Per patient: a row whose conversation got *any* message (reply, reminder, other campaign)
  less than 6 s ago (Meta's pair rate: 1 per 6 s) is deferred until then, not sent; a 131056
  from Meta holds that patient back in the client (4^X s) as for every message.

Exactly once
------------
1. **Claim.** ``pending → sending`` by a conditional UPDATE per row (store.claim); a lease on
   the campaign keeps a second runner from sending it at the same time (and doubling the
   rate).
2. **Check, then send.** Just before the call: still opted in (else ``skipped``, so an
   opt-out mid-broadcast stops every message not yet handed over), pacing. The sender
   records the message in ``wa_outbound`` with ``kind = "bcast:<row id>"`` before the Graph
   call and the wamid after it.
3. **Mark.** ``sending → sent`` with the wamid (only by the claim holder).
4. **After a crash** (a row left ``sending``), the restarted runner looks the row up in
   ``wa_outbound`` by its kind (through the queue: once the outbox is done with it; a
   record still queued is taken back first, so the row is sent again exactly once): no record → the call never started → back to ``pending``;
   ``sent`` → marked sent with that wamid (crash between 3 and 4); ``dead``/``refused`` →
   failed; record still ``sending`` → the process died *during* the Graph call: Meta may or
   may not have the message. That row becomes ``unknown`` and is **not** resent (at most
   once: a duplicate health tip to a patient is worse than a missing one); at most
   ``concurrency`` rows can be in that window. ``python -m clinic.broadcasts requeue-unknown``
   resends them if the clinic prefers.

Languages
---------
Each recipient gets the template in their conversation's language (``clinic.language``)
when the campaign lists it (``languages:`` in its file), else in the campaign's default
``language``; such a fallback is recorded in the row's ``reason`` and counted in ``status``
(``language_fallbacks=N``). A listed version Meta answers 132001 for is resent once in the
default language by the sender (recorded the same way), and the rest of the run sends that
language's recipients the default version directly (no second refused call each).
Details: clinic/broadcasts/languages.py.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import logging
import os
import socket
import time
from typing import Callable, Dict, List, Optional

from clinic.broadcasts import tables as t
from clinic.broadcasts.languages import (
    LANGUAGE_FALLBACK,
    ContactLanguages,
    choose,
    fallback_note,
    with_note,
)
from clinic.broadcasts.store import BroadcastStore, Campaign, CampaignError, Recipient
from clinic.clock import utcnow
from clinic.messaging.outbox_queue import UNKNOWN, WITHDRAWN, OutboxQueue, is_withdrawn
from whatsapp.limits import PAIR_RATE_WINDOW_SECONDS, RateLimiter
from whatsapp.outbound import Template

logger = logging.getLogger(__name__)

__all__ = ["CAMPAIGN_ERRORS", "CampaignPaused", "RunFigures", "Runner", "Versions", "worker_is_dead"]

# Graph errors that concern the whole campaign, not one patient: pause, don't burn the list.
CAMPAIGN_ERRORS = {
    0, 10, 190, 368,  # auth, permission, policy block
    131031, 131042,  # account locked, payment issue
    131048,  # spam rate limit: quality problem, stop
    132000, 132001, 132005, 132007, 132012, 132015, 132016,  # template missing, paused, disabled, params
}


def worker_is_dead(worker: str) -> bool:
    """``host:pid`` names a process of this host that no longer exists."""
    host, _, pid = worker.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False  # another host (or a name that is not ours): only the lease expiry tells
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


@dataclasses.dataclass
class RunFigures:
    sent: int = 0
    skipped: int = 0
    failed: int = 0
    deferred: int = 0
    fallbacks: int = 0  # rows sent (or tried) in the default language for want of theirs
    reconciled: Dict[str, int] = dataclasses.field(default_factory=dict)
    started: float = dataclasses.field(default_factory=time.monotonic)
    first_send: Optional[float] = None
    last_send: Optional[float] = None

    def rate(self) -> float:
        if self.first_send is None or self.last_send is None or self.sent < 2:
            return 0.0
        return (self.sent - 1) / max(self.last_send - self.first_send, 1e-9)


class CampaignPaused(Exception):
    """A campaign-wide error: the campaign was paused (message says why)."""


@dataclasses.dataclass
class Versions:
    """The campaign's template in each of its languages, and those Meta refused (132001)
    during this run."""

    default: str
    templates: Dict[str, Template]
    refused: set = dataclasses.field(default_factory=set)
    wanted: Dict[int, Optional[str]] = dataclasses.field(default_factory=dict)  # row id -> contact's language

    @classmethod
    def of(cls, campaign: Campaign) -> "Versions":
        return cls(campaign.language, {
            code: Template(campaign.template, code, tuple(campaign.params_for(code)), tuple(campaign.quick_replies))
            for code in campaign.languages})


class Runner:
    def __init__(self, store: BroadcastStore, sender, worker: str, *, concurrency: int = 8,
                 rate: Optional[float] = None, pacing_seconds: float = PAIR_RATE_WINDOW_SECONDS,
                 lease_ttl: dt.timedelta = dt.timedelta(seconds=60),
                 clock: Callable[[], dt.datetime] = utcnow,
                 languages: Optional[ContactLanguages] = None) -> None:
        self.store = store
        # conversation ids -> the WhatsApp code of each contact's language (None: not known)
        self.languages = languages or ContactLanguages(store.sessions)
        self.sender = sender  # gateway.sender.Sender
        self.worker = worker
        self.concurrency = concurrency
        self.rate_override = rate
        self.pacing = dt.timedelta(seconds=pacing_seconds)
        self.lease_ttl = lease_ttl
        self.clock = clock
        self.figures = RunFigures()

    # ── recovery ───────────────────────────────────────────────────────────────────────
    def reconcile(self, campaign: Campaign) -> Dict[str, int]:
        """Settle rows a dead runner left ``sending`` (runs under the lease: nobody else is
        sending this campaign). See the module docstring, step 4."""
        settled: Dict[str, int] = {}
        rows = list(self.store.in_flight(campaign.id))
        self._let_the_outbox_settle(rows)
        for row in rows:
            records = [r for r in self.store.outbound_for(row.conversation_id, t.outbound_kind(row.id))
                       if not is_withdrawn(r)]
            sent = next((r for r in records if r.state == "sent"), None)
            if sent is not None:
                # The sender's own language fallback (132001) is on its record: keep it.
                fell_back = (sent.error_detail or "").startswith(LANGUAGE_FALLBACK)
                outcome = (t.SENT, sent.wamid,
                           with_note("recovered: sent before the crash", fell_back and sent.error_detail))
            elif any(r.state == "sending" for r in records):
                outcome = (t.UNKNOWN, None, "crashed during the Graph call: not resent (at most once)")
            elif records:
                last = records[-1]
                outcome = (t.FAILED, None, f"{last.state}: {last.error_detail or ''}")
            else:
                outcome = (t.PENDING, None, "recovered: never handed to the sender")
            if self.store.resolve(row.id, outcome[0], outcome[1], outcome[2], self.clock()):
                settled[outcome[0]] = settled.get(outcome[0], 0) + 1
        if settled:
            logger.warning("Campaign %s: rows left in flight by a previous run settled: %s", campaign.name, settled)
        return settled

    def _let_the_outbox_settle(self, rows: list) -> None:
        """Through the outbox's queue: the rows' ``wa_outbound`` records once the outbox is
        done with them — one still queued is taken back (the row is then sent again, once),
        one being sent is waited for (clinic/messaging/outbox_queue.py, ``settled``). One
        wait for every row at once, and at most half the lease: waiting row by row (up to
        the queue's settle time each) outlived the lease with a few rows caught in a dead
        outbox's Graph calls, and another runner could then take the campaign over."""
        if not rows or not isinstance(self.sender, OutboxQueue):
            return
        kinds = [(row.conversation_id, t.outbound_kind(row.id)) for row in rows]
        self.sender.settled(lambda: [r for conversation_id, kind in kinds
                                     for r in self.store.outbound_for(conversation_id, kind)],
                            seconds=min(self.sender.settle_seconds, self.lease_ttl.total_seconds() / 2))

    def _lease(self, campaign_id: int) -> bool:
        """Take the campaign's lease; a holder that was a process on this host and no longer
        exists (killed, crashed) is taken over at once instead of after the lease expires."""
        if self.store.take_lease(campaign_id, self.worker, self.lease_ttl, self.clock()):
            return True
        holder = self.store.lease_holder(campaign_id)
        if holder and worker_is_dead(holder):
            logger.warning("Campaign %s: taking over the lease of dead runner %s", campaign_id, holder)
            return self.store.take_over_lease(campaign_id, holder, self.worker, self.lease_ttl, self.clock())
        return False

    # ── run ────────────────────────────────────────────────────────────────────────────
    async def run(self, name: str, stop: Optional[asyncio.Event] = None,
                  on_progress: Optional[Callable[[str], None]] = None, progress_every: float = 5.0) -> str:
        """Send the campaign until every row is final (returns ``done``), ``stop`` is set
        (``running``: resume later) or a campaign-wide error pauses it (``paused``)."""
        stop = stop or asyncio.Event()
        campaign = await asyncio.to_thread(self.store.campaign, name)
        if campaign.status in (t.DONE, t.CANCELLED):
            return campaign.status
        if not await asyncio.to_thread(self._lease, campaign.id):
            raise CampaignError(f"campaign {name!r} is being sent by another runner")
        try:
            reconciled = await asyncio.to_thread(self.reconcile, campaign)
            self.figures.reconciled = reconciled
            await asyncio.to_thread(self.store.set_status, campaign.id, t.RUNNING)
            return await self._send_all(campaign, stop, on_progress, progress_every)
        finally:
            await asyncio.to_thread(self.store.release_lease, campaign.id, self.worker)

    async def _send_all(self, campaign: Campaign, stop: asyncio.Event,
                        on_progress: Optional[Callable[[str], None]], progress_every: float) -> str:
        rate = self.rate_override or campaign.rate
        limiter = RateLimiter(rate)
        versions = Versions.of(campaign)
        queue: asyncio.Queue = asyncio.Queue()
        paused: List[str] = []
        lease_renewed = time.monotonic()
        last_progress = time.monotonic()

        async def worker() -> None:
            while True:
                row = await queue.get()
                try:
                    if row is None:
                        return
                    if paused or stop.is_set():
                        # Not started: back to pending at once (a resume sends it).
                        await asyncio.to_thread(self.store.defer, row.id, self.worker, self.clock(), "stopped")
                        continue
                    await self._one(row, versions, limiter, paused)
                except Exception:  # noqa: BLE001 - one row's bug must not stop the campaign
                    logger.exception("Broadcast row %s: unexpected error (left for recovery)", row and row.id)
                finally:
                    queue.task_done()

        workers = [asyncio.create_task(worker()) for _ in range(self.concurrency)]
        batch = max(self.concurrency * 2, int(rate))
        try:
            while not stop.is_set() and not paused:
                if time.monotonic() - lease_renewed > self.lease_ttl.total_seconds() / 3:
                    if not await asyncio.to_thread(self.store.take_lease, campaign.id, self.worker,
                                                   self.lease_ttl, self.clock()):
                        raise CampaignError("lost the campaign lease (another runner took over)")
                    lease_renewed = time.monotonic()
                if on_progress and time.monotonic() - last_progress >= progress_every:
                    last_progress = time.monotonic()
                    on_progress((await asyncio.to_thread(self.store.progress, campaign.id)).line()
                                + f" rate={self.figures.rate():.1f}/s")
                if queue.qsize() >= self.concurrency:
                    await asyncio.sleep(0.05)
                    continue
                rows = await asyncio.to_thread(self._claim, campaign.id, batch, versions)
                for row in rows:
                    queue.put_nowait(row)
                if rows:
                    continue
                await queue.join()  # everything claimed is final (or deferred) now
                if paused or stop.is_set():
                    break
                due = await asyncio.to_thread(self.store.next_due, campaign.id)
                if due is None:
                    progress = await asyncio.to_thread(self.store.progress, campaign.id)
                    if progress.counts.get(t.PENDING, 0) == 0 and progress.counts.get(t.SENDING, 0) == 0:
                        await asyncio.to_thread(self.store.set_status, campaign.id, t.DONE)
                        if on_progress:
                            on_progress(dataclasses.replace(progress, status=t.DONE).line()
                                        + f" rate={self.figures.rate():.1f}/s")
                        return t.DONE
                    due = self.clock() + dt.timedelta(seconds=0.2)
                wait = (due - self.clock()).total_seconds()
                if wait > 0:
                    try:
                        await asyncio.wait_for(stop.wait(), timeout=min(wait, 1.0))
                    except asyncio.TimeoutError:
                        pass
        finally:
            for _ in workers:
                queue.put_nowait(None)
            await asyncio.gather(*workers, return_exceptions=True)
        if paused:
            await asyncio.to_thread(self.store.set_status, campaign.id, t.PAUSED, paused[0])
            raise CampaignPaused(paused[0])
        return t.RUNNING

    def _claim(self, campaign_id: int, batch: int, versions: Versions) -> List[Recipient]:
        """Claim due rows and read their contacts' languages in one query (not one per row
        between a send slot and its send: that delay would bunch sends up at Meta)."""
        rows = self.store.claim(campaign_id, self.worker, batch, self.clock())
        if rows:
            languages = self.languages.many([row.conversation_id for row in rows])
            versions.wanted.update({row.id: languages.get(row.conversation_id) for row in rows})
        return rows

    async def _one(self, row: Recipient, versions: Versions, limiter: RateLimiter, paused: List[str]) -> None:
        defer_until = await asyncio.to_thread(self._pacing_until, row)
        if defer_until is not None:
            if await asyncio.to_thread(self.store.defer, row.id, self.worker, defer_until, "pacing"):
                self.figures.deferred += 1
            return
        wanted = versions.wanted.pop(row.id, None)  # read with the claim, for the whole batch
        await limiter.acquire()
        # Consent is read once more right before the send: an opt-out that arrived while
        # the row waited for its slot wins.
        if not await asyncio.to_thread(self.store.consent.tips_allowed, row.contact_key):
            if await asyncio.to_thread(self.store.finish, row.id, self.worker, t.SKIPPED, None, "opted_out"):
                self.figures.skipped += 1
            return
        choice = choose(wanted, tuple(versions.templates), versions.default, tuple(versions.refused),
                        "Meta 132001 earlier in this run")
        extra = {}
        if choice.language != versions.default:
            # Should Meta not have this version after all (132001), the sender sends the
            # default one instead, once, and says so in the outcome.
            extra["fallback"] = versions.templates[versions.default]
        outcome = await self.sender.send(row.conversation_id, versions.templates[choice.language],
                                         t.outbound_kind(row.id), **extra)
        if getattr(outcome, "fallback_from", None):
            versions.refused.add(outcome.fallback_from)
        note = fallback_note(choice, outcome)
        if outcome.state == "sent":
            now = time.monotonic()
            self.figures.first_send = self.figures.first_send or now
            self.figures.last_send = now
            self.figures.sent += 1
            self.figures.fallbacks += bool(note)
            await asyncio.to_thread(self.store.finish, row.id, self.worker, t.SENT, outcome.wamid, note)
            return
        if outcome.code in CAMPAIGN_ERRORS:
            # Not this patient's fault: the row goes back, the campaign pauses.
            paused.append(f"Graph error {outcome.code}: {outcome.detail}"[:300])
            await asyncio.to_thread(self.store.finish, row.id, self.worker, t.PENDING, None, "campaign paused")
            return
        if outcome.state == "refused" and outcome.detail == WITHDRAWN:
            # Nobody sent it (the outbox's process is not running) and it was taken back:
            # not this patient's fault either.
            paused.append("the outbox sent nothing in time (is the WhatsApp gateway running?)")
            await asyncio.to_thread(self.store.finish, row.id, self.worker, t.PENDING, None, "campaign paused")
            return
        if outcome.state == UNKNOWN:
            # It may have reached the patient: never sent again (at most once), like a crash
            # during the Graph call.
            await asyncio.to_thread(self.store.finish, row.id, self.worker, t.UNKNOWN, None, outcome.detail)
            return
        self.figures.failed += 1
        self.figures.fallbacks += bool(note)
        await asyncio.to_thread(self.store.finish, row.id, self.worker, t.FAILED, None,
                                with_note(f"{outcome.state}: {outcome.code or ''} {outcome.detail}".strip(), note))

    def _pacing_until(self, row: Recipient) -> Optional[dt.datetime]:
        last = self.store.last_outbound_at(row.conversation_id)
        if last is None:
            return None
        until = last + self.pacing
        return until if until > self.clock() else None
