"""The analytics page of the staff inbox (supervisors and admins): the figures of
``python -m clinic.analytics report`` for the last N days, with plots served from this
origin (the CSP allows images from 'self' only). Aggregates only, no patient data; each
view is written to the audit log like other pages."""

from __future__ import annotations

import datetime as dt
import tempfile
from pathlib import Path

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, Response

from clinic.analytics.plots import write_plots
from clinic.analytics.report import build_report, summary_lines
from clinic.inbox import audit
from clinic.inbox.model import Forbidden, Role
from clinic.inbox.staff import StaffMember
from clinic.privacy import load_pseudonym_key
from inbox.context import client_of, current_member, deps
from inbox.pages import render

router = APIRouter(prefix="/inbox", include_in_schema=False)
PLOTS = ("rates", "first_response", "ratings", "daily")


def supervisor_member(request: Request) -> StaffMember:
    member = current_member(request)
    if member.role not in (Role.SUPERVISOR, Role.ADMIN):
        raise Forbidden("supervisors and administrators only")
    return member


def _report(request: Request, days: int):
    until = dt.datetime.now(dt.timezone.utc)
    # The inbox's session factory (the clinic database the report reads).
    sessions = deps(request).inbox.sessions
    return build_report(sessions, until - dt.timedelta(days=days), until, load_pseudonym_key())


@router.get("/analytics", response_class=HTMLResponse)
def analytics(request: Request, days: int = Query(30, ge=1, le=365),
              member: StaffMember = Depends(supervisor_member)):
    report = _report(request, days)
    with audit.transaction(deps(request).inbox.sessions) as session:
        audit.append(session, member.actor, "analytics_viewed", at=dt.datetime.now(dt.timezone.utc),
                     detail=f"last {days} days", client=client_of(request))
    return render(request, "analytics.html", member=member, report=report, lines=summary_lines(report),
                  days=days, plots=PLOTS)


@router.get("/analytics/{name}.png")
def plot(request: Request, name: str, days: int = Query(30, ge=1, le=365),
         member: StaffMember = Depends(supervisor_member)):
    if name not in PLOTS:
        raise HTTPException(404)
    report = _report(request, days)
    with tempfile.TemporaryDirectory() as tmp:
        write_plots(report, Path(tmp))
        return Response((Path(tmp) / f"{name}.png").read_bytes(), media_type="image/png",
                        headers={"Cache-Control": "no-store"})
