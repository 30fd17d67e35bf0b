"""The FastAPI application for the clinic's own systems. Each concern is a router in
clinic_api/routes/; the app holds the shared services in ``app.state``."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from fastapi_offline import FastAPIOffline
from sqlalchemy.orm import sessionmaker

from clinic.api_keys import ApiKeys
from clinic.db import database_problem, readiness_report
from clinic.observability import instrument
from clinic.scheduling.backend import SchedulingBackend
from clinic_api.auth import authenticate_first
from clinic_api.routes import appointments, notifications, portal, reports


def create_app(scheduling: SchedulingBackend, api_keys: ApiKeys, session_factory: sessionmaker,
               settings=None, portal_tokens=None) -> FastAPI:
    # FastAPIOffline: FastAPI whose /api/docs page loads Swagger UI's script, style sheet and
    # icon from assets shipped in the fastapi-offline package, served by this app under
    # /api/docs/static, not from a CDN: clinic networks are often cut off from the internet,
    # and FastAPI's own page is blank there.
    app = FastAPIOffline(
        title="Clinic assistant API",
        version="1",
        description="For the clinic's own systems: record appointment outcomes (arrived, "
                    "fulfilled, no-show) and read aggregate reports. Every call needs an API "
                    "key (`Authorization: Bearer ck_…`) with the scope the endpoint names.",
        openapi_url="/api/openapi.json",
        docs_url="/api/docs",
        static_url="/api/docs/static",
        swagger_ui_oauth2_redirect_url="/api/docs/oauth2-redirect",
        redoc_url=None,
    )
    app.state.scheduling = scheduling
    app.state.api_keys = api_keys
    app.state.sessions = session_factory
    _notification_services(app, session_factory, settings, portal_tokens)
    app.middleware("http")(authenticate_first)
    app.state.metrics = instrument(app, "clinic_api")  # GET /metrics, outermost: no API key

    @app.get("/api/health", include_in_schema=False)
    def health() -> dict:
        return {"status": "ok"}

    # Probes for an orchestrator or a load balancer (no API key): liveness (the process
    # answers) and readiness (its database answers too).
    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict:
        return {"status": "ok"}

    @app.get("/readyz", include_in_schema=False)
    def readyz() -> JSONResponse:
        status, body = readiness_report({"database": database_problem(session_factory)})
        return JSONResponse(body, status_code=status)

    app.include_router(appointments.router)
    app.include_router(reports.router)
    app.include_router(notifications.router)
    portal.install(app)  # the portal API, the demo portal pages, and HTML errors under /portal
    return app


def _notification_services(app: FastAPI, session_factory: sessionmaker, settings, portal_tokens) -> None:
    """Notifications and portal links (clinic.notifications, clinic.portal)."""
    import datetime as dt

    from clinic.notifications.service import NotificationService
    from clinic.portal.tokens import PortalTokens, load_token_key
    from clinic.settings import load_settings

    app.state.settings = settings = settings or load_settings()
    app.state.portal_tokens = portal_tokens or PortalTokens(
        session_factory, load_token_key(), dt.timedelta(hours=settings.portal_token_hours))
    app.state.notifications = NotificationService(session_factory)
