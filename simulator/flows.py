"""WhatsApp Flows in the simulator: the patient's phone opens a Flow like WhatsApp does.

Registered Flows (``--flow ID,FLOW_JSON,ENDPOINT_URL``, or ``POST /_sim/flows``) and the
business's public key (``--flows-public-key PEM``, or Meta's own
``POST /{v}/{phone_number_id}/whatsapp_business_encryption``) stand for what a business
uploads to Meta. When the chat page opens a Flow message, the simulator calls the Flow's
data endpoint exactly as WhatsApp does: the request sealed with a fresh AES-128 key wrapped
with the business's RSA key (OAEP, SHA-256), AES-GCM, signed with X-Hub-Signature-256 (the
app secret); the answer read with the flipped IV. Completing the Flow sends the
``nfm_reply`` webhook, its ``response_json`` the completion payload plus the flow token.

Control API: ``POST /_sim/flows`` (register), ``POST /_sim/users/{wa_id}/flows/open``
(``message_id``), ``POST /_sim/flows/{session}/exchange`` (``screen``, ``payload``; also
``action: BACK``), ``POST /_sim/flows/{session}/complete`` (``payload``).
"""

from __future__ import annotations

import dataclasses
import json
import secrets
from pathlib import Path
from typing import Any, Dict, List, Optional

import aiohttp
from aiohttp import web

from whatsapp import signature
from whatsapp.flows_crypto import (
    FlowDecryptError,
    decrypt_response,
    encrypt_request,
    load_public_key,
)

from .control import bad, control_body, handles_errors
from .core import valid_wa_id
from .graph_api import SIM_KEY, error_response
from .graph_errors import GraphError
from .user_messages import SpecError

DATA_API_VERSION = "3.0"
ENDPOINT_TIMEOUT_SECONDS = 10.0  # WhatsApp gives an endpoint 10 s


@dataclasses.dataclass
class RegisteredFlow:
    flow_id: str
    flow_json: Dict[str, Any]
    endpoint_uri: Optional[str]

    def screen(self, screen_id: str) -> Dict[str, Any]:
        for screen in self.flow_json.get("screens") or []:
            if screen.get("id") == screen_id:
                return dict(screen)
        raise SpecError(f"the Flow has no screen {screen_id!r}")


@dataclasses.dataclass
class FlowSession:
    id: str
    wa_id: str
    message_id: str
    flow: RegisteredFlow
    flow_token: str
    completed: bool = False


class FlowService:
    def __init__(self, flows: List[str], public_key_file: Optional[str]) -> None:
        self.flows: Dict[str, RegisteredFlow] = {}
        self.sessions: Dict[str, FlowSession] = {}
        self.public_key_pem: Optional[bytes] = Path(public_key_file).read_bytes() if public_key_file else None
        for spec in flows:
            parts = [part.strip() for part in spec.split(",")]
            if len(parts) not in (2, 3) or not parts[0]:
                raise ValueError(f"--flow must be ID,FLOW_JSON[,ENDPOINT_URL], got {spec!r}")
            self.register(parts[0], json.loads(Path(parts[1]).read_text(encoding="utf-8")),
                          parts[2] if len(parts) == 3 and parts[2] else None)

    def register(self, flow_id: str, flow_json: Any, endpoint_uri: Optional[str]) -> RegisteredFlow:
        if not isinstance(flow_json, dict) or not isinstance(flow_json.get("screens"), list):
            raise SpecError("flow_json must be a Flow JSON object with screens")
        if flow_json.get("data_api_version") and not endpoint_uri:
            raise SpecError("a Flow with data_api_version needs its endpoint_uri")
        flow = RegisteredFlow(flow_id, flow_json, endpoint_uri)
        self.flows[flow_id] = flow
        return flow

    async def call_endpoint(self, flow: RegisteredFlow, payload: Dict[str, Any], app_secret: str) -> Dict[str, Any]:
        """One data-exchange request, sealed and read back exactly as WhatsApp does."""
        if not flow.endpoint_uri:
            raise SpecError("this Flow has no data endpoint")
        if self.public_key_pem is None:
            raise SpecError("no business public key: upload one (whatsapp_business_encryption)")
        body, aes_key, iv = encrypt_request(payload, load_public_key(self.public_key_pem))
        raw = json.dumps(body).encode()
        timeout = aiohttp.ClientTimeout(total=ENDPOINT_TIMEOUT_SECONDS)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            async with session.post(flow.endpoint_uri, data=raw, headers={
                    "Content-Type": "application/json", signature.HEADER: signature.sign(raw, app_secret)}) as resp:
                text = await resp.text()
                if resp.status != 200:
                    # 421: WhatsApp re-fetches the key and retries; 427: the Flow is shown as
                    # no longer available; 432: a signature problem. The page shows which.
                    return {"error": {"status": resp.status, "message": _endpoint_error(resp.status)}}
        try:
            return {"answer": decrypt_response(text, aes_key, iv)}
        except FlowDecryptError:
            return {"error": {"status": 200, "message": "the endpoint's answer could not be decrypted"}}


