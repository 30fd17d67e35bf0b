"""The FastAPI application: pages under /inbox/, JSON API under /inbox/api/v1/."""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from pathlib import Path
from typing import Callable, Optional

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.exceptions import HTTPException
from starlette.middleware.base import BaseHTTPMiddleware

from clinic.db import database_problem, readiness_report
from clinic.inbox import sla
from clinic.inbox.audit import AuditLog
from clinic.inbox.labels import reason_label, red_flag_label, resolution_label, team_label
from clinic.inbox.languages import english_name
from clinic.inbox.model import (
    Conflict,
    Forbidden,
    InboxError,
    InvalidInput,
    InvalidTransition,
    NotFound,
)
from clinic.inbox.service import Inbox
from clinic.inbox.staff import StaffAccounts
from clinic.observability import instrument
from clinic.settings import load_settings
from inbox.context import (
    API_PREFIX,
    CsrfFailed,
    Deps,
    LoginRequired,
    session_of,
)
from inbox.formatting import local_time, whatsapp_html
from inbox.security import (
    COOKIE,
    CSRF_FIELD,
    CSRF_HEADER,
    SecurityHeaders,
    SessionCodec,
)

logger = logging.getLogger(__name__)
HERE = Path(__file__).resolve().parent

ERROR_STATUS = {NotFound: 404, Forbidden: 403, InvalidTransition: 409, Conflict: 409, InvalidInput: 422}


class SessionMiddleware(BaseHTTPMiddleware):
    async def dispatch(self, request: Request, call_next):
        codec: SessionCodec = request.app.state.deps.codec
        touch = request.query_params.get("auto") != "1" and not request.url.path.startswith("/inbox/static/")
        session = codec.load(request.cookies.get(COOKIE), touch=touch)
        request.state.session = session
        if request.url.path.startswith(API_PREFIX + "v1/") and (session.stage != "full" or session.staff_id is None):
            # Refuse before FastAPI reads and validates the body (it would answer 422 first);
            # the route's dependency still checks the account itself (disabled, logged out).
            return JSONResponse({"detail": "log in first (session missing or expired)"}, status_code=401)
        response = await call_next(request)
        session = request.state.session  # a login step may have replaced it
        path = request.url.path
        # Only inbox pages: the browser's /favicon.ico (outside the cookie's path, so sent
        # without it) must not replace the session with a fresh one.
        if session.changed and path.startswith("/inbox/") and not path.startswith("/inbox/static/"):
            response.set_cookie(COOKIE, codec.dump(session), httponly=True, samesite="strict",
                                secure=request.app.state.deps.cookie_secure, path="/inbox")
        return response


