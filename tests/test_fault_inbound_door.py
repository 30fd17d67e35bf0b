"""Poison input at the webhook door (issue 13, items 1, 3, 4 and 5): the channel in process,
a real SQLite database and a real journal directory. Each fault is one that used to lose
messages: a lone surrogate that stopped all intake, absurd timestamps that sank a batch,
nested JSON that raised RecursionError, a 2.9 MB text, a 5,000-character message id, and a
journal record the database refuses. After each: later messages still reach the inbox, a
restarted channel drains its journal cleanly, and no message text is in the logs."""

from __future__ import annotations

import datetime as dt
import json
import logging
import time

import pytest
from sqlalchemy import create_engine
from sqlalchemy import text as sql

from clinic.messaging.quarantine import OVERLONG_ID_PREFIX
from tests.connector_support import deliver, envelope, make_channel, opened, signed, text, wamid
from whatsapp.limits import TEXT_BODY_MAX, WEBHOOK_BODY_MAX_BYTES

PATIENT = "16505551234"
OTHER = "16505559876"
SURROGATE_TEXT = "hi \\ud800 what are your opening hours?"  # as it is written in the JSON body


@pytest.fixture
def channel(tmp_path, monkeypatch):
    return make_channel(tmp_path, monkeypatch)


@pytest.fixture(autouse=True)
def logs(caplog):
    caplog.set_level(logging.DEBUG)
    return caplog


def rows(channel, table):
    engine = create_engine(str(channel.store._sessions.kw["bind"].url), future=True)
    with engine.connect() as connection:
        return [opened(dict(r._mapping)) for r in connection.execute(sql(f"SELECT * FROM {table} ORDER BY 1"))]


def assert_no_text_logged(logs, *texts: str) -> None:
    logged = "\n".join(f"{r.getMessage()} {r.exc_text or ''}" for r in logs.records)
    for words in texts:
        assert words not in logged


def restart(channel, tmp_path, monkeypatch):
    """The process dies (its journal lock goes with it) and a new one starts on the same
    database and journal: what the gateway and Rasa's channel do at start-up."""
    channel.journal.close()
    return make_channel(tmp_path, monkeypatch)


def raw_body(*messages_json: str) -> bytes:
    """A webhook body written by hand, so a JSON escape like \\ud800 arrives as Meta sends it."""
    value = ('{"messaging_product":"whatsapp","metadata":{"phone_number_id":"1"},'
             f'"contacts":[{{"wa_id":"{PATIENT}","profile":{{"name":"P"}}}}],'
             f'"messages":[{",".join(messages_json)}]}}')
    return ('{"object":"whatsapp_business_account","entry":[{"id":"0","changes":[{"field":"messages",'
            f'"value":{value}}}]}}]}}').encode()


def text_json(wid: str, body_json: str, timestamp: str = "1763800000") -> str:
    return (f'{{"from":"{PATIENT}","id":"{wid}","timestamp":"{timestamp}","type":"text",'
            f'"text":{{"body":"{body_json}"}}}}')


# ── 1. invalid Unicode ───────────────────────────────────────────────────────────────────
@pytest.mark.asyncio
async def test_a_lone_surrogate_is_replaced_at_the_door_and_intake_goes_on(channel, logs, tmp_path, monkeypatch):
    poisoned, later = wamid(), wamid()
    status, _ = await deliver(channel, *signed(raw_body(text_json(poisoned, SURROGATE_TEXT))))
    assert status == 200
    status, _ = await deliver(channel, *signed(envelope(text(OTHER, "is the clinic open on Saturday", id=later))))
    assert status == 200
    stored = {r["wamid"]: r for r in rows(channel, "wa_inbox")}
    assert stored[poisoned]["text"] == "hi \ufffd what are your opening hours?"
    assert stored[poisoned]["state"] == stored[later]["state"] == "pending"
    assert list(channel.journal.directory.glob("*.jsonl")) == [] or all(
        p.stat().st_size == 0 for p in channel.journal.directory.glob("*.jsonl"))
    again = restart(channel, tmp_path, monkeypatch)
    await again.drain_journal_at_start()
    assert len(rows(again, "wa_inbox")) == 2
    assert_no_text_logged(logs, "opening hours", "clinic open", PATIENT)


@pytest.mark.asyncio
async def test_invalid_utf8_and_nul_are_replaced_too(channel):
    body = raw_body(text_json(wamid(), "bad \\u0000 byte")).replace(b"bad ", b"bad \xff\xfe ")
    assert (await deliver(channel, *signed(body)))[0] == 200
    [row] = rows(channel, "wa_inbox")
    assert row["text"] == "bad \ufffd\ufffd \ufffd byte"


