"""Inbound webhook parsing: Meta's 16 official examples plus hand-written edge cases."""

from __future__ import annotations

import copy
import dataclasses
import json
from pathlib import Path
from typing import Any, Dict, List, Optional

import pytest

from whatsapp.inbound import (
    STATUS_RANK,
    ButtonReply,
    Contact,
    ContactsMessage,
    EditMessage,
    ErrorDetail,
    FlowReply,
    InboundMessage,
    ListReply,
    LocationMessage,
    MediaMessage,
    OrderMessage,
    ReactionMessage,
    RevokeMessage,
    StatusUpdate,
    SystemMessage,
    TemplateButtonReply,
    TextMessage,
    UnknownInteractive,
    UnknownMessage,
    UnsupportedMessage,
    WebhookBatch,
    WebhookError,
    parse_webhook,
    status_supersedes,
)
from whatsapp.limits import WEBHOOK_UPDATES_MAX

# The shared reference folder sits beside the project root (/work/shared next to /work/main).
EXAMPLES_PATH = Path(__file__).resolve().parents[2] / "shared/reference/meta-openapi-webhook-examples.json"

PHONE_NUMBER_ID = "106540352242922"
USER = "16505551234"
# A marker standing in for patient text: it must never show up in a problem note.
SECRET = "PATIENT-SAYS-CHEST-PAIN"


def _load_examples() -> Dict[str, Any]:
    if not EXAMPLES_PATH.is_file():
        pytest.skip(f"Meta's webhook examples not found at {EXAMPLES_PATH} (shared reference absent)")
    return json.loads(EXAMPLES_PATH.read_text(encoding="utf-8"))


def envelope(
    *,
    messages: Optional[List[Any]] = None,
    statuses: Optional[List[Any]] = None,
    errors: Optional[List[Any]] = None,
    contacts: Optional[List[Any]] = None,
    field: str = "messages",
    phone_number_id: str = PHONE_NUMBER_ID,
) -> Dict[str, Any]:
    value: Dict[str, Any] = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550783881", "phone_number_id": phone_number_id},
    }
    for key, items in (("contacts", contacts), ("messages", messages),
                       ("statuses", statuses), ("errors", errors)):
        if items is not None:
            value[key] = items
    return {
        "object": "whatsapp_business_account",
        "entry": [{"id": "419561257915477", "changes": [{"value": value, "field": field}]}],
    }


def contact(wa_id: Optional[str] = USER, name: str = "Sheena Nelson", **extra: Any) -> Dict[str, Any]:
    item: Dict[str, Any] = {"profile": {"name": name}, **extra}
    if wa_id is not None:
        item["wa_id"] = wa_id
    return item


def message(type_: str, wamid: str = "wamid.1", sender: Optional[str] = USER, **body: Any):
    item: Dict[str, Any] = {"id": wamid, "timestamp": "1750000000", "type": type_, **body}
    if sender is not None:
        item["from"] = sender
    return item


def only_message(payload: Dict[str, Any]) -> InboundMessage:
    batch = parse_webhook(payload)
    assert batch.problems == [], batch.problems
    assert len(batch.messages) == 1
    return batch.messages[0]


# ---------------------------------------------------------------------------------------------
# Meta's official examples
# ---------------------------------------------------------------------------------------------

