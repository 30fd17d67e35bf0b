"""The notification API and the portal verification API over real HTTP (uvicorn in a
thread, real SQLite): typed parameters, PHI guard (422), idempotency (200 replay, 409
conflict, concurrent retries), planned jobs, status, token verification."""

from __future__ import annotations

import datetime as dt
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
import uvicorn
from sqlalchemy import func, select

from clinic.api_keys import ApiKeys
from clinic.db import create_schema, make_engine, make_session_factory
from clinic.notifications.tables import NotificationRow
from clinic.portal.tokens import PortalTokens
from clinic.records.store import RecordStore
from clinic.reminders.store import ReminderStore
from clinic.reminders.tables import ReminderJobRow
from clinic.scheduling.sql_backend import SqlSchedulingBackend
from clinic.settings import load_settings
from clinic_api.app import create_app
from tests.test_clinic_api import _free_port

KEY = b"p" * 32


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    path = tmp_path_factory.mktemp("notify-api") / "clinic.db"
    engine = make_engine(f"sqlite:///{path}")
    create_schema(engine)
    sessions = make_session_factory(engine)
    backend = SqlSchedulingBackend(sessions)
    keys = ApiKeys(sessions)
    portal = PortalTokens(sessions, KEY)
    app = create_app(backend, keys, sessions, settings=load_settings(), portal_tokens=portal)
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                           access_log=False, ws="none"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        threading.Event().wait(0.05)
    api = type("Api", (), {})()
    api.url, api.sessions, api.backend, api.portal = f"http://127.0.0.1:{port}", sessions, backend, portal
    api.write = keys.create("lab-system", ["notifications:write"])
    api.verify = keys.create("portal", ["portal:verify"])
    api.patient = backend.register_patient("contact-n1", "Sam Example", dt.date(1990, 5, 1), "conv-n1", "whatsapp")
    yield api
    server.should_exit = True
    thread.join(timeout=5)


_events = iter(range(100_000))


def post(api, body, key=None):
    return requests.post(api.url + "/api/v1/notifications", json=body, timeout=10,
                         headers={"Authorization": f"Bearer {key or api.write}"})


def event(api, type_, params, patient_id=None):
    return {"event_id": f"evt-{next(_events)}", "type": type_, "patient_id": patient_id or api.patient.id,
            "params": params}


def jobs_for(api, patient_id):
    with api.sessions() as session:
        return list(session.scalars(select(ReminderJobRow).where(ReminderJobRow.patient_id == patient_id)))


VALID = [
    ("results_ready", {"document_id": "lab-100"}),
    ("document_ready", {"document_kind": "sick_note", "delivery": "portal", "document_id": "doc-7"}),
    ("document_ready", {"document_kind": "prescription", "delivery": "collect"}),
    ("billing_update", {"item": "invoice", "status": "paid", "reference": "INV-2026-0042"}),
    ("billing_update", {"item": "insurance_claim", "status": "rejected", "due_date": "2026-04-01"}),
    ("queue_called", {"ticket": "A042", "room": "Room 4"}),
    ("queue_position", {"ticket": "A042", "position": 3, "estimated_minutes": 15}),
    ("followup", {"visit_date": "2026-03-02"}),
]


@pytest.mark.parametrize("type_,params", VALID)
def test_each_type_is_accepted_and_planned_as_a_job(api, type_, params):
    body = event(api, type_, params)
    response = post(api, body)
    assert response.status_code == 200, response.text
    out = response.json()
    assert (out["event_id"], out["type"], out["status"], out["sent_at"]) == (body["event_id"], type_, "queued", None)
    assert "Idempotent-Replayed" not in response.headers
    with api.sessions() as session:
        row = session.get(NotificationRow, body["event_id"])
        job = session.get(ReminderJobRow, row.job_id)
    assert job.kind == f"notify_{type_}" and job.status == "pending"
    assert (job.conversation_id, job.channel, job.patient_id) == ("conv-n1", "whatsapp", api.patient.id)
    status = requests.get(f"{api.url}/api/v1/notifications/{body['event_id']}", timeout=10,
                          headers={"Authorization": f"Bearer {api.write}"})
    assert status.status_code == 200 and status.json()["status"] == "queued"


