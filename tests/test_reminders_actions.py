"""action_send_reminder and action_confirm_appointment: a Tracker in, the exact events out,
against a real SQLite clinic database with the planner wired in as in production."""

from __future__ import annotations

import datetime as dt

import pytest
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions.reminders import ActionConfirmAppointment, ActionSendReminder
from actions.services import build_services, use_services
from clinic.privacy import contact_key
from clinic.scheduling.demo_data import install_demo_clinic
from clinic.scheduling.model import SlotQuery
from tests.conftest import SESSION_START, TEST_PSEUDONYM_KEY, make_tracker
from tests.reminder_support import BERLIN, Clock

CONVERSATION = "3f1c0ffee0000000000000000000000000000000000000000000000000000001"  # a pseudonym


def local(*args) -> dt.datetime:
    return dt.datetime(*args, tzinfo=BERLIN).astimezone(dt.timezone.utc)


@pytest.fixture
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("CLINIC_PSEUDONYM_KEY", TEST_PSEUDONYM_KEY)
    monkeypatch.setenv("CLINIC_TIMEZONE", "Europe/Berlin")
    clock = Clock()
    services = build_services(f"sqlite:///{tmp_path / 'clinic.db'}", clock=clock)
    install_demo_clinic(services.reminders._sessions, timezone=BERLIN, weeks=2, now=clock.now)
    use_services(services)
    yield services, clock
    use_services(None)


def book(services, conversation=CONVERSATION, when=(2030, 1, 9, 10, 0), name="Sam Example"):
    key = contact_key(conversation, "whatsapp", TEST_PSEUDONYM_KEY.encode())
    patient = services.scheduling.register_patient(key, name, dt.date(1990, 5, 1), conversation, "whatsapp")
    start = local(*when)
    [slot] = services.scheduling.search_slots(SlotQuery("gp_consultation", start, start + dt.timedelta(minutes=1), limit=1))
    return services.scheduling.book(slot.id, patient.id, "gp_consultation"), key


def external(intent: str, job_id: str) -> dict:
    return {"event": "user", "text": f"EXTERNAL: {intent}", "input_channel": "whatsapp",
            "parse_data": {"intent": {"name": intent, "confidence": 1.0},
                           "entities": [{"entity": "reminder_job", "value": job_id}]}}


def tap(payload_entities: list, intent="confirm_appointment") -> dict:
    return {"event": "user", "text": "/confirm_appointment", "input_channel": "whatsapp",
            "parse_data": {"intent": {"name": intent, "confidence": 1.0}, "entities": payload_entities}}


async def send(job_id, sender=CONVERSATION, intent="EXTERNAL_appointment_reminder", slots=None):
    dispatcher = CollectingDispatcher()
    tracker = make_tracker([SESSION_START, external(intent, job_id)], slots=slots, sender_id=sender)
    events = await ActionSendReminder().run(dispatcher, tracker, {})
    return events, dispatcher


@pytest.mark.asyncio
async def test_due_reminder_sets_the_template_values_and_is_marked_sent_once(env):
    services, clock = env
    appointment, _ = book(services)
    clock.now = local(2030, 1, 8, 10, 0)
    [job] = services.reminders.claim_due("w", clock.now, limit=1)

    events, dispatcher = await send(job.id)

    assert events == [
        SlotSet("visit_first_name", "Sam"),
        SlotSet("visit_date", "Wednesday 9 January"), SlotSet("visit_time", "10:00"),
        SlotSet("visit_practitioner", appointment.practitioner.name),
        SlotSet("visit_location", appointment.location.name),
        SlotSet("visit_appointment_id", appointment.id),
        SlotSet("reminder_to_send", "appointment"),
    ]
    assert dispatcher.messages == []  # data/rules/reminders.yml sends the template
    assert services.reminders.job(job.id).status == "sent"
    # The service name (could reveal a condition) is not among the values.
    assert appointment.service.name not in str(events)
    # A second push of the same job (scheduler restarted) sends nothing.
    again, _ = await send(job.id)
    assert again == [SlotSet("reminder_to_send", "nothing")]


