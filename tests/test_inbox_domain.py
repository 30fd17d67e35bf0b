"""The staff inbox domain: the ticket state machine (every transition, illegal ones
refused), the conversation side (pause/resume over Rasa's HTTP API, the bot answering again
after resolution, emergencies while a human has the conversation), SLA timers, and the
audit log (one row per view and action, append-only, tamper-evident)."""

from __future__ import annotations

import datetime as dt
import itertools
import re

import pytest
import yaml
from sqlalchemy import select, text

from clinic.handoff.requests import HandoffRequests, Reason
from clinic.handoff.teams import Team
from clinic.inbox import sla, states
from clinic.inbox.labels import (
    HANDOFF_REASON_LABELS,
    TEAM_LABELS,
    reason_label,
    red_flag_label,
    resolution_label,
    team_label,
)
from clinic.inbox.model import (
    Conflict,
    Delivery,
    Forbidden,
    InboxError,
    InvalidInput,
    InvalidTransition,
    Priority,
    Role,
    TicketState,
    aware,
    check_conversation_id,
)
from clinic.inbox.patients import friendly_label
from clinic.inbox.ports import OUTSIDE_WINDOW_DETAIL, TranscriptUnavailable
from clinic.inbox.rasa_http import RasaHttp
from clinic.inbox.service import HANDOFF_REASONS
from clinic.inbox.staff import LoginFailed
from clinic.inbox.states import Event
from clinic.inbox.tables import AuditRow, MessageRow, StaffRow, TicketRow
from clinic.inbox.testing import FakeRasa
from clinic.safety.red_flags import DEFAULT_RED_FLAGS_DIR
from clinic.scheduling.sql_backend import SqlSchedulingBackend
from tests.inbox_support import PASSWORD, build_world, conversation

PATIENT = conversation("patient-1")
OTHER = conversation("patient-2")
JOINED_NURSE_EN = "{name} from our nurse team has joined the chat and will reply to you here."


@pytest.fixture(scope="module")
def rasa():
    fake = FakeRasa()
    fake.start()
    yield fake
    fake.stop()


@pytest.fixture
def world(tmp_path, rasa):
    rasa.trackers.clear()
    rasa.down = False
    return build_world(tmp_path / "clinic.db", rasa)


def actor(world, name):
    return world.members[name].actor


def audit_rows(world):
    with world.sessions() as session:
        return list(session.scalars(select(AuditRow).order_by(AuditRow.id)))


# ── the transition table itself ─────────────────────────────────────────────────────────
ALL_STATES = [None, *TicketState]


@pytest.mark.parametrize("state, event", list(itertools.product(ALL_STATES, Event)))
def test_every_state_event_pair_is_either_allowed_or_refused(state, event):
    if (state, event) in states.TRANSITIONS:
        assert states.next_state(state, event) == states.TRANSITIONS[(state, event)]
    else:
        with pytest.raises(InvalidTransition):
            states.next_state(state, event)


def test_the_table_says_what_the_issue_asks():
    W, A, R = TicketState
    assert states.next_state(None, Event.OPEN) is W
    assert states.next_state(W, Event.CLAIM) is A
    assert states.next_state(A, Event.TRANSFER) is W
    assert states.next_state(A, Event.RESOLVE) is R
    assert states.next_state(R, Event.OPEN) is W   # reopen on a new request
    for illegal in [(W, Event.REPLY), (R, Event.REPLY), (R, Event.CLAIM), (A, Event.CLAIM),
                    (R, Event.RESOLVE), (R, Event.TRANSFER), (None, Event.CLAIM)]:
        assert illegal not in states.TRANSITIONS


# ── opening: reuse, priority, reopen ────────────────────────────────────────────────────
def test_open_creates_a_waiting_ticket_and_a_second_request_reuses_it(world):
    first = world.inbox.open_for_handoff(PATIENT, "billing")
    again = world.inbox.open_for_handoff(PATIENT, "reception")
    assert first.created and not again.created
    assert again.ticket.id == first.ticket.id
    assert (again.ticket.state, again.ticket.team, again.ticket.priority) == (
        TicketState.WAITING, "billing", Priority.NORMAL)
    with world.sessions() as session:
        assert session.execute(select(TicketRow)).scalars().all().__len__() == 1
    assert [r.action for r in audit_rows(world)][-2:] == ["ticket_opened", "handoff_repeated"]


def test_emergency_on_a_waiting_ticket_raises_priority_and_moves_it_to_the_nurses(world):
    world.inbox.open_for_handoff(PATIENT, "billing")
    result = world.inbox.open_for_handoff(PATIENT, "nurse", "emergency", "chest_pain")
    assert result.escalated and result.ticket.id
    assert (result.ticket.team, result.ticket.priority, result.ticket.red_flag_category) == (
        "nurse", Priority.URGENT, "chest_pain")
    queue = world.inbox.queues(actor(world, "nina"))["nurse"]
    assert [t.id for t in queue] == [result.ticket.id]


