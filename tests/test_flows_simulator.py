"""The simulator's WhatsApp Flows (simulator/flows.py) against the real booking endpoint
(gateway/flow_endpoint.py) over real HTTP: the Flow message is validated like Meta, the
phone opens the Flow (INIT, encrypted with the business's public key and signed), walks
the screens from the live demo calendar, and completing it sends the ``nfm_reply`` webhook
that the gateway turns into the assistant's ``/flow_booking`` intent."""

from __future__ import annotations

import asyncio
import json

import pytest
from aiohttp import web

from clinic.booking_flow import tokens
from clinic.booking_flow.screens import FLOW_JSON_FILE, BookingFlowScreens, texts
from gateway.flow_endpoint import PATH, FlowEndpoint, add_route
from gateway.inbound_mapping import to_assistant_input
from simulator.testing import TEST_APP_SECRET, WebhookReceiver, running_simulator
from tests.scheduling_support import BERLIN, NOW, Clock, demo_backend
from whatsapp.flows_crypto import generate_private_key_pem, load_private_key, public_key_pem
from whatsapp.inbound import FlowReply, parse_webhook
from whatsapp.outbound import FlowMessage

USER = "15550123456"
PSEUDONYM_KEY = b"q" * 32
KEY = load_private_key(generate_private_key_pem())
FLOW_ID = "990000000000001"


async def _serve(app):
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, f"http://127.0.0.1:{runner.addresses[0][1]}"


@pytest.fixture
def backend(tmp_path):
    clock = Clock()
    with demo_backend(f"sqlite:///{tmp_path / 'clinic.db'}", clock=clock) as (backend, _, _):
        yield backend, clock


def flow_message(language="en", token=None):
    return FlowMessage(body=texts(language)["message_body"], cta=texts(language)["cta"], flow_id=FLOW_ID,
                       flow_token=token or tokens.issue("conv-1", "whatsapp", language, PSEUDONYM_KEY, NOW))


async def scenario(backend, clock, steps, public_key=None, language="en"):
    endpoint = FlowEndpoint(KEY, BookingFlowScreens(backend, BERLIN, PSEUDONYM_KEY, clock=clock),
                            TEST_APP_SECRET, PSEUDONYM_KEY, clock=clock)
    app = web.Application()
    add_route(app, endpoint)
    runner, base = await _serve(app)
    receiver = await WebhookReceiver().start()
    try:
        async with running_simulator(webhook_url=receiver.url) as sim:
            status, _ = await sim.post("/_sim/flows", {
                "flow_id": FLOW_ID, "flow_json": json.loads(FLOW_JSON_FILE.read_text()),
                "endpoint_uri": base + PATH,
                "public_key_pem": public_key_pem(public_key or KEY).decode()})
            assert status == 200
            await sim.user_says(USER, "hi")  # opens the 24-hour window
            return await steps(sim, receiver)
    finally:
        await receiver.stop()
        await runner.cleanup()


def test_the_simulator_validates_the_flow_message_like_meta(backend):
    async def steps(sim, _):
        good = flow_message().to_payload(USER)
        assert (await sim.send(good))[0] == 200
        long_cta = json.loads(json.dumps(good))
        long_cta["interactive"]["action"]["parameters"]["flow_cta"] = "x" * 21
        no_screen = json.loads(json.dumps(good))
        no_screen["interactive"]["action"]["parameters"]["flow_action"] = "navigate"
        wrong_version = json.loads(json.dumps(good))
        wrong_version["interactive"]["action"]["parameters"]["flow_message_version"] = "2"
        results = [await sim.send(body) for body in (long_cta, no_screen, wrong_version)]
        return [(status, body["error"]["code"], body["error"]["error_data"]["details"]) for status, body in results]

    errors = asyncio.run(scenario(*backend, steps))
    assert [status for status, _, _ in errors] == [400, 400, 400]
    assert "flow_cta" in errors[0][2] and errors[0][1] == 131009
    assert "flow_action_payload" in errors[1][2]
    assert "flow_message_version" in errors[2][2]


