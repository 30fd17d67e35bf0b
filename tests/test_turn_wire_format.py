"""The one wire format of a turn (clinic/messaging/turn.py): what the door journals, the inbox
stores and the gateway sends to Rasa are the same fields, read back the same way."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from clinic.db import create_schema, make_engine, make_session_factory
from clinic.messaging.store import WhatsAppStore
from clinic.messaging.turn import InboundTurn, MalformedTurn, TurnReply, TurnRequest

MOMENT = dt.datetime(2026, 12, 6, 9, 30, tzinfo=dt.timezone.utc)


def a_turn(**changes) -> InboundTurn:
    fields = dict(wamid="wamid.W1", conversation_id="c" * 64, kind="button_reply", text="/deny",
                  received_at=MOMENT, redacted=("card",), title="I'll wait here", attempts=1)
    fields.update(changes)
    return InboundTurn(**fields)


def test_a_turn_survives_json_unchanged():
    turn = a_turn(attempts=3)
    assert InboundTurn.from_json(json.loads(json.dumps(turn.to_json()))) == turn
    request = TurnRequest(turn, claimed_by_staff=True)
    assert TurnRequest.from_json(json.loads(json.dumps(request.to_json()))) == request
    reply = TurnReply(({"text": "Hello"}, {"text": "Pick one", "buttons": [{"title": "A", "payload": "/a"}]}),
                      replayed=True)
    assert TurnReply.from_json(json.loads(json.dumps(reply.to_json()))) == reply
    in_russian = TurnReply(({"text": "Привет"},), language="ru")
    assert TurnReply.from_json(json.loads(json.dumps(in_russian.to_json()))).language == "ru"
    assert "language" not in TurnReply(({"text": "Hi"},)).to_json()  # unknown: not said


def test_a_record_only_message_has_no_text():
    assert a_turn(kind="reaction", text=None).record_only
    assert not a_turn().record_only


def test_journal_lines_of_the_previous_format_still_read():
    # Written before the one format: the title under "metadata", record-only as "skip".
    legacy = {"type": "message", "wamid": "wamid.OLD", "conversation_id": "c" * 64, "kind": "list_reply",
              "text": "/book", "metadata": {"title": "Book a visit"}, "redacted": [],
              "received_at": MOMENT.isoformat(), "skip": False, "address_encrypted": "x"}
    turn = InboundTurn.from_json(legacy)
    assert (turn.wamid, turn.text, turn.title, turn.received_at) == ("wamid.OLD", "/book", "Book a visit", MOMENT)
    assert InboundTurn.from_json({**legacy, "skip": True}).record_only


@pytest.mark.parametrize("broken, complaint", [
    ([], "JSON object"),
    ({"conversation_id": "c", "kind": "text", "text": "hi"}, "wamid"),
    ({"wamid": "w", "conversation_id": 7, "kind": "text", "text": "hi"}, "conversation_id"),
    ({"wamid": "w", "conversation_id": "c", "kind": "text", "text": ["hi"]}, "text"),
    ({"wamid": "w", "conversation_id": "c", "kind": "text", "text": "hi", "redacted": "card"}, "redacted"),
    ({"wamid": "w", "conversation_id": "c", "kind": "text", "text": "hi", "attempts": "2"}, "attempts"),
    ({"wamid": "w", "conversation_id": "c", "kind": "text", "text": "hi", "received_at": "yesterday"},
     "received_at"),
])
def test_a_malformed_turn_is_refused_with_the_field_named(broken, complaint):
    with pytest.raises(MalformedTurn, match=complaint):
        InboundTurn.from_json(broken)


def test_a_malformed_request_or_reply_is_refused():
    good = a_turn().to_json()
    with pytest.raises(MalformedTurn, match="claimed_by_staff"):
        TurnRequest.from_json({**good, "claimed_by_staff": "yes"})
    with pytest.raises(MalformedTurn, match="messages"):
        TurnReply.from_json({"messages": ["Hello"]})
    assert TurnReply.from_json({}) == TurnReply()


def test_the_inbox_stores_and_gives_back_the_same_turn(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'inbox.db'}")
    create_schema(engine)
    store = WhatsAppStore(make_session_factory(engine))
    turn = a_turn()
    reaction = a_turn(wamid="wamid.R1", kind="reaction", text=None, title=None, redacted=())
    assert store.accept([turn, reaction], {}) == [turn, reaction]
    taken = store.next_pending(turn.conversation_id)
    assert taken is not None and taken.turn == turn  # the first attempt: attempts 1
    assert store.next_pending(turn.conversation_id) is None  # the reaction is recorded, not processed
    store.requeue(taken.id)
    again = store.next_pending(turn.conversation_id)
    assert again is not None and again.turn == turn.retried(2)
