"""The embedded scheduling backend: the clinic's own tables (SQLite or PostgreSQL).

Guarantees (see ``tables.py`` for the schema side):

* No double booking, enforced by the database: a slot is taken with
  ``UPDATE slots SET status='busy' WHERE id=:id AND status='free'`` and the row count tells
  whether *this* transaction took it (PostgreSQL re-checks the WHERE after waiting for a
  concurrent writer's row lock; SQLite serialises writers). A partial unique index allows
  at most one appointment holding a slot, so even a buggy second code path cannot book it
  twice.
* Reschedule takes the new slot before freeing the old one, in one transaction: the patient
  never ends up with no slot, nor with two.
* Listeners (e.g. reminder planning) run inside the same transaction with its session: if
  one raises, the whole change is rolled back.
* Every change is appended to ``appointment_history`` with its actor.
* All datetimes are aware UTC; "now" comes from the injected clock (tests) or the system.
"""

from __future__ import annotations

import datetime as dt
from typing import Callable, List, Optional, Sequence

from sqlalchemy import and_, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from clinic.clock import utcnow
from clinic.scheduling.backend import AppointmentListener
from clinic.scheduling.model import (
    TRANSITIONS,
    Appointment,
    AppointmentStatus,
    InvalidTransition,
    Location,
    NotFound,
    NotYours,
    Patient,
    Practitioner,
    Service,
    Slot,
    SlotQuery,
    SlotStatus,
    SlotUnavailable,
)
from clinic.scheduling.tables import (
    SLOT_RELEASING_STATUSES,
    AppointmentHistoryRow,
    AppointmentRow,
    LocationRow,
    PatientRow,
    PractitionerRow,
    PractitionerServiceRow,
    ServiceRow,
    SlotRow,
    new_appointment_id,
    new_patient_id,
)

MAX_LIMIT = 100
_ACTIVE = [s.value for s in AppointmentStatus if s.is_active]


def _utc(moment: dt.datetime) -> dt.datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("scheduling needs aware datetimes (got a naive one)")
    return moment.astimezone(dt.timezone.utc)


def _minute(value: dt.time) -> int:
    return value.hour * 60 + value.minute


def _slot_pk(slot_id: str) -> int:
    try:
        return int(str(slot_id))
    except (TypeError, ValueError):
        raise NotFound(f"no slot {slot_id!r}") from None


