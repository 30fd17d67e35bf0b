"""Human handoff end to end: the WhatsApp simulator, Rasa with the WhatsApp channel, the
action server and the staff inbox run as separate processes on real HTTP with one real
SQLite clinic database. A patient asks for a person → a staff member logs in (password +
TOTP) and claims the ticket through the inbox's JSON API → replies → the patient receives
it → the assistant stays silent while the ticket is claimed → a red flag still gets the
emergency guidance and makes the ticket urgent → outside the 24-hour window a reply is
refused and a template goes out instead → resolve → the patient is back with the assistant
and rates the conversation → the rating is stored → the next message is answered by the bot.
Also: out of the team's hours the patient is told when someone will reply and can ask for
a call-back instead.
"""

from __future__ import annotations

import datetime as dt
import time
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import create_engine, text

from benchmarks.stack import Stack, reply_text
from clinic.privacy import contact_key
from clinic.settings import load_settings
from tests.inbox_support import demo_staff_login, inbox_api

pytestmark = [pytest.mark.model, pytest.mark.servers]
SETTINGS = load_settings()
_numbers = iter(range(1000, 10000))


def patient() -> str:
    return f"1555020{next(_numbers):04d}"  # synthetic


def closed_nurse_hours() -> str:
    """A nurse-line window on a day that isn't today (clinic time): closed now, whatever the
    hour the test runs at."""
    today = dt.datetime.now(ZoneInfo(SETTINGS.timezone.key)).weekday()
    day = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")[(today + 3) % 7]
    return f"{day} 03:00-04:00"


@pytest.fixture(scope="module")
def stack(model, tmp_path_factory):
    running = Stack(tmp_path_factory.mktemp("handoff-e2e"), model)
    # Deterministic staffed hours: reception always in, the nurse line closed right now.
    running.env["CLINIC_RECEPTION_HOURS"] = "mon-sun 00:00-23:59"
    running.env["CLINIC_NURSE_LINE_HOURS"] = closed_nurse_hours()
    running.start()
    running.start_inbox()
    yield running
    running.stop()


@pytest.fixture(scope="module")
def staff(stack):
    """demo-agent (nurse + reception) logged in: password, then a TOTP code from the key
    the inbox printed at start-up."""
    return demo_staff_login(stack, "demo-agent", "agent")




def conversation_of(stack: Stack, wa_id: str) -> str:
    return contact_key(wa_id, "whatsapp", stack.env["CLINIC_PSEUDONYM_KEY"].encode())


def ticket_for(client, conversation_id: str) -> dict:
    queues = inbox_api(client, "GET", "/queues")
    tickets = [t for team in queues["teams"].values() for t in team] + queues["mine"]
    found = [t for t in tickets if t["conversation_id"] == conversation_id]
    assert found, queues
    return found[0]


def rows(stack: Stack, sql: str, **params) -> list:
    engine = create_engine(stack.env["CLINIC_DATABASE_URL"], future=True)
    with engine.connect() as connection:
        return [dict(r._mapping) for r in connection.execute(text(sql), params)]


def new_replies(stack: Stack, wa_id: str, before: int, count: int, timeout: float = 60) -> list:
    return stack.wait_for_replies(wa_id, before + count, timeout)[before:]


