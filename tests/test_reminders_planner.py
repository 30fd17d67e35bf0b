"""Reminder planning from booking changes, on a real SQLite clinic database."""

from __future__ import annotations

import datetime as dt

import pytest

from clinic.reminders import tables as t
from clinic.reminders.planner import Recipient, add_recall, appointment_times, plan_recalls
from clinic.scheduling.model import AppointmentStatus
from tests.reminder_support import BERLIN, START, make_clinic, policy


def local(*args) -> dt.datetime:
    return dt.datetime(*args, tzinfo=BERLIN).astimezone(dt.timezone.utc)


def due(jobs):
    return {j.kind: (j.status, j.due_at.astimezone(BERLIN).strftime("%a %H:%M") if j.status == "pending" else j.reason)
            for j in jobs}


@pytest.mark.parametrize("visit, expected", [
    # A daytime visit: 24 h and 2 h before.
    (local(2030, 1, 9, 10, 0), {"appointment_24h": "Tue 10:00", "appointment_2h": "Wed 08:00"}),
    # 2 h before an 09:30 visit is 07:30, inside quiet hours: 20:00 the evening before.
    (local(2030, 1, 9, 9, 30), {"appointment_24h": "Tue 09:30", "appointment_2h": "Tue 20:00"}),
    # 24 h before a 22:30 (late clinic) visit is 22:30: moved to 20:00 that evening.
    (local(2030, 1, 9, 22, 30), {"appointment_24h": "Tue 20:00", "appointment_2h": "Wed 20:30"}),
])
def test_offsets_and_quiet_hours(visit, expected):
    planned = appointment_times(policy(), visit, START)
    assert {p.kind: p.due_at.astimezone(BERLIN).strftime("%a %H:%M") for p in planned} == expected


def test_reminders_in_the_past_at_booking_are_not_planned():
    # Booked Monday 09:00 for Monday 12:00: the 24 h reminder would be yesterday.
    planned = {p.kind: p for p in appointment_times(policy(), local(2030, 1, 7, 12, 0), START)}
    assert planned["appointment_24h"].due_at is None and planned["appointment_24h"].reason == "past_at_booking"
    assert planned["appointment_2h"].due_at == local(2030, 1, 7, 10, 0)


def test_quiet_hours_move_that_lands_in_the_past_is_skipped():
    # Booked Monday 20:30 for Tuesday 07:30 (early clinic): 2 h before is 05:30, moved to
    # 20:00 Monday, already past: skipped rather than sent in the night.
    now = local(2030, 1, 7, 20, 30)
    planned = {p.kind: p for p in appointment_times(policy(), local(2030, 1, 8, 7, 30), now)}
    assert planned["appointment_2h"].reason == "quiet_hours"


def test_two_reminders_moved_onto_the_same_evening_are_not_both_sent():
    planned = {p.kind: p for p in appointment_times(policy(offsets=(3, 2)), local(2030, 1, 9, 9, 0), START)}
    assert planned["appointment_3h"].due_at == local(2030, 1, 8, 20, 0)
    assert planned["appointment_2h"].reason == "quiet_hours_too_close"


def test_offsets_are_configurable():
    planned = appointment_times(policy(offsets=(48, 4)), local(2030, 1, 10, 14, 0), START)
    assert [(p.kind, p.due_at) for p in planned] == [
        ("appointment_48h", local(2030, 1, 8, 14, 0)), ("appointment_4h", local(2030, 1, 10, 10, 0))]


def test_quiet_hours_across_dst_change():
    # Europe/Berlin springs forward on 2030-03-31 at 02:00; 2 h before an 08:00 visit on
    # that day is 06:00 local, moved to 20:00 local on the 30th (UTC+1).
    planned = {p.kind: p for p in appointment_times(policy(), local(2030, 3, 31, 8, 0), local(2030, 3, 25, 9, 0))}
    assert planned["appointment_2h"].due_at == dt.datetime(2030, 3, 30, 19, 0, tzinfo=dt.timezone.utc)


def test_booking_plans_jobs_in_the_same_transaction(tmp_path):
    clinic = make_clinic(tmp_path)
    appointment = clinic.book_at(dt.datetime(2030, 1, 9, 10, 0))
    jobs = clinic.store.jobs_for_appointment(appointment.id)
    assert due(jobs) == {"appointment_24h": ("pending", "Tue 10:00"), "appointment_2h": ("pending", "Wed 08:00")}
    job = jobs[0]
    assert (job.contact_key, job.conversation_id, job.channel) == ("contact-0001", "conv-0001", "whatsapp")
    assert job.planned_for == appointment.start and job.expires_at == appointment.start


