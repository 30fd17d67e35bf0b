"""The WhatsApp channel's door: handshake, signature, parsing, durable dedupe, privacy."""

import asyncio
import json
from pathlib import Path

import pytest
from rasa.core.channels.channel import CollectingOutputChannel
from sqlalchemy import create_engine
from sqlalchemy import text as sql

from tests.connector_support import (
    APP_SECRET,
    INTERNAL_SECRET,
    VERIFY_TOKEN,
    deliver,
    envelope,
    make_channel,
    message,
    opened,
    opened_journal,
    signed,
    text,
    wamid,
)
from whatsapp.signature import sign

EXAMPLES = Path(__file__).resolve().parents[2] / "shared" / "reference" / "meta-openapi-webhook-examples.json"
PATIENT = "16505551234"


@pytest.fixture
def channel(tmp_path, monkeypatch):
    return make_channel(tmp_path, monkeypatch)


def rows(channel, table):
    engine = create_engine(str(channel.store._sessions.kw["bind"].url), future=True)
    with engine.connect() as connection:
        return [opened(dict(r._mapping)) for r in connection.execute(sql(f"SELECT * FROM {table}"))]


def dump(channel) -> str:
    """Everything the channel stored, as one string (to look for data that must not be there)."""
    tables = ("wa_inbox", "wa_contacts", "wa_outbound", "wa_statuses")
    return json.dumps([rows(channel, t) for t in tables], default=str)


@pytest.mark.parametrize(
    "mode, token, challenge, expected",
    [
        ("subscribe", VERIFY_TOKEN, "1158201444", (200, "1158201444")),
        ("subscribe", "wrong", "1158201444", (403, "forbidden")),
        ("unsubscribe", VERIFY_TOKEN, "1158201444", (403, "forbidden")),
        ("subscribe", VERIFY_TOKEN, None, (403, "forbidden")),
        (None, None, None, (403, "forbidden")),
    ],
)
def test_handshake(channel, mode, token, challenge, expected):
    assert channel.handshake(mode, token, challenge) == expected


@pytest.mark.asyncio
async def test_missing_or_wrong_signature_stores_nothing(channel):
    body, _ = signed(envelope(text(PATIENT, "hello")))
    assert await deliver(channel, body, None) == (401, "missing signature")
    assert (await deliver(channel, body, sign(body, "other-secret")))[0] == 403
    assert (await deliver(channel, body + b" ", sign(body, APP_SECRET)))[0] == 403
    assert rows(channel, "wa_inbox") == []


@pytest.mark.asyncio
async def test_malformed_json_is_400_and_oversized_is_413(channel):
    assert (await deliver(channel, *signed(b"{not json")))[0] == 400
    assert (await deliver(channel, *signed(b"x" * (3 * 1024 * 1024 + 1))))[0] == 413


@pytest.mark.asyncio
async def test_message_is_stored_once_whatever_the_redeliveries(channel):
    payload = envelope(text(PATIENT, "what are your opening hours"))
    for _ in range(3):
        assert await deliver(channel, *signed(payload)) == (200, "OK")
    [row] = rows(channel, "wa_inbox")
    assert row["state"] == "pending" and row["text"] == "what are your opening hours"
    assert channel.metrics.snapshot()["inbound_duplicates"] == 2


@pytest.mark.asyncio
async def test_every_message_of_a_batch_is_stored_in_order(channel):
    messages = [text("111", "one"), text("222", "two"), text("111", "three")]
    payload = envelope(*messages)
    payload["entry"].append(envelope(text("333", "four"))["entry"][0])
    assert (await deliver(channel, *signed(payload)))[0] == 200
    stored = rows(channel, "wa_inbox")
    assert [r["text"] for r in stored] == ["one", "two", "three", "four"]
    conversations = [r["conversation_id"] for r in stored]
    assert conversations[0] == conversations[2] != conversations[1]


@pytest.mark.asyncio
async def test_conversations_are_pseudonymous_and_addresses_encrypted(channel):
    await deliver(channel, *signed(envelope(text(PATIENT, "hi"))))
    [row] = rows(channel, "wa_inbox")
    assert row["conversation_id"] == channel.conversation_id(PATIENT)
    assert len(row["conversation_id"]) == 64 and PATIENT not in row["conversation_id"]
    everything = dump(channel)
    assert PATIENT not in everything and "Synthetic Patient" not in everything
    [contact] = rows(channel, "wa_contacts")
    assert channel._cipher.decrypt(contact["address_encrypted"]) == PATIENT


