"""Portal links: the verification API for a clinic's real portal, and the demo portal pages.

* ``POST /api/v1/portal/tokens/verify`` (scope ``portal:verify``): a real portal passes the
  token from ``{portal_url}/t/<token>`` (and, once its user has signed in, their patient id)
  and learns which patient and document it opens, or why not. Modelled on OAuth token
  introspection (RFC 7662): an answer about a bad token is a 200 with ``valid: false`` and
  a ``reason``, since the call itself succeeded. ``consume: true`` uses the token up (do
  it when the document is shown, not when the link is opened: link previews open links).
* ``GET/POST /portal/t/<token>`` (no API key; not in the OpenAPI spec): the embedded demo
  portal. It checks the link, asks for the patient's date of birth, then redeems the token
  and shows a synthetic document. Expired, used, locked and forged links get a clear page.
  Responses are never cached, never framed, and send no Referer (the URL holds the token).
  An *upload* link (clinic/portal/uploads.py) opens an upload form instead: PDF, JPEG or
  PNG up to 10 MB, recognised from the bytes; the file is stored encrypted and the link is
  used up by the upload.
* An *access* link (purpose ``access``, clinic/privacy_access.py: "send me my data" in the
  chat) asks for the date of birth like a results link, is used up when the page is shown,
  and shows what the product holds about the patient, with a *Download* button: a POST to
  ``/portal/access/download`` carrying a second single-use token (purpose ``access_file``,
  minted after the second factor, 15 minutes) that answers the same data as a JSON file
  (``Content-Disposition: attachment``). Each view and download is in the audit log with
  counts only.
* ``POST /api/v1/portal/upload-links`` (scope ``portal:links``): a single-use upload link
  for a patient (insurance card, referral letter), bound to the patient's conversation.
  The action server mints the same links with ``clinic.portal.uploads.issue_upload_link``.
* ``GET /portal``: what the portal is (links arrive in the chat; no account, no password).
  Every page under ``/portal`` — unknown addresses, wrong methods, malformed requests and
  server errors included — answers an HTML page in the patient's language, never JSON.
"""

from __future__ import annotations

import datetime as dt
import logging
import urllib.parse
from pathlib import Path
from typing import Any, AsyncIterator, Literal, Optional, Tuple

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.exception_handlers import http_exception_handler, request_validation_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader
from pydantic import BaseModel, Field
from sqlalchemy.orm import sessionmaker
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import ClientDisconnect

from clinic import privacy_access as pa
from clinic.api_keys import ApiClient
from clinic.clock import utcnow
from clinic.language.memory import LanguageMemory
from clinic.portal import texts
from clinic.portal import tokens as tk
from clinic.portal import uploads as up
from clinic.portal.demo_documents import demo_document, patient_facts
from clinic.portal.tables import PortalTokenRow
from clinic.records.store import RecordStore
from clinic_api.auth import require_scope
from clinic_api.routes.common import ERRORS

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/api/v1/portal", tags=["portal"])
pages = APIRouter(prefix="/portal", include_in_schema=False)
VERIFY = require_scope("portal:verify")
LINKS = require_scope("portal:links")


class VerifyRequest(BaseModel):
    token: str = Field(..., min_length=1, max_length=200, description="the <token> of {portal_url}/t/<token>")
    patient_id: Optional[str] = Field(None, max_length=32,
                                      description="the portal's signed-in patient; a token for another "
                                                  "patient is refused (wrong_patient)")
    consume: bool = Field(False, description="use the token up (single use): do it when showing the document")


class VerifyResponse(BaseModel):
    valid: bool
    reason: Optional[str] = Field(None, description="when not valid: " + ", ".join(tk.ERRORS))
    patient_id: Optional[str] = None
    document_id: Optional[str] = None
    purpose: Optional[str] = None
    expires_at: Optional[dt.datetime] = None


@router.post("/tokens/verify", response_model=VerifyResponse, responses={**ERRORS},
             summary="Verify (and optionally use up) a portal link token",
             description="Scope: `portal:verify`. Answers which patient and document the token opens, or "
                         "why it opens nothing (`forged`, `unknown`, `expired`, `used`, `locked`, "
                         "`wrong_patient`). Every attempt is logged with the key's name, never the token.")
