"""Tables of the embedded scheduling backend (SQLAlchemy 1.4, 2.0 style).

Column names follow FHIR R4 so an EHR adapter (or an export) maps field by field:

==================  ==========================================================================
table               FHIR R4
==================  ==========================================================================
locations           Location (name, address; ``directions``/``parking`` → Location.description)
practitioners       Practitioner + PractitionerRole (specialty, communication languages)
services            HealthcareService / Appointment.appointmentType (``preparation`` →
                    Appointment.patientInstruction)
practitioner_services  PractitionerRole.healthcareService: who may perform what
schedules           Schedule (actor = practitioner + location, planningHorizon)
slots               Slot (schedule, start, end, status)
patients            Patient (name, birthDate); ``contact_key`` is a pseudonym, never a number
appointments        Appointment (status, slot, serviceType, participant, start, end, created,
                    cancelationReason)
appointment_history  append-only audit of every change (who, when, from → to)
==================  ==========================================================================

No double booking of a practitioner:
  * A slot is the unit of a practitioner's time, and every service fits in one slot
    (``slots.minutes >= services.duration_minutes`` is part of the slot search), so an
    appointment never spans two slots and "the slot is busy" == "the time is taken".
  * Slots of one practitioner never overlap. The slot generator
    (``clinic.scheduling.slots.add_slots``) checks overlaps with the practitioner's
    existing slots in the same transaction, across all locations, and the unique index on
    ``(practitioner_id, start)`` stops the commonest accident (generating a day twice) in
    the database itself. We did not use a PostgreSQL exclusion constraint (tstzrange &&)
    because SQLite, the embedded default, has no equivalent; the slot grid is generated
    by code, never typed in by hand.
  * Booking takes a slot with a conditional ``UPDATE ... WHERE status = 'free'`` checked by
    its row count, and the partial unique index ``uq_appointments_slot_holding`` allows at
    most one appointment that holds a slot (any status but cancelled / entered-in-error).

Datetimes are stored in UTC (``UTCDateTime``): SQLite has no time zones, and comparing UTC
strings there orders correctly only if every value is UTC.
"""

from __future__ import annotations

import datetime as dt
import secrets

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Column,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    text,
)
from sqlalchemy.types import TypeDecorator

from clinic.db import Base
from clinic.scheduling.model import AppointmentStatus, SlotStatus


