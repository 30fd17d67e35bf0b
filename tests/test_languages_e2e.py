"""Russian and Chinese patients end to end: the simulator (Meta), the WhatsApp gateway, Rasa,
the action server and the reminder scheduler as separate processes over real HTTP, on real
SQLite. Each patient books, cancels, asks a clinic question, asks for a person and sends a
red flag, and every reply is in their language; a reminder goes out as the template in
their language.
"""

from __future__ import annotations

import datetime as dt
import re
import time

import pytest

from benchmarks.stack import Stack, reply_text
from clinic.db import make_engine, make_session_factory
from clinic.language.memory import stored_languages
from clinic.privacy import contact_key
from clinic.reminders.planner import ReminderPlanner
from clinic.reminders.store import ReminderStore
from clinic.reminders.timing import QuietHours, ReminderPolicy
from clinic.scheduling.demo_data import install_demo_clinic
from clinic.scheduling.model import SlotQuery
from clinic.scheduling.sql_backend import SqlSchedulingBackend
from clinic.settings import load_settings
from tests.reminder_support import quiet_hours_away_from_now

pytestmark = [pytest.mark.model, pytest.mark.servers]
SETTINGS = load_settings()
TZ = SETTINGS.timezone
SCRIPT = {"ru": re.compile(r"[а-яё]", re.IGNORECASE), "zh": re.compile(r"[\u4e00-\u9fff]")}
LATIN_WORD = re.compile(r"\b[A-Za-z]{4,}\b")

# What each patient types, in their language (synthetic).
PATIENT = {
    "ru": {"hello": "Здравствуйте, мне нужна помощь", "faq": "во сколько вы открываетесь в субботу?",
           "book": "хочу записаться к врачу", "when": "завтра утром", "name": "Анна Смирнова",
           "birth": "14.03.1985", "cancel": "хочу отменить запись", "human": "позовите, пожалуйста, сотрудника",
           "red_flag": "У меня сильная боль в груди и трудно дышать"},
    "zh": {"hello": "你好，我需要帮助", "faq": "你们周六几点开门？", "book": "我想预约看医生",
           "when": "明天上午", "name": "王丽", "birth": "1985-03-14", "cancel": "我想取消预约",
           "human": "我想找人工客服", "red_flag": "胸口很痛，喘不上气"},
}


@pytest.fixture(scope="module")
def stack(trained_model, tmp_path_factory):
    running = Stack(tmp_path_factory.mktemp("languages-e2e"), trained_model, ingress=True)
    running.env["CLINIC_QUIET_HOURS"] = quiet_hours_away_from_now(TZ)
    running.start()
    running.start_scheduler(poll_seconds=0.3)
    sessions = make_session_factory(make_engine(running.env["CLINIC_DATABASE_URL"]))
    install_demo_clinic(sessions, timezone=TZ, weeks=2)
    yield running
    running.stop()


def in_language(language: str, text: str) -> bool:
    """Mostly the patient's script: allowed Latin words are names, placeholders' values and
    keywords shown beside their translation (*menu*, STOP)."""
    letters = SCRIPT[language].findall(text)
    return len(letters) >= 2 and len(letters) >= len(LATIN_WORD.findall(text))


class Patient:
    def __init__(self, stack: Stack, wa_id: str, language: str):
        self.stack, self.wa_id, self.language = stack, wa_id, language
        self.seen = 0

    def say(self, text: str, at_least: int = 1) -> list:
        self.stack.say(self.wa_id, text)
        return self._new(at_least)

    def tap(self, message: dict, choice: int = 0, at_least: int = 1) -> list:
        interactive = message["payload"]["interactive"]
        if interactive["type"] == "button":
            option = interactive["action"]["buttons"][choice]["reply"]["id"]
        else:
            option = interactive["action"]["sections"][0]["rows"][choice]["id"]
        self.stack.sim(f"/_sim/users/{self.wa_id}/tap", {"message_id": message["wamid"], "id": option})
        return self._new(at_least)

    def _new(self, at_least: int) -> list:
        replies = self.stack.wait_for_replies(self.wa_id, self.seen + at_least, timeout=90)
        time.sleep(1.0)  # the rest of a multi-message turn
        replies = [m for m in self.stack.replies(self.wa_id) if not m.get("error")]
        new, self.seen = replies[self.seen:], len(replies)
        for message in new:
            text = reply_text(message)
            if not text.startswith("["):
                assert in_language(self.language, text), (self.language, text)
        return new


def status_of(backend, appointment_id: str) -> str:
    status = backend.appointment(appointment_id).status
    return getattr(status, "value", status)


def last_interactive(messages: list) -> dict:
    found = [m for m in messages if (m.get("payload") or {}).get("type") == "interactive"]
    assert found, [reply_text(m) for m in messages]
    return found[-1]


