"""The booking Flow's Rasa side (actions/appointments/booking_flow.py) with the demo clinic:
the Flow is offered on WhatsApp only (and only with a published Flow id), with a token bound
to the conversation; a completed form's answers become the chat form's slots, and answers
with a token of another conversation (or none) are refused."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher

from actions.appointments.booking import ActionStartBooking
from actions.appointments.booking_flow import ActionFlowBooking
from actions.services import build_services, use_services
from clinic.booking_flow import tokens
from clinic.booking_flow.screens import texts
from clinic.db import make_engine, make_session_factory
from clinic.scheduling.demo_data import install_demo_clinic
from clinic.scheduling.model import SlotQuery
from tests.conftest import SESSION_START, TEST_PSEUDONYM_KEY, user_event
from tests.test_actions_appointments import NOW, TZ

SENDER = "conv-pseudonym-7"


@pytest.fixture
def clinic(tmp_path, monkeypatch):
    monkeypatch.setenv("CLINIC_PSEUDONYM_KEY", TEST_PSEUDONYM_KEY)
    monkeypatch.setenv("CLINIC_TIMEZONE", "Europe/Berlin")
    monkeypatch.setenv("WHATSAPP_BOOKING_FLOW_ID", "990000000000007")
    url = f"sqlite:///{tmp_path / 'clinic.db'}"
    built = build_services(url, clock=lambda: NOW)
    engine = make_engine(url)
    install_demo_clinic(make_session_factory(engine), timezone=TZ, weeks=2, now=NOW)
    use_services(built)
    yield built
    use_services(None)
    engine.dispose()


def tracker(intent, text="", entities=None, channel="whatsapp", language="en", sender=SENDER):
    event = {**user_event(intent, text=text, entities=entities), "input_channel": channel}
    return Tracker(sender_id=sender, slots={"language": language}, latest_message=event["parse_data"],
                   events=[SESSION_START, event], paused=False, followup_action=None,
                   active_loop={}, latest_action_name="action_listen")


def flows_sent(dispatcher):
    return [m["custom"]["whatsapp"] for m in dispatcher.messages
            if (m.get("custom") or {}).get("whatsapp", {}).get("type") == "flow"]


@pytest.mark.asyncio
@pytest.mark.parametrize("language", ["en", "ru", "zh"])
async def test_the_flow_is_offered_on_whatsapp_in_the_patients_language(clinic, language):
    dispatcher = CollectingDispatcher()
    await ActionStartBooking().run(dispatcher, tracker("book_appointment", "book", language=language), {})
    [flow] = flows_sent(dispatcher)
    assert flow["cta"] == texts(language)["cta"] and flow["body"] == texts(language)["message_body"]
    grant = tokens.verify(flow["flow_token"], TEST_PSEUDONYM_KEY.encode(), NOW, conversation_id=SENDER)
    assert grant.language == language and grant.channel == "whatsapp"


@pytest.mark.asyncio
async def test_no_flow_on_other_channels_or_without_a_flow_id(clinic, monkeypatch):
    dispatcher = CollectingDispatcher()
    await ActionStartBooking().run(dispatcher, tracker("book_appointment", "book", channel="rest"), {})
    assert flows_sent(dispatcher) == []
    monkeypatch.delenv("WHATSAPP_BOOKING_FLOW_ID")
    await ActionStartBooking().run(dispatcher, tracker("book_appointment", "book"), {})
    assert flows_sent(dispatcher) == []


def answers(clinic, token):
    start = dt.datetime(2026, 6, 11, tzinfo=TZ)
    slot = clinic.scheduling.search_slots(SlotQuery("gp_consultation", start, start + dt.timedelta(days=1)))[0]
    return slot, {"service": "gp_consultation", "practitioner": "any", "day": "2026-06-11", "slot": slot.id,
                  "name": "Anna Petrova", "birth_date": "1985-04-03", "flow_token": token}


@pytest.mark.asyncio
async def test_completed_answers_become_the_chat_forms_slots(clinic):
    token = tokens.issue(SENDER, "whatsapp", "en", TEST_PSEUDONYM_KEY.encode(), NOW)
    slot, data = answers(clinic, token)
    events = await ActionFlowBooking().run(
        CollectingDispatcher(), tracker("flow_booking", entities=[
            {"entity": "flow_response", "value": json.dumps(data)}]), {})
    slots = {e["name"]: e["value"] for e in events if e["event"] == "slot"}
    assert slots["flow_booking_check"] == "ready"
    assert (slots["booking_service"], slots["booking_practitioner"], slots["booking_slot"]) == \
        ("gp_consultation", "any", slot.id)
    assert slots["booking_confirmed"] == "yes"
    assert (slots["patient_name"], slots["patient_birth_date"]) == ("Anna Petrova", "1985-04-03")
    assert slots["booking_offers"][0]["id"] == slot.id  # the chat form's summary of that time
    assert slots["booking_window"]["earliest"].startswith("2026-06-11")


@pytest.mark.asyncio
@pytest.mark.parametrize("case", ["other conversation", "expired", "no answers"])
async def test_answers_that_are_not_this_conversations_are_refused(clinic, case):
    key = TEST_PSEUDONYM_KEY.encode()
    token = {"other conversation": tokens.issue("someone-else", "whatsapp", "en", key, NOW),
             "expired": tokens.issue(SENDER, "whatsapp", "en", key, NOW - dt.timedelta(hours=3)),
             "no answers": ""}[case]
    entities = [] if case == "no answers" else [
        {"entity": "flow_response", "value": json.dumps(answers(clinic, token)[1])}]
    events = await ActionFlowBooking().run(CollectingDispatcher(), tracker("flow_booking", entities=entities), {})
    assert [(e["name"], e["value"]) for e in events if e["event"] == "slot"] == [("flow_booking_check", "invalid")]
