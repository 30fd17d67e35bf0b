"""Usernames without phone numbers (issue 19, item 4): business-scoped user ids (BSUIDs) from
parsing to the reply, without the assistant (the end-to-end conversation is in
tests/test_bsuid_e2e.py).

Payload shapes: david-lev/pywa's fixtures (tests/data/updates/message.json and
callback_button.json: ``contacts[].user_id``, ``parent_user_id``, ``messages[].from_user_id``;
``profile.username`` as pywa's ``User.from_contact`` reads it) and Meta's system messages
reference (``user_changed_user_id``: no contacts array, no phone number; the new BSUID in
``system.user_id`` as pywa's system.py reads it).
"""

from __future__ import annotations

import copy
import json

import pytest
import pytest_asyncio
from sqlalchemy import create_engine
from sqlalchemy import text as sql

from clinic.privacy import ContactCipher, contact_key
from connectors.whatsapp.channel import WhatsAppInput
from simulator.testing import WebhookReceiver, running_simulator
from tests.connector_support import ENCRYPTION_KEY, deliver, make_channel, settings, signed, wamid
from tests.pg_support import fresh_database, postgres_url  # noqa: F401  (a real PostgreSQL)
from whatsapp.inbound import SystemMessage, TemplateButtonReply, TextMessage, parse_webhook
from whatsapp.outbound import Recorded, Text
from whatsapp.users import address_fields, is_bsuid

PHONE = "972987654321"
BSUID = "US.13491208655302741918"
PARENT = "US.ENT.11815799212886844830"
NEW_BSUID = "US.20491208655302741999"
USERNAME = "sam.rivera"

# pywa tests/data/updates/message.json ("text"), verbatim but for the profile's username.
PYWA_TEXT = {
    "object": "whatsapp_business_account",
    "entry": [{"id": "1234567890987654321", "changes": [{"value": {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "972123456789", "phone_number_id": "1122334455667"},
        "contacts": [{"profile": {"name": "Test Name"}, "wa_id": PHONE, "user_id": BSUID,
                      "parent_user_id": PARENT}],
        "messages": [{"from": PHONE, "id": "wamid.xyzxyz", "timestamp": "1697043223",
                      "text": {"body": "Body Text"}, "type": "text"}],
    }, "field": "messages"}]}],
}
# pywa tests/data/updates/callback_button.json ("quick_reply_without_context").
PYWA_BUTTON = {
    "object": "whatsapp_business_account",
    "entry": [{"id": "5467539754836534", "changes": [{"value": {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "972123456789", "phone_number_id": "1122334455667"},
        "contacts": [{"profile": {"name": "Test Name"}, "wa_id": PHONE, "user_id": BSUID,
                      "parent_user_id": PARENT}],
        "messages": [{"from": PHONE, "from_user_id": BSUID, "id": "wamid.xsidjx", "timestamp": "1698269027",
                      "type": "button", "button": {"payload": "callback_data", "text": "title"}}],
    }, "field": "messages"}]}],
}


def username_only(text: str, user_id: str = BSUID, message_id: str | None = None) -> dict:
    """A username user whose number WhatsApp withholds: no ``wa_id``, no ``from``."""
    return {"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [{"field": "messages", "value": {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550783881", "phone_number_id": "106540352242922"},
        "contacts": [{"profile": {"name": "Sam", "username": USERNAME}, "user_id": user_id}],
        "messages": [{"from_user_id": user_id, "id": message_id or wamid(), "timestamp": "1763800000",
                      "type": "text", "text": {"body": text}}],
    }}]}]}


def with_phone(text: str, phone: str = PHONE, user_id: str | None = None) -> dict:
    contact: dict = {"profile": {"name": "Sam"}, "wa_id": phone}
    message: dict = {"from": phone, "id": wamid(), "timestamp": "1763800000", "type": "text", "text": {"body": text}}
    if user_id:
        contact["user_id"] = message["from_user_id"] = user_id
    return {"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [{"field": "messages", "value": {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550783881", "phone_number_id": "106540352242922"},
        "contacts": [contact], "messages": [message]}}]}]}


def user_id_changed(old: str, new: str) -> dict:
    """Meta's ``user_changed_user_id`` system update: no contacts array, no phone number."""
    return {"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [{"field": "messages", "value": {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550783881", "phone_number_id": "106540352242922"},
        "messages": [{"from_user_id": old, "id": wamid(), "timestamp": "1763800100", "type": "system",
                      "system": {"body": f"User Sam changed from {old} to {new}", "user_id": new,
                                 "type": "user_changed_user_id"}}]}}]}]}


