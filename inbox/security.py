"""Sessions, CSRF and security headers.

- Session: one cookie, signed with itsdangerous (HMAC-SHA1 over the JSON; tampering
  invalidates it), ``HttpOnly``, ``SameSite=Strict``, ``Secure`` behind HTTPS. It holds
  the staff id, the login stage (``password`` = first factor done, ``full`` = TOTP done),
  the account's session epoch (logout or disabling bumps it: every cookie of that user
  stops working), a CSRF token, and when it was last used. Idle longer than the setting
  (default 15 min) → logged out; absolute lifetime 12 h; the password stage lasts 5 min.
  Auto-refreshing queue pages (``?auto=1``) don't count as activity.
- CSRF: session-bound token; every form carries it in ``csrf_token``, every unsafe API
  call in the ``X-CSRF-Token`` header (plus SameSite=Strict on the cookie).
- Headers: a CSP without inline scripts or styles, X-Frame-Options DENY, no caching of
  pages that may show patient messages.
"""

from __future__ import annotations

import dataclasses
import hmac
import secrets
import time
from typing import Callable, Optional

from itsdangerous import BadSignature, URLSafeSerializer
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.requests import Request
from starlette.responses import Response

COOKIE = "inbox_session"
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"
ABSOLUTE_LIFETIME = 12 * 3600
PASSWORD_STAGE_LIFETIME = 5 * 60

CSP = ("default-src 'none'; style-src 'self'; img-src 'self'; media-src 'self'; form-action 'self'; "
       "frame-ancestors 'none'; base-uri 'none'")
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
}
# Ticket pages place and take WhatsApp calls (inbox/calls.py, static/calls.js): there, and only
# there, the inbox's own script files may run, fetch from the inbox and use the microphone.
# Still no inline script: a patient's text that slipped through escaping could not run.
CALL_PAGES = ("/inbox/tickets/", "/inbox/calls")
CALL_PAGE_HEADERS = {
    "Content-Security-Policy": CSP + "; script-src 'self'; connect-src 'self'",
    "Permissions-Policy": "camera=(), microphone=(self), geolocation=()",
}


@dataclasses.dataclass
class Session:
    staff_id: Optional[int] = None
    stage: str = "anonymous"       # anonymous | password | full
    epoch: int = 0
    csrf: str = dataclasses.field(default_factory=lambda: secrets.token_urlsafe(24))
    born: float = 0.0
    seen: float = 0.0
    flash: Optional[str] = None
    expired: bool = False          # set when an idle or old session was dropped on this request
    changed: bool = False

    def to_cookie(self) -> dict:
        data = {"u": self.staff_id, "s": self.stage, "e": self.epoch, "c": self.csrf,
                "b": self.born, "t": self.seen}
        if self.flash:
            data["f"] = self.flash
        return data

    def say(self, message: str) -> None:
        self.flash = message[:300]
        self.changed = True

    def pop_flash(self) -> Optional[str]:
        message, self.flash = self.flash, None
        if message:
            self.changed = True
        return message


class SessionCodec:
    def __init__(self, secret_key: str, idle_seconds: Callable[[], int],
                 clock: Callable[[], float] = time.time) -> None:
        self._serializer = URLSafeSerializer(secret_key, salt="inbox-session")
        self._idle = idle_seconds
        self.clock = clock

    def load(self, raw: Optional[str], touch: bool = True) -> Session:
        now = self.clock()
        fresh = Session(born=now, seen=now, changed=True)
        if not raw:
            return fresh
        try:
            data = self._serializer.loads(raw)
            session = Session(staff_id=data.get("u"), stage=data.get("s", "anonymous"),
                              epoch=int(data.get("e", 0)), csrf=str(data["c"]), born=float(data["b"]),
                              seen=float(data["t"]), flash=data.get("f"))
        except (BadSignature, KeyError, TypeError, ValueError):
            return fresh
        limit = PASSWORD_STAGE_LIFETIME if session.stage == "password" else self._idle()
        if session.stage != "anonymous" and (now - session.seen > limit or now - session.born > ABSOLUTE_LIFETIME):
            fresh.expired = session.stage == "full"
            return fresh
        if touch:
            session.seen = now
            session.changed = True
        return session

    def dump(self, session: Session) -> str:
        return self._serializer.dumps(session.to_cookie())

    def start(self, staff_id: int, stage: str, epoch: int) -> Session:
        """A new session for a login step: new CSRF token, no reuse of the old cookie
        (session fixation)."""
        now = self.clock()
        return Session(staff_id=staff_id, stage=stage, epoch=epoch, born=now, seen=now, changed=True)


def csrf_ok(session: Session, presented: Optional[str]) -> bool:
    return bool(presented) and hmac.compare_digest(session.csrf.encode(), str(presented).encode())


class SecurityHeaders(BaseHTTPMiddleware):
    async def dispatch(self, request: Request, call_next) -> Response:
        response = await call_next(request)
        if request.url.path.startswith(CALL_PAGES):
            for name, value in CALL_PAGE_HEADERS.items():
                response.headers.setdefault(name, value)
        for name, value in HEADERS.items():
            response.headers.setdefault(name, value)
        if not request.url.path.startswith("/inbox/static/"):
            response.headers["Cache-Control"] = "no-store"
        return response
