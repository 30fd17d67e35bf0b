"""The conversation side of the staff inbox, below the end-to-end test: resolve → resume →
the back-with-the-assistant trigger; templates outside the 24-hour window; the WhatsApp
gateway's outcome mapping; the patient side (wait, call-back, ratings); the paused-chat
safety net's texts and detector (the same as the domain's and the NLU component's)."""

from __future__ import annotations

import datetime as dt

import pytest
import yaml

from clinic.handoff.safety_net import EmergencyTexts, detect
from clinic.inbox.model import Delivery, InvalidInput
from clinic.inbox.patient_side import PatientSide
from clinic.inbox.ports import OUTSIDE_WINDOW_DETAIL
from clinic.inbox.rasa_http import RESOLVED_INTENT
from clinic.inbox.testing import FakeRasa
from clinic.settings import PROJECT_ROOT, load_settings
from gateway.sender import OUTSIDE_WINDOW, UNKNOWN_CONTACT, SendOutcome
from inbox.whatsapp_gateway import outcome_to_result
from tests.inbox_support import build_world, conversation

PATIENT = conversation("wiring-patient")
SETTINGS = load_settings()


@pytest.fixture(scope="module")
def rasa():
    fake = FakeRasa()
    fake.start()
    yield fake
    fake.stop()


@pytest.fixture
def world(tmp_path, rasa):
    rasa.trackers.clear()
    rasa.triggered.clear()
    rasa.down = False
    return build_world(tmp_path / "clinic.db", rasa)


def nina(world):
    return world.members["nina"].actor


# ── resolve → resume → the assistant says so and asks for a rating ────────────────────────
def test_resolve_resumes_then_triggers_the_rating_question_and_the_next_message_goes_to_the_bot(world):
    ticket = world.inbox.open_for_handoff(PATIENT, "nurse").ticket
    world.inbox.claim(nina(world), ticket.id)
    assert world.rasa.triggered == []  # nothing on claim
    world.inbox.resolve(nina(world), ticket.id, "answered")
    assert world.rasa.triggered == [(PATIENT, RESOLVED_INTENT)]
    events = [e["event"] for e in world.rasa.events(PATIENT)]
    assert events[-1] == "resume"  # resumed before the trigger: the bot can answer it
    assert world.rasa.say(PATIENT, "one more question")


def test_emergency_while_paused_keeps_the_bot_paused_and_the_ticket_urgent(world):
    ticket = world.inbox.open_for_handoff(PATIENT, "reception").ticket
    world.inbox.claim(world.members["sara"].actor, ticket.id)
    escalated = world.inbox.open_for_handoff(PATIENT, "nurse", "emergency", "chest_pain").ticket
    assert (escalated.team, escalated.state.value, escalated.priority.value) == ("nurse", "waiting", "urgent")
    assert world.rasa.paused(PATIENT) and world.inbox.mode(PATIENT) == "human"
    assert not world.rasa.say(PATIENT, "hello?")


# ── templates outside the 24-hour window ──────────────────────────────────────────────────
def test_a_refused_reply_then_an_approved_template(world):
    old = dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=30)
    world.rasa.say(PATIENT, "hello", at=old)
    ticket = world.inbox.open_for_handoff(PATIENT, "nurse").ticket
    world.inbox.claim(nina(world), ticket.id)
    refused = world.inbox.reply(nina(world), ticket.id, "Are you still there?")
    assert (refused.delivery, refused.delivery_detail) == ("refused", OUTSIDE_WINDOW_DETAIL)

    names = [t.name for t in world.inbox.templates]
    assert names == ["visit_followup", "recall_reminder", "results_ready"]
    sent = world.inbox.send_template(nina(world), ticket.id, "results_ready", ["Ana"])
    assert sent.delivery == "sent"
    assert sent.text.startswith("[template results_ready] Hi Ana, your test results are ready.")
    assert world.replies.delivered[-1][1] == sent.text
    page = world.inbox.open_ticket_page(nina(world), ticket.id)
    assert [i.text for i in page.timeline].count("Hi Ana, your test results are ready. For your privacy they "
                                                  "are not sent on WhatsApp: please sign in to the patient "
                                                  "portal or call reception.") == 1


@pytest.mark.parametrize("name, values, problem", [
    ("results_ready", [], "needs 1 value"),
    ("results_ready", ["Ana\nsecond line"], "one line"),
    ("no_such_template", ["Ana"], "unknown template"),
])
def test_template_values_are_checked(world, name, values, problem):
    ticket = world.inbox.open_for_handoff(PATIENT, "nurse").ticket
    world.inbox.claim(nina(world), ticket.id)
    with pytest.raises(InvalidInput, match=problem):
        world.inbox.send_template(nina(world), ticket.id, name, values)


def test_templates_come_from_the_clinic_file(tmp_path, monkeypatch):
    from clinic.inbox.templates import load_templates

    path = tmp_path / "templates.yml"
    path.write_text(yaml.safe_dump({"templates": [{"name": "we_tried_to_reach_you", "language": "de",
                                                   "body": "Hallo {{1}}", "params": ["Vorname"]}]}))
    [template] = load_templates({"INBOX_TEMPLATES_FILE": str(path)})
    assert (template.name, template.language, template.params) == ("we_tried_to_reach_you", "de", ("Vorname",))
    assert template.render(["Ana"]) == "Hallo Ana"