# name -> (class, type, wamid suffix, expected fields). Every example must be listed here.
EXPECTED: Dict[str, Any] = {
    "Text Message": (
        TextMessage, "text", "QzQTRBNjU5OUFFRTAzODEwMTQ0RgA=",
        {"body": "Does it come in another color?", "timestamp": 1749416383},
    ),
    "Text Message with Context (Product Inquiry)": (
        TextMessage, "text", "QzQTA2NTUwRkNEMDdFQjJCRUU0NQA=",
        {"body": "Is this still available?", "timestamp": 1750016800},
    ),
    "Text Message from Click to WhatsApp Ad": (
        TextMessage, "text", "QzQUQ0N0VFMDA2MTQ0RkJFNkNDNAA=",
        {"body": "Hello! Can I get more info on this?"},
    ),
    "Reaction Message": (
        ReactionMessage, "reaction", "QzQTRBNjU5OUFFRTAzODEwMTQ0RgA=",
        {"message_id": "wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBI0RTJEOTc2ODVERUY5RDlGNkYA",
         "emoji": "\U0001f44d", "removed": False},
    ),
    "Image Message": (
        MediaMessage, "image", "QzQTRBNjU5OUFFRTAzODEwMTQ0RgA=",
        {"kind": "image", "media_id": "1003383421387256", "mime_type": "image/jpeg",
         "sha256": "SfInY0gGKTsJlUWbwxC1k+FAD0FZHvzwfpvO0zX0GUI=", "caption": "Taj Mahal",
         "voice": False, "filename": None, "url": None},
    ),
    "Location Message": (
        LocationMessage, "location", "QzQTU2MjZEMDBGRkE3MENEMDE0RQA=",
        {"latitude": 37.44221496582, "longitude": -122.16165924072, "name": "Philz Coffee",
         "address": "101 Forest Ave, Palo Alto, CA 94301", "url": "https://philzcoffee.com/"},
    ),
    "Contact Sharing Message": (
        ContactsMessage, "contacts", "QzQTRBNjU5OUFFRTAzODEwMTQ0RgA=", {},
    ),
    "Unsupported Message": (
        UnsupportedMessage, "unsupported", "I5N0MwRjg0RTVBNUI1RDA2OTkA",
        {"unsupported_type": None},
    ),
    "Button Message": (
        TemplateButtonReply, "button", "QzQUU0M0MxQzQzMUJCMTMwNUZFOQA=",
        {"payload": "Unsubscribe", "text": "Unsubscribe"},
    ),
    "Interactive List Reply Message": (
        ListReply, "interactive", "QzQUJDQ0NDM0FEODY4ODkzOTc5RgA=",
        {"reply_id": "priority_express", "title": "Priority Mail Express",
         "description": "Next Day to 2 Days"},
    ),
    "Interactive Button Reply Message": (
        ButtonReply, "interactive", "QzQTZBQzg0MzQ4QjRCM0NGNkVGOAA=",
        {"reply_id": "cancel-button", "title": "Cancel"},
    ),
    "Order Message": (
        OrderMessage, "order", "QzQTEyQjFGNzI1QTQxMjI5QTMyOQA=",
        {"catalog_id": "194836987003835", "text": ""},
    ),
    "System Message": (
        SystemMessage, "system", "GAoxMTgyMDg2MjY3AA==",
        {"system_type": "user_changed_number", "new_wa_id": "12195555358",
         "body": "User Sheena Nelson changed from 16505551234 to 12195555358", "contact": None},
    ),
    # Group events arrive under other change fields: ignored, not errors.
    "Group Create Message": ("ignored", "group_lifecycle_update"),
    "Group Settings Update": ("ignored", "group_settings_update"),
    "Group Remove Participants": ("ignored", "group_participants_update"),
}


def test_every_official_example_is_covered():
    examples = _load_examples()
    assert len(examples) == 16
    assert set(examples) == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_official_example(name: str):
    example = _load_examples()[name]
    original = copy.deepcopy(example)
    batch = parse_webhook(example)
    assert example == original, "the parser must not mutate the payload"
    assert batch.problems == []
    assert batch.statuses == [] and batch.errors == []

    expected = EXPECTED[name]
    if expected[0] == "ignored":
        assert batch.messages == []
        assert batch.ignored_fields == [expected[1]]
        return

    cls, msg_type, wamid_suffix, fields = expected
    assert batch.ignored_fields == []
    assert len(batch.messages) == 1
    msg = batch.messages[0]
    assert type(msg) is cls
    assert msg.type == msg_type
    assert msg.id.startswith("wamid.") and msg.id.endswith(wamid_suffix)
    assert msg.from_ == USER
    assert msg.sender_key == USER
    assert msg.phone_number_id == PHONE_NUMBER_ID
    assert isinstance(msg.timestamp, int)
    assert msg.raw is example["entry"][0]["changes"][0]["value"]["messages"][0]
    if name != "System Message":
        assert msg.contact == Contact(wa_id=USER, user_id=None, profile_name="Sheena Nelson")
    for key, value in fields.items():
        assert getattr(msg, key) == value, key


