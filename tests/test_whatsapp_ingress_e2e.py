"""The separate webhook door (connectors/whatsapp/ingress.py) end to end: the simulator posts
to the ingress process, which stores and acknowledges; Rasa processes from the shared inbox.
A conversation, a redelivered webhook, and a lost notice (the assistant finds the message
by its inbox sweep): nothing lost, nothing answered twice."""

from __future__ import annotations

import sys
import time

import pytest

from benchmarks.stack import Stack, reply_text
from clinic.settings import load_settings

pytestmark = [pytest.mark.model, pytest.mark.servers]
SETTINGS = load_settings()
_numbers = iter(range(1000, 10000))


def patient() -> str:
    return f"1555020{next(_numbers):04d}"  # synthetic


@pytest.fixture(scope="module")
def stack(trained_model, tmp_path_factory):
    running = Stack(tmp_path_factory.mktemp("ingress-e2e"), trained_model, ingress=True)
    running.env["WHATSAPP_INBOX_SWEEP_SECONDS"] = "1"
    running.start()
    yield running
    running.stop()


def test_a_conversation_through_the_separate_door(stack):
    wa_id = patient()
    stack.say(wa_id, "hi")
    welcome, menu = stack.wait_for_replies(wa_id, 2)
    assert SETTINGS.clinic_name in reply_text(welcome)
    stack.say(wa_id, "where can I park")
    replies = stack.wait_for_replies(wa_id, 3)
    assert "Parking" in reply_text(replies[2])
    # The webhooks reached the separate door, not Rasa's own.
    assert ingress_counters(stack).get("webhook_accepted", 0) >= 2
    assert stack.metrics()["counters"].get("webhook_accepted", 0) == 0


def ingress_counters(stack: Stack) -> dict:
    import json
    import urllib.request

    with urllib.request.urlopen(f"{stack.url('ingress')}/webhooks/whatsapp/", timeout=5) as response:
        return json.load(response)["counters"]


def test_a_redelivered_webhook_is_not_answered_twice(stack):
    wa_id = patient()
    sent = stack.say(wa_id, "where can I park?")
    before = stack.wait_for_replies(wa_id, 2)  # welcome + parking answer
    duplicates_before = ingress_counters(stack).get("inbound_duplicates", 0)
    for _ in range(2):
        result = stack.sim("/_sim/redeliver", {"wamid": sent["wamid"]})
        assert result["webhook"]["attempts"][-1]["status"] == 200
    time.sleep(3)
    assert len(stack.replies(wa_id)) == len(before)
    assert ingress_counters(stack)["inbound_duplicates"] == duplicates_before + 2


def test_a_lost_notice_is_made_good_by_the_inbox_sweep(stack):
    # The door can't reach the assistant: it still stores and acknowledges; the assistant
    # finds the message in the shared inbox on its next sweep.
    stack.processes.pop("ingress").terminate()
    stack._start("ingress", [sys.executable, "-m", "connectors.whatsapp.ingress",
                             "--host", "127.0.0.1", "--port", str(stack.ports["ingress"]),
                             "--rasa-url", "http://127.0.0.1:9"])
    stack.wait_for(f"{stack.url('ingress')}/webhooks/whatsapp/", "ingress")
    wa_id = patient()
    stack.say(wa_id, "hello")
    welcome, _menu = stack.wait_for_replies(wa_id, 2, timeout=60)
    assert SETTINGS.clinic_name in reply_text(welcome)
    assert stack.metrics()["counters"].get("inbound_swept", 0) >= 1
