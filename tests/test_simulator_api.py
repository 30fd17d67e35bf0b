"""The simulator's Graph API judges sends as Meta does: shapes, limits, auth, the 24-hour
window, templates, read/typing, media, rate limits and injected faults."""

from __future__ import annotations

import asyncio
import base64
import copy
import hashlib
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict

import aiohttp
import pytest
import pytest_asyncio

from simulator.testing import TEST_ACCESS_TOKEN, running_simulator
from whatsapp import limits

USER = "15550123456"
OTHER = "15550199999"
PROJECT_ROOT = Path(__file__).resolve().parent.parent


@pytest_asyncio.fixture
async def sim():
    async with running_simulator() as running:
        yield running


async def open_window(sim, user: str = USER) -> Dict[str, Any]:
    return await sim.user_says(user, "hello")


def text(body: str = "Hello", to: str = USER) -> Dict[str, Any]:
    return {"messaging_product": "whatsapp", "recipient_type": "individual", "to": to,
            "type": "text", "text": {"body": body}}


def interactive(inner: Dict[str, Any], to: str = USER) -> Dict[str, Any]:
    return {"messaging_product": "whatsapp", "to": to, "type": "interactive", "interactive": inner}


def buttons(n: int = 2, title_len: int = 5, id_len: int = 4) -> Dict[str, Any]:
    return interactive({
        "type": "button",
        "body": {"text": "Choose"},
        "action": {"buttons": [
            {"type": "reply", "reply": {"id": str(i) * id_len, "title": (chr(65 + i) * title_len)}}
            for i in range(n)
        ]},
    })


def list_message(sections: int = 1, rows_per_section: int = 2, **sizes: int) -> Dict[str, Any]:
    row_title = sizes.get("row_title", 5)
    desc = sizes.get("desc", 5)
    row_id = sizes.get("row_id", 5)
    return interactive({
        "type": "list",
        "header": {"type": "text", "text": "H" * sizes.get("header", 5)},
        "body": {"text": "B" * sizes.get("body", 5)},
        "footer": {"text": "F" * sizes.get("footer", 5)},
        "action": {
            "button": "L" * sizes.get("button", 5),
            "sections": [
                {"title": "S" * sizes.get("section_title", 5) if sections == 1 else f"{s}" * sizes.get("section_title", 5),
                 "rows": [
                     {"id": (f"{s}-{r}-" + "x" * row_id)[:row_id] if row_id >= 6 else f"{s}{r}",
                      "title": "T" * row_title, "description": "D" * desc}
                     for r in range(rows_per_section)
                 ]}
                for s in range(sections)
            ],
        },
    })


def cta(display: int = 8, url: str = "https://clinic.example/portal") -> Dict[str, Any]:
    return interactive({
        "type": "cta_url",
        "body": {"text": "Open the portal"},
        "action": {"name": "cta_url", "parameters": {"display_text": "P" * display, "url": url}},
    })


def template(name: str = "appointment_reminder", params: int = 3, lang: str = "en_US",
             **extra: Any) -> Dict[str, Any]:
    components = [{"type": "body", "parameters": [{"type": "text", "text": f"v{i}"} for i in range(params)]}]
    components += extra.get("components", [])
    return {"messaging_product": "whatsapp", "to": USER, "type": "template",
            "template": {"name": name, "language": {"code": lang}, "components": components}}


def media(kind: str, **fields: Any) -> Dict[str, Any]:
    return {"messaging_product": "whatsapp", "to": USER, "type": kind, kind: fields}


def with_(body: Dict[str, Any], path: str, value: Any) -> Dict[str, Any]:
    """A copy of body with the dotted path set (``-`` deletes the key)."""
    body = copy.deepcopy(body)
    node: Any = body
    keys = path.split(".")
    for key in keys[:-1]:
        node = node[int(key)] if isinstance(node, list) else node[key]
    last = keys[-1]
    if value == "-":
        del node[last]
    elif isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return body


# --------------------------------------------------------------------- validation

