"""Access on request (issue 18, item 5) through the real stack: the simulator (standing in
for Meta), Rasa with the WhatsApp channel, the action server and the clinic API (the demo
portal) as separate processes over real HTTP, real SQLite files, the tracker encrypted.

A registered patient asks a clinic question, then "what data do you hold about me"; the
reply carries a portal link (never the data). The link asks for the date of birth, then
shows the conversation, decrypted from Rasa's tracker store, and offers it as a JSON file;
the link works once. No process logged what the patient wrote.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import re
import secrets
import sqlite3
import sys

import pytest
import requests

from benchmarks.stack import Stack, free_port, reply_text
from clinic.db import make_engine, make_session_factory
from clinic.privacy import contact_key
from clinic.scheduling.sql_backend import SqlSchedulingBackend

pytestmark = [pytest.mark.model, pytest.mark.servers]
WA_ID = "15550305518"  # synthetic
QUESTION = "Where can I park? I drive a tangerine campervan"
BIRTH_DATE = dt.date(1984, 7, 19)


@pytest.fixture(scope="module")
def stack(model, tmp_path_factory):
    running = Stack(tmp_path_factory.mktemp("access-e2e"), model)
    api_port = free_port()
    running.ports["clinic_api"] = api_port
    running.env["CLINIC_PORTAL_URL"] = f"http://127.0.0.1:{api_port}/portal"
    running.env["CLINIC_PORTAL_TOKEN_KEY"] = secrets.token_hex(32)
    running.env["CLINIC_DOCUMENT_KEY"] = base64.urlsafe_b64encode(os.urandom(32)).decode()
    # Where the portal reads the conversation from: the stack's tracker store.
    running.env["RASA_TRACKER_STORE_URL"] = f"sqlite:///{running.tracker_database}"
    running.start()
    running._start("clinic_api", [sys.executable, "-m", "clinic_api", "--port", str(api_port)])
    running.wait_for(f"http://127.0.0.1:{api_port}/api/health", "clinic_api")
    yield running
    running.stop()


def register(stack) -> None:
    sessions = make_session_factory(make_engine(stack.env["CLINIC_DATABASE_URL"]))
    conversation = contact_key(WA_ID, "whatsapp", stack.env["CLINIC_PSEUDONYM_KEY"].encode())
    key = contact_key(conversation, "whatsapp", stack.env["CLINIC_PSEUDONYM_KEY"].encode())
    SqlSchedulingBackend(sessions).register_patient(key, "Ines Example", BIRTH_DATE, conversation, "whatsapp")


def say(stack: Stack, text: str, seen: int, count: int) -> list:
    stack.say(WA_ID, text)
    return stack.wait_for_replies(WA_ID, seen + count, timeout=90)[seen:]


def test_a_patient_asks_for_their_data_and_the_link_opens_after_the_date_of_birth(stack):
    seen = len(say(stack, "hi", 0, 2))
    register(stack)
    [parking] = say(stack, QUESTION, seen, 1)
    seen += 1
    assert "park" in reply_text(parking).lower()

    [answer] = say(stack, "what data do you hold about me", seen, 1)
    assert "date of birth" in reply_text(answer) and "campervan" not in json.dumps(answer)
    portal = stack.env["CLINIC_PORTAL_URL"]
    [link] = set(re.findall(re.escape(portal) + r"/t/[A-Za-z0-9_-]+", json.dumps(answer)))

    page = requests.get(link, timeout=20)
    assert page.status_code == 200 and 'name="birth_date"' in page.text and "campervan" not in page.text
    wrong = requests.post(link, data={"birth_date": "1990-01-01"}, timeout=20)
    assert wrong.status_code == 200 and "campervan" not in wrong.text
    shown = requests.post(link, data={"birth_date": BIRTH_DATE.isoformat()}, timeout=30)
    assert shown.status_code == 200, stack.log("clinic_api")[-3000:]
    assert QUESTION in shown.text and "Ines Example" in shown.text
    assert requests.get(link, timeout=20).status_code == 410  # used

    token = re.search(r'name="token" value="([^"]+)"', shown.text).group(1)
    download = requests.post(f"{portal}/access/download", data={"token": token}, timeout=30)
    assert download.status_code == 200 and download.headers["content-type"] == "application/json"
    assert download.headers["content-disposition"].startswith("attachment;")
    data = download.json()
    said = [m["text"] for m in data["conversation"] if m["from"] == "patient"]
    assert said[:3] == ["hi", QUESTION, "what data do you hold about me"]
    assert any("park" in m["text"].lower() for m in data["conversation"] if m["from"] == "bot")
    assert data["patient"]["birth_date"] == BIRTH_DATE.isoformat()

    # Audited, counts only; nobody logged the patient's words or number.
    with sqlite3.connect(stack.database) as db:
        details = [row[0] for row in db.execute(
            "SELECT detail FROM inbox_audit WHERE action = 'privacy_access' ORDER BY id")]
    assert [d.split(" ")[0] for d in details] == ["viewed", "downloaded"]
    assert not any("campervan" in d for d in details)
    logs = [path for path in stack.workdir.glob("*.log") if not path.name.startswith("simulator.")]
    hits = [(path.name, needle) for path in logs for needle in ("tangerine campervan", WA_ID, "Ines Example")
            if needle in path.read_text(errors="replace")]
    assert hits == [], hits