def verify(body: VerifyRequest, request: Request, client: ApiClient = Depends(VERIFY)):
    portal: tk.PortalTokens = request.app.state.portal_tokens
    try:
        grant = (portal.redeem if body.consume else portal.check)(body.token, body.patient_id, via=client.actor)
    except tk.TokenError as error:
        return VerifyResponse(valid=False, reason=error.reason)
    return VerifyResponse(valid=True, patient_id=grant.patient_id, document_id=grant.document_id,
                          purpose=grant.purpose, expires_at=grant.expires_at)


class UploadLinkRequest(BaseModel):
    patient_id: str = Field(..., min_length=1, max_length=32, description="the patient, as in notifications")
    kind: Literal["insurance_card", "referral_letter", "document"] = Field(
        "document", description="what the patient is asked to send; the upload page names it")


class UploadLinkResponse(BaseModel):
    status: Literal["issued", "patient_not_reachable"] = Field(
        ..., description="`patient_not_reachable`: the assistant has no conversation with this patient")
    url: Optional[str] = Field(None, description="`{portal_url}/t/<token>`: for the patient only; it works "
                                                 "once, until `expires_at`")
    expires_at: Optional[dt.datetime] = None


@router.post("/upload-links", response_model=UploadLinkResponse, responses={**ERRORS},
             summary="Mint a single-use link for a patient to upload a document",
             description="Scope: `portal:links`. For documents the assistant asks patients not to send in "
                         "the chat (insurance cards, referral letters). The file goes to the patient's "
                         "conversation: staff see it on the inbox ticket. PDF, JPEG or PNG, up to 10 MB; "
                         "stored encrypted. The answer carries the link: pass it to the patient only.")
def upload_link(body: UploadLinkRequest, request: Request, client: ApiClient = Depends(LINKS)) -> UploadLinkResponse:
    from clinic.scheduling.tables import PatientRow

    state = request.app.state
    with state.sessions() as session:
        patient = session.get(PatientRow, body.patient_id)
        conversation = patient.conversation_id if patient is not None else None
    if not conversation:
        return UploadLinkResponse(status="patient_not_reachable")
    url, issued = up.issue_upload_link(state.portal_tokens, state.settings.portal_url, conversation, body.kind,
                                       patient_id=body.patient_id, source=client.actor)
    state.portal_tokens.log(issued.token_id, "upload_link_issued", client.actor)
    return UploadLinkResponse(status="issued", url=url, expires_at=issued.expires_at)


# ── the demo portal ─────────────────────────────────────────────────────────────────────
HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
                               "frame-ancestors 'none'; base-uri 'none'",
    "X-Robots-Tag": "noindex",
}
DEMO = "portal_demo"
HOME = "/portal"
# A request to an upload link may carry the file plus the multipart framing; past this it is
# refused as too large without being kept.
BODY_LIMIT = up.MAX_BYTES + 64 * 1024
# Past BODY_LIMIT the rest is still read and dropped, up to this much, so that the browser,
# which sends the whole file before reading the answer, shows the "too large" page rather
# than a reset connection. Beyond it the connection is cut.
DRAIN_LIMIT = 4 * up.MAX_BYTES
FORM_LIMIT = 4096  # the date-of-birth form
ACCEPT = "application/pdf,image/jpeg,image/png,.pdf,.jpg,.jpeg,.png"

# error → (HTTP status, the texts.yml family)
_REFUSALS = {
    tk.EXPIRED: (410, "expired"),
    tk.USED: (410, "used"),
    tk.LOCKED: (410, "locked"),
    tk.FORGED: (404, "invalid"),
    tk.UNKNOWN: (404, "invalid"),
    tk.WRONG_PATIENT: (403, "wrong_patient"),
}
_UPLOAD_STATUS = {up.TOO_LARGE: 413, up.WRONG_TYPE: 415, up.NO_FILE: 400}
_TEMPLATES = Environment(loader=FileSystemLoader(str(Path(__file__).resolve().parent.parent / "templates" / "portal")),
                         autoescape=True)


