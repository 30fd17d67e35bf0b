"""Graph API errors and how to react to them (reference §7).

Meta says to branch on ``error.code``, not on the HTTP status, so classification is by code;
the HTTP status only decides for errors without a known code (a proxy's HTML 502, a reset
connection). Three disjoint classes: ``retryable`` (back off and retry), ``pacing`` (131056:
retry after 4^X s and hold that recipient back) and ``permanent`` (fix, fall back or alert).
"""

from __future__ import annotations

import json
from typing import Any, Iterable, Mapping, Optional, Union

__all__ = [
    "GraphError",
    "NETWORK_ERROR_STATUS",
    "PACING_CODES",
    "PERMANENT_CODES",
    "RETRYABLE_CODES",
    "parse_error",
]

# http_status used for failures that never produced an HTTP response (refused, reset, timeout).
NETWORK_ERROR_STATUS = 0

# --- retryable -----------------------------------------------------------------------------
API_SERVICE = 2  # temporary Graph service problem
API_TOO_MANY_CALLS = 4  # app-level Graph call rate limit
RATE_LIMIT_HIT = 80007  # WABA-level call rate limit
THROUGHPUT_LIMIT = 130429  # over the number's messages-per-second throughput
GENERIC_ERROR = 131000  # "something went wrong"
SERVICE_UNAVAILABLE = 131016  # service temporarily unavailable
ACCOUNT_IN_MAINTENANCE = 131057  # maintenance / throughput upgrade, lasts up to a minute
BUSINESS_ERROR_GENERIC = 135000  # generic user error, Meta suggests trying again

# --- pacing --------------------------------------------------------------------------------
PAIR_RATE_LIMIT = 131056  # too many messages to the same user: retry after 4^X seconds

# --- permanent (a non-exhaustive list; anything not retryable/pacing is permanent) ---------
API_UNKNOWN = 1  # unknown Graph error (retried only when it comes with a 5xx)
AUTH_FAILED = 0  # authentication failed
API_PERMISSION_DENIED = 10  # app lacks the permission
API_METHOD = 3  # capability missing for this app
INVALID_PARAMETER = 100  # unsupported or misspelled field
ACCESS_TOKEN_EXPIRED = 190  # token expired or revoked: rotate it
POLICY_BLOCKED = 368  # temporarily blocked for policy violations
MARKETING_EXPERIMENT = 130472  # user is in a marketing experiment holdout
ACCESS_DENIED = 131005  # permission denied
REQUIRED_PARAMETER_MISSING = 131008  # payload missing a field
PARAMETER_VALUE_INVALID = 131009  # payload field has an invalid value
RECIPIENT_IS_SENDER = 131021  # sending to our own number
UNDELIVERABLE = 131026  # not on WhatsApp, old client, terms not accepted
ACCOUNT_LOCKED = 131031  # business account locked
PAYMENT_ISSUE = 131042  # business payment problem
REENGAGEMENT_REQUIRED = 131047  # 24 h window closed: send a template instead
SPAM_RATE_LIMIT = 131048  # quality-based limit: slow down, do not hammer
ECOSYSTEM_ENGAGEMENT = 131049  # per-user marketing cap reached
USER_STOPPED_MARKETING = 131050  # user opted out of marketing messages
UNSUPPORTED_MESSAGE_TYPE = 131051  # message type not supported
MEDIA_DOWNLOAD_ERROR = 131052  # could not download the user's media
MEDIA_UPLOAD_ERROR = 131053  # media MIME type mismatch
TEMPLATE_PARAM_COUNT_MISMATCH = 132000  # template parameter count mismatch
TEMPLATE_MISSING = 132001  # template missing or not approved in that language
TEMPLATE_TEXT_TOO_LONG = 132005  # hydrated template text too long
TEMPLATE_POLICY = 132007  # template content policy violation
TEMPLATE_PARAM_INVALID = 132008  # template parameter value invalid
TEMPLATE_PARAM_FORMAT = 132012  # template parameter format mismatch
TEMPLATE_PAUSED = 132015  # template paused for low quality
TEMPLATE_DISABLED = 132016  # template disabled for low quality

RETRYABLE_CODES = frozenset(
    {
        API_SERVICE,
        API_TOO_MANY_CALLS,
        RATE_LIMIT_HIT,
        THROUGHPUT_LIMIT,
        GENERIC_ERROR,
        SERVICE_UNAVAILABLE,
        ACCOUNT_IN_MAINTENANCE,
        BUSINESS_ERROR_GENERIC,
    }
)
PACING_CODES = frozenset({PAIR_RATE_LIMIT})
# Codes that stay permanent even when they arrive with a 5xx or an is_transient flag.
PERMANENT_CODES = frozenset(
    {
        AUTH_FAILED,
        API_METHOD,
        API_PERMISSION_DENIED,
        INVALID_PARAMETER,
        ACCESS_TOKEN_EXPIRED,
        POLICY_BLOCKED,
        MARKETING_EXPERIMENT,
        ACCESS_DENIED,
        REQUIRED_PARAMETER_MISSING,
        PARAMETER_VALUE_INVALID,
        RECIPIENT_IS_SENDER,
        UNDELIVERABLE,
        ACCOUNT_LOCKED,
        PAYMENT_ISSUE,
        REENGAGEMENT_REQUIRED,
        SPAM_RATE_LIMIT,
        ECOSYSTEM_ENGAGEMENT,
        USER_STOPPED_MARKETING,
        UNSUPPORTED_MESSAGE_TYPE,
        MEDIA_DOWNLOAD_ERROR,
        MEDIA_UPLOAD_ERROR,
    }
)


