"""The Calling protocol (whatsapp/calls.py): call actions are built as Meta documents them
(and refused as Meta would refuse them), and the `calls` webhook field is read from the
payloads of Meta's documentation as david-lev/pywa's tests reproduce them
(tests/data/updates/call_*.json)."""

from __future__ import annotations

import pytest

from whatsapp.calls import (
    CallActionError,
    action_payload,
    connect_payload,
    parse_call_webhook,
    parse_permission_reply,
    permission_request,
)

SDP = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n"


def envelope(value: dict, field: str = "calls") -> dict:
    return {"object": "whatsapp_business_account", "entry": [{"id": "837432645395", "changes": [
        {"value": {"messaging_product": "whatsapp",
                   "metadata": {"display_phone_number": "16315553601", "phone_number_id": "743897493242"},
                   "contacts": [{"profile": {"name": "Test Name"}, "wa_id": "972987654321",
                                 "user_id": "US.13491208655302741918"}], **value},
         "field": field}]}]}


def test_connect_carries_the_offer_and_the_opaque_data():
    assert connect_payload("972987654321", SDP, "ticket-7") == {
        "messaging_product": "whatsapp", "to": "972987654321", "action": "connect",
        "session": {"sdp_type": "offer", "sdp": SDP}, "biz_opaque_callback_data": "ticket-7"}
    assert connect_payload("US.1349", SDP, recipient_is_bsuid=True)["recipient"] == "US.1349"


@pytest.mark.parametrize("action", ["pre_accept", "accept"])
def test_pre_accept_and_accept_carry_the_answer(action):
    assert action_payload("wacid.x", action, SDP) == {
        "messaging_product": "whatsapp", "call_id": "wacid.x", "action": action,
        "session": {"sdp_type": "answer", "sdp": SDP}}


@pytest.mark.parametrize("action", ["reject", "terminate"])
def test_reject_and_terminate_carry_no_session(action):
    assert action_payload("wacid.x", action) == {"messaging_product": "whatsapp", "call_id": "wacid.x",
                                                 "action": action}
    with pytest.raises(CallActionError):
        action_payload("wacid.x", action, SDP)


@pytest.mark.parametrize("build", [
    lambda: connect_payload("", SDP),
    lambda: connect_payload("972987654321", "not an sdp"),
    lambda: connect_payload("972987654321", SDP, "x" * 513),
    lambda: action_payload("wacid.x", "accept"),  # no answer
    lambda: action_payload("wacid.x", "connect", SDP),  # connect has no call id
    lambda: action_payload("", "terminate"),
    lambda: action_payload("wacid.x", "accept", "v=0" + "a" * 70000),
    lambda: permission_request(""),
])
def test_shapes_meta_would_refuse_are_refused(build):
    with pytest.raises(CallActionError):
        build()


def test_permission_request_is_the_interactive_type():
    assert permission_request("May we call you?") == {
        "type": "call_permission_request", "action": {"name": "call_permission_request"},
        "body": {"text": "May we call you?"}}


def test_user_initiated_connect_with_the_offer():
    batch = parse_call_webhook(envelope({"calls": [{
        "id": "wacid.xxxx=", "from": "972987654321", "to": "16315553601", "event": "connect",
        "timestamp": "1752583107", "direction": "USER_INITIATED",
        "session": {"sdp": SDP, "sdp_type": "offer"}}]}))
    [event] = batch.events
    assert (event.call_id, event.event, event.direction, event.user_wa_id) == \
        ("wacid.xxxx=", "connect", "USER_INITIATED", "972987654321")
    assert event.session is not None and event.session.sdp_type == "offer" and event.session.sdp == SDP
    assert event.timestamp == 1752583107
    assert batch.user_ids == {"972987654321": "US.13491208655302741918"}


def test_business_initiated_connect_with_the_answer():
    batch = parse_call_webhook(envelope({"calls": [{
        "id": "wacid.xxxx=", "to": "972987654321", "from": "16315553601", "event": "connect",
        "timestamp": "1752582933", "direction": "BUSINESS_INITIATED",
        "session": {"sdp": SDP, "sdp_type": "answer"}}]}))
    [event] = batch.events
    assert event.user_wa_id == "972987654321" and event.session.sdp_type == "answer"


