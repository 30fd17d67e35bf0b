"""The simulator's Calling API over real HTTP, driven by the project's Graph client
(whatsapp/client.py): Meta's validation and errors on POST /{phone_number_id}/calls, the
permission a call needs, and the `calls` webhooks of both directions, read back by
whatsapp/calls.py exactly as the gateway reads them."""

from __future__ import annotations

import pytest

from simulator.testing import WebhookReceiver, running_simulator
from whatsapp.calls import action_payload, connect_payload, parse_call_webhook
from whatsapp.client import GraphClient
from whatsapp.errors import GraphError

USER = "16505551234"
SDP = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n"
ANSWER = SDP.replace("o=- 1 2", "o=- 3 4")


def call_items(receiver: WebhookReceiver):
    events, statuses = [], []
    for payload in receiver.payloads():
        batch = parse_call_webhook(payload)
        events += batch.events
        statuses += batch.statuses
    return events, statuses


def permission_replies(receiver: WebhookReceiver):
    return [m["interactive"]["call_permission_reply"] for p in receiver.payloads()
            for e in p["entry"] for c in e["changes"] if c["field"] == "messages"
            for m in c["value"].get("messages", []) if m.get("type") == "interactive"]


@pytest.mark.asyncio
async def test_business_call_needs_permission_rings_is_answered_and_ends():
    receiver = await WebhookReceiver().start()
    try:
        async with running_simulator(webhook_url=receiver.url) as sim:
            client = GraphClient(sim.url, "v23.0", sim.config.phone_number_id, sim.token, max_attempts=1)
            try:
                with pytest.raises(GraphError) as refused:
                    await client.call_action(connect_payload(USER, SDP))
                assert refused.value.code == 138006  # no permission yet

                status, reply = await sim.post(f"/_sim/users/{USER}/call-permission", {"response": "accept"})
                assert status == 200 and reply["permission"]["status"] == "granted"
                await receiver.wait_for(lambda r: permission_replies(receiver))
                assert permission_replies(receiver)[0]["response"] == "accept"

                answer = await client.call_action(connect_payload(USER, SDP, "call-row-1"))
                call_id = answer["calls"][0]["id"]
                assert call_id.startswith("wacid.")
                with pytest.raises(GraphError) as duplicate:
                    await client.call_action(connect_payload(USER, SDP))
                assert duplicate.value.code == 138003
                await receiver.wait_for(lambda r: call_items(receiver)[1])
                assert [(s.call_id, s.status, s.biz_opaque_callback_data) for s in call_items(receiver)[1]] == \
                    [(call_id, "RINGING", "call-row-1")]

                status, _ = await sim.post(f"/_sim/calls/{call_id}/accept", {"sdp": ANSWER})
                assert status == 200
                await receiver.wait_for(lambda r: call_items(receiver)[0])
                [connect] = call_items(receiver)[0]
                assert (connect.event, connect.direction, connect.user_wa_id) == \
                    ("connect", "BUSINESS_INITIATED", USER)
                assert connect.session.sdp_type == "answer" and connect.session.sdp == ANSWER

                assert (await client.call_action(action_payload(call_id, "terminate")))["success"] is True
                await receiver.wait_for(lambda r: len(call_items(receiver)[0]) == 2)
                terminate = call_items(receiver)[0][1]
                assert (terminate.event, terminate.status) == ("terminate", "COMPLETED")
                assert terminate.duration is not None and terminate.start_time is not None
                assert [s.status for s in call_items(receiver)[1]] == ["RINGING", "ACCEPTED"]
                with pytest.raises(GraphError):  # ended: nothing left to terminate
                    await client.call_action(action_payload(call_id, "terminate"))
            finally:
                await client.close()
    finally:
        await receiver.stop()


@pytest.mark.asyncio
async def test_user_call_reaches_the_business_with_the_offer_and_is_accepted():
    receiver = await WebhookReceiver().start()
    try:
        async with running_simulator(webhook_url=receiver.url) as sim:
            client = GraphClient(sim.url, "v23.0", sim.config.phone_number_id, sim.token, max_attempts=1)
            try:
                status, call = await sim.post(f"/_sim/users/{USER}/calls", {"sdp": SDP})
                assert status == 200
                await receiver.wait_for(lambda r: call_items(receiver)[0])
                [connect] = call_items(receiver)[0]
                assert (connect.call_id, connect.direction, connect.session.sdp_type, connect.session.sdp) == \
                    (call["id"], "USER_INITIATED", "offer", SDP)

                with pytest.raises(GraphError) as no_answer:  # accept needs the business's answer
                    await client.call_action({"messaging_product": "whatsapp", "call_id": call["id"],
                                              "action": "accept"})
                assert no_answer.value.code == 131008
                await client.call_action(action_payload(call["id"], "pre_accept", ANSWER))
                await client.call_action(action_payload(call["id"], "accept", ANSWER))
                status, log = await sim.get("/_sim/calls", user=USER)
                assert log["calls"][0]["state"] == "accepted" and log["calls"][0]["answer"] == ANSWER
                # The user's call gave the business permission to call back.
                async with sim.session.get(sim.graph_url("call_permissions"), params={"user_wa_id": USER},
                                           headers={"Authorization": f"Bearer {sim.token}"}) as resp:
                    permission = await resp.json()
                assert permission["permission"]["status"] == "granted"
                assert {"action_name": "start_call", "can_perform_action": True, "limits": []} in permission["actions"]

                await sim.post(f"/_sim/calls/{call['id']}/hangup")
                await receiver.wait_for(lambda r: len(call_items(receiver)[0]) == 2)
                assert call_items(receiver)[0][1].status == "COMPLETED"
            finally:
                await client.close()
    finally:
        await receiver.stop()