def test_official_example_details():
    examples = _load_examples()

    ctx = only_message(examples["Text Message with Context (Product Inquiry)"]).context
    assert ctx is not None and ctx.from_ == "15550783881"
    assert ctx.id == "wamid.HBgLMTY1MDM4Nzk0MzkVAgARGA9wcm9kdWN0X2lucXVpcnkA"
    assert ctx.referred_product == {"catalog_id": "194836987003835", "product_retailer_id": "di9ozbzfi4"}
    assert not ctx.forwarded and not ctx.frequently_forwarded

    ad = only_message(examples["Text Message from Click to WhatsApp Ad"])
    assert ad.referral is not None and ad.referral["source_type"] == "ad"
    assert ad.context is None

    cards = only_message(examples["Contact Sharing Message"])
    assert isinstance(cards, ContactsMessage)
    assert cards.contacts[0]["name"]["formatted_name"] == "Lucía Gómez"
    assert cards.contacts[0]["phones"][0]["wa_id"] == "19835552319"

    unsupported = only_message(examples["Unsupported Message"])
    assert unsupported.errors == [
        ErrorDetail(code=131051, title="Message type unknown", message="Message type unknown",
                    details="Message type is currently not supported.")
    ]

    order = only_message(examples["Order Message"])
    assert isinstance(order, OrderMessage)
    assert [item["product_retailer_id"] for item in order.product_items] == ["di9ozbzfi4", "nqryix03ez"]

    button = only_message(examples["Button Message"])
    assert button.context is not None
    assert button.context.id == "wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBJFNjk2OTMwNEZCQjhGMzUyQUYA"


# ---------------------------------------------------------------------------------------------
# Statuses
# ---------------------------------------------------------------------------------------------


def status(status_: str, wamid: str = "wamid.out1", ts: str = "1750030073", **extra: Any):
    return {"id": wamid, "status": status_, "timestamp": ts, "recipient_id": USER, **extra}


def test_status_updates_including_failed_with_errors():
    failed_error = {
        "code": 131047,
        "title": "Re-engagement message",
        "message": "Re-engagement message",
        "error_data": {"details": "Message failed to send because more than 24 hours have passed"},
        "href": "/documentation/business-messaging/whatsapp/support/error-codes",
    }
    payload = envelope(statuses=[
        status("sent", biz_opaque_callback_data="appt-42",
               conversation={"id": "c1", "origin": {"type": "service"}},
               pricing={"billable": False, "pricing_model": "PMP", "type": "free_customer_service",
                        "category": "service"}),
        status("delivered"),
        status("read"),
        status("played", wamid="wamid.voice"),
        status("failed", wamid="wamid.out2", errors=[failed_error]),
        status("deleted", wamid="wamid.out3"),  # an unknown status string is kept as-is
    ])
    batch = parse_webhook(payload)
    assert batch.problems == [] and batch.messages == []
    assert [s.status for s in batch.statuses] == ["sent", "delivered", "read", "played", "failed", "deleted"]

    sent = batch.statuses[0]
    assert isinstance(sent, StatusUpdate)
    assert sent.message_id == "wamid.out1"
    assert sent.timestamp == 1750030073
    assert sent.recipient_id == USER
    assert sent.biz_opaque_callback_data == "appt-42"
    assert sent.conversation == {"id": "c1", "origin": {"type": "service"}}
    assert sent.pricing is not None and sent.pricing["type"] == "free_customer_service"
    assert sent.phone_number_id == PHONE_NUMBER_ID
    assert sent.errors == [] and not sent.failed

    failed = batch.statuses[4]
    assert failed.failed
    assert failed.errors == [
        ErrorDetail(
            code=131047,
            title="Re-engagement message",
            message="Re-engagement message",
            details="Message failed to send because more than 24 hours have passed",
            href="/documentation/business-messaging/whatsapp/support/error-codes",
        )
    ]
    assert batch.statuses[1].biz_opaque_callback_data is None
    assert batch.statuses[1].conversation is None and batch.statuses[1].pricing is None


