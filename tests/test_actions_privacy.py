"""action_erase_my_data: a confirmed "delete my data" erases the contact (WhatsApp records
after the confirmation is sent) and answers through data_erasure; a failure is told.
action_send_my_data: "send me my data" gets a single-use portal link (data_access_link) for a
registered patient, else why not (data_access)."""

import datetime as dt

import pytest
from rasa_sdk.events import SlotSet
from sqlalchemy import func, select, text

from actions.notifications import NotificationServices, use_notification_services
from actions.privacy import ActionEraseMyData, ActionSendMyData
from clinic.consent import ConsentEventRow, ConsentRow
from clinic.notifications.service import NotificationService
from clinic.portal import tokens as tk
from clinic.portal.tables import PortalTokenRow
from clinic.portal.tokens import PortalTokens
from clinic.privacy import contact_key
from clinic.privacy_erasure import ErasureRow
from clinic.records.store import RecordStore
from tests.conftest import SESSION_START, TEST_PSEUDONYM_KEY, make_tracker, user_event

SENDER = "c0ffee" * 10 + "abcd"


def tracker():
    events = [SESSION_START, user_event("delete_my_data", "delete my data"), user_event("affirm", "/affirm")]
    return make_tracker(events, sender_id=SENDER)


@pytest.mark.asyncio
async def test_a_confirmed_request_erases_the_contact(services, dispatcher, domain):
    key = contact_key(SENDER, "rest", TEST_PSEUDONYM_KEY.encode())
    services.consent.record(key, ("reminders", "health_tips"), True, "utter_ask_opt_in@v1", "rest")

    events = await ActionEraseMyData().run(dispatcher, tracker(), domain)

    assert events == [SlotSet("data_erasure", "done")]
    assert dispatcher.messages == []  # data/rules/privacy.yml answers
    with services.consent.sessions() as session:
        assert session.execute(select(func.count()).select_from(ConsentRow)).scalar_one() == 0
        assert session.execute(select(func.count()).select_from(ConsentEventRow)).scalar_one() == 0
        proof = session.execute(select(ErasureRow)).scalar_one()
    assert proof.contact_key == key and proof.requested_by == "patient"
    # The confirmation still needs the WhatsApp address: those records go once it is sent.
    assert proof.pending_conversation_id == SENDER and proof.completed_at is None


@pytest.mark.asyncio
async def test_a_failure_is_told_not_hidden(services, dispatcher, domain):
    with services.consent.sessions.begin() as session:
        session.execute(text("DROP TABLE privacy_erasures"))
    events = await ActionEraseMyData().run(dispatcher, tracker(), domain)
    assert events == [SlotSet("data_erasure", "failed")]


# ── access ─────────────────────────────────────────────────────────────────────────────
def access_tracker():
    return make_tracker([SESSION_START, user_event("access_my_data", "what data do you hold about me")],
                        sender_id=SENDER)


@pytest.fixture
def portal(services):
    sessions = services.consent.sessions
    tokens = PortalTokens(sessions, b"t" * 32, dt.timedelta(hours=services.settings.portal_token_hours))
    use_notification_services(NotificationServices(NotificationService(sessions), RecordStore(sessions), tokens))
    yield tokens
    use_notification_services(None)


@pytest.mark.asyncio
async def test_a_registered_patient_gets_a_single_use_link_to_their_data(services, portal, dispatcher, domain):
    key = contact_key(SENDER, "rest", TEST_PSEUDONYM_KEY.encode())
    patient = services.scheduling.register_patient(key, "Sam Example", dt.date(1990, 5, 1), SENDER, "rest")

    events = await ActionSendMyData().run(dispatcher, access_tracker(), domain)

    assert dispatcher.messages == []  # data/rules/privacy.yml answers with utter_data_access_link
    assert len(events) == 2 and events[1] == SlotSet("data_access", "link")
    link = events[0]["value"]
    assert events[0] == SlotSet("data_access_link", link)
    prefix = services.settings.portal_url.rstrip("/") + "/t/"
    assert link.startswith(prefix) and len(link) == len(prefix) + tk.TOKEN_LENGTH
    grant = portal.check(link[len(prefix):])
    assert (grant.purpose, grant.patient_id, grant.conversation_id) == ("access", patient.id, SENDER)
    with services.consent.sessions() as session:
        issued_at = session.get(PortalTokenRow, grant.token_id).created_at
    # The results links' lifetime (the tokens' own, from portal_token_hours).
    assert grant.expires_at - issued_at == dt.timedelta(hours=services.settings.portal_token_hours)


@pytest.mark.asyncio
async def test_no_link_for_a_contact_the_portal_cannot_verify(services, portal, dispatcher, domain):
    events = await ActionSendMyData().run(dispatcher, access_tracker(), domain)
    assert events == [SlotSet("data_access_link", None), SlotSet("data_access", "not_registered")]
    assert dispatcher.messages == []
    assert portal.access_log() == []  # nothing issued


@pytest.mark.asyncio
async def test_a_failure_to_issue_the_link_is_told(services, portal, dispatcher, domain):
    key = contact_key(SENDER, "rest", TEST_PSEUDONYM_KEY.encode())
    services.scheduling.register_patient(key, "Sam Example", dt.date(1990, 5, 1), SENDER, "rest")
    with services.consent.sessions.begin() as session:
        session.execute(text("DROP TABLE portal_access_log"))
    events = await ActionSendMyData().run(dispatcher, access_tracker(), domain)
    assert events == [SlotSet("data_access_link", None), SlotSet("data_access", "failed")]