def _render(request: Request, template: str, language: str, title: str, status_code: int = 200,
            **context: Any) -> HTMLResponse:
    settings = request.app.state.settings

    def t(key: str, **values: Any) -> str:
        return texts.text(key, language, **values)

    page = _TEMPLATES.get_template(template).render(
        t=t, title=title, language=language, html_lang=texts.html_lang(language), languages=texts.language_names(),
        clinic=settings.clinic_name, reception_phone=settings.reception_phone,
        emergency_number=settings.emergency_number, portal_home=HOME, max_mb=up.MAX_BYTES // (1024 * 1024),
        demo=context.pop("demo", False), landing=context.pop("landing", False), **context)
    return HTMLResponse(page, status_code=status_code, headers=HEADERS)


# ── which language ──────────────────────────────────────────────────────────────────────
def _language(request: Request, conversation_id: Optional[str] = None) -> str:
    """?lang=, then the conversation's language, then Accept-Language (clinic/portal/texts.py)."""
    remembered = None
    if conversation_id:
        remembered = LanguageMemory(request.app.state.sessions).recall(conversation_id)
    return texts.pick(texts.choice(request.query_params.get("lang")), remembered,
                      texts.from_accept_language(request.headers.get("accept-language")))


def _token_conversation(sessions: sessionmaker, token_id: Optional[str]) -> Optional[str]:
    """The conversation a link was sent to: its own (upload links) or its patient's."""
    if not token_id:
        return None
    from clinic.scheduling.tables import PatientRow

    with sessions() as session:
        row = session.get(PortalTokenRow, token_id)
        if row is None:
            return None
        if row.conversation_id:
            return row.conversation_id
        patient = session.get(PatientRow, row.patient_id) if row.patient_id else None
        return patient.conversation_id if patient is not None else None


def _token_language(request: Request, token_id: Optional[str]) -> str:
    return _language(request, _token_conversation(request.app.state.sessions, token_id))


# ── pages ───────────────────────────────────────────────────────────────────────────────
def _message(request: Request, language: str, family: str, reason: str, status_code: int) -> HTMLResponse:
    return _render(request, "message.html", language, texts.text(f"{family}.title", language), status_code,
                   message=texts.text(f"{family}.text", language), reason=reason)


def _refusal(request: Request, error: tk.TokenError) -> HTMLResponse:
    status_code, family = _REFUSALS.get(error.reason, _REFUSALS[tk.UNKNOWN])
    return _message(request, _token_language(request, error.token_id), f"refusal.{family}", error.reason,
                    status_code)


def _confirm_form(request: Request, language: str, wrong: bool = False, purpose: str = "") -> HTMLResponse:
    error = texts.text("wrong_birth_date", language) if wrong else ""
    wording = ({"intro": "access.confirm_intro", "button": "access.open_button"} if purpose == tk.ACCESS else {})
    # The demo note ("synthetic documents only") is about documents: a patient's own data is real.
    return _render(request, "confirm.html", language, texts.text("confirm_title", language),
                   demo=purpose != tk.ACCESS, error=error, **wording)