BTN = "interactive.action.buttons"
SEC = "interactive.action.sections"
INVALID: Dict[str, tuple] = {
    # name: (body, expected code, text expected in error_data.details)
    "product missing": (with_(text(), "messaging_product", "-"), 100, "messaging_product"),
    "product wrong": (with_(text(), "messaging_product", "sms"), 100, "messaging_product"),
    "to missing": (with_(text(), "to", "-"), 100, "to"),
    "to not a number": (with_(text(), "to", "abc"), 100, "to"),
    "type unknown": (with_(text(), "type", "poll"), 100, "type"),
    "text object missing": (with_(text(), "text", "-"), 100, "text"),
    "text body missing": (with_(text(), "text.body", "-"), 100, "text['body']"),
    "text body empty": (text(""), 100, "text['body']"),
    "text body 4097": (text("x" * (limits.TEXT_BODY_MAX + 1)), 100, "text['body']"),
    "text unknown key": (with_(text(), "text.colour", "red"), 100, 'Unexpected key "colour"'),
    "opaque data 513": (with_(text(), "biz_opaque_callback_data", "x" * 513), 100, "biz_opaque_callback_data"),
    "buttons 4": (buttons(4), 131009, "['buttons']"),
    "buttons 0": (buttons(0), 131009, "['buttons']"),
    "button title 21": (buttons(2, title_len=21), 131009, "['buttons'][0]['reply']['title']"),
    "button title empty": (with_(buttons(1), f"{BTN}.0.reply.title", ""), 131009, "['reply']['title']"),
    "button id 257": (buttons(2, id_len=257), 131009, "['buttons'][0]['reply']['id']"),
    "button id spaces": (with_(buttons(1), f"{BTN}.0.reply.id", " a "), 131009, "['reply']['id']"),
    "button titles duplicate": (with_(buttons(2), f"{BTN}.1.reply.title", "AAAAA"), 131009, "['buttons'][1]['reply']['title']"),
    "button type wrong": (with_(buttons(1), f"{BTN}.0.type", "url"), 100, "['buttons'][0]['type']"),
    "interactive body missing": (with_(buttons(1), "interactive.body", "-"), 100, "interactive['body']"),
    "interactive body 1025": (with_(buttons(1), "interactive.body.text", "b" * 1025), 131009, "interactive['body']['text']"),
    "header text 61": (with_(buttons(1), "interactive.header", {"type": "text", "text": "h" * 61}), 131009, "interactive['header']['text']"),
    "footer 61": (with_(buttons(1), "interactive.footer", {"text": "f" * 61}), 131009, "interactive['footer']['text']"),
    "interactive type unknown": (with_(buttons(1), "interactive.type", "carousel"), 100, "interactive['type']"),
    "list rows 11": (list_message(sections=2, rows_per_section=6), 131009, "Total row count"),
    "list sections 11": (list_message(sections=11, rows_per_section=1), 131009, "['sections']"),
    "list button 21": (list_message(button=21), 131009, "interactive['action']['button']"),
    "list row title 25": (list_message(row_title=25), 131009, "['rows'][0]['title']"),
    "list row description 73": (list_message(desc=73), 131009, "['rows'][0]['description']"),
    "list row id 201": (list_message(row_id=201), 131009, "['rows'][0]['id']"),
    "list section title 25": (list_message(section_title=25), 131009, "['sections'][0]['title']"),
    "list section title missing": (with_(list_message(sections=2, rows_per_section=1), f"{SEC}.1.title", "-"), 100, "['sections'][1]['title']"),
    "list header 61": (list_message(header=61), 131009, "interactive['header']['text']"),
    "list image header": (with_(list_message(), "interactive.header", {"type": "image", "image": {"link": "https://x.example/a.png"}}), 131009, "interactive['header']['type']"),
    "list row ids duplicate": (with_(list_message(rows_per_section=2), f"{SEC}.0.rows.1.id", "00"), 131009, "['rows'][1]['id']"),
    "cta display 21": (cta(display=21), 131009, "['display_text']"),
    "cta url invalid": (cta(url="ftp://clinic.example"), 131009, "['url']"),
    "cta name wrong": (with_(cta(), "interactive.action.name", "url"), 100, "interactive['action']['name']"),
    "location request body 1025": (interactive({"type": "location_request_message", "body": {"text": "l" * 1025}, "action": {"name": "send_location"}}), 131009, "interactive['body']['text']"),
    "location request action": (interactive({"type": "location_request_message", "body": {"text": "where?"}, "action": {"name": "share"}}), 100, "interactive['action']['name']"),
    "image caption 1025": (media("image", link="https://x.example/a.jpg", caption="c" * 1025), 100, "image['caption']"),
    "image id and link": (media("image", id="123", link="https://x.example/a.jpg"), 100, "image"),
    "image neither": (media("image", caption="hi"), 100, "image['id']"),
    "document link invalid": (media("document", link="not a url"), 131009, "document['link']"),
    "audio caption": (media("audio", id="123", caption="no"), 100, 'Unexpected key "caption"'),
    "sticker caption": (media("sticker", id="123", caption="no"), 100, 'Unexpected key "caption"'),
    "reaction message id missing": ({"messaging_product": "whatsapp", "to": USER, "type": "reaction", "reaction": {"emoji": "👍"}}, 100, "reaction['message_id']"),
    "reaction not emoji": ({"messaging_product": "whatsapp", "to": USER, "type": "reaction", "reaction": {"message_id": "wamid.x", "emoji": "ok"}}, 131009, "reaction['emoji']"),
    "template name missing": (with_(template(), "template.name", "-"), 100, "template['name']"),
    "template language missing": (with_(template(), "template.language", "-"), 100, "template['language']"),
    "template unknown": (template("no_such_template", 0), 132001, "no_such_template"),
    "template wrong language": (template(lang="fr_FR"), 132001, "fr_FR"),
    "template too few params": (template(params=2), 132000, "body"),
    "template too many params": (template("results_ready", 2), 132000, "body"),
    "template quick reply index": (template(components=[{"type": "button", "sub_type": "quick_reply", "index": "5", "parameters": [{"type": "payload", "payload": "X"}]}]), 131009, "['index']"),
    "template param newline": (with_(template(), "template.components.0.parameters.0.text", "a\nb"), 132018, "new-line"),
}