@pytest.mark.asyncio
async def test_rejecting_a_user_call_and_meta_style_errors():
    receiver = await WebhookReceiver().start()
    try:
        async with running_simulator(webhook_url=receiver.url) as sim:
            client = GraphClient(sim.url, "v23.0", sim.config.phone_number_id, sim.token, max_attempts=1)
            try:
                _, call = await sim.post(f"/_sim/users/{USER}/calls", {"sdp": SDP})
                await client.call_action(action_payload(call["id"], "reject"))
                await receiver.wait_for(lambda r: len(call_items(receiver)[0]) == 2)
                assert call_items(receiver)[0][1].status == "FAILED"  # never picked up
                for body, code in [
                    ({"messaging_product": "whatsapp", "call_id": "wacid.unknown", "action": "terminate"}, 100),
                    ({"messaging_product": "whatsapp", "to": USER, "action": "dial"}, 100),
                    ({"to": USER, "action": "connect"}, 100),
                    ({"messaging_product": "whatsapp", "to": USER, "action": "connect",
                      "session": {"sdp_type": "answer", "sdp": SDP}}, 100),
                ]:
                    with pytest.raises(GraphError) as error:
                        await client.call_action(body)
                    assert error.value.code == code, body
            finally:
                await client.close()
    finally:
        await receiver.stop()


@pytest.mark.asyncio
async def test_the_gateway_applies_the_clinics_calling_settings_and_the_phone_follows_them():
    """content/clinic.yml's calling, call icon and the teams' hours reach Meta's settings
    (gateway/calls.py); the simulated phone hides the call button and refuses a call outside
    the hours, as WhatsApp does."""
    import dataclasses
    import datetime as dt

    from clinic.settings import OpeningHours, load_settings
    from gateway.calls import CallDesk

    settings = load_settings()
    payload = CallDesk.calling_settings(settings)["calling"]
    hours = payload["call_hours"]
    assert (payload["status"], payload["call_icon_visibility"], hours["timezone_id"]) == \
        ("ENABLED", "DEFAULT", "Europe/Berlin")
    # Reception and nurses (content/clinic.yml): Mon-Fri 08:00-18:00, Saturday 09:00-12:00.
    assert {"day_of_week": "SATURDAY", "open_time": "0900", "close_time": "1200"} in hours["weekly_operating_hours"]
    assert [h for h in hours["weekly_operating_hours"] if h["day_of_week"] == "MONDAY"] == \
        [{"day_of_week": "MONDAY", "open_time": "0800", "close_time": "1800"}]
    assert not [h for h in hours["weekly_operating_hours"] if h["day_of_week"] == "SUNDAY"]

    async with running_simulator() as sim:
        client = GraphClient(sim.url, "v23.0", sim.config.phone_number_id, sim.token, max_attempts=1)
        desk = CallDesk.__new__(CallDesk)
        desk._client = client
        try:
            status, phone = await sim.get("/_sim/calling")
            assert phone["icon_visible"] is True
            # Hidden icon, and hours that are never now (a window ending a minute from midnight
            # on another day): the phone shows no button and a call does not go through.
            today = dt.datetime.now(dt.timezone.utc).astimezone(settings.timezone).weekday()
            other = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")[(today + 3) % 7]
            closed = dataclasses.replace(settings, call_icon_visibility="DISABLE_ALL",
                                         reception_hours=OpeningHours.parse(f"{other} 00:00-00:01"),
                                         nurse_line_hours=OpeningHours.parse(f"{other} 00:00-00:01"))
            assert await desk.apply_calling_settings(closed) is True
            status, phone = await sim.get("/_sim/calling")
            assert phone["icon_visible"] is False and phone["open_now"] is False
            status, refused = await sim.post(f"/_sim/users/{USER}/calls", {"sdp": SDP})
            assert status == 400 and "call hours" in refused["error"]
            # Meta's rules: two windows a day at most, not overlapping.
            with pytest.raises(GraphError):
                await client.update_settings({"calling": {"status": "ENABLED", "call_hours": {
                    "status": "ENABLED", "timezone_id": "Europe/Berlin", "weekly_operating_hours": [
                        {"day_of_week": "MONDAY", "open_time": "0800", "close_time": "1200"},
                        {"day_of_week": "MONDAY", "open_time": "1100", "close_time": "1300"}]}}})
        finally:
            await client.close()



@pytest.mark.asyncio
async def test_reset_clears_calls_permissions_and_settings():
    async with running_simulator() as sim:
        await sim.post(f"/_sim/users/{USER}/call-permission", {"response": "accept"})
        await sim.post(f"/_sim/users/{USER}/calls", {"sdp": SDP})
        _, log = await sim.get("/_sim/calls")
        assert log["calls"]
        await sim.post("/_sim/reset")
        _, log = await sim.get("/_sim/calls")
        _, phone = await sim.get("/_sim/calling")
        assert log["calls"] == [] and phone["icon_visible"] is True
        client = GraphClient(sim.url, "v23.0", sim.config.phone_number_id, sim.token, max_attempts=1)
        try:
            with pytest.raises(GraphError) as refused:
                await client.call_action(connect_payload(USER, SDP))
            assert refused.value.code == 138006  # the permission went with the reset
        finally:
            await client.close()