@pytest.mark.asyncio
async def test_a_journal_record_the_database_refuses_is_quarantined_and_blocks_nothing(tmp_path, monkeypatch, logs):
    """A journal written before the door normalised text (or any record the database will not
    take): the records after it still reach the inbox, start-up does not fail, the record waits
    in the quarantine with its reason, and a retry puts it into the inbox."""
    first = make_channel(tmp_path, monkeypatch)
    poisoned, later = wamid(), wamid()
    conversation = first.conversation_id(PATIENT)
    now = dt.datetime.now(dt.timezone.utc).isoformat()
    first.journal.append([
        {"type": "message", "wamid": poisoned, "conversation_id": conversation, "kind": "text",
         "text": "hi \ud800 what are your opening hours?", "metadata": {}, "redacted": [],
         "received_at": now, "skip": False, "address_encrypted": None},
        {"type": "message", "wamid": later, "conversation_id": conversation, "kind": "text",
         "text": "and on Sunday?", "metadata": {}, "redacted": [], "received_at": now, "skip": False,
         "address_encrypted": None},
    ])
    first.journal.close()  # killed before the flusher ran

    second = make_channel(tmp_path, monkeypatch)
    await second.drain_journal_at_start()  # used to raise here, and the gateway exited
    assert [(r["wamid"], r["text"]) for r in rows(second, "wa_inbox")] == [(later, "and on Sunday?")]
    [item] = second.quarantine.items()
    assert (item.source, item.reason, item.detail, item.wamid, item.conversation_id) == (
        "journal", "journal_apply_failed", "UnicodeEncodeError", poisoned, conversation)
    assert item.retryable
    assert second.metrics.snapshot()["journal_record_quarantined"] == 1
    assert "journal" in (await second.metrics_report())["quarantine"]["open_by_reason"].__repr__()
    # The journal is empty: the next start has nothing to trip over.
    assert all(p.stat().st_size == 0 for p in second.journal.directory.glob("*.jsonl"))

    with second.quarantine.sessions.begin() as session:
        second.quarantine.retry(session, item.id, by="sara")
    retried = {r["wamid"]: r for r in rows(second, "wa_inbox")}[poisoned]
    assert (retried["text"], retried["state"]) == ("hi \ufffd what are your opening hours?", "pending")
    assert second.quarantine.items() == []
    assert rows(second, "wa_quarantine")[0]["record_json"] is None  # the text now lives in the inbox only
    assert_no_text_logged(logs, "opening hours", "Sunday")


@pytest.mark.asyncio
async def test_the_journal_still_waits_while_the_database_is_down(channel, monkeypatch):
    """The quarantine is for records the database refuses, not for an outage."""
    await channel.receive_webhook(*signed(envelope(text(PATIENT, "are you open today"))))

    def database_down(*_args, **_kwargs):
        raise OSError("database unavailable")

    monkeypatch.setattr(channel.store, "accept", database_down)
    with pytest.raises(OSError):
        await channel.flush_journal()
    monkeypatch.undo()
    assert channel.quarantine.items() == []
    await channel.flush_journal()
    assert [r["text"] for r in rows(channel, "wa_inbox")] == ["are you open today"]


# ── 3. one bad field, one bad item ─────────────────────────────────────────────────────────
@pytest.mark.asyncio
async def test_absurd_timestamps_keep_the_message_and_the_batch(channel, logs):
    good_1, overflow, millis, good_2 = wamid(), wamid(), wamid(), wamid()
    batch = envelope(text(PATIENT, "first good one", id=good_1),
                     text(PATIENT, "overflowing time", id=overflow, timestamp="100000000000000000000"),
                     text(PATIENT, "milliseconds", id=millis, timestamp="1000000000000"),
                     text(PATIENT, "second good one", id=good_2))
    before = time.time()
    assert (await deliver(channel, *signed(batch)))[0] == 200
    stored = {r["wamid"]: r for r in rows(channel, "wa_inbox")}
    assert set(stored) == {good_1, overflow, millis, good_2}
    for replaced in (overflow, millis):  # the receipt time stands in
        received = stored[replaced]["received_at"]
        received = dt.datetime.fromisoformat(str(received)).replace(tzinfo=dt.timezone.utc).timestamp()
        assert before - 5 <= received <= time.time() + 5
    assert channel.metrics.snapshot()["inbound_timestamp_replaced"] == 2
    # A status with an absurd time is kept as well.
    status = {"id": "wamid.OUTX", "status": "delivered", "timestamp": "99999999999999999999999",
              "recipient_id": PATIENT}
    assert (await deliver(channel, *signed(envelope(statuses=(status,)))))[0] == 200
    assert [r["status"] for r in rows(channel, "wa_statuses")] == ["delivered"]
    assert_no_text_logged(logs, "overflowing time", "milliseconds", "good one")


@pytest.mark.asyncio
async def test_an_unreadable_message_goes_to_the_quarantine_with_its_reason(channel, logs):
    good = wamid()
    no_id = {"from": PATIENT, "timestamp": "1763800000", "type": "text", "text": {"body": "secret words"}}
    batch = envelope(text(PATIENT, "readable", id=good), no_id)
    assert (await deliver(channel, *signed(batch)))[0] == 200
    assert [r["wamid"] for r in rows(channel, "wa_inbox")] == [good]
    [item] = channel.quarantine.items()
    assert (item.source, item.reason, item.retryable) == ("webhook", "unreadable", False)
    assert "id: expected a non-empty string" in item.detail
    assert item.conversation_id == channel.conversation_id(PATIENT)  # a pseudonym, never the number
    stored = json.dumps(rows(channel, "wa_quarantine"), default=str)
    assert PATIENT not in stored and "secret words" not in stored
    assert_no_text_logged(logs, "secret words", "readable")


