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
"""

from __future__ import annotations

import datetime as dt
import html
from typing import Optional

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, Field

from clinic.api_keys import ApiClient
from clinic.portal import tokens as tk
from clinic.portal.demo_documents import demo_document, patient_facts
from clinic.records.store import RecordStore
from clinic_api.auth import require_scope
from clinic_api.routes.common import ERRORS

router = APIRouter(prefix="/api/v1/portal", tags=["portal"])
pages = APIRouter(prefix="/portal", include_in_schema=False)
VERIFY = require_scope("portal:verify")


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

_REFUSALS = {
    tk.EXPIRED: (410, "This link has expired",
                 "For your security, portal links work for a limited time. Ask the assistant on WhatsApp "
                 "again (for example \"are my results ready?\") to get a new link."),
    tk.USED: (410, "This link has already been used",
              "Each portal link works once. If that wasn't you, please call reception. To see your document "
              "again, ask the assistant on WhatsApp for a new link."),
    tk.LOCKED: (410, "This link is locked",
                "The date of birth was entered wrongly too many times, so this link no longer works. "
                "Ask the assistant on WhatsApp for a new link, or call reception."),
    tk.FORGED: (404, "This link is not valid",
                "The link may be incomplete: open it directly from the WhatsApp message, or ask the "
                "assistant for a new one."),
    tk.UNKNOWN: (404, "This link is not valid",
                 "The link may be incomplete: open it directly from the WhatsApp message, or ask the "
                 "assistant for a new one."),
    tk.WRONG_PATIENT: (403, "This link is for someone else", "Please sign in as the patient the link was sent to."),
}


def _page(request: Request, title: str, body: str, status_code: int = 200) -> HTMLResponse:
    clinic = html.escape(request.app.state.settings.clinic_name)
    document = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)} · {clinic} portal</title>
<style>
body{{font-family:system-ui,sans-serif;max-width:36rem;margin:2rem auto;padding:0 1rem;color:#1b1b1b}}
header{{color:#2d6a4f;font-weight:600;margin-bottom:1.5rem}} .demo{{background:#fff3cd;padding:.5rem;font-size:.9rem}}
label{{display:block;margin:.75rem 0 .25rem}} input,button{{font-size:1rem;padding:.5rem}}
button{{background:#2d6a4f;color:#fff;border:0;border-radius:4px;margin-top:.75rem}}
.error{{color:#a4161a}} table{{border-collapse:collapse;width:100%}} td{{border-bottom:1px solid #ddd;padding:.4rem}}
</style></head><body>
<header>{clinic} · patient portal</header>
<p class="demo">Demo portal of the clinic assistant: synthetic documents only.</p>
<h1>{html.escape(title)}</h1>
{body}
</body></html>"""
    return HTMLResponse(document, status_code=status_code, headers=HEADERS)


def _refusal(request: Request, reason: str) -> HTMLResponse:
    status_code, title, text = _REFUSALS.get(reason, _REFUSALS[tk.UNKNOWN])
    reception = html.escape(request.app.state.settings.reception_phone)
    return _page(request, title, f'<p id="refusal" data-reason="{reason}">{html.escape(text)}</p>'
                                 f"<p>Reception: {reception}</p>", status_code)


def _form(request: Request, error: str = "") -> HTMLResponse:
    message = f'<p class="error" id="error">{html.escape(error)}</p>' if error else ""
    return _page(request, "Confirm it's you", f"""{message}
<p>To open your document, please enter your date of birth.</p>
<form method="post" autocomplete="off">
<label for="birth_date">Date of birth</label>
<input id="birth_date" name="birth_date" type="date" required>
<br><button type="submit" id="open">Open document</button>
</form>""")


@pages.get("/t/{token}", response_class=HTMLResponse)
def open_link(token: str, request: Request):
    portal: tk.PortalTokens = request.app.state.portal_tokens
    try:
        portal.check(token, via=DEMO)
    except tk.TokenError as error:
        return _refusal(request, error.reason)
    return _form(request)


@pages.post("/t/{token}", response_class=HTMLResponse)
def show_document(token: str, request: Request, birth_date: str = Form("", max_length=40)):
    portal: tk.PortalTokens = request.app.state.portal_tokens
    sessions = request.app.state.sessions
    try:
        grant = portal.check(token, via=DEMO)
    except tk.TokenError as error:
        return _refusal(request, error.reason)
    facts = patient_facts(sessions, grant.patient_id)
    try:
        given = dt.date.fromisoformat(birth_date.strip())
    except ValueError:
        given = None
    if facts is None or given != facts[1]:
        if portal.second_factor_failed(grant.token_id, via=DEMO):
            return _refusal(request, tk.LOCKED)
        return _form(request, "That date of birth doesn't match our records. Please try again.")
    try:
        grant = portal.redeem(token, via=DEMO)
    except tk.TokenError as error:
        return _refusal(request, error.reason)
    record = RecordStore(sessions).find_document(grant.patient_id, grant.document_id)
    document = demo_document(grant.purpose, record.subtype if record else None, grant.document_id, facts[0])
    rows = "".join(f"<tr><td>{html.escape(label)}</td><td>{html.escape(value)}</td></tr>"
                   for label, value in document.lines)
    return _page(request, document.title,
                 f'<table id="document">{rows}</table><p><em>{html.escape(document.note)}</em></p>'
                 "<p>This link has now been used. Ask the assistant for a new one to see this again.</p>")