def create_app(inbox: Inbox, staff: StaffAccounts, audit: AuditLog, *, secret_key: str,
               cookie_secure: bool = False, clock: Callable[[], float] = time.time,
               background_seconds: float = 30.0, timezone: Optional[dt.tzinfo] = None) -> FastAPI:
    """``timezone``: the one times are shown in, by default the clinic's (content/clinic.yml)."""
    timezone = timezone or load_settings().timezone
    app = FastAPI(
        title="Clinic staff inbox API",
        version="1",
        description=(
            "Queues, tickets, replies, internal notes, transfers, resolutions and call-back tasks "
            "for clinic staff, plus user administration and the audit log for admins. "
            "Authentication: log in on /inbox/login (password, then TOTP); the session cookie "
            "`inbox_session` authenticates API calls, and POST/PUT calls must send the session's "
            "CSRF token (GET /inbox/api/v1/me) in the `X-CSRF-Token` header. 401 without a "
            "session, 403 for a role or team that may not."
        ),
        openapi_url="/inbox/api/openapi.json",
        docs_url=None,  # Swagger UI needs inline scripts, which the CSP forbids
        redoc_url=None,
    )
    templates = Jinja2Templates(directory=str(HERE / "templates"))  # autoescape on for .html
    templates.env.filters["duration"] = sla.human
    # Stored in UTC, read by staff in the clinic's time zone.
    templates.env.filters["when"] = lambda moment: local_time(moment, timezone)
    # Message texts as the patient's WhatsApp shows them (*bold*…), escaped first.
    templates.env.filters["whatsapp"] = whatsapp_html
    # Codes tickets store (patient_request, chest_pain), in words.
    templates.env.filters["reason_label"] = reason_label
    templates.env.filters["red_flag_label"] = red_flag_label
    templates.env.filters["team_label"] = team_label
    templates.env.filters["resolution_label"] = resolution_label
    templates.env.globals["csrf_field"] = CSRF_FIELD
    # A conversation's language: its own name ("Русский", "中文") and, for titles and notes,
    # its English name ("Russian").
    templates.env.filters["language_name"] = lambda code: inbox.catalogue.get(code).name
    templates.env.filters["language_english"] = lambda code: english_name(inbox.catalogue, code)
    app.state.deps = Deps(inbox, staff, audit,
                          SessionCodec(secret_key, lambda: inbox.settings().idle_timeout_minutes * 60, clock),
                          cookie_secure, templates)
    app.add_middleware(SessionMiddleware)
    app.add_middleware(SecurityHeaders)
    app.state.metrics = instrument(app, "inbox")  # GET /metrics, outermost: no session cookie
    app.mount("/inbox/static", StaticFiles(directory=str(HERE / "static")), name="static")

    from inbox import (
        analytics_page,
        api,
        calls,
        dead_letters,
        documents,
        erasure_page,
        knowledge_page,
        media,
        pages,
        quarantine_page,
    )

    app.include_router(api.router)
    app.include_router(pages.router)
    app.include_router(analytics_page.router)
    app.include_router(documents.router)  # patients' uploaded documents (app.state.documents)
    app.include_router(media.router)  # photos, voice notes… sent in the chat (app.state.media)
    app.include_router(dead_letters.router)  # outbound messages that could not be delivered
    app.include_router(quarantine_page.router)  # inbound messages that could not be processed
    app.include_router(erasure_page.router)  # erasure on request (supervisors and admins)
    app.include_router(calls.router)  # WhatsApp voice calls with patients (calls.py)
    app.include_router(knowledge_page.router)  # the clinic's documents: upload, review, retire (admins)

    @app.get("/inbox/health", include_in_schema=False)
    def health() -> dict:
        return {"status": "ok"}

    # Probes for an orchestrator or a load balancer (no session needed): liveness (the
    # process answers) and readiness (its database answers too).
    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict:
        return {"status": "ok"}

    @app.get("/readyz", include_in_schema=False)
    def readyz() -> JSONResponse:
        status, body = readiness_report({"database": database_problem(inbox.sessions)})
        return JSONResponse(body, status_code=status)

    @app.exception_handler(LoginRequired)
    async def login_required(request: Request, exc: LoginRequired):
        if request.url.path.startswith(API_PREFIX):
            return JSONResponse({"detail": "log in first (session missing or expired)"}, status_code=401)
        if exc.expired:
            session_of(request).say("Your session ended after a period of inactivity. Please log in again.")
        return RedirectResponse("/inbox/login", status_code=303)

    @app.exception_handler(CsrfFailed)
    async def csrf_failed(request: Request, exc: CsrfFailed):
        if request.url.path.startswith(API_PREFIX):
            return JSONResponse({"detail": f"missing or wrong {CSRF_HEADER} header"}, status_code=403)
        return templates.TemplateResponse(request, "error.html", {
            "status": 403, "message": "This form has expired or did not come from the inbox. Go back, reload and try again.",
            "member": None}, status_code=403)

    @app.exception_handler(InboxError)
    async def inbox_error(request: Request, exc: InboxError):
        code = next((c for kind, c in ERROR_STATUS.items() if isinstance(exc, kind)), 400)
        if request.url.path.startswith(API_PREFIX):
            return JSONResponse({"detail": str(exc)}, status_code=code)
        return templates.TemplateResponse(request, "error.html", {"status": code, "message": str(exc),
                                                                  "member": None}, status_code=code)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError):
        if request.url.path.startswith(API_PREFIX):
            return JSONResponse({"detail": _describe_validation(exc)}, status_code=422)
        return templates.TemplateResponse(request, "error.html", {"status": 422, "message": _describe_validation(exc),
                                                                  "member": None}, status_code=422)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException):
        if request.url.path.startswith(API_PREFIX) or exc.status_code == 405:
            return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)
        return templates.TemplateResponse(request, "error.html", {"status": exc.status_code, "message": exc.detail,
                                                                  "member": None}, status_code=exc.status_code)

    if background_seconds > 0:
        _start_background(app, inbox, background_seconds)
    return app


def _describe_validation(exc: RequestValidationError) -> str:
    parts = []
    for error in exc.errors()[:5]:
        where = ".".join(str(p) for p in error.get("loc", ()) if p not in ("body", "query", "path"))
        parts.append(f"{where or 'request'}: {error.get('msg')}")
    return "; ".join(parts) or "invalid request"


def _start_background(app: FastAPI, inbox: Inbox, every: float) -> None:
    """Re-offer overdue tickets and retry failed pause/resume calls, every ``every`` s."""
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(every):
            try:
                inbox.sweep_overdue()
                inbox.sync_bot()
            except Exception:  # noqa: BLE001 - keep the loop alive; the next round retries
                logger.exception("Inbox background round failed")

    @app.on_event("startup")
    def start() -> None:
        threading.Thread(target=loop, name="inbox-timers", daemon=True).start()

    @app.on_event("shutdown")
    def end() -> None:
        stop.set()
