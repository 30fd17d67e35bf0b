"""Webhooks the simulator posts: signed over the exact bytes, shaped like Meta's official
examples, retried until HTTP 200, redeliverable byte for byte, batchable, and the status
lifecycle sent -> delivered -> read (or failed with Meta's errors array)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict

import pytest
import pytest_asyncio

from simulator.testing import TEST_APP_SECRET, WebhookReceiver, running_simulator
from whatsapp.signature import HEADER, verify

# Meta's official webhook examples (shared/ sits beside the project root).
EXAMPLES_PATH = Path(__file__).resolve().parents[2] / "shared" / "reference" / "meta-openapi-webhook-examples.json"
if not EXAMPLES_PATH.exists():
    pytest.skip(f"Meta's webhook examples not found at {EXAMPLES_PATH}", allow_module_level=True)
EXAMPLES = json.loads(EXAMPLES_PATH.read_text())
USER = "16505551234"
OTHER = "15550199999"


def shape(value: Any) -> Any:
    """Key structure with scalar types: what 'same shape as Meta's example' means here."""
    if isinstance(value, dict):
        return {key: shape(item) for key, item in value.items()}
    if isinstance(value, list):
        return [shape(value[0])] if value else []
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    return type(value).__name__


@pytest_asyncio.fixture
async def receiver():
    recv = WebhookReceiver()
    await recv.start()
    yield recv
    await recv.stop()


@pytest_asyncio.fixture
async def sim(receiver):
    async with running_simulator(webhook_url=receiver.url, display_phone_number="15550783881",
                                 phone_number_id="106540352242922", waba_id="419561257915477") as running:
        yield running


def only_message(payload: Dict[str, Any]) -> Dict[str, Any]:
    return payload["entry"][0]["changes"][0]["value"]["messages"][0]


async def business_buttons(sim) -> str:
    status, data = await sim.send({
        "messaging_product": "whatsapp", "to": USER, "type": "interactive",
        "interactive": {"type": "button", "body": {"text": "Cancel the order?"}, "action": {"buttons": [
            {"type": "reply", "reply": {"id": "cancel-button", "title": "Cancel"}},
            {"type": "reply", "reply": {"id": "keep-button", "title": "Keep"}}]}},
    })
    assert status == 200, data
    return data["messages"][0]["id"]


# --------------------------------------------------------------------- shapes and signature

SPECS: Dict[str, Dict[str, Any]] = {
    "Text Message": {"text": "Does it come in another color?"},
    "Reaction Message": {"type": "reaction", "reaction": {"message_id": "wamid.HBgLMTY1MDM4", "emoji": "👍"}},
    "Image Message": {"type": "image", "image": {"caption": "Taj Mahal"}},
    "Location Message": {"type": "location", "location": {
        "address": "1 Demo Way", "latitude": 37.48, "longitude": -122.14, "name": "Sample", "url": "https://example.org/"}},
    "Contact Sharing Message": {"type": "contacts", "contacts": [{
        "name": {"first_name": "Sam", "last_name": "Demo", "formatted_name": "Sam Demo"},
        "org": {"company": "Example"},
        "phones": [{"phone": "+1 (555) 010-2319", "wa_id": "15550102319", "type": "MOBILE"}]}]},
    "Unsupported Message": {"raw": {"errors": [{"code": 131051, "title": "Message type unknown",
                                                "message": "Message type unknown",
                                                "error_data": {"details": "Message type is currently not supported."}}],
                                    "type": "unsupported"}},
    "System Message": {"raw": {"system": {"body": "User changed number", "wa_id": "15550100000",
                                          "type": "user_changed_number"}, "type": "system"}},
    "Order Message": {"raw": {"type": "order", "order": {"catalog_id": "1", "text": "", "product_items": [
        {"product_retailer_id": "a", "quantity": 2, "item_price": 30, "currency": "USD"}]}}},
}


@pytest.mark.asyncio
@pytest.mark.parametrize("example", sorted(SPECS))
async def test_user_message_webhooks_match_metas_examples(sim, receiver, example: str) -> None:
    status, result = await sim.post(f"/_sim/users/{USER}/messages", {**SPECS[example], "name": "Sheena Nelson"})
    assert status == 200, result
    assert result["webhook"]["delivered"] and result["webhook"]["statuses"] == [200]
    (received,) = receiver.received
    assert verify(received.body, received.headers[HEADER], TEST_APP_SECRET)
    assert received.headers["Content-Type"] == "application/json"
    payload = received.json()
    assert shape(payload) == shape(EXAMPLES[example])
    message = only_message(payload)
    assert message["id"] == result["wamid"] and message["id"].startswith("wamid.")
    assert message["timestamp"].isdigit()


