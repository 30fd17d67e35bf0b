"""A username patient's ticket (issue 19, item 4): staff see the WhatsApp username the patient
chose, never a phone number (there may be none), and nothing for a patient without one."""

from __future__ import annotations

import pytest

from clinic.inbox.testing import FakeRasa
from clinic.messaging import identities
from tests.inbox_support import build_world, conversation, login, running_inbox

USERNAME = "sam.rivera"


@pytest.fixture(scope="module")
def rasa():
    fake = FakeRasa()
    fake.start()
    yield fake
    fake.stop()


@pytest.fixture
def world(tmp_path, rasa):
    rasa.trackers.clear()
    return build_world(tmp_path / "clinic.db", rasa)


def test_the_ticket_page_shows_the_username_and_no_number(world):
    username_patient, phone_patient = conversation("username-patient"), conversation("phone-patient")
    cipher = world.inbox._cipher
    with world.sessions() as session, session.begin():
        # As the door links them (gateway/identities.py): the BSUID's pseudonym, the username encrypted.
        identities.resolve(session, identities.Identity(bsuid_key="b" * 64, username_encrypted=cipher.encrypt(USERNAME)),
                           username_patient)
        identities.resolve(session, identities.Identity(phone_key="p" * 64), phone_patient)
    nina = world.members["nina"].actor
    pages = {}
    for conversation_id in (username_patient, phone_patient):
        ticket = world.inbox.open_for_handoff(conversation_id, "nurse").ticket
        world.clock.advance(seconds=1)
        pages[conversation_id] = world.inbox.open_ticket_page(nina, ticket.id)
    assert pages[username_patient].patient.username == USERNAME
    assert pages[phone_patient].patient.username is None
    # On the staff page and in the API, as staff see it.
    with running_inbox(world) as server:
        client = login(server, "nina")
        html = client.get(f"{server.url}/inbox/tickets/{pages[username_patient].ticket.id}").text
        assert f'<span id="patient-username">@{USERNAME}</span>' in html
        assert "patient-username" not in client.get(f"{server.url}/inbox/tickets/{pages[phone_patient].ticket.id}").text
        detail = client.get(f"{server.url}/inbox/api/v1/tickets/{pages[username_patient].ticket.id}").json()
        assert detail["patient"]["username"] == USERNAME