def _endpoint_error(status: int) -> str:
    return {421: "the endpoint could not decrypt the request (421)",
            427: "this form is no longer available (427)",
            432: "the endpoint refused the request's signature (432)"}.get(status, f"the endpoint answered HTTP {status}")


FLOWS_KEY: "web.AppKey[FlowService]" = web.AppKey("flows", FlowService)


def _service(request: web.Request) -> FlowService:
    return request.app[FLOWS_KEY]


def _screen_answer(session: FlowSession, screen_id: str, data: Dict[str, Any]) -> Dict[str, Any]:
    return {"session": session.id, "screen": session.flow.screen(screen_id), "data": data,
            "flow_id": session.flow.flow_id}


@handles_errors
async def register_flow(request: web.Request) -> web.Response:
    data = await control_body(request)
    flow = _service(request).register(str(data.get("flow_id") or ""), data.get("flow_json"),
                                      data.get("endpoint_uri"))
    if data.get("public_key_pem"):
        _service(request).public_key_pem = str(data["public_key_pem"]).encode()
    return web.json_response({"flow_id": flow.flow_id, "screens": [s.get("id") for s in flow.flow_json["screens"]]})


async def upload_public_key(request: web.Request) -> web.Response:
    """Meta's ``POST /{v}/{phone_number_id}/whatsapp_business_encryption``
    (form field ``business_public_key``)."""
    sim = request.app[SIM_KEY]
    try:
        sim.check_token(request.headers.get("Authorization"))
        sim.check_phone_number_id(request.match_info["phone_number_id"])
    except GraphError as error:
        return error_response(error)
    form = await request.post()
    pem = str(form.get("business_public_key") or "")
    try:
        load_public_key(pem.encode())
    except ValueError:
        return web.json_response({"error": {"message": "Invalid parameter", "type": "OAuthException", "code": 100,
                                            "error_data": {"details": "business_public_key is not an RSA public key"}}},
                                 status=400)
    _service(request).public_key_pem = pem.encode()
    return web.json_response({"success": True})


