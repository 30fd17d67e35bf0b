"""End to end over real HTTP: the Rasa server and the action server run as separate processes
on this machine, with a real SQLite database, and a patient talks through the REST channel.
"""

from __future__ import annotations

import json
import urllib.request
import uuid

import pytest
from sqlalchemy import create_engine, text

from benchmarks.stack import Stack
from clinic.settings import load_settings

pytestmark = [pytest.mark.model, pytest.mark.servers]


@pytest.fixture(scope="module")
def servers(trained_model, tmp_path_factory):
    # Only the action server and Rasa: this test talks to Rasa's REST channel.
    stack = Stack(tmp_path_factory.mktemp("e2e"), trained_model)
    stack.start_actions()
    stack.start_rasa()
    yield {"url": stack.url("rasa"), "database": stack.database}
    stack.stop()


def say(servers, sender: str, message: str) -> list[dict]:
    body = json.dumps({"sender": sender, "message": message}).encode()
    request = urllib.request.Request(
        f"{servers['url']}/webhooks/rest/webhook", data=body,
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())


def texts(replies: list[dict]) -> str:
    return "\n".join(r.get("text", "") for r in replies)


def handoff_rows(servers) -> list[dict]:
    engine = create_engine(f"sqlite:///{servers['database']}", future=True)
    with engine.connect() as connection:
        return [dict(r._mapping) for r in connection.execute(text("SELECT * FROM handoff_requests"))]


SETTINGS = load_settings()


def new_patient() -> str:
    # A pseudonymous sender id, like the WhatsApp channel's: the staff inbox refuses
    # conversation ids that look like phone numbers (docs/inbox.md).
    return f"rest-{uuid.uuid4().hex[:16]}"


def test_greeting_gets_the_welcome_and_the_menu(servers):
    replies = say(servers, new_patient(), "hi")
    welcome, menu = replies[0]["text"], replies[-1]
    assert SETTINGS.clinic_name in welcome
    assert "medical advice" in welcome and SETTINGS.emergency_number in welcome
    assert [b["title"] for b in menu["buttons"]] == [
        "Book appointment", "Insurance & billing", "Talk to a nurse",
    ]


def test_first_message_of_any_kind_also_gets_the_welcome(servers):
    replies = say(servers, new_patient(), "what are your opening hours?")
    assert "not for emergencies" in replies[0]["text"]
    assert "Opening hours" in texts(replies[1:])  # the approved text follows


def test_red_flag_gets_guidance_and_an_urgent_handoff(servers):
    patient = new_patient()
    say(servers, patient, "hello")
    replies = say(servers, patient, "can I book for tomorrow? my chest has been hurting, crushing pain")
    answer = texts(replies)
    assert f"call {SETTINGS.emergency_number} now" in answer
    assert "flagged this chat as urgent" in answer
    urgent = [r for r in handoff_rows(servers) if r["priority"] == "urgent"]
    assert urgent and urgent[-1]["red_flag_category"] == "chest_pain"
    # Nothing that identifies the patient is stored in clear.
    assert all(patient not in str(row) and patient[1:] not in str(row) for row in handoff_rows(servers))


def test_suicidal_thoughts_get_the_crisis_wording(servers):
    patient = new_patient()
    say(servers, patient, "hi")
    answer = texts(say(servers, patient, "i want to end my life"))
    assert SETTINGS.crisis_line in answer and SETTINGS.emergency_number in answer


def test_nurse_button_records_a_handoff_and_says_what_happens_next(servers):
    patient = new_patient()
    say(servers, patient, "hi")
    before = len(handoff_rows(servers))
    answer = texts(say(servers, patient, '/request_human{"team": "nurse"}'))
    # Staffed hours or not (real clock), the patient hears who and that this is no emergency line.
    assert "talk to a nurse" in answer and "not for emergencies" in answer
    rows = handoff_rows(servers)
    assert len(rows) == before + 1 and rows[-1]["team"] == "nurse"


def test_clinical_question_is_refused_kindly(servers):
    patient = new_patient()
    say(servers, patient, "hi")
    replies = say(servers, patient, "my blood sugar was 180 this morning, is that bad?")
    assert "can't give medical advice" in texts(replies) or "not able to give medical advice" in texts(replies)
    assert any(b["title"] == "Talk to a nurse" for r in replies for b in r.get("buttons", []))


def test_two_misunderstandings_offer_a_human(servers):
    patient = new_patient()
    say(servers, patient, "hi")
    first = texts(say(servers, patient, "qwxz blorp vvv"))
    # Keyboard mashes only: "plov" (плов, pilaf, typed in Latin letters) is a word the model
    # now reads through its romanised features.
    second = say(servers, patient, "zzkq xvbt mmmx")
    assert "say it another way" in first
    assert any(b["title"] == "Talk to a person" for r in second for b in r.get("buttons", []))
