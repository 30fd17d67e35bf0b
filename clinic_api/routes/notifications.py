"""Notifications from the clinic's systems (lab, document desk, billing, queue screen).

``POST /api/v1/notifications`` with an ``event_id`` (the caller's own id), a ``type``, the
``patient_id`` and typed ``params``: enums, dates, ticket numbers and opaque document ids,
never free text, so no clinical content can reach a WhatsApp template. The parameters also
pass the PHI guard (422 with the rules it found). Idempotent: the same event id with the
same request answers 200 with the same notification (header ``Idempotent-Replayed: true``)
and sends nothing again; the same id with a different request is a 409.
"""

from __future__ import annotations

import datetime as dt
from typing import List, Literal, Optional, Union

from fastapi import APIRouter, Body, Depends, HTTPException, Request, Response, status
from pydantic import BaseModel, Field, conint, constr
from typing_extensions import Annotated

from clinic import phi_guard
from clinic.api_keys import ApiClient
from clinic.notifications import model as m
from clinic.notifications.service import NotificationService
from clinic_api.auth import require_scope
from clinic_api.routes.common import ERRORS
from clinic_api.schemas import Problem

router = APIRouter(prefix="/api/v1/notifications", tags=["notifications"])
WRITE = require_scope("notifications:write")

EventId = constr(regex=m.EVENT_ID.pattern)
PatientId = constr(regex=m.PATIENT_ID.pattern)
DocumentId = constr(regex=m.DOCUMENT_ID.pattern)


class _Strict(BaseModel):
    class Config:
        extra = "forbid"  # an unexpected field could smuggle free text: refused


class ResultsReadyParams(_Strict):
    document_id: DocumentId = Field(..., description="the lab report's id in the clinic system (opaque)")


DocumentKind = Literal["sick_note", "records_copy", "referral_letter", "prescription", "certificate"]


class DocumentReadyParams(_Strict):
    document_kind: DocumentKind
    delivery: Literal["portal", "collect"] = Field(
        ..., description="portal: a portal link is sent; collect: ready to collect at reception")
    document_id: Optional[DocumentId] = Field(None, description="required for delivery=portal")


class BillingUpdateParams(_Strict):
    item: Literal["invoice", "insurance_claim", "refund"]
    status: Literal["issued", "paid", "overdue", "submitted", "approved", "rejected", "refunded"]
    reference: Optional[constr(regex=m.REFERENCE.pattern)] = Field(None, description="invoice or claim number")
    due_date: Optional[dt.date] = None


class QueueCalledParams(_Strict):
    ticket: constr(regex=m.TICKET.pattern) = Field(..., description="e.g. A042")
    room: constr(regex=m.ROOM.pattern) = Field(..., description="e.g. Room 4 (checked by the PHI guard)")


class QueuePositionParams(_Strict):
    ticket: constr(regex=m.TICKET.pattern)
    position: conint(ge=0, le=999) = Field(..., description="people ahead")
    estimated_minutes: conint(ge=0, le=600) = 0


class FollowupParams(_Strict):
    visit_date: dt.date


class SurveyRequestParams(_Strict):
    """No parameters: the survey asks for a 1-5 rating of the clinic's service."""


def _request(type_name: str, params_model):
    return type(f"{''.join(p.capitalize() for p in type_name.split('_'))}Notification", (_Strict,), {
        "__annotations__": {"event_id": EventId, "type": Literal[type_name], "patient_id": PatientId,
                            "params": params_model},
        "params": Field(...),
    })


ResultsReady = _request(m.RESULTS_READY, ResultsReadyParams)
DocumentReady = _request(m.DOCUMENT_READY, DocumentReadyParams)
BillingUpdate = _request(m.BILLING_UPDATE, BillingUpdateParams)
QueueCalled = _request(m.QUEUE_CALLED, QueueCalledParams)
QueuePosition = _request(m.QUEUE_POSITION, QueuePositionParams)
Followup = _request(m.FOLLOWUP, FollowupParams)
SurveyRequest = _request(m.SURVEY_REQUEST, SurveyRequestParams)
NotificationIn = Annotated[
    # survey_request: a 1-5 satisfaction survey (service_survey template), sent by the survey
    # sender with its own consent check and pacing (docs/notifications.md).
    Union[ResultsReady, DocumentReady, BillingUpdate, QueueCalled, QueuePosition, Followup, SurveyRequest],
    Body(discriminator="type"),
]


class NotificationOut(BaseModel):
    event_id: str
    type: str
    status: str = Field(..., description="queued, sent, skipped or failed")
    reason: Optional[str] = Field(None, description="why skipped or failed (e.g. opted_out, expired, "
                                                    "patient_not_reachable)")
    created_at: dt.datetime
    sent_at: Optional[dt.datetime]


class PhiFinding(BaseModel):
    rule: str
    where: str
    hint: str


class PhiProblem(BaseModel):
    detail: str
    findings: List[PhiFinding]


def _out(service: NotificationService, event_id: str) -> NotificationOut:
    state = service.status(event_id)
    return NotificationOut(event_id=state.event_id, type=state.type, status=state.status, reason=state.reason,
                           created_at=state.created_at, sent_at=state.sent_at)


@router.post("", response_model=NotificationOut,
             responses={**ERRORS, 409: {"model": Problem}, 422: {"model": PhiProblem}},
             summary="Notify a patient (results ready, document ready, billing, queue, follow-up, survey)",
             description="Scope: `notifications:write`. Sends a WhatsApp template with no clinical content "
                         "(results and documents: a single-use portal link). Idempotent per `event_id`: "
                         "a retry answers 200 with the same notification and sends nothing again; the same "
                         "id with a different request answers 409. Parameters with health information "
                         "answer 422 with the rules found. A patient the assistant doesn't know is "
                         "recorded as `skipped` (`patient_not_reachable`).")
def submit(body: NotificationIn, request: Request, response: Response,
           client: ApiClient = Depends(WRITE)):
    service: NotificationService = request.app.state.notifications
    params = body.params.dict(exclude_none=True)
    if body.type == m.DOCUMENT_READY and params["delivery"] == "portal" and not params.get("document_id"):
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY, "document_id is required for delivery=portal")
    try:
        _notification, replayed = service.submit(body.event_id, body.type, body.patient_id,
                                                 _jsonable(params), client.actor)
    except m.Conflict:
        raise HTTPException(status.HTTP_409_CONFLICT,
                            "this event_id was already used with a different request") from None
    except m.NotImplementedType:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY, f"{body.type} is not sent by this API") from None
    except phi_guard.PhiBlocked as blocked:
        from fastapi.responses import JSONResponse

        return JSONResponse(status_code=422, content={
            "detail": "the parameters contain health information; nothing was sent",
            "findings": [f.as_dict() for f in blocked.findings]})
    if replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return _out(service, body.event_id)


def _jsonable(params: dict) -> dict:
    return {key: value.isoformat() if isinstance(value, dt.date) else value for key, value in params.items()}


@router.get("/{event_id}", response_model=NotificationOut, responses={**ERRORS, 404: {"model": Problem}},
            summary="Where a notification is", description="Scope: `notifications:write` (the sender's own "
                                                           "events). queued, sent, skipped (with the reason) "
                                                           "or failed.")
def get_notification(event_id: str, request: Request, client: ApiClient = Depends(WRITE)):
    service: NotificationService = request.app.state.notifications
    if service.get(event_id) is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such notification")
    return _out(service, event_id)
