"""The inbox web app over real HTTP (uvicorn in a thread, real SQLite, FakeRasa over HTTP):
login with password + TOTP, the role matrix (every role × every API endpoint and page),
401/403, CSRF, XSS escaping, idle timeout, logout, security headers, OpenAPI."""

from __future__ import annotations

import datetime as dt
import itertools
import re

import pytest
import requests

from clinic.inbox.rasa_http import RasaHttp
from clinic.inbox.testing import FakeRasa
from clinic.messaging.store import WhatsAppStore
from clinic.scheduling.sql_backend import SqlSchedulingBackend
from tests.inbox_support import (
    PASSWORD,
    LiveClock,
    build_world,
    conversation,
    csrf_from,
    login,
    running_inbox,
)

_counter = itertools.count(1)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    rasa = FakeRasa()
    rasa.start()
    world = build_world(tmp_path_factory.mktemp("inbox-web") / "clinic.db", rasa, LiveClock())
    with running_inbox(world) as running:
        yield running
    rasa.stop()


@pytest.fixture(scope="module")
def clients(server):
    return {name: login(server, name) for name in ("nina", "bill", "sara", "adam")}


def anonymous() -> requests.Session:
    client = requests.Session()
    client.trust_env = False
    return client


def fresh_ticket(server, owner="nina"):
    """A nurse ticket claimed by ``owner``, a patient message in it, and an open task."""
    world = server.world
    conv = conversation(f"web-{next(_counter)}")
    world.rasa.say(conv, "Hello, I need help")
    ticket = world.inbox.open_for_handoff(conv, "nurse").ticket
    if owner:
        world.inbox.claim(world.members[owner].actor, ticket.id)
    task = world.inbox.request_callback(conv, "nurse", "call back", ticket_id=ticket.id)
    return ticket.id, task.id


# ── the role matrix ─────────────────────────────────────────────────────────────────────
OK, NO = "ok", 403
ROLES = ["nina", "bill", "sara", "adam"]  # nurse agent (owner) · agent of another team · supervisor · admin

# (method, path, body, {role: expected}); {t} = ticket id, {k} = task id, {s} = a staff id
API = [
    ("GET", "/me", None, dict(nina=OK, bill=OK, sara=OK, adam=OK)),
    ("GET", "/queues", None, dict(nina=OK, bill=OK, sara=OK, adam=NO)),
    ("GET", "/tickets/{t}", None, dict(nina=OK, bill=NO, sara=OK, adam=NO)),
    ("POST", "/tickets/{t}/claim", None, dict(nina=OK, bill=NO, sara=OK, adam=NO)),
    ("POST", "/tickets/{t}/release", None, dict(nina=OK, bill=NO, sara=OK, adam=NO)),
    ("POST", "/tickets/{t}/assign", {"staff_id": "{s}"}, dict(nina=NO, bill=NO, sara=OK, adam=NO)),
    ("POST", "/tickets/{t}/transfer", {"team": "reception"}, dict(nina=OK, bill=NO, sara=OK, adam=NO)),
    ("POST", "/tickets/{t}/resolve", {"reason": "answered"}, dict(nina=OK, bill=NO, sara=OK, adam=NO)),
    # One voice per conversation: only the owner replies (a supervisor assigns it to themself).
    ("POST", "/tickets/{t}/reply", {"text": "Hello"}, dict(nina=OK, bill=NO, sara=NO, adam=NO)),
    ("POST", "/tickets/{t}/template", {"name": "results_ready", "values": ["Ana"]},
     dict(nina=OK, bill=NO, sara=NO, adam=NO)),
    ("GET", "/templates", None, dict(nina=OK, bill=OK, sara=OK, adam=OK)),
    ("GET", "/tickets/{t}/templates", None, dict(nina=OK, bill=NO, sara=OK, adam=NO)),
    ("POST", "/tickets/{t}/notes", {"text": "note"}, dict(nina=OK, bill=NO, sara=OK, adam=NO)),
    ("POST", "/tickets/{t}/tasks", {"note": "call"}, dict(nina=OK, bill=NO, sara=OK, adam=NO)),
    ("GET", "/tasks", None, dict(nina=OK, bill=OK, sara=OK, adam=NO)),
    ("POST", "/tasks/{k}/done", None, dict(nina=OK, bill=NO, sara=OK, adam=NO)),
    ("GET", "/users", None, dict(nina=NO, bill=NO, sara=NO, adam=OK)),
    ("POST", "/users", {"username": "u{n}", "display_name": "U", "password": PASSWORD, "role": "agent",
                        "teams": ["nurse"]}, dict(nina=NO, bill=NO, sara=NO, adam=OK)),
    ("POST", "/users/{s}/disable", None, dict(nina=NO, bill=NO, sara=NO, adam=OK)),
    ("POST", "/users/{s}/enable", None, dict(nina=NO, bill=NO, sara=NO, adam=OK)),
    ("GET", "/audit", None, dict(nina=NO, bill=NO, sara=NO, adam=OK)),
    ("GET", "/audit/verify", None, dict(nina=NO, bill=NO, sara=NO, adam=OK)),
    ("GET", "/settings", None, dict(nina=NO, bill=NO, sara=NO, adam=OK)),
    ("PUT", "/settings", {"overdue_minutes": 15}, dict(nina=NO, bill=NO, sara=NO, adam=OK)),
]


