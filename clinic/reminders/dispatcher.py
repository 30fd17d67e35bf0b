"""Claims due reminder jobs and pushes each into its patient's conversation, exactly once.

The guarantee, and how it holds
-------------------------------
A job goes ``pending`` → ``dispatching`` (claimed by one scheduler) → ``sent``; each arrow
is a conditional UPDATE that succeeds for exactly one caller (``store.py``).

1. **Claim.** ``UPDATE … SET status='dispatching' WHERE id=? AND (status='pending' AND
   available_at<=now OR status='dispatching' AND claimed_at < now-stale_after)``. Two
   schedulers racing for a job: the database serialises the two UPDATEs and the second
   matches no row. A claim whose scheduler died is taken over once it is stale.
2. **Push.** The scheduler asks Rasa to run the external event
   ``EXTERNAL_appointment_reminder{"reminder_job": id}`` in the conversation.
3. **Mark, then send.** The Rasa action (``actions/reminders.py``) runs
   ``UPDATE … SET status='sent' WHERE id=? AND status='dispatching'`` and sends the
   template **only if its update changed the row**. However many pushes reach Rasa for one
   job (a scheduler killed after pushing and its stale claim re-pushed by another, a retry
   after a timeout whose first push did arrive), exactly one action wins the update.
4. **Nothing lost.** Rasa down or answering an error: the claim holder puts the job back
   to ``pending`` with a back-off (a connection failure does not use up an attempt). A
   scheduler killed at any point leaves the job ``dispatching`` and not ``sent``: it is
   re-pushed after ``stale_after``. A push that Rasa accepted but whose action did not run
   (action server down) leaves the job ``dispatching``: it is released and retried.

"Sent" means handed to the channel exactly once. Between the action's update and the
Graph API call there is one window: if the Rasa server crashes inside it, that reminder is
lost (at most once, never twice); delivery failures after it are WhatsApp dead letters in
``wa_outbound``. We chose "never twice" over "never lost" for a message that asks the
patient to act (two reminders invite two taps and confusion).

Before pushing, and again in the action, a job is skipped with a recorded reason when the
appointment was cancelled, moved or is no longer active, the contact opted out of
reminders, or the job expired. Logs carry job ids, kinds and reasons: no phone number,
no name, no service.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import logging
from typing import Awaitable, Callable, Dict, Optional

from clinic.clock import utcnow
from clinic.consent import ConsentStore
from clinic.notifications.model import is_notification_kind
from clinic.notifications.policy import notification_skip_reason
from clinic.reminders import tables as t
from clinic.reminders.store import Job, ReminderStore
from clinic.reminders.timing import QuietHours
from clinic.scheduling.model import AppointmentStatus, NotFound, SchedulingError

logger = logging.getLogger(__name__)

RETRY_DELAYS = (5, 15, 60, 300, 900)  # seconds, then the last one repeats
MAX_ATTEMPTS = 12  # Rasa answering with errors this often: the job fails (connection errors don't count)


def skip_reason(job: Job, backend, consent: ConsentStore, now: dt.datetime,
                recall_status: Optional[Callable[[str], Optional[str]]] = None) -> Optional[str]:
    """Why ``job`` must not go out now, or None. Shared by the scheduler and the action."""
    if now >= job.expires_at:
        return "expired"
    if is_notification_kind(job.kind):  # clinic.notifications: their own consent rule, no appointment
        return notification_skip_reason(job.kind, job.contact_key, consent)
    if not consent.reminders_allowed(job.contact_key):
        return "opted_out"
    if job.kind == t.KIND_RECALL:
        status = recall_status(job.recall_id) if recall_status and job.recall_id else None
        return None if status in (t.RECALL_PLANNED, t.RECALL_OPEN) else f"recall_{status or 'missing'}"
    if not job.appointment_id:
        return "no_appointment"
    try:
        appointment = backend.appointment(job.appointment_id)
    except NotFound:
        return "appointment_not_found"
    except SchedulingError as error:
        return f"appointment_{type(error).__name__}"
    if job.kind == t.KIND_FOLLOWUP:
        return None if appointment.status == AppointmentStatus.FULFILLED else f"status_{appointment.status.value}"
    if appointment.status == AppointmentStatus.CANCELLED:
        return "cancelled"
    if not appointment.status.is_active:
        return f"status_{appointment.status.value}"
    if job.planned_for is not None and appointment.start != job.planned_for:
        return "moved"
    if now >= appointment.start:
        return "expired"
    return None


@dataclasses.dataclass
class PushResult:
    ok: bool
    error: str = ""
    unreachable: bool = False  # Rasa could not be reached at all (down, restarting)


@dataclasses.dataclass
class Figures:
    ticks: int = 0
    claimed: int = 0
    pushed: int = 0
    sent: int = 0
    skipped_before_push: int = 0
    skipped_by_action: int = 0
    released: int = 0
    failed: int = 0
    push_seconds: float = 0.0

    def as_dict(self) -> Dict[str, float]:
        return dataclasses.asdict(self)


class Dispatcher:
    def __init__(
        self,
        store: ReminderStore,
        backend,  # clinic.scheduling.backend.SchedulingBackend
        consent: ConsentStore,
        quiet: QuietHours,
        push: Callable[[Job], Awaitable[PushResult]],
        worker: str,
        clock: Callable[[], dt.datetime] = utcnow,
        batch_size: int = 50,
        concurrency: int = 8,
        stale_after: dt.timedelta = dt.timedelta(minutes=2),
    ) -> None:
        self.store = store
        self.backend = backend
        self.consent = consent
        self.quiet = quiet
        self.push = push
        self.worker = worker
        self.clock = clock
        self.batch_size = batch_size
        self.concurrency = concurrency
        self.stale_after = stale_after
        self.figures = Figures()

    async def run_once(self) -> int:
        """One tick: claim what is due and push it. Returns how many jobs were claimed."""
        self.figures.ticks += 1
        now = self.clock()
        if self.quiet.contains(now):
            return 0  # nothing goes out in quiet hours; jobs wait (and may expire)
        jobs = await asyncio.to_thread(self.store.claim_due, self.worker, now, self.batch_size, self.stale_after)
        if not jobs:
            return 0
        self.figures.claimed += len(jobs)
        limit = asyncio.Semaphore(self.concurrency)

        async def one(job: Job) -> None:
            async with limit:
                await self._dispatch(job)

        await asyncio.gather(*(one(job) for job in jobs))
        return len(jobs)

    async def _dispatch(self, job: Job) -> None:
        reason = await asyncio.to_thread(skip_reason, job, self.backend, self.consent, self.clock(),
                                         self.store.recall_status)
        if reason:
            if await asyncio.to_thread(self.store.skip, job.id, reason, self.worker):
                self.figures.skipped_before_push += 1
                logger.info("Reminder %s (%s) skipped: %s", job.id, job.kind, reason)
            return
        started = self.clock()
        try:
            result = await self.push(job)
        except Exception as error:  # noqa: BLE001 - a bug in one push must not stop the others
            logger.exception("Reminder %s: push raised", job.id)
            result = PushResult(False, f"push raised {type(error).__name__}")
        self.figures.push_seconds += (self.clock() - started).total_seconds()
        if result.ok:
            self.figures.pushed += 1
            after = await asyncio.to_thread(self.store.job, job.id)
            if after is not None and after.status == t.SENT:
                self.figures.sent += 1
                return
            if after is not None and after.status == t.SKIPPED:
                self.figures.skipped_by_action += 1
                logger.info("Reminder %s skipped by the action: %s", job.id, after.reason)
                return
            # Rasa accepted the event but the action did not run (action server down?).
            result = PushResult(False, "not handled by the action")
        await self._retry_later(job, result)

    async def _retry_later(self, job: Job, result: PushResult) -> None:
        if not result.unreachable and job.attempts >= MAX_ATTEMPTS:
            if await asyncio.to_thread(self.store.fail, job.id, self.worker, result.error):
                self.figures.failed += 1
                logger.error("Reminder %s failed after %s attempts: %s", job.id, job.attempts, result.error)
            return
        delay = RETRY_DELAYS[min(max(job.attempts - 1, 0), len(RETRY_DELAYS) - 1)]
        retry_at = self.clock() + dt.timedelta(seconds=delay)
        if await asyncio.to_thread(self.store.release, job.id, self.worker, retry_at, result.error,
                                   result.unreachable):
            self.figures.released += 1
            logger.warning("Reminder %s not delivered to Rasa (%s); retry in %ss", job.id, result.error, delay)