@pytest.mark.asyncio
async def test_taps_match_metas_examples_with_context(sim, receiver) -> None:
    await sim.user_says(USER, "hi", name="Sheena Nelson")
    wamid = await business_buttons(sim)
    status, result = await sim.post(f"/_sim/users/{USER}/tap", {"message_id": wamid, "id": "cancel-button"})
    assert status == 200, result
    # status webhooks interleave with messages: pick the message envelopes
    taps = [p for p in receiver.payloads() if "messages" in p["entry"][0]["changes"][0]["value"]]
    tap = taps[-1]
    assert shape(tap) == shape(EXAMPLES["Interactive Button Reply Message"])
    message = only_message(tap)
    assert message["context"] == {"from": "15550783881", "id": wamid}
    assert message["interactive"]["button_reply"] == {"id": "cancel-button", "title": "Cancel"}

    _, sent = await sim.send({
        "messaging_product": "whatsapp", "to": USER, "type": "interactive",
        "interactive": {"type": "list", "body": {"text": "Shipping?"}, "action": {"button": "Options", "sections": [
            {"title": "ASAP", "rows": [{"id": "priority_express", "title": "Priority Mail Express",
                                        "description": "Next Day to 2 Days"}]}]}}})
    list_id = sent["messages"][0]["id"]
    await sim.post(f"/_sim/users/{USER}/tap", {"message_id": list_id, "id": "priority_express"})
    _, sent = await sim.send({"messaging_product": "whatsapp", "to": USER, "type": "template", "template": {
        "name": "appointment_reminder", "language": {"code": "en_US"}, "components": [
            {"type": "body", "parameters": [{"type": "text", "text": t} for t in ("Sheena", "May 2", "9:00")]},
            {"type": "button", "sub_type": "quick_reply", "index": "2", "parameters": [{"type": "payload", "payload": "Unsubscribe"}]}]}})
    template_id = sent["messages"][0]["id"]
    await sim.post(f"/_sim/users/{USER}/tap", {"message_id": template_id, "id": "Unsubscribe"})
    await sim.post(f"/_sim/users/{USER}/messages", {"type": "button", "payload": "Unsubscribe", "text": "Unsubscribe",
                                                    "context": template_id})
    taps = [p for p in receiver.payloads() if "messages" in p["entry"][0]["changes"][0]["value"]]
    list_reply, quick, manual = taps[-3], taps[-2], taps[-1]
    assert shape(list_reply) == shape(EXAMPLES["Interactive List Reply Message"])
    assert only_message(list_reply)["context"]["id"] == list_id
    assert shape(quick) == shape(EXAMPLES["Button Message"]) == shape(manual)
    assert only_message(quick)["button"] == {"payload": "Unsubscribe", "text": "Cancel"}
    assert only_message(quick)["context"] == {"from": "15550783881", "id": template_id}


@pytest.mark.asyncio
async def test_bytes_are_metas_escaped_unicode_so_reserialising_breaks_the_signature(sim, receiver) -> None:
    await sim.user_says(USER, "Café / naïve 👍 <b>")
    (received,) = receiver.received
    raw = received.body
    assert raw.isascii() and b"\\/" in raw and b"\\u00e9" in raw
    assert only_message(received.json())["text"]["body"] == "Café / naïve 👍 <b>"
    assert verify(raw, received.headers[HEADER], TEST_APP_SECRET)
    reserialised = json.dumps(json.loads(raw)).encode()
    assert not verify(reserialised, received.headers[HEADER], TEST_APP_SECRET)


@pytest.mark.asyncio
async def test_invalid_and_missing_signature_on_demand(sim, receiver) -> None:
    await sim.post(f"/_sim/users/{USER}/messages", {"text": "a", "signature": "invalid"})
    await sim.post(f"/_sim/users/{USER}/messages", {"text": "b", "signature": "missing"})
    bad, missing = receiver.received
    assert bad.headers[HEADER].startswith("sha256=")
    assert not verify(bad.body, bad.headers[HEADER], TEST_APP_SECRET)
    assert HEADER not in missing.headers


