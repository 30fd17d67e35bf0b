"""What every inbox page and API route needs from a request: the application's parts
(``deps``), the session, the client's address, the logged-in member and the CSRF check.

Apart from app.py (which builds the application and includes every page's router) so the
pages depend on this module, not on the application that imports them.
"""

from __future__ import annotations

import dataclasses
from typing import Optional

from fastapi import Request
from fastapi.templating import Jinja2Templates

from clinic.inbox.audit import AuditLog
from clinic.inbox.model import NotFound
from clinic.inbox.service import Inbox
from clinic.inbox.staff import StaffAccounts, StaffMember
from inbox.security import CSRF_FIELD, CSRF_HEADER, Session, SessionCodec, csrf_ok

API_PREFIX = "/inbox/api/"


@dataclasses.dataclass
class Deps:
    inbox: Inbox
    staff: StaffAccounts
    audit: AuditLog
    codec: SessionCodec
    cookie_secure: bool
    templates: Jinja2Templates


class LoginRequired(Exception):
    def __init__(self, expired: bool = False) -> None:
        self.expired = expired


class CsrfFailed(Exception):
    pass


def deps(request: Request) -> Deps:
    return request.app.state.deps


def session_of(request: Request) -> Session:
    return request.state.session


def client_of(request: Request) -> Optional[str]:
    return request.client.host if request.client else None


def current_member(request: Request) -> StaffMember:
    """The logged-in staff member (both factors), or LoginRequired (401 / login page)."""
    session = session_of(request)
    if session.stage != "full" or session.staff_id is None:
        raise LoginRequired(expired=session.expired)
    try:
        member = deps(request).staff.get(session.staff_id)
    except NotFound:
        raise LoginRequired() from None
    if member.disabled or member.session_epoch != session.epoch:
        raise LoginRequired()
    return member


async def check_csrf(request: Request) -> None:
    session = session_of(request)
    if request.url.path.startswith(API_PREFIX):
        presented = request.headers.get(CSRF_HEADER)
    else:
        form = await request.form()
        presented = form.get(CSRF_FIELD)
    if not csrf_ok(session, presented if isinstance(presented, str) else None):
        raise CsrfFailed()