def test_a_patient_walks_the_flow_and_the_completion_webhook_reaches_the_assistant(backend):
    async def steps(sim, receiver):
        status, sent = await sim.send(flow_message().to_payload(USER))
        assert status == 200
        wamid = sent["messages"][0]["id"]
        status, opened = await sim.post(f"/_sim/users/{USER}/flows/open", {"message_id": wamid})
        assert status == 200 and opened["screen"]["id"] == "SERVICE", opened
        session = opened["session"]
        pages = [opened]
        for screen, payload in [
            ("SERVICE", {"service": "physiotherapy"}),
            ("PRACTITIONER", {"service": "physiotherapy", "practitioner": "silva"}),
        ]:
            status, page = await sim.post(f"/_sim/flows/{session}/exchange", {"screen": screen, "payload": payload})
            assert status == 200, page
            pages.append(page)
        day = pages[-1]["data"]["min_date"]
        status, page = await sim.post(f"/_sim/flows/{session}/exchange", {"screen": "DATE", "payload": {
            "service": "physiotherapy", "practitioner": "silva", "day": day}})
        pages.append(page)
        slot = page["data"]["times"][0]["id"]
        chosen = {"service": "physiotherapy", "practitioner": "silva", "day": day, "slot": slot}
        status, page = await sim.post(f"/_sim/flows/{session}/exchange", {"screen": "TIME", "payload": chosen})
        pages.append(page)
        status, page = await sim.post(f"/_sim/flows/{session}/exchange", {"screen": "DETAILS", "payload": {
            **chosen, "name": "Anna Petrova", "birth_date": "1985-04-03"}})
        pages.append(page)
        status, done = await sim.post(f"/_sim/flows/{session}/complete", {"payload": {
            **chosen, "name": "Anna Petrova", "birth_date": "1985-04-03"}})
        assert status == 200 and done["completed"]
        again = await sim.post(f"/_sim/flows/{session}/complete", {"payload": chosen})
        await receiver.wait_for(lambda got: any("nfm_reply" in r.body.decode() for r in got))
        webhook = next(r.json() for r in receiver.received if "nfm_reply" in r.body.decode())
        return pages, webhook, wamid, again, slot

    pages, webhook, wamid, again, slot = asyncio.run(scenario(*backend, steps))
    assert [p["screen"]["id"] for p in pages] == ["SERVICE", "PRACTITIONER", "DATE", "TIME", "DETAILS", "CONFIRM"]
    # Screens come with their Flow JSON definition, so the phone can draw them.
    assert pages[2]["screen"]["layout"]["children"][1]["type"] == "DatePicker"
    assert again[0] == 400  # a Flow is sent once
    batch = parse_webhook(webhook)
    [message] = batch.messages
    assert isinstance(message, FlowReply) and message.context is not None and message.context.id == wamid
    answers = json.loads(message.response_json)
    assert answers["slot"] == slot and answers["flow_token"].startswith("bf1.")
    assistant = to_assistant_input(message)
    assert assistant.text.startswith("/flow_booking{") and json.loads(
        json.loads(assistant.text[len("/flow_booking"):])["flow_response"])["slot"] == slot


def test_a_wrong_public_key_gives_421_and_an_expired_token_427(backend):
    other = load_private_key(generate_private_key_pem())

    async def wrong_key(sim, _):
        status, sent = await sim.send(flow_message().to_payload(USER))
        return (await sim.post(f"/_sim/users/{USER}/flows/open", {"message_id": sent["messages"][0]["id"]}))[1]

    opened = asyncio.run(scenario(*backend, wrong_key, public_key=other))
    assert opened["error"]["status"] == 421

    async def expired(sim, _):
        token = tokens.issue("conv-1", "whatsapp", "en", PSEUDONYM_KEY, NOW, ttl=__import__("datetime").timedelta(0))
        status, sent = await sim.send(flow_message(token=token).to_payload(USER))
        return (await sim.post(f"/_sim/users/{USER}/flows/open", {"message_id": sent["messages"][0]["id"]}))[1]

    opened = asyncio.run(scenario(*backend, expired))
    assert opened["error"]["status"] == 427
