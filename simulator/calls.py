"""Meta's Calling API, simulated (issue 19, item 1): ``POST /{phone_number_id}/calls`` with
Meta's validation and errors, ``GET /{phone_number_id}/call_permissions``, the ``calls``
webhook field, and the patient's phone on the chat page (simulator/chat/calls.js) that
rings, answers with its microphone, hangs up and calls the clinic.

The signalling is Meta's; the media is not relayed: the two browsers' WebRTC connect
directly (host candidates on this machine), which is what a browser test needs to see a
real audio connection between the staff page and the patient page.

Lifecycle of a business-initiated call: ``connect`` (offer) → 200 ``{"calls":[{"id"}]}`` and
the patient's phone rings (chat event ``call_incoming``), a ``RINGING`` status webhook; the
patient accepts (``/_sim/calls/{id}/accept`` with their answer SDP) → ``connect`` webhook
with the answer and an ``ACCEPTED`` status; declines → ``REJECTED`` and a ``terminate``
(``FAILED``); either side hangs up → ``terminate`` (``COMPLETED``, start, end, duration).
A user-initiated call: ``/_sim/users/{wa_id}/calls`` (the patient's offer) → ``connect``
webhook (``USER_INITIATED``); the business's ``pre_accept`` / ``accept`` (answer SDP) reach
the phone (chat event ``call_answer``), ``reject`` ends it.

Permission: a business-initiated call needs the user's permission (error 138006 without),
given by a ``call_permission_reply`` (``/_sim/users/{wa_id}/call-permission``, which sends
that webhook) or automatically for 7 days when the user calls the business.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import secrets
from typing import Any, Dict, List, Optional
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from aiohttp import web

from .core import Simulator, valid_wa_id
from .graph_api import SIM_KEY, VERSION, error_response
from .graph_errors import GraphError, invalid
from .state import now
from .user_messages import SpecError
from .webhooks import contact, dumps, envelope, messages_value, metadata

PERMISSION_SECONDS = 7 * 24 * 3600  # "Temporary permission lasts 7 days"
SDP_MAX = 64 * 1024
ACTIONS = ("connect", "pre_accept", "accept", "reject", "terminate")
OPEN_STATES = ("ringing", "pre_accepted", "accepted")

TITLES = {
    138000: "Calling not enabled",
    138003: "Duplicate call",
    138006: "No approved call permission from the recipient",
}


def calling_error(code: int, details: str) -> GraphError:
    return GraphError(code, message=f"(#{code}) {TITLES[code]}", details=details, reason="calls")


@dataclasses.dataclass
class SimCall:
    id: str
    wa_id: str
    direction: str  # BUSINESS_INITIATED | USER_INITIATED
    state: str = "ringing"  # ringing | pre_accepted | accepted | ended
    offer: Optional[str] = None
    answer: Optional[str] = None
    opaque: Optional[str] = None
    created_at: float = dataclasses.field(default_factory=now)
    started_at: Optional[float] = None
    ended_at: Optional[float] = None
    outcome: Optional[str] = None  # completed | rejected | failed
    actions: List[str] = dataclasses.field(default_factory=list)

    def describe(self) -> Dict[str, Any]:
        return {"id": self.id, "wa_id": self.wa_id, "direction": self.direction, "state": self.state,
                "offer": self.offer, "answer": self.answer, "started_at": self.started_at,
                "ended_at": self.ended_at, "outcome": self.outcome, "actions": list(self.actions)}


DAYS = ("MONDAY", "TUESDAY", "WEDNESDAY", "THURSDAY", "FRIDAY", "SATURDAY", "SUNDAY")


class SimCalls:
    def __init__(self, sim: Simulator) -> None:
        self.sim = sim
        self.calls: Dict[str, SimCall] = {}
        self.permission_until: Dict[str, float] = {}
        # The number's calling settings (POST /{phone_number_id}/settings): on, icon shown,
        # no call hours (open all day) until the business sets them.
        self.settings: Dict[str, Any] = {"status": "ENABLED", "call_icon_visibility": "DEFAULT",
                                         "call_hours": {"status": "DISABLED"}}

    # ── settings ────────────────────────────────────────────────────────────────────────
    def update_settings(self, body: Any) -> Dict[str, Any]:
        calling = body.get("calling") if isinstance(body, dict) else None
        if not isinstance(calling, dict):
            raise GraphError(131008, details="The parameter calling is required.")
        if calling.get("status") not in ("ENABLED", "DISABLED"):
            raise invalid("calling['status']", "must be ENABLED or DISABLED")
        if calling.get("call_icon_visibility", "DEFAULT") not in ("DEFAULT", "DISABLE_ALL"):
            raise invalid("calling['call_icon_visibility']", "must be DEFAULT or DISABLE_ALL")
        hours = calling.get("call_hours")
        if hours is not None:
            self._check_hours(hours)
        self.settings = {"status": calling["status"],
                         "call_icon_visibility": calling.get("call_icon_visibility", "DEFAULT"),
                         "call_hours": hours or {"status": "DISABLED"}}
        self.sim.publish(None, "calling_settings", self.public_settings())
        return {"success": True}

    @staticmethod
    def _check_hours(hours: Any) -> None:
        where = "calling['call_hours']"
        if not isinstance(hours, dict) or hours.get("status") not in ("ENABLED", "DISABLED"):
            raise invalid(f"{where}['status']", "must be ENABLED or DISABLED")
        if hours["status"] == "DISABLED":
            return
        try:
            ZoneInfo(str(hours.get("timezone_id")))
        except (ZoneInfoNotFoundError, ValueError):
            raise invalid(f"{where}['timezone_id']", "is not a supported time zone") from None
        per_day: Dict[str, List[tuple]] = {}
        for item in hours.get("weekly_operating_hours") or []:
            if not isinstance(item, dict) or item.get("day_of_week") not in DAYS:
                raise invalid(f"{where}['weekly_operating_hours']", "needs day_of_week MONDAY..SUNDAY")
            opens, closes = str(item.get("open_time")), str(item.get("close_time"))
            if not (len(opens) == len(closes) == 4 and opens.isdigit() and closes.isdigit()) or opens >= closes:
                raise invalid(f"{where}['weekly_operating_hours']", "needs HHMM open_time before close_time")
            per_day.setdefault(item["day_of_week"], []).append((opens, closes))
        for windows in per_day.values():
            windows.sort()
            if len(windows) > 2 or any(b[0] < a[1] for a, b in zip(windows, windows[1:], strict=False)):
                raise invalid(f"{where}['weekly_operating_hours']", "allows two entries per day, not overlapping")

    def in_call_hours(self, at: Optional[float] = None) -> bool:
        hours = self.settings.get("call_hours") or {}
        if hours.get("status") != "ENABLED":
            return True
        local = dt.datetime.fromtimestamp(at or now(), ZoneInfo(hours["timezone_id"]))
        hhmm = local.strftime("%H%M")
        return any(item["day_of_week"] == DAYS[local.weekday()] and item["open_time"] <= hhmm < item["close_time"]
                   for item in hours.get("weekly_operating_hours") or [])

    def public_settings(self) -> Dict[str, Any]:
        """What the patient's WhatsApp shows: the call button, and whether calls go through now."""
        return {**self.settings, "icon_visible": self.settings["status"] == "ENABLED"
                and self.settings["call_icon_visibility"] == "DEFAULT", "open_now": self.in_call_hours()}

    # ── webhooks ────────────────────────────────────────────────────────────────────────
    def _send(self, wa_id: str, value_items: Dict[str, Any], call_id: str) -> None:
        user = self.sim.state.user(wa_id)
        value: Dict[str, Any] = {"messaging_product": "whatsapp", "metadata": metadata(self.sim.config),
                                 "contacts": [contact(user.name, user.wa_id, user.user_id)]}
        value.update(value_items)
        body = dumps(envelope(self.sim.config, [value], field="calls"))
        self.sim.dispatcher.send("call", body, [call_id])

    def _connect_webhook(self, call: SimCall, sdp_type: str, sdp: str) -> None:
        business = self.sim.config.display_phone_number
        sides = (call.wa_id, business) if call.direction == "USER_INITIATED" else (business, call.wa_id)
        self._send(call.wa_id, {"calls": [{
            "id": call.id, "from": sides[0], "to": sides[1], "event": "connect",
            "timestamp": str(int(now())), "direction": call.direction,
            "session": {"sdp_type": sdp_type, "sdp": sdp}}]}, call.id)

    def _status_webhook(self, call: SimCall, status: str) -> None:
        item: Dict[str, Any] = {"id": call.id, "timestamp": str(int(now())), "type": "call",
                                "status": status, "recipient_id": call.wa_id}
        if call.opaque:
            item["biz_opaque_callback_data"] = call.opaque
        self._send(call.wa_id, {"statuses": [item]}, call.id)

    def _end(self, call: SimCall, outcome: str, by: str) -> None:
        """The call is over: the phone is told, Meta's terminate webhook goes out."""
        if call.state == "ended":
            return
        call.state, call.outcome, call.ended_at = "ended", outcome, now()
        business = self.sim.config.display_phone_number
        sides = (call.wa_id, business) if call.direction == "USER_INITIATED" else (business, call.wa_id)
        item: Dict[str, Any] = {"id": call.id, "from": sides[0], "to": sides[1], "event": "terminate",
                                "direction": call.direction, "timestamp": str(int(call.ended_at)),
                                "status": "COMPLETED" if call.started_at is not None else "FAILED"}
        if call.opaque:
            item["biz_opaque_callback_data"] = call.opaque
        if call.started_at is not None:
            item["start_time"] = str(int(call.started_at))
            item["end_time"] = str(int(call.ended_at))
            item["duration"] = max(0, int(round(call.ended_at - call.started_at)))
        self._send(call.wa_id, {"calls": [item]}, call.id)
        self.sim.publish(call.wa_id, "call_ended", {"call_id": call.id, "outcome": outcome, "by": by})

    # ── the business (Graph API) ────────────────────────────────────────────────────────
    def business_action(self, body: Any) -> Dict[str, Any]:
        if not isinstance(body, dict):
            raise GraphError(100, details="The request body must be a JSON object.")
        if body.get("messaging_product") != "whatsapp":
            raise invalid("messaging_product", "must be whatsapp", code=100)
        action = body.get("action")
        if action not in ACTIONS:
            raise invalid("action", f"must be one of {', '.join(ACTIONS)}")
        if action == "connect":
            return self._connect(body)
        call_id = body.get("call_id")
        if not isinstance(call_id, str) or not call_id:
            raise GraphError(131008, details="The parameter call_id is required.")
        call = self.calls.get(call_id)
        if call is None:
            raise invalid("call_id", f"does not match any call of this phone number: {call_id!r}")
        call.actions.append(action)
        if action in ("pre_accept", "accept"):
            if call.direction != "USER_INITIATED":
                raise invalid("action", f"{action} is only for user-initiated calls")
            if call.state not in ("ringing", "pre_accepted"):
                raise invalid("call_id", "is not waiting to be answered")
            sdp = self._session(body, "answer")
            call.answer = sdp
            if action == "pre_accept":
                call.state = "pre_accepted"
            else:
                call.state, call.started_at = "accepted", now()
                if isinstance(body.get("biz_opaque_callback_data"), str):
                    call.opaque = body["biz_opaque_callback_data"][:512]
            self.sim.publish(call.wa_id, "call_answer", {"call_id": call.id, "action": action, "sdp": sdp})
        elif action == "reject":
            if call.direction != "USER_INITIATED" or call.state != "ringing" and call.state != "pre_accepted":
                raise invalid("action", "reject is only for a user-initiated call that is ringing")
            self._end(call, "rejected", "business")
        else:  # terminate
            if call.state == "ended":
                raise invalid("call_id", "has already ended")
            self._end(call, "completed" if call.started_at else "cancelled", "business")
        return {"messaging_product": "whatsapp", "success": True}

    def _session(self, body: Dict[str, Any], sdp_type: str) -> str:
        session = body.get("session")
        if not isinstance(session, dict):
            raise GraphError(131008, details="The parameter session is required.")
        if session.get("sdp_type") != sdp_type:
            raise invalid("session['sdp_type']", f"must be {sdp_type}")
        sdp = session.get("sdp")
        if not isinstance(sdp, str) or not sdp.startswith("v=0") or len(sdp) > SDP_MAX:
            raise invalid("session['sdp']", "must be an RFC 8866 SDP")
        return sdp

    def _connect(self, body: Dict[str, Any]) -> Dict[str, Any]:
        to = body.get("to")
        if isinstance(body.get("recipient"), str):
            user = self.sim.state.user_by_bsuid(body["recipient"])
            if user is None:
                raise invalid("recipient", "does not match any WhatsApp user", code=131009)
            wa_id = user.wa_id
        elif isinstance(to, str) and to:
            try:
                wa_id = valid_wa_id(to)
            except SpecError:
                raise invalid("to", "is not a valid WhatsApp phone number", code=131009) from None
        else:
            raise GraphError(131008, details="The parameter to is required.")
        sdp = self._session(body, "offer")
        opaque = body.get("biz_opaque_callback_data")
        if opaque is not None and (not isinstance(opaque, str) or len(opaque) > 512):
            raise invalid("biz_opaque_callback_data", "must be a string of at most 512 characters")
        if self.permission_until.get(wa_id, 0) <= now():
            raise calling_error(138006, "The user has not given this business permission to call them.")
        if any(c.wa_id == wa_id and c.state in OPEN_STATES for c in self.calls.values()):
            raise calling_error(138003, "A call is already ongoing with the receiver.")
        call = SimCall(id="wacid." + secrets.token_urlsafe(24), wa_id=wa_id, direction="BUSINESS_INITIATED",
                       offer=sdp, opaque=opaque, actions=["connect"])
        self.calls[call.id] = call
        self.sim.publish(wa_id, "call_incoming", {"call_id": call.id, "sdp": sdp,
                                                  "name": self.sim.config.business_name})
        self._status_webhook(call, "RINGING")
        return {"messaging_product": "whatsapp", "calls": [{"id": call.id}]}

    def permissions(self, wa_id: str) -> Dict[str, Any]:
        until = self.permission_until.get(wa_id, 0)
        granted = until > now()
        permission: Dict[str, Any] = {"status": "granted" if granted else "no_permission"}
        if granted:
            permission["expiration_time"] = int(until)
        return {"messaging_product": "whatsapp", "permission": permission, "actions": [
            {"action_name": "send_call_permission_request", "can_perform_action": not granted, "limits": []},
            {"action_name": "start_call", "can_perform_action": granted, "limits": []}]}

    # ── the patient's phone (control API) ───────────────────────────────────────────────
    def _call(self, call_id: str) -> SimCall:
        call = self.calls.get(call_id)
        if call is None:
            raise SpecError(f"no call {call_id!r}")
        return call

    def user_accept(self, call_id: str, sdp: Any) -> Dict[str, Any]:
        call = self._call(call_id)
        if call.direction != "BUSINESS_INITIATED" or call.state != "ringing":
            raise SpecError("only a ringing call from the business can be accepted")
        if not isinstance(sdp, str) or not sdp.startswith("v=0"):
            raise SpecError("sdp (the phone's SDP answer) is required")
        call.answer, call.state, call.started_at = sdp, "accepted", now()
        self._connect_webhook(call, "answer", sdp)
        self._status_webhook(call, "ACCEPTED")
        return call.describe()

    def user_decline(self, call_id: str) -> Dict[str, Any]:
        call = self._call(call_id)
        if call.direction != "BUSINESS_INITIATED" or call.state != "ringing":
            raise SpecError("only a ringing call from the business can be declined")
        self._status_webhook(call, "REJECTED")
        self._end(call, "rejected", "user")
        return call.describe()

    def user_hang_up(self, call_id: str) -> Dict[str, Any]:
        call = self._call(call_id)
        if call.state == "ended":
            raise SpecError("the call has already ended")
        self._end(call, "completed" if call.started_at else "cancelled", "user")
        return call.describe()

    def user_calls(self, wa_id: str, sdp: Any, name: Optional[str] = None) -> Dict[str, Any]:
        if self.settings["status"] != "ENABLED":
            raise SpecError("this business does not take WhatsApp calls")
        if not self.in_call_hours():
            raise SpecError("outside the business's call hours: WhatsApp shows them and offers a call back")
        user = self.sim.ensure_user(wa_id, name, None)
        if not isinstance(sdp, str) or not sdp.startswith("v=0"):
            raise SpecError("sdp (the phone's SDP offer) is required")
        call = SimCall(id="wacid." + secrets.token_urlsafe(24), wa_id=user.wa_id, direction="USER_INITIATED",
                       offer=sdp)
        self.calls[call.id] = call
        # A user's call opens the 24-hour window and gives the business permission to call back.
        user.last_inbound_at = now()
        self.permission_until[user.wa_id] = now() + PERMISSION_SECONDS
        self._connect_webhook(call, "offer", sdp)
        return call.describe()

    def user_permission(self, wa_id: str, response: str, context_id: Optional[str] = None) -> Dict[str, Any]:
        """The patient answers a call-permission request: the ``call_permission_reply``
        webhook on the messages field, and the permission itself."""
        if response not in ("accept", "reject"):
            raise SpecError("response must be accept or reject")
        user = self.sim.ensure_user(wa_id, None, None)
        interactive: Dict[str, Any] = {"type": "call_permission_reply", "call_permission_reply": {
            "response": response, "response_source": "user_action"}}
        if response == "accept":
            until = now() + PERMISSION_SECONDS
            self.permission_until[user.wa_id] = until
            interactive["call_permission_reply"]["expiration_timestamp"] = int(until)
        else:
            self.permission_until.pop(user.wa_id, None)
        wamid = "wamid." + secrets.token_urlsafe(24)
        message: Dict[str, Any] = {"from": user.wa_id, "id": wamid, "timestamp": str(int(now())),
                                   "type": "interactive", "interactive": interactive}
        if context_id:
            message["context"] = {"from": self.sim.config.display_phone_number, "id": context_id}
        user.last_inbound_at = now()
        body = dumps(envelope(self.sim.config, [messages_value(
            self.sim.config, [contact(user.name, user.wa_id, user.user_id)], [message])]))
        self.sim.dispatcher.send("message", body, [wamid])
        return {"wamid": wamid, "permission": self.permissions(user.wa_id)["permission"]}


