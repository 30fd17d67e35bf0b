"""Dispatching reminder jobs: skips with reasons, retries, and exactly-once sends with two
dispatchers racing, on a real SQLite database. The push stands in for Rasa + the action
with the action's own rule: mark sent (conditional update), send only if that won."""

from __future__ import annotations

import asyncio
import collections
import datetime as dt
import threading

import pytest

from clinic.reminders import tables as t
from clinic.reminders.dispatcher import Dispatcher, PushResult, skip_reason
from tests.reminder_support import BERLIN, make_clinic, policy


def local(*args) -> dt.datetime:
    return dt.datetime(*args, tzinfo=BERLIN).astimezone(dt.timezone.utc)


class ActionStandIn:
    """What the Rasa action does with a pushed job; counts messages really "sent"."""

    def __init__(self, clinic, delay: float = 0.0):
        self.clinic = clinic
        self.sent = collections.Counter()
        self.pushes = 0
        self.delay = delay
        self._lock = threading.Lock()

    async def __call__(self, job) -> PushResult:
        self.pushes += 1
        if self.delay:
            await asyncio.sleep(self.delay)
        current = self.clinic.store.job(job.id)
        reason = skip_reason(current, self.clinic.backend, self.clinic.consent, self.clinic.clock())
        if reason:
            self.clinic.store.skip(job.id, reason, from_statuses=(t.DISPATCHING,))
        elif self.clinic.store.mark_sent(job.id):
            with self._lock:
                self.sent[job.id] += 1
        return PushResult(True)


def dispatcher(clinic, push, worker="w1", **options) -> Dispatcher:
    return Dispatcher(clinic.store, clinic.backend, clinic.consent, policy().quiet, push, worker,
                      clock=clinic.clock, **options)


@pytest.fixture
def clinic(tmp_path):
    return make_clinic(tmp_path)


def test_due_reminder_is_sent_once_and_not_before_its_time(clinic):
    appointment = clinic.book_at(dt.datetime(2030, 1, 9, 10, 0))
    action = ActionStandIn(clinic)
    run = dispatcher(clinic, action)
    clinic.clock.now = local(2030, 1, 8, 9, 59)
    assert asyncio.run(run.run_once()) == 0
    clinic.clock.now = local(2030, 1, 8, 10, 0)
    assert asyncio.run(run.run_once()) == 1
    assert asyncio.run(run.run_once()) == 0
    [job24, job2] = clinic.store.jobs_for_appointment(appointment.id)
    assert (job24.status, job2.status) == ("sent", "pending")
    assert action.sent == {job24.id: 1} and run.figures.sent == 1


def test_nothing_goes_out_in_quiet_hours(clinic):
    clinic.book_at(dt.datetime(2030, 1, 9, 10, 0))
    action = ActionStandIn(clinic)
    clinic.clock.now = local(2030, 1, 8, 22, 0)  # Rasa was down all evening
    assert asyncio.run(dispatcher(clinic, action).run_once()) == 0
    clinic.clock.now = local(2030, 1, 9, 8, 0)
    asyncio.run(dispatcher(clinic, action).run_once())
    assert sum(action.sent.values()) == 2  # the late 24 h one (still before the visit) and the 2 h one


def test_cancelled_appointment_is_skipped_with_a_reason(clinic):
    appointment = clinic.book_at(dt.datetime(2030, 1, 9, 10, 0))
    # Cancelled behind the planner's back (e.g. directly in the EHR): the dispatcher checks.
    with clinic.sessions() as session, session.begin():
        session.execute(t.ReminderJobRow.__table__.update().values(status="pending"))
        from clinic.scheduling.tables import AppointmentRow
        session.get(AppointmentRow, appointment.id).status = "cancelled"
    action = ActionStandIn(clinic)
    clinic.clock.now = local(2030, 1, 8, 10, 0)
    asyncio.run(dispatcher(clinic, action).run_once())
    [job24, _] = clinic.store.jobs_for_appointment(appointment.id)
    assert (job24.status, job24.reason) == ("skipped", "cancelled") and action.pushes == 0


def test_moved_appointment_is_skipped(clinic):
    appointment = clinic.book_at(dt.datetime(2030, 1, 9, 10, 0))
    with clinic.sessions() as session, session.begin():
        from clinic.scheduling.tables import AppointmentRow
        session.get(AppointmentRow, appointment.id).start = local(2030, 1, 9, 11, 0)
    clinic.clock.now = local(2030, 1, 8, 10, 0)
    action = ActionStandIn(clinic)
    asyncio.run(dispatcher(clinic, action).run_once())
    assert clinic.store.jobs_for_appointment(appointment.id)[0].reason == "moved" and action.pushes == 0


def test_opted_out_contact_is_skipped(clinic):
    appointment = clinic.book_at(dt.datetime(2030, 1, 9, 10, 0))
    clinic.consent.record("contact-0001", "reminders", False, "reminders_opt_out_v1")
    clinic.clock.now = local(2030, 1, 8, 10, 0)
    action = ActionStandIn(clinic)
    asyncio.run(dispatcher(clinic, action).run_once())
    job = clinic.store.jobs_for_appointment(appointment.id)[0]
    assert (job.status, job.reason) == ("skipped", "opted_out") and action.pushes == 0