# ── parsing ──────────────────────────────────────────────────────────────────────────────
def test_pywa_fixtures_parse_with_their_bsuid_and_key_on_it():
    [message] = parse_webhook(PYWA_TEXT, received_at=1697043300).messages
    assert isinstance(message, TextMessage)
    contact = message.contact
    assert (contact.wa_id, contact.user_id, contact.parent_user_id) == (PHONE, BSUID, PARENT)
    assert message.sender_key == BSUID  # the BSUID outlives a withheld number
    [button] = parse_webhook(PYWA_BUTTON, received_at=1698269100).messages
    assert isinstance(button, TemplateButtonReply) and button.from_user_id == BSUID and button.from_ == PHONE


def test_a_username_user_without_a_number_parses_with_the_username():
    batch = parse_webhook(username_only("hello"), received_at=1763800100)
    assert batch.problems == [] and batch.rejected == []
    [message] = batch.messages
    assert message.from_ is None and message.contact.wa_id is None
    assert message.sender_key == BSUID and message.contact.username == USERNAME


def test_user_changed_user_id_gives_the_old_and_the_new_id():
    [message] = parse_webhook(user_id_changed(BSUID, NEW_BSUID), received_at=1763800200).messages
    assert isinstance(message, SystemMessage)
    assert (message.system_type, message.from_user_id, message.new_user_id) == ("user_changed_user_id", BSUID, NEW_BSUID)
    assert message.sender_key == BSUID and message.contact is None


# ── sending: "recipient" instead of "to" ─────────────────────────────────────────────────
@pytest.mark.parametrize("address", [BSUID, PARENT, "CN.AbC123"])
def test_a_bsuid_is_sent_as_recipient_never_as_to(address):
    assert is_bsuid(address)
    payload = Text("Your appointment is confirmed").to_payload(address, biz_opaque_callback_data="7")
    assert payload["recipient"] == address and "to" not in payload
    assert payload["recipient_type"] == "individual"  # as pywa sends it
    again = Recorded(payload).to_payload(address)
    assert again["recipient"] == address and "to" not in again


@pytest.mark.parametrize("address", [PHONE, "+16505551234"])
def test_a_phone_number_is_still_sent_as_to(address):
    assert not is_bsuid(address)
    payload = Text("hi").to_payload(address)
    assert payload["to"] == address and "recipient" not in payload
    # A message recorded for a BSUID and re-sent to a phone carries only "to".
    assert address_fields(address) == {"to": address}
    assert "recipient" not in Recorded(Text("hi").to_payload(BSUID)).to_payload(address)


# ── the door: one conversation per person, no phone stored ─────────────────────────────
@pytest.fixture(params=["sqlite", "postgresql"])
def channel(request, tmp_path, monkeypatch):
    if request.param == "sqlite":
        yield make_channel(tmp_path, monkeypatch)
        return
    server = request.getfixturevalue("postgres_url")
    with fresh_database(server, "bsuid") as url:
        monkeypatch.setenv("CLINIC_PSEUDONYM_KEY", "test-pseudonym-key")
        monkeypatch.setenv("CLINIC_ENCRYPTION_KEY", ENCRYPTION_KEY)
        channel = WhatsAppInput(settings(journal_dir=str(tmp_path / "journal")), database_url=url)
        yield channel
        channel.journal.close()
        channel.store.sessions.kw["bind"].dispose()


def rows(channel, query: str):
    engine = create_engine(str(channel.store._sessions.kw["bind"].url), future=True)
    with engine.connect() as connection:
        return [dict(r._mapping) for r in connection.execute(sql(query))]


def key(identifier: str) -> str:
    return contact_key(identifier, "whatsapp", b"test-pseudonym-key")


def address_of(channel, conversation_id: str) -> str:
    [row] = rows(channel, f"SELECT address_encrypted FROM wa_contacts WHERE conversation_id = '{conversation_id}'")
    return ContactCipher(ENCRYPTION_KEY.encode()).decrypt(row["address_encrypted"])


def conversations(channel) -> list:
    return [r["conversation_id"] for r in rows(channel, "SELECT conversation_id FROM wa_inbox ORDER BY id")]