CALLS_KEY: "web.AppKey[SimCalls]" = web.AppKey("sim_calls", SimCalls)


async def _json(request: web.Request) -> Any:
    try:
        return json.loads((await request.read()).decode("utf-8") or "null")
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise GraphError(100, details="The request body is not valid JSON.") from None


async def calls_endpoint(request: web.Request) -> web.Response:
    sim = request.app[SIM_KEY]
    try:
        sim.check_token(request.headers.get("Authorization"))
        sim.check_phone_number_id(request.match_info["phone_number_id"])
        await sim.apply_fault("calls", None)
        result = request.app[CALLS_KEY].business_action(await _json(request))
    except GraphError as error:
        return error_response(error)
    return web.json_response(result)


async def permissions_endpoint(request: web.Request) -> web.Response:
    sim = request.app[SIM_KEY]
    try:
        sim.check_token(request.headers.get("Authorization"))
        sim.check_phone_number_id(request.match_info["phone_number_id"])
        wa_id = request.query.get("user_wa_id")
        if not wa_id:
            raise GraphError(131008, details="The parameter user_wa_id is required.")
        result = request.app[CALLS_KEY].permissions(wa_id)
    except GraphError as error:
        return error_response(error)
    return web.json_response(result)


def _control(method_name: str, *args_from: str):
    async def handler(request: web.Request) -> web.Response:
        data: Dict[str, Any] = {}
        if request.can_read_body:
            try:
                data = json.loads(await request.read() or b"{}")
            except ValueError:
                return web.json_response({"error": "body must be JSON"}, status=400)
        calls = request.app[CALLS_KEY]
        try:
            args = [request.match_info.get(name, data.get(name)) for name in args_from]
            return web.json_response(getattr(calls, method_name)(*args))
        except SpecError as exc:
            return web.json_response({"error": str(exc)}, status=400)
    return handler


