"""Crash recovery needs to know whether an interrupted message was already answered even
when Rasa had not saved its tracker: the outbound log after the message's start says so."""

from __future__ import annotations

import datetime as dt

from clinic.db import create_schema, make_engine, make_session_factory
from whatsapp.store import NewInbound, WhatsAppStore


def _store(tmp_path) -> WhatsAppStore:
    engine = make_engine(f"sqlite:///{tmp_path / 'wa.db'}")
    create_schema(engine)
    return WhatsAppStore(make_session_factory(engine))


def _accept(store, wamid, conversation="conv-a"):
    now = dt.datetime.now(dt.timezone.utc)
    store.accept([NewInbound(wamid=wamid, conversation_id=conversation, kind="text", text="hi",
                             metadata={}, redacted=(), received_at=now)],
                 {conversation: ("encrypted-number", now)})


def test_a_reply_after_processing_started_marks_the_message_answered(tmp_path):
    store = _store(tmp_path)
    _accept(store, "wamid.1")
    message = store.next_pending("conv-a")
    assert message.started_at is not None
    assert not store.replied_since("conv-a", message.started_at)
    outbound = store.queue_outbound("conv-a", "text", {"text": {"body": "Opening hours…"}})
    assert store.replied_since("conv-a", message.started_at)  # even while still sending
    store.outbound_sent(outbound, "wamid.out.1", 1)
    assert store.replied_since("conv-a", message.started_at)
    # The interrupted message as recovery sees it carries the same start time.
    [interrupted] = store.interrupted()
    assert interrupted.wamid == "wamid.1" and store.replied_since("conv-a", interrupted.started_at)


def test_replies_before_the_start_or_to_others_do_not_count(tmp_path):
    store = _store(tmp_path)
    earlier = store.queue_outbound("conv-a", "text", {"text": {"body": "earlier answer"}})
    store.outbound_sent(earlier, "wamid.out.0", 1)
    store.queue_outbound("conv-b", "text", {"text": {"body": "someone else"}})
    _accept(store, "wamid.2")
    message = store.next_pending("conv-a")
    assert not store.replied_since("conv-a", message.started_at)
    assert not store.replied_since("conv-a", None)
