"""The ``action`` of an interactive ``flow`` message, checked as Meta documents it.

``{"name": "flow", "parameters": {"flow_message_version": "3", "flow_token", "flow_id" (or
"flow_name"), "flow_cta", "flow_action": "navigate" | "data_exchange",
"flow_action_payload": {"screen", "data"}, "mode": "draft" | "published"}}``. A
``navigate`` needs the screen to open; ``data_exchange`` asks the endpoint (INIT) instead.
"""

from __future__ import annotations

from typing import Any, Dict

from .graph_errors import GraphError, invalid

FLOW_CTA_MAX = 20  # Meta: "Maximum length: 20 characters" (30 in older pages)
PARAMETERS = {"flow_message_version", "flow_token", "flow_id", "flow_name", "flow_cta", "flow_action",
              "flow_action_payload", "mode"}


def validate_flow_action(action: Dict[str, Any]) -> None:
    where = "interactive['action']"
    for key in action:
        if key not in ("name", "parameters"):
            raise GraphError(100, details=f'Unexpected key "{key}" on param "{where}".')
    if action.get("name") != "flow":
        raise invalid(f"{where}['name']", f"must be \"flow\" - got \"{action.get('name')}\"")
    params = action.get("parameters")
    if not isinstance(params, dict):
        raise invalid(f"{where}['parameters']", "is required")
    where = f"{where}['parameters']"
    for key in params:
        if key not in PARAMETERS:
            raise GraphError(100, details=f'Unexpected key "{key}" on param "{where}".')
    if params.get("flow_message_version") != "3":
        raise invalid(f"{where}['flow_message_version']", "must be \"3\"", code=131009)
    if not params.get("flow_id") and not params.get("flow_name"):
        raise invalid(f"{where}['flow_id']", "is required (or flow_name)")
    for key in ("flow_id", "flow_name", "flow_token"):
        if key in params and (not isinstance(params[key], str) or not params[key]):
            raise invalid(f"{where}['{key}']", "must be a non-empty string", code=131009)
    cta = params.get("flow_cta")
    if not isinstance(cta, str) or not cta.strip():
        raise invalid(f"{where}['flow_cta']", "is required")
    if len(cta) > FLOW_CTA_MAX:
        raise invalid(f"{where}['flow_cta']", f"must be at most {FLOW_CTA_MAX} characters long (got {len(cta)})",
                      code=131009)
    flow_action = params.get("flow_action", "navigate")
    if flow_action not in ("navigate", "data_exchange"):
        raise invalid(f"{where}['flow_action']", f"must be one of {{navigate, data_exchange}} - got \"{flow_action}\"",
                      code=131009)
    payload = params.get("flow_action_payload")
    if flow_action == "navigate":
        if not isinstance(payload, dict) or not isinstance(payload.get("screen"), str) or not payload["screen"]:
            raise invalid(f"{where}['flow_action_payload']['screen']", "is required for flow_action navigate")
        if "data" in payload and (not isinstance(payload["data"], dict) or not payload["data"]):
            raise invalid(f"{where}['flow_action_payload']['data']", "must be a non-empty object", code=131009)
    elif payload is not None:
        raise invalid(f"{where}['flow_action_payload']", "is only for flow_action navigate", code=131009)
    if params.get("mode", "published") not in ("draft", "published"):
        raise invalid(f"{where}['mode']", "must be draft or published", code=131009)