@pytest.mark.asyncio
async def test_a_username_only_patient_is_stored_by_pseudonym_with_no_phone_anywhere(channel, tmp_path):
    assert channel.conversation_id(BSUID) == key(BSUID)  # the door's pseudonym, as this test computes it
    status, _ = await deliver(channel, *signed(username_only("hello, I'd like to book")))
    assert status == 200
    assert conversations(channel) == [key(BSUID)]
    assert address_of(channel, key(BSUID)) == BSUID  # replies go by "recipient"
    [identity] = rows(channel, "SELECT * FROM wa_identities")
    assert (identity["identity_key"], identity["kind"], identity["conversation_id"]) == (key(BSUID), "bsuid", key(BSUID))
    assert ContactCipher(ENCRYPTION_KEY.encode()).decrypt(identity["username_encrypted"]) == USERNAME
    # Neither the BSUID nor the username is in clear in the database or the journal.
    for table in ("wa_inbox", "wa_contacts", "wa_identities"):
        assert BSUID not in str(rows(channel, f"SELECT * FROM {table}"))
    for path in tmp_path.rglob("*"):  # the SQLite file and the journal
        if path.is_file():
            assert BSUID.encode() not in path.read_bytes() and USERNAME.encode() not in path.read_bytes()


@pytest.mark.asyncio
async def test_an_existing_phone_patient_keeps_their_conversation_when_a_bsuid_appears(channel):
    await deliver(channel, *signed(with_phone("hi")))
    # A conversation from before this change: its wa_contacts row, no identity links.
    rows_before = rows(channel, "SELECT * FROM wa_identities")
    assert [r["identity_key"] for r in rows_before] == [key(PHONE)]
    engine = create_engine(str(channel.store._sessions.kw["bind"].url), future=True)
    with engine.begin() as connection:
        connection.execute(sql("DELETE FROM wa_identities"))
    await deliver(channel, *signed(with_phone("now with a username", user_id=BSUID)))
    await deliver(channel, *signed(username_only("and now my number is hidden")))
    assert conversations(channel) == [key(PHONE)] * 3  # one conversation, the old one
    assert address_of(channel, key(PHONE)) == BSUID  # the latest message had no number
    links = {r["identity_key"]: r["conversation_id"] for r in rows(channel, "SELECT * FROM wa_identities")}
    assert links == {key(PHONE): key(PHONE), key(BSUID): key(PHONE)}
    await deliver(channel, *signed(with_phone("number shared again", user_id=BSUID)))
    assert conversations(channel)[-1] == key(PHONE) and address_of(channel, key(PHONE)) == PHONE


@pytest.mark.asyncio
async def test_a_new_patient_with_both_is_keyed_on_the_bsuid_and_found_by_either(channel):
    await deliver(channel, *signed(with_phone("hi", user_id=BSUID)))
    await deliver(channel, *signed(with_phone("an old client sending the number only")))
    await deliver(channel, *signed(username_only("username only")))
    assert conversations(channel) == [key(BSUID)] * 3


@pytest.mark.asyncio
async def test_user_changed_user_id_moves_the_conversation_and_the_reply_address(channel):
    await deliver(channel, *signed(username_only("book me in")))
    status, _ = await deliver(channel, *signed(user_id_changed(BSUID, NEW_BSUID)))
    assert status == 200
    await deliver(channel, *signed(username_only("still me", user_id=NEW_BSUID)))
    assert conversations(channel) == [key(BSUID)] * 3  # the notice is recorded in it too
    [notice] = rows(channel, "SELECT kind, state FROM wa_inbox WHERE kind = 'system'")
    assert notice["state"] == "skipped"  # a notice, not a turn for the assistant
    assert address_of(channel, key(BSUID)) == NEW_BSUID  # the old id reaches nobody
    links = {r["identity_key"]: r["conversation_id"] for r in rows(channel, "SELECT * FROM wa_identities")}
    assert links == {key(BSUID): key(BSUID), key(NEW_BSUID): key(BSUID)}
    usernames = [r["username_encrypted"] for r in rows(channel, "SELECT * FROM wa_identities")]
    assert all(usernames)  # the username follows to the new id


# ── the simulator: a username user, "recipient", the id change ───────────────────────────
@pytest_asyncio.fixture
async def receiver():
    recv = WebhookReceiver()
    await recv.start()
    yield recv
    await recv.stop()


@pytest_asyncio.fixture
async def sim(receiver):
    async with running_simulator(webhook_url=receiver.url) as running:
        yield running


def value_of(payload) -> dict:
    return payload["entry"][0]["changes"][0]["value"]


