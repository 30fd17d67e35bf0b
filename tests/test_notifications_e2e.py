"""Notifications end to end: the clinic API, the reminder scheduler, Rasa with the WhatsApp
channel, the action server and the simulator as separate processes over real HTTP, on real
SQLite. Each notification type reaches the patient as its template (even with the 24-hour
window closed), with no clinical content; a results link opens the demo portal once; a
retried call sends nothing twice; the PHI guard refuses a staff-like message at the sender.
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from benchmarks.stack import Stack, free_port
from clinic.at_rest import clinic_sealer
from clinic.db import make_engine, make_session_factory
from clinic.phi_guard import check
from clinic.privacy import contact_key
from clinic.scheduling.sql_backend import SqlSchedulingBackend

pytestmark = [pytest.mark.model, pytest.mark.servers]


def quiet_hours_away_from_now() -> str:
    from clinic.settings import load_settings

    now = dt.datetime.now(load_settings().timezone)
    start, end = now + dt.timedelta(hours=6), now + dt.timedelta(hours=7)
    return f"{start:%H:%M}-{end:%H:%M}"


@pytest.fixture(scope="module")
def stack(model, tmp_path_factory):
    running = Stack(tmp_path_factory.mktemp("notifications-e2e"), model)
    api_port = free_port()
    running.ports["clinic_api"] = api_port
    running.env["CLINIC_QUIET_HOURS"] = quiet_hours_away_from_now()
    running.env["CLINIC_PORTAL_URL"] = f"http://127.0.0.1:{api_port}/portal"
    running.env["CLINIC_PORTAL_TOKEN_KEY"] = secrets.token_hex(32)
    running.start()
    running._start("clinic_api", [sys.executable, "-m", "clinic_api", "--port", str(api_port)])
    running.wait_for(f"http://127.0.0.1:{api_port}/api/health", "clinic_api")
    running.start_scheduler(poll_seconds=0.3)
    created = subprocess.run(
        [sys.executable, "-m", "clinic_api.keys", "create", "lab", "notifications:write"],
        env=running.env, capture_output=True, text=True, timeout=60, cwd=Path(__file__).resolve().parent.parent)
    assert created.returncode == 0, created.stderr
    running.api_key = created.stdout.strip()
    running.api_url = f"http://127.0.0.1:{api_port}"
    yield running
    running.stop()


def patient_for(stack, wa_id: str, name: str = "Sam Example"):
    sessions = make_session_factory(make_engine(stack.env["CLINIC_DATABASE_URL"]))
    conversation = contact_key(wa_id, "whatsapp", stack.env["CLINIC_PSEUDONYM_KEY"].encode())
    key = contact_key(conversation, "whatsapp", stack.env["CLINIC_PSEUDONYM_KEY"].encode())
    return SqlSchedulingBackend(sessions).register_patient(key, name, dt.date(1990, 5, 1), conversation, "whatsapp")


def close_window(stack, wa_id: str) -> None:
    stack.sim(f"/_sim/users/{wa_id}/window", {"close": True})
    conversation = contact_key(wa_id, "whatsapp", stack.env["CLINIC_PSEUDONYM_KEY"].encode())
    with sqlite3.connect(stack.database) as db:
        db.execute("UPDATE wa_contacts SET last_inbound_at = ? WHERE conversation_id = ?",
                   ((dt.datetime.utcnow() - dt.timedelta(days=2)).isoformat(" "), conversation))


def notify(stack, body):
    return requests.post(stack.api_url + "/api/v1/notifications", json=body, timeout=10,
                         headers={"Authorization": f"Bearer {stack.api_key}"})


def templates(stack, wa_id):
    return [m for m in stack.replies(wa_id) if not m.get("error") and (m.get("payload") or {}).get("type") == "template"]


def wait_for_templates(stack, wa_id, count, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = templates(stack, wa_id)
        if len(found) >= count:
            return found
        time.sleep(0.2)
    raise AssertionError(f"{stack.replies(wa_id)}\n{stack.log('scheduler')[-2000:]}\n{stack.log('actions')[-3000:]}")


def body_params(template):
    return [p["text"] for c in template["payload"]["template"].get("components", []) if c["type"] == "body"
            for p in c["parameters"]]


CASES = [
    ("results_ready", {"document_id": "lab-e2e-1"}, "results_ready", ["Sam"]),
    ("document_ready", {"document_kind": "sick_note", "delivery": "portal", "document_id": "doc-e2e-1"},
     "document_ready", ["Sam", "sick note"]),
    ("document_ready", {"document_kind": "prescription", "delivery": "collect"}, "document_ready_collect", None),
    ("billing_update", {"item": "invoice", "status": "paid", "reference": "INV-7"}, "billing_update",
     ["Sam", "invoice INV-7", "has been paid, thank you"]),
    ("queue_called", {"ticket": "A042", "room": "Room 4"}, "queue_called", ["Sam", "A042", "Room 4"]),
    ("queue_position", {"ticket": "A042", "position": 2, "estimated_minutes": 10}, "queue_position",
     ["Sam", "A042", "2", "10"]),
    ("followup", {"visit_date": "2026-03-02"}, "visit_followup", None),
]


def test_every_notification_type_reaches_the_patient_as_its_template(stack):
    wa_id = "15550108001"  # synthetic
    stack.say(wa_id, "hi")
    stack.wait_for_replies(wa_id, 2)
    patient = patient_for(stack, wa_id)
    close_window(stack, wa_id)  # templates only from here on
    for index, (type_, params, template_name, expected_params) in enumerate(CASES, start=1):
        body = {"event_id": f"e2e-{type_}-{index}", "type": type_, "patient_id": patient.id, "params": params}
        assert notify(stack, body).status_code == 200
        sent = wait_for_templates(stack, wa_id, index)[-1]
        assert sent["payload"]["template"]["name"] == template_name
        if expected_params:
            assert body_params(sent) == expected_params
        for value in body_params(sent):
            assert check(value, strict=True) == [], value  # no clinical content
        status = requests.get(f"{stack.api_url}/api/v1/notifications/{body['event_id']}", timeout=10,
                              headers={"Authorization": f"Bearer {stack.api_key}"}).json()
        deadline = time.monotonic() + 10
        while status["status"] != "sent" and time.monotonic() < deadline:
            time.sleep(0.2)
            status = requests.get(f"{stack.api_url}/api/v1/notifications/{body['event_id']}", timeout=10,
                                  headers={"Authorization": f"Bearer {stack.api_key}"}).json()
        assert status["status"] == "sent"
    # The results template carries a URL button: the portal link with a single-use token.
    results = templates(stack, wa_id)[0]
    [url_button] = [c for c in results["payload"]["template"]["components"] if c.get("sub_type") == "url"]
    token = url_button["parameters"][0]["text"]
    link = f"{stack.env['CLINIC_PORTAL_URL']}/t/{token}"
    assert "lab-e2e-1" not in link and patient.id not in link
    page = requests.get(link, timeout=10)
    assert page.status_code == 200 and "date of birth" in page.text
    shown = requests.post(link, data={"birth_date": "1990-05-01"}, timeout=10)
    assert "Laboratory results" in shown.text
    assert requests.get(link, timeout=10).status_code == 410

    # A retried call (same event id, same body) sends nothing again.
    before = len(templates(stack, wa_id))
    retry = notify(stack, {"event_id": "e2e-queue_called-5", "type": "queue_called", "patient_id": patient.id,
                           "params": {"ticket": "A042", "room": "Room 4"}})
    assert retry.status_code == 200 and retry.headers["Idempotent-Replayed"] == "true"
    time.sleep(2)
    assert len(templates(stack, wa_id)) == before


def test_patient_asks_and_gets_a_portal_link_never_the_content(stack):
    wa_id = "15550108002"
    stack.say(wa_id, "hello")
    stack.wait_for_replies(wa_id, 2)
    patient = patient_for(stack, wa_id, "Kim Example")
    body = {"event_id": "e2e-ask-1", "type": "results_ready", "patient_id": patient.id,
            "params": {"document_id": "lab-e2e-2"}}
    assert notify(stack, body).status_code == 200
    wait_for_templates(stack, wa_id, 1)
    count = len(stack.replies(wa_id))
    stack.say(wa_id, "are my blood test results ready?")
    replies = stack.wait_for_replies(wa_id, count + 1)
    answer = replies[-1]["payload"]
    assert answer["type"] == "interactive" and answer["interactive"]["type"] == "cta_url"
    url = answer["interactive"]["action"]["parameters"]["url"]
    assert url.startswith(stack.env["CLINIC_PORTAL_URL"] + "/t/")
    assert "never shown in WhatsApp" in answer["interactive"]["body"]["text"]
    assert requests.get(url, timeout=10).status_code == 200


def test_the_sender_refuses_health_information(stack):
    """The door every outbound message passes: a message with a lab value is not sent, and
    what stays in wa_outbound is the rule, not the text."""
    import asyncio

    from clinic.messaging.store import WhatsAppStore
    from clinic.privacy import ContactCipher
    from gateway.sender import Sender
    from whatsapp.metrics import Metrics
    from whatsapp.outbound import Text

    sessions = make_session_factory(make_engine(stack.env["CLINIC_DATABASE_URL"]))
    store = WhatsAppStore(sessions)
    metrics = Metrics()
    sender = Sender(client=None, store=store, cipher=ContactCipher(stack.env["CLINIC_ENCRYPTION_KEY"].encode()),
                    metrics=metrics)
    outcome = asyncio.run(sender.send("conv-x", Text("Your HbA1c is 7.2%, take metformin 500 mg"), "text"))
    assert (outcome.state, outcome.detail) == ("refused", "blocked_phi")
    with sqlite3.connect(stack.database) as db:
        payload, error, state = db.execute("SELECT payload_json, error_detail, state FROM wa_outbound ORDER BY id DESC LIMIT 1").fetchone()
    assert payload.startswith("enc:v1:")  # sealed at rest (clinic/at_rest.py); opened to read it
    payload = clinic_sealer().open(payload)
    assert "7.2" not in payload and "metformin" not in payload and json.loads(payload)["withheld"] == "blocked_phi"
    assert error.startswith("blocked_phi") and state == "refused"
