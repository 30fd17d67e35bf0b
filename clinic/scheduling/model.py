"""Plain data the scheduling backend hands out (no ORM objects leave the package).

Names follow FHIR R4 Schedule / Slot / Appointment so an EHR adapter maps field by field:
``Slot.status`` (free | busy | busy-unavailable | busy-tentative | entered-in-error),
``Appointment.status`` (the 10 R4 codes), ``start`` / ``end`` as aware datetimes (UTC inside,
shown in the clinic's time zone), ``patientInstruction`` → ``Service.preparation``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
from typing import Optional, Tuple


class SlotStatus(str, enum.Enum):
    FREE = "free"
    BUSY = "busy"
    BUSY_UNAVAILABLE = "busy-unavailable"
    BUSY_TENTATIVE = "busy-tentative"
    ENTERED_IN_ERROR = "entered-in-error"


class AppointmentStatus(str, enum.Enum):
    """FHIR R4 AppointmentStatus value set."""

    PROPOSED = "proposed"
    PENDING = "pending"
    BOOKED = "booked"
    ARRIVED = "arrived"
    FULFILLED = "fulfilled"
    CANCELLED = "cancelled"
    NOSHOW = "noshow"
    ENTERED_IN_ERROR = "entered-in-error"
    CHECKED_IN = "checked-in"
    WAITLIST = "waitlist"

    @property
    def is_active(self) -> bool:
        """Still ahead of the patient: can be confirmed, moved or cancelled."""
        return self in (AppointmentStatus.BOOKED, AppointmentStatus.PENDING,
                        AppointmentStatus.PROPOSED)


# Allowed status changes (as real EHRs restrict them, e.g. Oracle Millennium's API).
TRANSITIONS = {
    AppointmentStatus.PROPOSED: {AppointmentStatus.BOOKED, AppointmentStatus.CANCELLED},
    AppointmentStatus.PENDING: {AppointmentStatus.BOOKED, AppointmentStatus.CANCELLED},
    AppointmentStatus.BOOKED: {AppointmentStatus.ARRIVED, AppointmentStatus.CHECKED_IN,
                               AppointmentStatus.CANCELLED, AppointmentStatus.NOSHOW,
                               AppointmentStatus.FULFILLED, AppointmentStatus.ENTERED_IN_ERROR},
    AppointmentStatus.ARRIVED: {AppointmentStatus.CHECKED_IN, AppointmentStatus.FULFILLED,
                                AppointmentStatus.ENTERED_IN_ERROR},
    AppointmentStatus.CHECKED_IN: {AppointmentStatus.FULFILLED,
                                   AppointmentStatus.ENTERED_IN_ERROR},
}


@dataclasses.dataclass(frozen=True)
class Location:
    id: str
    name: str
    address: str
    directions: str
    parking: str


@dataclasses.dataclass(frozen=True)
class Practitioner:
    id: str
    name: str  # display name, e.g. "Dr Amara Okafor"
    specialty: str  # e.g. "general practice"
    languages: Tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class Service:
    """An appointment type (FHIR serviceType / appointmentType)."""

    id: str  # stable code used in payloads, e.g. "gp_consultation"
    name: str  # e.g. "GP consultation"
    specialty: str
    duration_minutes: int
    preparation: str  # patientInstruction: non-clinical, approved text
    synonyms: Tuple[str, ...] = ()  # words patients use for it ("check-up", "doctor")


@dataclasses.dataclass(frozen=True)
class Slot:
    id: str
    start: dt.datetime  # aware, UTC
    end: dt.datetime
    practitioner: Practitioner
    location: Location
    service_id: str
    status: SlotStatus = SlotStatus.FREE


@dataclasses.dataclass(frozen=True)
class Patient:
    id: str
    contact_key: str  # keyed pseudonym of the contact (Services.contact_key_for); never a number
    name: str
    birth_date: dt.date
    # Where proactive messages (reminders) go: Rasa's conversation id, which on WhatsApp is
    # itself a pseudonym (the connector never gives Rasa a phone number), and the channel.
    conversation_id: str
    channel: str


@dataclasses.dataclass(frozen=True)
class Appointment:
    id: str  # opaque (e.g. "apt_3f9c2a7b1d"): safe to carry in a button payload
    status: AppointmentStatus
    start: dt.datetime
    end: dt.datetime
    service: Service
    practitioner: Practitioner
    location: Location
    patient_id: str
    slot_id: str
    created: dt.datetime
    cancellation_reason: Optional[str] = None
    confirmed_at: Optional[dt.datetime] = None  # patient tapped "Confirm" on a reminder


@dataclasses.dataclass(frozen=True)
class SlotQuery:
    """What the patient asked for. ``practitioner_id=None`` means "anyone"."""

    service_id: str
    earliest: dt.datetime  # aware; never before "now"
    latest: dt.datetime  # aware
    practitioner_id: Optional[str] = None
    location_id: Optional[str] = None
    # Time-of-day filter in the clinic's local time (e.g. mornings: 08:00-12:00); None = any.
    day_start: Optional[dt.time] = None
    day_end: Optional[dt.time] = None
    limit: int = 10


class SchedulingError(Exception):
    """Base of the errors a patient can be told about kindly (no data was changed)."""


class NotFound(SchedulingError):
    pass


class NotYours(SchedulingError):
    """The appointment exists but belongs to another contact (e.g. a forwarded reminder)."""


class SlotUnavailable(SchedulingError):
    """Someone else booked the slot first (or it was withdrawn): offer the next slots."""


class InvalidTransition(SchedulingError):
    """E.g. cancelling an appointment that is already cancelled or fulfilled."""