async def settings_endpoint(request: web.Request) -> web.Response:
    sim = request.app[SIM_KEY]
    try:
        sim.check_token(request.headers.get("Authorization"))
        sim.check_phone_number_id(request.match_info["phone_number_id"])
        calls = request.app[CALLS_KEY]
        if request.method == "GET":
            return web.json_response({"calling": calls.settings})
        result = calls.update_settings(await _json(request))
    except GraphError as error:
        return error_response(error)
    return web.json_response(result)


async def calling_for_phone(request: web.Request) -> web.Response:
    return web.json_response(request.app[CALLS_KEY].public_settings())


async def calls_log(request: web.Request) -> web.Response:
    calls = request.app[CALLS_KEY].calls.values()
    wa_id = request.query.get("user")
    return web.json_response({"calls": [c.describe() for c in calls if not wa_id or c.wa_id == wa_id]})


def add_routes(app: web.Application) -> None:
    sim = app[SIM_KEY]
    calls = app[CALLS_KEY] = SimCalls(sim)
    # POST /_sim/reset clears the calls, permissions and calling settings too.
    reset = sim.reset

    async def reset_with_calls() -> None:
        await reset()
        fresh = SimCalls(sim)
        calls.calls, calls.permission_until, calls.settings = fresh.calls, fresh.permission_until, fresh.settings

    sim.reset = reset_with_calls  # type: ignore[method-assign]
    r = app.router
    r.add_post(f"/{VERSION}/{{phone_number_id}}/calls", calls_endpoint)
    r.add_get(f"/{VERSION}/{{phone_number_id}}/call_permissions", permissions_endpoint)
    r.add_post(f"/{VERSION}/{{phone_number_id}}/settings", settings_endpoint)
    r.add_get(f"/{VERSION}/{{phone_number_id}}/settings", settings_endpoint)
    r.add_get("/_sim/calling", calling_for_phone)
    r.add_get("/_sim/calls", calls_log)
    r.add_post("/_sim/calls/{call_id}/accept", _control("user_accept", "call_id", "sdp"))
    r.add_post("/_sim/calls/{call_id}/decline", _control("user_decline", "call_id"))
    r.add_post("/_sim/calls/{call_id}/hangup", _control("user_hang_up", "call_id"))
    r.add_post("/_sim/users/{wa_id}/calls", _control("user_calls", "wa_id", "sdp", "name"))
    r.add_post("/_sim/users/{wa_id}/call-permission", _control("user_permission", "wa_id", "response", "context_id"))
