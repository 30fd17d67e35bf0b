"""Answers from the clinic's documents end to end (issue 17): the WhatsApp simulator, Rasa with
the WhatsApp channel, the action server and the staff inbox as separate processes on real
HTTP, one real SQLite clinic database.

An administrator uploads the patient guide (a PDF) and the visiting policy (Markdown, English
and Russian) through the inbox's Documents page and approves them; patients ask on WhatsApp
questions no curated FAQ answers (out of scope, or not understood at all) and get the approved
passage with its source (the PDF's page), in their language, and the offer of a person.
The administrator retires the documents; the same questions get the honest "I don't know"
reply with the offer of a person, at once (no restart, no retraining).
"""

from __future__ import annotations

import re

import pytest
from sqlalchemy import create_engine, text

from benchmarks.stack import Stack, reply_text
from clinic.knowledge.demo import DIRECTORY
from tests.inbox_support import csrf_from, demo_staff_login

pytestmark = [pytest.mark.model, pytest.mark.servers]
_numbers = iter(range(1000, 10000))

DOG_EN = "Animals are not allowed inside the clinic. Assistance dogs, such as guide dogs, are welcome everywhere in the clinic."
DOG_RU = ("Животных в клинику приводить нельзя. Собак-помощников, например собак-поводырей, мы рады видеть во всех "
          "помещениях клиники.")
QUESTION_EN = "can I bring my dog?"
QUESTION_RU = "можно взять с собой собаку?"
WIFI_EN = "Free Wi-Fi is available in the waiting room. The password is shown on the screen above reception."
QUESTION_WIFI = "is there wifi in the waiting room?"
LOST_EN = ("Lost property is kept at reception for 30 days. After that it is handed to the city lost and found "
           "office.")
QUESTION_LOST = "I lost my umbrella at the clinic"  # "umbrella" meets "lost property" by the synonym list
OFFER_EN = "If this doesn't answer your question, our reception team can help."


def patient() -> str:
    return f"1555030{next(_numbers):04d}"  # synthetic


@pytest.fixture(scope="module")
def stack(model, tmp_path_factory):
    running = Stack(tmp_path_factory.mktemp("knowledge-e2e"), model)
    running.env["CLINIC_RECEPTION_HOURS"] = "mon-sun 00:00-23:59"
    running.start()
    running.start_inbox()
    yield running
    running.stop()


@pytest.fixture(scope="module")
def admin(stack):
    """demo-admin logged in through the pages: password, then a TOTP code from the key the
    inbox printed at start-up."""
    return demo_staff_login(stack, "demo-admin", "admin")


def _document_id(admin, title: str) -> int:
    page = admin.get(f"{admin.base}/inbox/knowledge").text
    row = re.search(r'<tr id="document-(\d+)"><td>' + re.escape(title), page)
    assert row, page[:1000]
    return int(row.group(1))


def retire(admin, document_id: int) -> None:
    page = admin.get(f"{admin.base}/inbox/knowledge")
    response = admin.post(f"{admin.base}/inbox/knowledge/documents/{document_id}/retire",
                          data={"csrf_token": csrf_from(page.text)})
    assert "the assistant no longer answers from it" in response.text


def buttons(message: dict) -> list:
    interactive = (message.get("payload") or {}).get("interactive") or {}
    return [b["reply"]["title"] for b in (interactive.get("action") or {}).get("buttons") or []]


def ask(stack: Stack, wa_id: str, question: str) -> dict:
    """The patient's question and the one reply it gets."""
    before = len(stack.wait_for_replies(wa_id, 0))
    stack.say(wa_id, question)
    replies = stack.wait_for_replies(wa_id, before + 1)
    return replies[before]