@pytest.mark.asyncio
async def test_bsuid_and_profile_name(sim, receiver) -> None:
    await sim.post(f"/_sim/users/{USER}/messages", {"text": "hi", "name": "Sam Demo", "user_id": True})
    value = receiver.received[0].json()["entry"][0]["changes"][0]["value"]
    contact = value["contacts"][0]
    assert contact["profile"] == {"name": "Sam Demo"} and contact["wa_id"] == USER
    assert contact["user_id"].startswith("US.") and value["messages"][0]["from_user_id"] == contact["user_id"]


@pytest.mark.asyncio
async def test_media_ids_in_webhooks_are_served_by_the_graph_api(sim, receiver) -> None:
    for kind in ("image", "document", "audio", "video", "sticker"):
        await sim.post(f"/_sim/users/{USER}/messages", {"type": kind})
    headers = {"Authorization": f"Bearer {sim.token}"}
    for received in receiver.received:
        message = only_message(received.json())
        media = message[message["type"]]
        assert {"mime_type", "sha256", "id"} <= set(media)
        async with sim.session.get(f"{sim.url}/v23.0/{media['id']}", headers=headers) as resp:
            assert resp.status == 200 and (await resp.json())["mime_type"] == media["mime_type"]
    audio = only_message(receiver.received[2].json())["audio"]
    assert audio["voice"] is True and audio["mime_type"] == "audio/ogg; codecs=opus"
    assert only_message(receiver.received[1].json())["document"]["filename"].endswith(".pdf")


# --------------------------------------------------------------------- delivery semantics


@pytest.mark.asyncio
async def test_retries_until_http_200_and_records_attempts(sim, receiver) -> None:
    receiver.statuses = [500, 204, 503, 200]  # 204 is not success for Meta: only 200 is
    await sim.post("/_sim/config", {"retry_schedule": [0.05, 0.05, 0.05, 0.05]})
    status, result = await sim.post(f"/_sim/users/{USER}/messages", {"text": "hi", "wait": "final"})
    webhook = result["webhook"]
    assert webhook["statuses"] == [500, 204, 503, 200] and webhook["state"] == "delivered"
    assert all(latency >= 0 for latency in webhook["latency_ms"]) and len(webhook["attempts"]) == 4
    bodies = {r.body for r in receiver.received}
    assert len(bodies) == 1  # every retry sends the same bytes
    _, log = await sim.get("/_sim/webhooks", wamid=result["wamid"])
    assert log["webhooks"][0]["statuses"] == [500, 204, 503, 200]
    _, inbound = await sim.get("/_sim/inbound")
    assert inbound["messages"][0]["status"] == "delivered"


@pytest.mark.asyncio
async def test_dropped_after_the_schedule_and_connection_errors_recorded(receiver) -> None:
    receiver.responder = lambda _received: 500
    async with running_simulator(webhook_url=receiver.url, retry_schedule=[0.02, 0.02]) as sim:
        _, result = await sim.post(f"/_sim/users/{USER}/messages", {"text": "hi", "wait": "final"})
        assert result["webhook"]["state"] == "dropped" and result["webhook"]["statuses"] == [500, 500, 500]
    async with running_simulator(webhook_url="http://127.0.0.1:9/nothing", retry_schedule=[0.02]) as sim:
        _, result = await sim.post(f"/_sim/users/{USER}/messages", {"text": "hi", "wait": "final"})
        assert result["webhook"]["state"] == "dropped"
        assert all(a["status"] is None and a["error"] for a in result["webhook"]["attempts"])


@pytest.mark.asyncio
async def test_redelivery_sends_identical_bytes_and_id(sim, receiver) -> None:
    first = await sim.user_says(USER, "book me in")
    status, again = await sim.post("/_sim/redeliver", {"wamid": first["wamid"]})
    assert status == 200 and again["webhook"]["redelivery_of"] == first["webhook"]["id"]
    status, last = await sim.post("/_sim/redeliver", {})
    assert status == 200
    original, copy1, copy2 = receiver.received
    assert original.body == copy1.body == copy2.body
    assert original.headers[HEADER] == copy1.headers[HEADER] == copy2.headers[HEADER]
    assert only_message(copy2.json())["id"] == first["wamid"]
    status, _ = await sim.post("/_sim/redeliver", {"delivery_id": "d999"})
    assert status == 400