VALID: Dict[str, Dict[str, Any]] = {
    "text 4096": text("x" * limits.TEXT_BODY_MAX),
    "text with +, spaces and preview": with_(text("see https://clinic.example"), "text.preview_url", True),
    "3 buttons, titles 20, ids 256": buttons(3, title_len=20, id_len=256),
    "button header 60 footer 60 body 1024": with_(with_(with_(buttons(1), "interactive.header", {"type": "text", "text": "h" * 60}), "interactive.footer", {"text": "f" * 60}), "interactive.body.text", "b" * 1024),
    "button image header by link": with_(buttons(1), "interactive.header", {"type": "image", "image": {"link": "https://x.example/a.png"}}),
    "list 10 rows over 2 sections at max sizes": list_message(sections=2, rows_per_section=5, row_title=24, desc=72, row_id=200, button=20, section_title=24, header=60, footer=60, body=1024),
    "list 10 sections of 1 row": list_message(sections=10, rows_per_section=1),
    "list single section without title": with_(list_message(), f"{SEC}.0.title", "-"),
    "cta display 20": cta(display=20),
    "location request body 1024": interactive({"type": "location_request_message", "body": {"text": "l" * 1024}, "action": {"name": "send_location"}}),
    "image caption 1024 by link": media("image", link="https://x.example/a.jpg", caption="c" * 1024),
    "document by id with filename": media("document", id="123456", filename="results.pdf", caption="Your leaflet"),
    "audio by link": media("audio", link="https://x.example/a.ogg"),
    "video by id": media("video", id="987"),
    "sticker by id": media("sticker", id="555"),
    "reaction removal (empty emoji)": {"messaging_product": "whatsapp", "to": USER, "type": "reaction", "reaction": {"message_id": "wamid.x", "emoji": ""}},
    "location": {"messaging_product": "whatsapp", "to": USER, "type": "location", "location": {"latitude": 37.48, "longitude": -122.14, "name": "Clinic"}},
    "template with 3 params and payload": template(components=[{"type": "button", "sub_type": "quick_reply", "index": "0", "parameters": [{"type": "payload", "payload": "P" * limits.TEMPLATE_QUICK_REPLY_PAYLOAD_MAX}]}]),
    "hello_world without components": {"messaging_product": "whatsapp", "to": USER, "type": "template", "template": {"name": "hello_world", "language": {"code": "en_US"}}},
    "type defaults to text": with_(text(), "type", "-"),
    "quote reply context": with_(text(), "context", {"message_id": "wamid.abc"}),
    "opaque data 512": with_(text(), "biz_opaque_callback_data", "x" * 512),
}


@pytest.mark.asyncio
@pytest.mark.parametrize("name", sorted(INVALID))
async def test_invalid_sends_get_metas_error_and_are_recorded(sim, name: str) -> None:
    body, code, details = INVALID[name]
    await open_window(sim)
    status, data = await sim.send(body)
    assert status == 400, data
    error = data["error"]
    assert error["code"] == code, error
    assert error["type"] == "OAuthException"
    assert error["message"].startswith(f"(#{code}) ")
    assert details in error["error_data"]["details"], error
    assert error["error_data"]["messaging_product"] == "whatsapp"
    assert error["fbtrace_id"]
    _, log = await sim.get("/_sim/messages", status="rejected")
    assert len(log["messages"]) == 1
    record = log["messages"][0]
    assert record["payload"] == body and record["error"]["code"] == code and record["wamid"] is None