def test_a_survey_request_plans_one_survey_for_the_survey_sender(api):
    from clinic.consent import ConsentStore
    from clinic.surveys import tables as st
    from clinic.surveys.sender import survey_template
    from clinic.surveys.store import SurveyStore

    body = event(api, "survey_request", {})
    first, again = post(api, body), post(api, body)
    assert first.status_code == again.status_code == 200, first.text
    assert first.json()["status"] == "queued" and again.headers["Idempotent-Replayed"] == "true"
    with api.sessions() as session:
        surveys = list(session.scalars(select(st.SurveyRow).where(st.SurveyRow.subject_id == body["event_id"])))
    assert [(s.kind, s.conversation_id, s.status) for s in surveys] == [("request", "conv-n1", "pending")]
    assert ConsentStore(api.sessions).reminders_allowed(api.patient.contact_key)
    # The survey sender's claim picks it up and it goes out as the 1-5 service survey.
    store = SurveyStore(api.sessions)
    claimed = [s for s in store.claim("test-worker", 100) if s.subject_id == body["event_id"]]
    assert len(claimed) == 1
    template = survey_template(claimed[0], "Riverside Family Clinic", None)
    assert template.name == "service_survey" and len(template.quick_reply_payloads) == 5
    assert store.finish(claimed[0].id, st.SENT, "wamid.survey.1")
    status = requests.get(f"{api.url}/api/v1/notifications/{body['event_id']}", timeout=10,
                          headers={"Authorization": f"Bearer {api.write}"})
    assert status.json()["status"] == "sent"
    # For a patient the assistant doesn't know, nothing is planned and the status says why.
    unknown = post(api, event(api, "survey_request", {}, patient_id="pat_unknown"))
    assert (unknown.json()["status"], unknown.json()["reason"]) == ("skipped", "patient_not_reachable")


def test_a_retry_sends_nothing_twice_and_a_changed_body_is_a_conflict(api):
    body = event(api, "results_ready", {"document_id": "lab-200"})
    first = post(api, body)
    again = post(api, body)
    assert first.status_code == again.status_code == 200
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    changed = dict(body, params={"document_id": "lab-201"})
    conflict = post(api, changed)
    assert conflict.status_code == 409 and "different request" in conflict.json()["detail"]
    other_patient = dict(body, patient_id="pat_someone_else")
    assert post(api, other_patient).status_code == 409
    with api.sessions() as session:
        assert session.scalar(select(func.count()).select_from(NotificationRow)
                              .where(NotificationRow.event_id == body["event_id"])) == 1
        job_id = session.get(NotificationRow, body["event_id"]).job_id
    assert [j.id for j in jobs_for(api, api.patient.id) if j.id == job_id] == [job_id]


def test_concurrent_retries_plan_one_job(api):
    body = event(api, "queue_called", {"ticket": "B7", "room": "Room 2"})
    before = len(jobs_for(api, api.patient.id))
    with ThreadPoolExecutor(8) as pool:
        responses = list(pool.map(lambda _: post(api, body), range(8)))
    assert [r.status_code for r in responses] == [200] * 8
    assert sum(r.headers.get("Idempotent-Replayed") == "true" for r in responses) == 7
    assert len(jobs_for(api, api.patient.id)) == before + 1


@pytest.mark.parametrize("type_,params,where", [
    ("queue_called", {"ticket": "A042", "room": "HIV clinic"}, "room"),
    ("queue_called", {"ticket": "A042", "room": "Diabetes 2"}, "room"),
    ("results_ready", {"document_id": "E11.9"}, "document_id"),
])
def test_health_information_in_parameters_is_refused_with_the_rules(api, type_, params, where):
    body = event(api, type_, params)
    response = post(api, body)
    assert response.status_code == 422, response.text
    findings = response.json()["findings"]
    assert findings and all(f["where"] == where and f["rule"] and f["hint"] for f in findings)
    with api.sessions() as session:
        assert session.get(NotificationRow, body["event_id"]) is None  # nothing stored, nothing planned


@pytest.mark.parametrize("type_,params", [
    ("results_ready", {"document_id": "lab-1", "note": "HbA1c 7.2%"}),  # no free text allowed
    ("results_ready", {}),
    ("document_ready", {"document_kind": "sick_note", "delivery": "portal"}),  # portal needs a document
    ("document_ready", {"document_kind": "diagnosis_letter", "delivery": "collect"}),
    ("billing_update", {"item": "invoice", "status": "lost"}),
    ("queue_called", {"ticket": "A042\n", "room": "Room 4"}),
    ("queue_position", {"ticket": "A1", "position": -1}),
    ("followup", {"visit_date": "yesterday"}),
    ("survey_request", {"survey_id": "srv_1"}),
    ("teleport", {}),
])
def test_malformed_requests_are_422_and_store_nothing(api, type_, params):
    body = event(api, type_, params)
    response = post(api, body)
    assert response.status_code == 422, (type_, response.status_code, response.text)
    with api.sessions() as session:
        assert session.get(NotificationRow, body["event_id"]) is None
    assert post(api, dict(body, event_id="bad id with spaces")).status_code == 422


