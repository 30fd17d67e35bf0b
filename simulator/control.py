"""Control API under /_sim/ (tests, benchmarks, the chat page) and the chat page itself."""

from __future__ import annotations

import asyncio
import functools
import json
import logging
from pathlib import Path
from typing import Any, Awaitable, Callable, Dict

from aiohttp import web

from . import usernames
from .config import ConfigError
from .core import WINDOW, valid_wa_id
from .graph_api import SIM_KEY
from .user_messages import SpecError
from .validation import normalise_phone

log = logging.getLogger("simulator.control")
CHAT_DIR = Path(__file__).resolve().parent / "chat"
OPTION_KEYS = ("name", "user_id", "signature", "wait") + usernames.OPTION_KEYS
HTTP_SHORTHAND = {500: 131000, 503: 131016, 429: 130429}
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def bad(message: str, status: int = 400) -> web.Response:
    return web.json_response({"error": message}, status=status)


def handles_errors(handler: Handler) -> Handler:
    @functools.wraps(handler)
    async def wrapper(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except (SpecError, ConfigError) as exc:
            return bad(str(exc))
        except (ValueError, TypeError, KeyError) as exc:
            return bad(f"invalid request: {exc}")

    return wrapper


async def control_body(request: web.Request) -> Dict[str, Any]:
    """The JSON object of a control request ({} when empty); SpecError otherwise."""
    raw = await request.read()
    if not raw.strip():
        return {}
    try:
        data = json.loads(raw)
    except ValueError:
        raise SpecError("the body must be JSON") from None
    if not isinstance(data, dict):
        raise SpecError("the body must be a JSON object")
    return data


def _float(value: Any) -> Any:
    return None if value in (None, "") else float(value)


# ------------------------------------------------------------------------ users


@handles_errors
async def user_message(request: web.Request) -> web.Response:
    sim = request.app[SIM_KEY]
    data = await control_body(request)
    spec = {k: v for k, v in data.items() if k not in OPTION_KEYS}
    if any(key in data for key in usernames.OPTION_KEYS):
        usernames.configure(sim.ensure_user(request.match_info["wa_id"], data.get("name"), data.get("user_id")), data)
    result = await sim.user_message(
        request.match_info["wa_id"], spec, name=data.get("name"), user_id=data.get("user_id"),
        signature=data.get("signature", "valid"), wait=data.get("wait", "first"),
    )
    return web.json_response(result)


@handles_errors
async def user_tap(request: web.Request) -> web.Response:
    sim = request.app[SIM_KEY]
    data = await control_body(request)
    if not data.get("message_id") or not data.get("id"):
        raise SpecError("give message_id (the business message) and id (button/row id, payload or title)")
    result = await sim.tap(request.match_info["wa_id"], data["message_id"], data["id"],
                           wait=data.get("wait", "first"), signature=data.get("signature", "valid"))
    return web.json_response(result)


@handles_errors
async def user_read(request: web.Request) -> web.Response:
    sim = request.app[SIM_KEY]
    data = await control_body(request)
    ids = data.get("message_ids")
    if ids is not None and not isinstance(ids, list):
        raise SpecError("message_ids must be an array")
    changed = sim.user_read(valid_wa_id(request.match_info["wa_id"]), ids)
    return web.json_response({"read": changed})


@handles_errors
async def user_window(request: web.Request) -> web.Response:
    sim = request.app[SIM_KEY]
    data = await control_body(request)
    return web.json_response(sim.set_window(request.match_info["wa_id"], data))


@handles_errors
async def user_upsert(request: web.Request) -> web.Response:
    sim = request.app[SIM_KEY]
    data = await control_body(request)
    user = sim.ensure_user(request.match_info["wa_id"], data.get("name"), data.get("user_id"))
    usernames.configure(user, data)
    return web.json_response(user.describe(WINDOW))


@handles_errors
async def user_change_id(request: web.Request) -> web.Response:
    """The user's business-scoped id changes: Meta's ``user_changed_user_id`` webhook."""
    data = await control_body(request)
    result = await usernames.change_user_id(request.app[SIM_KEY], valid_wa_id(request.match_info["wa_id"]),
                                            data.get("user_id"), signature=data.get("signature", "valid"))
    return web.json_response(result)


@handles_errors
async def user_get(request: web.Request) -> web.Response:
    sim = request.app[SIM_KEY]
    wa_id = valid_wa_id(request.match_info["wa_id"])
    user = sim.state.users.get(wa_id)
    if user is None:
        return bad(f"unknown user {wa_id}", 404)
    return web.json_response({**user.describe(WINDOW), "typing": sim.typing(wa_id)})


async def users_list(request: web.Request) -> web.Response:
    sim = request.app[SIM_KEY]
    return web.json_response({"users": [u.describe(WINDOW) for u in sim.state.users.values()]})


@handles_errors
async def conversation(request: web.Request) -> web.Response:
    sim = request.app[SIM_KEY]
    wa_id = valid_wa_id(request.match_info["wa_id"])
    user = sim.state.users.get(wa_id)
    return web.json_response({
        "wa_id": wa_id,
        "name": user.name if user else None,
        "typing": sim.typing(wa_id),
        "items": sim.conversation(wa_id),
    })


# ------------------------------------------------------------------------ webhooks


@handles_errors
async def batch(request: web.Request) -> web.Response:
    sim = request.app[SIM_KEY]
    data = await control_body(request)
    result = await sim.batch(data.get("messages"), layout=data.get("layout", "messages"),
                             signature=data.get("signature", "valid"), wait=data.get("wait", "first"))
    return web.json_response(result)


@handles_errors
async def statuses(request: web.Request) -> web.Response:
    sim = request.app[SIM_KEY]
    data = await control_body(request)
    items = data.get("statuses")
    if not isinstance(items, list) or not items:
        raise SpecError("statuses must be a non-empty array of {message_id, status, code?}")
    return web.json_response(sim.emit_statuses(items, batch=bool(data.get("batch")),
                                                signature=data.get("signature", "valid")))


@handles_errors
async def raw_webhook(request: web.Request) -> web.Response:
    sim = request.app[SIM_KEY]
    data = await control_body(request)
    return web.json_response(await sim.raw_webhook(data, signature=data.get("signature", "valid"),
                                                   wait=data.get("wait", "first")))


@handles_errors
async def redeliver(request: web.Request) -> web.Response:
    sim = request.app[SIM_KEY]
    data = await control_body(request)
    return web.json_response(await sim.redeliver(wamid=data.get("wamid"),
                                                 delivery_id=data.get("delivery_id"),
                                                 wait=data.get("wait", "first")))


@handles_errors
async def webhooks_log(request: web.Request) -> web.Response:
    sim = request.app[SIM_KEY]
    q = request.query
    since = _float(q.get("since"))
    include_body = q.get("body") in ("1", "true", "yes")
    items = []
    for delivery in sim.state.deliveries.values():
        if q.get("kind") and delivery.kind != q["kind"]:
            continue
        if q.get("state") and delivery.state != q["state"]:
            continue
        if q.get("wamid") and q["wamid"] not in delivery.wamids:
            continue
        if since is not None and delivery.created_at < since:
            continue
        items.append(delivery.describe(include_body=include_body))
    return web.json_response({"webhooks": items})


# ------------------------------------------------------------------------ records


@handles_errors
async def messages_log(request: web.Request) -> web.Response:
    sim = request.app[SIM_KEY]
    q = request.query
    to = normalise_phone(q["to"]) if q.get("to") else None
    since = _float(q.get("since"))
    after_seq = int(q["after_seq"]) if q.get("after_seq") else None
    items = []
    for message in sim.state.outbound.values():
        if to and message.wa_id != to:
            continue
        if q.get("status") and message.status != q["status"]:
            continue
        if q.get("type") and message.type != q["type"]:
            continue
        if q.get("wamid") and message.wamid != q["wamid"]:
            continue
        if since is not None and message.created_at < since:
            continue
        if after_seq is not None and message.seq <= after_seq:
            continue
        items.append(message.describe())
    return web.json_response({"messages": items})


@handles_errors
async def inbound_log(request: web.Request) -> web.Response:
    sim = request.app[SIM_KEY]
    q = request.query
    sender = normalise_phone(q["from"]) if q.get("from") else None
    since = _float(q.get("since"))
    items = [
        m.describe() for m in sim.state.inbound.values()
        if (not sender or m.wa_id == sender) and (since is None or m.created_at >= since)
    ]
    return web.json_response({"messages": items})


async def read_receipts(request: web.Request) -> web.Response:
    sim = request.app[SIM_KEY]
    user = request.query.get("user")
    items = [r for r in sim.state.read_receipts if not user or r["wa_id"] == user]
    return web.json_response({"read_receipts": items})


# ------------------------------------------------------------------------ faults, config


@handles_errors
async def faults_add(request: web.Request) -> web.Response:
    sim = request.app[SIM_KEY]
    data = await control_body(request)
    specs = data.get("faults") if isinstance(data.get("faults"), list) else [data]
    added = []
    for spec in specs:
        spec = dict(spec)
        if "http" in spec:
            status = int(spec.pop("http"))
            if status not in HTTP_SHORTHAND:
                raise SpecError(f"http must be one of {sorted(HTTP_SHORTHAND)}")
            spec.setdefault("code", HTTP_SHORTHAND[status])
        allowed = {"code", "count", "fraction", "seed", "delay_ms", "late_ms", "to", "endpoint", "mode"}
        unknown = set(spec) - allowed
        if unknown:
            raise SpecError(f"unknown fault keys: {', '.join(sorted(unknown))}")
        if spec.get("code") is not None:
            spec["code"] = int(spec["code"])
        if spec.get("to"):
            spec["to"] = normalise_phone(str(spec["to"]))
        added.append(sim.state.add_fault(**spec).describe())
    return web.json_response({"added": added, "faults": [f.describe() for f in sim.state.faults]})


async def faults_list(request: web.Request) -> web.Response:
    sim = request.app[SIM_KEY]
    return web.json_response({"faults": [f.describe() for f in sim.state.faults]})


async def faults_reset(request: web.Request) -> web.Response:
    sim = request.app[SIM_KEY]
    sim.state.faults.clear()
    return web.json_response({"faults": []})


@handles_errors
async def config_get(request: web.Request) -> web.Response:
    sim = request.app[SIM_KEY]
    return web.json_response(sim.config.public())


@handles_errors
async def config_set(request: web.Request) -> web.Response:
    sim = request.app[SIM_KEY]
    return web.json_response(sim.config.update_runtime(await control_body(request)))


async def templates_list(request: web.Request) -> web.Response:
    sim = request.app[SIM_KEY]
    return web.json_response({"templates": [t.describe() for t in sim.templates.all()]})


@handles_errors
async def templates_add(request: web.Request) -> web.Response:
    sim = request.app[SIM_KEY]
    data = await control_body(request)
    if not data.get("name"):
        raise SpecError("a template needs a name")
    sim.templates.add(data)
    return web.json_response({"templates": [t.describe() for t in sim.templates.all()]})


async def reset(request: web.Request) -> web.Response:
    sim = request.app[SIM_KEY]
    await sim.reset()
    return web.json_response({"reset": True})


async def do_handshake(request: web.Request) -> web.Response:
    sim = request.app[SIM_KEY]
    return web.json_response(await sim.handshake())


async def healthz(request: web.Request) -> web.Response:
    return web.json_response(request.app[SIM_KEY].health())


# ------------------------------------------------------------------------ chat page


async def stream(request: web.Request) -> web.StreamResponse:
    """Server-Sent Events for one user (``?user=<wa_id>``) or everything (no user)."""
    sim = request.app[SIM_KEY]
    user = request.query.get("user") or "*"
    response = web.StreamResponse(headers={
        "Content-Type": "text/event-stream",
        "Cache-Control": "no-cache",
        "X-Accel-Buffering": "no",
    })
    await response.prepare(request)
    queue = sim.state.bus.subscribe(user)
    try:
        hello = {"user": user, "typing": sim.typing(user) if user != "*" else False}
        await response.write(f"event: hello\ndata: {json.dumps(hello)}\n\n".encode())
        while True:
            try:
                item = await asyncio.wait_for(queue.get(), 15)
            except asyncio.TimeoutError:
                await response.write(b": keep-alive\n\n")
                continue
            if item is None:
                break
            event, data = item
            await response.write(f"event: {event}\ndata: {json.dumps(data)}\n\n".encode())
    except (ConnectionResetError, RuntimeError):
        pass
    finally:
        sim.state.bus.unsubscribe(user, queue)
    return response


async def chat_page(request: web.Request) -> web.FileResponse:
    return web.FileResponse(CHAT_DIR / "index.html", headers={"Cache-Control": "no-cache"})


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/", chat_page)
    r.add_static("/chat/", CHAT_DIR, append_version=False)
    r.add_get("/healthz", healthz)
    r.add_get("/_sim/stream", stream)
    r.add_get("/_sim/users", users_list)
    r.add_get("/_sim/users/{wa_id}", user_get)
    r.add_post("/_sim/users/{wa_id}", user_upsert)
    r.add_post("/_sim/users/{wa_id}/messages", user_message)
    r.add_post("/_sim/users/{wa_id}/tap", user_tap)
    r.add_post("/_sim/users/{wa_id}/read", user_read)
    r.add_post("/_sim/users/{wa_id}/window", user_window)
    r.add_post("/_sim/users/{wa_id}/change-user-id", user_change_id)
    r.add_get("/_sim/conversations/{wa_id}", conversation)
    r.add_post("/_sim/batch", batch)
    r.add_post("/_sim/statuses", statuses)
    r.add_post("/_sim/webhooks/raw", raw_webhook)
    r.add_post("/_sim/redeliver", redeliver)
    r.add_get("/_sim/webhooks", webhooks_log)
    r.add_get("/_sim/messages", messages_log)
    r.add_get("/_sim/inbound", inbound_log)
    r.add_get("/_sim/read-receipts", read_receipts)
    r.add_get("/_sim/faults", faults_list)
    r.add_post("/_sim/faults", faults_add)
    r.add_delete("/_sim/faults", faults_reset)
    r.add_post("/_sim/faults/reset", faults_reset)
    r.add_get("/_sim/config", config_get)
    r.add_post("/_sim/config", config_set)
    r.add_get("/_sim/templates", templates_list)
    r.add_post("/_sim/templates", templates_add)
    r.add_post("/_sim/reset", reset)
    r.add_post("/_sim/handshake", do_handshake)