def test_terminate_with_times_duration_and_errors():
    batch = parse_call_webhook(envelope({"calls": [{
        "id": "wacid.ABGG", "to": "16315553601", "from": "16315553602", "event": "terminate",
        "direction": "BUSINESS_INITIATED", "biz_opaque_callback_data": "random_string",
        "timestamp": "1671644824", "status": "COMPLETED", "start_time": "1671644824",
        "end_time": "1671644944", "duration": 120}],
        "errors": [{"code": 12455, "message": "ERROR_TITLE", "href": "ERROR_HREF",
                    "error_data": {"details": "ERROR_DETAILS"}}]}))
    [event] = batch.events
    assert (event.event, event.status, event.start_time, event.end_time, event.duration) == \
        ("terminate", "COMPLETED", 1671644824, 1671644944, 120)
    assert event.biz_opaque_callback_data == "random_string" and event.error_codes == [12455]


def test_call_statuses():
    batch = parse_call_webhook(envelope({"statuses": [
        {"id": "wacid.ABGG", "timestamp": "1671644824", "type": "call", "status": "RINGING",
         "recipient_id": "163155536021", "biz_opaque_callback_data": "random_string"},
        {"id": "wamid.other", "status": "sent", "timestamp": "1671644824", "recipient_id": "1"}]}))
    [status] = batch.statuses
    assert (status.call_id, status.status, status.biz_opaque_callback_data) == \
        ("wacid.ABGG", "RINGING", "random_string")


def test_other_fields_and_malformed_items_are_skipped_without_values():
    assert not parse_call_webhook(envelope({"messages": []}, field="messages"))
    assert not parse_call_webhook("not an object")
    batch = parse_call_webhook(envelope({"calls": [
        {"id": "wacid.bad", "event": "ring", "direction": "USER_INITIATED"},
        {"id": "wacid.good", "event": "terminate", "direction": "USER_INITIATED", "status": "FAILED"},
        {"id": "wacid.secret-sdp", "event": "connect", "direction": "USER_INITIATED",
         "session": {"sdp_type": "offer", "sdp": "secret garbage"}}]}))
    assert [e.call_id for e in batch.events] == ["wacid.good"]
    assert len(batch.problems) == 2 and not any("secret" in p for p in batch.problems)


def test_permission_reply():
    reply = parse_permission_reply({"type": "call_permission_reply", "call_permission_reply": {
        "response": "accept", "expiration_timestamp": 1753186982, "response_source": "user_action"}})
    assert reply is not None and (reply.response, reply.response_source, reply.expiration_timestamp) == \
        ("accept", "user_action", 1753186982)
    rejected = parse_permission_reply({"type": "call_permission_reply", "call_permission_reply": {
        "response": "reject", "response_source": "user_action"}})
    assert rejected is not None and rejected.response == "reject" and rejected.expiration_timestamp is None
    assert parse_permission_reply({"type": "button_reply", "button_reply": {"id": "x"}}) is None


def test_calling_settings_follow_metas_rules():
    from whatsapp.calls import calling_settings_payload

    payload = calling_settings_payload(True, "DISABLE_ALL", "Europe/Berlin", [(5, "0900", "1200"), (0, "0800", "1800")])
    assert payload == {"calling": {"status": "ENABLED", "call_icon_visibility": "DISABLE_ALL", "call_hours": {
        "status": "ENABLED", "timezone_id": "Europe/Berlin", "weekly_operating_hours": [
            {"day_of_week": "MONDAY", "open_time": "0800", "close_time": "1800"},
            {"day_of_week": "SATURDAY", "open_time": "0900", "close_time": "1200"}]}}}
    for bad in ([(0, "0800", "1200"), (0, "1100", "1300")],  # overlapping
                [(0, "0800", "0900"), (0, "1000", "1100"), (0, "1200", "1300")],  # three a day
                [(0, "1800", "0800")], [(7, "0800", "0900")]):
        with pytest.raises(CallActionError):
            calling_settings_payload(True, "DEFAULT", "Europe/Berlin", bad)
    with pytest.raises(CallActionError):
        calling_settings_payload(True, "HIDDEN", "Europe/Berlin", [])
