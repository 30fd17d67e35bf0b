"""Opt-out / opt-in: the consent store on real SQLite, and the actions that record it."""

from __future__ import annotations

import datetime as dt

import pytest
from rasa_sdk.events import SlotSet
from sqlalchemy import text

from actions.consent import OPT_IN_WORDING, OPT_OUT_WORDING, ActionRecordOptIn, ActionRecordOptOut
from clinic.privacy import contact_key
from tests.conftest import SESSION_START, TEST_PSEUDONYM_KEY, make_tracker, user_event

SENDER = "+15550001111"


def test_defaults_history_and_wording(services):
    store = services.consent
    assert store.preferences("k1").reminders is True and store.preferences("k1").health_tips is False
    at = dt.datetime(2030, 1, 7, 9, 0, tzinfo=dt.timezone.utc)
    store.record("k1", ("reminders", "health_tips"), False, "utter_opt_out_recorded@v1", "whatsapp", at)
    prefs = store.preferences("k1")
    assert (prefs.reminders, prefs.health_tips, prefs.reminders_changed_at) == (False, False, at)
    store.record("k1", "health_tips", True, "utter_opt_in_recorded@v1", "whatsapp", at + dt.timedelta(days=1))
    assert [(h["topic"], h["granted"], h["wording"]) for h in store.history("k1")] == [
        ("reminders", False, "utter_opt_out_recorded@v1"), ("health_tips", False, "utter_opt_out_recorded@v1"),
        ("health_tips", True, "utter_opt_in_recorded@v1")]
    assert store.reminders_allowed("k1") is False and store.reminders_allowed("k2") is True
    with pytest.raises(ValueError):
        store.record("k1", "newsletter", True, "x")


@pytest.mark.asyncio
async def test_opt_out_then_opt_in_are_recorded_pseudonymously(services, dispatcher, domain):
    key = contact_key(SENDER, "rest", TEST_PSEUDONYM_KEY.encode())
    events = await ActionRecordOptOut().run(dispatcher, make_tracker([SESSION_START, user_event("opt_out", "STOP")]), domain)
    assert events == [SlotSet("consent_result", "recorded")]
    prefs = services.consent.preferences(key)
    assert (prefs.reminders, prefs.health_tips) == (False, False)
    assert {h["wording"] for h in services.consent.history(key)} == {OPT_OUT_WORDING}

    events = await ActionRecordOptIn().run(dispatcher, make_tracker([SESSION_START, user_event("opt_in", "START")]), domain)
    assert events == [SlotSet("consent_result", "recorded")]
    prefs = services.consent.preferences(key)
    assert (prefs.reminders, prefs.health_tips) == (True, True)
    assert services.consent.history(key)[-1]["wording"] == OPT_IN_WORDING
    assert dispatcher.messages == []  # data/rules/consent.yml answers
    assert SENDER not in key


@pytest.mark.asyncio
async def test_database_failure_is_told_not_hidden(services, dispatcher, domain):
    with services.consent._sessions() as session, session.begin():
        session.execute(text("DROP TABLE consent_events"))
    events = await ActionRecordOptOut().run(dispatcher, make_tracker([SESSION_START, user_event("opt_out", "STOP")]), domain)
    assert events == [SlotSet("consent_result", "failed")]
    key = contact_key(SENDER, "rest", TEST_PSEUDONYM_KEY.encode())
    assert services.consent.preferences(key).reminders is True  # nothing half-saved


# ── double opt-in, tips-only opt-out, the broadcast segment ───────────────────────────────
from actions.consent import TIPS_OPT_OUT_WORDING, ActionRecordTipsOptOut  # noqa: E402
from clinic.broadcasts import tables as bt  # noqa: E402
from clinic.broadcasts.store import BroadcastStore  # noqa: E402


def whatsapp_event(intent, text="", entities=None):
    event = user_event(intent, text, entities)
    event["input_channel"] = "whatsapp"
    return event


CONVERSATION = "c" * 64  # the channel's pseudonymous conversation id (the tracker's sender id)


def wa_key():
    return contact_key(CONVERSATION, "whatsapp", TEST_PSEUDONYM_KEY.encode())