@pytest.mark.asyncio
@pytest.mark.parametrize("name", sorted(VALID))
async def test_boundary_sends_are_accepted(sim, name: str) -> None:
    await open_window(sim)
    status, data = await sim.send(VALID[name])
    assert status == 200, data
    assert data["messaging_product"] == "whatsapp"
    assert data["contacts"] == [{"input": USER, "wa_id": USER}]
    assert data["messages"][0]["id"].startswith("wamid.")


@pytest.mark.asyncio
async def test_success_shape_and_unique_wamids(sim) -> None:
    await open_window(sim)
    status, data = await sim.send(text(to="+1 (555) 012-3456"))
    assert status == 200
    assert set(data) == {"messaging_product", "contacts", "messages"}
    assert data["contacts"] == [{"input": "+1 (555) 012-3456", "wa_id": USER}]
    ids = {data["messages"][0]["id"]}
    for _ in range(5):
        ids.add((await sim.send(text()))[1]["messages"][0]["id"])
    assert len(ids) == 6
    _, log = await sim.get("/_sim/messages", to=USER)
    assert [m["wamid"] for m in log["messages"]] and all(m["status"] != "rejected" for m in log["messages"])
    _, one = await sim.get("/_sim/messages", wamid=data["messages"][0]["id"])
    assert one["messages"][0]["payload"]["text"]["body"] == "Hello"


# --------------------------------------------------------------------- auth


@pytest.mark.asyncio
async def test_missing_and_wrong_token_get_oauth_190(sim) -> None:
    await open_window(sim)
    for token in (None, "wrong-token"):
        status, data = await sim.send(text(), token=token)
        assert status == 401
        assert data["error"]["code"] == 190 and data["error"]["type"] == "OAuthException"
    async with sim.session.post(sim.graph_url(), json=text(), headers={"Authorization": "Basic " + TEST_ACCESS_TOKEN}) as resp:
        assert resp.status == 401
        assert "invalid_token" in resp.headers["WWW-Authenticate"]
    _, log = await sim.get("/_sim/messages", status="rejected")
    assert [m["reason"] for m in log["messages"]] == ["auth", "auth", "auth"]


@pytest.mark.asyncio
async def test_unknown_phone_number_id_is_error_100(sim) -> None:
    await open_window(sim)
    url = f"{sim.url}/v23.0/999999999/messages"
    async with sim.session.post(url, json=text(), headers={"Authorization": f"Bearer {TEST_ACCESS_TOKEN}"}) as resp:
        data = await resp.json()
    assert resp.status == 400
    assert data["error"]["code"] == 100 and data["error"]["error_subcode"] == 33
    assert "999999999" in data["error"]["message"]


@pytest.mark.asyncio
async def test_phone_number_info(sim) -> None:
    async with sim.session.get(f"{sim.url}/v23.0/{sim.config.phone_number_id}",
                               headers={"Authorization": f"Bearer {TEST_ACCESS_TOKEN}"}) as resp:
        info = await resp.json()
    assert resp.status == 200 and info["verified_name"] == "Riverside Family Clinic"
    assert info["id"] == sim.config.phone_number_id


@pytest.mark.asyncio
async def test_body_that_is_not_json_is_error_100(sim) -> None:
    async with sim.session.post(sim.graph_url(), data=b"{nope", headers={"Authorization": f"Bearer {TEST_ACCESS_TOKEN}"}) as resp:
        data = await resp.json()
    assert resp.status == 400 and data["error"]["code"] == 100


# --------------------------------------------------------------------- 24-hour window


