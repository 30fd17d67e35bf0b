"""Surveys: planned after a fulfilled visit (real scheduling backend), sent once as a
template through the simulator, answered by the actions (rating, low score, comment)."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from cryptography.fernet import Fernet
from rasa_sdk.events import SlotSet
from sqlalchemy import select, text

from actions.surveys import ActionRecordRating, ActionSaveSurveyComment, survey_store
from clinic.privacy import ContactCipher, contact_key
from clinic.scheduling.model import AppointmentStatus
from clinic.surveys import planner
from clinic.surveys import tables as t
from clinic.surveys.sender import SurveySender, rating_payload
from clinic.surveys.store import SurveyStore
from simulator.testing import TEST_ACCESS_TOKEN, running_simulator
from tests.conftest import SESSION_START, TEST_PSEUDONYM_KEY, make_tracker, user_event
from tests.reminder_support import make_clinic
from whatsapp.client import GraphClient
from whatsapp.metrics import Metrics
from whatsapp.sender import Sender
from whatsapp.store import ContactRow, WhatsAppStore

CONVERSATION = "d" * 64


def rate_event(rating, survey_id):
    event = user_event("rate", f"/rate{json.dumps({'rating': rating, 'survey_id': survey_id})}",
                       [{"entity": "rating", "value": rating}, {"entity": "survey_id", "value": survey_id}])
    event["input_channel"] = "whatsapp"
    return event


@pytest.mark.asyncio
async def test_a_fulfilled_visit_gets_one_survey_sent_once(tmp_path):
    clinic = make_clinic(tmp_path)
    local = dt.datetime(2030, 1, 8, 10, 0)
    appointment = clinic.book_at(local)
    second = clinic.book_at(local + dt.timedelta(hours=1), n=2)
    clinic.clock.advance(days=1, hours=6)
    clinic.backend.set_status(appointment.id, AppointmentStatus.FULFILLED, "front desk")
    clinic.backend.set_status(second.id, AppointmentStatus.FULFILLED, "front desk")
    clinic.consent.record("contact-0002", "reminders", False, "utter_opt_out_recorded@v2")  # STOP: no survey
    cipher = ContactCipher(Fernet.generate_key())
    store = SurveyStore(clinic.sessions, cipher)
    assert planner.plan(clinic.sessions, store, clinic.consent, clinic.clock()) == (1, 0)
    assert planner.plan(clinic.sessions, store, clinic.consent, clinic.clock()) == (0, 0)  # once per visit
    # The inbox asks for a rating on resolve itself (handoff_ratings): tickets are not surveyed twice.
    assert planner.inbox_rates_handoffs(clinic.sessions)
    with clinic.sessions() as session, session.begin():
        session.add(ContactRow(conversation_id="conv-0001", address_encrypted=cipher.encrypt("15550001234"),
                               created_at=clinic.clock()))
    async with running_simulator() as sim:
        client = GraphClient(sim.url, "v23.0", sim.config.phone_number_id, TEST_ACCESS_TOKEN)
        wa = WhatsAppStore(clinic.sessions)
        sender = SurveySender(store, clinic.consent, Sender(client, wa, cipher, Metrics()), "w1", "Riverside",
                              lambda _id: "Tuesday 8 January", lambda _c: None, clock=clinic.clock)
        assert await sender.send_due() == {t.SENT: 1}
        assert await sender.send_due() == {}
        await client.close()
        _, data = await sim.get("/_sim/messages")
    [message] = data["messages"]
    with clinic.sessions() as session:
        survey = session.scalars(select(t.SurveyRow)).one()
    assert survey.status == t.SENT and survey.wamid == message["wamid"] and survey.subject_id == appointment.id
    components = message["payload"]["template"]["components"]
    payloads = [c["parameters"][0]["payload"] for c in components if c["type"] == "button"]
    assert payloads == [rating_payload(survey.id, n) for n in range(1, 6)]
    assert payloads[3] == '/rate{"rating": 4, "survey_id": "%s"}' % survey.id
    body = json.dumps(message["payload"])
    assert "gp_consultation" not in body and "Synthetic" not in body  # no service, no name


def add_survey(services, key, survey_id="srv_0123456789ab"):
    now = dt.datetime(2030, 1, 7, tzinfo=dt.timezone.utc)
    with services.consent.sessions() as session, session.begin():
        survey_store().add(session, t.VISIT, "apt_x", key, CONVERSATION, "whatsapp", now, now)
        session.flush()
        session.execute(text("UPDATE survey_requests SET id = :id"), {"id": survey_id})
    return survey_id


def my_key():
    return contact_key(CONVERSATION, "whatsapp", TEST_PSEUDONYM_KEY.encode())


@pytest.mark.asyncio
async def test_ratings_are_stored_thanked_and_low_scores_offered_a_human(services, dispatcher, domain):
    survey_id = add_survey(services, my_key())
    tracker = make_tracker([SESSION_START, rate_event(5, survey_id)], sender_id=CONVERSATION)
    events = await ActionRecordRating().run(dispatcher, tracker, domain)
    assert events == [SlotSet("survey_request_id", survey_id), SlotSet("survey_comment", None),
                      SlotSet("survey_result", "good")]
    tracker = make_tracker([SESSION_START, rate_event(2, survey_id)], sender_id=CONVERSATION)
    events = await ActionRecordRating().run(dispatcher, tracker, domain)
    assert events[-1] == SlotSet("survey_result", "low")
    with services.consent.sessions() as session:
        row = session.get(t.SurveyRow, survey_id)
        assert (row.rating, row.offered_human) == (2, True)  # the latest tap counts
    assert dispatcher.messages == []  # data/rules/surveys.yml answers


@pytest.mark.asyncio
async def test_someone_elses_or_unknown_or_bad_ratings_record_nothing(services, dispatcher, domain):
    survey_id = add_survey(services, "another-contact")
    for rating, sid in ((4, survey_id), (4, "srv_ffffffffffff"), (9, survey_id), ("x", survey_id)):
        tracker = make_tracker([SESSION_START, rate_event(rating, sid)], sender_id=CONVERSATION)
        assert await ActionRecordRating().run(dispatcher, tracker, domain) == [SlotSet("survey_result", "not_found")]
    assert survey_store().get(survey_id).rating is None


@pytest.mark.asyncio
async def test_comment_is_stored_encrypted(services, dispatcher, domain):
    survey_id = add_survey(services, my_key())
    tracker = make_tracker([SESSION_START, user_event("thank", "lovely staff")], sender_id=CONVERSATION,
                           slots={"survey_request_id": survey_id, "survey_comment": "lovely staff, short wait"})
    tracker.latest_message["input_channel"] = "whatsapp"
    tracker.events[-1]["input_channel"] = "whatsapp"
    events = await ActionSaveSurveyComment().run(dispatcher, tracker, domain)
    assert events == [SlotSet("survey_comment", None), SlotSet("survey_result", "comment_saved")]
    assert survey_store().read_comment(survey_id) == "lovely staff, short wait"
    with services.consent.sessions() as session:
        raw = session.execute(text("SELECT comment_encrypted FROM survey_requests")).scalar_one()
    assert "lovely" not in raw


@pytest.mark.asyncio
async def test_a_database_failure_is_told(services, dispatcher, domain):
    with services.consent.sessions() as session, session.begin():
        session.execute(text("DROP TABLE survey_requests"))
    tracker = make_tracker([SESSION_START, rate_event(4, "srv_0123456789ab")], sender_id=CONVERSATION)
    assert await ActionRecordRating().run(dispatcher, tracker, domain) == [SlotSet("survey_result", "failed")]
