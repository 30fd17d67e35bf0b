"""The inbox processor: per-conversation order, isolation of failures, crash recovery."""

import asyncio
import datetime as dt

import pytest

from clinic.db import create_schema, make_engine, make_session_factory
from clinic.messaging.store import WhatsAppStore
from clinic.messaging.turn import InboundTurn
from gateway.processor import InboxProcessor
from whatsapp.metrics import Metrics


@pytest.fixture
def store(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'inbox.db'}")
    create_schema(engine)
    return WhatsAppStore(make_session_factory(engine))


def item(n: int, conversation: str) -> InboundTurn:
    return InboundTurn(
        wamid=f"wamid.{n}", conversation_id=conversation, kind="text", text=f"m{n}",
        redacted=(), received_at=dt.datetime(2026, 11, 22, tzinfo=dt.timezone.utc),
    )


@pytest.mark.asyncio
async def test_each_conversation_is_processed_in_arrival_order(store):
    seen: list[tuple[str, str]] = []

    async def handle(message):
        await asyncio.sleep(0.001 * (hash(message.turn.text) % 5))  # interleave conversations
        seen.append((message.turn.conversation_id, message.turn.text))

    processor = InboxProcessor(store, handle, max_concurrent=4, metrics=Metrics())
    items = [item(n, "abc"[n % 3]) for n in range(30)]
    store.accept(items, {})
    for conversation in "abc":
        processor.submit(conversation)
    # Messages arriving while a conversation is being processed join its queue.
    store.accept([item(30, "a"), item(31, "b")], {})
    processor.submit("a")
    processor.submit("b")
    await processor.idle()

    for conversation in "abc":
        texts = [t for c, t in seen if c == conversation]
        expected = [i.text for i in items + [item(30, "a"), item(31, "b")] if i.conversation_id == conversation]
        assert texts == expected
    assert store.inbox_counts() == {"done": 32}


@pytest.mark.asyncio
async def test_a_failing_message_is_recorded_and_the_rest_continue(store):
    async def handle(message):
        if message.turn.text == "m1":
            raise RuntimeError("boom")

    metrics = Metrics()
    processor = InboxProcessor(store, handle, max_concurrent=2, metrics=metrics, retry_seconds=0.01)
    store.accept([item(0, "a"), item(1, "a"), item(2, "a")], {})
    processor.submit("a")
    await processor.idle()
    assert store.inbox_counts() == {"done": 2, "failed": 1}
    assert metrics.snapshot()["inbound_failed"] == 1


@pytest.mark.asyncio
async def test_recovery_after_a_crash_never_answers_twice(store):
    store.accept([item(0, "a"), item(1, "a"), item(2, "b")], {})
    # A previous process took m0 and m2 and died mid-way; it had logged m0 in Rasa already.
    assert store.next_pending("a").turn.text == "m0"
    assert store.next_pending("b").turn.text == "m2"
    handled: list[str] = []

    async def handle(message):
        handled.append(message.turn.text)

    async def already_handled(message):
        return message.turn.wamid == "wamid.0"

    processor = InboxProcessor(store, handle, max_concurrent=2, metrics=Metrics())
    assert await processor.recover(already_handled) == 2  # m1 and the requeued m2
    await processor.idle()
    assert sorted(handled) == ["m1", "m2"]  # m0 is not answered again
    assert store.inbox_counts() == {"done": 3}


def test_processed_text_is_not_kept(store):
    store.accept([item(0, "a")], {})
    message = store.next_pending("a")
    store.finish(message.id)
    assert store.next_pending("a") is None
    with store._sessions() as session:
        from clinic.messaging.store import InboxRow

        assert session.get(InboxRow, message.id).text is None