@pytest.mark.asyncio
async def test_business_scoped_user_id_keys_the_conversation(channel):
    bsuid = "US.13491208655302741918"
    msg = text(PATIENT, "hello", from_user_id=bsuid)
    contacts = ({"profile": {"name": "P"}, "wa_id": PATIENT, "user_id": bsuid},)
    await deliver(channel, *signed(envelope(msg, contacts=contacts)))
    [row] = rows(channel, "wa_inbox")
    assert row["conversation_id"] == channel.conversation_id(bsuid)


@pytest.mark.asyncio
async def test_secrets_are_redacted_before_anything_is_stored(channel):
    card, iban = "4111 1111 1111 1111", "DE89 3704 0044 0532 0130 00"
    await deliver(channel, *signed(envelope(text(PATIENT, f"pay with {card}, refund {iban}"))))
    [row] = rows(channel, "wa_inbox")
    assert row["text"] == "pay with [card number removed], refund [bank account removed]"
    assert row["redacted"] == "CREDIT_CARD,IBAN_CODE"
    assert card not in dump(channel) and "4111111111111111" not in dump(channel)


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "body, kind, assistant_reads",
    [
        ({"type": "interactive", "interactive": {"type": "button_reply", "button_reply": {"id": "/menu", "title": "Main menu"}}}, "button_reply", "/menu"),
        ({"type": "interactive", "interactive": {"type": "list_reply", "list_reply": {"id": "row-7", "title": "Billing"}}}, "list_reply", "Billing"),
        ({"type": "button", "button": {"payload": '/confirm{"appointment_id": 7}', "text": "Confirm"}}, "template_button", '/confirm{"appointment_id": 7}'),
        ({"type": "location", "location": {"latitude": 52.52, "longitude": 13.405, "name": "Home"}}, "location", '/share_location{"latitude":52.52,"longitude":13.405}'),
        ({"type": "audio", "audio": {"id": "m1", "mime_type": "audio/ogg", "voice": True}}, "audio", '/media_message{"media_kind":"voice"}'),
        ({"type": "image", "image": {"id": "m2", "mime_type": "image/jpeg", "caption": "my rash"}}, "image", '/media_message{"media_kind":"image"}'),
        ({"type": "document", "document": {"id": "m3", "filename": "x.pdf"}}, "document", '/media_message{"media_kind":"document"}'),
        ({"type": "sticker", "sticker": {"id": "m4", "mime_type": "image/webp"}}, "sticker", '/media_message{"media_kind":"sticker"}'),
        ({"type": "contacts", "contacts": [{"name": {"formatted_name": "A B"}}]}, "contacts", '/media_message{"media_kind":"contacts"}'),
        ({"type": "order", "order": {"catalog_id": "1", "product_items": []}}, "order", "/buy_medication"),
        ({"type": "unsupported", "unsupported": {"type": "poll_creation"}}, "unsupported", '/media_message{"media_kind":"other"}'),
        ({"type": "hologram", "hologram": {}}, "hologram", '/media_message{"media_kind":"other"}'),
    ],
)
async def test_each_message_type_becomes_something_the_assistant_can_answer(channel, body, kind, assistant_reads):
    await deliver(channel, *signed(envelope(message(PATIENT, body))))
    [row] = rows(channel, "wa_inbox")
    assert (row["kind"], row["text"], row["state"]) == (kind, assistant_reads, "pending")
    assert "my rash" not in dump(channel)  # captions are not kept


@pytest.mark.asyncio
async def test_a_tapped_buttons_title_goes_with_its_payload_into_rasas_log(channel):
    """The assistant reads the payload ("/deny"); Rasa logs the title the patient tapped with
    it, so the staff inbox's transcript shows "I'll wait here", not a code."""
    taps = [
        {"type": "interactive", "interactive": {"type": "button_reply",
                                                "button_reply": {"id": "/deny", "title": "I'll wait here"}}},
        {"type": "button", "button": {"payload": "/affirm", "text": "Confirm 4111 1111 1111 1111"}},
        {"type": "interactive", "interactive": {"type": "list_reply", "list_reply": {"id": "row-7", "title": "Billing"}}},
    ]
    for tap in taps:
        await deliver(channel, *signed(envelope(message(PATIENT, tap))))
    stored = [(r["text"], json.loads(r["metadata_json"] or "{}")) for r in rows(channel, "wa_inbox")]
    assert stored == [("/deny", {"title": "I'll wait here"}),
                      ("/affirm", {"title": "Confirm [card number removed]"}),  # redacted like text
                      ("Billing", {})]  # the assistant reads the title itself: nothing to add
    logged = []

    async def on_new_message(user_message) -> None:
        logged.append(user_message)

    conversation_id = rows(channel, "wa_inbox")[0]["conversation_id"]
    pending = channel.store.next_pending(conversation_id)
    await channel._run_turn(on_new_message, pending.turn, CollectingOutputChannel(), claimed=False)
    # The gateway's turn (gateway/relay.py sends the inbox message's title along).
    body = json.dumps({"wamid": "wamid.turn", "conversation_id": conversation_id, "kind": "button_reply",
                       "text": "/request_callback", "title": "Call me back"}).encode()
    status, _ = await channel.turn(on_new_message, body, sign(body, INTERNAL_SECRET))
    assert status == 200
    assert [(m.text, m.metadata["whatsapp"].get("title")) for m in logged] == [
        ("/deny", "I'll wait here"), ("/request_callback", "Call me back")]


