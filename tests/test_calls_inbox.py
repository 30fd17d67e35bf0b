"""Who may do what with calls in the inbox (inbox/calls.py) over real HTTP: only the staff
member holding the ticket places a call; a patient's call rings for its team only (and every
team for supervisors); another team's member gets 403 for a call; administrators see no
calls; call actions need the CSRF header; the ticket page shows the call, its outcome in
words and the patient's permission, and is the one page allowed scripts and the microphone."""

from __future__ import annotations

import datetime as dt
import itertools

import pytest

from clinic.messaging.calls import CallStore
from tests.inbox_support import conversation, inbox_with_live_clock, login

SDP = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n"
_counter = itertools.count()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with inbox_with_live_clock(tmp_path_factory.mktemp("calls-inbox")) as running:
        yield running


@pytest.fixture(scope="module")
def clients(server):
    return {name: login(server, name) for name in ("nina", "noah", "bill", "sara", "adam")}


def nurse_ticket(server, claimed_by: str = "nina"):
    world = server.world
    conv = conversation(f"calls-{next(_counter)}")
    ticket = world.inbox.open_for_handoff(conv, "nurse").ticket
    if claimed_by:
        world.inbox.claim(world.members[claimed_by].actor, ticket.id)
    return conv, ticket


def test_only_the_holder_places_a_call_and_only_with_csrf(server, clients):
    conv, ticket = nurse_ticket(server)
    url = f"{server.url}/inbox/api/v1/tickets/{ticket.id}/calls"
    assert clients["noah"].post(url, json={"sdp": SDP}).status_code == 409  # same team, not the holder
    assert clients["bill"].post(url, json={"sdp": SDP}).status_code == 403  # another team
    no_csrf = clients["nina"].post(url, json={"sdp": SDP}, headers={"X-CSRF-Token": "wrong"})
    assert no_csrf.status_code == 403
    assert clients["nina"].post(url, json={"sdp": "not an sdp"}).status_code == 422
    placed = clients["nina"].post(url, json={"sdp": SDP})
    assert placed.status_code == 200, placed.text
    call = placed.json()
    assert (call["state"], call["direction"]) == ("requested", "clinic → patient")
    assert clients["nina"].post(url, json={"sdp": SDP}).status_code == 409  # one call at a time
    assert clients["bill"].get(f"{server.url}/inbox/api/v1/calls/{call['id']}").status_code == 403
    assert clients["adam"].get(f"{server.url}/inbox/api/v1/calls/{call['id']}").status_code == 403
    # Hung up before the gateway sent it: withdrawn, recorded as not answered, audited.
    ended = clients["nina"].post(f"{server.url}/inbox/api/v1/calls/{call['id']}/terminate", json={})
    assert ended.json()["state"] == "ended" and ended.json()["outcome_words"] == "not answered"
    actions = [e.action for e in server.world.audit.entries(conversation_id=conv)]
    assert "call_placed" in actions and "call_ended" in actions
    page = clients["nina"].get(f"{server.url}/inbox/tickets/{ticket.id}")
    assert f'id="call-{call["id"]}"' in page.text and "not answered" in page.text
    # In the conversation too, in its place.
    assert '<li class="msg msg-call">' in page.text and "Voice call, clinic → patient: not answered" in page.text
    assert "has not been asked whether the clinic may call them" in page.text
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]
    assert "microphone=(self)" in page.headers["Permissions-Policy"]
    queues = clients["nina"].get(f"{server.url}/inbox/queues")
    assert "script-src" not in queues.headers["Content-Security-Policy"]
    assert "microphone=()" in queues.headers["Permissions-Policy"]


def test_a_patients_call_rings_for_its_team_and_supervisors(server, clients):
    conv, ticket = nurse_ticket(server, claimed_by="")
    store = CallStore(server.world.sessions)
    call = store.incoming(f"wacid.{conv[:8]}", conv, SDP, team="nurse", ticket_id=ticket.id)
    store.record_permission(conv, "accept", "automatic", dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=7))
    ringing = lambda name: [c["id"] for c in clients[name].get(f"{server.url}/inbox/api/v1/calls").json()["calls"]]  # noqa: E731
    assert call.id in ringing("noah") and call.id in ringing("sara") and call.id not in ringing("bill")
    assert clients["adam"].get(f"{server.url}/inbox/api/v1/calls").status_code == 403
    [item] = [c for c in clients["noah"].get(f"{server.url}/inbox/api/v1/calls?ticket={ticket.id}").json()["calls"]]
    assert item["remote_sdp"] == SDP and item["from_patient"] is True
    calls_page = clients["noah"].get(f"{server.url}/inbox/calls")
    assert f"ticket #{ticket.id}" in calls_page.text
    assert clients["bill"].post(f"{server.url}/inbox/api/v1/calls/{call.id}/reject", json={}).status_code == 403
    assert clients["noah"].post(f"{server.url}/inbox/api/v1/calls/{call.id}/accept", json={}).status_code == 409
    assert clients["noah"].post(f"{server.url}/inbox/api/v1/calls/{call.id}/dial", json={}).status_code == 404
    declined = clients["noah"].post(f"{server.url}/inbox/api/v1/calls/{call.id}/reject", json={})
    assert declined.status_code == 200 and declined.json()["state"] == "ringing"  # until the gateway sends it
    [action] = [store.claim_next_action()]
    assert action.action == "reject" and action.call.id == call.id
    page = clients["sara"].get(f"{server.url}/inbox/tickets/{ticket.id}")
    assert "allows the clinic to call them until" in page.text