def test_an_approved_document_answers_in_the_patients_language_until_it_is_retired(stack, admin):
    english = upload_and_approve(admin, "visiting-policy.en.md", "Visiting policy")
    russian = upload_and_approve(admin, "visiting-policy.ru.md", "Правила посещения")
    guide = upload_and_approve(admin, "patient-guide.en.pdf", "Patient guide 2026")
    en_patient, ru_patient = patient(), patient()
    stack.say(en_patient, "hi")
    stack.wait_for_replies(en_patient, 2)
    stack.say(ru_patient, "Здравствуйте")
    stack.wait_for_replies(ru_patient, 2)

    # 1. Answered from the approved passage, with its source and the offer of a person.
    answer = ask(stack, en_patient, QUESTION_EN)
    assert reply_text(answer) == (f"{DOG_EN}\n\n_From: Visiting policy, Bringing things_\n\n"
                                  "If this doesn't answer your question, our reception team can help.")
    assert buttons(answer) == ["Talk to reception", "Main menu"]
    answer = ask(stack, ru_patient, QUESTION_RU)
    assert reply_text(answer) == (f"{DOG_RU}\n\n_Источник: Правила посещения, Что можно приносить_\n\n"
                                  "Если это не ответ на ваш вопрос, вам поможет наша регистратура.")
    assert buttons(answer) == ["Регистратура", "Главное меню"]
    # From the PDF, with its page.
    answer = ask(stack, en_patient, QUESTION_WIFI)
    assert reply_text(answer) == f"{WIFI_EN}\n\n_From: Patient guide 2026, page 3_\n\n{OFFER_EN}"
    assert buttons(answer) == ["Talk to reception", "Main menu"]
    answer = ask(stack, en_patient, QUESTION_LOST)
    assert reply_text(answer) == f"{LOST_EN}\n\n_From: Patient guide 2026, page 3_\n\n{OFFER_EN}"
    # The patient takes the offer: a person is asked for right after this answer.
    before = len(stack.wait_for_replies(en_patient, 0))
    reception = answer["payload"]["interactive"]["action"]["buttons"][0]["reply"]["id"]
    stack.sim(f"/_sim/users/{en_patient}/tap", {"message_id": answer["wamid"], "id": reception})
    queued, may_we_call = stack.wait_for_replies(en_patient, before + 2)[before:before + 2]
    assert "reception team" in reply_text(queued)  # then "may the clinic call you?" (staffed hours)
    assert may_we_call["payload"]["interactive"]["type"] == "call_permission_request"

    # 2. Retired in the inbox: the same questions get the honest reply and the offer of a person.
    retire(admin, english)
    retire(admin, russian)
    retire(admin, guide)
    refusal = ask(stack, en_patient, QUESTION_EN)
    assert reply_text(refusal).startswith("Sorry, that's not something I can help with, and I don't want to guess.")
    assert "Would you like to talk to a person?" in reply_text(refusal)
    assert DOG_EN not in reply_text(refusal)
    assert buttons(refusal) == ["Talk to a person", "Main menu"]
    refusal = ask(stack, ru_patient, QUESTION_RU)
    assert reply_text(refusal).startswith("Извините, с этим я помочь не могу, а гадать не хочу.")
    assert "Хотите поговорить с сотрудником?" in reply_text(refusal)
    assert buttons(refusal) == ["Позвать сотрудника", "Главное меню"]
    refusal = ask(stack, en_patient, QUESTION_WIFI)
    assert WIFI_EN not in reply_text(refusal) and buttons(refusal) == ["Talk to a person", "Main menu"]

    # 3. The analytics counted it, per language; no question text is kept.
    engine = create_engine(stack.env["CLINIC_DATABASE_URL"], future=True)
    with engine.connect() as connection:
        outcomes = [tuple(r) for r in connection.execute(text(
            "SELECT language, outcome, handed_over FROM knowledge_outcomes ORDER BY id"))]
    engine.dispose()
    assert outcomes == [("en", "answered", 0), ("ru", "answered", 0), ("en", "answered", 0), ("en", "answered", 1),
                        ("en", "not_found", 0), ("ru", "not_found", 0), ("en", "not_found", 0)]
    # Nothing of the questions in the processes' logs.
    for name in ("actions", "rasa", "inbox"):
        log = stack.log(name)
        assert "dog" not in log and "собак" not in log and "umbrella" not in log, name


def upload_and_approve(admin, file: str, title: str) -> int:
    """The Documents page's upload form, then the version page's approve form; the document's id."""
    page = admin.get(f"{admin.base}/inbox/knowledge")
    response = admin.post(f"{admin.base}/inbox/knowledge",
                          data={"csrf_token": csrf_from(page.text), "title": title, "topic": "visiting"},
                          files={"file": (file, (DIRECTORY / file).read_bytes(),
                                          "application/pdf" if file.endswith(".pdf") else "text/markdown")})
    version = re.search(r"/inbox/knowledge/versions/(\d+)", response.url)
    assert response.status_code == 200 and version, response.text[:500]
    response = admin.post(f"{admin.base}/inbox/knowledge/versions/{version.group(1)}/approve",
                          data={"csrf_token": csrf_from(response.text), "note": "checked"})
    assert "approved: the assistant answers from it now" in response.text
    return _document_id(admin, title)