def test_urgent_tickets_come_first_in_the_queue(world):
    normal = world.inbox.open_for_handoff(OTHER, "nurse").ticket
    world.clock.advance(minutes=1)
    urgent = world.inbox.open_for_handoff(PATIENT, "nurse", "emergency", "stroke").ticket
    assert [t.id for t in world.inbox.queues(actor(world, "nina"))["nurse"]] == [urgent.id, normal.id]


def test_phone_numbers_are_refused_as_conversation_ids(world):
    for bad in ["+15550001111", "0049 171 1234567", "(555) 000-1111", "", "x" * 65, "a b"]:
        with pytest.raises(InvalidInput):
            world.inbox.open_for_handoff(bad, "nurse")
    assert check_conversation_id(PATIENT) == PATIENT
    assert check_conversation_id("rest-demo-7") == "rest-demo-7"


def test_resolved_ticket_is_reopened_by_a_new_request_with_fresh_timers(world):
    nina = actor(world, "nina")
    ticket = world.inbox.open_for_handoff(PATIENT, "nurse").ticket
    world.rasa.say(PATIENT, "hello")
    world.inbox.claim(nina, ticket.id)
    world.inbox.reply(nina, ticket.id, "Hi, this is Nina")
    world.inbox.resolve(nina, ticket.id, "answered")
    world.clock.advance(hours=2)
    reopened = world.inbox.open_for_handoff(PATIENT, "billing")
    assert reopened.reopened and reopened.ticket.id == ticket.id
    t = reopened.ticket
    assert (t.state, t.team, t.assignee_id, t.first_response_at, t.claimed_at, t.reopen_count) == (
        TicketState.WAITING, "billing", None, None, None, 1)
    assert t.opened_at == world.clock()
    # A request long after resolution opens a new ticket instead.
    world.inbox.resolve(actor(world, "sara"), ticket.id, "not_needed")
    world.clock.advance(days=3)
    later = world.inbox.open_for_handoff(PATIENT, "nurse")
    assert later.created and later.ticket.id != ticket.id


# ── claim, reply, note, transfer, release, resolve ──────────────────────────────────────
def test_claim_pauses_the_bot_and_resolve_resumes_it_next_message_goes_to_the_bot(world):
    nina = actor(world, "nina")
    ticket = world.inbox.open_for_handoff(PATIENT, "nurse").ticket
    assert world.rasa.say(PATIENT, "I want a nurse")  # waiting: the bot still answers
    assert world.inbox.mode(PATIENT) == "bot"

    claimed = world.inbox.claim(nina, ticket.id)
    assert claimed.warning is None and claimed.ticket.bot_paused
    assert claimed.ticket.state is TicketState.ASSIGNED and claimed.ticket.assignee == "Nina"
    assert world.rasa.paused(PATIENT) and world.inbox.mode(PATIENT) == "human"
    assert not world.rasa.say(PATIENT, "are you there?")  # Rasa predicts nothing while paused

    resolved = world.inbox.resolve(nina, ticket.id, "answered")
    assert resolved.ticket.state is TicketState.RESOLVED and not resolved.ticket.bot_paused
    assert not world.rasa.paused(PATIENT) and world.inbox.mode(PATIENT) == "bot"
    assert world.rasa.say(PATIENT, "thanks!")  # resolved -> the next message goes to the bot
    actions = [r.action for r in audit_rows(world)]
    assert actions[-5:] == ["ticket_claimed", "bot_paused", "join_notice_sent", "ticket_resolved", "bot_resumed"]


def test_emergency_while_a_human_has_the_conversation(world):
    """The ticket turns urgent and stays with its nurse; the bot stays paused (the safety
    net's guidance is sent by the conversation side regardless, see docs/inbox.md)."""
    nina = actor(world, "nina")
    ticket = world.inbox.open_for_handoff(PATIENT, "nurse").ticket
    world.inbox.claim(nina, ticket.id)
    result = world.inbox.open_for_handoff(PATIENT, "nurse", "emergency", "breathing")
    t = result.ticket
    assert result.escalated and not result.created
    assert (t.state, t.assignee_id, t.priority, t.red_flag_category) == (
        TicketState.ASSIGNED, nina.id, Priority.URGENT, "breathing")
    assert world.inbox.mode(PATIENT) == "human" and world.rasa.paused(PATIENT)
    assert audit_rows(world)[-1].action == "emergency_escalated"


def test_emergency_while_billing_has_it_goes_to_the_nurse_queue_urgently(world):
    bill = actor(world, "bill")
    ticket = world.inbox.open_for_handoff(PATIENT, "billing").ticket
    world.inbox.claim(bill, ticket.id)
    t = world.inbox.open_for_handoff(PATIENT, "nurse", "emergency", "suicidal_thoughts").ticket
    assert (t.state, t.team, t.assignee_id, t.priority) == (
        TicketState.WAITING, "nurse", None, Priority.URGENT)
    assert world.inbox.mode(PATIENT) == "human"  # still paused: a human had it, a nurse takes over
    assert world.inbox.queues(actor(world, "nina"))["nurse"][0].id == ticket.id


