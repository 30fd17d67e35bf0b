"""End to end through WhatsApp: the simulator (standing in for Meta), Rasa with the WhatsApp
channel and the action server run as separate processes and talk real HTTP, with real SQLite
databases. Covers a conversation, redelivery, Graph API faults, the 24-hour window, privacy
at the door, and a killed-and-restarted server with messages waiting in the inbox.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
import time

import pytest

from benchmarks.stack import Stack, reply_text
from clinic.settings import load_settings

pytestmark = [pytest.mark.model, pytest.mark.servers]
SETTINGS = load_settings()
_numbers = iter(range(1000, 10000))


def patient() -> str:
    return f"1555010{next(_numbers):04d}"  # synthetic


@pytest.fixture(scope="module")
def stack(model, tmp_path_factory):
    running = Stack(tmp_path_factory.mktemp("whatsapp-e2e"), model).start()
    yield running
    running.stop()


def tracker_events(stack: Stack) -> list[tuple[str, str, dict]]:
    """Every event in Rasa's tracker store, decrypted (the rows are encrypted at rest)."""
    sealer = stack.tracker_sealer()
    with sqlite3.connect(stack.tracker_database) as db:
        rows = db.execute("SELECT sender_id, type_name, data FROM events ORDER BY id").fetchall()
    assert rows and all(data.startswith("enc:v1:") for _, _, data in rows)
    return [(sender, kind, json.loads(sealer.open(data))) for sender, kind, data in rows]


def test_conversation_with_buttons(stack):
    wa_id = patient()
    first = stack.say(wa_id, "hi")
    welcome, menu = stack.wait_for_replies(wa_id, 2)
    assert SETTINGS.clinic_name in reply_text(welcome)
    buttons = menu["payload"]["interactive"]["action"]["buttons"]
    assert [b["reply"]["title"] for b in buttons] == ["Book appointment", "Insurance & billing", "Talk to a nurse"]

    # The patient taps "Talk to a nurse": the button id carries the Rasa payload.
    stack.sim(f"/_sim/users/{wa_id}/tap", {"message_id": menu["wamid"], "id": buttons[2]["reply"]["id"]})
    replies = stack.wait_for_replies(wa_id, 3)
    assert "talk to a nurse" in reply_text(replies[2])

    # Each inbound message was marked read with a typing indicator before the reply.
    receipts = stack.sim(f"/_sim/read-receipts?user={wa_id}")["read_receipts"]
    assert any(r.get("message_id") == first["wamid"] and r.get("typing") for r in receipts)
    # Delivery statuses came back from "Meta" and were recorded.
    time.sleep(1)
    assert stack.metrics()["counters"].get("status_delivered", 0) >= 3


def test_redelivered_webhook_is_not_answered_twice(stack):
    wa_id = patient()
    sent = stack.say(wa_id, "where can I park?")
    before = stack.wait_for_replies(wa_id, 2)  # welcome + parking answer
    duplicates_before = stack.metrics()["counters"].get("inbound_duplicates", 0)
    for _ in range(2):
        result = stack.sim("/_sim/redeliver", {"wamid": sent["wamid"]})
        assert result["webhook"]["attempts"][-1]["status"] == 200
    time.sleep(3)
    assert len(stack.replies(wa_id)) == len(before)
    assert stack.metrics()["counters"]["inbound_duplicates"] == duplicates_before + 2


def test_graph_api_faults_are_retried_and_permanent_errors_dead_lettered(stack):
    wa_id = patient()
    # Two 500s on sends to this patient (read receipts carry no "to"), then normal service.
    stack.sim("/_sim/faults", {"code": 131000, "count": 2, "to": wa_id})
    stack.say(wa_id, "what are your opening hours")
    replies = stack.wait_for_replies(wa_id, 2)
    assert "Opening hours" in reply_text(replies[1])
    assert len({m["wamid"] for m in replies}) == 2  # no duplicates from the retries
    assert stack.metrics()["counters"].get("outbound_retried", 0) >= 1

    dead_before = stack.metrics()["counters"].get("outbound_dead_letters", 0)
    stack.sim("/_sim/faults", {"code": 131026, "count": 1, "to": wa_id})  # undeliverable: no retry
    stack.say(wa_id, "thank you")
    deadline = time.time() + 30
    while stack.metrics()["counters"].get("outbound_dead_letters", 0) == dead_before and time.time() < deadline:
        time.sleep(0.2)
    assert stack.metrics()["counters"]["outbound_dead_letters"] == dead_before + 1
    assert stack.metrics()["outbound"].get("dead", 0) >= 1
    stack.sim("/_sim/faults", method="DELETE")