@pytest.mark.asyncio
async def test_cancelled_appointment_is_skipped_by_the_action(env):
    services, clock = env
    appointment, key = book(services)
    clock.now = local(2030, 1, 8, 10, 0)
    [job] = services.reminders.claim_due("w", clock.now, limit=1)
    services.scheduling.cancel(appointment.id, key)  # after the push, before the action
    events, _ = await send(job.id)
    assert events == [SlotSet("reminder_to_send", "nothing")]
    assert (services.reminders.job(job.id).status, services.reminders.job(job.id).reason) == ("skipped", "cancelled")


@pytest.mark.asyncio
async def test_opted_out_contact_gets_nothing(env):
    services, clock = env
    _, key = book(services)
    services.consent.record(key, "reminders", False, "utter_opt_out_recorded@v1")
    clock.now = local(2030, 1, 8, 10, 0)
    [job] = services.reminders.claim_due("w", clock.now, limit=1)
    events, _ = await send(job.id)
    assert events == [SlotSet("reminder_to_send", "nothing")]
    assert services.reminders.job(job.id).reason == "opted_out"


@pytest.mark.asyncio
async def test_a_job_is_never_sent_into_another_conversation(env):
    services, clock = env
    book(services)
    clock.now = local(2030, 1, 8, 10, 0)
    [job] = services.reminders.claim_due("w", clock.now, limit=1)
    events, _ = await send(job.id, sender="someone-else")
    assert events == [SlotSet("reminder_to_send", "nothing")]
    assert services.reminders.job(job.id).reason == "wrong_conversation"


@pytest.mark.asyncio
async def test_event_without_a_job_asks_to_rephrase(env):
    dispatcher = CollectingDispatcher()
    tracker = make_tracker([SESSION_START, tap([], intent="EXTERNAL_appointment_reminder")], sender_id=CONVERSATION)
    events = await ActionSendReminder().run(dispatcher, tracker, {})
    assert events == [SlotSet("reminder_to_send", "nothing")]
    assert [m["response"] for m in dispatcher.messages] == ["utter_ask_rephrase"]


async def confirm(entities, sender=CONVERSATION, slots=None):
    dispatcher = CollectingDispatcher()
    tracker = make_tracker([SESSION_START, tap(entities)], slots=slots, sender_id=sender)
    return await ActionConfirmAppointment().run(dispatcher, tracker, {}), dispatcher


@pytest.mark.asyncio
async def test_confirm_tap_confirms_the_right_appointment_days_later(env):
    services, clock = env
    first, _ = book(services)
    second, _ = book(services, when=(2030, 1, 10, 14, 0))
    clock.now = local(2030, 1, 9, 8, 0)  # the tap comes a day after the reminder
    events, dispatcher = await confirm([{"entity": "appointment_id", "value": first.id}])
    assert events[-1] == SlotSet("confirm_result", "confirmed")
    assert SlotSet("visit_appointment_id", first.id) in events
    assert services.scheduling.appointment(first.id).confirmed_at == clock.now
    assert services.scheduling.appointment(second.id).confirmed_at is None
    assert dispatcher.messages == []
    events, _ = await confirm([{"entity": "appointment_id", "value": first.id}])
    assert events[-1] == SlotSet("confirm_result", "already_confirmed")


@pytest.mark.asyncio
async def test_confirm_tap_for_a_cancelled_appointment_changes_nothing(env):
    services, _ = env
    appointment, key = book(services)
    services.scheduling.cancel(appointment.id, key)
    events, _ = await confirm([{"entity": "appointment_id", "value": appointment.id}])
    assert events == [SlotSet("confirm_result", "not_active")]
    assert services.scheduling.appointment(appointment.id).confirmed_at is None


