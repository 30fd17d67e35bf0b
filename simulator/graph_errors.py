"""Meta's Graph API error objects, as the Cloud API returns them synchronously and in
status webhooks (reference §7): ``{"error":{"message","type","code","error_data","fbtrace_id"}}``.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any, Dict, Optional

# code -> (HTTP status, title). Titles follow Meta's error-code page; the HTTP statuses are
# the ones Meta documents (100/131008 -> 400, 130429 -> 429, 131000 -> 500, 131016 -> 503)
# and 400 otherwise, as the reference's table.
CODES: Dict[int, tuple] = {
    100: (400, "Invalid parameter"),
    190: (401, "Invalid OAuth access token - Cannot parse access token"),
    130429: (429, "Rate limit hit"),
    131000: (500, "Something went wrong"),
    131008: (400, "Required parameter is missing"),
    131009: (400, "Parameter value is not valid"),
    131016: (503, "Service temporarily unavailable"),
    131021: (400, "Recipient cannot be sender"),
    131026: (400, "Message undeliverable"),
    131047: (400, "Re-engagement message"),
    131051: (400, "Unsupported message type"),
    131053: (400, "Media upload error"),
    131056: (400, "(Business Account, Consumer Account) pair rate limit hit"),
    131057: (400, "Account in maintenance mode"),
    132000: (400, "Number of parameters does not match the expected number of params"),
    132001: (400, "Template name does not exist in the translation"),
    132015: (400, "Template is paused"),
    132016: (400, "Template has been disabled"),
    132018: (400, "There was an issue with the parameters in your template"),
}

DEFAULT_DETAILS: Dict[int, str] = {
    130429: "Cloud API message throughput has been reached.",
    131000: "Something went wrong. Please try again later.",
    131016: "A service is temporarily unavailable. Please try again later.",
    131026: "Unable to deliver the message to this user.",
    131047: (
        "Message failed to send because more than 24 hours have passed since the customer "
        "last replied to this number."
    ),
    131056: (
        "Too many messages sent from the sender phone number to the same recipient phone "
        "number in a short period of time."
    ),
}

TRANSIENT = {130429, 131000, 131016, 131056, 131057}
ERROR_HREF = "/documentation/business-messaging/whatsapp/support/error-codes"


def fbtrace_id() -> str:
    return "A" + secrets.token_urlsafe(16)[:22]


@dataclass
class GraphError(Exception):
    """An error the Graph API answers with. ``details`` names the offending field."""

    code: int
    details: Optional[str] = None
    http_status: Optional[int] = None
    message: Optional[str] = None
    error_subcode: Optional[int] = None
    type: str = "OAuthException"
    # why the simulator refused (recorded with the message): validation|template|window|...
    reason: Optional[str] = None

    def __post_init__(self) -> None:
        super().__init__(self.title)

    @property
    def title(self) -> str:
        return CODES.get(self.code, (400, "Unknown error"))[1]

    @property
    def status(self) -> int:
        if self.http_status:
            return self.http_status
        return CODES.get(self.code, (400, ""))[0]

    def body(self) -> Dict[str, Any]:
        if self.message:
            message = self.message
        elif self.code == 190:
            message = self.title
        else:
            message = f"(#{self.code}) {self.title}"
        error: Dict[str, Any] = {"message": message, "type": self.type, "code": self.code}
        details = self.details if self.details is not None else DEFAULT_DETAILS.get(self.code)
        if details is not None:
            error["error_data"] = {"messaging_product": "whatsapp", "details": details}
        if self.error_subcode is not None:
            error["error_subcode"] = self.error_subcode
        if self.code in TRANSIENT:
            error["is_transient"] = True
        error["fbtrace_id"] = fbtrace_id()
        return {"error": error}

    def webhook_error(self) -> Dict[str, Any]:
        """The same error as it appears in ``statuses[].errors`` (title == message)."""
        details = self.details if self.details is not None else DEFAULT_DETAILS.get(self.code, self.title)
        return {
            "code": self.code,
            "title": self.title,
            "message": self.title,
            "error_data": {"details": details},
            "href": ERROR_HREF,
        }


def invalid(field: str, problem: str, code: int = 100) -> GraphError:
    """A validation error naming the field Meta-style (``interactive['body']['text']``)."""
    return GraphError(code=code, details=f"Param {field} {problem}")