def test_reply_goes_to_the_patient_and_notes_never_do(world):
    nina = actor(world, "nina")
    ticket = world.inbox.open_for_handoff(PATIENT, "nurse").ticket
    world.rasa.say(PATIENT, "my results?")
    world.inbox.claim(nina, ticket.id)
    world.clock.advance(minutes=3)
    note = world.inbox.add_note(nina, ticket.id, "Check lab system first")
    reply = world.inbox.reply(nina, ticket.id, "Your results are in the portal.")
    assert reply.delivery == Delivery.SENT.value and note.delivery is None
    assert [d[1] for d in world.replies.delivered] == [JOINED_NURSE_EN.format(name="Nina"),
                                                       "Your results are in the portal."]
    tracker_texts = [e.get("text") for e in world.rasa.events(PATIENT)]
    assert "Your results are in the portal." in tracker_texts
    assert "Check lab system first" not in tracker_texts
    # Stored encrypted: the database file does not hold the texts.
    with world.sessions() as session:
        stored = [m.text_encrypted for m in session.scalars(select(MessageRow))]
    assert stored and all("portal" not in s and "lab system" not in s for s in stored)
    view = world.inbox.ticket(nina, ticket.id)
    # The join notice at the claim was automatic: the first response is what Nina wrote.
    assert view.first_response_at == world.clock() and view.sla.first_response_seconds == 180
    # The page shows the patient, the bot, the reply once (from the tracker) and the note.
    page = world.inbox.open_ticket_page(nina, ticket.id)
    senders = [(i.sender, i.text) for i in page.timeline]
    assert ("patient", "my results?") in senders and ("note", "Check lab system first") in senders
    assert senders.count(("staff", "Your results are in the portal.")) == 1


def test_reply_outside_the_24_hour_window_is_refused_and_kept(world):
    nina = actor(world, "nina")
    ticket = world.inbox.open_for_handoff(PATIENT, "nurse").ticket
    world.rasa.say(PATIENT, "hi", at=dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=25))
    world.inbox.claim(nina, ticket.id)
    reply = world.inbox.reply(nina, ticket.id, "Sorry for the delay")
    assert (reply.delivery, reply.delivery_detail) == (Delivery.REFUSED.value, OUTSIDE_WINDOW_DETAIL)
    assert world.inbox.ticket(nina, ticket.id).first_response_at is None  # not a response
    assert audit_rows(world)[-1].action == "reply_not_delivered"


def test_only_the_owner_replies_and_only_after_claiming(world):
    nina, noah = actor(world, "nina"), actor(world, "noah")
    ticket = world.inbox.open_for_handoff(PATIENT, "nurse").ticket
    with pytest.raises(InvalidTransition):
        world.inbox.reply(nina, ticket.id, "hello")  # waiting: claim first
    world.inbox.claim(nina, ticket.id)
    with pytest.raises(Forbidden):
        world.inbox.reply(noah, ticket.id, "hello")
    with pytest.raises(InvalidTransition):
        world.inbox.claim(noah, ticket.id)  # already claimed
    with pytest.raises(InvalidInput):
        world.inbox.reply(nina, ticket.id, "   ")
    with pytest.raises(InvalidInput):
        world.inbox.reply(nina, ticket.id, "x" * 4097)


def test_transfer_puts_it_back_in_another_queue_and_release_in_the_same(world):
    nina, bill = actor(world, "nina"), actor(world, "bill")
    ticket = world.inbox.open_for_handoff(PATIENT, "nurse").ticket
    world.inbox.claim(nina, ticket.id)
    world.clock.advance(minutes=5)
    moved = world.inbox.transfer(nina, ticket.id, "billing").ticket
    assert (moved.state, moved.team, moved.assignee_id, moved.waiting_since) == (
        TicketState.WAITING, "billing", None, world.clock())
    with pytest.raises(Forbidden):
        world.inbox.ticket(nina, ticket.id)  # not her team any more
    with pytest.raises(InvalidInput):
        world.inbox.transfer(bill, ticket.id, "billing")
    with pytest.raises(InvalidInput):
        world.inbox.transfer(bill, ticket.id, "pharmacy")
    world.inbox.claim(bill, ticket.id)
    released = world.inbox.release(bill, ticket.id).ticket
    assert released.state is TicketState.WAITING and released.team == "billing"
    assert world.inbox.mode(PATIENT) == "human"  # still paused between owners