def _is_known_permanent(code: Optional[int]) -> bool:
    if code is None:
        return False
    # 200-299: permission errors; 132000+: template errors; 133000+: registration errors.
    return code in PERMANENT_CODES or 200 <= code <= 299 or 132000 <= code < 134000


class GraphError(Exception):
    """A failed Graph API call. ``attempts`` is set by the client before it gives up."""

    def __init__(
        self,
        http_status: int,
        code: Optional[int] = None,
        message: str = "",
        *,
        subcode: Optional[int] = None,
        details: Optional[str] = None,
        fbtrace_id: Optional[str] = None,
        is_transient: Optional[bool] = None,
        error_type: Optional[str] = None,
        attempts: int = 0,
    ) -> None:
        self.http_status = http_status
        self.code = code
        self.subcode = subcode
        self.message = message
        self.details = details
        self.fbtrace_id = fbtrace_id
        self.is_transient = is_transient
        self.error_type = error_type
        self.attempts = attempts
        super().__init__(message)

    # --- classification -----------------------------------------------------------------

    @property
    def pacing(self) -> bool:
        """131056: the per-recipient pair rate limit; retry after 4^X seconds."""
        return self.code in PACING_CODES

    @property
    def retryable(self) -> bool:
        """Worth retrying with backoff (excludes ``pacing``, which has its own schedule)."""
        if self.pacing:
            return False
        if self.code in RETRYABLE_CODES:
            return True
        if _is_known_permanent(self.code):
            return False
        if self.http_status == NETWORK_ERROR_STATUS or self.http_status >= 500:
            return True
        if self.http_status == 429:  # throttled by something in front of Graph
            return True
        return self.is_transient is True  # Graph's own hint for codes we do not know

    @property
    def permanent(self) -> bool:
        """Retrying cannot help: fix the payload, fall back (template, other channel) or alert."""
        return not (self.retryable or self.pacing)

    # --- presentation ------------------------------------------------------------------

    def __str__(self) -> str:
        parts = [f"HTTP {self.http_status}" if self.http_status else "network error"]
        if self.code is not None:
            parts.append(f"code {self.code}")
        if self.subcode is not None:
            parts.append(f"subcode {self.subcode}")
        if self.attempts:
            parts.append(f"after {self.attempts} attempt{'s' if self.attempts != 1 else ''}")
        text = f"Graph API error ({', '.join(parts)})"
        if self.message:
            text += f": {self.message}"
        if self.details and self.details != self.message:
            text += f" ({self.details})"
        return text

    def __repr__(self) -> str:
        return (
            f"GraphError(http_status={self.http_status!r}, code={self.code!r}, "
            f"subcode={self.subcode!r}, attempts={self.attempts!r})"
        )

    def redact(self, secrets: Iterable[str]) -> "GraphError":
        """Remove secrets (the access token) from every text field, in place."""
        for secret in secrets:
            if not secret:
                continue
            for name in ("message", "details", "fbtrace_id", "error_type"):
                value = getattr(self, name)
                if isinstance(value, str) and secret in value:
                    setattr(self, name, value.replace(secret, "[redacted]"))
        self.args = (self.message,)
        return self


def parse_error(
    http_status: int,
    body: Union[bytes, str, Mapping[str, Any], None],
    *,
    secrets: Iterable[str] = (),
) -> GraphError:
    """Build a :class:`GraphError` from a response, whatever its body looks like.

    Non-JSON bodies (an HTML 502 page from a proxy) give ``code=None``; their text is not
    copied into the error, only described. ``secrets`` are scrubbed from the texts kept.
    """
    data: Any = body
    if isinstance(body, (bytes, bytearray)):
        try:
            data = json.loads(bytes(body).decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            data = None
    elif isinstance(body, str):
        try:
            data = json.loads(body)
        except ValueError:
            data = None

    error = data.get("error") if isinstance(data, Mapping) else None
    if not isinstance(error, Mapping):
        kind = "an empty body" if not body else "a body that is not a Graph error"
        return GraphError(http_status, None, f"HTTP {http_status} with {kind}").redact(secrets)

    error_data = error.get("error_data")
    details = error_data.get("details") if isinstance(error_data, Mapping) else None
    if details is None and isinstance(error_data, str):
        details = error_data
    message = error.get("message")
    return GraphError(
        http_status,
        _int_or_none(error.get("code")),
        message if isinstance(message, str) else "",
        subcode=_int_or_none(error.get("error_subcode")),
        details=details if isinstance(details, str) else None,
        fbtrace_id=_str_or_none(error.get("fbtrace_id")),
        is_transient=error.get("is_transient") if isinstance(error.get("is_transient"), bool) else None,
        error_type=_str_or_none(error.get("type")),
    ).redact(secrets)


def _int_or_none(value: object) -> Optional[int]:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    return None


def _str_or_none(value: object) -> Optional[str]:
    return value if isinstance(value, str) else None
