"""Erasure on request by staff (inbox/erasure_page.py) over real HTTP (uvicorn, real SQLite):
supervisors and administrators only (agents 403), CSRF-checked, a confirmation step, the
same service as the chat (tickets, replies, notes, WhatsApp records and the tracker store's
events of the patient gone, another patient's kept), audited with counts only."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa
from sqlalchemy import func, select

from clinic.db import make_engine
from clinic.inbox.tables import MessageRow, TicketRow
from clinic.messaging.store import ContactRow, InboxRow
from clinic.privacy_erasure import ErasureRow, PrivacyErasure, TrackerEvents
from tests.inbox_support import conversation, inbox_with_live_clock, login

SECRET = "OSPREY-9917 I lost my insurance card"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    directory = tmp_path_factory.mktemp("erasure")
    with inbox_with_live_clock(directory) as running:
        tracker = make_engine(f"sqlite:///{directory / 'tracker.db'}")
        with tracker.begin() as connection:
            connection.exec_driver_sql("CREATE TABLE events (id INTEGER PRIMARY KEY, sender_id VARCHAR(255), "
                                       "type_name VARCHAR(255), timestamp FLOAT, intent_name VARCHAR(255), "
                                       "action_name VARCHAR(255), data TEXT)")
        running.server.config.app.state.erasure = PrivacyErasure(running.world.sessions,
                                                                 tracker=TrackerEvents(tracker))
        running.tracker = tracker
        yield running
        tracker.dispose()


@pytest.fixture(scope="module")
def clients(server):
    return {name: login(server, name) for name in ("nina", "sara", "adam")}


def patient(server, name: str) -> tuple:
    """A patient with a ticket, a staff reply, a WhatsApp message and tracker events."""
    conv = conversation(name)
    now = dt.datetime.now(dt.timezone.utc)
    with server.world.sessions.begin() as session:
        ticket = TicketRow(conversation_id=conv, contact_key=conv[::-1], team="nurse", priority="normal",
                           state="waiting", reason="patient_request", created_at=now, opened_at=now,
                           waiting_since=now)
        session.add(ticket)
        session.flush()
        session.add(InboxRow(wamid=f"wamid.{name}", conversation_id=conv, kind="text", text=f"{SECRET} {name}",
                             state="done", attempts=1, received_at=now))
        session.add(ContactRow(conversation_id=conv, address_encrypted="gAAAA-address", created_at=now))
        ticket_id = ticket.id
    server.world.inbox.add_note(server.world.members["nina"].actor, ticket_id, SECRET)
    with server.tracker.begin() as connection:
        connection.execute(sa.text("INSERT INTO events (sender_id, type_name, data) VALUES (:s, 'user', 'enc')"),
                           {"s": conv})
    return ticket_id, conv


def count(server, table, conv) -> int:
    with server.world.sessions() as session:
        return session.execute(select(func.count()).select_from(table)
                               .where(table.conversation_id == conv)).scalar_one()


def tracker_count(server, conv) -> int:
    with server.tracker.connect() as connection:
        return connection.execute(sa.text("SELECT count(*) FROM events WHERE sender_id = :s"),
                                  {"s": conv}).scalar_one()


def test_agents_may_not_erase_supervisors_and_admins_see_the_confirmation(server, clients):
    ticket_id, conv = patient(server, "erasure-roles")
    url = f"{server.url}/inbox/tickets/{ticket_id}/erase"
    nina = clients["nina"]
    assert nina.get(url, allow_redirects=False).status_code == 403
    assert nina.post(url, data={"csrf_token": nina.csrf, "confirm": "erase"},
                     allow_redirects=False).status_code == 403
    assert count(server, TicketRow, conv) == 1
    for name in ("sara", "adam"):
        page = clients[name].get(url)
        assert page.status_code == 200
        assert 'id="erase-form"' in page.text and "appointments" in page.text  # what the clinic keeps
    ticket_page = clients["sara"].get(f"{server.url}/inbox/tickets/{ticket_id}")
    assert f'href="/inbox/tickets/{ticket_id}/erase"' in ticket_page.text
    assert "erase-link" not in nina.get(f"{server.url}/inbox/tickets/{ticket_id}").text


def test_erasure_needs_csrf_and_the_confirmation_then_erases_and_is_audited(server, clients):
    ticket_id, conv = patient(server, "erasure-done")
    _other_ticket, other = patient(server, "erasure-other")
    url = f"{server.url}/inbox/tickets/{ticket_id}/erase"
    sara = clients["sara"]
    assert sara.post(url, data={"csrf_token": "wrong", "confirm": "erase"},
                     allow_redirects=False).status_code == 403
    unconfirmed = sara.post(url, data={"csrf_token": sara.csrf})
    assert "Nothing erased" in unconfirmed.text and count(server, TicketRow, conv) == 1

    done = sara.post(url, data={"csrf_token": sara.csrf, "confirm": "erase"})
    assert done.status_code == 200 and "records deleted" in done.text
    for table in (TicketRow, InboxRow, ContactRow):
        assert count(server, table, conv) == 0, table.__tablename__
        assert count(server, table, other) == 1, table.__tablename__
    with server.world.sessions() as session:
        assert session.execute(select(func.count()).select_from(MessageRow)
                               .where(MessageRow.ticket_id == ticket_id)).scalar_one() == 0
        proof = session.execute(select(ErasureRow).where(ErasureRow.contact_key == conv[::-1])).scalar_one()
    assert proof.requested_by == "sara" and proof.completed_at is not None
    assert tracker_count(server, conv) == 0 and tracker_count(server, other) == 1
    [entry] = [e for e in server.world.audit.entries(action="privacy_erasure") if e.conversation_id == conv]
    assert entry.actor == "sara" and "inbox_tickets" in entry.detail and "OSPREY" not in entry.detail
    assert server.world.audit.verify().ok
