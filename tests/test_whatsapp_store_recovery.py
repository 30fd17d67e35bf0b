"""Crash recovery is per reply: a turn's replies are recorded before the first is sent, so
after a crash the store says exactly which did not go out, in order; a status webhook that
names a row (our biz_opaque_callback_data) proves it went out; dead letters can be retried
or dismissed, and claiming a row is atomic."""

from __future__ import annotations

import datetime as dt

from clinic.db import create_schema, make_engine, make_session_factory
from clinic.messaging.store import WhatsAppStore, callback_data
from clinic.messaging.turn import InboundTurn


def _store(tmp_path) -> WhatsAppStore:
    engine = make_engine(f"sqlite:///{tmp_path / 'wa.db'}")
    create_schema(engine)
    return WhatsAppStore(make_session_factory(engine))


def _accept(store, wamid, conversation="conv-a"):
    now = dt.datetime.now(dt.timezone.utc)
    store.accept([InboundTurn(wamid=wamid, conversation_id=conversation, kind="text", text="hi",
                             redacted=(), received_at=now)],
                 {conversation: ("encrypted-number", now)})


def _reply(n: int) -> tuple:
    return ("text", {"type": "text", "text": {"body": f"reply {n}"}}, None)


def test_a_turn_is_recorded_once_in_order_and_marks_its_message_answered(tmp_path):
    store = _store(tmp_path)
    _accept(store, "wamid.1")
    assert not store.turn_recorded("wamid.1")
    ids = store.record_turn("conv-a", "wamid.1", [_reply(1), _reply(2), _reply(3)])
    assert store.turn_recorded("wamid.1")
    # A retried turn (after a crash) records nothing twice.
    assert store.record_turn("conv-a", "wamid.1", [_reply(1), _reply(2), _reply(3)]) == ids
    assert [r.state for r in store.outbound("conv-a")] == ["queued"] * 3
    assert store.unsent_conversations() == ["conv-a"]
    # Sent one by one, strictly in order; a claimed row cannot be claimed again.
    first = store.next_unsent("conv-a")
    assert first.id == ids[0] and first.payload["text"]["body"] == "reply 1"
    assert store.claim(first.id) is not None and store.claim(first.id) is None
    store.outbound_sent(first.id, "wamid.out.1", 1)
    # The second is caught mid-request (a crash): it is still the next one not sent.
    second = store.claim(store.next_unsent("conv-a").id)
    assert second.id == ids[1]
    assert store.next_unsent("conv-a").id == ids[1] and store.next_unsent("conv-a").state == "sending"


def test_a_status_webhook_naming_the_row_proves_it_went_out(tmp_path):
    store = _store(tmp_path)
    [row_id] = store.record_turn("conv-a", "wamid.2", [_reply(1)])
    assert store.proof_of_send(row_id) is None
    at = dt.datetime.now(dt.timezone.utc)
    store.record_statuses([("wamid.out.9", "delivered", at, None, None, callback_data(row_id))])
    # Even a stale status still says which row Meta took.
    store.record_statuses([("wamid.out.9", "sent", at, None, None, callback_data(row_id))])
    assert store.proof_of_send(row_id) == ("wamid.out.9", "delivered")
    store.record_statuses([("wamid.other", "sent", at, None, None)])  # no callback: older callers
    assert store.status_of("wamid.other").callback is None


def test_dead_letters_retry_dismiss_and_counts(tmp_path):
    store = _store(tmp_path)
    ids = store.record_turn("conv-a", "wamid.3", [_reply(1), _reply(2)])
    now = dt.datetime.now(dt.timezone.utc)
    store.claim(ids[0])
    store.mark_ambiguous(ids[0], "ambiguous: timeout")
    store.outbound_failed(ids[0], "dead", 131000, "131000: busy", 5, retry_at=now + dt.timedelta(seconds=60))
    store.claim(ids[1])
    store.outbound_failed(ids[1], "dead", 131026, "131026: undeliverable", 1)
    assert store.due_dead_letters(now) == []
    assert store.due_dead_letters(now + dt.timedelta(seconds=61)) == [ids[0]]
    counts = store.outbound_counts()
    assert (counts["dead"], counts["ambiguous"], counts["dead_retry_scheduled"]) == (2, 1, 1)
    # Staff: retry now (the sending process's job takes it), or dismiss.
    assert store.request_retry(ids[1], now)
    assert store.due_dead_letters(now) == [ids[1]]
    claimed = store.claim(ids[1], ("dead",), retry_round=True)
    assert claimed.retries == 1 and claimed.retry_at is None and claimed.state == "sending"
    assert store.dismiss(ids[0]) and not store.dismiss(ids[0])
    assert [d.id for d in store.dead_letters()] == []
    assert [d.id for d in store.dead_letters(include_dismissed=True)] == [ids[0]]
    assert store.dead_letters(include_dismissed=True)[0].payload is None  # the text goes with it


def test_rows_left_sending_are_found_when_stale(tmp_path):
    store = _store(tmp_path)
    row_id = store.queue_outbound("conv-b", "staff_reply", {"type": "text", "text": {"body": "x"}})
    later = dt.datetime.now(dt.timezone.utc) + dt.timedelta(minutes=10)
    assert store.stale_sending(later) == [row_id]
    assert store.stale_sending(later - dt.timedelta(minutes=20)) == []
    assert store.next_unsent("conv-b") is None  # not a turn reply: no ordered resend