def test_status_rank_and_supersede_rule():
    assert STATUS_RANK == {"sent": 1, "delivered": 2, "read": 3, "played": 4}
    # Forward progress replaces.
    assert status_supersedes("sent", None)
    assert status_supersedes("delivered", "sent")
    assert status_supersedes("read", "delivered")
    assert status_supersedes("read", "sent")  # "delivered" may be skipped
    assert status_supersedes("played", "read")
    # A late, lower-ranked status never overwrites a higher one.
    assert not status_supersedes("delivered", "read")
    assert not status_supersedes("sent", "delivered")
    assert not status_supersedes("read", "read")
    assert not status_supersedes("read", "played")
    # failed: always recorded, and terminal.
    assert status_supersedes("failed", None)
    assert status_supersedes("failed", "sent")
    assert status_supersedes("failed", "read")
    assert status_supersedes("failed", "failed")
    assert not status_supersedes("delivered", "failed")
    assert not status_supersedes("read", "failed")
    # Unknown strings: recorded only when nothing is, never over a known status.
    assert status_supersedes("deleted", None)
    assert not status_supersedes("deleted", "sent")
    assert status_supersedes("sent", "deleted")


def test_out_of_order_statuses_applied_with_the_rule_end_on_read():
    payload = envelope(statuses=[status("read", ts="3"), status("sent", ts="1"), status("delivered", ts="2")])
    current = None
    for update in parse_webhook(payload).statuses:
        if status_supersedes(update.status, current):
            current = update.status
    assert current == "read"


# ---------------------------------------------------------------------------------------------
# Batches, contacts and BSUID
# ---------------------------------------------------------------------------------------------


def test_batch_with_several_entries_changes_and_messages():
    payload = {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": "waba-1",
                "changes": [
                    {
                        "field": "messages",
                        "value": {
                            "messaging_product": "whatsapp",
                            "metadata": {"phone_number_id": "pn-1"},
                            "contacts": [contact("111", "Ann"), contact("222", "Bob")],
                            "messages": [
                                message("text", "wamid.a", "222", text={"body": "from Bob"}),
                                message("text", "wamid.b", "111", text={"body": "from Ann"}),
                            ],
                        },
                    },
                    {
                        "field": "messages",
                        "value": {
                            "messaging_product": "whatsapp",
                            "metadata": {"phone_number_id": "pn-1"},
                            "statuses": [status("delivered", "wamid.out")],
                        },
                    },
                    {"field": "account_update", "value": {"event": "VERIFIED_ACCOUNT"}},
                ],
            },
            {
                "id": "waba-2",
                "changes": [
                    {
                        "field": "messages",
                        "value": {
                            "messaging_product": "whatsapp",
                            "metadata": {"phone_number_id": "pn-2"},
                            "contacts": [contact("333", "Cem")],
                            "messages": [message("text", "wamid.c", "333", text={"body": "hi"})],
                            "errors": [{"code": 131000, "title": "Something went wrong",
                                        "message": "Something went wrong",
                                        "error_data": {"details": "Unsupported webhook payload"}}],
                        },
                    }
                ],
            },
        ],
    }
    batch = parse_webhook(payload)
    assert isinstance(batch, WebhookBatch)
    assert batch.problems == []
    assert batch.ignored_fields == ["account_update"]
    assert [m.id for m in batch.messages] == ["wamid.a", "wamid.b", "wamid.c"]
    # Contacts are matched by wa_id, not by position.
    assert [m.contact.profile_name for m in batch.messages] == ["Bob", "Ann", "Cem"]
    assert [m.phone_number_id for m in batch.messages] == ["pn-1", "pn-1", "pn-2"]
    assert [s.message_id for s in batch.statuses] == ["wamid.out"]
    assert batch.statuses[0].phone_number_id == "pn-1"
    assert batch.errors == [
        WebhookError(code=131000, title="Something went wrong", message="Something went wrong",
                     details="Unsupported webhook payload", phone_number_id="pn-2", waba_id="waba-2")
    ]
    assert batch.update_count == 5


