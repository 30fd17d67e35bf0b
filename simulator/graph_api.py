"""The Graph API endpoints the connector calls, with Meta's request/response/error shapes."""

from __future__ import annotations

import json
import logging
from typing import Any

from aiohttp import web

from .core import Simulator
from .graph_errors import GraphError

log = logging.getLogger("simulator.graph")
VERSION = r"{version:v[0-9]+\.[0-9]+}"
SIM_KEY: "web.AppKey[Simulator]" = web.AppKey("simulator", Simulator)


def error_response(error: GraphError) -> web.Response:
    headers = {}
    if error.code == 190:
        headers["WWW-Authenticate"] = (
            'OAuth "Facebook Platform" "invalid_token" "' + error.body()["error"]["message"] + '"'
        )
    return web.json_response(error.body(), status=error.status, headers=headers)


async def _json_body(request: web.Request) -> Any:
    raw = await request.read()
    try:
        return json.loads(raw.decode("utf-8") or "null")
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise GraphError(100, details="The request body is not valid JSON.") from None


async def send_message(request: web.Request) -> web.Response:
    sim = request.app[SIM_KEY]
    body: Any = None
    try:
        sim.check_token(request.headers.get("Authorization"))
        sim.check_phone_number_id(request.match_info["phone_number_id"])
        body = await _json_body(request)
        result = await sim.send(body)
    except GraphError as error:
        if body is None:  # refused before parsing (auth): still record what was sent
            try:
                body = json.loads(await request.read())
            except ValueError:
                body = None
        sim.record_rejected(body, error)
        return error_response(error)
    return web.json_response(result)


async def upload_media(request: web.Request) -> web.Response:
    sim = request.app[SIM_KEY]
    try:
        sim.check_token(request.headers.get("Authorization"))
        sim.check_phone_number_id(request.match_info["phone_number_id"])
        await sim.apply_fault("media", None)
        if not request.content_type.startswith("multipart/"):
            raise GraphError(100, details="Upload media as multipart/form-data with a file field.")
        form = await request.post()
        if form.get("messaging_product") != "whatsapp":
            raise GraphError(100, details="The parameter messaging_product is required.")
        upload = form.get("file")
        if not isinstance(upload, web.FileField):
            raise GraphError(100, details="The parameter file is required.")
        mime = str(form.get("type") or upload.content_type or "application/octet-stream")
        media_id = sim.upload_media(upload.file.read(), mime, upload.filename)
    except GraphError as error:
        return error_response(error)
    return web.json_response({"id": media_id})


async def get_object(request: web.Request) -> web.Response:
    """GET /{version}/{id}: a media object (URL, mime type, hash, size) or the phone number."""
    sim = request.app[SIM_KEY]
    if request.match_info["media_id"] == sim.config.phone_number_id:
        try:
            sim.check_token(request.headers.get("Authorization"))
        except GraphError as error:
            return error_response(error)
        return web.json_response({
            "verified_name": sim.config.business_name,
            "code_verification_status": "VERIFIED",
            "display_phone_number": "+" + sim.config.display_phone_number,
            "quality_rating": "GREEN",
            "platform_type": "CLOUD_API",
            "throughput": {"level": "STANDARD"},
            "id": sim.config.phone_number_id,
        })
    return await get_media(request)


async def get_media(request: web.Request) -> web.Response:
    sim = request.app[SIM_KEY]
    try:
        sim.check_token(request.headers.get("Authorization"))
        await sim.apply_fault("media", None)
        info = sim.media_info(request.match_info["media_id"], f"{request.scheme}://{request.host}")
    except GraphError as error:
        return error_response(error)
    return web.json_response(info)


async def delete_media(request: web.Request) -> web.Response:
    sim = request.app[SIM_KEY]
    try:
        sim.check_token(request.headers.get("Authorization"))
        sim.media_info(request.match_info["media_id"], "")
    except GraphError as error:
        return error_response(error)
    sim.state.media.pop(request.match_info["media_id"], None)
    return web.json_response({"success": True})


async def download_media(request: web.Request) -> web.StreamResponse:
    sim = request.app[SIM_KEY]
    try:
        sim.check_token(request.headers.get("Authorization"))
        # Faults on endpoint "media_download" (a 500 before the bytes, a slow answer…).
        await sim.apply_fault("media_download", None)
    except GraphError as error:
        return error_response(error)
    query = request.query
    try:
        media = sim.media_download(query.get("mid", ""), query.get("ext", ""), query.get("hash", ""))
    except LookupError as exc:
        return web.Response(status=404, text=str(exc))
    headers = {"Content-Type": media.mime_type.split(";")[0]}
    if media.filename:
        headers["Content-Disposition"] = f'attachment; filename="{media.filename}"'
    return web.Response(body=media.data, headers=headers)


def add_routes(app: web.Application) -> None:
    app.router.add_post(f"/{VERSION}/{{phone_number_id}}/messages", send_message)
    app.router.add_post(f"/{VERSION}/{{phone_number_id}}/media", upload_media)
    app.router.add_get(f"/{VERSION}/{{media_id}}", get_object)
    app.router.add_delete(f"/{VERSION}/{{media_id}}", delete_media)
    app.router.add_get("/whatsapp_business/attachments/", download_media)