@handles_errors
async def open_flow(request: web.Request) -> web.Response:
    """The patient taps the Flow message's button: its first screen."""
    sim = request.app[SIM_KEY]
    service = _service(request)
    wa_id = valid_wa_id(request.match_info["wa_id"])
    data = await control_body(request)
    message = sim.state.by_wamid.get(str(data.get("message_id") or ""))
    if message is None or message.wa_id != wa_id or (message.payload or {}).get("type") != "interactive":
        raise SpecError("no Flow message with that id in this chat")
    interactive = message.payload["interactive"]
    if interactive.get("type") != "flow":
        raise SpecError("that message is not a Flow")
    params = interactive["action"]["parameters"]
    flow = service.flows.get(params.get("flow_id") or params.get("flow_name"))
    if flow is None:
        return bad("this Flow is not registered with the simulator (--flow)", 404)
    session = FlowSession(id=secrets.token_urlsafe(12), wa_id=wa_id, message_id=message.wamid or "",
                          flow=flow, flow_token=params.get("flow_token") or "unused")
    service.sessions[session.id] = session
    if params.get("flow_action", "navigate") == "navigate":
        payload = params.get("flow_action_payload") or {}
        return web.json_response(_screen_answer(session, payload["screen"], payload.get("data") or {}))
    result = await service.call_endpoint(flow, {"version": DATA_API_VERSION, "action": "INIT",
                                                "flow_token": session.flow_token}, sim.config.app_secret)
    if "error" in result:
        return web.json_response({"session": session.id, **result})
    answer = result["answer"]
    return web.json_response(_screen_answer(session, answer["screen"], answer.get("data") or {}))


@handles_errors
async def exchange(request: web.Request) -> web.Response:
    """A footer's ``data_exchange`` (or BACK with refresh_on_back): the endpoint's next screen,
    or the same screen with its ``error_message``, or the Flow closed by the endpoint."""
    sim = request.app[SIM_KEY]
    service = _service(request)
    session = _session(service, request)
    data = await control_body(request)
    action = "BACK" if data.get("action") == "BACK" else "data_exchange"
    payload = {"version": DATA_API_VERSION, "action": action, "screen": str(data.get("screen") or ""),
               "data": data.get("payload") or {}, "flow_token": session.flow_token}
    result = await service.call_endpoint(session.flow, payload, sim.config.app_secret)
    if "error" in result:
        return web.json_response({"session": session.id, **result})
    answer = result["answer"]
    if answer.get("screen") == "SUCCESS":  # the endpoint closed the Flow
        params = ((answer.get("data") or {}).get("extension_message_response") or {}).get("params") or {}
        return web.json_response(await _complete(request, session, dict(params)))
    return web.json_response(_screen_answer(session, answer["screen"], answer.get("data") or {}))


@handles_errors
async def complete(request: web.Request) -> web.Response:
    """The terminal screen's ``complete``: the ``nfm_reply`` message to the business."""
    session = _session(_service(request), request)
    data = await control_body(request)
    payload = data.get("payload") or {}
    if not isinstance(payload, dict):
        raise SpecError("payload must be an object")
    return web.json_response(await _complete(request, session, payload))


async def _complete(request: web.Request, session: FlowSession, params: Dict[str, Any]) -> Dict[str, Any]:
    if session.completed:
        raise SpecError("this Flow was already sent")
    session.completed = True
    sim = request.app[SIM_KEY]
    response = {**params, "flow_token": session.flow_token}
    spec = {"type": "interactive", "context": session.message_id, "interactive": {
        "type": "nfm_reply",
        "nfm_reply": {"response_json": json.dumps(response, ensure_ascii=False), "body": "Sent", "name": "flow"}}}
    result = await sim.user_message(session.wa_id, spec, wait="none")
    return {"session": session.id, "completed": True, "wamid": result["wamid"], "message": result["message"]}


def _session(service: FlowService, request: web.Request) -> FlowSession:
    session = service.sessions.get(request.match_info["session"])
    if session is None:
        raise SpecError("no such Flow session")
    return session


def add_routes(app: web.Application, flows: List[str], public_key_file: Optional[str]) -> None:
    app[FLOWS_KEY] = FlowService(flows, public_key_file)
    r = app.router
    r.add_post("/_sim/flows", register_flow)
    r.add_post("/_sim/users/{wa_id}/flows/open", open_flow)
    r.add_post("/_sim/flows/{session}/exchange", exchange)
    r.add_post("/_sim/flows/{session}/complete", complete)
    r.add_post("/{version}/{phone_number_id}/whatsapp_business_encryption", upload_public_key)