@pytest.mark.asyncio
async def test_double_opt_in_records_the_question_and_where_to_reach_them(services, dispatcher, domain):
    tracker = make_tracker([SESSION_START, whatsapp_event("confirm_opt_in", "/confirm_opt_in",
                                                          [{"entity": "consent_scope", "value": "all"}])],
                           sender_id=CONVERSATION)
    assert await ActionRecordOptIn().run(dispatcher, tracker, domain) == [SlotSet("consent_result", "recorded")]
    prefs = services.consent.preferences(wa_key())
    assert (prefs.reminders, prefs.health_tips) == (True, True)
    assert {h["wording"] for h in services.consent.history(wa_key())} == {"utter_ask_opt_in@v1"}
    [subscriber] = services.consent.tips_segment("whatsapp")
    assert (subscriber.contact_key, subscriber.conversation_id, subscriber.channel) == (wa_key(), CONVERSATION, "whatsapp")
    assert "utter_ask_opt_in" in domain["responses"]  # the wording id names a real response


@pytest.mark.asyncio
async def test_reminders_only_opt_in_does_not_subscribe_to_tips(services, dispatcher, domain):
    tracker = make_tracker([SESSION_START, whatsapp_event("confirm_opt_in", "/confirm_opt_in",
                                                          [{"entity": "consent_scope", "value": "reminders"}])],
                           sender_id=CONVERSATION)
    events = await ActionRecordOptIn().run(dispatcher, tracker, domain)
    assert events == [SlotSet("consent_result", "recorded_reminders")]
    prefs = services.consent.preferences(wa_key())
    assert (prefs.reminders, prefs.health_tips) == (True, False)
    assert services.consent.tips_segment() == []


@pytest.mark.asyncio
async def test_stop_tips_keeps_reminders_and_stop_stops_everything(services, dispatcher, domain):
    services.consent.record(wa_key(), ("reminders", "health_tips"), True, "utter_ask_opt_in@v1", "whatsapp",
                            conversation_id=CONVERSATION)
    tracker = make_tracker([SESSION_START, whatsapp_event("opt_out_tips", "stop tips")], sender_id=CONVERSATION)
    assert await ActionRecordTipsOptOut().run(dispatcher, tracker, domain) == [SlotSet("consent_result", "recorded")]
    prefs = services.consent.preferences(wa_key())
    assert (prefs.reminders, prefs.health_tips) == (True, False)
    assert services.consent.history(wa_key())[-1] == {**services.consent.history(wa_key())[-1],
                                                      "topic": "health_tips", "granted": False,
                                                      "wording": TIPS_OPT_OUT_WORDING}
    tracker = make_tracker([SESSION_START, whatsapp_event("opt_out", "STOP")], sender_id=CONVERSATION)
    await ActionRecordOptOut().run(dispatcher, tracker, domain)
    prefs = services.consent.preferences(wa_key())
    assert (prefs.reminders, prefs.health_tips) == (False, False)
    assert services.consent.reminders_allowed(wa_key()) is False
    # Opting back in works.
    tracker = make_tracker([SESSION_START, whatsapp_event("affirm", "yes")], sender_id=CONVERSATION)
    await ActionRecordOptIn().run(dispatcher, tracker, domain)
    assert services.consent.tips_allowed(wa_key()) and services.consent.reminders_allowed(wa_key())
    assert [h["granted"] for h in services.consent.history(wa_key()) if h["topic"] == "health_tips"] == [
        True, False, False, True]


@pytest.mark.asyncio
async def test_opting_out_skips_queued_broadcast_messages_at_once(services, dispatcher, domain):
    services.consent.record(wa_key(), ("reminders", "health_tips"), True, "utter_ask_opt_in@v1", "whatsapp",
                            conversation_id=CONVERSATION)
    store = BroadcastStore(services.consent.sessions, services.consent)
    campaign = store.create("tips", "health_tip", "en_US", ["Clinic", "Drink water."])
    assert store.enqueue_segment(campaign.id) == 1
    tracker = make_tracker([SESSION_START, whatsapp_event("opt_out_tips", "/opt_out_tips")], sender_id=CONVERSATION)
    await ActionRecordTipsOptOut().run(dispatcher, tracker, domain)
    [row] = store.recipients(campaign.id)
    assert (row.status, row.reason) == (bt.SKIPPED, "opted_out")