def test_opt_out_between_push_and_action_is_respected_by_the_action(clinic):
    appointment = clinic.book_at(dt.datetime(2030, 1, 9, 10, 0))
    clinic.clock.now = local(2030, 1, 8, 10, 0)
    action = ActionStandIn(clinic)

    async def push(job):
        clinic.consent.record("contact-0001", "reminders", False, "reminders_opt_out_v1")
        return await action(job)

    run = dispatcher(clinic, push)
    asyncio.run(run.run_once())
    assert clinic.store.jobs_for_appointment(appointment.id)[0].reason == "opted_out"
    assert not action.sent and run.figures.skipped_by_action == 1


def test_rasa_down_keeps_the_job_and_retries_later(clinic):
    appointment = clinic.book_at(dt.datetime(2030, 1, 9, 10, 0))
    clinic.clock.now = local(2030, 1, 8, 10, 0)

    async def down(job):
        return PushResult(False, "rasa unreachable (ClientConnectorError)", unreachable=True)

    for _ in range(20):  # a long outage never uses up the job's attempts
        asyncio.run(dispatcher(clinic, down).run_once())
        clinic.clock.advance(seconds=5)
    job = clinic.store.jobs_for_appointment(appointment.id)[0]
    assert job.status == "pending" and job.attempts == 0 and "unreachable" in job.reason
    action = ActionStandIn(clinic)
    asyncio.run(dispatcher(clinic, action).run_once())
    assert sum(action.sent.values()) == 1


def test_rasa_errors_back_off_then_fail(clinic):
    appointment = clinic.book_at(dt.datetime(2030, 1, 9, 10, 0))
    clinic.clock.now = local(2030, 1, 8, 10, 0)

    async def broken(job):
        return PushResult(False, "rasa http 500")

    run = dispatcher(clinic, broken)
    asyncio.run(run.run_once())
    job = clinic.store.jobs_for_appointment(appointment.id)[0]
    assert job.status == "pending" and job.attempts == 1
    assert asyncio.run(run.run_once()) == 0  # backing off
    for _ in range(40):
        clinic.clock.advance(minutes=15)
        asyncio.run(run.run_once())
    job = clinic.store.jobs_for_appointment(appointment.id)[0]
    assert (job.status, job.reason) == ("failed", "rasa http 500")


def test_push_accepted_but_action_did_not_run_is_retried(clinic):
    appointment = clinic.book_at(dt.datetime(2030, 1, 9, 10, 0))
    clinic.clock.now = local(2030, 1, 8, 10, 0)

    async def action_server_down(job):
        return PushResult(True)  # Rasa says 200, nothing marked the job

    asyncio.run(dispatcher(clinic, action_server_down).run_once())
    job = clinic.store.jobs_for_appointment(appointment.id)[0]
    assert job.status == "pending" and job.reason == "not handled by the action"


def test_two_dispatchers_racing_send_each_job_exactly_once(tmp_path):
    clinic = make_clinic(tmp_path)
    appointments = []
    for day in (8, 9, 10):
        for hour in (10, 11, 14, 15):
            for minute in (0, 15, 30, 45):
                appointments.append(clinic.book_at(dt.datetime(2030, 1, day, hour, minute), n=len(appointments) + 1))
    clinic.clock.now = local(2030, 1, 12, 9, 0)  # everything due... but expired: bring back
    with clinic.sessions() as session, session.begin():
        session.execute(t.ReminderJobRow.__table__.update().values(
            available_at=local(2030, 1, 7, 9, 0), expires_at=local(2030, 2, 1, 0, 0)))
        from clinic.scheduling.tables import AppointmentRow
        for row in session.query(AppointmentRow):
            row.start += dt.timedelta(days=20)
        session.execute(t.ReminderJobRow.__table__.update().values(planned_for=None))
    action = ActionStandIn(clinic, delay=0.001)
    first = dispatcher(clinic, action, "w1", batch_size=10)
    second = dispatcher(clinic, action, "w2", batch_size=10)

    async def race():
        while True:
            claimed = await asyncio.gather(first.run_once(), second.run_once())
            if sum(claimed) == 0:
                return

    asyncio.run(race())
    total = 2 * len(appointments)
    assert len(action.sent) == total and set(action.sent.values()) == {1}
    assert first.figures.claimed + second.figures.claimed == total
    assert first.figures.claimed > 0 and second.figures.claimed > 0
    assert clinic.store.counts() == {"sent": total}


def test_a_stale_claim_is_taken_over_and_the_late_push_does_not_send_twice(clinic):
    clinic.book_at(dt.datetime(2030, 1, 9, 10, 0))
    clinic.clock.now = local(2030, 1, 8, 10, 0)
    [orphan] = clinic.store.claim_due("dead-scheduler", now=clinic.clock.now)
    action = ActionStandIn(clinic)
    run = dispatcher(clinic, action, "w2", stale_after=dt.timedelta(minutes=2))
    assert asyncio.run(run.run_once()) == 0  # not stale yet
    clinic.clock.advance(minutes=3)
    assert asyncio.run(run.run_once()) == 1
    # The dead scheduler's push did reach Rasa after all, late: no second message.
    asyncio.run(action(orphan))
    assert action.sent == {orphan.id: 1} and action.pushes == 2
