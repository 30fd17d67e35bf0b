"""Aggregate reports (no patient data)."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Optional

from fastapi import APIRouter, Depends, HTTPException, Query, Request, status

from clinic.api_keys import ApiClient
from clinic.reports.appointments import appointment_report
from clinic_api.auth import require_scope
from clinic_api.routes.common import ERRORS, aware
from clinic_api.schemas import AppointmentReport, Problem

router = APIRouter(prefix="/api/v1/reports", tags=["reports"])
READ_REPORTS = require_scope("reports:read")


@router.get("/appointments", response_model=AppointmentReport,
            responses={**ERRORS, 422: {"model": Problem}},
            summary="No-show and reminder-confirmation rates",
            description="Scope: `reports:read`. Aggregates only, no patient data. Default "
                        "period: the last 30 days.")
def report(request: Request,
           since: Optional[dt.datetime] = Query(None, description="ISO 8601, default now - 30 days"),
           until: Optional[dt.datetime] = Query(None, description="ISO 8601, default now"),
           client: ApiClient = Depends(READ_REPORTS)):
    now = dt.datetime.now(dt.timezone.utc)
    until = aware(until) or now
    since = aware(since) or until - dt.timedelta(days=30)
    if since >= until:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY, "since must be before until")
    return AppointmentReport(**dataclasses.asdict(
        appointment_report(request.app.state.sessions, since, until)))