def test_resolve_needs_a_known_reason_and_happens_once(world):
    nina = actor(world, "nina")
    ticket = world.inbox.open_for_handoff(PATIENT, "nurse").ticket
    with pytest.raises(InvalidInput):
        world.inbox.resolve(nina, ticket.id, "because")
    world.inbox.resolve(nina, ticket.id, "not_needed")  # from waiting: allowed
    with pytest.raises(InvalidTransition):
        world.inbox.resolve(nina, ticket.id, "answered")
    with pytest.raises(InvalidTransition):
        world.inbox.claim(nina, ticket.id)
    world.inbox.add_note(nina, ticket.id, "Patient phoned instead")  # notes after resolution: fine


def test_resolving_closes_the_handoff_requests_behind_the_ticket(world):
    requests = HandoffRequests(world.sessions)
    requests.record("contact-key-1", Team.NURSE, Reason.PATIENT_REQUEST, conversation_id=PATIENT)
    [ticket] = world.inbox.queues(actor(world, "nina"))["nurse"]
    assert ticket.conversation_id == PATIENT and len(requests.open_requests("contact-key-1")) == 1
    world.inbox.resolve(actor(world, "nina"), ticket.id, "answered")
    assert requests.open_requests("contact-key-1") == []


def test_handoff_record_opens_and_escalates_tickets_and_keeps_its_old_api(world):
    requests = HandoffRequests(world.sessions)
    requests.record("key", Team.BILLING, Reason.PATIENT_REQUEST)  # old call: no ticket
    assert world.inbox.queues(actor(world, "sara"))["billing"] == []
    requests.record("key", Team.BILLING, Reason.PATIENT_REQUEST, conversation_id=PATIENT)
    requests.record("key", Team.NURSE, Reason.EMERGENCY, "overdose", conversation_id=PATIENT)
    queues = world.inbox.queues(actor(world, "sara"))
    assert queues["billing"] == []
    [ticket] = queues["nurse"]
    assert (ticket.priority, ticket.red_flag_category) == (Priority.URGENT, "overdose")
    assert len(requests.open_requests("key")) == 3
    with pytest.raises(InvalidInput):
        requests.record("key", Team.NURSE, Reason.PATIENT_REQUEST, conversation_id="+15550001111")


def test_a_concurrent_claim_gets_a_conflict_not_a_double_owner(world):
    nina, noah = actor(world, "nina"), actor(world, "noah")
    ticket = world.inbox.open_for_handoff(PATIENT, "nurse").ticket
    # Noah's page loaded the ticket at version 1; Nina claims first.
    with world.sessions() as session:
        stale = session.get(TicketRow, ticket.id)
        session.expunge(stale)
    world.inbox.claim(nina, ticket.id)
    with world.sessions() as session, session.begin():
        stale = session.merge(stale, load=False)
        stale.assignee_id = noah.id
        from sqlalchemy.orm.exc import StaleDataError
        with pytest.raises(StaleDataError):
            session.flush()
    assert world.inbox.ticket(nina, ticket.id).assignee_id == nina.id


# ── permissions in the domain (the web role matrix covers every endpoint) ───────────────
def test_agents_see_only_their_teams_admins_see_no_conversations(world):
    ticket = world.inbox.open_for_handoff(PATIENT, "nurse").ticket
    assert list(world.inbox.queues(actor(world, "bill"))) == ["billing"]
    assert set(world.inbox.queues(actor(world, "sara"))) == {t.value for t in Team}
    for name in ("bill", "adam"):
        with pytest.raises(Forbidden):
            world.inbox.open_ticket_page(actor(world, name), ticket.id)
        with pytest.raises(Forbidden):
            world.inbox.claim(actor(world, name), ticket.id)
    with pytest.raises(Forbidden):
        world.inbox.queues(actor(world, "adam"))
    with pytest.raises(Forbidden):
        world.inbox.assign(actor(world, "nina"), ticket.id, world.members["noah"].id)
    assigned = world.inbox.assign(actor(world, "sara"), ticket.id, world.members["noah"].id).ticket
    assert assigned.assignee_id == world.members["noah"].id
    with pytest.raises(InvalidInput):
        world.inbox.assign(actor(world, "sara"), ticket.id, world.members["adam"].id)


