"""Request and response bodies (pydantic v1: Rasa 3.6 pins it)."""

from __future__ import annotations

import datetime as dt
from typing import Dict, List, Optional

from pydantic import BaseModel, Field

from clinic.scheduling.model import Appointment, AppointmentStatus

# Outcomes the clinic may record through the API (FHIR R4 codes). Booking, moving and
# cancelling belong to the patient's conversation (or the EHR itself), not to this API.
OUTCOME_STATUSES = (AppointmentStatus.ARRIVED, AppointmentStatus.CHECKED_IN,
                    AppointmentStatus.FULFILLED, AppointmentStatus.NOSHOW,
                    AppointmentStatus.ENTERED_IN_ERROR)


class StatusChange(BaseModel):
    status: AppointmentStatus = Field(..., description="arrived, checked-in, fulfilled, noshow or entered-in-error")
    note: Optional[str] = Field(None, max_length=300, description="Free text for the history; no clinical details")


class AppointmentOut(BaseModel):
    """No patient name or date of birth: the caller's own system has them."""

    id: str
    status: AppointmentStatus
    start: dt.datetime
    end: dt.datetime
    service_id: str
    practitioner_id: str
    location_id: str
    confirmed_at: Optional[dt.datetime]
    cancellation_reason: Optional[str]

    @classmethod
    def of(cls, appointment: Appointment) -> "AppointmentOut":
        return cls(
            id=appointment.id, status=appointment.status, start=appointment.start,
            end=appointment.end, service_id=appointment.service.id,
            practitioner_id=appointment.practitioner.id, location_id=appointment.location.id,
            confirmed_at=appointment.confirmed_at,
            cancellation_reason=appointment.cancellation_reason,
        )


class HistoryEntry(BaseModel):
    at: dt.datetime
    actor: str
    from_status: Optional[str]
    to_status: Optional[str]
    note: Optional[str]


class AppointmentDetail(AppointmentOut):
    history: List[HistoryEntry]


class AppointmentReport(BaseModel):
    since: dt.datetime
    until: dt.datetime
    appointments: int = Field(..., description="appointments that started in the period")
    by_status: Dict[str, int]
    no_show_rate: Optional[float] = Field(..., description="noshow / (noshow + attended); null without outcomes")
    reminded: int = Field(..., description="appointments that got at least one reminder")
    reminder_confirmation_rate: Optional[float] = Field(..., description="confirmed by the patient / reminded")
    no_show_rate_reminded: Optional[float]
    no_show_rate_not_reminded: Optional[float]


class Problem(BaseModel):
    detail: str