def _fill(value, ids):
    if isinstance(value, str):
        return value.format(**ids)
    if isinstance(value, dict):
        return {k: (int(_fill(v, ids)) if v == "{s}" else _fill(v, ids)) for k, v in value.items()}
    return value


def test_the_matrix_covers_every_api_operation(server):
    spec = requests.get(f"{server.url}/inbox/api/openapi.json").json()
    documented = {(method.upper(), path.removeprefix("/inbox/api/v1").replace("{ticket_id}", "{t}")
                   .replace("{task_id}", "{k}").replace("{staff_id}", "{s}"))
                  for path, ops in spec["paths"].items() for method in ops}
    assert documented == {(m, p) for m, p, _, _ in API}


@pytest.mark.parametrize("method, path, body, expected", API, ids=[f"{m} {p}" for m, p, _, _ in API])
def test_role_matrix(server, clients, method, path, body, expected):
    spare = server.world.staff.create(f"spare{next(_counter)}", PASSWORD, "agent", ["nurse"],
                                      by=server.world.members["adam"].actor).member
    for role in [None, *ROLES]:
        ticket_id, task_id = fresh_ticket(server, owner=None if "claim" in path else "nina")
        ids = {"t": ticket_id, "k": task_id, "s": spare.id, "n": next(_counter)}
        url = f"{server.url}/inbox/api/v1{_fill(path, ids)}"
        client = clients[role] if role else anonymous()
        response = client.request(method, url, json=_fill(body, ids))
        label = f"{role or 'anonymous'} {method} {path}: {response.status_code} {response.text[:200]}"
        if role is None:
            assert response.status_code == 401, label
        elif expected[role] == NO:
            assert response.status_code == 403, label
        else:
            assert response.status_code in (200, 201), label


