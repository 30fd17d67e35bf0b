"""Asking a patient whether the clinic may call them (issue 19, item 1, step 6): during the
team's hours, on WhatsApp, with calling on, a request for a person (or "Call me back") sends
an interactive call-permission request in the patient's language; outside the hours, or with
calling off, or on another channel, nothing new is sent (the call-back offer stays as it
was). The request's shape is Meta's (the simulator accepts it), and the patient's reply is
recorded by the gateway for staff and not handed to the assistant."""

from __future__ import annotations

import dataclasses

import pytest

from actions.handoff import ActionRequestCallback, ActionRequestHuman
from clinic.handoff.calling import permission_request_message, permission_request_text
from clinic.settings import load_settings
from gateway.render import _custom_message
from simulator.testing import WebhookReceiver, running_simulator
from tests.conftest import SESSION_START, make_tracker, user_event
from tests.test_actions_handoff import SATURDAY_10, TUESDAY_10, TUESDAY_21, at

SENDER = "c0ffee" + "b2" * 29
TEAM_NURSE = [{"entity": "team", "value": "nurse"}]


def on_whatsapp(intent: str, entities=None, language: str = "en"):
    event = user_event(intent, entities=entities)
    event["input_channel"] = "whatsapp"
    return make_tracker([SESSION_START, event], slots={"language": language}, sender_id=SENDER)


def requests_in(dispatcher) -> list:
    return [m["custom"]["whatsapp"] for m in dispatcher.messages
            if (m.get("custom") or {}).get("whatsapp", {}).get("type") == "call_permission_request"]


@pytest.mark.asyncio
@pytest.mark.parametrize("language", ["en", "ru", "zh"])
async def test_asking_for_a_person_in_hours_asks_may_we_call(services, dispatcher, domain, language):
    at(services, TUESDAY_10)
    await ActionRequestHuman().run(dispatcher, on_whatsapp("request_human", TEAM_NURSE, language), domain)
    [request] = requests_in(dispatcher)
    assert request["body"] == permission_request_text(language)
    assert len({permission_request_text(code) for code in ("en", "ru", "zh")}) == 3


@pytest.mark.asyncio
async def test_outside_hours_other_channels_and_calling_off_send_nothing_new(services, dispatcher, domain):
    at(services, TUESDAY_21)
    await ActionRequestHuman().run(dispatcher, on_whatsapp("request_human", TEAM_NURSE), domain)
    at(services, SATURDAY_10)  # reception is staffed, the nurse line is not
    await ActionRequestHuman().run(dispatcher, on_whatsapp("request_human", TEAM_NURSE), domain)
    at(services, TUESDAY_10)
    rest = make_tracker([SESSION_START, user_event("request_human")], sender_id="other")
    await ActionRequestHuman().run(dispatcher, rest, domain)
    services.settings = dataclasses.replace(services.settings, calling=False)
    await ActionRequestHuman().run(dispatcher, on_whatsapp("request_human"), domain)
    assert requests_in(dispatcher) == []


@pytest.mark.asyncio
async def test_call_me_back_in_hours_also_asks_outside_hours_only_the_task(services, dispatcher, domain):
    at(services, TUESDAY_21)
    events = await ActionRequestCallback().run(dispatcher, on_whatsapp("request_callback", TEAM_NURSE), domain)
    assert {"callback_result": "recorded"}.items() <= {e["name"]: e["value"] for e in events}.items()
    assert requests_in(dispatcher) == []
    at(services, TUESDAY_10)
    await ActionRequestCallback().run(dispatcher, on_whatsapp("request_callback", TEAM_NURSE), domain)
    assert len(requests_in(dispatcher)) == 1


def test_calling_settings_come_from_configuration(tmp_path):
    assert load_settings().calling is True and load_settings().call_icon_visibility == "DEFAULT"
    off = load_settings(environ={"CLINIC_CALLING": "off", "CLINIC_CALL_ICON_VISIBILITY": "disable_all"})
    assert off.calling is False and off.call_icon_visibility == "DISABLE_ALL"
    with pytest.raises(ValueError):
        load_settings(environ={"CLINIC_CALLING": "sometimes"})


@pytest.mark.asyncio
async def test_the_request_is_a_message_meta_accepts_and_the_reply_is_meta_shaped():
    message, kind = _custom_message({"type": "call_permission_request", "body": permission_request_text("ru")})
    receiver = await WebhookReceiver().start()
    try:
        async with running_simulator(webhook_url=receiver.url) as sim:
            await sim.user_says("15550007777", "hi")
            status, sent = await sim.send(message.to_payload("15550007777"))
            assert status == 200, sent
            wamid = sent["messages"][0]["id"]
            status, _ = await sim.post("/_sim/users/15550007777/call-permission",
                                       {"response": "accept", "context_id": wamid})
            await receiver.wait_for(lambda r: any(b"call_permission_reply" in x.body for x in r))
            [reply] = [m for p in receiver.payloads() for e in p["entry"] for c in e["changes"]
                       for m in c["value"].get("messages", []) if m["type"] == "interactive"]
            assert reply["context"]["id"] == wamid
            assert reply["interactive"]["call_permission_reply"]["response"] == "accept"
            bad = message.to_payload("15550007777")
            bad["interactive"]["action"]["name"] = "call_me"
            status, error = await sim.send(bad)
            assert status == 400 and error["error"]["code"] == 100
    finally:
        await receiver.stop()
    assert kind == "call_permission_request"


@pytest.mark.asyncio
async def test_the_permission_request_comes_after_the_turns_other_replies():
    """The action asks before the rule says who will help: the patient reads that first."""
    from gateway.render import render

    replies = [{"custom": permission_request_message("en")},
               {"text": "You're in the queue for our reception team."}]
    kinds = [kind for _message, kind in await render("conv-1", replies)]
    assert kinds == ["text", "call_permission_request"]