@pytest.mark.asyncio
async def test_the_turns_answer_says_its_language_and_the_gateway_lists_in_it(channel):
    """A Russian and a Chinese patient whose menu becomes a list: the assistant's answer to the
    gateway's turn carries the conversation's language (detected at the door, remembered), and
    the renderer labels the list's button and section in it."""
    from clinic.messaging.turn import TurnReply
    from gateway.render import render
    from whatsapp.outbound import ListMessage

    menu = [{"title": title, "payload": f"/intent_{i}"} for i, title in
            enumerate(["Записаться", "Мои записи", "Счета", "Медсестра"])]

    async def on_new_message(user_message) -> None:
        await user_message.output_channel.send_text_with_buttons(user_message.sender_id, "Меню", menu)

    buttons = {}
    for conversation, words in (("ru-patient", "Здравствуйте, я хочу записаться к терапевту"),
                                 ("zh-patient", "你好，我想预约下周的门诊"),
                                 ("en-patient", "Hello, I would like to book an appointment")):
        body = json.dumps({"wamid": f"wamid.{conversation}", "conversation_id": conversation,
                           "kind": "text", "text": words}).encode()
        status, answer = await channel.turn(on_new_message, body, sign(body, INTERNAL_SECRET))
        assert status == 200
        reply = TurnReply.from_json(answer)
        (listing, _), = await render(conversation, list(reply.messages), reply.language)
        assert isinstance(listing, ListMessage)
        buttons[conversation] = (reply.language, listing.button, listing.sections[0].title)
    assert buttons == {"ru-patient": ("ru", "Варианты", "Варианты"), "zh-patient": ("zh", "选项", "选项"),
                       "en-patient": ("en", "Options", "Options")}


@pytest.mark.asyncio
async def test_reactions_and_revocations_are_recorded_not_answered(channel):
    reaction = message(PATIENT, {"type": "reaction", "reaction": {"message_id": wamid(), "emoji": "👍"}})
    await deliver(channel, *signed(envelope(reaction)))
    [row] = rows(channel, "wa_inbox")
    assert row["state"] == "skipped" and row["text"] is None


@pytest.mark.asyncio
async def test_statuses_never_move_backwards_and_failures_keep_their_error(channel):
    sent_id, failed_id = wamid(), wamid()

    def status(mid, name, ts, **extra):
        return {"id": mid, "status": name, "timestamp": str(ts), "recipient_id": PATIENT, **extra}

    for item in [status(sent_id, "sent", 1), status(sent_id, "read", 3), status(sent_id, "delivered", 2)]:
        await deliver(channel, *signed(envelope(statuses=(item,))))
    error = {"code": 131026, "title": "Message undeliverable", "message": "Message undeliverable",
             "error_data": {"details": "Recipient is not a WhatsApp user"}}
    await deliver(channel, *signed(envelope(statuses=(status(failed_id, "failed", 5, errors=[error]),))))
    by_id = {r["wamid"]: r for r in rows(channel, "wa_statuses")}
    assert by_id[sent_id]["status"] == "read"  # the late "delivered" was ignored
    assert (by_id[failed_id]["status"], by_id[failed_id]["error_code"]) == ("failed", 131026)
    assert "not a WhatsApp user" in by_id[failed_id]["error_detail"]
    assert channel.metrics.snapshot()["status_ignored_stale"] == 1