# ── SLA ─────────────────────────────────────────────────────────────────────────────────
def test_sla_timers_and_overdue_re_offer(world):
    nina = actor(world, "nina")
    ticket = world.inbox.open_for_handoff(PATIENT, "nurse").ticket
    world.clock.advance(minutes=15)
    assert not world.inbox.ticket(nina, ticket.id).sla.overdue  # exactly 15: not yet
    assert world.inbox.sweep_overdue() == []
    world.clock.advance(minutes=1)
    view = world.inbox.ticket(nina, ticket.id)
    assert view.sla.overdue and view.sla.waiting_seconds == 16 * 60 and view.sla.first_response_running
    assert world.inbox.sweep_overdue() == [ticket.id]
    assert world.inbox.sweep_overdue() == []  # re-offered once
    assert audit_rows(world)[-1].action == "ticket_overdue"
    # The setting changes the threshold.
    world.inbox.update_settings(actor(world, "adam"), {"overdue_minutes": 30})
    assert not world.inbox.ticket(nina, ticket.id).sla.overdue
    world.rasa.say(PATIENT, "hello?")
    world.inbox.claim(nina, ticket.id)
    world.clock.advance(minutes=4)
    world.inbox.reply(nina, ticket.id, "Hello!")
    world.clock.advance(minutes=10)
    done = world.inbox.resolve(nina, ticket.id, "answered").ticket
    assert done.sla.first_response_seconds == 20 * 60
    assert done.sla.resolution_seconds == 30 * 60 and not done.sla.resolution_running
    assert done.sla.waiting_seconds is None and not done.sla.overdue


def test_sla_formatting():
    assert sla.human(None) == "—" and sla.human(42) == "42 s" and sla.human(600) == "10 min"
    assert sla.human(3900) == "1 h 05 min" and sla.human(3 * 86400) == "3 d 0 h"


def test_settings_are_checked(world):
    with pytest.raises(InvalidInput):
        world.inbox.update_settings(actor(world, "adam"), {"overdue_minutes": 0})
    with pytest.raises(InvalidInput):
        world.inbox.update_settings(actor(world, "adam"), {"colour": 3})
    with pytest.raises(Forbidden):
        world.inbox.update_settings(actor(world, "sara"), {"overdue_minutes": 5})


# ── telling the patient who has joined ─────────────────────────────────────────────────
def test_claiming_tells_the_patient_who_has_joined_once_through_the_reply_gateway(world):
    nina, sara = actor(world, "nina"), actor(world, "sara")
    ticket = world.inbox.open_for_handoff(PATIENT, "nurse").ticket
    world.rasa.say(PATIENT, "I need a nurse")
    claimed = world.inbox.claim(nina, ticket.id)
    notice = JOINED_NURSE_EN.format(name="Nina")
    assert claimed.warning is None
    assert world.replies.delivered[-1][:2] == (PATIENT, notice)  # sent after the bot was paused
    assert [e["event"] for e in world.rasa.events(PATIENT)][-2:] == ["pause", "bot"]
    # Once in the transcript, as the inbox's own words in Nina's name, not as her reply.
    page = world.inbox.open_ticket_page(nina, ticket.id)
    assert [(i.sender, i.author) for i in page.timeline if i.text == notice] == [("notice", "Nina")]
    row = [r for r in audit_rows(world) if r.action == "join_notice_sent"][-1]
    assert (row.actor, row.ticket_id, row.conversation_id) == ("system", ticket.id, PATIENT)
    assert "staff=nina language=en delivery=sent" in row.detail and "joined" not in row.detail
    assert world.inbox.ticket(nina, ticket.id).first_response_at is None  # automatic: not a response
    # A supervisor hands it to Noah: the patient hears who has the chat now. Assigned to the
    # same owner again: nothing new to say.
    world.inbox.assign(sara, ticket.id, world.members["noah"].id)
    assert world.replies.delivered[-1][1] == JOINED_NURSE_EN.format(name="Noah")
    sent = len(world.replies.delivered)
    world.inbox.assign(sara, ticket.id, world.members["noah"].id)
    assert len(world.replies.delivered) == sent


def test_staff_without_a_name_of_their_own_are_announced_by_their_team(world):
    # No display name given: the account shows its login name, which is not for patients.
    account = world.staff.create("r.klein", PASSWORD, Role.AGENT, ["reception"], by=actor(world, "adam"))
    ticket = world.inbox.open_for_handoff(PATIENT, "reception").ticket
    world.rasa.say(PATIENT, "hello")
    world.inbox.claim(account.member.actor, ticket.id)
    assert world.replies.delivered[-1][1] == (
        "Someone from our reception team has joined the chat and will reply to you here.")


def test_when_the_patient_cannot_be_told_staff_are(world):
    nina = actor(world, "nina")
    ticket = world.inbox.open_for_handoff(PATIENT, "nurse").ticket
    world.rasa.say(PATIENT, "hi", at=dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=25))
    result = world.inbox.claim(nina, ticket.id)
    assert result.ticket.state is TicketState.ASSIGNED and result.ticket.bot_paused
    assert result.warning == f"The patient was not told that Nina joined: {OUTSIDE_WINDOW_DETAIL}."
    assert audit_rows(world)[-1].action == "join_notice_not_delivered"
    [notice] = [i for i in world.inbox.open_ticket_page(nina, ticket.id).timeline if i.sender == "notice"]
    assert (notice.delivery, notice.delivery_detail) == (Delivery.REFUSED.value, OUTSIDE_WINDOW_DETAIL)


# ── who the patient is ──────────────────────────────────────────────────────────────────
FRIENDLY = re.compile(r"^Patient [0-9A-HJKMNP-TV-Z]{4}$")  # Crockford base 32: no I, L, O, U