@pytest.mark.asyncio
@pytest.mark.parametrize("layout,entries,changes", [("messages", 1, 1), ("changes", 1, 3), ("entries", 3, 3)])
async def test_batched_envelopes(sim, receiver, layout: str, entries: int, changes: int) -> None:
    status, result = await sim.post("/_sim/batch", {"layout": layout, "messages": [
        {"from": USER, "name": "Sheena", "text": "one"},
        {"from": OTHER, "name": "Sam", "text": "two"},
        {"from": USER, "type": "location", "location": {"latitude": 1.5, "longitude": 2.5}},
    ]})
    assert status == 200, result
    (received,) = receiver.received
    assert verify(received.body, received.headers[HEADER], TEST_APP_SECRET)
    payload = received.json()
    assert len(payload["entry"]) == entries
    assert sum(len(e["changes"]) for e in payload["entry"]) == changes
    messages = [m for e in payload["entry"] for c in e["changes"] for m in c["value"]["messages"]]
    assert [m["id"] for m in messages] == result["wamids"] and len(set(result["wamids"])) == 3
    if layout == "messages":
        assert [c["wa_id"] for c in payload["entry"][0]["changes"][0]["value"]["contacts"]] == [USER, OTHER]


# --------------------------------------------------------------------- statuses


@pytest.mark.asyncio
async def test_status_sequence_sent_delivered_read(sim, receiver) -> None:
    await sim.user_says(USER, "hi")
    _, sent = await sim.send({"messaging_product": "whatsapp", "to": USER, "text": {"body": "Hello!"},
                              "biz_opaque_callback_data": "trace-1"})
    wamid = sent["messages"][0]["id"]
    await receiver.wait_for(lambda _r: receiver.statuses_for(wamid) == ["sent", "delivered"])
    status, read = await sim.post(f"/_sim/users/{USER}/read", {})
    assert read["read"] == [wamid]
    await receiver.wait_for(lambda _r: receiver.statuses_for(wamid) == ["sent", "delivered", "read"])
    for received in receiver.received:
        assert verify(received.body, received.headers[HEADER], TEST_APP_SECRET)
    statuses = [p["entry"][0]["changes"][0]["value"] for p in receiver.payloads()[1:]]
    example_envelope = shape(EXAMPLES["Text Message"])
    for payload in receiver.payloads()[1:]:
        envelope = shape(payload)
        value = envelope["entry"][0]["changes"][0]["value"]
        assert set(value) == {"messaging_product", "metadata", "statuses"}
        assert value["metadata"] == example_envelope["entry"][0]["changes"][0]["value"]["metadata"]
        assert envelope["object"] == example_envelope["object"]
    sent_status, delivered, read_status = (v["statuses"][0] for v in statuses)
    assert {"id", "status", "timestamp", "recipient_id"} <= set(read_status)
    assert sent_status["recipient_id"] == USER and sent_status["timestamp"].isdigit()
    assert sent_status["pricing"] == {"billable": False, "pricing_model": "PMP", "category": "service",
                                      "type": "free_customer_service"}
    assert sent_status["conversation"]["origin"] == {"type": "service"}
    assert "expiration_timestamp" in sent_status["conversation"] and "pricing" in delivered
    assert "pricing" not in read_status and read_status["biz_opaque_callback_data"] == "trace-1"
    _, log = await sim.get("/_sim/messages", wamid=wamid)
    assert [s["status"] for s in log["messages"][0]["statuses"]] == ["sent", "delivered", "read"]
    # never backwards: reading again emits nothing
    assert (await sim.post(f"/_sim/users/{USER}/read", {}))[1]["read"] == []


@pytest.mark.asyncio
async def test_auto_read_and_reaction_only_sent(receiver) -> None:
    async with running_simulator(webhook_url=receiver.url, auto_read=0.05) as sim:
        said = await sim.user_says(USER, "hi")
        _, sent = await sim.send({"messaging_product": "whatsapp", "to": USER, "text": {"body": "Hello"}})
        _, reaction = await sim.send({"messaging_product": "whatsapp", "to": USER, "type": "reaction",
                                      "reaction": {"message_id": said["wamid"], "emoji": "❤️"}})
        wamid, reaction_id = sent["messages"][0]["id"], reaction["messages"][0]["id"]
        await receiver.wait_for(lambda _r: receiver.statuses_for(wamid) == ["sent", "delivered", "read"])
        assert receiver.statuses_for(reaction_id) == ["sent"]