def test_outside_the_24_hour_window_free_text_is_not_sent(stack):
    wa_id = patient()
    refused_before = stack.metrics()["counters"].get("outbound_refused_outside_window", 0)
    # A message Meta redelivers a day late: its timestamp is 25 hours old.
    old = int(time.time()) - 25 * 3600
    stack.sim(f"/_sim/users/{wa_id}/messages", {"raw": {
        "type": "text", "text": {"body": "hello"}, "timestamp": str(old)}, "name": "Late Patient"})
    deadline = time.time() + 30
    while stack.metrics()["counters"].get("outbound_refused_outside_window", 0) == refused_before and time.time() < deadline:
        time.sleep(0.2)
    assert stack.metrics()["counters"]["outbound_refused_outside_window"] > refused_before
    assert [m for m in stack.replies(wa_id) if not m.get("error")] == []


def test_no_phone_number_or_secret_reaches_rasa(stack):
    wa_id = patient()
    card = "4111 1111 1111 1111"
    stack.say(wa_id, f"can you take the payment from my card {card}")
    replies = stack.wait_for_replies(wa_id, 2)
    assert "removed that from your message" in reply_text(replies[-1])
    everything = json.dumps(tracker_events(stack))
    assert wa_id not in everything
    assert card not in everything and card.replace(" ", "") not in everything
    assert "Synthetic Patient" not in everything  # the WhatsApp profile name isn't stored


def test_tracker_store_holds_no_clear_text(stack):
    """Rasa's tracker store (the project's encrypted one, issue 18): the patient's words and
    the assistant's answers are in the conversation's events, and nowhere in the file."""
    wa_id = patient()
    words = "my appointment zebrafinch-quokka: where can I park?"
    stack.say(wa_id, words)
    stack.wait_for_replies(wa_id, 2)
    events = tracker_events(stack)
    sender = next(s for s, kind, e in events if kind == "user" and "zebrafinch-quokka" in e.get("text", ""))
    answers = [e["text"] for s, kind, e in events if s == sender and kind == "bot" and e.get("text")]
    assert answers
    files = [stack.tracker_database, *stack.tracker_database.parent.glob(stack.tracker_database.name + "-*")]
    stored = b"".join(path.read_bytes() for path in files)
    for text in ["zebrafinch", *(answer[:30] for answer in answers)]:
        assert text.encode() not in stored, text
    assert stack.tracker_database.stat().st_mode & 0o777 == 0o600


def test_location_and_voice_notes_are_answered_kindly(stack):
    wa_id = patient()
    stack.sim(f"/_sim/users/{wa_id}/messages", {"type": "audio", "voice": True, "name": "P"})
    replies = stack.wait_for_replies(wa_id, 2)
    assert "can't listen to voice messages" in reply_text(replies[-1])
    stack.sim(f"/_sim/users/{wa_id}/messages", {"type": "location", "latitude": 52.5, "longitude": 13.4})
    replies = stack.wait_for_replies(wa_id, 3)
    assert "received your location" in reply_text(replies[-1])


def test_messages_waiting_in_the_inbox_survive_a_crash(stack):
    """Rasa is killed; messages it had acknowledged but not processed are answered after the
    restart, exactly once; a message it had already handled is not answered again."""
    from clinic.db import make_engine, make_session_factory
    from clinic.messaging.store import InboxRow, WhatsAppStore
    from clinic.messaging.turn import InboundTurn
    from clinic.privacy import ContactCipher, contact_key

    handled, waiting = patient(), patient()
    stack.say(handled, "do you have parking")
    stack.wait_for_replies(handled, 2)
    stack.kill("rasa")  # a crash

    store = WhatsAppStore(make_session_factory(make_engine(stack.env["CLINIC_DATABASE_URL"])))
    cipher = ContactCipher(stack.env["CLINIC_ENCRYPTION_KEY"].encode())
    key = stack.env["CLINIC_PSEUDONYM_KEY"].encode()
    now = dt.datetime.now(dt.timezone.utc)
    conversation = contact_key(waiting, "whatsapp", key)
    # What the killed process had acknowledged to Meta but not processed yet.
    items = [InboundTurn(wamid=f"wamid.CRASH{n}", conversation_id=conversation, kind="text",
                        text=text, redacted=(), received_at=now)
             for n, text in enumerate(["what are your opening hours", "where are you located"])]
    store.accept(items, {conversation: (cipher.encrypt(waiting), now)})
    # And the message it was in the middle of when it died (already in Rasa's tracker).
    with store._sessions() as session, session.begin():
        row = session.query(InboxRow).filter(
            InboxRow.conversation_id == contact_key(handled, "whatsapp", key)).one()
        row.state, row.text = "processing", "do you have parking"

    # Meta did receive those messages, so on Meta's side the patient's window is open.
    stack.sim(f"/_sim/users/{waiting}/window", {"open": True})

    stack.start_rasa()
    replies = stack.wait_for_replies(waiting, 3)  # welcome + two answers, in order
    assert "Opening hours" in reply_text(replies[1]) and "Where to find us" in reply_text(replies[2])
    time.sleep(2)
    assert len(stack.replies(handled)) == 2  # not answered twice
    assert stack.metrics()["inbox"].get("pending", 0) == 0
    user_ids = [data.get("message_id") for _, kind, data in tracker_events(stack) if kind == "user"]
    assert user_ids.count("wamid.CRASH0") == 1 and user_ids.count("wamid.CRASH1") == 1