@pytest.mark.asyncio
async def test_the_simulator_withholds_a_username_users_number_like_meta(sim, receiver):
    wa_id = "15550144444"
    status, user = await sim.post(f"/_sim/users/{wa_id}", {"name": "Sam", "username": USERNAME, "phone_hidden": True})
    assert status == 200 and is_bsuid(user["user_id"])
    await sim.user_says(wa_id, "hello")
    await receiver.wait_for(lambda got: len(got) >= 1)
    value = value_of(receiver.payloads()[-1])
    [contact], [message] = value["contacts"], value["messages"]
    assert contact == {"profile": {"name": "Sam", "username": USERNAME}, "user_id": user["user_id"]}
    assert "from" not in message and message["from_user_id"] == user["user_id"]
    assert wa_id not in json.dumps(value)
    # The business answers by "recipient"; statuses name the BSUID only.
    body = {"messaging_product": "whatsapp", "recipient_type": "individual", "recipient": user["user_id"],
            "type": "text", "text": {"body": "Hello Sam"}}
    status, answer = await sim.send(body)
    assert status == 200 and answer["contacts"] == [{"input": user["user_id"], "user_id": user["user_id"]}]
    wamid_out = answer["messages"][0]["id"]
    await receiver.wait_for(lambda got: "delivered" in receiver.statuses_for(wamid_out))
    statuses = [s for p in receiver.payloads() for s in value_of(p).get("statuses", []) if s["id"] == wamid_out]
    assert statuses and all(s["recipient_user_id"] == user["user_id"] and "recipient_id" not in s for s in statuses)


@pytest.mark.asyncio
async def test_the_simulator_validates_recipient_like_meta(sim):
    wa_id = "15550144445"
    _, user = await sim.post(f"/_sim/users/{wa_id}", {"username": "jo_lee", "phone_hidden": True})
    await sim.user_says(wa_id, "hi")
    body = {"messaging_product": "whatsapp", "type": "text", "text": {"body": "x"}}
    status, error = await sim.send({**body, "recipient": "13491208655302741918"})  # not a BSUID
    assert status == 400 and error["error"]["code"] == 100
    status, error = await sim.send({**body, "recipient": "US.99999999999999999999"})  # nobody
    assert status == 400 and error["error"]["code"] == 131009
    status, error = await sim.send(body)  # neither to nor recipient
    assert status == 400 and error["error"]["code"] == 100
    status, _ = await sim.send({**body, "to": wa_id})  # a number the business knew still works
    assert status == 200


@pytest.mark.asyncio
async def test_the_simulator_sends_user_changed_user_id_and_the_old_id_stops_working(sim, receiver):
    wa_id = "15550144446"
    _, user = await sim.post(f"/_sim/users/{wa_id}", {"username": "kim.chen", "phone_hidden": True})
    await sim.user_says(wa_id, "hi")
    status, change = await sim.post(f"/_sim/users/{wa_id}/change-user-id", {})
    assert status == 200 and change["old_user_id"] == user["user_id"] and change["user_id"] != user["user_id"]
    await receiver.wait_for(lambda got: any(
        m.get("type") == "system" for p in receiver.payloads() for m in value_of(p).get("messages", [])))
    payload = copy.deepcopy(receiver.payloads()[-1])
    value = value_of(payload)
    assert "contacts" not in value  # system messages carry none
    [message] = value["messages"]
    assert "from" not in message and message["from_user_id"] == user["user_id"]
    assert message["system"]["type"] == "user_changed_user_id" and message["system"]["user_id"] == change["user_id"]
    [parsed] = parse_webhook(payload, received_at=int(message["timestamp"])).messages
    assert isinstance(parsed, SystemMessage) and parsed.new_user_id == change["user_id"]
    body = {"messaging_product": "whatsapp", "type": "text", "text": {"body": "x"}}
    status, error = await sim.send({**body, "recipient": user["user_id"]})
    assert status == 400 and error["error"]["code"] == 131009
    status, _ = await sim.send({**body, "recipient": change["user_id"]})
    assert status == 200


@pytest.mark.asyncio
async def test_user_changed_number_keeps_the_conversation_too(channel):
    new_phone = "972912345678"
    await deliver(channel, *signed(with_phone("hi")))
    # pywa tests/data/updates/system.json ("phone_number_change"), as Meta documents it.
    notice = {"object": "whatsapp_business_account", "entry": [{"id": "1234567890987654321", "changes": [{"value": {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "972123456789", "phone_number_id": "1122334455667"},
        "messages": [{"from": PHONE, "id": "wamid.xyzxyz==", "timestamp": "1753851315",
                      "system": {"body": f"User A changed from {PHONE} to {new_phone}", "wa_id": new_phone,
                                 "type": "user_changed_number"}, "type": "system"}]},
        "field": "messages"}]}]}
    await deliver(channel, *signed(notice))
    await deliver(channel, *signed(with_phone("from my new number", phone=new_phone)))
    assert conversations(channel) == [key(PHONE)] * 3
    assert address_of(channel, key(PHONE)) == new_phone