# ── 4. huge text under the webhook limit ───────────────────────────────────────────────────
@pytest.mark.asyncio
async def test_a_huge_text_is_cut_to_whatsapps_maximum_before_anything_reads_it(channel):
    huge = ("my knee hurts " * 210_000)[: 2_900_000]
    body, signature = signed(envelope(text(PATIENT, huge)))
    assert len(body) < WEBHOOK_BODY_MAX_BYTES
    started = time.monotonic()
    assert (await deliver(channel, body, signature))[0] == 200
    assert time.monotonic() - started < 10
    [row] = rows(channel, "wa_inbox")
    assert 0 < len(row["text"]) <= TEXT_BODY_MAX and huge.startswith(row["text"])
    assert not row["text"].endswith("kne")  # cut at a space, not in a word
    assert channel.metrics.snapshot()["inbound_text_truncated"] == 1


# ── 5. smaller crashes ─────────────────────────────────────────────────────────────────────
@pytest.mark.asyncio
@pytest.mark.parametrize("depth", [100, 100_000])
async def test_deeply_nested_json_is_refused_with_400_not_a_crash(channel, depth):
    body = b'{"object":"whatsapp_business_account","entry":' + b"[" * depth + b"]" * depth + b"}"
    assert await channel.receive_webhook(*signed(body)) == (400, "JSON nested too deeply")
    assert channel.metrics.snapshot()["webhook_too_deep"] == 1
    # The door is fine afterwards.
    assert (await deliver(channel, *signed(envelope(text(PATIENT, "hello")))))[0] == 200
    assert len(rows(channel, "wa_inbox")) == 1


@pytest.mark.asyncio
async def test_an_overlong_message_id_is_stored_under_a_digest_and_deduplicated(channel):
    long_id = "wamid." + "A" * 5000
    payload = envelope(text(PATIENT, "what are your opening hours", id=long_id))
    for _ in range(2):  # a redelivery too
        assert (await deliver(channel, *signed(payload)))[0] == 200
    [row] = rows(channel, "wa_inbox")
    assert row["wamid"].startswith(OVERLONG_ID_PREFIX) and len(row["wamid"]) < 191
    assert row["state"] == "pending"
    assert channel.metrics.snapshot()["inbound_id_too_long"] == 2
    assert channel.metrics.snapshot()["inbound_duplicates"] == 1


@pytest.mark.asyncio
async def test_every_fault_in_one_batch_leaves_the_good_messages_and_a_clean_restart(tmp_path, monkeypatch, logs):
    channel = make_channel(tmp_path, monkeypatch)
    good = wamid()
    body = raw_body(
        text_json(wamid(), SURROGATE_TEXT),
        text_json(wamid(), "zebra crossing", timestamp="100000000000000000000"),
        text_json("wamid." + "B" * 5000, "violet umbrella"),
        '{"from":"%s","timestamp":"1","type":"text","text":{"body":"purple elephant"}}' % PATIENT,
        text_json(good, "a good one"),
    )
    assert (await deliver(channel, *signed(body)))[0] == 200
    assert len(rows(channel, "wa_inbox")) == 4
    assert good in {r["wamid"] for r in rows(channel, "wa_inbox")}
    assert len(channel.quarantine.items()) == 1
    again = restart(channel, tmp_path, monkeypatch)
    await again.drain_journal_at_start()
    assert len(rows(again, "wa_inbox")) == 4
    assert (await deliver(again, *signed(envelope(text(OTHER, "after the restart")))))[0] == 200
    assert len(rows(again, "wa_inbox")) == 5
    assert_no_text_logged(logs, "opening hours", "zebra", "umbrella", "elephant", "a good one", "after the restart")


@pytest.mark.asyncio
async def test_records_of_the_wrong_shape_are_quarantined_and_the_good_ones_applied(tmp_path, monkeypatch):
    first = make_channel(tmp_path, monkeypatch)
    good = wamid()
    first.journal.append([
        ["not", "a", "record"],
        {"type": "message", "wamid": wamid()},  # fields missing
        {"type": "message", "wamid": good, "conversation_id": first.conversation_id(PATIENT), "kind": "text",
         "text": "a good one", "metadata": {}, "redacted": [], "skip": False, "address_encrypted": None,
         "received_at": dt.datetime.now(dt.timezone.utc).isoformat()},
    ])
    first.journal.close()
    second = make_channel(tmp_path, monkeypatch)
    await second.drain_journal_at_start()
    assert [r["wamid"] for r in rows(second, "wa_inbox")] == [good]
    assert sorted(i.detail for i in second.quarantine.items()) == ["AttributeError", "MalformedTurn"]
