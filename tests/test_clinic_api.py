"""The clinic API over real HTTP (uvicorn in a thread, real SQLite): keys and scopes,
outcomes with checked transitions and history, the no-show / confirmation report."""

from __future__ import annotations

import datetime as dt
import socket
import threading
import time
from zoneinfo import ZoneInfo

import pytest
import requests
import uvicorn

from clinic.api_keys import SCOPES, ApiKeys, UnknownScope
from clinic.container import build_scheduling
from clinic.db import create_schema, make_engine, make_session_factory
from clinic.reminders.store import ReminderStore
from clinic.reports.appointments import appointment_report
from clinic.scheduling.demo_data import install_demo_clinic
from clinic.scheduling.model import AppointmentStatus, SlotQuery
from clinic.scheduling.sql_backend import SqlSchedulingBackend
from clinic.settings import load_settings
from clinic_api.app import create_app

TZ = ZoneInfo("Europe/Berlin")
NOW = dt.datetime(2026, 3, 2, 7, 0, tzinfo=dt.timezone.utc)  # a Monday


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    path = tmp_path_factory.mktemp("api") / "clinic.db"
    engine = make_engine(f"sqlite:///{path}")
    create_schema(engine)
    sessions = make_session_factory(engine)
    install_demo_clinic(sessions, timezone=TZ, weeks=2, now=NOW)
    backend = SqlSchedulingBackend(sessions, clock=lambda: NOW)
    keys = ApiKeys(sessions)
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(backend, keys, sessions), host="127.0.0.1",
                                           port=port, log_level="warning", access_log=False, ws="none"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for _ in range(100):
        if server.started:
            break
        time.sleep(0.05)
    api = type("Api", (), {})()
    api.url = f"http://127.0.0.1:{port}"
    api.backend, api.keys, api.sessions = backend, keys, sessions
    api.key = {scope: keys.create(f"sys-{scope}", [scope]) for scope in SCOPES}
    api.all = keys.create("ehr", list(SCOPES))
    yield api
    server.should_exit = True
    thread.join(timeout=5)


_patients = iter(range(10_000))


def book(api, service="gp_consultation", days_ahead=0):
    n = next(_patients)
    patient = api.backend.register_patient(f"contact-{n}", f"Test Patient {n}", dt.date(1980, 1, 1),
                                           conversation_id=f"conv-{n}", channel="rest")
    earliest = NOW + dt.timedelta(days=days_ahead)
    query = SlotQuery(service_id=service, earliest=earliest, latest=earliest + dt.timedelta(days=7), limit=50)
    for slot in api.backend.search_slots(query):
        return api.backend.book(slot.id, patient.id, service)
    raise AssertionError("no free slot in the demo clinic")


def call(api, method, path, key=None, headers=None, **kwargs):
    headers = {**(headers or {}), **({"Authorization": f"Bearer {key}"} if key else {})}
    return requests.request(method, api.url + path, headers=headers, timeout=10, **kwargs)


ENDPOINTS = [
    ("GET", "/api/v1/appointments/{id}", "appointments:read", None),
    ("POST", "/api/v1/appointments/{id}/status", "appointments:write", {"status": "arrived"}),
    ("GET", "/api/v1/reports/appointments", "reports:read", None),
    # Notifications and portal links (tests/test_notifications_api.py has the behaviour).
    ("POST", "/api/v1/notifications", "notifications:write",
     {"event_id": "contract-1", "type": "results_ready", "patient_id": "pat_contract",
      "params": {"document_id": "lab-1"}}),
    ("GET", "/api/v1/notifications/{event_id}", "notifications:write", None),
    ("POST", "/api/v1/portal/tokens/verify", "portal:verify", {"token": "not-a-token"}),
    # Upload links (tests/test_portal_uploads.py has the behaviour): an unknown patient is a 200.
    ("POST", "/api/v1/portal/upload-links", "portal:links", {"patient_id": "pat_contract"}),
]
CONTRACT_EVENT = "contract-get-1"


def _contract_event(api) -> str:
    """An event that exists, for the GET endpoint (patient unknown: recorded as skipped)."""
    from clinic.notifications.service import NotificationService

    NotificationService(api.sessions).submit(CONTRACT_EVENT, "results_ready", "pat_contract",
                                             {"document_id": "lab-0"}, "api:test")
    return CONTRACT_EVENT


