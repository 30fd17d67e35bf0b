"""Access on request (clinic/privacy_access.py): one contact's export holds what every store
says about them, decrypted, and nothing of another contact; it covers every store the
erasure covers (one list, so the two cannot drift); the audit log gets counts only."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from sqlalchemy import select

from clinic.inbox.audit import AuditLog
from clinic.inbox.tables import AuditRow
from clinic.portal import tokens as tk
from clinic.privacy_access import (
    SECTIONS,
    SHOWN_IN,
    VIEWED,
    as_json,
    counts,
    issue_access_link,
    issue_download,
)
from clinic.privacy_erasure import STORES, PrivacyErasure, TrackerEvents
from tests.access_support import BIRTH_DATES, build_world, ids, secrets_of


@pytest.fixture
def world(tmp_path):
    return build_world(tmp_path)


def test_the_export_holds_the_contacts_data_decrypted_and_nothing_of_another(world):
    export = world.access.collect(*ids("a"))
    text = as_json(export).decode("utf-8")
    for secret in secrets_of("a").values():
        assert secret in text, secret
    for secret in secrets_of("b").values():
        assert secret not in text, secret
    assert ids("b")[0] not in text and ids("b")[1] not in text
    # Nothing of the pseudonyms or key material is the patient's business either.
    assert ids("a")[1] not in text

    assert export["patient"] == {"name": "Olga A", "birth_date": BIRTH_DATES["a"].isoformat(),
                                 "registered_at": export["patient"]["registered_at"]}
    [appointment] = export["appointments"]
    assert appointment["status"] == "booked" and appointment["service"] and appointment["history"][0]["to_status"]
    assert [(m["from"], m["text"]) for m in export["conversation"]] == [
        ("patient", secrets_of("a")["chat"]), ("bot", secrets_of("a")["bot"])]
    preferences = export["messaging_preferences"]
    assert preferences["current"]["reminders"] is True and preferences["current"]["health_tips"] is False
    assert [(e["topic"], e["granted"]) for e in preferences["history"]] == [
        ("reminders", True), ("health_tips", True), ("health_tips", False)]
    assert export["language"][0]["language"] == "ru"
    [ticket] = export["staff_conversations"]
    assert ticket["your_rating"] == 5 and ticket["messages"] == [
        {"at": ticket["messages"][0]["at"], "kind": "reply", "text": secrets_of("a")["reply"]}]
    assert export["callback_requests"][0]["note"] == secrets_of("a")["note"]
    assert export["handoff_requests"][0]["team"] == "nurse"
    assert export["surveys"][0]["rating"] == 4 and export["surveys"][0]["comment"] == secrets_of("a")["comment"]
    [upload] = export["uploads"]
    assert (upload["name"], upload["kind"], upload["media_type"]) == (
        secrets_of("a")["file"], "referral_letter", "application/pdf")
    assert "content" not in upload  # the list, not the file
    assert [r["kind"] for r in export["reminders"]] == ["day_before"]
    assert export["recalls"][0]["topic"] == "vaccination" and export["broadcasts"][0]["status"] == "sent"
    assert export["records_counted"] == {
        "whatsapp_number_held": True, "whatsapp_messages_received": 1, "whatsapp_messages_sent": 1,
        "delivery_statuses": 1, "whatsapp_ids_linked": 1, "messages_held_back": 1, "links_sent": 1,
        "questions_answered_from_documents": 1, "whatsapp_calls": 1}
    assert json.loads(text) == export  # the download is the same data


def test_a_contact_with_nothing_gets_an_empty_export(world):
    export = world.access.collect("z" * 64, "Z" * 64)
    assert export["patient"] is None and export["conversation"] == [] and export["uploads"] == []
    assert set(counts(export).values()) == {0}


def test_access_shows_every_store_the_erasure_covers_and_nothing_is_left_after_it(world):
    # One list of stores (clinic/privacy_erasure.STORES): access says where each one shows.
    assert set(SHOWN_IN) == set(STORES)
    assert set(SHOWN_IN.values()) <= set(SECTIONS)
    conversation, contact = ids("a")
    before = counts(world.access.collect(conversation, contact))
    for store, section in SHOWN_IN.items():
        assert before[section] > 0, (store, section)

    report = PrivacyErasure(world.sessions, tracker=TrackerEvents(world.tracker_engine)).erase(
        conversation, contact, requested_by="sara")
    # The erasure counts exactly these stores, and the seeded world has rows in every one:
    # a store added to the erasure without a place in the export fails here.
    assert set(report.counts) == set(STORES)
    assert all(report.counts.values()), {k: v for k, v in report.counts.items() if not v}
    after = world.access.collect(conversation, contact)
    assert counts(after) == dict.fromkeys(SECTIONS, 0) | {"records_counted": 0}
    assert counts(world.access.collect(*ids("b")))["conversation"] == 2  # the other contact's stays


def test_views_are_audited_with_counts_only(world):
    conversation, contact = ids("a")
    export = world.access.collect(conversation, contact)
    world.access.record(VIEWED, conversation, export, client="203.0.113.9")
    with world.sessions() as session:
        row = session.execute(select(AuditRow).where(AuditRow.action == "privacy_access")).scalar_one()
    assert row.actor == "patient" and row.conversation_id == conversation
    assert row.detail.startswith("viewed ")
    assert json.loads(row.detail.split(" ", 1)[1]) == counts(export)
    for secret in list(secrets_of("a").values()) + [BIRTH_DATES["a"].isoformat(), contact]:
        assert secret not in row.detail
    assert AuditLog(world.sessions).verify().ok


def test_the_link_is_a_single_use_portal_token_bound_to_the_patient_and_the_conversation(world):
    conversation, _contact = ids("a")
    url, issued = issue_access_link(world.tokens, "https://portal.example/portal", world.patients["a"], conversation)
    token = url.rsplit("/", 1)[1]
    assert url == f"https://portal.example/portal/t/{token}" and len(token) == tk.TOKEN_LENGTH
    grant = world.tokens.check(token)
    assert (grant.purpose, grant.patient_id, grant.conversation_id) == (tk.ACCESS, world.patients["a"], conversation)
    assert issued.expires_at == world.clock.now + world.tokens.lifetime  # the results links' lifetime
    assert [entry["outcome"] for entry in world.tokens.access_log(2)] == ["opened", "access_link_issued"]
    # The download token: the same binding, minutes only, never past the link's expiry.
    download = issue_download(world.tokens, world.tokens.redeem(token), world.clock.now)
    file_grant = world.tokens.check(download.token)
    assert file_grant.purpose == tk.ACCESS_FILE and file_grant.conversation_id == conversation
    assert download.expires_at == world.clock.now + dt.timedelta(minutes=15)
    with pytest.raises(tk.TokenError):
        world.tokens.redeem(token)  # used