PAGES_GET = [
    ("/inbox/queues", dict(nina=200, bill=200, sara=200, adam=403)),
    ("/inbox/tickets/{t}", dict(nina=200, bill=403, sara=200, adam=403)),
    ("/inbox/tasks", dict(nina=200, bill=200, sara=200, adam=403)),
    ("/inbox/admin/users", dict(nina=403, bill=403, sara=403, adam=200)),
    ("/inbox/admin/audit", dict(nina=403, bill=403, sara=403, adam=200)),
    ("/inbox/admin/settings", dict(nina=403, bill=403, sara=403, adam=200)),
]
PAGES_POST = [
    ("/inbox/tickets/{t}/claim", {}, dict(nina=303, bill=403, sara=303, adam=403)),
    ("/inbox/tickets/{t}/note", {"text": "n"}, dict(nina=303, bill=403, sara=303, adam=403)),
    ("/inbox/tickets/{t}/reply", {"text": "r"}, dict(nina=303, bill=403, sara=403, adam=403)),
    ("/inbox/tickets/{t}/transfer", {"team": "billing"}, dict(nina=303, bill=403, sara=303, adam=403)),
    ("/inbox/tickets/{t}/resolve", {"reason": "answered"}, dict(nina=303, bill=403, sara=303, adam=403)),
    ("/inbox/tickets/{t}/release", {}, dict(nina=303, bill=403, sara=303, adam=403)),
    ("/inbox/tickets/{t}/assign", {"staff_id": "{s}"}, dict(nina=403, bill=403, sara=303, adam=403)),
    ("/inbox/tickets/{t}/task", {"note": "x"}, dict(nina=303, bill=403, sara=303, adam=403)),
    ("/inbox/tasks/{k}/done", {}, dict(nina=303, bill=403, sara=303, adam=403)),
    ("/inbox/admin/users/{s}/disable", {}, dict(nina=403, bill=403, sara=403, adam=303)),
    ("/inbox/admin/settings", {"overdue_minutes": "15", "idle_timeout_minutes": "15"},
     dict(nina=403, bill=403, sara=403, adam=303)),
]


