"""WhatsApp Flows data exchange: the decrypted request and the answers (reference: Flows).

A request is ``{version, action, screen, data, flow_token}``; ``action`` is ``ping`` (the
health check), ``INIT`` (the Flow opens with ``flow_action: data_exchange``), ``BACK``,
``data_exchange`` (a screen's footer or a component asked for the next screen) or
``navigate``. Answers: the next screen with its data, or the closing of the Flow. Errors are
HTTP statuses: 421 (cannot decrypt), 427 (the flow token is no longer valid), 432 (the
request signature does not verify). Nothing here knows the project.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, Mapping, Optional

__all__ = [
    "ACTIONS",
    "CANNOT_DECRYPT",
    "FlowRequest",
    "FlowRequestError",
    "SIGNATURE_FAILED",
    "TOKEN_NO_LONGER_VALID",
    "close_flow",
    "next_screen",
    "parse_request",
    "PING_ANSWER",
]

CANNOT_DECRYPT = 421
TOKEN_NO_LONGER_VALID = 427
SIGNATURE_FAILED = 432

ACTIONS = ("ping", "INIT", "BACK", "data_exchange", "navigate")
PING_ANSWER: Dict[str, Any] = {"data": {"status": "active"}}
# Meta's error-notification request ("data": {"error": ..., "error_message": ...}) is
# acknowledged with this.
ERROR_ACKNOWLEDGED: Dict[str, Any] = {"data": {"acknowledged": True}}


class FlowRequestError(ValueError):
    """The decrypted request does not have Meta's shape (HTTP 400)."""


@dataclass(frozen=True)
class FlowRequest:
    version: str
    action: str
    screen: Optional[str] = None
    data: Mapping[str, Any] = field(default_factory=dict)
    flow_token: Optional[str] = None

    @property
    def is_error_notification(self) -> bool:
        """WhatsApp tells the endpoint that its previous answer was unusable."""
        return self.action == "data_exchange" and "error" in self.data


def parse_request(payload: Mapping[str, Any]) -> FlowRequest:
    action = payload.get("action")
    if action not in ACTIONS:
        raise FlowRequestError("action must be one of " + ", ".join(ACTIONS))
    version = payload.get("version")
    if not isinstance(version, str) or not version:
        raise FlowRequestError("version is required")
    data = payload.get("data") or {}
    if not isinstance(data, dict):
        raise FlowRequestError("data must be an object")
    screen = payload.get("screen")
    token = payload.get("flow_token")
    if action != "ping" and (not isinstance(token, str) or not token):
        raise FlowRequestError("flow_token is required")
    return FlowRequest(version=version, action=str(action),
                       screen=screen if isinstance(screen, str) and screen else None,
                       data=data, flow_token=token if isinstance(token, str) else None)


def next_screen(version: str, screen: str, data: Mapping[str, Any]) -> Dict[str, Any]:
    return {"version": version, "screen": screen, "data": dict(data)}


def close_flow(version: str, flow_token: str, params: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
    """Close the Flow from the endpoint; WhatsApp then sends the ``nfm_reply`` webhook."""
    return {"version": version, "screen": "SUCCESS",
            "data": {"extension_message_response": {
                "params": {"flow_token": flow_token, **dict(params or {})}}}}