def test_every_view_names_the_patient_with_a_stable_friendly_label(world):
    nina = actor(world, "nina")
    ticket = world.inbox.open_for_handoff(PATIENT, "nurse").ticket
    other = world.inbox.open_for_handoff(OTHER, "nurse").ticket
    assert FRIENDLY.match(ticket.patient_label) and ticket.patient_label != other.patient_label
    # Derived from the pseudonym alone: the same in every process and after every upgrade
    # (staff write it down, say it on the phone).
    assert (ticket.patient_label, other.patient_label) == ("Patient 9M1A", "Patient HV8X")
    assert FRIENDLY.match(friendly_label("rest-demo-7"))
    assert {t.id: t.patient_label for t in world.inbox.queues(nina)["nurse"]} == {
        ticket.id: "Patient 9M1A", other.id: "Patient HV8X"}
    assert world.inbox.open_ticket_page(nina, ticket.id).patient.label == "Patient 9M1A"


def test_the_ticket_page_names_a_patient_the_clinic_knows_and_counts_earlier_tickets(world):
    nina, sara = actor(world, "nina"), actor(world, "sara")
    contact = "c" * 64  # the pseudonymous contact key both the booking and the handoff store
    SqlSchedulingBackend(world.sessions).register_patient(contact, "Anna Petrova", dt.date(1984, 5, 17),
                                                          PATIENT, "whatsapp")
    first = world.inbox.open_for_handoff(PATIENT, "nurse", contact_key=contact).ticket
    page = world.inbox.open_ticket_page(nina, first.id)
    assert (page.patient.name, page.patient.birth_date, page.patient.earlier_tickets) == (
        "Anna Petrova", dt.date(1984, 5, 17), 0)
    assert audit_rows(world)[-1].action == "ticket_viewed"  # seen on an audited view only
    assert "Anna" not in repr(world.inbox.queues(nina))  # the queue shows labels only
    world.inbox.resolve(nina, first.id, "answered")
    world.clock.advance(days=3)
    second = world.inbox.open_for_handoff(PATIENT, "billing", contact_key=contact).ticket
    assert second.id != first.id
    assert world.inbox.open_ticket_page(sara, second.id).patient.earlier_tickets == 1
    # A contact the clinic has no record of: the label only.
    unknown = world.inbox.open_for_handoff(OTHER, "nurse", contact_key="d" * 64).ticket
    facts = world.inbox.open_ticket_page(nina, unknown.id).patient
    assert (facts.known, facts.name, facts.birth_date, facts.label) == (False, None, None, unknown.patient_label)


# ── the transcript as the patient saw it, codes in words ────────────────────────────────
def test_the_transcript_shows_what_the_patient_saw(world):
    at = dt.datetime(2026, 3, 2, 8, 0, tzinfo=dt.timezone.utc).timestamp()
    RasaHttp(world.rasa.url, world.rasa.token).append(PATIENT, [
        {"event": "bot", "text": "Our *nurse team* isn't available right now.", "timestamp": at,
         "data": {"buttons": [{"title": "Call me back", "payload": "/request_callback"},
                              {"title": "I'll wait here", "payload": "/deny"}]}},
        # What the WhatsApp channel writes: the payload for the assistant, the title with it.
        {"event": "user", "text": "/deny", "timestamp": at + 10,
         "metadata": {"whatsapp": {"kind": "button_reply", "redacted": [], "title": "I'll wait here"}}},
        # A channel that records no title: the button with that payload, last shown.
        {"event": "user", "text": "/request_callback", "timestamp": at + 20},
        {"event": "user", "text": '/media_message{"media_kind":"voice"}', "timestamp": at + 30},
        {"event": "user", "text": "why /deny?", "timestamp": at + 40},
    ])
    ticket = world.inbox.open_for_handoff(PATIENT, "nurse").ticket
    timeline = world.inbox.open_ticket_page(actor(world, "nina"), ticket.id).timeline
    assert [(i.sender, i.text, i.tapped) for i in timeline] == [
        ("bot", "Our *nurse team* isn't available right now.", False),
        ("patient", "I'll wait here", True),
        ("patient", "Call me back", True),
        ("patient", "[voice message]", False),
        ("patient", "why /deny?", False),  # typed text stays as typed
    ]
    assert timeline[0].buttons == ("Call me back", "I'll wait here")


def test_reasons_and_red_flag_categories_are_words_for_staff():
    assert set(HANDOFF_REASON_LABELS) == set(HANDOFF_REASONS)
    assert set(TEAM_LABELS) == {team.value for team in Team}
    assert team_label("billing") == "Billing & insurance"
    assert resolution_label("answered") == "Question answered"
    assert reason_label("patient_request") == "Patient asked for a person"
    assert red_flag_label("chest_pain") == "Chest pain or pressure"
    # Every category: the label clinicians reviewed in the default language's list.
    listed = yaml.safe_load((DEFAULT_RED_FLAGS_DIR / "en.yml").read_text(encoding="utf-8"))["categories"]
    assert {key: red_flag_label(key) for key in listed} == {key: body["label"] for key, body in listed.items()}
    assert red_flag_label("new_category") == "New category" and reason_label("new_reason") == "New reason"