@pytest.mark.parametrize("path, expected", PAGES_GET, ids=[p for p, _ in PAGES_GET])
def test_pages_role_matrix(server, clients, path, expected):
    ticket_id, _ = fresh_ticket(server)
    url = f"{server.url}{path.format(t=ticket_id)}"
    response = anonymous().get(url, allow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/inbox/login"
    for role in ROLES:
        assert clients[role].get(url, allow_redirects=False).status_code == expected[role], role


@pytest.mark.parametrize("path, form, expected", PAGES_POST, ids=[p for p, _, _ in PAGES_POST])
def test_page_forms_role_matrix(server, clients, path, form, expected):
    spare = server.world.staff.create(f"spare{next(_counter)}", PASSWORD, "agent", ["nurse"],
                                      by=server.world.members["adam"].actor).member
    for role in [None, *ROLES]:
        ticket_id, task_id = fresh_ticket(server, owner=None if "claim" in path else "nina")
        ids = {"t": ticket_id, "k": task_id, "s": spare.id}
        url = f"{server.url}{path.format(**ids)}"
        client = clients[role] if role else anonymous()
        data = {k: v.format(**ids) for k, v in form.items()}
        data["csrf_token"] = client.csrf if role else "x"
        response = client.post(url, data=data, allow_redirects=False)
        if role is None:
            assert response.status_code == 303 and response.headers["location"] == "/inbox/login"
        else:
            assert response.status_code == expected[role], f"{role} {path}: {response.text[:200]}"
    server.world.staff.set_disabled(spare.id, False, by=server.world.members["adam"].actor)


# ── CSRF ────────────────────────────────────────────────────────────────────────────────
def test_csrf_is_required_on_every_unsafe_call(server, clients):
    nina = clients["nina"]
    ticket_id, _ = fresh_ticket(server)
    url = f"{server.url}/inbox/api/v1/tickets/{ticket_id}/notes"
    for headers in ({"X-CSRF-Token": ""}, {"X-CSRF-Token": "forged"}):
        response = nina.post(url, json={"text": "x"}, headers=headers)
        assert response.status_code == 403 and "CSRF" in response.json()["detail"]
    # A form without (or with another session's) token is refused too.
    form_url = f"{server.url}/inbox/tickets/{ticket_id}/note"
    assert nina.post(form_url, data={"text": "x"}, allow_redirects=False).status_code == 403
    assert nina.post(form_url, data={"text": "x", "csrf_token": clients["sara"].csrf},
                     allow_redirects=False).status_code == 403
    assert nina.post(form_url, data={"text": "x", "csrf_token": nina.csrf}, allow_redirects=False).status_code == 303
    # The login form too (login CSRF).
    response = anonymous().post(f"{server.url}/inbox/login", data={"username": "nina", "password": PASSWORD})
    assert response.status_code == 403


# ── XSS ─────────────────────────────────────────────────────────────────────────────────
XSS = '<script>window.__xss=1</script><img src=x onerror="window.__xss=2">'


def test_patient_text_is_escaped_everywhere(server, clients):
    world = server.world
    conv = conversation(f"xss-{next(_counter)}")
    world.rasa.say(conv, XSS)
    ticket = world.inbox.open_for_handoff(conv, "nurse").ticket
    nina = clients["nina"]
    nina.post(f"{server.url}/inbox/api/v1/tickets/{ticket.id}/claim")
    nina.post(f"{server.url}/inbox/api/v1/tickets/{ticket.id}/notes", json={"text": XSS})
    html = nina.get(f"{server.url}/inbox/tickets/{ticket.id}").text
    assert "<script>window" not in html and "<img src=x" not in html
    assert "&lt;script&gt;window.__xss=1&lt;/script&gt;" in html
    assert html.count("&lt;img src=x onerror=") == 2  # the patient's message and the note
    # And no inline script could run anyway.
    csp = nina.get(f"{server.url}/inbox/queues").headers["Content-Security-Policy"]
    assert "script-src" not in csp and "default-src 'none'" in csp


# ── who the patient is, codes in words, the clinic's time ───────────────────────────────
def test_the_ticket_page_says_who_the_patient_is_in_words_and_in_the_clinics_time(server, clients):
    world = server.world
    conv = conversation(f"who-{next(_counter)}")
    contact = conversation(f"contact-{conv}")  # the pseudonymous contact key of booking and handoff
    SqlSchedulingBackend(world.sessions).register_patient(contact, "Anna Petrova", dt.date(1984, 5, 17),
                                                          conv, "whatsapp")
    # The channel knows where to send (encrypted); no staff role may see the number.
    phone = "15550107777"  # synthetic
    WhatsAppStore(world.sessions).accept([], {conv: (world.inbox._cipher.encrypt(phone),
                                                     dt.datetime.now(dt.timezone.utc))})
    at = dt.datetime(2026, 1, 15, 8, 5, tzinfo=dt.timezone.utc)  # 09:05 in the clinic (Europe/Berlin, CET)
    RasaHttp(world.rasa.url, world.rasa.token).append(conv, [
        {"event": "bot", "text": "Our *nurse team* isn't available right now.", "timestamp": at.timestamp(),
         "data": {"buttons": [{"title": "Call me back", "payload": "/request_callback"},
                              {"title": "I'll wait here", "payload": "/deny"}]}},
        {"event": "user", "text": "/deny", "timestamp": at.timestamp() + 60,
         "metadata": {"whatsapp": {"kind": "button_reply", "redacted": [], "title": "I'll wait here"}}},
    ])
    world.rasa.say(conv, "my chest hurts")
    ticket = world.inbox.open_for_handoff(conv, "nurse", "emergency", "chest_pain", contact_key=contact).ticket
    nina = clients["nina"]

    html = nina.get(f"{server.url}/inbox/tickets/{ticket.id}").text
    assert f'<strong id="patient-label">{ticket.patient_label}</strong>' in html
    assert "Anna Petrova" in html and "1984-05-17" in html and '<dd id="earlier-tickets">0</dd>' in html
    assert "Emergency (red flag)" in html and "urgent: Chest pain or pressure" in html
    assert "chest_pain" not in html and ">emergency<" not in html
    assert '<dd id="team">Nurse</dd>' in html and '<option value="billing">Billing &amp; insurance</option>' in html
    assert "I&#39;ll wait here" in html and "/deny" not in html and "tapped a button" in html
    assert "Our <strong>nurse team</strong> isn&#39;t available right now." in html
    assert "2026-01-15 09:05 CET" in html and "2026-01-15 09:06 CET" in html and "UTC" not in html
    assert phone not in html

    queue = nina.get(f"{server.url}/inbox/queues").text
    row = re.search(rf'id="ticket-row-{ticket.id}".*?</tr>', queue, re.S).group(0)
    assert f'<td class="patient">{ticket.patient_label}</td>' in row and "Chest pain or pressure" in row
    assert conv[:10] not in queue and "Anna" not in queue and phone not in queue  # labels only in lists

    detail = nina.get(f"{server.url}/inbox/api/v1/tickets/{ticket.id}").json()
    assert detail["ticket"]["patient_label"] == ticket.patient_label
    assert detail["patient"] == {"label": ticket.patient_label, "name": "Anna Petrova",
                                 "birth_date": "1984-05-17", "earlier_tickets": 0, "username": None}
    assert [(i["text"], i["tapped"]) for i in detail["timeline"] if i["sender"] == "patient"] == [
        ("I'll wait here", True), ("my chest hurts", False)]
    assert detail["timeline"][0]["buttons"] == ["Call me back", "I'll wait here"]
    assert phone not in str(detail)


# ── sessions ────────────────────────────────────────────────────────────────────────────
def test_wrong_totp_code_does_not_log_in(server):
    client = anonymous()
    page = client.get(f"{server.url}/inbox/login")
    step = client.post(f"{server.url}/inbox/login", data={"username": "noah", "password": PASSWORD,
                                                          "csrf_token": csrf_from(page.text)})
    assert "/login/totp" in step.url
    assert client.get(f"{server.url}/inbox/api/v1/me").status_code == 401  # half logged in = not logged in
    good = server.world.totp("noah")
    wrong = "123456" if good != "123456" else "654321"
    response = client.post(f"{server.url}/inbox/login/totp", data={"code": wrong, "csrf_token": csrf_from(step.text)})
    assert response.status_code == 401 and "wrong user name, password or code" in response.text
    assert client.get(f"{server.url}/inbox/api/v1/me").status_code == 401


def test_wrong_password_is_refused_without_saying_why(server):
    client = anonymous()
    page = client.get(f"{server.url}/inbox/login")
    response = client.post(f"{server.url}/inbox/login", data={"username": "noah", "password": "nope nope nope",
                                                              "csrf_token": csrf_from(page.text)})
    assert response.status_code == 401 and "wrong user name, password or code" in response.text


def test_first_login_shows_the_totp_key_until_it_is_used(server):
    world = server.world
    created = world.staff.create(f"newbie{next(_counter)}", PASSWORD, "agent", ["billing"],
                                 by=world.members["adam"].actor)
    client = anonymous()
    page = client.get(f"{server.url}/inbox/login")
    step = client.post(f"{server.url}/inbox/login", data={"username": created.member.username,
                                                          "password": PASSWORD, "csrf_token": csrf_from(page.text)})
    assert created.totp_secret in step.text and "otpauth://totp/" in step.text


def test_idle_sessions_end(server):
    client = login(server, new_account(server))
    assert client.get(f"{server.url}/inbox/api/v1/me").status_code == 200
    server.clock_offset[0] += 14 * 60
    assert client.get(f"{server.url}/inbox/api/v1/me").status_code == 200  # activity renews it
    server.clock_offset[0] += 14 * 60
    assert client.get(f"{server.url}/inbox/api/v1/me").status_code == 200
    server.clock_offset[0] += 16 * 60
    try:
        page = client.get(f"{server.url}/inbox/queues")
        assert page.url.endswith("/inbox/login") and "inactivity" in page.text
        assert client.get(f"{server.url}/inbox/api/v1/me").status_code == 401
    finally:
        server.clock_offset[0] = 0


def new_account(server, role="supervisor", teams=()):
    world = server.world
    created = world.staff.create(f"user{next(_counter)}", PASSWORD, role, list(teams),
                                 by=world.members["adam"].actor)
    world.secrets[created.member.username] = created.totp_secret
    return created.member.username


def test_logout_ends_every_copy_of_the_session(server):
    client = login(server, new_account(server))
    stolen = dict(client.cookies)
    client.post(f"{server.url}/inbox/logout", data={"csrf_token": client.csrf})
    thief = anonymous()
    thief.cookies.update(stolen)
    assert thief.get(f"{server.url}/inbox/api/v1/me").status_code == 401


def test_a_tampered_cookie_is_no_session(server, clients):
    value = clients["adam"].cookies.get("inbox_session")
    forged = anonymous()
    forged.cookies.set("inbox_session", value[:-3] + ("AAA" if not value.endswith("AAA") else "BBB"))
    assert forged.get(f"{server.url}/inbox/api/v1/me").status_code == 401


def test_security_headers_and_cookie_flags(server):
    client = anonymous()
    response = client.get(f"{server.url}/inbox/login")
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Cache-Control"] == "no-store"
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    cookie = response.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie


def test_openapi_describes_every_endpoint_with_401_and_403(server):
    spec = requests.get(f"{server.url}/inbox/api/openapi.json").json()
    assert spec["info"]["title"] == "Clinic staff inbox API"
    for path, operations in spec["paths"].items():
        assert path.startswith("/inbox/api/v1/")
        for method, operation in operations.items():
            assert {"401", "403"} <= set(operation["responses"]), (method, path)
    schemes = spec["components"]["securitySchemes"]
    assert {s["name"] for s in schemes.values()} == {"inbox_session", "X-CSRF-Token"}


def test_api_errors_are_json_with_the_right_codes(server, clients):
    nina = clients["nina"]
    assert nina.get(f"{server.url}/inbox/api/v1/tickets/999999").status_code == 404
    ticket_id, _ = fresh_ticket(server)
    response = nina.post(f"{server.url}/inbox/api/v1/tickets/{ticket_id}/claim")
    assert response.status_code == 409 and "waiting" in response.json()["detail"]
    response = nina.post(f"{server.url}/inbox/api/v1/tickets/{ticket_id}/reply", json={"text": ""})
    assert response.status_code == 422
    response = nina.post(f"{server.url}/inbox/api/v1/tickets/{ticket_id}/resolve", json={"reason": "whatever"})
    assert response.status_code == 422 and "resolution reason" in response.json()["detail"]
    response = nina.post(f"{server.url}/inbox/api/v1/tickets/{ticket_id}/notes", data="not json",
                         headers={"Content-Type": "application/json"})
    assert response.status_code == 422


def test_every_api_view_and_action_is_in_the_audit_log_with_the_client_address(server, clients):
    world = server.world
    ticket_id, _ = fresh_ticket(server, owner=None)
    nina = clients["nina"]
    before = world.audit.count()
    nina.get(f"{server.url}/inbox/api/v1/tickets/{ticket_id}")
    nina.post(f"{server.url}/inbox/api/v1/tickets/{ticket_id}/claim")
    nina.post(f"{server.url}/inbox/api/v1/tickets/{ticket_id}/reply", json={"text": "Hi there"})
    nina.post(f"{server.url}/inbox/api/v1/tickets/{ticket_id}/resolve", json={"reason": "answered"})
    rows = [e for e in reversed(world.audit.entries(limit=50)) if e.id > before]
    staff_rows = [e for e in rows if e.actor == "nina"]
    assert [e.action for e in staff_rows] == ["ticket_viewed", "ticket_claimed", "reply_sent", "ticket_resolved"]
    assert all(e.client == "127.0.0.1" and e.ticket_id == ticket_id for e in staff_rows)
    audit = clients["adam"].get(f"{server.url}/inbox/api/v1/audit", params={"actor": "nina", "limit": 4}).json()
    assert [a["action"] for a in audit] == ["ticket_resolved", "reply_sent", "ticket_claimed", "ticket_viewed"]
    assert clients["adam"].get(f"{server.url}/inbox/api/v1/audit/verify").json()["ok"] is True
    # No API route changes or deletes audit rows.
    for method in ("PUT", "PATCH", "DELETE"):
        response = clients["adam"].request(method, f"{server.url}/inbox/api/v1/audit")
        assert response.status_code == 405
