"""Bounded attempts for inbound messages (issue 13, item 4): the channel's processor with its
real dead-letter hook (quarantine and ticket) on a real SQLite database. A message that
always fails is tried WHATSAPP_INBOUND_MAX_ATTEMPTS times, then it is a dead letter and the
conversation moves on; one that takes the process down with it every time is given up at
start-up instead of being requeued forever; nothing of its text reaches the log."""

from __future__ import annotations

import datetime as dt
import json
import logging

import pytest
from sqlalchemy import select

from clinic.inbox.tables import TicketRow
from clinic.messaging.turn import InboundTurn
from gateway.processor import InboxProcessor
from tests.connector_support import INTERNAL_SECRET, make_channel
from whatsapp.signature import sign

SECRET = "my knee hurts and I cannot walk"


def item(n: int, conversation: str, text: str) -> InboundTurn:
    return InboundTurn(wamid=f"wamid.ATT{n}", conversation_id=conversation, kind="text", text=text,
                      redacted=(), received_at=dt.datetime(2026, 11, 22, tzinfo=dt.timezone.utc))


def tickets(channel) -> list:
    with channel.store._sessions() as session:
        return list(session.scalars(select(TicketRow)))


@pytest.mark.asyncio
async def test_an_always_failing_message_becomes_a_dead_letter_with_a_ticket_and_the_next_is_handled(
        tmp_path, monkeypatch, caplog):
    caplog.set_level(logging.DEBUG)
    channel = make_channel(tmp_path, monkeypatch)
    conversation = channel.conversation_id("16505551234")
    tries: dict = {}
    handled: list = []

    async def handle(message):
        tries[message.turn.wamid] = tries.get(message.turn.wamid, 0) + 1
        if message.turn.text == SECRET:
            # As spaCy words it; a driver's or a model's error text can quote the message.
            raise ValueError(f"[E088] Text of length 2900000 exceeds maximum: {message.turn.text}")
        handled.append(message.turn.text)

    processor = InboxProcessor(channel.store, handle, 2, channel.metrics, max_attempts=3, retry_seconds=0.01,
                               dead_letter=channel.dead_letter)
    channel.store.accept([item(1, conversation, SECRET), item(2, conversation, "are you open today")], {})
    processor.submit(conversation)
    await processor.idle()

    assert tries == {"wamid.ATT1": 3, "wamid.ATT2": 1}
    assert handled == ["are you open today"]
    assert channel.store.inbox_counts() == {"failed": 1, "done": 1}
    [dead] = channel.quarantine.items()
    assert (dead.source, dead.reason, dead.wamid, dead.attempts) == ("inbox", "attempts_exhausted", "wamid.ATT1", 3)
    assert channel.quarantine.message_text(dead.id) == SECRET  # kept (redacted) for staff and a retry
    [ticket] = tickets(channel)
    assert (ticket.conversation_id, ticket.reason) == (conversation, "message_failed")
    counters = channel.metrics.snapshot()
    assert counters["inbound_attempt_failed"] == 2 and counters["inbound_dead_lettered"] == 1
    assert SECRET not in caplog.text

    # Staff retry it (inbox quarantine page): it is processed again, with fresh attempts.
    with channel.quarantine.sessions.begin() as session:
        channel.quarantine.retry(session, dead.id, by="sara")
    processor.submit(conversation)
    await processor.idle()
    assert tries["wamid.ATT1"] == 6


@pytest.mark.asyncio
async def test_a_message_that_kills_the_process_each_time_is_given_up_at_start_up(tmp_path, monkeypatch):
    channel = make_channel(tmp_path, monkeypatch)
    conversation = channel.conversation_id("16505550000")
    channel.store.accept([item(1, conversation, SECRET), item(2, conversation, "hello")], {})
    for attempt in range(1, 4):  # three processes took it and died with it
        taken = channel.store.next_pending(conversation)
        assert (taken.turn.wamid, taken.attempts) == ("wamid.ATT1", attempt)
        if attempt < 3:
            channel.store.requeue(taken.id)  # what the next process's recovery did
    handled: list = []

    async def handle(message):
        handled.append(message.turn.wamid)

    async def not_handled(_message):
        return False

    processor = InboxProcessor(channel.store, handle, 2, channel.metrics, max_attempts=3, retry_seconds=0.01,
                               dead_letter=channel.dead_letter)
    await processor.recover(not_handled)
    await processor.idle()
    assert handled == ["wamid.ATT2"]
    [dead] = channel.quarantine.items()
    assert dead.wamid == "wamid.ATT1" and dead.attempts == 3
    assert len(tickets(channel)) == 1


@pytest.mark.asyncio
async def test_a_failing_turn_is_a_500_for_the_gateway_to_count_and_its_text_is_not_logged(
        tmp_path, monkeypatch, caplog):
    caplog.set_level(logging.DEBUG)
    channel = make_channel(tmp_path, monkeypatch)

    async def assistant_fails(user_message) -> None:
        # As a tracker store's driver words it: the statement's parameters, text included.
        raise UnicodeEncodeError("utf-8", user_message.text, 0, 1, f"parameters: ({user_message.text!r})")

    body = json.dumps({"wamid": "wamid.TURN1", "conversation_id": "c" * 64, "kind": "text", "text": SECRET}).encode()
    status, answer = await channel.turn(assistant_fails, body, sign(body, INTERNAL_SECRET))
    assert (status, answer) == (500, {"error": "the assistant failed on this message"})
    assert channel.metrics.snapshot()["turn_failed"] == 1
    assert SECRET not in caplog.text and "UnicodeEncodeError" in caplog.text