@pytest.mark.asyncio
async def test_confirm_tap_from_another_contact_changes_nothing(env):
    services, _ = env
    appointment, _ = book(services)
    events, _ = await confirm([{"entity": "appointment_id", "value": appointment.id}], sender="forwarded-to-me")
    assert events == [SlotSet("confirm_result", "not_found")]
    assert services.scheduling.appointment(appointment.id).confirmed_at is None
    events, _ = await confirm([{"entity": "appointment_id", "value": "apt_doesnotexist"}])
    assert events == [SlotSet("confirm_result", "not_found")]


@pytest.mark.asyncio
async def test_confirm_in_words_uses_the_only_upcoming_appointment(env):
    services, _ = env
    events, _ = await confirm([])
    assert events == [SlotSet("confirm_result", "none_upcoming")]
    appointment, _ = book(services)
    events, _ = await confirm([])
    assert events[-1] == SlotSet("confirm_result", "confirmed")
    book(services, when=(2030, 1, 10, 14, 0))
    events, _ = await confirm([])
    assert events == [SlotSet("confirm_result", "choose")]


# --- in the conversation's language ------------------------------------------------------


@pytest.mark.asyncio
async def test_reminder_values_in_russian(env):
    from clinic.scheduling.translations import location_name

    services, clock = env
    appointment, _ = book(services)
    clock.now = local(2030, 1, 8, 10, 0)
    [job] = services.reminders.claim_due("w", clock.now, limit=1)

    events, _ = await send(job.id, slots={"language": "ru"})

    values = {e["name"]: e["value"] for e in events}
    # "Напоминаем о вашей записи на приём {visit_date} в {visit_time}".
    assert (values["visit_date"], values["visit_time"]) == ("в среду, 9 января", "10:00")
    assert values["visit_location"] == location_name(appointment.location, "ru") != \
        appointment.location.name
    assert values["visit_first_name"] == "Sam"
    assert values["reminder_to_send"] == "appointment"


@pytest.mark.asyncio
async def test_confirmation_values_in_chinese(env):
    services, _ = env
    appointment, _ = book(services)
    events, _ = await confirm([{"entity": "appointment_id", "value": appointment.id}],
                              slots={"language": "zh"})
    values = {e["name"]: e["value"] for e in events}
    assert (values["visit_date"], values["visit_time"]) == ("1月9日星期三", "10:00")
    assert values["confirm_result"] == "confirmed"


def test_greeting_without_a_first_name_per_language():
    from actions.reminders import first_name

    assert first_name("") == "there"
    assert first_name("", "ru") == "уважаемый пациент"
    assert first_name("  ", "zh") == "尊敬的患者"
    assert first_name("Мария Иванова", "ru") == "Мария"


def test_the_scheduler_can_send_the_contacts_language_with_the_push():
    from clinic.reminders.rasa_client import RasaPusher
    from clinic.reminders.store import Job

    job = Job(id="rem_1", kind="appointment_24h", appointment_id="apt_1", recall_id=None,
              patient_id="p1", contact_key="k", conversation_id=CONVERSATION, channel="whatsapp",
              planned_for=None, due_at=local(2030, 1, 8, 10, 0), expires_at=local(2030, 1, 9, 10, 0),
              status="dispatching", reason=None, attempts=0, claimed_by="w", sent_at=None)
    plain = RasaPusher("http://rasa", None)
    assert plain.entities(job) == {"reminder_job": "rem_1"}  # unchanged without a hook
    languages = {"rem_1": "ru-RU"}
    pusher = RasaPusher("http://rasa", None, language_for=lambda j: languages.get(j.id))
    assert pusher.entities(job) == {"reminder_job": "rem_1", "language": "ru"}
    languages["rem_1"] = None
    assert pusher.entities(job) == {"reminder_job": "rem_1"}

    def broken(_job):
        raise RuntimeError("database down")

    # A failed lookup never stops the reminder: it goes out in the conversation's language.
    assert RasaPusher("http://rasa", None, language_for=broken).entities(job) == {"reminder_job": "rem_1"}