def test_several_contacts_without_a_match_are_not_guessed():
    payload = envelope(
        contacts=[contact("111", "Ann"), contact("222", "Bob")],
        messages=[message("text", sender="999", text={"body": "x"})],
    )
    msg = only_message(payload)
    assert msg.contact is None
    assert msg.sender_key == "999"


def test_single_contact_is_used_even_if_wa_id_differs_from_from():
    # Meta: wa_id "may not always match" the phone number in `from`.
    payload = envelope(contacts=[contact("5511987654321")], messages=[message("text", sender="551187654321", text={"body": "x"})])
    assert only_message(payload).contact.wa_id == "5511987654321"


def test_bsuid_is_the_key_when_present():
    bsuid = "US.13491208655302741918"
    payload = envelope(
        contacts=[contact(USER, user_id=bsuid, parent_user_id="US.ENT.11815799212886844830")],
        messages=[message("text", sender=USER, from_user_id=bsuid, text={"body": "hello"})],
    )
    msg = only_message(payload)
    assert msg.from_user_id == bsuid
    assert msg.contact == Contact(wa_id=USER, user_id=bsuid, profile_name="Sheena Nelson",
                                  parent_user_id="US.ENT.11815799212886844830")
    assert msg.contact.key == bsuid
    assert msg.sender_key == bsuid


def test_bsuid_only_user_without_phone_number():
    bsuid = "US.99"
    payload = envelope(
        contacts=[contact(None, name="Username User", user_id=bsuid)],
        messages=[message("text", sender=None, from_user_id=bsuid, text={"body": "hi"})],
    )
    msg = only_message(payload)
    assert msg.from_ is None and msg.contact.wa_id is None
    assert msg.sender_key == bsuid


def test_bsuid_from_contact_when_message_has_only_from():
    payload = envelope(contacts=[contact(USER, user_id="US.7")], messages=[message("text", text={"body": "x"})])
    assert only_message(payload).sender_key == "US.7"


def test_bsuid_matches_contact_among_several():
    payload = envelope(
        contacts=[contact(None, "Ann", user_id="US.1"), contact(None, "Bob", user_id="US.2")],
        messages=[message("text", sender=None, from_user_id="US.2", text={"body": "x"})],
    )
    assert only_message(payload).contact.profile_name == "Bob"


def test_contact_key_falls_back_to_wa_id():
    assert Contact(wa_id="1", user_id=None, profile_name=None).key == "1"
    assert Contact(wa_id=None, user_id=None, profile_name=None).key is None


# ---------------------------------------------------------------------------------------------
# Message kinds not in Meta's examples
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("reaction", [{"message_id": "wamid.r", "emoji": ""}, {"message_id": "wamid.r"}])
def test_reaction_removed(reaction):
    msg = only_message(envelope(contacts=[contact()], messages=[message("reaction", reaction=reaction)]))
    assert isinstance(msg, ReactionMessage)
    assert msg.message_id == "wamid.r"
    assert msg.emoji is None and msg.removed


def test_revoke_and_edit():
    payload = envelope(contacts=[contact()], messages=[
        message("revoke", "wamid.r1", revoke={"original_message_id": "wamid.orig"}),
        message("edit", "wamid.e1", edit={"original_message_id": "wamid.orig",
                                          "message": {"type": "text", "text": {"body": "Text was edited"}}}),
        message("edit", "wamid.e2", edit={"original_message_id": "wamid.img",
                                          "message": {"type": "image", "image": {"caption": "new caption", "id": "1"}}}),
        message("edit", "wamid.e3", edit={"original_message_id": "wamid.x"}),
    ])
    batch = parse_webhook(payload)
    assert batch.problems == []
    revoke, edit_text, edit_caption, edit_bare = batch.messages
    assert isinstance(revoke, RevokeMessage) and revoke.original_message_id == "wamid.orig"
    assert isinstance(edit_text, EditMessage) and edit_text.new_body == "Text was edited"
    assert edit_text.original_message_id == "wamid.orig"
    assert edit_caption.new_body == "new caption"
    assert edit_bare.new_body is None and edit_bare.original_message_id == "wamid.x"