@pytest.mark.parametrize("language, wa_id", [("ru", "15550108001"), ("zh", "15550108002")])
def test_a_patient_uses_the_whole_product_in_their_language(stack, language, wa_id):
    words = PATIENT[language]
    patient = Patient(stack, wa_id, language)
    patient.say(words["hello"], at_least=2)  # welcome + menu
    conversation = contact_key(wa_id, "whatsapp", stack.env["CLINIC_PSEUDONYM_KEY"].encode())
    sessions = make_session_factory(make_engine(stack.env["CLINIC_DATABASE_URL"]))
    assert stored_languages(sessions)[conversation] == language

    # A clinic question, answered from the approved text in the patient's language.
    answer = patient.say(words["faq"])
    assert any("08:00" in reply_text(m) or "09:00" in reply_text(m) for m in answer)

    # Booking: the form asks in their language; the patient taps the first option of every
    # list or button (service, practitioner, time, "yes"), and types a day, a name and a birth
    # date in their own words when asked.
    typed = iter([words["when"], words["name"], words["birth"]])
    backend = SqlSchedulingBackend(sessions)
    key = contact_key(conversation, "whatsapp", stack.env["CLINIC_PSEUDONYM_KEY"].encode())
    replies = patient.say(words["book"])
    for _ in range(10):
        if backend.find_patient(key) is not None and backend.upcoming(key):
            break
        interactive = [m for m in replies if (m.get("payload") or {}).get("type") == "interactive"]
        if interactive:
            replies = patient.tap(interactive[-1])
            continue
        word = next(typed, None)
        if word is None:
            break
        replies = patient.say(word)
    patient_record = backend.find_patient(key)
    assert patient_record is not None
    [booked] = backend.upcoming(key)

    # Cancelling: (which one) and "are you sure?" -> the first button, "yes, cancel it".
    replies = patient.say(words["cancel"])
    for _ in range(3):
        if status_of(backend, booked.id) == "cancelled":
            break
        replies = patient.tap(last_interactive(replies), choice=0)
    assert status_of(backend, booked.id) == "cancelled", [reply_text(m) for m in replies]

    # A person, then a red flag (emergency guidance in their language, urgent ticket).
    patient.say(words["human"])
    emergency = patient.say(words["red_flag"], at_least=2)
    assert any(SETTINGS.emergency_number in reply_text(m) for m in emergency)


def test_a_reminder_goes_out_in_the_patients_language(stack):
    sessions = make_session_factory(make_engine(stack.env["CLINIC_DATABASE_URL"]))
    wa_id = "15550108003"
    patient = Patient(stack, wa_id, "ru")
    patient.say("Здравствуйте, я хочу узнать про запись", at_least=2)
    conversation = contact_key(wa_id, "whatsapp", stack.env["CLINIC_PSEUDONYM_KEY"].encode())
    start, end = (dt.time.fromisoformat(p) for p in stack.env["CLINIC_QUIET_HOURS"].split("-"))
    policy = ReminderPolicy((24.0, 2.0), QuietHours(start, end, TZ), dt.timedelta(hours=3))
    backend = SqlSchedulingBackend(sessions, listeners=(ReminderPlanner(policy),))
    key = contact_key(conversation, "whatsapp", stack.env["CLINIC_PSEUDONYM_KEY"].encode())
    record = backend.register_patient(key, "Анна Смирнова", dt.date(1985, 3, 14), conversation, "whatsapp")
    earliest = dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=3)
    slots = backend.search_slots(SlotQuery("gp_consultation", earliest, earliest + dt.timedelta(days=7), limit=50))
    appointment = backend.book(next(s for s in slots if 9 <= s.start.astimezone(TZ).hour < 17).id,
                               record.id, "gp_consultation")
    store = ReminderStore(sessions)
    [job] = [j for j in store.jobs_for_appointment(appointment.id) if j.kind == "appointment_24h"]
    with sessions() as session, session.begin():
        from clinic.reminders.tables import ReminderJobRow
        session.get(ReminderJobRow, job.id).available_at = dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=1)

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        templates = [m for m in stack.replies(wa_id) if (m.get("payload") or {}).get("type") == "template"]
        if templates:
            break
        time.sleep(0.3)
    else:
        raise AssertionError(f"no reminder: {stack.log('scheduler')[-2000:]}")
    sent = templates[0]["payload"]["template"]
    assert sent["name"] == "appointment_reminder_v2"
    assert sent["language"]["code"] == "ru"
    body = [p["text"] for c in sent["components"] if c["type"] == "body" for p in c["parameters"]]
    assert SCRIPT["ru"].search(body[1]), body  # the date in Russian
