"""The WhatsApp gateway (gateway/server.py) end to end: the simulator posts to the
gateway, which acknowledges, runs each turn through Rasa (``/webhooks/whatsapp/turn``) and
sends the replies. A conversation, a redelivered webhook, Rasa down while a patient writes
(the message waits and is answered once Rasa is back), and a retried turn that Rasa had
already taken in (its replies come back; it is not processed twice)."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request

import pytest

from benchmarks.stack import Stack, reply_text
from clinic.settings import load_settings
from whatsapp.signature import sign

pytestmark = [pytest.mark.model, pytest.mark.servers]
SETTINGS = load_settings()
_numbers = iter(range(1000, 10000))


def patient() -> str:
    return f"1555020{next(_numbers):04d}"  # synthetic


@pytest.fixture(scope="module")
def stack(trained_model, tmp_path_factory):
    running = Stack(tmp_path_factory.mktemp("gateway-e2e"), trained_model, ingress=True)
    running.start()
    yield running
    running.stop()


def rasa_counters(stack: Stack) -> dict:
    return stack.call("rasa", "/webhooks/whatsapp/metrics")["counters"]


def test_a_conversation_through_the_gateway(stack):
    wa_id = patient()
    stack.say(wa_id, "hi")
    welcome, menu = stack.wait_for_replies(wa_id, 2)
    assert SETTINGS.clinic_name in reply_text(welcome)
    assert menu["payload"]["type"] == "interactive"  # buttons survive the trip through /turn
    stack.say(wa_id, "where can I park")
    replies = stack.wait_for_replies(wa_id, 3)
    assert "Parking" in reply_text(replies[2])
    # The webhooks reached the gateway, Rasa only took the turns.
    assert stack.door_metrics()["counters"].get("webhook_accepted", 0) >= 2
    assert rasa_counters(stack).get("webhook_accepted", 0) == 0
    assert rasa_counters(stack).get("turn_processed", 0) >= 2


def test_a_redelivered_webhook_is_not_answered_twice(stack):
    wa_id = patient()
    sent = stack.say(wa_id, "where can I park?")
    before = stack.wait_for_replies(wa_id, 2)  # welcome + parking answer
    duplicates_before = stack.door_metrics()["counters"].get("inbound_duplicates", 0)
    for _ in range(2):
        result = stack.sim("/_sim/redeliver", {"wamid": sent["wamid"]})
        assert result["webhook"]["attempts"][-1]["status"] == 200
    time.sleep(3)
    assert len(stack.replies(wa_id)) == len(before)
    assert stack.door_metrics()["counters"]["inbound_duplicates"] == duplicates_before + 2


def turn(stack: Stack, body: dict, secret: str = None) -> tuple:
    raw = json.dumps(body).encode()
    request = urllib.request.Request(
        f"{stack.url('rasa')}/webhooks/whatsapp/turn", data=raw, method="POST",
        headers={"Content-Type": "application/json",
                 "X-Hub-Signature-256": sign(raw, secret or stack.secrets["WHATSAPP_INTERNAL_SECRET"])})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


def test_a_retried_turn_gets_the_same_replies_without_being_processed_again(stack):
    message = {"wamid": "wamid.GATEWAYRETRY1", "conversation_id": "gateway-retry-test",
               "kind": "text", "text": "what are your opening hours", "redacted": []}
    status, first = turn(stack, message)
    assert status == 200 and first["messages"] and "replayed" not in first
    status, again = turn(stack, {**message, "attempts": 2})
    assert status == 200 and again["replayed"] is True
    assert [m["text"] for m in again["messages"]] == [m["text"] for m in first["messages"]]
    tracker = stack.call("rasa", f"/conversations/gateway-retry-test/tracker?token={stack.secrets['RASA_AUTH_TOKEN']}")
    assert [e.get("message_id") for e in tracker["events"] if e["event"] == "user"] == ["wamid.GATEWAYRETRY1"]


def test_turns_must_be_signed_and_well_formed(stack):
    message = {"wamid": "wamid.X", "conversation_id": "gateway-bad", "kind": "text", "text": "hi"}
    assert turn(stack, message, secret="not-the-app-secret")[0] == 403
    # Meta's app secret is not the gateway's: a turn signed with it is refused too.
    assert turn(stack, message, secret=stack.secrets["WHATSAPP_APP_SECRET"])[0] == 403
    assert turn(stack, {"text": "no ids"})[0] == 400


def test_a_message_written_while_rasa_is_down_is_answered_once_it_is_back(stack):
    stack.kill("rasa")
    wa_id = patient()
    stack.say(wa_id, "hello")
    time.sleep(4)
    assert [m for m in stack.replies(wa_id) if not m.get("error")] == []  # nobody to answer yet
    assert stack.metrics()["counters"].get("turn_retried", 0) >= 1
    stack.start_rasa()
    welcome, _menu = stack.wait_for_replies(wa_id, 2, timeout=120)
    assert SETTINGS.clinic_name in reply_text(welcome)
    time.sleep(2)
    assert len([m for m in stack.replies(wa_id) if not m.get("error")]) == 2  # answered once



# ── logs ────────────────────────────────────────────────────────────────────────────────────
def test_every_log_line_is_json_and_none_holds_patient_text_a_number_or_a_secret(stack):
    """Issue 14. Scans the whole module's logs (this conversation's and the tests' above:
    Rasa killed and restarted, bad turns refused): every stderr line of the gateway, Rasa,
    the action server and the simulator is one JSON object; none holds what the patient
    wrote, their number, their profile name or a secret."""
    wa_id = patient()
    other_number = "+44 7700 900123"
    text = f"Quillonrash on my left elbow since Tuesday, call me on {other_number} please"
    stack.say(wa_id, text)
    stack.wait_for_replies(wa_id, 2)
    stack.say(wa_id, "where can I park")
    stack.wait_for_replies(wa_id, 3)
    time.sleep(1)  # the last turn's log lines
    secrets = [*stack.secrets.values(), *(stack.env[name] for name in (
        "CLINIC_PSEUDONYM_KEY", "CLINIC_ENCRYPTION_KEY", "INBOX_SECRET_KEY"))]
    forbidden = {"patient text": ["Quillonrash", "left elbow since Tuesday", "where can I park"],
                 "number": [wa_id, other_number, other_number.replace(" ", ""), "7700 900123"],
                 "profile name": ["Synthetic Patient"],
                 "secret": secrets}
    for name in ("ingress", "rasa", "actions", "simulator"):
        log = stack.stderr(name)
        lines = [line for line in log.splitlines() if line.strip()]
        if name in ("ingress", "rasa", "actions"):
            assert lines, f"{name}: no log lines at all"
        for line in lines:
            try:
                record = json.loads(line)
            except ValueError:
                raise AssertionError(f"{name}: not a JSON line: {line[:300]}") from None
            assert isinstance(record, dict) and {"ts", "level", "logger", "process", "event"} <= set(record), line
        leaked = [(kind, value) for kind, values in forbidden.items() for value in values if value in log]
        assert leaked == [], f"{name} log holds {[kind for kind, _ in leaked]}"
    assert {json.loads(line)["process"] for line in stack.stderr("ingress").splitlines() if line.strip()} == {"gateway"}
    assert {json.loads(line)["process"] for line in stack.stderr("actions").splitlines() if line.strip()} == {"actions"}

# ── the gateway as two processes: a door and a relay ─────────────────────────────────────
@pytest.fixture(scope="module")
def split_stack(trained_model, tmp_path_factory):
    running = Stack(tmp_path_factory.mktemp("gateway-split-e2e"), trained_model, split=True)
    running.env["WHATSAPP_INBOX_SWEEP_SECONDS"] = "1"
    running.start()
    yield running
    running.stop()


def test_a_conversation_through_a_door_and_a_relay(split_stack):
    wa_id = patient()
    split_stack.say(wa_id, "where can I park")
    replies = split_stack.wait_for_replies(wa_id, 2)  # welcome, parking
    assert "Parking" in reply_text(replies[-1])
    assert split_stack.door_metrics()["counters"].get("webhook_accepted", 0) >= 1
    assert split_stack.door_metrics()["counters"].get("inbound_processed", 0) == 0  # the relay's job
    assert split_stack.metrics()["counters"].get("inbound_processed", 0) >= 1


def test_a_lost_notice_is_made_good_by_the_relays_sweep(split_stack):
    # The door can't reach the relay: it still journals, stores and acknowledges; the relay
    # finds the message in the inbox on its next sweep.
    door = split_stack.processes.pop("ingress")
    door.terminate()
    door.wait(timeout=30)  # it holds its journal's lock until it has exited
    split_stack.start_ingress(relay_url="http://127.0.0.1:9")
    wa_id = patient()
    split_stack.say(wa_id, "hello")
    welcome, _menu = split_stack.wait_for_replies(wa_id, 2, timeout=60)
    assert SETTINGS.clinic_name in reply_text(welcome)
    assert split_stack.door_metrics()["counters"].get("process_notice_failed", 0) >= 1
    assert split_stack.metrics()["counters"].get("inbound_swept", 0) >= 1