@pytest.mark.parametrize("method,path,scope,body", ENDPOINTS)
def test_every_endpoint_rejects_missing_wrong_and_revoked_keys_and_missing_scopes(api, method, path, scope, body):
    appointment = book(api)
    path = path.format(id=appointment.id, event_id=_contract_event(api) if "{event_id}" in path else "")
    assert call(api, method, path, json=body).status_code == 401
    assert call(api, method, path, key="ck_not-a-real-key", json=body).status_code == 401
    assert call(api, method, path, key="Basic xyz", json=body).status_code == 401
    for other_scope, key in api.key.items():
        if other_scope != scope:
            assert call(api, method, path, key=key, json=body).status_code == 403, other_scope
    revoked = api.keys.create(f"temp-{scope}-{appointment.id}", [scope])
    assert call(api, method, path, key=revoked, json=body).status_code == 200
    assert api.keys.revoke(f"temp-{scope}-{appointment.id}")
    assert call(api, method, path, key=revoked, json=body).status_code == 401


def test_openapi_describes_every_endpoint_with_bearer_security(api):
    spec = requests.get(api.url + "/api/openapi.json", timeout=10).json()
    operations = [(m.upper(), p) for p, item in spec["paths"].items() for m in item]
    assert sorted(operations) == sorted((m, p.replace("{id}", "{appointment_id}")) for m, p, _, _ in ENDPOINTS)
    for path, item in spec["paths"].items():
        for operation in item.values():
            assert operation.get("security"), path
            assert "401" in operation["responses"] and "403" in operation["responses"]


def test_outcomes_follow_allowed_transitions_and_are_in_the_history(api):
    appointment = book(api)
    path = f"/api/v1/appointments/{appointment.id}"
    arrived = call(api, "POST", path + "/status", api.all, json={"status": "arrived", "note": "front desk"})
    assert arrived.status_code == 200 and arrived.json()["status"] == "arrived"
    fulfilled = call(api, "POST", path + "/status", api.all, json={"status": "fulfilled"})
    assert fulfilled.json()["status"] == "fulfilled"
    # Backwards is refused and changes nothing.
    again = call(api, "POST", path + "/status", api.all, json={"status": "noshow"})
    assert again.status_code == 409
    detail = call(api, "GET", path, api.all).json()
    assert detail["status"] == "fulfilled"
    outcome_rows = [h for h in detail["history"] if h["actor"] == "api:ehr"]
    assert [(h["from_status"], h["to_status"]) for h in outcome_rows] == [
        ("booked", "arrived"), ("arrived", "fulfilled")]
    assert "name" not in detail and "birth_date" not in detail  # no patient data in the API


def test_bad_requests_get_clear_errors_and_change_nothing(api):
    appointment = book(api)
    path = f"/api/v1/appointments/{appointment.id}/status"
    assert call(api, "POST", "/api/v1/appointments/apt_nope/status", api.all,
                json={"status": "arrived"}).status_code == 404
    booked_again = call(api, "POST", path, api.all, json={"status": "booked"})
    assert booked_again.status_code == 422 and "status must be one of" in booked_again.text
    assert call(api, "POST", path, api.all, json={"status": "teleported"}).status_code == 422
    assert call(api, "POST", path, api.all, data="not json",
                headers={"Content-Type": "application/json"}).status_code == 422
    assert call(api, "POST", path, api.all, json={"status": "arrived", "note": "x" * 301}).status_code == 422
    assert api.backend.appointment(appointment.id).status is AppointmentStatus.BOOKED
    cancelled = book(api)
    api.backend.set_status(cancelled.id, AppointmentStatus.CANCELLED, actor="test")
    assert call(api, "POST", f"/api/v1/appointments/{cancelled.id}/status", api.all,
                json={"status": "fulfilled"}).status_code == 409


def test_report_counts_no_shows_and_reminder_confirmations(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'report.db'}")
    create_schema(engine)
    sessions = make_session_factory(engine)
    install_demo_clinic(sessions, timezone=TZ, weeks=2, now=NOW)
    # Built like the real API: bookings plan their reminders in the same transaction.
    backend = build_scheduling(sessions, load_settings(), clock=lambda: NOW)
    mini = type("Mini", (), {"backend": backend})()
    store = ReminderStore(sessions)
    # (outcome, reminded, confirmed)
    plan = [(AppointmentStatus.NOSHOW, True, False), (AppointmentStatus.FULFILLED, True, True),
            (AppointmentStatus.FULFILLED, True, True), (AppointmentStatus.NOSHOW, False, False),
            (AppointmentStatus.ARRIVED, False, False), (None, True, False)]
    for outcome, reminded, confirmed in plan:
        appointment = book(mini, days_ahead=3)  # far enough ahead for both reminders
        jobs = store.jobs_for_appointment(appointment.id)
        assert {job.kind for job in jobs if job.status == "pending"} == {"appointment_24h", "appointment_2h"}
        if reminded:
            store.claim_due("test", now=NOW + dt.timedelta(days=30), limit=1000)
            assert store.mark_sent(jobs[0].id, now=NOW)
        if confirmed:
            contact = backend_contact(sessions, appointment.patient_id)
            backend.confirm(appointment.id, contact)
        if outcome is AppointmentStatus.FULFILLED:
            backend.set_status(appointment.id, AppointmentStatus.ARRIVED, actor="test")
        if outcome is not None:
            backend.set_status(appointment.id, outcome, actor="test")
        if outcome is AppointmentStatus.FULFILLED:
            # A fulfilled visit plans its follow-up through the same listener.
            assert "followup" in {job.kind for job in store.jobs_for_appointment(appointment.id)}

    report = appointment_report(sessions, NOW, NOW + dt.timedelta(days=30))
    assert report.appointments == 6
    assert report.by_status == {"noshow": 2, "fulfilled": 2, "arrived": 1, "booked": 1}
    assert report.no_show_rate == 0.4  # 2 no-shows of 5 with an outcome
    assert report.reminded == 4
    assert report.reminder_confirmation_rate == 0.5
    assert report.no_show_rate_reminded == round(1 / 3, 4)
    assert report.no_show_rate_not_reminded == 0.5