@pytest.mark.asyncio
async def test_failed_status_with_metas_errors(sim, receiver) -> None:
    await sim.user_says(USER, "hi")
    _, sent = await sim.send({"messaging_product": "whatsapp", "to": USER, "text": {"body": "Hello"}})
    wamid = sent["messages"][0]["id"]
    await receiver.wait_for(lambda _r: "delivered" in receiver.statuses_for(wamid))
    status, result = await sim.post("/_sim/statuses", {"statuses": [{"message_id": wamid, "status": "failed", "code": 131026}]})
    assert status == 200, result
    await receiver.wait_for(lambda _r: "failed" in receiver.statuses_for(wamid))
    failed = receiver.payloads()[-1]["entry"][0]["changes"][0]["value"]["statuses"][0]
    (error,) = failed["errors"]
    assert error["code"] == 131026 and error["title"] == error["message"] == "Message undeliverable"
    assert error["error_data"]["details"] and error["href"].endswith("error-codes")
    assert set(failed) == {"id", "status", "timestamp", "recipient_id", "errors"}

    # a fault can make the next accepted message fail after `sent`
    await sim.post("/_sim/faults", {"mode": "failed_status", "code": 131049})
    _, sent = await sim.send({"messaging_product": "whatsapp", "to": USER, "text": {"body": "Again"}})
    second = sent["messages"][0]["id"]
    await receiver.wait_for(lambda _r: receiver.statuses_for(second) == ["sent", "failed"])
    assert (await sim.post(f"/_sim/users/{USER}/read", {"message_ids": [second]}))[1]["read"] == []
    _, log = await sim.get("/_sim/messages", wamid=second)
    assert log["messages"][0]["status"] == "failed"
    assert log["messages"][0]["statuses"][-1]["error"]["code"] == 131049


@pytest.mark.asyncio
async def test_statuses_batched_in_one_envelope(sim, receiver) -> None:
    await sim.user_says(USER, "hi")
    ids = [(await sim.send({"messaging_product": "whatsapp", "to": USER, "text": {"body": str(i)}}))[1]["messages"][0]["id"]
           for i in range(2)]
    await receiver.wait_for(lambda _r: all("delivered" in receiver.statuses_for(i) for i in ids))
    before = len(receiver.received)
    status, _ = await sim.post("/_sim/statuses", {"batch": True, "statuses": [
        {"message_id": ids[0], "status": "read"}, {"message_id": ids[1], "status": "failed", "code": 131000}]})
    assert status == 200
    await receiver.wait_for(lambda r: len(r) == before + 1)
    statuses = receiver.payloads()[-1]["entry"][0]["changes"][0]["value"]["statuses"]
    assert [(s["id"], s["status"]) for s in statuses] == [(ids[0], "read"), (ids[1], "failed")]


@pytest.mark.asyncio
async def test_raw_envelopes(sim, receiver) -> None:
    value = {"messaging_product": "whatsapp", "metadata": {"display_phone_number": "15550783881",
                                                           "phone_number_id": "106540352242922"},
             "errors": [{"code": 131000, "title": "Something went wrong", "message": "Something went wrong",
                         "error_data": {"details": "Unsupported webhook payload"}}]}
    status, result = await sim.post("/_sim/webhooks/raw", {"value": value})
    assert status == 200 and result["webhook"]["delivered"]
    assert receiver.received[0].json()["entry"][0]["changes"][0]["value"] == value
    exact = '{"object":"whatsapp_business_account","entry":[]}'
    await sim.post("/_sim/webhooks/raw", {"body": exact, "signature": "invalid"})
    assert receiver.received[1].body == exact.encode()
    assert not verify(receiver.received[1].body, receiver.received[1].headers[HEADER], TEST_APP_SECRET)


@pytest.mark.asyncio
async def test_verification_handshake(sim, receiver) -> None:
    status, result = await sim.post("/_sim/handshake")
    assert status == 200 and result["ok"] is True and result["body"] == result["challenge"]
    receiver.verify_token = "something-else"
    _, result = await sim.post("/_sim/handshake")
    assert result["ok"] is False and result["status"] == 403