def test_a_patient_the_assistant_does_not_know_is_recorded_as_skipped(api):
    body = event(api, "results_ready", {"document_id": "lab-300"}, patient_id="pat_unknown")
    response = post(api, body)
    assert response.status_code == 200
    assert (response.json()["status"], response.json()["reason"]) == ("skipped", "patient_not_reachable")


def test_record_states_follow_the_notifications(api):
    patient = api.backend.register_patient("contact-n2", "Kim Example", dt.date(1985, 2, 3), "conv-n2", "whatsapp")
    assert post(api, event(api, "results_ready", {"document_id": "lab-400"}, patient.id)).status_code == 200
    assert post(api, event(api, "queue_position", {"ticket": "C3", "position": 2}, patient.id)).status_code == 200
    assert post(api, event(api, "queue_called", {"ticket": "C3", "room": "Room 1"}, patient.id)).status_code == 200
    records = {r.kind: r for r in RecordStore(api.sessions).records(patient.id)}
    assert (records["result"].status, records["result"].document_id) == ("ready", "lab-400")
    assert (records["queue"].status, records["queue"].reference, records["queue"].room) == ("called", "C3", "Room 1")
    assert len(RecordStore(api.sessions).records(patient.id, "queue")) == 1  # one place in today's queue


def test_unknown_event_is_404(api):
    response = requests.get(f"{api.url}/api/v1/notifications/evt-none", timeout=10,
                            headers={"Authorization": f"Bearer {api.write}"})
    assert response.status_code == 404


def verify(api, **body):
    return requests.post(api.url + "/api/v1/portal/tokens/verify", json=body, timeout=10,
                         headers={"Authorization": f"Bearer {api.verify}"})


def test_a_real_portal_verifies_and_uses_up_tokens(api):
    issued = api.portal.issue(api.patient.id, "lab-500", "results")
    peek = verify(api, token=issued.token)
    assert peek.status_code == 200
    assert {k: peek.json()[k] for k in ("valid", "patient_id", "document_id", "purpose")} == {
        "valid": True, "patient_id": api.patient.id, "document_id": "lab-500", "purpose": "results"}
    assert verify(api, token=issued.token, patient_id="pat_other").json() == {
        "valid": False, "reason": "wrong_patient", "patient_id": None, "document_id": None, "purpose": None,
        "expires_at": None}
    assert verify(api, token=issued.token, patient_id=api.patient.id, consume=True).json()["valid"] is True
    assert verify(api, token=issued.token).json()["reason"] == "used"
    assert verify(api, token="not-a-token").json()["reason"] == "forged"
    log = api.portal.access_log(10)
    assert any(entry["via"] == "api:portal" and entry["outcome"] == "redeemed" for entry in log)
    assert all(issued.token not in str(entry) for entry in log)
    # The write key can't verify, the verify key can't notify.
    assert requests.post(api.url + "/api/v1/portal/tokens/verify", json={"token": "x"}, timeout=10,
                         headers={"Authorization": f"Bearer {api.write}"}).status_code == 403
    assert post(api, event(api, "results_ready", {"document_id": "x1"}), key=api.verify).status_code == 403


def test_demo_portal_pages_refuse_bad_links_clearly(api):
    forged = requests.get(api.url + "/portal/t/not-a-real-token", timeout=10)
    assert forged.status_code == 404 and "This link is not valid" in forged.text
    assert forged.headers["Referrer-Policy"] == "no-referrer" and forged.headers["Cache-Control"] == "no-store"
    issued = api.portal.issue(api.patient.id, "doc-9", "document")
    page = requests.get(f"{api.url}/portal/t/{issued.token}", timeout=10)
    assert page.status_code == 200 and "date of birth" in page.text
    wrong = requests.post(f"{api.url}/portal/t/{issued.token}", data={"birth_date": "1991-01-01"}, timeout=10)
    assert "match our records" in wrong.text and "Synthetic" not in wrong.text
    shown = requests.post(f"{api.url}/portal/t/{issued.token}", data={"birth_date": "1990-05-01"}, timeout=10)
    assert shown.status_code == 200 and "Synthetic demo document" in shown.text and "Sam Example" in shown.text
    reused = requests.get(f"{api.url}/portal/t/{issued.token}", timeout=10)
    assert reused.status_code == 410 and "already been used" in reused.text
    # Not part of the API description.
    assert not any(p.startswith("/portal") for p in requests.get(api.url + "/api/openapi.json", timeout=10).json()["paths"])
    assert ReminderStore(api.sessions).counts()  # the API's jobs are ordinary reminder jobs