def test_flow_reply_and_unknown_interactive():
    payload = envelope(contacts=[contact()], messages=[
        message("interactive", "wamid.f", interactive={
            "type": "nfm_reply",
            "nfm_reply": {"response_json": '{"flow_token": "t", "date": "2025-01-01"}', "body": "Sent", "name": "flow"}}),
        message("interactive", "wamid.c", interactive={
            "type": "call_permission_reply", "call_permission_reply": {"response": "accept"}}),
        message("interactive", "wamid.n", interactive={"no_type": True}),
    ])
    batch = parse_webhook(payload)
    assert batch.problems == []
    flow, call, untyped = batch.messages
    assert isinstance(flow, FlowReply)
    assert json.loads(flow.response_json)["flow_token"] == "t"
    assert flow.body == "Sent" and flow.name == "flow"
    assert isinstance(call, UnknownInteractive) and call.interactive_type == "call_permission_reply"
    assert isinstance(untyped, UnknownInteractive) and untyped.interactive_type is None


def test_unknown_types_are_kept_not_crashed():
    payload = envelope(contacts=[contact()], messages=[
        message("poll_creation", "wamid.p", poll_creation={"name": "?"}),
        message("some_future_type", "wamid.q"),
        message("unknown", "wamid.u", unsupported={"type": "gif"},
                errors=[{"code": 131051, "title": "Message type unknown"}]),
        message("unsupported", "wamid.v", unsupported={"type": "poll_update"}),
    ])
    batch = parse_webhook(payload)
    assert batch.problems == []
    poll, future, legacy, unsupported = batch.messages
    assert type(poll) is UnknownMessage and poll.type == "poll_creation"
    assert poll.raw["poll_creation"] == {"name": "?"}
    assert type(future) is UnknownMessage and future.sender_key == USER
    assert isinstance(legacy, UnsupportedMessage) and legacy.unsupported_type == "gif"
    assert legacy.errors[0].code == 131051
    assert unsupported.unsupported_type == "poll_update" and unsupported.errors == []


def test_media_kinds():
    sha = "SfInY0gGKTsJlUWbwxC1k+FAD0FZHvzwfpvO0zX0GUI="
    payload = envelope(contacts=[contact()], messages=[
        message("audio", "wamid.voice", audio={"mime_type": "audio/ogg; codecs=opus", "sha256": sha,
                                               "id": "m1", "voice": True}),
        message("audio", "wamid.audio", audio={"mime_type": "audio/mpeg", "id": "m2", "voice": False}),
        message("document", "wamid.doc", document={"caption": "results", "filename": "lab.pdf",
                                                   "mime_type": "application/pdf", "id": "m3",
                                                   "url": "https://lookaside.fbsbx.com/x?mid=1"}),
        message("video", "wamid.video", video={"mime_type": "video/mp4", "id": "m4"}),
        message("sticker", "wamid.sticker", sticker={"mime_type": "image/webp", "id": "m5", "animated": False}),
    ])
    batch = parse_webhook(payload)
    assert batch.problems == []
    voice, audio, doc, video, sticker = batch.messages
    assert all(isinstance(m, MediaMessage) for m in batch.messages)
    assert (voice.kind, voice.media_id, voice.voice, voice.sha256) == ("audio", "m1", True, sha)
    assert (audio.kind, audio.voice) == ("audio", False)
    assert (doc.kind, doc.filename, doc.caption, doc.url) == (
        "document", "lab.pdf", "results", "https://lookaside.fbsbx.com/x?mid=1")
    assert (video.kind, video.mime_type, video.caption) == ("video", "video/mp4", None)
    assert (sticker.kind, sticker.media_id) == ("sticker", "m5")


def test_current_location_and_string_coordinates():
    payload = envelope(contacts=[contact()], messages=[
        message("location", "wamid.l1", location={"latitude": 52.52, "longitude": 13.405}),
        message("location", "wamid.l2", location={"latitude": "-33.8688", "longitude": "151.2093"}),
    ])
    batch = parse_webhook(payload)
    assert batch.problems == []
    here, sydney = batch.messages
    assert (here.latitude, here.longitude, here.name, here.address) == (52.52, 13.405, None, None)
    assert (sydney.latitude, sydney.longitude) == (-33.8688, 151.2093)