@pytest.mark.asyncio
async def test_customer_service_window(sim) -> None:
    # never wrote: free-form refused, template allowed
    status, data = await sim.send(text())
    assert status == 400 and data["error"]["code"] == 131047
    assert "24 hours" in data["error"]["error_data"]["details"]
    status, _ = await sim.send(template())
    assert status == 200
    # the user writes: window open
    await open_window(sim)
    assert (await sim.send(text()))[0] == 200
    # 23 h later still open, 24 h + 1 s later closed again
    await sim.post(f"/_sim/users/{USER}/window", {"age_seconds": 23 * 3600})
    assert (await sim.send(buttons(1)))[0] == 200
    status, user = await sim.post(f"/_sim/users/{USER}/window", {"age_seconds": 24 * 3600 + 1})
    assert status == 200 and user["window_open"] is False
    status, data = await sim.send(buttons(1))
    assert status == 400 and data["error"]["code"] == 131047
    assert (await sim.send(template("results_ready", 1)))[0] == 200
    # close/open explicitly
    await sim.post(f"/_sim/users/{USER}/window", {"open": True})
    assert (await sim.send(text()))[0] == 200
    await sim.post(f"/_sim/users/{USER}/window", {"close": True})
    assert (await sim.send(text()))[1]["error"]["code"] == 131047
    _, log = await sim.get("/_sim/messages", status="rejected")
    assert {m["reason"] for m in log["messages"]} == {"window"}


@pytest.mark.asyncio
async def test_template_outside_window_is_billable_utility(sim) -> None:
    status, data = await sim.send(template())
    assert status == 200
    _, log = await sim.get("/_sim/messages", wamid=data["messages"][0]["id"])
    record = log["messages"][0]
    assert record["category"] == "utility"
    assert record["pricing"] == {"billable": True, "pricing_model": "PMP", "category": "utility", "type": "regular"}
    assert record["rendered"]["body"].startswith("Hi v0, this is a reminder of your appointment on v1 at v2.")
    assert [b["payload"] for b in record["rendered"]["buttons"]] == ["Confirm", "Reschedule", "Cancel"]


# --------------------------------------------------------------------- templates


@pytest.mark.asyncio
async def test_template_registry_from_file(tmp_path: Path) -> None:
    path = tmp_path / "templates.yml"
    path.write_text(
        "templates:\n"
        "  - name: lab_pickup\n"
        "    languages: [en_US, es]\n"
        "    category: utility\n"
        "    body: 'Hi {{first_name}}, pick up your form at {{place}}.'\n"
        "    buttons: [{type: url, text: Portal, url: 'https://portal.example/{{1}}'}]\n"
        "  - name: old_promo\n"
        "    status: PAUSED\n"
        "    body: 'Hello'\n"
        "  - name: gone_promo\n"
        "    status: DISABLED\n"
        "    body: 'Hello'\n"
    )
    async with running_simulator(templates_path=str(path)) as sim:
        _, listing = await sim.get("/_sim/templates")
        names = {t["name"] for t in listing["templates"]}
        assert {"hello_world", "appointment_reminder", "results_ready", "lab_pickup"} <= names
        named = {"messaging_product": "whatsapp", "to": USER, "type": "template", "template": {
            "name": "lab_pickup", "language": {"code": "es"}, "components": [
                {"type": "body", "parameters": [
                    {"type": "text", "parameter_name": "first_name", "text": "Ana"},
                    {"type": "text", "parameter_name": "place", "text": "reception"}]},
                {"type": "button", "sub_type": "url", "index": 0, "parameters": [{"type": "text", "text": "abc"}]},
            ]}}
        status, data = await sim.send(named)
        assert status == 200, data
        _, log = await sim.get("/_sim/messages", wamid=data["messages"][0]["id"])
        rendered = log["messages"][0]["rendered"]
        assert rendered["body"] == "Hi Ana, pick up your form at reception."
        assert rendered["buttons"][0]["url"] == "https://portal.example/abc"
        wrong_name = with_(named, "template.components.0.parameters.1.parameter_name", "city")
        status, data = await sim.send(wrong_name)
        assert status == 400 and data["error"]["code"] == 131009
        status, data = await sim.send(template("old_promo", 0))
        assert data["error"]["code"] == 132015
        status, data = await sim.send(template("gone_promo", 0))
        assert data["error"]["code"] == 132016


# --------------------------------------------------------------------- read receipts and typing


