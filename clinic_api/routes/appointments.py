"""Appointment outcomes from the clinic's systems (FHIR R4 statuses)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException, Request, status

from clinic.api_keys import ApiClient
from clinic.scheduling.backend import SchedulingBackend
from clinic.scheduling.model import InvalidTransition, NotFound
from clinic_api.auth import require_scope
from clinic_api.routes.common import ERRORS
from clinic_api.schemas import (
    OUTCOME_STATUSES,
    AppointmentDetail,
    AppointmentOut,
    HistoryEntry,
    Problem,
    StatusChange,
)

router = APIRouter(prefix="/api/v1/appointments", tags=["appointments"])
READ_APPOINTMENTS = require_scope("appointments:read")
WRITE_APPOINTMENTS = require_scope("appointments:write")


@router.get("/{appointment_id}", response_model=AppointmentDetail,
            responses={**ERRORS, 404: {"model": Problem}}, summary="One appointment and its history",
            description="Scope: `appointments:read`.")
def get_appointment(appointment_id: str, request: Request,
                    client: ApiClient = Depends(READ_APPOINTMENTS)):
    backend: SchedulingBackend = request.app.state.scheduling
    try:
        appointment = backend.appointment(appointment_id)
    except NotFound:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such appointment") from None
    history = [HistoryEntry(**{k: entry.get(k) for k in HistoryEntry.__fields__})
               for entry in backend.history(appointment_id)]
    return AppointmentDetail(**AppointmentOut.of(appointment).dict(), history=history)


@router.post("/{appointment_id}/status", response_model=AppointmentOut,
             responses={**ERRORS, 404: {"model": Problem}, 409: {"model": Problem}},
             summary="Record an outcome",
             description="Scope: `appointments:write`. Allowed: "
                         + ", ".join(s.value for s in OUTCOME_STATUSES)
                         + ". Changes are checked (e.g. a cancelled appointment cannot become "
                           "fulfilled) and written to the appointment's history with the key's name.")
def set_status(appointment_id: str, change: StatusChange, request: Request,
               client: ApiClient = Depends(WRITE_APPOINTMENTS)):
    if change.status not in OUTCOME_STATUSES:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY,
                            f"status must be one of {[s.value for s in OUTCOME_STATUSES]}")
    backend: SchedulingBackend = request.app.state.scheduling
    try:
        appointment = backend.set_status(appointment_id, change.status, actor=client.actor,
                                         note=change.note)
    except NotFound:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such appointment") from None
    except InvalidTransition as error:
        raise HTTPException(status.HTTP_409_CONFLICT,
                            str(error) or "that change is not allowed") from None
    return AppointmentOut.of(appointment)
