"""The gateway's side of calls (gateway/calls.py, clinic/messaging/calls.py) on a real SQLite
database and the simulator in-process: a patient's call is routed like a chat (the open
ticket's team, else the team of their last request for a person, else reception, with a
ticket opened); staff's queued actions reach Meta's calls endpoint with the patient's
address decrypted only there; Meta's reports move the call along, a redelivery changes
nothing, and the SDPs are erased when the call ends."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import select

from clinic.clock import utcnow
from clinic.db import create_schema, make_engine, make_session_factory
from clinic.handoff.requests import HandoffRequests, Reason
from clinic.handoff.teams import Team
from clinic.inbox.tables import TicketRow
from clinic.messaging.calls import CallError, CallStore
from clinic.messaging.store import ContactRow
from clinic.privacy import ContactCipher, contact_key
from gateway.calls import CallDesk
from gateway.render import CHANNEL_NAME
from simulator.testing import WebhookReceiver, running_simulator
from whatsapp.client import GraphClient
from whatsapp.metrics import Metrics

KEY = b"k" * 32
SDP = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n"
ANSWER = SDP.replace("o=- 1 2", "o=- 3 4")


def conversation_of(wa_id: str) -> str:
    return contact_key(wa_id, CHANNEL_NAME, KEY)


@pytest.fixture
def sessions(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'clinic.db'}")
    create_schema(engine)
    return make_session_factory(engine)


def desk(sessions, client=None) -> CallDesk:
    return CallDesk(sessions, client, ContactCipher(Fernet.generate_key()), conversation_of, KEY, Metrics())


def webhook(*calls: dict, statuses: tuple = ()) -> dict:
    value: dict = {"messaging_product": "whatsapp", "metadata": {"display_phone_number": "15550000000",
                                                                 "phone_number_id": "1"}}
    if calls:
        value["calls"] = list(calls)
    if statuses:
        value["statuses"] = list(statuses)
    return {"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [
        {"field": "calls", "value": value}]}]}


def user_connect(call_id: str, wa_id: str) -> dict:
    return {"id": call_id, "from": wa_id, "to": "15550000000", "event": "connect", "timestamp": "1752583107",
            "direction": "USER_INITIATED", "session": {"sdp_type": "offer", "sdp": SDP}}


def open_ticket_of(sessions, conversation_id: str) -> TicketRow:
    with sessions() as session:
        return session.scalars(select(TicketRow).where(TicketRow.conversation_id == conversation_id)).one()


def test_a_patient_call_without_a_ticket_rings_for_reception_and_opens_one(sessions):
    gateway = desk(sessions)
    assert gateway.record_webhook(webhook(user_connect("wacid.A", "15550001111"))) == 1
    [call] = gateway.store.ringing()
    ticket = open_ticket_of(sessions, conversation_of("15550001111"))
    assert (call.team, call.ticket_id, ticket.team, call.offer_sdp) == ("reception", ticket.id, "reception", SDP)
    # Redelivered by Meta: still one call.
    gateway.record_webhook(webhook(user_connect("wacid.A", "15550001111")))
    assert len(gateway.store.ringing()) == 1
    # The address to call back or write is kept (encrypted), like a message's.
    with sessions() as session:
        assert session.get(ContactRow, conversation_of("15550001111")).address_encrypted != "15550001111"


def test_a_patient_call_follows_their_last_request_for_a_person(sessions):
    conversation = conversation_of("15550002222")
    key = contact_key(conversation, CHANNEL_NAME, KEY)
    HandoffRequests(sessions).record(key, Team.BILLING, Reason.PATIENT_REQUEST)  # earlier, no ticket now
    gateway = desk(sessions)
    gateway.record_webhook(webhook(user_connect("wacid.B", "15550002222")))
    [call] = gateway.store.ringing(["billing"])
    assert call.team == "billing" and gateway.store.ringing(["nurse"]) == []


def test_terminate_records_outcome_and_duration_and_erases_the_sdps(sessions):
    gateway = desk(sessions)
    gateway.record_webhook(webhook(user_connect("wacid.C", "15550003333")))
    [call] = gateway.store.ringing()
    gateway.store.ask(call.id, "accept", staff_id=7, sdp=ANSWER)
    gateway.record_webhook(webhook({"id": "wacid.C", "from": "15550003333", "to": "15550000000",
                                    "event": "terminate", "direction": "USER_INITIATED", "timestamp": "1752583207",
                                    "status": "COMPLETED", "start_time": "1752583110", "end_time": "1752583207",
                                    "duration": 97}))
    ended = gateway.store.get(call.id)
    assert (ended.state, ended.outcome, ended.duration_seconds, ended.staff_id) == ("ended", "completed", 97, 7)
    assert ended.offer_sdp is None and ended.answer_sdp is None and ended.started_at.year == 2025


def test_a_call_never_answered_is_missed_and_actions_must_fit_the_call(sessions):
    store = CallStore(sessions)
    gateway = desk(sessions)
    gateway.record_webhook(webhook(user_connect("wacid.D", "15550004444")))
    [call] = store.ringing()
    with pytest.raises(CallError):
        store.ask(call.id, "accept", staff_id=1)  # no SDP answer
    with pytest.raises(CallError):
        store.ask(call.id, "dial", staff_id=1)
    gateway.record_webhook(webhook({"id": "wacid.D", "event": "terminate", "direction": "USER_INITIATED",
                                    "status": "FAILED", "from": "15550004444"}))
    assert store.get(call.id).outcome == "missed"
    with pytest.raises(CallError):
        store.ask(call.id, "terminate", staff_id=1)
    placed = store.place("conv-x", SDP, staff_id=1, ticket_id=None, team="nurse")
    with pytest.raises(CallError):
        store.place("conv-x", SDP, staff_id=2, ticket_id=None, team="nurse")  # one call at a time
    with pytest.raises(CallError):
        store.ask(placed.id, "accept", staff_id=1, sdp=ANSWER)  # only for calls from the patient
    store.ask(placed.id, "terminate", staff_id=1)  # not sent yet: withdrawn
    assert store.get(placed.id).state == "ended" and store.claim_next_action() is None


@pytest.mark.asyncio
async def test_queued_actions_reach_metas_calls_endpoint(sessions):
    receiver = await WebhookReceiver().start()
    try:
        async with running_simulator(webhook_url=receiver.url) as sim:
            await sim.post("/_sim/users/15550005555/call-permission", {"response": "accept"})
            client = GraphClient(sim.url, "v23.0", sim.config.phone_number_id, sim.token, max_attempts=1)
            gateway = desk(sessions, client)
            cipher = gateway._cipher
            with sessions() as session, session.begin():
                session.add(ContactRow(conversation_id="conv-y", address_encrypted=cipher.encrypt("15550005555"),
                                       created_at=utcnow()))
                session.add(ContactRow(conversation_id="conv-z", address_encrypted=cipher.encrypt("15550006666"),
                                       created_at=utcnow()))
            try:
                placed = gateway.store.place("conv-y", SDP, staff_id=1, ticket_id=None, team="nurse")
                assert await gateway.drain_one() and not await gateway.drain_one()
                ringing = gateway.store.get(placed.id)
                assert ringing.state == "ringing" and ringing.call_id.startswith("wacid.")
                _, log = await sim.get("/_sim/calls", user="15550005555")
                assert log["calls"][0]["offer"] == SDP
                # No permission from this patient: Meta's 138006 fails the call, in words.
                refused = gateway.store.place("conv-z", SDP, staff_id=1, ticket_id=None, team="nurse")
                await gateway.drain_one()
                failed = gateway.store.get(refused.id)
                assert failed.state == "failed" and "138006" in failed.error and failed.offer_sdp is None
                gateway.store.ask(placed.id, "terminate", staff_id=1)
                await gateway.drain_one()
                _, log = await sim.get("/_sim/calls", user="15550005555")
                assert log["calls"][0]["state"] == "ended"
            finally:
                await client.close()
    finally:
        await receiver.stop()


def test_a_permission_reply_is_recorded_for_the_conversation_not_the_assistant(sessions):
    from whatsapp.inbound import parse_webhook

    gateway = desk(sessions)
    payload = {"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [{"field": "messages", "value": {
        "messaging_product": "whatsapp", "metadata": {"display_phone_number": "15550000000", "phone_number_id": "1"},
        "contacts": [{"profile": {"name": "Test Name"}, "wa_id": "15550008888"}],
        "messages": [
            {"context": {"from": "15550000000", "id": "wamid.y=="}, "from": "15550008888", "id": "wamid.x",
             "timestamp": "1752582182", "type": "interactive", "interactive": {
                 "type": "call_permission_reply", "call_permission_reply": {
                     "response": "accept", "expiration_timestamp": 1753186982, "response_source": "user_action"}}},
            {"from": "15550008888", "id": "wamid.t", "timestamp": "1752582183", "type": "text",
             "text": {"body": "thanks"}}]}}]}]}
    batch = parse_webhook(payload)
    replies = gateway.permission_replies(batch.messages)
    assert [m.id for m in replies] == ["wamid.x"]  # the text stays for the assistant
    gateway.record_permission_replies(replies)
    permission = gateway.store.permission(conversation_of("15550008888"))
    assert (permission.response, permission.source, permission.expires_at.year) == ("accept", "user_action", 2025)
    assert not permission.allowed(utcnow())  # that permission ran out in 2025


def test_a_call_reaches_the_conversation_of_the_patients_chat_by_their_username_id(sessions):
    """A patient known by their number and their business-scoped id (usernames, issue 19):
    their call rings on the conversation their chat is linked to, not a second one."""
    from clinic.messaging import identities

    bsuid = "US.13491208655302741918"
    chat = conversation_of("15550007777")  # a patient from before usernames: keyed on the number
    with sessions() as session, session.begin():
        identities.resolve(session, identities.Identity(bsuid_key=conversation_of(bsuid),
                                                        phone_key=chat), chat)
    gateway = desk(sessions)
    payload = webhook(user_connect("wacid.U", bsuid))
    gateway.record_webhook(payload)
    [call] = gateway.store.ringing()
    assert call.conversation_id == chat


def test_staff_call_a_username_patient_by_recipient_and_a_number_by_to(sessions):
    cipher = ContactCipher(Fernet.generate_key())
    gateway = CallDesk(sessions, None, cipher, conversation_of, KEY, Metrics())
    sent = {}
    for address in ("US.13491208655302741918", "15550008888"):
        conversation = conversation_of(address)
        with sessions() as session, session.begin():
            session.add(ContactRow(conversation_id=conversation, address_encrypted=cipher.encrypt(address),
                                   created_at=utcnow()))
        CallStore(sessions).place(conversation, SDP, staff_id=1, ticket_id=None, team="reception")
        action = CallStore(sessions).claim_next_action()
        sent[address] = gateway._payload(action)
    assert sent["US.13491208655302741918"]["recipient"] == "US.13491208655302741918"
    assert "to" not in sent["US.13491208655302741918"]
    assert sent["15550008888"]["to"] == "15550008888" and "recipient" not in sent["15550008888"]