# ── Rasa down ───────────────────────────────────────────────────────────────────────────
def test_rasa_down_claim_still_works_warns_and_sync_catches_up(world):
    nina = actor(world, "nina")
    ticket = world.inbox.open_for_handoff(PATIENT, "nurse").ticket
    world.rasa.down = True
    result = world.inbox.claim(nina, ticket.id)
    assert result.ticket.state is TicketState.ASSIGNED and not result.ticket.bot_paused
    assert "could not be paused" in result.warning
    page = world.inbox.open_ticket_page(nina, ticket.id)
    assert page.transcript_error and "could not be loaded" in page.transcript_error
    with pytest.raises(TranscriptUnavailable):
        world.inbox.transcripts.messages(PATIENT)
    assert world.inbox.sync_bot() == 1
    world.rasa.down = False
    assert world.inbox.sync_bot() == 0
    assert world.rasa.paused(PATIENT) and world.inbox.ticket(nina, ticket.id).bot_paused


def test_wrong_rasa_token_is_reported_clearly(world):
    world.rasa.token, real = "other", world.rasa.token
    try:
        with pytest.raises(TranscriptUnavailable, match="token"):
            world.inbox.transcripts.messages(PATIENT)
    finally:
        world.rasa.token = real


# ── tasks ───────────────────────────────────────────────────────────────────────────────
def test_call_back_tasks(world):
    nina, bill = actor(world, "nina"), actor(world, "bill")
    task = world.inbox.request_callback(PATIENT, "nurse", "Prefers mornings")
    assert task.created_by == "bot" and task.note == "Prefers mornings"
    assert [t.id for t in world.inbox.tasks(nina)] == [task.id]
    assert world.inbox.tasks(bill) == []
    with pytest.raises(Forbidden):
        world.inbox.complete_task(bill, task.id)
    done = world.inbox.complete_task(nina, task.id)
    assert done.state == "done" and world.inbox.tasks(nina) == []
    with pytest.raises(Conflict):
        world.inbox.complete_task(nina, task.id)
    with pytest.raises(Forbidden):
        world.inbox.request_callback(PATIENT, "nurse", actor=bill)


# ── staff accounts ──────────────────────────────────────────────────────────────────────
def test_login_with_password_and_totp(world):
    nina = world.members["nina"]
    assert world.staff.check_password("nina", PASSWORD).id == nina.id
    assert world.staff.provisioning(nina.id) is not None  # shown until the first good code
    with pytest.raises(LoginFailed):
        world.staff.check_totp(nina.id, "000000" if world.totp("nina") != "000000" else "111111")
    code = world.totp("nina")
    assert world.staff.check_totp(nina.id, code).totp_confirmed
    with pytest.raises(LoginFailed):
        world.staff.check_totp(nina.id, code)  # replayed
    assert world.staff.provisioning(nina.id) is None
    with world.sessions() as session:
        row = session.get(StaffRow, nina.id)
        assert row.password_hash.startswith("$argon2id$")
        assert world.secrets["nina"] not in row.totp_secret_encrypted


def test_wrong_passwords_lock_the_account_and_errors_never_say_why(world):
    for _ in range(5):
        with pytest.raises(LoginFailed, match="wrong user name, password or code"):
            world.staff.check_password("nina", "wrong password!")
    with pytest.raises(LoginFailed):
        world.staff.check_password("nina", PASSWORD)  # locked now
    with pytest.raises(LoginFailed, match="wrong user name, password or code"):
        world.staff.check_password("nobody", PASSWORD)
    world.clock.advance(minutes=16)
    assert world.staff.check_password("nina", PASSWORD)
    details = [r.detail for r in audit_rows(world) if r.action == "login_failed"]
    assert "unknown user" in details and any("locked for" in d for d in details)
    assert all("nobody" not in r.detail and r.actor != "nobody" for r in audit_rows(world))


def test_disabled_accounts_cannot_log_in(world):
    world.staff.set_disabled(world.members["bill"].id, True, by=actor(world, "adam"))
    with pytest.raises(LoginFailed):
        world.staff.check_password("bill", PASSWORD)
    with pytest.raises(InvalidInput):
        world.staff.set_disabled(world.members["adam"].id, True, by=actor(world, "adam"))