def _upload_form(request: Request, grant: tk.Grant, language: str, refused: Optional[str] = None) -> HTMLResponse:
    kind = grant.document_id if grant.document_id in up.KINDS else "document"
    title = texts.text("upload_title", language, kind=texts.text(f"kind.{kind}", language))
    error = texts.text(f"upload.{refused}", language, max_mb=up.MAX_BYTES // (1024 * 1024)) if refused else ""
    return _render(request, "upload.html", language, title, _UPLOAD_STATUS.get(refused or "", 200),
                   error=error, error_reason=refused or "", accept=ACCEPT)


@pages.api_route("", methods=["GET", "HEAD"], response_class=HTMLResponse)
def landing(request: Request) -> HTMLResponse:
    """What the portal is: links arrive in the chat; nothing to sign in to."""
    language = _language(request)
    return _render(request, "landing.html", language, texts.text("landing_title", language), landing=True)


@pages.get("/t/{token}", response_class=HTMLResponse)
def open_link(token: str, request: Request) -> HTMLResponse:
    portal: tk.PortalTokens = request.app.state.portal_tokens
    try:
        grant = portal.check(token, via=DEMO)
    except tk.TokenError as error:
        return _refusal(request, error)
    if grant.purpose == tk.ACCESS_FILE:  # only the access page's download form takes these
        return _refusal(request, tk.TokenError(tk.UNKNOWN, grant.token_id))
    language = _token_language(request, grant.token_id)
    if grant.purpose == tk.UPLOAD:
        return _upload_form(request, grant, language)
    return _confirm_form(request, language, purpose=grant.purpose)


@pages.post("/t/{token}", response_class=HTMLResponse)
async def post_link(token: str, request: Request) -> Response:
    """The date of birth of a results link, or the file of an upload link. Async: the body
    is read here, within limits, rather than parsed in advance by FastAPI (which would
    spool a large file to a temporary file on disk, unencrypted)."""
    portal: tk.PortalTokens = request.app.state.portal_tokens
    try:
        grant = await run_in_threadpool(portal.check, token, None, DEMO)
    except tk.TokenError as error:
        await _drain(request)
        return await run_in_threadpool(_refusal, request, error)
    if grant.purpose == tk.UPLOAD:
        return await _receive_upload(token, grant, request)
    if grant.purpose == tk.ACCESS_FILE:
        await _drain(request)
        return await run_in_threadpool(_refusal, request, tk.TokenError(tk.UNKNOWN, grant.token_id))
    body, over = await _read_capped(request, FORM_LIMIT)
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if over or content_type != "application/x-www-form-urlencoded":
        language = await run_in_threadpool(_token_language, request, grant.token_id)
        return _message(request, language, "bad_request", "bad_request", 400)
    fields = urllib.parse.parse_qs(body.decode("utf-8", "replace"), max_num_fields=5)
    birth_date = (fields.get("birth_date") or [""])[0][:40]
    return await run_in_threadpool(_show_document, token, grant, request, birth_date)


def _second_factor(grant: tk.Grant, request: Request, birth_date: str, language: str) -> Optional[HTMLResponse]:
    """None when ``birth_date`` is the patient's; else the page to show (try again, or locked)."""
    portal: tk.PortalTokens = request.app.state.portal_tokens
    facts = patient_facts(request.app.state.sessions, grant.patient_id) if grant.patient_id else None
    try:
        given = dt.date.fromisoformat(birth_date.strip())
    except ValueError:
        given = None
    if facts is not None and given == facts[1]:
        return None
    if portal.second_factor_failed(grant.token_id, via=DEMO):
        return _refusal(request, tk.TokenError(tk.LOCKED, grant.token_id))
    return _confirm_form(request, language, wrong=True, purpose=grant.purpose)


def _show_document(token: str, grant: tk.Grant, request: Request, birth_date: str) -> HTMLResponse:
    portal: tk.PortalTokens = request.app.state.portal_tokens
    sessions = request.app.state.sessions
    language = _token_language(request, grant.token_id)
    refused = _second_factor(grant, request, birth_date, language)
    if refused is not None:
        return refused
    # A patient's data is collected before the link is used up: a failure leaves it usable.
    export = (access_of(request).collect_for_patient(grant.patient_id or "", grant.conversation_id or "")
              if grant.purpose == tk.ACCESS else None)
    try:
        grant = portal.redeem(token, via=DEMO)
    except tk.TokenError as error:
        return _refusal(request, error)
    if export is not None:
        return _show_access(grant, export, request, language)
    facts = patient_facts(sessions, grant.patient_id or "")
    record = RecordStore(sessions).find_document(grant.patient_id or "", grant.document_id)
    document = demo_document(grant.purpose, record.subtype if record else None, grant.document_id,
                             facts[0] if facts else "")
    return _render(request, "document.html", language, document.title, demo=True, document=document)


# ── a patient's own data ────────────────────────────────────────────────────────────────
DOWNLOAD = HOME + "/access/download"


def access_of(request: Request) -> pa.PrivacyAccess:
    """The collector of a patient's data, made on first use (it reads the keys: the clinic's,
    the documents', the tracker's keyring), like ``uploads_of``."""
    state = request.app.state
    if getattr(state, "access", None) is None:
        state.access = pa.PrivacyAccess.from_environment(state.sessions)
    return state.access


def _show_access(grant: tk.Grant, export: dict, request: Request, language: str) -> HTMLResponse:
    """The page of an access link just used up (after the second factor)."""
    access_of(request).record(pa.VIEWED, grant.conversation_id or "", export, client=_client(request))
    # grant.used_at: "now" on the tokens' own clock (the moment the link was used up).
    download = pa.issue_download(request.app.state.portal_tokens, grant, grant.used_at or utcnow())
    return _render(request, "access.html", language, texts.text("access.title", language), export=export,
                   sections=pa.SECTIONS, counts=pa.counts(export),
                   generated_at=export["generated_at"][:16].replace("T", " ") + " UTC",
                   label=lambda key: _field_label(key, language),
                   sender=lambda value: _sender(value, language),
                   minutes=int(pa.DOWNLOAD_LIFETIME.total_seconds() // 60),
                   download_action=DOWNLOAD, download_token=download.token)


def _field_label(key: str, language: str) -> str:
    name = f"access.field.{key}"
    return texts.text(name, language) if name in texts.texts() else key


def _sender(value: Any, language: str) -> str:
    name = f"access.sender.{value}"
    return texts.text(name, language) if name in texts.texts() else str(value)


def _client(request: Request) -> Optional[str]:
    return request.client.host if request.client else None


@pages.post(DOWNLOAD[len(HOME):], response_class=Response)
async def download_my_data(request: Request) -> Response:
    """The access page's download: the same data as a JSON file, once."""
    body, over = await _read_capped(request, FORM_LIMIT)
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if over or content_type != "application/x-www-form-urlencoded":
        return await run_in_threadpool(_message, request, _language(request), "bad_request", "bad_request", 400)
    fields = urllib.parse.parse_qs(body.decode("utf-8", "replace"), max_num_fields=5)
    token = (fields.get("token") or [""])[0][:200]
    return await run_in_threadpool(_download, token, request)


def _download(token: str, request: Request) -> Response:
    portal: tk.PortalTokens = request.app.state.portal_tokens
    try:
        grant = portal.check(token, via=DEMO)
        if grant.purpose != tk.ACCESS_FILE:  # an access (or results) link is not a download
            raise tk.TokenError(tk.UNKNOWN, grant.token_id)
        grant = portal.redeem(token, via=DEMO)
    except tk.TokenError as error:
        return _refusal(request, error)
    access = access_of(request)
    export = access.collect_for_patient(grant.patient_id or "", grant.conversation_id or "")
    access.record(pa.DOWNLOADED, grant.conversation_id or "", export, client=_client(request))
    name = f"my-data-{export['generated_at'][:10]}.json"
    return Response(pa.as_json(export), media_type="application/json",
                    headers={**HEADERS, "Content-Disposition": f'attachment; filename="{name}"'})


# ── uploads ─────────────────────────────────────────────────────────────────────────────
class _InMemoryMultiPartParser(MultiPartParser):
    # Starlette spools a file part over 1 MB to a temporary file: the patient's document
    # would sit on disk unencrypted. The body is capped at BODY_LIMIT, so keeping the part
    # in memory is bounded too.
    spool_max_size = BODY_LIMIT + 1


def uploads_of(request: Request) -> up.Uploads:
    """The upload service, made on first use (reading or creating var/document.key then,
    not when the app starts: most API processes and tests never receive a file)."""
    state = request.app.state
    if getattr(state, "uploads", None) is None:
        state.uploads = up.Uploads(state.sessions, up.DocumentCipher.from_environment(), state.portal_tokens)
    return state.uploads


async def _receive_upload(token: str, grant: tk.Grant, request: Request) -> HTMLResponse:
    language = await run_in_threadpool(_token_language, request, grant.token_id)
    filename, data, too_large = await _read_upload(request)
    try:
        # uploads_of reads (or, the first time, writes) the document key: off the event loop too.
        info = await run_in_threadpool(
            lambda: uploads_of(request).receive(token, filename, data, DEMO, too_large))
    except tk.TokenError as error:
        return await run_in_threadpool(_refusal, request, error)
    except up.UploadRefused as refused:
        return _upload_form(request, grant, language, refused.reason)
    return _render(request, "uploaded.html", language, texts.text("uploaded_title", language), name=info.name)


async def _read_upload(request: Request) -> Tuple[Optional[str], Optional[bytes], bool]:
    """(file name, bytes, too large) of the form's ``document`` part, read in memory."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > DRAIN_LIMIT:
        return None, None, True  # not worth reading at all
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "multipart/form-data":
        await _drain(request)
        return None, None, False
    over = [False]

    async def capped() -> AsyncIterator[bytes]:
        total = 0
        async for chunk in request.stream():
            total += len(chunk)
            if total > BODY_LIMIT:
                over[0] = True
                if total > DRAIN_LIMIT:
                    break
                continue  # read and dropped: see DRAIN_LIMIT
            yield chunk

    parser = _InMemoryMultiPartParser(request.headers, capped(), max_files=1, max_fields=5, max_part_size=1024)
    try:
        form = await parser.parse()
    except (MultiPartException, ClientDisconnect):
        return None, None, over[0]
    try:
        part = form.get("document")
        if over[0] or not isinstance(part, UploadFile):
            return None, None, over[0]
        return part.filename, await part.read(), False
    finally:
        await form.close()


async def _read_capped(request: Request, limit: int) -> Tuple[bytes, bool]:
    chunks, total = [], 0
    try:
        async for chunk in request.stream():
            total += len(chunk)
            if total > limit:
                return b"", True
            chunks.append(chunk)
    except ClientDisconnect:
        return b"", True
    return b"".join(chunks), False


async def _drain(request: Request) -> None:
    """Read and drop what the browser is still sending (bounded): see DRAIN_LIMIT."""
    total = 0
    try:
        async for chunk in request.stream():
            total += len(chunk)
            if total > DRAIN_LIMIT:
                return
    except (ClientDisconnect, RuntimeError):  # RuntimeError: the body was already read
        return


# ── never raw JSON under /portal ────────────────────────────────────────────────────────
def _patient_facing(request: Request) -> bool:
    path = request.url.path
    return path == HOME or path.startswith(HOME + "/")


def _error_page(request: Request, status_code: int) -> HTMLResponse:
    family = "not_found" if status_code == 404 else "bad_request"
    return _message(request, _language(request), family, family, status_code)


async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
    if not _patient_facing(request):
        return await http_exception_handler(request, exc)
    page = await run_in_threadpool(_error_page, request, exc.status_code)
    for name, value in (exc.headers or {}).items():  # e.g. Allow on a 405
        page.headers[name] = value
    return page


async def _invalid(request: Request, exc: RequestValidationError) -> Response:
    if not _patient_facing(request):
        return await request_validation_exception_handler(request, exc)
    return await run_in_threadpool(_error_page, request, 400)


async def _server_error(request: Request, exc: Exception) -> Response:
    # Starlette logs the exception after this answer; nothing here repeats request data.
    if not _patient_facing(request):
        return PlainTextResponse("Internal Server Error", status_code=500)
    # No conversation lookup: the database may be what failed.
    return _message(request, _language(request), "server_error", "server_error", 500)


def install(app: FastAPI) -> None:
    """Mount the portal API and pages, and make every answer under /portal a page."""
    app.include_router(router)
    app.include_router(pages)  # the demo portal: {portal_url} = http://localhost:<port>/portal

    @app.get("/", include_in_schema=False)
    def root() -> RedirectResponse:
        # make run prints http://localhost:8090/ in places: a patient landing there sees the portal.
        return RedirectResponse(HOME, status_code=303)

    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _invalid)
    app.add_exception_handler(Exception, _server_error)