def backend_contact(sessions, patient_id):
    from clinic.scheduling.tables import PatientRow

    with sessions() as session:
        return session.get(PatientRow, patient_id).contact_key


def _first_patient(sessions):
    from sqlalchemy import select

    from clinic.scheduling.tables import AppointmentRow

    with sessions() as session:
        return session.execute(select(AppointmentRow.patient_id)
                               .where(AppointmentRow.status == "booked")).scalars().first()


def test_report_rejects_an_empty_period(api):
    response = call(api, "GET", "/api/v1/reports/appointments?since=2026-03-10T00:00:00Z&until=2026-03-01T00:00:00Z",
                    api.all)
    assert response.status_code == 422


def test_keys_need_known_scopes_and_are_stored_only_as_hashes(api):
    with pytest.raises(UnknownScope):
        api.keys.create("bad", ["appointments:delete"])
    key = api.keys.create("hash-check", ["reports:read"])
    with api.sessions() as session:
        stored = [row[0] for row in session.execute(
            __import__("sqlalchemy").text("select key_hash from api_keys")).all()]
    assert key not in stored and all(len(h) == 64 for h in stored)


def test_the_api_process_and_the_key_command_work_together(tmp_path):
    """What `make run` starts: the key CLI prints a key once; the server accepts it."""
    import subprocess
    import sys

    url = f"sqlite:///{tmp_path / 'clinic.db'}"
    created = subprocess.run([sys.executable, "-m", "clinic_api.keys", "--database-url", url, "create",
                              "front-desk", "reports:read"], capture_output=True, text=True, timeout=60)
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip()
    assert key.startswith("ck_")
    duplicate = subprocess.run([sys.executable, "-m", "clinic_api.keys", "--database-url", url, "create",
                                "front-desk", "reports:read"], capture_output=True, text=True, timeout=60)
    assert duplicate.returncode == 2 and "error" in duplicate.stderr and "Traceback" not in duplicate.stderr
    bad_scope = subprocess.run([sys.executable, "-m", "clinic_api.keys", "--database-url", url, "create",
                                "x", "everything"], capture_output=True, text=True, timeout=60)
    assert bad_scope.returncode == 2 and "unknown" in bad_scope.stderr

    port = _free_port()
    server = subprocess.Popen([sys.executable, "-m", "clinic_api", "--port", str(port), "--database-url", url],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        for _ in range(200):
            try:
                if requests.get(f"http://127.0.0.1:{port}/api/health", timeout=1).ok:
                    break
            except requests.ConnectionError:
                time.sleep(0.1)
        report = requests.get(f"http://127.0.0.1:{port}/api/v1/reports/appointments",
                              headers={"Authorization": f"Bearer {key}"}, timeout=10)
        assert report.status_code == 200 and report.json()["appointments"] == 0
        forbidden = requests.get(f"http://127.0.0.1:{port}/api/v1/appointments/apt_x",
                                 headers={"Authorization": f"Bearer {key}"}, timeout=10)
        assert forbidden.status_code == 403
    finally:
        server.terminate()
        output = server.communicate(timeout=10)[0]
    assert key not in output  # the key is never logged


def test_metrics_in_prometheus_format_without_a_key_and_without_paths(api):
    from prometheus_client.parser import text_string_to_metric_families

    requests.get(f"{api.url}/api/v1/reports/no-shows")  # 401: counted, its path not kept
    reply = requests.get(f"{api.url}/metrics", timeout=10)
    assert reply.status_code == 200 and reply.headers["Content-Type"].startswith("text/plain")
    families = {family.name: family for family in text_string_to_metric_families(reply.text)}
    requests_seen = {(s.labels["method"], s.labels["status"]): s.value
                     for s in families["clinic_api_http_requests"].samples if s.name.endswith("_total")}
    assert requests_seen[("GET", "4xx")] >= 1
    assert "process_resident_memory_bytes" in families or "python_info" in families
    assert "no-shows" not in reply.text and "/api/v1" not in reply.text
