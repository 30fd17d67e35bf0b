"""The simulator's outbound fault knobs (issue 13): a slow Graph API (``latency_ms``) and a
Graph API that takes a message but answers after the client's timeout (``late_ms``)."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest

from simulator.testing import TEST_ACCESS_TOKEN, running_simulator

USER = "15550123456"


def text(body: str = "Hello") -> dict:
    return {"messaging_product": "whatsapp", "recipient_type": "individual", "to": USER,
            "type": "text", "text": {"body": body}}


@pytest.mark.asyncio
async def test_latency_slows_every_send_within_its_range():
    async with running_simulator() as sim:
        await sim.user_says(USER, "hello")
        status, config = await sim.post("/_sim/config", {"latency_ms": [150, 250]})
        assert status == 200 and config["latency_ms"] == [150.0, 250.0]
        durations = []
        for _ in range(3):
            started = time.monotonic()
            assert (await sim.send(text()))[0] == 200
            durations.append(time.monotonic() - started)
        assert all(0.15 <= d < 0.6 for d in durations), durations
        assert (await sim.post("/_sim/config", {"latency_ms": [300, 100]}))[0] == 400


@pytest.mark.asyncio
async def test_a_late_answer_still_sends_the_message():
    """The client gives up before Meta answers, yet the patient gets the message and its
    status webhooks arrive: the ambiguity the connector must record."""
    async with running_simulator() as sim:
        await sim.user_says(USER, "hello")
        status, data = await sim.post("/_sim/faults", {"late_ms": 800})
        assert status == 200 and data["added"][0]["late_ms"] == 800
        url = f"{sim.url}/v23.0/{sim.config.phone_number_id}/messages"
        async with aiohttp.ClientSession() as session:
            with pytest.raises(asyncio.TimeoutError):
                async with session.post(url, json=text("late one"), timeout=aiohttp.ClientTimeout(total=0.3),
                                        headers={"Authorization": f"Bearer {TEST_ACCESS_TOKEN}"}):
                    pass
        await asyncio.sleep(0.7)  # the simulator answers (to nobody) after 0.8 s
        _, log = await sim.get("/_sim/messages", to=USER)
        sent = [m for m in log["messages"] if not m.get("error")]
        assert [m["payload"]["text"]["body"] for m in sent] == ["late one"]
        assert (await sim.post("/_sim/faults", {"late_ms": 100, "code": 131000}))[0] == 400