def test_forwarded_context():
    payload = envelope(contacts=[contact()], messages=[
        message("text", "wamid.f1", context={"forwarded": True}, text={"body": "fw"}),
        message("text", "wamid.f2", context={"frequently_forwarded": True}, text={"body": "fw"}),
    ])
    first, second = parse_webhook(payload).messages
    assert first.context.forwarded and not first.context.frequently_forwarded
    assert first.context.id is None and first.context.from_ is None
    assert second.context.frequently_forwarded


def test_system_message_has_no_contacts():
    payload = envelope(messages=[message("system", system={
        "body": "User identity changed", "type": "customer_identity_changed",
        "identity": {"acknowledged": True, "created_timestamp": 1, "hash": "h"}})])
    msg = only_message(payload)
    assert isinstance(msg, SystemMessage)
    assert msg.contact is None
    assert msg.system_type == "customer_identity_changed" and msg.new_wa_id is None
    assert msg.sender_key == USER


def test_models_are_frozen():
    msg = only_message(envelope(contacts=[contact()], messages=[message("text", text={"body": "x"})]))
    with pytest.raises(dataclasses.FrozenInstanceError):
        msg.id = "other"  # type: ignore[misc]


# ---------------------------------------------------------------------------------------------
# Malformed input: keep the good, note the bad without content
# ---------------------------------------------------------------------------------------------


def test_malformed_items_are_skipped_and_described_without_content():
    good_1 = message("text", "wamid.good1", text={"body": "good one"})
    good_2 = message("text", "wamid.good2", text={"body": "good two"})
    bad_messages = [
        SECRET,  # not an object
        {"timestamp": "1", "type": "text", "from": USER, "text": {"body": SECRET}},  # no id
        {"id": 12345, "timestamp": "1", "type": "text", "from": USER, "text": {"body": SECRET}},
        message("text", "wamid.body-int", text={"body": 42}),
        message("text", "wamid.no-text"),
        message("text", "wamid.text-str", text=SECRET),
        message("location", "wamid.lat", location={"latitude": SECRET, "longitude": 1}),
        message("location", "wamid.lat-range", location={"latitude": 91, "longitude": 1}),
        message("location", "wamid.lat-nan", location={"latitude": "nan", "longitude": 1}),
        message("image", "wamid.img", image={"caption": SECRET}),  # no media id
        message("reaction", "wamid.react", reaction={"emoji": SECRET}),  # no message_id
        message("interactive", "wamid.btn", interactive={"type": "button_reply", "button_reply": {"title": SECRET}}),
        message("contacts", "wamid.cards", contacts=SECRET),
        message("text", "wamid.nobody", sender=None, text={"body": SECRET}),  # no sender at all
        {"id": "wamid.type", "timestamp": "1", "type": 7, "from": USER, SECRET: SECRET},
    ]
    # A bad timestamp alone does not cost the patient their message: the receipt time stands in.
    bad_times = [message("text", "wamid.bad-ts", timestamp=SECRET, text={"body": "kept"}),
                 message("text", "wamid.bool-ts", timestamp=True, text={"body": "kept"})]
    payload = envelope(contacts=None, messages=[bad_messages[0], good_1, *bad_messages[1:], *bad_times, good_2])
    batch = parse_webhook(payload, received_at=1_763_800_000)

    assert [m.id for m in batch.messages] == ["wamid.good1", "wamid.bad-ts", "wamid.bool-ts", "wamid.good2"]
    assert [m.timestamp_replaced for m in batch.messages] == [False, True, True, False]
    assert {m.timestamp for m in batch.messages[1:3]} == {1_763_800_000}
    skipped = [p for p in batch.problems if "skipped" in p]
    assert len(skipped) == len(bad_messages) == len(batch.rejected)
    for problem in batch.problems:
        assert SECRET not in problem
        assert "good" not in problem
        assert problem.startswith("entry[0].changes[0].value.messages[")
    assert "messages[0]: skipped, message: expected an object, got string" in batch.problems[0]
    assert any("id: expected a non-empty string, got null" in p for p in batch.problems)
    assert any("id: expected a non-empty string, got number" in p for p in batch.problems)
    assert any("timestamp" in p for p in batch.problems)
    assert any("text.body: expected a non-empty string, got number" in p for p in batch.problems)
    assert any("no sender" in p for p in batch.problems)