@pytest.mark.asyncio
async def test_read_receipt_and_typing_indicator(sim) -> None:
    first = await open_window(sim)
    second = await sim.user_says(USER, "are you there?")
    body = {"messaging_product": "whatsapp", "status": "read", "message_id": second["wamid"],
            "typing_indicator": {"type": "text"}}
    status, data = await sim.send(body)
    assert (status, data) == (200, {"success": True})
    _, inbound = await sim.get("/_sim/inbound", **{"from": USER})
    assert [m["status"] for m in inbound["messages"]] == ["read", "read"]  # earlier ones too
    assert inbound["messages"][0]["wamid"] == first["wamid"]
    _, receipts = await sim.get("/_sim/read-receipts", user=USER)
    assert receipts["read_receipts"][0]["typing"] is True
    assert (await sim.get(f"/_sim/users/{USER}"))[1]["typing"] is True
    await sim.send(text("Yes!"))
    assert (await sim.get(f"/_sim/users/{USER}"))[1]["typing"] is False  # the reply dismisses it
    # plain read receipt; bad ones
    assert (await sim.send(with_(body, "typing_indicator", "-")))[1] == {"success": True}
    status, data = await sim.send(with_(body, "message_id", "wamid.unknown"))
    assert status == 400 and "message_id" in data["error"]["error_data"]["details"]
    status, data = await sim.send(with_(body, "status", "delivered"))
    assert status == 400 and data["error"]["code"] == 100
    status, data = await sim.send(with_(body, "typing_indicator", {"type": "audio"}))
    assert status == 400 and "typing_indicator" in data["error"]["error_data"]["details"]


@pytest.mark.asyncio
async def test_typing_indicator_expires_after_timeout() -> None:
    async with running_simulator() as sim:
        await sim.post("/_sim/config", {"typing_timeout": 0.2})
        said = await sim.user_says(USER, "hi")
        await sim.send({"messaging_product": "whatsapp", "status": "read", "message_id": said["wamid"],
                        "typing_indicator": {"type": "text"}})
        assert (await sim.get(f"/_sim/users/{USER}"))[1]["typing"] is True
        await asyncio.sleep(0.3)
        assert (await sim.get(f"/_sim/users/{USER}"))[1]["typing"] is False


# --------------------------------------------------------------------- media


@pytest.mark.asyncio
async def test_media_sent_by_user_can_be_fetched_with_the_token(sim) -> None:
    sent = await sim.post(f"/_sim/users/{USER}/messages", {"type": "image", "image": {"caption": "rash"}})
    image = sent[1]["message"]["image"]
    auth = {"Authorization": f"Bearer {TEST_ACCESS_TOKEN}"}
    async with sim.session.get(f"{sim.url}/v23.0/{image['id']}", headers=auth) as resp:
        info = await resp.json()
    assert resp.status == 200
    assert set(info) == {"messaging_product", "url", "mime_type", "sha256", "file_size", "id"}
    assert info["id"] == image["id"] and info["mime_type"] == "image/jpeg" == image["mime_type"]
    assert info["sha256"] == image["sha256"]
    async with sim.session.get(info["url"]) as resp:  # no token
        assert resp.status == 401
    async with sim.session.get(info["url"], headers={"Authorization": "Bearer nope"}) as resp:
        assert resp.status == 401
    async with sim.session.get(info["url"], headers=auth) as resp:
        data = await resp.read()
        assert resp.status == 200 and resp.headers["Content-Type"] == "image/jpeg"
    assert len(data) == info["file_size"]
    assert base64.b64encode(hashlib.sha256(data).digest()).decode() == info["sha256"]
    async with sim.session.get(f"{sim.url}/v23.0/{image['id']}") as resp:
        assert resp.status == 401
    async with sim.session.get(f"{sim.url}/v23.0/123456789", headers=auth) as resp:
        assert resp.status == 400 and (await resp.json())["error"]["code"] == 100
    async with sim.session.get(info["url"].replace("hash=", "hash=0"), headers=auth) as resp:
        assert resp.status == 404


@pytest.mark.asyncio
async def test_media_upload_then_info(sim) -> None:
    auth = {"Authorization": f"Bearer {TEST_ACCESS_TOKEN}"}
    form = aiohttp.FormData()
    form.add_field("messaging_product", "whatsapp")
    form.add_field("type", "application/pdf")
    form.add_field("file", b"%PDF-1.4 test", filename="leaflet.pdf", content_type="application/pdf")
    async with sim.session.post(sim.graph_url("media"), data=form, headers=auth) as resp:
        uploaded = await resp.json()
    assert resp.status == 200 and uploaded["id"].isdigit()
    async with sim.session.get(f"{sim.url}/v23.0/{uploaded['id']}", headers=auth) as resp:
        info = await resp.json()
    assert info["mime_type"] == "application/pdf" and info["file_size"] == 13


# --------------------------------------------------------------------- rate limits