@pytest.mark.parametrize("language, code, body_start", [
    ("ru", "ru", "Здравствуйте, Анна!"), ("zh", "zh_CN", "您好，Анна！"), ("en", "en_US", "Hi Анна,")])
def test_the_whatsapp_gateway_sends_the_version_in_the_patients_language(world, language, code, body_start):
    """What Meta receives: the template's name with the language code of the version the
    inbox chose for the patient (the simulator approves all three)."""
    from inbox.whatsapp_gateway import WhatsAppReplyGateway

    gateway = WhatsAppReplyGateway.__new__(WhatsAppReplyGateway)  # no sender: capture the message
    sent = []
    gateway._deliver = lambda conversation_id, message, kind, text, message_id: (
        sent.append((message, text)) or outcome_to_result(SendOutcome("sent", wamid="wamid.1")))
    [offer] = [o for o in world.inbox.template_offers(language) if o.name == "results_ready"]
    rendered = offer.template.render(["Анна"])
    assert gateway.send_template(PATIENT, offer.template, ["Анна"], rendered, 1).ok
    [(message, text)] = sent
    payload = message.to_payload("15550001111")["template"]
    assert (payload["name"], payload["language"]) == ("results_ready", {"code": code})
    assert payload["components"][0]["parameters"] == [{"type": "text", "text": "Анна"}]
    assert text.startswith(body_start)


@pytest.mark.parametrize("outcome, delivery, detail", [
    (SendOutcome("sent", wamid="wamid.1"), Delivery.SENT, ""),
    (SendOutcome("refused", detail=OUTSIDE_WINDOW), Delivery.REFUSED, OUTSIDE_WINDOW_DETAIL),
    (SendOutcome("refused", detail=UNKNOWN_CONTACT), Delivery.REFUSED, "not a WhatsApp chat"),
    (SendOutcome("dead", code=131026, detail="131026: undeliverable"), Delivery.FAILED, "131026"),
])
def test_whatsapp_outcomes_become_what_staff_see(outcome, delivery, detail):
    result = outcome_to_result(outcome)
    assert result.delivery is delivery and detail in result.detail


# ── the patient side ─────────────────────────────────────────────────────────────────────
def test_ratings_belong_to_the_last_resolved_ticket_once(world):
    clock = world.clock
    side = PatientSide(world.sessions, clock=clock)
    assert side.rate(PATIENT, 5) is None  # nothing resolved yet
    ticket = world.inbox.open_for_handoff(PATIENT, "billing").ticket
    world.inbox.claim(world.members["bill"].actor, ticket.id)
    world.inbox.resolve(world.members["bill"].actor, ticket.id, "answered")
    assert side.rate(PATIENT, 2) == ticket.id
    assert side.rate(PATIENT, 4) == ticket.id  # a second tap replaces the first
    assert side.rating_for(ticket.id) == 4
    with pytest.raises(InvalidInput):
        side.rate(PATIENT, 6)
    clock.advance(hours=25)
    assert side.rate(PATIENT, 3) is None  # too late to belong to that conversation
    assert side.rating_for(ticket.id) == 4


def test_wait_estimate_counts_only_those_ahead(world):
    side = PatientSide(world.sessions, minutes_per_patient=4, clock=world.clock)
    first, second = conversation("w1"), conversation("w2")
    world.inbox.open_for_handoff(first, "reception")
    world.clock.advance(minutes=1)
    world.inbox.open_for_handoff(second, "reception")
    assert side.waiting_ahead("reception", first) == 0
    assert side.expected_wait_minutes("reception", second) == 8
    assert side.expected_wait_minutes("nurse") == 4
    ticket = world.inbox.open_for_handoff(first, "reception").ticket
    world.inbox.claim(world.members["sara"].actor, ticket.id)
    assert side.waiting_ahead("reception", second) == 0 and side.mode(first) == "human"


# ── the safety net while paused: same texts, same detector ──────────────────────────────
def test_paused_safety_net_uses_the_domain_texts():
    texts = EmergencyTexts.from_domain(SETTINGS)
    domain = yaml.safe_load((PROJECT_ROOT / "domain" / "safety.yml").read_text())["responses"]
    assert f"call {SETTINGS.emergency_number} now" in texts.for_response("emergency")
    assert SETTINGS.crisis_line in texts.for_response("crisis")
    assert "{" not in texts.for_response("crisis") + texts.flagged + texts.not_flagged
    assert texts.flagged.startswith(domain["utter_emergency_flagged"][0]["text"].split("{")[0].strip())


def test_paused_safety_net_detector_matches_the_nlu_component():
    assert detect("my chest hurts, crushing pain").category == "chest_pain"
    both = detect("chest pain and I want to end my life")
    assert both.response == "crisis"  # crisis wording wins, as in the NLU component
    assert detect("what are your opening hours?") is None and detect("") is None