class SqlSchedulingBackend:
    """``SchedulingBackend`` on the clinic database (see module docstring)."""

    def __init__(self, session_factory: sessionmaker,
                 listeners: Sequence[AppointmentListener] = (),
                 clock: Optional[Callable[[], dt.datetime]] = None):
        self._sessions = session_factory
        self._listeners = list(listeners)
        self._clock = clock or utcnow

    def add_listener(self, listener: AppointmentListener) -> None:
        """Register a listener after construction (e.g. reminders wired by the caller)."""
        self._listeners.append(listener)

    def _now(self, now: Optional[dt.datetime] = None) -> dt.datetime:
        return _utc(now or self._clock())

    # Catalogue ---------------------------------------------------------------------------
    def services(self) -> List[Service]:
        with self._sessions() as session:
            rows = session.scalars(
                select(ServiceRow).where(ServiceRow.active.is_(True)).order_by(ServiceRow.name))
            return [_service(r) for r in rows]

    def service(self, service_id: str) -> Service:
        with self._sessions() as session:
            return _service(self._service_row(session, service_id))

    def practitioners(self, service_id: Optional[str] = None) -> List[Practitioner]:
        with self._sessions() as session:
            query = select(PractitionerRow).where(PractitionerRow.active.is_(True))
            if service_id is not None:
                self._service_row(session, service_id)
                query = query.where(PractitionerRow.id.in_(
                    select(PractitionerServiceRow.practitioner_id)
                    .where(PractitionerServiceRow.service_id == service_id)))
            return [_practitioner(r) for r in session.scalars(query.order_by(PractitionerRow.name))]

    def practitioner(self, practitioner_id: str) -> Practitioner:
        with self._sessions() as session:
            row = session.get(PractitionerRow, practitioner_id)
            if row is None:
                raise NotFound(f"no practitioner {practitioner_id!r}")
            return _practitioner(row)

    def locations(self) -> List[Location]:
        with self._sessions() as session:
            rows = session.scalars(
                select(LocationRow).where(LocationRow.active.is_(True)).order_by(LocationRow.name))
            return [_location(r) for r in rows]

    # Slots ------------------------------------------------------------------------------
    def search_slots(self, query: SlotQuery) -> List[Slot]:
        """Soonest free slots for the service, never in the past.

        The time-of-day window is the location's wall clock (the clinic time zone), read
        from ``slots.local_minute``, which was computed from the real instant: "mornings"
        means 08:00-12:00 local in winter and in summer alike. A slot matches when it
        *starts* inside ``[day_start, day_end)``; a window with ``day_start > day_end``
        wraps past midnight.
        """
        now = self._now()
        earliest = max(_utc(query.earliest), now)
        latest = _utc(query.latest)
        limit = max(1, min(int(query.limit or 10), MAX_LIMIT))
        if latest < earliest:
            return []
        with self._sessions() as session:
            service = self._service_row(session, query.service_id)
            performers = set(session.scalars(
                select(PractitionerServiceRow.practitioner_id)
                .where(PractitionerServiceRow.service_id == service.id)))
            if query.practitioner_id is not None:
                if session.get(PractitionerRow, query.practitioner_id) is None:
                    raise NotFound(f"no practitioner {query.practitioner_id!r}")
                performers &= {query.practitioner_id}
            if query.location_id is not None and session.get(LocationRow, query.location_id) is None:
                raise NotFound(f"no location {query.location_id!r}")
            if not performers:
                return []
            conditions = [
                SlotRow.status == SlotStatus.FREE.value,
                SlotRow.start >= earliest,
                SlotRow.start > now,
                SlotRow.start <= latest,
                SlotRow.minutes >= service.duration_minutes,
                SlotRow.practitioner_id.in_(sorted(performers)),
                PractitionerRow.active.is_(True),
                LocationRow.active.is_(True),
            ]
            if query.location_id is not None:
                conditions.append(SlotRow.location_id == query.location_id)
            low = _minute(query.day_start) if query.day_start is not None else None
            high = _minute(query.day_end) if query.day_end is not None else None
            if low is not None and high is not None and low > high:
                conditions.append(or_(SlotRow.local_minute >= low, SlotRow.local_minute < high))
            else:
                if low is not None:
                    conditions.append(SlotRow.local_minute >= low)
                if high is not None:
                    conditions.append(SlotRow.local_minute < high)
            rows = session.execute(
                select(SlotRow, PractitionerRow, LocationRow)
                .join(PractitionerRow, PractitionerRow.id == SlotRow.practitioner_id)
                .join(LocationRow, LocationRow.id == SlotRow.location_id)
                .where(and_(*conditions))
                .order_by(SlotRow.start, SlotRow.id)
                .limit(limit)
            ).all()
            practitioners: dict = {}
            locations: dict = {}
            result = []
            for slot, prac, loc in rows:
                practitioner = practitioners.setdefault(prac.id, _practitioner(prac))
                location = locations.setdefault(loc.id, _location(loc))
                result.append(Slot(id=str(slot.id), start=slot.start, end=slot.end,
                                   practitioner=practitioner, location=location,
                                   service_id=service.id, status=SlotStatus(slot.status)))
            return result

    def slot(self, slot_id: str) -> Slot:
        """One slot whatever its status (e.g. to re-show a chosen time). NotFound.
        (Addition to the protocol; ``service_id`` is empty: slots are not tied to one.)"""
        with self._sessions() as session:
            row = session.get(SlotRow, _slot_pk(slot_id))
            if row is None:
                raise NotFound(f"no slot {slot_id!r}")
            return Slot(id=str(row.id), start=row.start, end=row.end,
                        practitioner=_practitioner(session.get(PractitionerRow, row.practitioner_id)),
                        location=_location(session.get(LocationRow, row.location_id)),
                        service_id="", status=SlotStatus(row.status))

    # Patients ---------------------------------------------------------------------------
    def find_patient(self, contact_key: str) -> Optional[Patient]:
        with self._sessions() as session:
            row = session.scalars(
                select(PatientRow).where(PatientRow.contact_key == contact_key)).first()
            return _patient(row) if row is not None else None

    def register_patient(self, contact_key: str, name: str, birth_date: dt.date,
                         conversation_id: str, channel: str) -> Patient:
        if not contact_key:
            raise ValueError("contact_key is required")
        now = self._now()
        for attempt in range(2):
            try:
                with self._sessions() as session, session.begin():
                    row = session.scalars(
                        select(PatientRow).where(PatientRow.contact_key == contact_key)).first()
                    if row is None:
                        row = PatientRow(id=new_patient_id(), contact_key=contact_key,
                                         name=name.strip(), birth_date=birth_date,
                                         conversation_id=conversation_id, channel=channel,
                                         created_at=now, updated_at=now)
                        session.add(row)
                    elif (row.conversation_id, row.channel) != (conversation_id, channel):
                        row.conversation_id, row.channel, row.updated_at = (
                            conversation_id, channel, now)
                    session.flush()
                    return _patient(row)
            except IntegrityError:
                # Registered concurrently by another process: the second pass finds it.
                if attempt:
                    raise
        raise AssertionError("unreachable")

    # Appointments -----------------------------------------------------------------------
    def book(self, slot_id: str, patient_id: str, service_id: str,
             now: Optional[dt.datetime] = None) -> Appointment:
        now = self._now(now)
        pk = _slot_pk(slot_id)
        with self._sessions() as session, session.begin():
            service = self._service_row(session, service_id)
            if session.get(PatientRow, patient_id) is None:
                raise NotFound(f"no patient {patient_id!r}")
            slot = self._bookable_slot(session, pk, service, now)
            self._take(session, pk)
            row = AppointmentRow(
                id=new_appointment_id(), status=AppointmentStatus.BOOKED.value, slot_id=pk,
                service_id=service.id, patient_id=patient_id,
                practitioner_id=slot.practitioner_id, location_id=slot.location_id,
                start=slot.start, end=slot.start + dt.timedelta(minutes=service.duration_minutes),
                created=now, updated_at=now,
            )
            session.add(row)
            self._flush_holding(session)
            self._history(session, row, now, "patient", None, "booked")
            appointment = self._model(session, row)
            for listener in self._listeners:
                listener.on_booked(session, appointment)
        return appointment

    def reschedule(self, appointment_id: str, contact_key: str, new_slot_id: str,
                   now: Optional[dt.datetime] = None) -> Appointment:
        now = self._now(now)
        pk = _slot_pk(new_slot_id)
        with self._sessions() as session, session.begin():
            row = self._owned(session, appointment_id, contact_key)
            self._require_active(row, "reschedule")
            service = session.get(ServiceRow, row.service_id)
            slot = self._bookable_slot(session, pk, service, now)
            old = self._model(session, row)
            old_slot = row.slot_id
            # New slot first: if it is gone, nothing changed and the patient keeps the old.
            self._take(session, pk)
            row.slot_id = pk
            row.practitioner_id, row.location_id = slot.practitioner_id, slot.location_id
            row.start = slot.start
            row.end = slot.start + dt.timedelta(minutes=service.duration_minutes)
            row.confirmed_at = None  # a confirmation was for the old time
            row.updated_at = now
            self._flush_holding(session)
            self._release(session, old_slot)
            self._history(session, row, now, "patient", row.status,
                          f"rescheduled from slot {old_slot}")
            new = self._model(session, row)
            for listener in self._listeners:
                listener.on_rescheduled(session, old, new)
        return new

    def cancel(self, appointment_id: str, contact_key: str, reason: str = "patient",
               now: Optional[dt.datetime] = None) -> Appointment:
        now = self._now(now)
        with self._sessions() as session, session.begin():
            row = self._owned(session, appointment_id, contact_key)
            self._require_active(row, "cancel")
            appointment = self._change_status(session, row, AppointmentStatus.CANCELLED,
                                              "patient", now, reason=reason)
        return appointment

    def confirm(self, appointment_id: str, contact_key: str,
                now: Optional[dt.datetime] = None) -> Appointment:
        """Idempotent: a second tap keeps the first ``confirmed_at`` and adds no history.
        Listeners are not called (the status does not change)."""
        now = self._now(now)
        with self._sessions() as session, session.begin():
            row = self._owned(session, appointment_id, contact_key)
            self._require_active(row, "confirm")
            if row.confirmed_at is None:
                row.confirmed_at = now
                row.updated_at = now
                self._history(session, row, now, "patient", row.status, "confirmed")
            appointment = self._model(session, row)
        return appointment

    def appointment(self, appointment_id: str, contact_key: Optional[str] = None) -> Appointment:
        with self._sessions() as session:
            if contact_key is None:
                row = self._appointment_row(session, appointment_id)
            else:
                row = self._owned(session, appointment_id, contact_key)
            return self._model(session, row)

    def upcoming(self, contact_key: str, now: Optional[dt.datetime] = None) -> List[Appointment]:
        now = self._now(now)
        with self._sessions() as session:
            rows = session.scalars(
                select(AppointmentRow)
                .join(PatientRow, PatientRow.id == AppointmentRow.patient_id)
                .where(PatientRow.contact_key == contact_key,
                       AppointmentRow.status.in_(_ACTIVE),
                       AppointmentRow.start >= now)
                .order_by(AppointmentRow.start, AppointmentRow.slot_id)
            ).all()
            return [self._model(session, r) for r in rows]

    def set_status(self, appointment_id: str, status: AppointmentStatus, actor: str,
                   now: Optional[dt.datetime] = None, note: Optional[str] = None) -> Appointment:
        """Staff / clinic-system outcome. Cancelled and entered-in-error free the slot.
        Listeners: ``on_cancelled`` for a cancellation, ``on_status_changed`` otherwise."""
        now = self._now(now)
        try:
            status = AppointmentStatus(status)
        except ValueError:
            raise InvalidTransition(f"unknown appointment status {status!r}") from None
        if not actor:
            raise ValueError("actor is required (who made the change)")
        with self._sessions() as session, session.begin():
            row = self._appointment_row(session, appointment_id)
            appointment = self._change_status(session, row, status, actor, now,
                                              reason=actor if status is AppointmentStatus.CANCELLED
                                              else None, note=note)
        return appointment

    def history(self, appointment_id: str) -> Sequence[dict]:
        with self._sessions() as session:
            self._appointment_row(session, appointment_id)
            rows = session.scalars(
                select(AppointmentHistoryRow)
                .where(AppointmentHistoryRow.appointment_id == appointment_id)
                .order_by(AppointmentHistoryRow.id))
            return [
                {"at": r.at, "actor": r.actor, "from_status": r.from_status,
                 "to_status": r.to_status,
                 "slot_id": str(r.slot_id) if r.slot_id is not None else None, "note": r.note}
                for r in rows
            ]

    # Internals --------------------------------------------------------------------------
    @staticmethod
    def _service_row(session: Session, service_id: str) -> ServiceRow:
        row = session.get(ServiceRow, service_id) if service_id else None
        if row is None:
            raise NotFound(f"no service {service_id!r}")
        return row

    @staticmethod
    def _appointment_row(session: Session, appointment_id: str) -> AppointmentRow:
        row = session.get(AppointmentRow, appointment_id) if appointment_id else None
        if row is None:
            raise NotFound(f"no appointment {appointment_id!r}")
        return row

    def _owned(self, session: Session, appointment_id: str, contact_key: str) -> AppointmentRow:
        row = self._appointment_row(session, appointment_id)
        patient = session.get(PatientRow, row.patient_id)
        if not contact_key or patient.contact_key != contact_key:
            raise NotYours(f"appointment {appointment_id!r} belongs to another contact")
        return row

    @staticmethod
    def _require_active(row: AppointmentRow, what: str) -> None:
        if not AppointmentStatus(row.status).is_active:
            raise InvalidTransition(f"cannot {what} an appointment that is {row.status}")

    @staticmethod
    def _bookable_slot(session: Session, pk: int, service: ServiceRow,
                       now: dt.datetime) -> SlotRow:
        slot = session.get(SlotRow, pk)
        if slot is None:
            raise NotFound(f"no slot {pk}")
        if slot.start <= now:
            raise SlotUnavailable(f"slot {pk} has already started")
        performs = session.get(PractitionerServiceRow, (slot.practitioner_id, service.id))
        if performs is None or slot.minutes < service.duration_minutes:
            raise SlotUnavailable(f"slot {pk} is not offered for {service.id}")
        return slot

    @staticmethod
    def _take(session: Session, pk: int) -> None:
        # The database decides who gets the slot: only one UPDATE can see status 'free'.
        result = session.execute(
            update(SlotRow)
            .where(SlotRow.id == pk, SlotRow.status == SlotStatus.FREE.value)
            .values(status=SlotStatus.BUSY.value)
            .execution_options(synchronize_session=False)
        )
        if result.rowcount != 1:
            raise SlotUnavailable(f"slot {pk} is no longer free")

    @staticmethod
    def _release(session: Session, pk: int) -> None:
        session.execute(
            update(SlotRow)
            .where(SlotRow.id == pk, SlotRow.status == SlotStatus.BUSY.value)
            .values(status=SlotStatus.FREE.value)
            .execution_options(synchronize_session=False)
        )

    @staticmethod
    def _flush_holding(session: Session) -> None:
        try:
            session.flush()
        except IntegrityError as exc:
            # The partial unique index: another appointment already holds this slot.
            raise SlotUnavailable("the slot is already held by another appointment") from exc

    def _change_status(self, session: Session, row: AppointmentRow, status: AppointmentStatus,
                       actor: str, now: dt.datetime, reason: Optional[str] = None,
                       note: Optional[str] = None) -> Appointment:
        current = AppointmentStatus(row.status)
        if status not in TRANSITIONS.get(current, set()):
            raise InvalidTransition(f"cannot change an appointment from {current.value} "
                                    f"to {status.value}")
        row.status = status.value
        row.updated_at = now
        if status is AppointmentStatus.CANCELLED:
            row.cancellation_reason = (reason or "")[:200] or None
        session.flush()
        if status in SLOT_RELEASING_STATUSES:
            self._release(session, row.slot_id)
        self._history(session, row, now, actor, current.value,
                      note or (f"reason: {row.cancellation_reason}"
                               if status is AppointmentStatus.CANCELLED and row.cancellation_reason
                               else None))
        appointment = self._model(session, row)
        for listener in self._listeners:
            if status is AppointmentStatus.CANCELLED:
                listener.on_cancelled(session, appointment)
            else:
                listener.on_status_changed(session, appointment)
        return appointment

    @staticmethod
    def _history(session: Session, row: AppointmentRow, now: dt.datetime, actor: str,
                 from_status: Optional[str], note: Optional[str]) -> None:
        session.add(AppointmentHistoryRow(
            appointment_id=row.id, at=now, actor=actor[:64], from_status=from_status,
            to_status=row.status, slot_id=row.slot_id, note=(note or None) and note[:300]))
        session.flush()

    @staticmethod
    def _model(session: Session, row: AppointmentRow) -> Appointment:
        return Appointment(
            id=row.id, status=AppointmentStatus(row.status), start=row.start, end=row.end,
            service=_service(session.get(ServiceRow, row.service_id)),
            practitioner=_practitioner(session.get(PractitionerRow, row.practitioner_id)),
            location=_location(session.get(LocationRow, row.location_id)),
            patient_id=row.patient_id, slot_id=str(row.slot_id), created=row.created,
            cancellation_reason=row.cancellation_reason, confirmed_at=row.confirmed_at,
        )


def _service(row: ServiceRow) -> Service:
    return Service(id=row.id, name=row.name, specialty=row.specialty,
                   duration_minutes=row.duration_minutes, preparation=row.preparation or "",
                   synonyms=tuple(row.synonyms or ()))


def _practitioner(row: PractitionerRow) -> Practitioner:
    return Practitioner(id=row.id, name=row.name, specialty=row.specialty,
                        languages=tuple(row.languages or ()))


def _location(row: LocationRow) -> Location:
    return Location(id=row.id, name=row.name, address=row.address,
                    directions=row.directions or "", parking=row.parking or "")


def _patient(row: PatientRow) -> Patient:
    return Patient(id=row.id, contact_key=row.contact_key, name=row.name,
                   birth_date=row.birth_date, conversation_id=row.conversation_id,
                   channel=row.channel)