def test_account_rules(world):
    adam = actor(world, "adam")
    with pytest.raises(InvalidInput):
        world.staff.create("short", "tooshort", Role.AGENT, ["nurse"], by=adam)
    with pytest.raises(InvalidInput):
        world.staff.create("ann", PASSWORD, Role.AGENT, [], by=adam)  # agent without team
    with pytest.raises(InvalidInput):
        world.staff.create("Bad Name", PASSWORD, Role.AGENT, ["nurse"], by=adam)
    with pytest.raises(Conflict):
        world.staff.create("nina", PASSWORD, Role.AGENT, ["nurse"], by=adam)


# ── the audit log ───────────────────────────────────────────────────────────────────────
def test_every_view_and_action_writes_exactly_one_row_naming_who_and_what(world):
    nina, sara = actor(world, "nina"), actor(world, "sara")
    world.rasa.say(PATIENT, "hi")
    steps = [
        ("ticket_opened", lambda: world.inbox.open_for_handoff(PATIENT, "nurse")),
        ("ticket_viewed", lambda: world.inbox.open_ticket_page(nina, 1)),
        ("note_added", lambda: world.inbox.add_note(nina, 1, "note")),
        ("ticket_assigned", lambda: world.inbox.assign(sara, 1, nina.id)),
        ("reply_sent", lambda: world.inbox.reply(nina, 1, "hello")),
        ("ticket_transferred", lambda: world.inbox.transfer(nina, 1, "billing")),
        ("ticket_claimed", lambda: world.inbox.claim(actor(world, "bill"), 1)),
        ("ticket_released", lambda: world.inbox.release(actor(world, "bill"), 1)),
        ("task_created", lambda: world.inbox.request_callback(PATIENT, "billing", ticket_id=1, actor=sara)),
        ("task_done", lambda: world.inbox.complete_task(sara, 1)),
        ("ticket_resolved", lambda: world.inbox.resolve(sara, 1, "answered")),
        ("settings_changed", lambda: world.inbox.update_settings(actor(world, "adam"), {"overdue_minutes": 20})),
    ]
    for action, step in steps:
        before = world.audit.count()
        step()
        rows = audit_rows(world)[before:]
        # bot_paused / bot_resumed follow claims and resolutions: what Rasa confirmed; the
        # join notice follows claims and assignments: the system told the patient
        main = [r for r in rows if r.action not in ("bot_paused", "bot_resumed", "join_notice_sent")]
        assert all(r.actor == "system" for r in rows if r not in main)
        assert [r.action for r in main] == [action], action
        assert aware(main[0].at) == world.clock()
        if action not in ("settings_changed",):
            assert main[0].conversation_id == PATIENT
    assert {r.actor for r in audit_rows(world)} >= {"bot", "nina", "sara", "bill", "adam", "system"}
    # No message text in the audit log.
    assert all("hello" not in r.detail and "note" != r.detail for r in audit_rows(world))
    assert world.audit.verify().ok


def test_failed_actions_write_nothing(world):
    world.inbox.open_for_handoff(PATIENT, "nurse")
    before = world.audit.count()
    for attempt in (lambda: world.inbox.claim(actor(world, "bill"), 1),
                    lambda: world.inbox.reply(actor(world, "nina"), 1, "x"),
                    lambda: world.inbox.resolve(actor(world, "nina"), 1, "nope")):
        with pytest.raises(InboxError):
            attempt()
    assert world.audit.count() == before


def test_the_database_refuses_to_change_or_delete_audit_rows(world):
    world.inbox.open_for_handoff(PATIENT, "nurse")
    for statement in ("UPDATE inbox_audit SET detail = 'x'", "DELETE FROM inbox_audit"):
        with pytest.raises(Exception, match="append-only"):
            with world.sessions.begin() as session:
                session.execute(text(statement))
    assert not hasattr(world.audit, "delete") and not hasattr(world.audit, "update")


def test_the_hash_chain_shows_tampering(world, tmp_path):
    world.inbox.open_for_handoff(PATIENT, "nurse")
    world.inbox.open_for_handoff(OTHER, "billing")
    world.inbox.open_ticket_page(actor(world, "nina"), 1)
    assert world.audit.verify().ok
    # Someone with direct database access drops the trigger and edits a row.
    with world.sessions.begin() as session:
        session.execute(text("DROP TRIGGER inbox_audit_no_update"))
        target = session.scalars(select(AuditRow).where(AuditRow.action == "ticket_viewed")).one()
        session.execute(text("UPDATE inbox_audit SET actor = 'sara' WHERE id = :id"), {"id": target.id})
    check = world.audit.verify()
    assert not check.ok and check.first_bad_id == target.id and "changed" in check.problem


def test_the_chain_stays_linear_under_concurrent_writers(world):
    import threading

    errors = []

    def work(i):
        try:
            world.inbox.open_for_handoff(conversation(f"p{i}"), "nurse")
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    check = world.audit.verify()
    assert check.ok and check.rows == world.audit.count()
    rows = audit_rows(world)
    assert len({r.prev_hash for r in rows}) == len(rows)