def test_malformed_statuses_errors_and_containers():
    payload = {
        "object": "whatsapp_business_account",
        "entry": [
            SECRET,
            {"id": "w", "changes": SECRET},
            {"id": "w", "changes": [
                SECRET,
                {"field": "messages", "value": SECRET},
                {"field": "messages", "value": {
                    "metadata": SECRET,
                    "contacts": SECRET,
                    "messages": {"not": "a list"},
                    "statuses": [
                        {"status": "sent", "timestamp": "1"},  # no id
                        {"id": "wamid.s", "timestamp": "1", "recipient_id": USER},  # no status
                        {"id": "wamid.s", "status": "sent", "timestamp": SECRET},
                        status("read", "wamid.ok"),
                        {"id": "wamid.s2", "status": "sent", "timestamp": "1",
                         "recipient_id": 5, "errors": SECRET},
                    ],
                    "errors": [SECRET, {"code": "131000", "title": "x"}],
                }},
                {"field": 5, "value": {}},
            ]},
        ],
    }
    batch = parse_webhook(payload, received_at=1_763_800_000)
    # A status with a bad timestamp is kept with the receipt time (noted as a problem).
    assert [s.message_id for s in batch.statuses] == ["wamid.s", "wamid.ok"]
    assert batch.statuses[0].timestamp == 1_763_800_000 and batch.statuses[0].timestamp_replaced
    assert batch.statuses[1].phone_number_id is None  # metadata was not an object
    assert [e.code for e in batch.errors] == [131000]  # numeric strings are accepted
    assert batch.ignored_fields == ["<number>"]
    assert len(batch.problems) == 11
    assert batch.rejected == []  # statuses are not messages: nothing for the quarantine
    assert all(SECRET not in p for p in batch.problems)
    joined = "\n".join(batch.problems)
    assert "entry[0]: expected an object, got string" in joined
    assert "entry[1].changes: expected a list, got string" in joined
    assert "entry[2].changes[1].value: expected an object, got string" in joined
    assert "entry[2].changes[2].value.contacts: expected a list" in joined
    assert "entry[2].changes[2].value.messages: expected a list, got object" in joined
    assert "statuses[4]: skipped, recipient_id: expected a string, got number" in joined


@pytest.mark.parametrize("payload", [None, [], "text", 42, 1.5, True, b"{}", [{"object": "whatsapp_business_account"}]])
def test_non_dict_payloads(payload):
    batch = parse_webhook(payload)
    assert batch.messages == [] and batch.statuses == [] and batch.errors == []
    assert len(batch.problems) == 1 and batch.problems[0].startswith("payload: expected a JSON object")


@pytest.mark.parametrize("payload", [
    {"object": "page", "entry": []},
    {"entry": []},
    {"object": "whatsapp_business_account"},
    {"object": "whatsapp_business_account", "entry": {"id": "x"}},
])
def test_wrong_envelopes(payload):
    batch = parse_webhook(payload)
    assert batch.update_count == 0
    assert len(batch.problems) == 1


def test_empty_batch_is_fine():
    batch = parse_webhook({"object": "whatsapp_business_account", "entry": []})
    assert batch == WebhookBatch()


def test_more_updates_than_documented_are_kept_and_noted():
    statuses = [status("sent", f"wamid.{i}") for i in range(WEBHOOK_UPDATES_MAX + 1)]
    batch = parse_webhook(envelope(statuses=statuses))
    assert len(batch.statuses) == WEBHOOK_UPDATES_MAX + 1
    assert len(batch.problems) == 1 and "exceed" in batch.problems[0]
    # Exactly the documented maximum: no note.
    assert parse_webhook(envelope(statuses=statuses[:WEBHOOK_UPDATES_MAX])).problems == []


def test_inbound_module_is_rasa_free():
    source = (Path(__file__).resolve().parents[1] / "whatsapp").glob("*.py")
    for path in source:
        text = path.read_text(encoding="utf-8")
        assert "import rasa" not in text and "from rasa" not in text, path.name