@pytest.mark.asyncio
async def test_every_meta_example_is_accepted_without_crashing(channel):
    if not EXAMPLES.exists():
        pytest.skip(f"Meta's examples not found at {EXAMPLES}")
    examples = json.loads(EXAMPLES.read_text())
    items = examples.items() if isinstance(examples, dict) else enumerate(examples)
    ids = set()
    for name, example in items:
        for entry in example.get("entry", []):
            for change in entry.get("changes", []):
                ids.update(m["id"] for m in change.get("value", {}).get("messages", []))
        assert (await deliver(channel, *signed(example)))[0] == 200, name
    # Meta's examples reuse some wamids: each distinct message is stored exactly once.
    assert len(ids) >= 8
    assert sorted(r["wamid"] for r in rows(channel, "wa_inbox")) == sorted(ids)


@pytest.mark.asyncio
async def test_garbage_inside_a_valid_envelope_never_crashes(channel):
    payload = envelope(text(PATIENT, "ok"))
    payload["entry"][0]["changes"][0]["value"]["messages"].append({"type": "text"})  # no id/from
    payload["entry"].append("not an entry")
    assert (await deliver(channel, *signed(payload)))[0] == 200
    assert [r["text"] for r in rows(channel, "wa_inbox")] == ["ok"]


def journal_text(channel) -> str:
    """The journal's lines, each message's words opened (on disk they are sealed)."""
    return opened_journal(channel.journal.directory)


def raw_journal(channel) -> str:
    return "".join(p.read_text() for p in sorted(channel.journal.directory.glob("*.jsonl")))


@pytest.mark.asyncio
async def test_the_200_comes_after_the_journal_holds_only_redacted_pseudonymous_records(channel):
    card = "4111 1111 1111 1111"
    body = envelope(text(PATIENT, f"my card is {card}"))
    assert await channel.receive_webhook(*signed(body)) == (200, "OK")
    # Durable before the 200: on disk, not yet in the database (the flusher's job).
    written, raw = journal_text(channel), raw_journal(channel)
    assert channel.conversation_id(PATIENT) in raw and "[card number removed]" in written
    assert PATIENT not in written and card not in written and "Synthetic Patient" not in written
    # On disk the words are sealed (issue 18): ids and times in clear, the text not.
    assert "my card is" not in raw and "[card number removed]" not in raw and '"sealed":"enc:v1:' in raw
    assert rows(channel, "wa_inbox") == []
    await channel.flush_journal()
    assert [r["text"] for r in rows(channel, "wa_inbox")] == ["my card is [card number removed]"]
    assert journal_text(channel) == ""  # applied segments are deleted


@pytest.mark.asyncio
async def test_webhooks_acknowledged_before_a_crash_reach_the_inbox_after_restart(tmp_path, monkeypatch):
    first = make_channel(tmp_path, monkeypatch)
    ids = [wamid(), wamid()]
    for wid, words in zip(ids, ("first", "second"), strict=False):
        assert (await first.receive_webhook(*signed(envelope(text(PATIENT, words, id=wid)))))[0] == 200
    status_id = "wamid.OUT1"
    await first.receive_webhook(*signed(envelope(statuses=({"id": status_id, "status": "delivered",
                                                            "timestamp": "1763800000",
                                                            "recipient_id": PATIENT},))))
    first.journal.close()  # the process dies: its lock goes with it, its files stay
    second = make_channel(tmp_path, monkeypatch)
    assert rows(second, "wa_inbox") == []
    # What the Rasa process does at start-up, before recovery.
    await asyncio.to_thread(second.drain_journal)
    assert [(r["wamid"], r["text"], r["state"]) for r in rows(second, "wa_inbox")] == [
        (ids[0], "first", "pending"), (ids[1], "second", "pending")]
    assert [r["status"] for r in rows(second, "wa_statuses") if r["wamid"] == status_id] == ["delivered"]


@pytest.mark.asyncio
async def test_a_redelivery_while_the_first_copy_is_still_in_the_journal_is_stored_once(channel):
    payload = envelope(text(PATIENT, "hello"))
    for _ in range(3):
        assert (await channel.receive_webhook(*signed(payload)))[0] == 200
    await channel.flush_journal()
    assert len(rows(channel, "wa_inbox")) == 1
    assert channel.metrics.snapshot()["inbound_duplicates"] == 2


@pytest.mark.asyncio
async def test_the_journal_is_kept_while_the_database_is_down(channel, monkeypatch):
    await channel.receive_webhook(*signed(envelope(text(PATIENT, "are you open today"))))

    def database_down(*_args, **_kwargs):
        raise OSError("database unavailable")

    monkeypatch.setattr(channel.store, "accept", database_down)
    with pytest.raises(OSError):
        await channel.flush_journal()
    assert "are you open today" in journal_text(channel)
    monkeypatch.undo()
    await channel.flush_journal()
    assert [r["text"] for r in rows(channel, "wa_inbox")] == ["are you open today"]
