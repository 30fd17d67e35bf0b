"""action_erase_my_data: a confirmed "delete my data" erases the contact (WhatsApp records
after the confirmation is sent) and answers through data_erasure; a failure is told."""

import pytest
from rasa_sdk.events import SlotSet
from sqlalchemy import func, select, text

from actions.privacy import ActionEraseMyData
from clinic.consent import ConsentEventRow, ConsentRow
from clinic.privacy import contact_key
from clinic.privacy_erasure import ErasureRow
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