def test_failed_booking_plans_nothing(tmp_path):
    clinic = make_clinic(tmp_path)
    first = clinic.book_at(dt.datetime(2030, 1, 9, 10, 0))
    from clinic.scheduling.model import SlotUnavailable
    with pytest.raises(SlotUnavailable):
        clinic.backend.book(first.slot_id, clinic.patient(2).id, "gp_consultation")
    with clinic.sessions() as session:
        assert session.query(t.ReminderJobRow).count() == 2


def test_reschedule_replans_the_same_rows(tmp_path):
    clinic = make_clinic(tmp_path)
    appointment = clinic.book_at(dt.datetime(2030, 1, 9, 10, 0))
    before = {j.kind: j.id for j in clinic.store.jobs_for_appointment(appointment.id)}
    # The 24 h reminder went out already.
    [claimed] = clinic.store.claim_due("w", now=local(2030, 1, 8, 10, 0))
    assert claimed.kind == "appointment_24h" and clinic.store.mark_sent(claimed.id)

    new_slot = clinic.slot_at(dt.datetime(2030, 1, 11, 14, 0))
    moved = clinic.backend.reschedule(appointment.id, "contact-0001", new_slot.id)

    jobs = clinic.store.jobs_for_appointment(moved.id)
    assert {j.kind: j.id for j in jobs} == before  # re-planned, not planned twice
    assert due(jobs) == {"appointment_24h": ("pending", "Thu 14:00"), "appointment_2h": ("pending", "Fri 12:00")}
    assert all(j.planned_for == moved.start and j.attempts == 0 and j.sent_at is None for j in jobs)


def test_reschedule_while_a_reminder_is_in_flight_stops_the_stale_one(tmp_path):
    clinic = make_clinic(tmp_path)
    appointment = clinic.book_at(dt.datetime(2030, 1, 9, 10, 0))
    [claimed] = clinic.store.claim_due("w", now=local(2030, 1, 8, 10, 0))
    clinic.backend.reschedule(appointment.id, "contact-0001", clinic.slot_at(dt.datetime(2030, 1, 11, 14, 0)).id)
    assert clinic.store.mark_sent(claimed.id) is False  # the in-flight action may not send


def test_cancel_skips_pending_reminders(tmp_path):
    clinic = make_clinic(tmp_path)
    appointment = clinic.book_at(dt.datetime(2030, 1, 9, 10, 0))
    clinic.backend.cancel(appointment.id, "contact-0001")
    assert due(clinic.store.jobs_for_appointment(appointment.id)) == {
        "appointment_24h": ("skipped", "cancelled"), "appointment_2h": ("skipped", "cancelled")}


def test_fulfilled_visit_gets_a_followup_after_quiet_hours(tmp_path):
    clinic = make_clinic(tmp_path)
    appointment = clinic.book_at(dt.datetime(2030, 1, 9, 16, 0))
    clinic.clock.now = local(2030, 1, 9, 18, 0)
    clinic.backend.set_status(appointment.id, AppointmentStatus.ARRIVED, actor="staff:test")
    clinic.backend.set_status(appointment.id, AppointmentStatus.FULFILLED, actor="staff:test")
    jobs = {j.kind: j for j in clinic.store.jobs_for_appointment(appointment.id)}
    # 18:00 + 3 h = 21:00, in quiet hours: the next morning at 08:00.
    assert jobs["followup"].status == "pending" and jobs["followup"].due_at == local(2030, 1, 10, 8, 0)
    assert jobs["appointment_2h"].status == "skipped" and jobs["appointment_2h"].reason == "status_arrived"
    # Only one follow-up, however often the status is reported.
    with clinic.sessions() as session, session.begin():
        clinic.planner.on_status_changed(session, clinic.backend.appointment(appointment.id))
    assert [j.kind for j in clinic.store.jobs_for_appointment(appointment.id)].count("followup") == 1


def test_recalls_become_jobs_once(tmp_path):
    clinic = make_clinic(tmp_path)
    patient = clinic.patient(7)
    with clinic.sessions() as session, session.begin():
        due_today = add_recall(session, patient.id, patient.contact_key, "vaccination", dt.date(2030, 1, 7))
        add_recall(session, patient.id, patient.contact_key, "screening", dt.date(2030, 2, 1))

    def find(contact_key):
        p = clinic.backend.find_patient(contact_key)
        return Recipient(p.id, p.contact_key, p.conversation_id, p.channel)

    for _ in range(2):
        with clinic.sessions() as session, session.begin():
            plan_recalls(session, policy(), find, now=START)
    with clinic.sessions() as session:
        [job] = session.query(t.ReminderJobRow).filter_by(kind="recall").all()
        assert job.recall_id == due_today and job.due_at == local(2030, 1, 7, 10, 0)
        assert job.conversation_id == "conv-0007"
