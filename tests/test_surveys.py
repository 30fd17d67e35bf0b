"""Surveys: planned after a fulfilled visit (real scheduling backend), sent once as a
template through the simulator, answered by the actions (rating, low score, comment)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json

import pytest
from cryptography.fernet import Fernet
from rasa_sdk.events import SlotSet
from sqlalchemy import select, text

from actions.surveys import ActionRecordRating, ActionSaveSurveyComment, survey_store
from clinic.language.memory import LanguageMemory
from clinic.messaging.store import ContactRow, WhatsAppStore
from clinic.privacy import ContactCipher, contact_key
from clinic.scheduling.model import AppointmentStatus
from clinic.surveys import planner
from clinic.surveys import tables as t
from clinic.surveys.sender import SurveySender, rating_payload, survey_template
from clinic.surveys.store import Survey, SurveyStore
from gateway.sender import Sender
from simulator.testing import TEST_ACCESS_TOKEN, running_simulator
from tests.conftest import SESSION_START, TEST_PSEUDONYM_KEY, make_tracker, user_event
from tests.reminder_support import make_clinic
from whatsapp.client import GraphClient
from whatsapp.metrics import Metrics

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


# ── languages: the patient's, the clinic's default when a version is missing (recorded) ──

def _three_fulfilled_visits(clinic, cipher):
    """Visits of patients 1-3 (conv-0001..3), fulfilled, each with a WhatsApp address."""
    local = dt.datetime(2030, 1, 8, 10, 0)
    for n in (1, 2, 3):
        appointment = clinic.book_at(local + dt.timedelta(hours=n - 1), n=n)
        clinic.backend.set_status(appointment.id, AppointmentStatus.FULFILLED, "front desk")
    with clinic.sessions() as session, session.begin():
        for n in (1, 2, 3):
            session.add(ContactRow(conversation_id=f"conv-{n:04d}", address_encrypted=cipher.encrypt(f"1555000123{n}"),
                                   created_at=clinic.clock()))


def _sent_templates(messages):
    """wa_id -> (language, body params) of the sends the simulator accepted."""
    result = {}
    for message in messages:
        if message["status"] == "rejected":
            continue
        template = message["payload"]["template"]
        body = next(c for c in template["components"] if c["type"] == "body")
        result[message["wa_id"]] = (template["language"]["code"], [p["text"] for p in body["parameters"]])
    return result


@pytest.mark.asyncio
async def test_surveys_go_out_in_the_patients_language_and_a_missing_version_falls_back_recorded(tmp_path, capsys):
    from clinic.surveys.__main__ import main as surveys_cli
    from clinic.surveys.templates import ApprovedTemplates

    clinic = make_clinic(tmp_path)
    cipher = ContactCipher(Fernet.generate_key())
    _three_fulfilled_visits(clinic, cipher)
    clinic.clock.advance(days=1, hours=6)
    memory = LanguageMemory(clinic.sessions)
    memory.remember("conv-0001", "ru")
    memory.remember("conv-0002", "zh")  # conv-0003: never said anything we could place
    store = SurveyStore(clinic.sessions, cipher)
    assert planner.plan(clinic.sessions, store, clinic.consent, clinic.clock()) == (3, 0)
    # visit_survey approved in English and Russian only (not Chinese) for this clinic.
    approved = ApprovedTemplates({"visit_survey": ("en_US", "ru"), "service_survey": ("en_US",)})
    async with running_simulator() as sim:
        client = GraphClient(sim.url, "v23.0", sim.config.phone_number_id, TEST_ACCESS_TOKEN)
        sender = SurveySender(store, clinic.consent, Sender(client, WhatsAppStore(clinic.sessions), cipher, Metrics()),
                              "w1", "Riverside", lambda _id: dt.date(2030, 1, 8), lambda _c: None,
                              clock=clinic.clock, approved=approved)
        assert await sender.send_due() == {t.SENT: 3}
        await client.close()
        _, data = await sim.get("/_sim/messages")
    sent = _sent_templates(data["messages"])
    assert sent == {
        "15550001231": ("ru", ["Riverside", "во вторник, 8 января"]),  # the date in Russian too
        "15550001232": ("en_US", ["Riverside", "Tuesday 8 January"]),  # no Chinese version: English
        "15550001233": ("en_US", ["Riverside", "Tuesday 8 January"]),  # unknown language: the default
    }
    russian = next(m for m in data["messages"] if m["wa_id"] == "15550001231")
    assert russian["rendered"]["body"].startswith("Спасибо, что посетили Riverside во вторник, 8 января.")
    with clinic.sessions() as session:
        reasons = {row.conversation_id: row.reason for row in session.scalars(select(t.SurveyRow))}
    assert reasons == {"conv-0001": None,
                       "conv-0002": "language_fallback: zh_CN -> en_US (no approved zh_CN version)",
                       "conv-0003": None}  # the default for want of a known language is no fallback
    assert store.fallbacks() == 1
    assert surveys_cli(["--database-url", clinic.url, "status"]) == 0
    assert "language fallbacks 1" in capsys.readouterr().out


@pytest.mark.asyncio
async def test_a_version_meta_refuses_is_resent_in_the_default_language_and_recorded(tmp_path):
    clinic = make_clinic(tmp_path)
    cipher = ContactCipher(Fernet.generate_key())
    _three_fulfilled_visits(clinic, cipher)
    clinic.clock.advance(days=1, hours=6)
    LanguageMemory(clinic.sessions).remember("conv-0002", "zh")
    store = SurveyStore(clinic.sessions, cipher)
    planner.plan(clinic.sessions, store, clinic.consent, clinic.clock())
    # content/templates.yml says visit_survey is approved in zh_CN, but at Meta (the
    # simulator) that version is still pending review: 132001.
    pending = tmp_path / "meta.yml"
    pending.write_text("templates:\n  - name: visit_survey\n    language: zh_CN\n    status: PENDING\n"
                       "    body: '感谢您选择{{1}}，并于{{2}}前来就诊。'\n", encoding="utf-8")
    metrics = Metrics()
    async with running_simulator(templates_path=str(pending)) as sim:
        client = GraphClient(sim.url, "v23.0", sim.config.phone_number_id, TEST_ACCESS_TOKEN)
        wa = WhatsAppStore(clinic.sessions)
        sender = SurveySender(store, clinic.consent, Sender(client, wa, cipher, metrics), "w1", "Riverside",
                              lambda _id: dt.date(2030, 1, 8), lambda _c: None, clock=clinic.clock)
        assert await sender.send_due() == {t.SENT: 3}
        await client.close()
        _, data = await sim.get("/_sim/messages")
    to_patient = [m for m in data["messages"] if m["wa_id"] == "15550001232"]
    assert [(m["status"] == "rejected", m["payload"]["template"]["language"]["code"]) for m in to_patient] == [
        (True, "zh_CN"), (False, "en_US")]
    assert to_patient[0]["error"]["code"] == 132001
    assert _sent_templates(to_patient)["15550001232"] == ("en_US", ["Riverside", "Tuesday 8 January"])
    with clinic.sessions() as session:
        survey = session.scalars(select(t.SurveyRow).where(t.SurveyRow.conversation_id == "conv-0002")).one()
    assert survey.status == t.SENT and survey.wamid == to_patient[1]["wamid"]
    assert survey.reason == "language_fallback: zh_CN -> en_US (Meta 132001: not approved in zh_CN)"
    [record] = wa.outbound("conv-0002")  # one message, one record: it says what happened
    assert (record.state, record.wamid, record.error_code) == ("sent", survey.wamid, 132001)
    assert record.error_detail.startswith("language_fallback: zh_CN -> en_US")
    assert metrics.snapshot()["outbound_template_fallback"] == 1
    assert "outbound_dead_letters" not in metrics.snapshot()
    assert store.fallbacks() == 1


def test_survey_templates_and_dates_per_language():
    survey = Survey("srv_0123456789ab", t.VISIT, "apt_1", "k", "conv-1", "whatsapp", t.SENDING, None)
    day = dt.date(2030, 3, 31)
    assert survey_template(survey, "Riverside", day, "zh_CN").body_params == ("Riverside", "3月31日星期日")
    assert survey_template(survey, "Riverside", day, "ru").body_params == ("Riverside", "в воскресенье, 31 марта")
    assert survey_template(survey, "Riverside", day).body_params == ("Riverside", "Sunday 31 March")
    assert survey_template(survey, "Riverside", None, "ru").body_params == ("Riverside", "недавно")
    assert survey_template(survey, "Riverside", None).body_params == ("Riverside", "your visit")
    service = dataclasses.replace(survey, kind=t.REQUEST)
    template = survey_template(service, "Riverside", None, "ru")
    assert (template.name, template.language, template.body_params) == ("service_survey", "ru", ("Riverside",))


def test_the_visit_day_the_command_reads_is_a_date_not_english_text(tmp_path):
    from types import SimpleNamespace
    from zoneinfo import ZoneInfo

    from clinic.surveys.__main__ import _visit_day

    clinic = make_clinic(tmp_path)
    appointment = clinic.book_at(dt.datetime(2030, 1, 8, 10, 0))
    day = _visit_day(clinic.sessions, SimpleNamespace(timezone=ZoneInfo("Europe/Berlin")))
    assert day(appointment.id) == dt.date(2030, 1, 8) and day("apt_nope") is None


def test_approved_languages_are_in_one_file_that_matches_what_meta_has(tmp_path):
    from clinic.language.catalogue import default_catalogue
    from clinic.surveys.templates import ApprovedTemplates, TemplateDataError, load_approved
    from simulator.templates import TemplateRegistry

    approved = load_approved()
    default = default_catalogue().whatsapp_code(default_catalogue().default)
    registry = TemplateRegistry()  # the demo's Meta: every version listed exists there
    for name in ("visit_survey", "service_survey"):
        assert default in approved.approved_in(name)
        for code in approved.approved_in(name):
            assert registry.get(name, code).name == name
    with pytest.raises(TemplateDataError, match="default language"):
        ApprovedTemplates({"visit_survey": ("ru",), "service_survey": ("en_US",)}).require(
            ("visit_survey", "service_survey"), "en_US")
    with pytest.raises(TemplateDataError, match="not listed"):
        ApprovedTemplates({}).approved_in("visit_survey")
    for content, why in [("templates: []\n", "mapping"), ("templates:\n  visit_survey: [en_US, en_US]\n", "twice"),
                         ("templates:\n  Visit-Survey: [en_US]\n", "only a-z"),
                         ("templates:\n  visit_survey: [english please]\n", "codes")]:
        path = tmp_path / "templates.yml"
        path.write_text(content, encoding="utf-8")
        with pytest.raises(TemplateDataError, match=why):
            load_approved(path)
    path.write_text("templates:\n  visit_survey: en_US\n", encoding="utf-8")
    assert load_approved(path, environ={}).approved_in("visit_survey") == ("en_US",)
    assert load_approved(environ={"CLINIC_TEMPLATES_FILE": str(path)}).languages == {"visit_survey": ("en_US",)}
