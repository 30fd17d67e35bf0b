"""Booking, rescheduling, cancelling, confirming and staff outcomes on a real database."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from clinic.scheduling.model import (
    AppointmentStatus,
    InvalidTransition,
    NotFound,
    NotYours,
    SlotQuery,
    SlotUnavailable,
)
from clinic.scheduling.slots import OverlappingSlot, add_slots
from clinic.scheduling.tables import AppointmentHistoryRow, AppointmentRow, SlotRow
from tests.scheduling_support import BOTH_DATABASES, NOW, database_url, demo_backend

WEEK = dt.timedelta(days=7)
ALICE, BOB = "ck_alice", "ck_bob"


class Recorder:
    """A listener that records calls, and can fail on one of them."""

    def __init__(self, fail_on=None):
        self.calls = []
        self.fail_on = fail_on

    def _record(self, name, session, *appointments):
        # Inside the transaction: the change is visible through the listener's session.
        rows = {a.id: session.get(AppointmentRow, a.id) for a in appointments}
        self.calls.append((name, appointments, {k: r.status for k, r in rows.items()}))
        if name == self.fail_on:
            raise RuntimeError(f"listener failed in {name}")

    def on_booked(self, session, appointment):
        self._record("booked", session, appointment)

    def on_rescheduled(self, session, old, new):
        self._record("rescheduled", session, new)
        self.calls[-1] = ("rescheduled", (old, new), self.calls[-1][2])

    def on_cancelled(self, session, appointment):
        self._record("cancelled", session, appointment)

    def on_status_changed(self, session, appointment):
        self._record("status_changed", session, appointment)


@pytest.fixture(params=BOTH_DATABASES)
def env(request, tmp_path):
    recorder = Recorder()
    with database_url(request.param, request, tmp_path) as url, \
            demo_backend(url, listeners=[recorder]) as (backend, sessions, engine):
        alice = backend.register_patient(ALICE, "Alice Example", dt.date(1980, 5, 1), "conv-a",
                                         "whatsapp")
        bob = backend.register_patient(BOB, "Bob Example", dt.date(1975, 2, 3), "conv-b",
                                       "whatsapp")
        yield backend, sessions, recorder, alice, bob


def free(backend, service="gp_consultation", n=5, **kw):
    return backend.search_slots(SlotQuery(service, NOW, NOW + 4 * WEEK, limit=n, **kw))


def count(sessions, model, *where):
    with sessions() as session:
        return session.scalar(select(func.count()).select_from(model).where(*where))


def test_book_takes_the_slot_and_records_history(env):
    backend, sessions, recorder, alice, _ = env
    slot = free(backend, "vaccination")[0]
    appointment = backend.book(slot.id, alice.id, "vaccination")
    assert appointment.id.startswith("apt_") and len(appointment.id) == 14
    assert appointment.status is AppointmentStatus.BOOKED
    assert appointment.start == slot.start
    assert appointment.end == slot.start + dt.timedelta(minutes=10)
    assert appointment.practitioner == slot.practitioner and appointment.location == slot.location
    assert appointment.patient_id == alice.id and appointment.slot_id == slot.id
    assert appointment.created == NOW
    assert slot.id not in {s.id for s in free(backend, "vaccination", n=50)}
    assert backend.appointment(appointment.id, ALICE) == appointment
    assert backend.upcoming(ALICE) == [appointment]
    [entry] = backend.history(appointment.id)
    assert entry["actor"] == "patient" and entry["from_status"] is None
    assert entry["to_status"] == "booked" and entry["slot_id"] == slot.id and entry["at"] == NOW
    assert [c[0] for c in recorder.calls] == ["booked"]
    assert recorder.calls[0][2] == {appointment.id: "booked"}


def test_a_slot_is_booked_once(env):
    backend, sessions, _, alice, bob = env
    slot = free(backend)[0]
    backend.book(slot.id, alice.id, "gp_consultation")
    with pytest.raises(SlotUnavailable):
        backend.book(slot.id, bob.id, "gp_consultation")
    assert count(sessions, AppointmentRow) == 1
    assert backend.upcoming(BOB) == []


def test_book_errors(env):
    backend, sessions, _, alice, _ = env
    gp_slot = free(backend)[0]
    with pytest.raises(NotFound):
        backend.book("999999", alice.id, "gp_consultation")
    with pytest.raises(NotFound):
        backend.book("not-a-number", alice.id, "gp_consultation")
    with pytest.raises(NotFound):
        backend.book(gp_slot.id, "pat_nobody", "gp_consultation")
    with pytest.raises(NotFound):
        backend.book(gp_slot.id, alice.id, "no_such_service")
    with pytest.raises(SlotUnavailable):  # a GP does not do physiotherapy
        backend.book(gp_slot.id, alice.id, "physiotherapy")
    with pytest.raises(SlotUnavailable):  # it has started
        backend.book(gp_slot.id, alice.id, "gp_consultation", now=gp_slot.start)
    assert count(sessions, AppointmentRow) == 0
    assert count(sessions, SlotRow, SlotRow.status == "busy") == 0


def test_reschedule_takes_new_slot_and_frees_old_at_once(env):
    backend, sessions, recorder, alice, bob = env
    first, second = free(backend, n=2)
    booked = backend.book(first.id, alice.id, "gp_consultation")
    backend.confirm(booked.id, ALICE)
    moved = backend.reschedule(booked.id, ALICE, second.id, now=NOW + dt.timedelta(minutes=5))
    assert moved.id == booked.id and moved.slot_id == second.id and moved.start == second.start
    assert moved.status is AppointmentStatus.BOOKED
    assert moved.confirmed_at is None  # the confirmation was for the old time
    # The old slot is offered again and bookable by someone else straight away.
    assert first.id in {s.id for s in free(backend, n=5)}
    assert backend.book(first.id, bob.id, "gp_consultation").slot_id == first.id
    history = backend.history(booked.id)
    assert [h["to_status"] for h in history] == ["booked", "booked", "booked"]
    assert history[-1]["slot_id"] == second.id and first.id in history[-1]["note"]
    name, (old, new), _ = recorder.calls[1]
    assert name == "rescheduled" and old.slot_id == first.id and new.slot_id == second.id


def test_reschedule_to_a_taken_slot_changes_nothing(env):
    backend, sessions, _, alice, bob = env
    first, second = free(backend, n=2)
    mine = backend.book(first.id, alice.id, "gp_consultation")
    backend.book(second.id, bob.id, "gp_consultation")
    with pytest.raises(SlotUnavailable):
        backend.reschedule(mine.id, ALICE, second.id)
    with pytest.raises(SlotUnavailable):  # its own slot is not free either
        backend.reschedule(mine.id, ALICE, first.id)
    assert backend.appointment(mine.id, ALICE).slot_id == first.id
    assert count(sessions, SlotRow, SlotRow.status == "busy") == 2
    with pytest.raises(SlotUnavailable):  # physiotherapy slot for a GP consultation
        backend.reschedule(mine.id, ALICE, free(backend, "physiotherapy")[0].id)
    with pytest.raises(NotFound):
        backend.reschedule(mine.id, ALICE, "123456789")


def test_ownership_is_checked(env):
    backend, _, _, alice, _ = env
    first, second = free(backend, n=2)
    mine = backend.book(first.id, alice.id, "gp_consultation")
    for call in (lambda: backend.cancel(mine.id, BOB), lambda: backend.confirm(mine.id, BOB),
                 lambda: backend.reschedule(mine.id, BOB, second.id),
                 lambda: backend.appointment(mine.id, BOB),
                 lambda: backend.cancel(mine.id, "")):
        with pytest.raises(NotYours):
            call()
    for call in (lambda: backend.cancel("apt_0000000000", ALICE),
                 lambda: backend.appointment("apt_0000000000"),
                 lambda: backend.history("apt_0000000000"),
                 lambda: backend.set_status("apt_0000000000", AppointmentStatus.ARRIVED, "staff")):
        with pytest.raises(NotFound):
            call()
    assert backend.appointment(mine.id).status is AppointmentStatus.BOOKED
    assert backend.upcoming(BOB) == []


def test_cancel_frees_the_slot_and_cannot_repeat(env):
    backend, sessions, recorder, alice, bob = env
    slot = free(backend)[0]
    mine = backend.book(slot.id, alice.id, "gp_consultation")
    cancelled = backend.cancel(mine.id, ALICE, reason="feeling better")
    assert cancelled.status is AppointmentStatus.CANCELLED
    assert cancelled.cancellation_reason == "feeling better"
    assert backend.upcoming(ALICE) == []
    assert backend.book(slot.id, bob.id, "gp_consultation").slot_id == slot.id
    for call in (lambda: backend.cancel(mine.id, ALICE), lambda: backend.confirm(mine.id, ALICE),
                 lambda: backend.reschedule(mine.id, ALICE, free(backend)[0].id)):
        with pytest.raises(InvalidTransition):
            call()
    assert [h["to_status"] for h in backend.history(mine.id)] == ["booked", "cancelled"]
    assert [c[0] for c in recorder.calls] == ["booked", "cancelled", "booked"]


def test_confirm_once(env):
    backend, _, _, alice, _ = env
    mine = backend.book(free(backend)[0].id, alice.id, "gp_consultation")
    later = NOW + dt.timedelta(hours=1)
    assert backend.confirm(mine.id, ALICE, now=later).confirmed_at == later
    assert backend.confirm(mine.id, ALICE, now=later + dt.timedelta(hours=1)).confirmed_at == later
    notes = [h["note"] for h in backend.history(mine.id)]
    assert notes.count("confirmed") == 1


def test_staff_outcomes_follow_fhir_transitions(env):
    backend, sessions, recorder, alice, bob = env
    a, b, c = free(backend, n=3)
    first = backend.book(a.id, alice.id, "gp_consultation")
    for status in (AppointmentStatus.ARRIVED, AppointmentStatus.CHECKED_IN,
                   AppointmentStatus.FULFILLED):
        assert backend.set_status(first.id, status, "staff:reception").status is status
    with pytest.raises(InvalidTransition):
        backend.set_status(first.id, AppointmentStatus.CANCELLED, "staff:reception")
    with pytest.raises(InvalidTransition):
        backend.set_status(first.id, "on-the-moon", "staff:reception")
    history = backend.history(first.id)
    assert [(h["from_status"], h["to_status"]) for h in history] == [
        (None, "booked"), ("booked", "arrived"), ("arrived", "checked-in"),
        ("checked-in", "fulfilled")]
    assert {h["actor"] for h in history[1:]} == {"staff:reception"}
    # Fulfilled keeps its slot busy; no-show too; entered-in-error frees it.
    second = backend.book(b.id, bob.id, "gp_consultation")
    backend.set_status(second.id, AppointmentStatus.NOSHOW, "system:ehr", note="no reply at desk")
    assert backend.history(second.id)[-1]["note"] == "no reply at desk"
    third = backend.book(c.id, alice.id, "gp_consultation")
    backend.set_status(third.id, AppointmentStatus.ENTERED_IN_ERROR, "staff:reception")
    busy = {s.id for s in free(backend, n=3)}
    assert c.id in busy and a.id not in busy and b.id not in busy
    assert [name for name, *_ in recorder.calls].count("status_changed") == 5
    # A clinic cancellation is told to listeners as a cancellation.
    fourth = backend.book(c.id, bob.id, "gp_consultation")
    cancelled = backend.set_status(fourth.id, AppointmentStatus.CANCELLED, "staff:reception")
    assert cancelled.cancellation_reason == "staff:reception"
    assert recorder.calls[-1][0] == "cancelled"


def test_upcoming_is_sorted_and_excludes_past_and_inactive(env):
    backend, _, _, alice, _ = env
    slots = free(backend, n=4)
    booked = [backend.book(s.id, alice.id, "gp_consultation") for s in reversed(slots)]
    backend.cancel(booked[0].id, ALICE)  # the latest one
    upcoming = backend.upcoming(ALICE)
    assert [a.slot_id for a in upcoming] == [s.id for s in slots[:3]]
    assert [a.slot_id for a in backend.upcoming(ALICE, now=slots[1].start + dt.timedelta(minutes=1))] \
        == [slots[2].id]


def test_register_patient_is_idempotent_and_stores_no_number(env):
    backend, _, _, alice, _ = env
    again = backend.register_patient(ALICE, "Someone Else", dt.date(2000, 1, 1), "conv-new", "rest")
    assert again.id == alice.id and again.name == "Alice Example"
    assert (again.conversation_id, again.channel) == ("conv-new", "rest")
    assert backend.find_patient(ALICE) == again
    assert backend.find_patient("ck_unknown") is None


@pytest.mark.parametrize("fail_on", ["booked", "cancelled", "rescheduled", "status_changed"])
def test_a_failing_listener_rolls_the_change_back(env, fail_on):
    backend, sessions, recorder, alice, _ = env
    first, second = free(backend, n=2)
    if fail_on != "booked":
        mine = backend.book(first.id, alice.id, "gp_consultation")
    recorder.fail_on = fail_on
    with pytest.raises(RuntimeError):
        if fail_on == "booked":
            backend.book(first.id, alice.id, "gp_consultation")
        elif fail_on == "cancelled":
            backend.cancel(mine.id, ALICE)
        elif fail_on == "rescheduled":
            backend.reschedule(mine.id, ALICE, second.id)
        else:
            backend.set_status(mine.id, AppointmentStatus.ARRIVED, "staff")
    if fail_on == "booked":
        assert count(sessions, AppointmentRow) == 0
        assert count(sessions, AppointmentHistoryRow) == 0
        assert count(sessions, SlotRow, SlotRow.status == "busy") == 0
    else:
        after = backend.appointment(mine.id, ALICE)
        assert after.status is AppointmentStatus.BOOKED and after.slot_id == first.id
        assert len(backend.history(mine.id)) == 1
        busy = {r for (r,) in sessions().execute(select(SlotRow.id).where(SlotRow.status == "busy"))}
        assert busy == {int(first.id)}


def test_database_refuses_a_second_holder_of_a_slot(env):
    """The partial unique index, independent of the backend's code path."""
    backend, sessions, _, alice, bob = env
    slot = free(backend)[0]
    mine = backend.book(slot.id, alice.id, "gp_consultation")
    with sessions() as session:
        row = session.get(AppointmentRow, mine.id)
        values = {c.name: getattr(row, c.key) for c in AppointmentRow.__table__.columns}
    with pytest.raises(IntegrityError):
        with sessions() as session, session.begin():
            session.add(AppointmentRow(**{**values, "id": "apt_dupdupdup0", "patient_id": bob.id}))
    # A cancelled appointment does not hold the slot: a new one may.
    backend.cancel(mine.id, ALICE)
    with sessions() as session, session.begin():
        session.add(AppointmentRow(**{**values, "id": "apt_dupdupdup1", "patient_id": bob.id}))


def test_practitioner_slots_never_overlap(env):
    backend, sessions, _, _, _ = env
    slot = free(backend, practitioner_id="lindqvist")[0]
    other_schedule = "lindqvist-northgate"  # same practitioner, other site
    with pytest.raises(OverlappingSlot):
        with sessions() as session, session.begin():
            add_slots(session, other_schedule, [(slot.start + dt.timedelta(minutes=5),
                                                 slot.end + dt.timedelta(minutes=5))])
    with pytest.raises(IntegrityError):  # the database's own guard: same practitioner & start
        with sessions() as session, session.begin():
            session.add(SlotRow(schedule_id=other_schedule, practitioner_id="lindqvist",
                                location_id="northgate", start=slot.start, end=slot.end,
                                minutes=15, local_minute=0, status="free"))
    # Re-adding exactly the same slots to the same schedule is a no-op (top-up).
    with sessions() as session, session.begin():
        assert add_slots(session, "lindqvist-riverside", [(slot.start, slot.end)]) == 0