@pytest.mark.asyncio
async def test_pair_rate_limit_is_off_by_default_and_configurable(sim) -> None:
    await open_window(sim)
    await open_window(sim, OTHER)
    for _ in range(6):
        assert (await sim.send(text()))[0] == 200
    await sim.post("/_sim/reset")
    await open_window(sim)
    await open_window(sim, OTHER)
    status, config = await sim.post("/_sim/config", {"pair_rate_limit": 2})
    assert status == 200 and config["pair_rate_limit"] == 2
    assert (await sim.send(text()))[0] == 200
    assert (await sim.send(text()))[0] == 200
    status, data = await sim.send(text())
    assert status == 400 and data["error"]["code"] == 131056
    assert (await sim.send(text(to=OTHER)))[0] == 200  # per user pair
    _, log = await sim.get("/_sim/messages", status="rejected")
    assert log["messages"][0]["reason"] == "pair_rate"


@pytest.mark.asyncio
async def test_global_throughput_limit(sim) -> None:
    await open_window(sim)
    await sim.post("/_sim/config", {"throughput_limit": 3})
    results = [await sim.send(text()) for _ in range(4)]
    assert [status for status, _ in results] == [200, 200, 200, 429]
    assert results[3][1]["error"]["code"] == 130429


# --------------------------------------------------------------------- fault injection


@pytest.mark.asyncio
async def test_fault_next_n_requests(sim) -> None:
    await open_window(sim)
    status, data = await sim.post("/_sim/faults", {"code": 131000, "count": 2})
    assert status == 200 and data["added"][0]["count"] == 2
    results = [await sim.send(text()) for _ in range(3)]
    assert [s for s, _ in results] == [500, 500, 200]
    assert results[0][1]["error"]["code"] == 131000 and results[0][1]["error"]["is_transient"] is True
    _, faults = await sim.get("/_sim/faults")
    assert faults["faults"][0]["exhausted"] is True


@pytest.mark.asyncio
@pytest.mark.parametrize("fault,status,code", [
    ({"http": 500}, 500, 131000),
    ({"http": 503}, 503, 131016),
    ({"http": 429}, 429, 130429),
    ({"code": 131056}, 400, 131056),
    ({"code": 131047}, 400, 131047),
])
async def test_fault_kinds(sim, fault: Dict[str, Any], status: int, code: int) -> None:
    await open_window(sim)
    await sim.post("/_sim/faults", fault)
    got_status, data = await sim.send(text())
    assert (got_status, data["error"]["code"]) == (status, code)
    _, log = await sim.get("/_sim/messages", status="rejected")
    assert log["messages"][0]["reason"] == "fault"
    assert (await sim.send(text()))[0] == 200


@pytest.mark.asyncio
async def test_fault_fraction_is_deterministic_with_a_seed(sim) -> None:
    async def pattern() -> list:
        await sim.post("/_sim/reset")
        await open_window(sim)
        await sim.post("/_sim/faults", {"code": 131016, "fraction": 0.5, "seed": 7})
        return [(await sim.send(text()))[0] for _ in range(20)]

    first, second = await pattern(), await pattern()
    assert first == second
    assert set(first) == {200, 503}
    assert 4 <= first.count(503) <= 16


@pytest.mark.asyncio
async def test_fault_slow_answer_and_reset(sim) -> None:
    await open_window(sim)
    await sim.post("/_sim/faults", {"delay_ms": 300, "count": 1})
    started = time.monotonic()
    status, _ = await sim.send(text())
    assert status == 200 and time.monotonic() - started >= 0.3
    await sim.post("/_sim/faults", {"code": 131000, "count": 5})
    assert (await sim.send(text()))[0] == 500
    async with sim.session.delete(f"{sim.url}/_sim/faults") as resp:
        assert resp.status == 200
    assert (await sim.send(text()))[0] == 200


@pytest.mark.asyncio
async def test_fault_only_for_one_user(sim) -> None:
    await open_window(sim)
    await open_window(sim, OTHER)
    await sim.post("/_sim/faults", {"code": 131000, "count": 1, "to": OTHER})
    assert (await sim.send(text()))[0] == 200
    assert (await sim.send(text(to=OTHER)))[0] == 500


@pytest.mark.asyncio
async def test_bad_fault_specs_are_refused(sim) -> None:
    for spec in ({"code": 4242}, {}, {"code": 131000, "fraction": 2}, {"code": 131000, "colour": 1}):
        status, data = await sim.post("/_sim/faults", spec)
        assert status == 400, spec


# --------------------------------------------------------------------- control API and CLI