def test_patient_staff_and_back_to_the_bot(stack, staff):
    wa_id = patient()
    conv = conversation_of(stack, wa_id)
    stack.say(wa_id, "hi")
    seen = len(stack.wait_for_replies(wa_id, 2))

    # 1. The patient asks for a person: queued for reception, told the team, wait, not for emergencies.
    stack.say(wa_id, "I'd like to talk to a real person please")
    # Then, reception being staffed, WhatsApp's "may the clinic call you?" (voice calls).
    queued, may_we_call = new_replies(stack, wa_id, seen, 2)
    seen += 2
    assert may_we_call["payload"]["interactive"]["type"] == "call_permission_request"
    answer = reply_text(queued)
    assert "reception team" in answer and "about 5 minutes" in answer and "not for emergencies" in answer
    ticket = ticket_for(staff, conv)
    assert (ticket["team"], ticket["state"], ticket["reason"]) == ("reception", "waiting", "patient_request")

    # 2. Staff claim it: the assistant is paused, and the patient is told who has joined.
    claimed = inbox_api(staff, "POST", f"/tickets/{ticket['id']}/claim")
    assert claimed["warning"] is None and claimed["ticket"]["bot_paused"] is True
    [joined] = new_replies(stack, wa_id, seen, 1)
    seen += 1
    assert reply_text(joined) == "Demo from our reception team has joined the chat and will reply to you here."

    # 3. Staff reply: it reaches the patient through WhatsApp, and the transcript, once.
    reply = inbox_api(staff, "POST", f"/tickets/{ticket['id']}/reply", text="Hello, this is Demo from reception.")
    assert reply["delivery"] == "sent"
    [staff_message] = new_replies(stack, wa_id, seen, 1)
    seen += 1
    assert reply_text(staff_message) == "Hello, this is Demo from reception."

    # 4. While claimed the assistant is silent; the patient's message reaches the transcript.
    stack.say(wa_id, "where can I park?")
    time.sleep(4)
    assert len([m for m in stack.replies(wa_id) if not m.get("error")]) == seen
    timeline = inbox_api(staff, "GET", f"/tickets/{ticket['id']}")["timeline"]
    assert [i["text"] for i in timeline].count("Hello, this is Demo from reception.") == 1
    assert timeline[-1]["sender"] == "patient" and timeline[-1]["text"] == "where can I park?"

    # 5. A red flag while claimed: emergency guidance at once, and the ticket becomes urgent
    #    (the nurse queue takes it over).
    stack.say(wa_id, "my dad has crushing chest pain and is sweating")
    guidance, flagged = new_replies(stack, wa_id, seen, 2)
    seen += 2
    assert f"call {SETTINGS.emergency_number} now" in reply_text(guidance)
    assert "flagged this chat as urgent" in reply_text(flagged)
    urgent = inbox_api(staff, "GET", f"/tickets/{ticket['id']}")
    assert (urgent["ticket"]["priority"], urgent["ticket"]["red_flag_category"]) == ("urgent", "chest_pain")
    assert urgent["ticket"]["team"] == "nurse" and urgent["ticket"]["bot_paused"] is True

    # The transcript is whole once Rasa has logged the message (the guidance went out first).
    def guidance_in_transcript() -> bool:
        timeline = inbox_api(staff, "GET", f"/tickets/{ticket['id']}")["timeline"]
        return any(i["sender"] == "bot" and f"call {SETTINGS.emergency_number} now" in i["text"]
                   for i in timeline)

    deadline = time.monotonic() + 30
    while not guidance_in_transcript() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert guidance_in_transcript()
    inbox_api(staff, "POST", f"/tickets/{ticket['id']}/claim")  # the nurse (same demo agent) takes it
    [joined] = new_replies(stack, wa_id, seen, 1)
    seen += 1
    assert reply_text(joined) == "Demo from our nurse team has joined the chat and will reply to you here."

    # 6. Outside the 24-hour window free text is refused; an approved template goes out.
    with create_engine(stack.env["CLINIC_DATABASE_URL"], future=True).begin() as db:
        db.execute(text("UPDATE wa_contacts SET last_inbound_at = :old WHERE conversation_id = :c"),
                   {"old": dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=25), "c": conv})
    stack.sim(f"/_sim/users/{wa_id}/window", {"open": False})
    refused = inbox_api(staff, "POST", f"/tickets/{ticket['id']}/reply", text="Are you still there?")
    assert refused["delivery"] == "refused" and "pick a template" in refused["delivery_detail"]
    templates = {t["name"]: t for t in inbox_api(staff, "GET", "/templates")}
    assert templates["results_ready"]["params"] == ["First name"]
    sent = inbox_api(staff, "POST", f"/tickets/{ticket['id']}/template", name="results_ready", values=["Sam"])
    assert sent["delivery"] == "sent"
    [template] = new_replies(stack, wa_id, seen, 1)
    seen += 1
    assert reply_text(template) == "[template results_ready]"
    # The patient answers, which opens the window again.
    stack.say(wa_id, "thanks, got it")
    time.sleep(2)

    # 7. Resolve: back with the assistant, and a 1-5 rating question (a list of five).
    resolved = inbox_api(staff, "POST", f"/tickets/{ticket['id']}/resolve", reason="answered")
    assert resolved["ticket"]["state"] == "resolved" and resolved["warning"] is None
    back, question = new_replies(stack, wa_id, seen, 2)
    seen += 2
    assert "You're back with" in reply_text(back)
    rows_ = question["payload"]["interactive"]["action"]["sections"][0]["rows"]
    assert [r["title"] for r in rows_][0] == "5 - Excellent" and len(rows_) == 5

    # 8. The patient taps 5: stored, thanked.
    stack.sim(f"/_sim/users/{wa_id}/tap", {"message_id": question["wamid"], "id": rows_[0]["id"]})
    [thanks] = new_replies(stack, wa_id, seen, 1)
    seen += 1
    assert "Thank you for your feedback" in reply_text(thanks)
    assert [r["rating"] for r in rows(stack, "SELECT rating FROM handoff_ratings WHERE ticket_id = :t",
                                       t=ticket["id"])] == [5]

    # 9. The next message goes to the bot again.
    stack.say(wa_id, "where can I park?")
    [parking] = new_replies(stack, wa_id, seen, 1)
    assert "park" in reply_text(parking).lower()


def test_out_of_hours_offers_a_call_back(stack, staff):
    wa_id = patient()
    conv = conversation_of(stack, wa_id)
    stack.say(wa_id, "hello")
    seen = len(stack.wait_for_replies(wa_id, 2))
    stack.say(wa_id, "can I talk to a nurse")
    [answer] = new_replies(stack, wa_id, seen, 1)
    seen += 1
    body = reply_text(answer)
    assert "isn't available right now" in body and "will reply here from" in body
    buttons = answer["payload"]["interactive"]["action"]["buttons"]
    assert [b["reply"]["title"] for b in buttons] == ["Call me back", "I'll wait here"]
    assert ticket_for(staff, conv)["state"] == "waiting"  # still queued for when they're in

    stack.sim(f"/_sim/users/{wa_id}/tap", {"message_id": answer["wamid"], "id": buttons[0]["reply"]["id"]})
    [done] = new_replies(stack, wa_id, seen, 1)
    assert "call you back" in reply_text(done)
    tasks = [t for t in inbox_api(staff, "GET", "/tasks") if t["conversation_id"] == conv]
    assert len(tasks) == 1 and tasks[0]["team"] == "nurse" and tasks[0]["created_by"] == "bot"
