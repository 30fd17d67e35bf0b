"""Sending: 24-hour window, durable record, dead letters, Rasa responses → WhatsApp shapes.

A small Graph API stand-in runs on 127.0.0.1 (real HTTP) and answers as scripted.
"""

import datetime as dt
import json

import pytest
import pytest_asyncio
from aiohttp import web

from clinic.db import create_schema, make_engine, make_session_factory
from clinic.messaging.store import WhatsAppStore
from clinic.privacy import ContactCipher
from connectors.whatsapp.output import WhatsAppOutput
from gateway.render import render
from gateway.sender import Sender
from tests.connector_support import ENCRYPTION_KEY
from whatsapp.client import GraphClient
from whatsapp.metrics import Metrics
from whatsapp.outbound import ListMessage, Template, Text

PATIENT = "16505551234"
NOW = dt.datetime(2026, 11, 22, 12, 0, tzinfo=dt.timezone.utc)


class GraphStandIn:
    def __init__(self):
        self.received: list[dict] = []
        self.script: list[tuple[int, dict]] = []  # responses to give, in order; then success

    async def messages(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.received.append(body)
        if body.get("status") == "read":
            return web.json_response({"success": True})
        if self.script:
            status, payload = self.script.pop(0)
            return web.json_response(payload, status=status)
        return web.json_response({"messaging_product": "whatsapp",
                                  "contacts": [{"input": body["to"], "wa_id": body["to"]}],
                                  "messages": [{"id": f"wamid.OUT{len(self.received)}"}]})


@pytest_asyncio.fixture
async def graph():
    stand_in = GraphStandIn()
    app = web.Application()
    app.router.add_post("/v23.0/{phone}/messages", stand_in.messages)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    stand_in.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"
    yield stand_in
    await runner.cleanup()


@pytest_asyncio.fixture
async def sender(graph, tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'out.db'}")
    create_schema(engine)
    store = WhatsAppStore(make_session_factory(engine))
    cipher = ContactCipher(ENCRYPTION_KEY.encode())
    client = GraphClient(graph.url, "v23.0", "123", "token", rate_per_second=None,
                         base_delay=0.001, max_delay=0.01)
    metrics = Metrics()
    sender = Sender(client, store, cipher, metrics, clock=lambda: NOW)
    sender.store, sender.metrics = store, metrics
    yield sender
    await client.close()


def add_contact(sender, conversation="c1", last_inbound=NOW - dt.timedelta(hours=1)):
    encrypted = sender._cipher.encrypt(PATIENT)
    sender.store.accept([], {conversation: (encrypted, last_inbound)})


@pytest.mark.asyncio
async def test_sent_message_is_recorded_without_the_address(sender, graph):
    add_contact(sender)
    outcome = await sender.send("c1", Text("Hello"), "text")
    assert outcome.state == "sent" and outcome.wamid == "wamid.OUT1"
    assert graph.received[0]["to"] == PATIENT and graph.received[0]["text"]["body"] == "Hello"
    [row] = sender.store.outbound("c1")
    assert (row.state, row.wamid, row.payload_json) == ("sent", "wamid.OUT1", None)


@pytest.mark.asyncio
async def test_outside_the_window_only_templates_go_out(sender, graph):
    add_contact(sender, last_inbound=NOW - dt.timedelta(hours=24, seconds=1))
    refused = await sender.send("c1", Text("Hello"), "text")
    sent = await sender.send("c1", Template("appointment_reminder", body_params=("a", "b", "c")), "template")
    assert refused.state == "refused" and refused.detail == "outside_window"
    assert sent.state == "sent"
    assert [m["type"] for m in graph.received] == ["template"]  # the text never reached Meta
    refused_row = sender.store.outbound("c1")[0]
    assert refused_row.state == "refused" and "outside_window" in refused_row.error_detail
    assert json.loads(refused_row.payload_json)["text"]["body"] == "Hello"  # kept, not lost
    assert PATIENT not in refused_row.payload_json
    assert sender.metrics.snapshot()["outbound_refused_outside_window"] == 1


@pytest.mark.asyncio
async def test_permanent_error_becomes_a_dead_letter(sender, graph):
    add_contact(sender)
    graph.script = [(400, {"error": {"message": "(#131026) Message undeliverable", "code": 131026,
                                      "error_data": {"details": "Receiver is incapable"}}})]
    outcome = await sender.send("c1", Text("Hello"), "text")
    assert outcome.state == "dead" and outcome.code == 131026
    [row] = sender.store.outbound("c1")
    assert (row.state, row.error_code, row.attempts) == ("dead", 131026, 1)
    assert "incapable" in row.error_detail and json.loads(row.payload_json)["type"] == "text"


@pytest.mark.asyncio
async def test_transient_errors_are_retried(sender, graph):
    add_contact(sender)
    busy = {"error": {"message": "(#130429) Rate limit hit", "code": 130429}}
    graph.script = [(429, busy), (500, {"error": {"code": 131000, "message": "x"}})]
    outcome = await sender.send("c1", Text("Hello"), "text")
    assert outcome.state == "sent" and len(graph.received) == 3
    assert sender.store.outbound("c1")[0].attempts == 3


@pytest.mark.asyncio
async def test_unknown_conversation_is_refused_not_dropped(sender, graph):
    outcome = await sender.send("nobody", Text("Hello"), "text")
    assert outcome.state == "refused" and graph.received == []
    assert sender.store.outbound("nobody")[0].state == "refused"


@pytest.mark.asyncio
async def test_rasa_buttons_become_reply_buttons_or_a_list(sender, graph):
    add_contact(sender)
    output = WhatsAppOutput(sender)
    three = [{"title": "Book appointment", "payload": "/book_appointment"},
             {"title": "Insurance & billing", "payload": "/insurance_billing"},
             {"title": "Talk to a nurse", "payload": '/request_human{"team": "nurse"}'}]
    await output.send_text_with_buttons("c1", "How can I help?", three)
    four = three + [{"title": "A title that is far too long for a button", "payload": "/menu"}]
    await output.send_text_with_buttons("c1", "More?", four)
    buttons, listing = (m["interactive"] for m in graph.received)
    assert buttons["type"] == "button"
    assert [b["reply"]["id"] for b in buttons["action"]["buttons"]] == [b["payload"] for b in three]
    assert listing["type"] == "list"
    rows = listing["action"]["sections"][0]["rows"]
    assert len(rows) == 4 and all(len(r["title"]) <= 24 for r in rows)


FOUR_CHOICES = [{"title": "Записаться на приём", "payload": "/book_appointment"},
                {"title": "Мои записи", "payload": "/list_appointments"},
                {"title": "Счета и страховка", "payload": "/insurance_billing"},
                {"title": "Связаться с медсестрой", "payload": '/request_human{"team": "nurse"}'}]


@pytest.mark.asyncio
@pytest.mark.parametrize("language, button, prompt", [
    ("ru", "Варианты", "Выберите вариант:"),
    ("zh", "选项", "请选择一项："),
    ("en", "Options", "Please choose an option:"),
    (None, "Options", "Please choose an option:"),  # nothing known: the clinic's default
    ("de", "Options", "Please choose an option:"),  # not a language the clinic speaks
])
async def test_a_list_says_its_button_section_and_prompt_in_the_conversations_language(language, button, prompt):
    # A body over the interactive limit goes first as text, then the list under the prompt;
    # 12 choices make two lists, the second under the prompt too.
    twelve = [{"title": f"{c['title']} {i}", "payload": f"{c['payload']}{i}"}
              for i in range(3) for c in FOUR_CHOICES]
    replies = [{"text": "Чем могу помочь?", "buttons": FOUR_CHOICES},
               {"text": "x" * 1100, "buttons": twelve}]
    messages = await render("c1", replies, language)
    lists = [m for m, kind in messages if isinstance(m, ListMessage)]
    assert len(lists) == 3
    assert {(m.button, m.sections[0].title) for m in lists} == {(button, button)}
    assert [m.body for m in lists] == ["Чем могу помочь?", prompt, prompt]
    payload = lists[0].to_payload("16505551234")["interactive"]
    assert payload["action"]["button"] == button and payload["action"]["sections"][0]["title"] == button


@pytest.mark.asyncio
async def test_reply_buttons_are_unchanged_by_the_language():
    three = FOUR_CHOICES[:2]
    (message, kind), = await render("c1", [{"text": "Что дальше?", "buttons": three}], "ru")
    assert kind == "choices" and not isinstance(message, ListMessage)


@pytest.mark.asyncio
async def test_the_reminder_channel_reads_each_contacts_language(sender, graph):
    """Rasa's output channel serves every conversation (reminders): it asks for the language
    of the one it is sending to, and a failed look-up still sends the list, in English."""
    add_contact(sender, "ru-contact")
    add_contact(sender, "zh-contact")
    add_contact(sender, "unknown")
    languages = {"ru-contact": "ru", "zh-contact": "zh"}

    def language_of(conversation_id):
        if conversation_id == "unknown":
            raise RuntimeError("database down")
        return languages[conversation_id]

    output = WhatsAppOutput(sender, language_of=language_of)
    for conversation in ("ru-contact", "zh-contact", "unknown"):
        await output.send_text_with_buttons(conversation, "?", FOUR_CHOICES)
    assert [m["interactive"]["action"]["button"] for m in graph.received] == ["Варианты", "选项", "Options"]


@pytest.mark.asyncio
async def test_long_text_is_split_and_long_bodies_go_before_the_buttons(sender, graph):
    add_contact(sender)
    output = WhatsAppOutput(sender)
    sentence = "This sentence is part of a very long answer. "
    await output.send_text_message("c1", sentence * 200)  # ~9,000 characters
    texts = [m["text"]["body"] for m in graph.received]
    assert len(texts) == 3 and all(len(t) <= 4096 for t in texts)
    assert all(t.endswith(".") for t in texts[:-1])  # cut at sentence boundaries
    graph.received.clear()
    await output.send_text_with_buttons("c1", sentence * 30, [{"title": "OK", "payload": "/affirm"}])
    assert [m["type"] for m in graph.received] == ["text", "interactive"]


@pytest.mark.asyncio
async def test_custom_whatsapp_payloads(sender, graph):
    add_contact(sender)
    output = WhatsAppOutput(sender)
    await output.send_custom_json("c1", {"whatsapp": {"type": "cta_url", "body": "Your portal",
                                                      "display_text": "Open portal", "url": "https://portal.example"}})
    await output.send_custom_json("c1", {"whatsapp": {"type": "location_request", "body": "Where are you?"}})
    await output.send_custom_json("c1", {"whatsapp": {"type": "cta_url", "body": "x", "display_text": "y" * 30, "url": "https://a"}})
    await output.send_custom_json("c1", {"something": "else"})
    kinds = [m["interactive"]["type"] for m in graph.received]
    assert kinds == ["cta_url", "location_request_message"]  # invalid shapes never reach Meta


@pytest.mark.asyncio
async def test_a_status_arriving_before_the_send_is_recorded_is_kept(sender, graph):
    add_contact(sender)
    # Meta's "sent" webhook can beat the sender's own bookkeeping: record it first.
    assert sender.store.record_status("wamid.OUT1", "delivered", NOW, None, None)
    outcome = await sender.send("c1", Text("Hello"), "text")
    assert outcome.wamid == "wamid.OUT1"
    assert sender.store.outbound("c1")[0].state == "sent"
    assert sender.store.status_of("wamid.OUT1").status == "delivered"
    assert not sender.store.record_status("wamid.OUT1", "sent", NOW, None, None)  # stale


# ── a template Meta has not got in the patient's language (132001) ────────────────────────

MISSING = (400, {"error": {"message": "(#132001) Template name does not exist in the translation",
                           "type": "OAuthException", "code": 132001,
                           "error_data": {"messaging_product": "whatsapp",
                                          "details": "template name (visit_survey) does not exist in ru"}}})


def survey(language, day):
    return Template("visit_survey", language, ("Riverside", day), ("/rate1", "/rate2"))


def template_sent(body):
    return body["template"]["language"]["code"], [p["text"] for p in body["template"]["components"][0]["parameters"]]


@pytest.mark.asyncio
async def test_a_missing_translation_is_resent_once_in_the_callers_fallback_and_recorded(sender, graph):
    add_contact(sender)
    graph.script = [MISSING]
    outcome = await sender.send("c1", survey("ru", "во вторник, 8 января"), "survey:srv_1",
                                fallback=survey("en_US", "Tuesday 8 January"))
    assert (outcome.state, outcome.wamid) == ("sent", "wamid.OUT2")
    assert (outcome.language, outcome.fallback_from) == ("en_US", "ru")
    assert [template_sent(m) for m in graph.received] == [
        ("ru", ["Riverside", "во вторник, 8 января"]), ("en_US", ["Riverside", "Tuesday 8 January"])]
    [row] = sender.store.outbound("c1")  # one message, one record, which says what happened
    assert (row.state, row.wamid, row.error_code, row.attempts) == ("sent", "wamid.OUT2", 132001, 2)
    assert row.error_detail.startswith("language_fallback: ru -> en_US (Meta 132001")
    assert "does not exist in ru" in row.error_detail and row.payload_json is None
    metrics = sender.metrics.snapshot()
    assert metrics["outbound_template_fallback"] == 1 and metrics["outbound_sent"] == 1
    assert "outbound_dead_letters" not in metrics


@pytest.mark.asyncio
async def test_a_fallback_language_code_resends_the_same_template_in_it(sender, graph):
    add_contact(sender)
    graph.script = [MISSING]
    outcome = await sender.send("c1", survey("zh_CN", "x"), "survey:srv_1", fallback="en_US")
    assert (outcome.state, outcome.fallback_from, outcome.language) == ("sent", "zh_CN", "en_US")
    assert [template_sent(m)[0] for m in graph.received] == ["zh_CN", "en_US"]


@pytest.mark.asyncio
async def test_without_a_fallback_or_for_other_errors_a_refusal_is_still_a_dead_letter(sender, graph):
    add_contact(sender)
    graph.script = [MISSING]
    outcome = await sender.send("c1", survey("ru", "x"), "survey:srv_1")  # the caller allowed none
    assert (outcome.state, outcome.code, outcome.fallback_from) == ("dead", 132001, None)
    graph.script = [(400, {"error": {"message": "(#131026) Message undeliverable", "code": 131026}})]
    outcome = await sender.send("c1", survey("ru", "x"), "survey:srv_2", fallback=survey("en_US", "x"))
    assert (outcome.state, outcome.code, outcome.fallback_from) == ("dead", 131026, None)
    graph.script = [MISSING]
    outcome = await sender.send("c1", survey("en_US", "x"), "survey:srv_3", fallback=survey("en_US", "x"))
    assert (outcome.state, outcome.code) == ("dead", 132001)  # the same language again would fail the same way
    assert len(graph.received) == 3  # no resend in any of these
    assert [(r.state, r.error_code) for r in sender.store.outbound("c1")] == [
        ("dead", 132001), ("dead", 131026), ("dead", 132001)]
    assert "outbound_template_fallback" not in sender.metrics.snapshot()


@pytest.mark.asyncio
async def test_a_refused_fallback_is_a_dead_letter_after_exactly_one_resend(sender, graph):
    add_contact(sender)
    graph.script = [MISSING, MISSING]
    outcome = await sender.send("c1", survey("ru", "x"), "survey:srv_1", fallback=survey("en_US", "x"))
    assert (outcome.state, outcome.code, outcome.fallback_from, outcome.language) == ("dead", 132001, "ru", "en_US")
    assert [template_sent(m)[0] for m in graph.received] == ["ru", "en_US"]  # once, not in a loop
    [row] = sender.store.outbound("c1")
    assert (row.state, row.error_code, row.attempts) == ("dead", 132001, 2)
    assert "after language_fallback: ru -> en_US" in row.error_detail
    assert sender.metrics.snapshot()["outbound_dead_letters"] == 1


@pytest.mark.asyncio
async def test_a_fallback_the_phi_guard_refuses_is_not_sent(sender, graph):
    add_contact(sender)
    graph.script = [MISSING]
    outcome = await sender.send("c1", survey("ru", "x"), "survey:srv_1",
                                fallback=survey("en_US", "your HIV test is positive"))
    assert (outcome.state, outcome.code) == ("dead", 132001) and "blocked_phi" in outcome.detail
    assert len(graph.received) == 1