class UTCDateTime(TypeDecorator):
    """An aware datetime stored in UTC and always read back aware (UTC).

    Naive values are refused: a naive time is a bug waiting for a DST change.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError("naive datetime given to a UTC column; pass an aware datetime")
        value = value.astimezone(dt.timezone.utc)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.timezone.utc)
        return value.astimezone(dt.timezone.utc)


def _status_check(column: str, values) -> str:
    return f"{column} IN ({', '.join(repr(v.value) for v in values)})"


# Statuses in which an appointment still holds its slot (everything but a cancellation or
# a record made in error). Used by the partial unique index below.
SLOT_RELEASING_STATUSES = (AppointmentStatus.CANCELLED, AppointmentStatus.ENTERED_IN_ERROR)
_HOLDS_SLOT = text(
    "status NOT IN (" + ", ".join(f"'{s.value}'" for s in SLOT_RELEASING_STATUSES) + ")"
)


def new_appointment_id() -> str:
    """Opaque, unguessable enough for a button payload; not a sequence number (which would
    tell a patient how busy the clinic is and invite guessing other ids)."""
    return "apt_" + secrets.token_hex(5)


def new_patient_id() -> str:
    return "pat_" + secrets.token_hex(6)


class LocationRow(Base):
    __tablename__ = "locations"

    id = Column(String(64), primary_key=True)  # stable code, e.g. "riverside"
    name = Column(String(200), nullable=False)
    address = Column(String(300), nullable=False)
    directions = Column(Text, nullable=False, default="")
    parking = Column(Text, nullable=False, default="")
    # IANA zone of the site: slot local times (time-of-day filter) are computed in it.
    timezone = Column(String(64), nullable=False)
    active = Column(Boolean, nullable=False, default=True)


class PractitionerRow(Base):
    __tablename__ = "practitioners"

    id = Column(String(64), primary_key=True)
    name = Column(String(200), nullable=False)
    specialty = Column(String(100), nullable=False)
    languages = Column(JSON, nullable=False)  # list of language names / BCP-47 codes
    active = Column(Boolean, nullable=False, default=True)


class ServiceRow(Base):
    __tablename__ = "services"

    id = Column(String(64), primary_key=True)  # code used in payloads, e.g. "gp_consultation"
    name = Column(String(200), nullable=False)
    specialty = Column(String(100), nullable=False)
    duration_minutes = Column(Integer, nullable=False)
    preparation = Column(Text, nullable=False, default="")  # patientInstruction (approved text)
    synonyms = Column(JSON, nullable=False)  # list of words patients use
    active = Column(Boolean, nullable=False, default=True)

    __table_args__ = (CheckConstraint("duration_minutes > 0", name="duration_positive"),)


class PractitionerServiceRow(Base):
    __tablename__ = "practitioner_services"

    practitioner_id = Column(String(64), ForeignKey("practitioners.id"), primary_key=True)
    service_id = Column(String(64), ForeignKey("services.id"), primary_key=True)

    __table_args__ = (Index("ix_practitioner_services_service", "service_id"),)


class ScheduleRow(Base):
    __tablename__ = "schedules"

    id = Column(String(64), primary_key=True)
    practitioner_id = Column(String(64), ForeignKey("practitioners.id"), nullable=False)
    location_id = Column(String(64), ForeignKey("locations.id"), nullable=False)
    active = Column(Boolean, nullable=False, default=True)
    planning_horizon_start = Column(UTCDateTime, nullable=True)
    planning_horizon_end = Column(UTCDateTime, nullable=True)  # slots exist until here
    comment = Column(Text, nullable=True)

    __table_args__ = (Index("ix_schedules_practitioner_location", "practitioner_id", "location_id"),)


class SlotRow(Base):
    __tablename__ = "slots"

    id = Column(Integer, primary_key=True)
    schedule_id = Column(String(64), ForeignKey("schedules.id"), nullable=False)
    # Copied from the schedule (which never changes actor): the slot search filters on
    # them without a join, and the practitioner overlap index needs the practitioner.
    practitioner_id = Column(String(64), ForeignKey("practitioners.id"), nullable=False)
    location_id = Column(String(64), ForeignKey("locations.id"), nullable=False)
    start = Column(UTCDateTime, nullable=False)
    end = Column(UTCDateTime, nullable=False)
    minutes = Column(Integer, nullable=False)  # end - start: a service fits if duration <= it
    # Minute of the day the slot starts at, in the location's time zone (0..1439), computed
    # from the real instant when the slot is created: DST-safe time-of-day filters in SQL.
    local_minute = Column(Integer, nullable=False)
    status = Column(String(20), nullable=False, default=SlotStatus.FREE.value)
    comment = Column(Text, nullable=True)

    __table_args__ = (
        CheckConstraint(_status_check("status", SlotStatus), name="status_valid"),
        CheckConstraint("minutes > 0", name="minutes_positive"),
        # Overlap guard (see the module docstring) and the per-practitioner search path.
        Index("uq_slots_practitioner_start", "practitioner_id", "start", unique=True),
        # "Soonest free slots": range scan in start order.
        Index("ix_slots_status_start", "status", "start"),
        Index("ix_slots_schedule", "schedule_id"),
    )


class PatientRow(Base):
    __tablename__ = "patients"

    id = Column(String(32), primary_key=True)
    contact_key = Column(String(64), nullable=False, unique=True)  # pseudonym, never a number
    name = Column(String(200), nullable=False)
    birth_date = Column(Date, nullable=False)
    conversation_id = Column(String(128), nullable=False)  # where reminders go (pseudonymous)
    channel = Column(String(32), nullable=False)
    created_at = Column(UTCDateTime, nullable=False)
    updated_at = Column(UTCDateTime, nullable=False)


class AppointmentRow(Base):
    __tablename__ = "appointments"

    id = Column(String(32), primary_key=True)  # "apt_" + 10 hex digits
    status = Column(String(20), nullable=False)
    slot_id = Column(Integer, ForeignKey("slots.id"), nullable=False)
    service_id = Column(String(64), ForeignKey("services.id"), nullable=False)
    patient_id = Column(String(32), ForeignKey("patients.id"), nullable=False)
    # Participants copied from the slot: the slot may later move to another schedule, an
    # appointment's record of who saw the patient must not.
    practitioner_id = Column(String(64), ForeignKey("practitioners.id"), nullable=False)
    location_id = Column(String(64), ForeignKey("locations.id"), nullable=False)
    start = Column(UTCDateTime, nullable=False)
    end = Column(UTCDateTime, nullable=False)
    created = Column(UTCDateTime, nullable=False)
    updated_at = Column(UTCDateTime, nullable=False)
    cancellation_reason = Column(String(200), nullable=True)
    confirmed_at = Column(UTCDateTime, nullable=True)

    __table_args__ = (
        CheckConstraint(_status_check("status", AppointmentStatus), name="status_valid"),
        # At most one appointment holds a slot: the database's own guard against double
        # booking, whatever code path writes (partial index: SQLite >= 3.8, PostgreSQL).
        Index("uq_appointments_slot_holding", "slot_id", unique=True,
              sqlite_where=_HOLDS_SLOT, postgresql_where=_HOLDS_SLOT),
        Index("ix_appointments_patient_start", "patient_id", "start"),
        Index("ix_appointments_start", "start"),
    )


class AppointmentHistoryRow(Base):
    """Append-only: rows are inserted, never updated or deleted."""

    __tablename__ = "appointment_history"

    id = Column(Integer, primary_key=True)
    appointment_id = Column(String(32), ForeignKey("appointments.id"), nullable=False)
    at = Column(UTCDateTime, nullable=False)
    actor = Column(String(64), nullable=False)  # "patient", "staff:<id>", "system", ...
    from_status = Column(String(20), nullable=True)  # None when the appointment was created
    to_status = Column(String(20), nullable=False)
    slot_id = Column(Integer, nullable=True)
    note = Column(String(300), nullable=True)

    __table_args__ = (Index("ix_appointment_history_appointment", "appointment_id", "id"),)
