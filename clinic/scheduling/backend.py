"""The scheduling adapter interface: what the assistant needs from a clinic's system.

``SqlSchedulingBackend`` (clinic.scheduling.sql_backend) is the embedded default. An EHR
adapter implements the same methods; callers never see ORM objects or SQL.
"""

from __future__ import annotations

import datetime as dt
from typing import List, Optional, Protocol, Sequence

from clinic.scheduling.model import (
    Appointment,
    AppointmentStatus,
    Location,
    Patient,
    Practitioner,
    Service,
    Slot,
    SlotQuery,
)


class AppointmentListener(Protocol):
    """Told of every booking change inside the same transaction (e.g. reminder planning),
    so a booking and its reminder jobs are committed together or not at all.
    ``session`` is the SQLAlchemy session of that transaction (SQL backend only)."""

    def on_booked(self, session, appointment: Appointment) -> None: ...

    def on_rescheduled(self, session, old: Appointment, new: Appointment) -> None: ...

    def on_cancelled(self, session, appointment: Appointment) -> None: ...

    def on_status_changed(self, session, appointment: Appointment) -> None: ...


class SchedulingBackend(Protocol):
    # Catalogue ---------------------------------------------------------------------------
    def services(self) -> List[Service]: ...

    def service(self, service_id: str) -> Service: ...  # NotFound

    def practitioners(self, service_id: Optional[str] = None) -> List[Practitioner]:
        """Practitioners who perform the service (all when ``None``)."""

    def practitioner(self, practitioner_id: str) -> Practitioner: ...  # NotFound

    def locations(self) -> List[Location]: ...

    # Slots ------------------------------------------------------------------------------
    def search_slots(self, query: SlotQuery) -> List[Slot]:
        """Soonest free slots matching the query, at most ``query.limit``, by start time."""

    # Patients ---------------------------------------------------------------------------
    def find_patient(self, contact_key: str) -> Optional[Patient]: ...

    def register_patient(self, contact_key: str, name: str, birth_date: dt.date,
                         conversation_id: str, channel: str) -> Patient:
        """Create the patient for this contact (or return the existing one, with its
        conversation id / channel updated)."""

    # Appointments -----------------------------------------------------------------------
    def book(self, slot_id: str, patient_id: str, service_id: str,
             now: Optional[dt.datetime] = None) -> Appointment:
        """Book a free slot. Exactly one of many concurrent callers wins; the others get
        ``SlotUnavailable`` (enforced by the database, not by a read-then-write check)."""

    def reschedule(self, appointment_id: str, contact_key: str, new_slot_id: str,
                   now: Optional[dt.datetime] = None) -> Appointment:
        """Move to another free slot atomically: the old slot is freed only if the new
        one is taken. NotFound / NotYours / InvalidTransition / SlotUnavailable."""

    def cancel(self, appointment_id: str, contact_key: str, reason: str = "patient",
               now: Optional[dt.datetime] = None) -> Appointment:
        """Cancel and free the slot at once. NotFound / NotYours / InvalidTransition."""

    def confirm(self, appointment_id: str, contact_key: str,
                now: Optional[dt.datetime] = None) -> Appointment:
        """The patient confirms they will come (reminder tap): sets ``confirmed_at`` once,
        recorded in history. NotFound / NotYours / InvalidTransition (not active)."""

    def appointment(self, appointment_id: str, contact_key: Optional[str] = None) -> Appointment:
        """One appointment; with ``contact_key``, NotYours unless it is that contact's."""

    def upcoming(self, contact_key: str, now: Optional[dt.datetime] = None) -> List[Appointment]:
        """The contact's active appointments from now on, soonest first."""

    def set_status(self, appointment_id: str, status: AppointmentStatus, actor: str,
                   now: Optional[dt.datetime] = None, note: Optional[str] = None) -> Appointment:
        """Outcomes from staff or the clinic system (arrived, fulfilled, noshow…), checked
        against ``model.TRANSITIONS``; recorded in the appointment's history with the actor."""

    def history(self, appointment_id: str) -> Sequence[dict]:
        """Every change: {"at", "actor", "from_status", "to_status", "slot_id", "note"}."""