@pytest.mark.asyncio
async def test_tap_requires_an_existing_choice(sim) -> None:
    await open_window(sim)
    _, sent = await sim.send(buttons(2))
    wamid = sent["messages"][0]["id"]
    status, data = await sim.post(f"/_sim/users/{USER}/tap", {"message_id": wamid, "id": "nope"})
    assert status == 400 and "00" in data["error"]
    status, data = await sim.post(f"/_sim/users/{USER}/tap", {"message_id": wamid, "id": "BBBBB"})  # by title
    assert status == 200 and data["message"]["interactive"]["button_reply"] == {"id": "1111", "title": "BBBBB"}


@pytest.mark.asyncio
async def test_healthz_config_and_reset(sim) -> None:
    await open_window(sim)
    status, health = await sim.get("/healthz")
    assert status == 200 and health["status"] == "ok" and health["user_messages"] == 1
    _, config = await sim.get("/_sim/config")
    assert "app_secret" not in config and "access_token" not in config
    assert config["business_name"] == "Riverside Family Clinic"
    status, _ = await sim.post("/_sim/config", {"app_secret": "x"})
    assert status == 400
    await sim.post("/_sim/config", {"pair_rate_limit": 1})
    await sim.post("/_sim/reset")
    _, config = await sim.get("/_sim/config")
    assert config["pair_rate_limit"] is None
    assert (await sim.get("/healthz"))[1]["user_messages"] == 0


@pytest.mark.asyncio
async def test_chat_page_and_assets_are_served(sim) -> None:
    for path, kind in (("/", "text/html"), ("/chat/chat.js", "javascript"), ("/chat/chat.css", "text/css")):
        async with sim.session.get(sim.url + path) as resp:
            assert resp.status == 200 and kind in resp.headers["Content-Type"]
    js = (PROJECT_ROOT / "simulator" / "chat" / "chat.js").read_text()
    assert "innerHTML" not in js and "insertAdjacentHTML" not in js and "eval(" not in js


def test_cli_refuses_to_start_without_secrets() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WHATSAPP_", "SIMULATOR_"))}
    result = subprocess.run([sys.executable, "-m", "simulator", "--port", "0"], cwd=PROJECT_ROOT,
                            env=env, capture_output=True, text=True, timeout=20)
    assert result.returncode == 2
    assert "WHATSAPP_APP_SECRET" in result.stderr
    env["WHATSAPP_APP_SECRET"] = "s"
    result = subprocess.run([sys.executable, "-m", "simulator", "--port", "0"], cwd=PROJECT_ROOT,
                            env=env, capture_output=True, text=True, timeout=20)
    assert result.returncode == 2 and "WHATSAPP_ACCESS_TOKEN" in result.stderr


@pytest.mark.asyncio
@pytest.mark.parametrize("name", ["visit_survey", "service_survey", "health_tip"])
async def test_clinic_initiated_templates_are_approved_in_russian_and_chinese(sim, name: str) -> None:
    """Surveys and the health-tip broadcast go out in the patient's language: every version
    takes the English one's parameters and buttons (quick-reply payloads carry the answer)."""
    from simulator.templates import TemplateRegistry

    registry = TemplateRegistry()
    english = registry.get(name, "en_US")
    params = len(english.body_params())
    buttons = [{"type": "button", "sub_type": "quick_reply", "index": index,
                "parameters": [{"type": "payload", "payload": f"/answer{index}"}]}
               for index in range(len(english.buttons))]
    rendered = {}
    for code in ("en_US", "ru", "zh_CN"):
        version = registry.get(name, code)
        assert (version.category, version.body_params(), [b["type"] for b in version.buttons]) == (
            english.category, english.body_params(), [b["type"] for b in english.buttons])
        assert all(len(b["text"]) <= 25 for b in version.buttons)  # Meta's button text limit
        status, data = await sim.send(template(name, params, code, components=buttons))
        assert status == 200, data
        _, log = await sim.get("/_sim/messages", wamid=data["messages"][0]["id"])
        rendered[code] = log["messages"][0]["rendered"]
        assert "v0" in rendered[code]["body"]
        assert [b["payload"] for b in rendered[code]["buttons"]] == [f"/answer{i}" for i in range(len(buttons))]
    assert len({r["body"] for r in rendered.values()}) == 3  # three different texts
    assert rendered["ru"]["footer"].startswith("Ответьте STOP") and "STOP" in rendered["zh_CN"]["footer"]
    status, data = await sim.send(template(name, params, "de", components=buttons))
    assert data["error"]["code"] == 132001  # no German version: Meta's answer the sender falls back on
