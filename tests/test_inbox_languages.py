"""The staff inbox in the patient's language: each ticket shows its conversation's language
(from the contact language memory, one query per page), staff replies in any script go
through unchanged, and approved templates are listed once, offered and sent in the
patient's language, with a recorded fallback to the clinic's default language."""

from __future__ import annotations

import contextlib
import datetime as dt
import itertools
import re

import pytest
import yaml
from sqlalchemy import event, select

from clinic.inbox.model import Delivery, InvalidInput
from clinic.inbox.patient_texts import (
    DEFAULT_FILE,
    PatientTextsError,
    default_patient_texts,
    load_patient_texts,
)
from clinic.inbox.service import Inbox
from clinic.inbox.tables import AuditRow, MessageRow
from clinic.inbox.templates import (
    DEFAULT_TEMPLATES,
    ApprovedTemplate,
    group_templates,
    load_templates,
)
from clinic.inbox.testing import FakeRasa
from clinic.language.catalogue import default_catalogue
from clinic.language.memory import LanguageMemory
from clinic.language.tables import ContactLanguage
from tests.inbox_support import build_world, conversation, login
from tests.test_inbox_web import server as server  # noqa: F401  (module fixture: live inbox)

RUSSIAN = "Здравствуйте, Анна! Результаты готовы — позвоните нам, пожалуйста. Ёлка 🙂 <b>важно</b> & «кавычки»"
CHINESE = "您好，王女士！您的检查结果已出，请致电前台。<i>重要</i> & “引号” 😊"
_counter = itertools.count(1)
# What the patient is told when Nina (nurse team) claims the conversation.
JOINED = {
    "en": "Nina from our nurse team has joined the chat and will reply to you here.",
    "ru": "К чату подключается Nina из команды медсестёр. Ответ придёт здесь, в этом чате.",
    "zh": "护士团队的Nina已加入对话，将在这里回复您。",
}


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


def nina(world):
    return world.members["nina"].actor


def speaks(world, conversation_id, language):
    LanguageMemory(world.sessions).remember(conversation_id, language)


def claimed(world, conversation_id, *, window_closed=False):
    at = dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=30 if window_closed else 0)
    world.rasa.say(conversation_id, "hello", at=at)
    ticket = world.inbox.open_for_handoff(conversation_id, "nurse").ticket
    world.inbox.claim(nina(world), ticket.id)
    return ticket


def audit_rows(world):
    with world.sessions() as session:
        return list(session.scalars(select(AuditRow).order_by(AuditRow.id)))


# ── the language of each ticket ─────────────────────────────────────────────────────────
def test_every_view_of_a_ticket_carries_its_conversations_language(world):
    ru, zh, unknown, odd = (conversation(f"lang-{n}") for n in ("ru", "zh", "unknown", "odd"))
    speaks(world, ru, "ru")
    speaks(world, zh, "zh")
    with world.sessions.begin() as session:  # a language no longer in the catalogue
        session.add(ContactLanguage(contact_key=odd, language="xx", chosen=False,
                                    updated_at=dt.datetime.now(dt.timezone.utc)))
    tickets = {cid: world.inbox.open_for_handoff(cid, "nurse").ticket for cid in (ru, zh, unknown, odd)}
    expected = {ru: "ru", zh: "zh", unknown: "en", odd: "en"}  # unknown: the clinic's default
    assert default_catalogue().default == "en"
    assert {t.conversation_id: t.language for t in tickets.values()} == expected
    assert {t.conversation_id: t.language for t in world.inbox.queues(nina(world))["nurse"]} == expected
    assert world.inbox.ticket(nina(world), tickets[zh].id).language == "zh"
    assert world.inbox.open_ticket_page(nina(world), tickets[ru].id).ticket.language == "ru"
    world.inbox.claim(nina(world), tickets[ru].id)
    assert [t.language for t in world.inbox.my_tickets(nina(world))] == ["ru"]
    world.inbox.resolve(nina(world), tickets[ru].id, "answered")
    assert [t.language for t in world.inbox.recently_resolved(nina(world))] == ["ru"]
    overview = world.inbox.overview(nina(world))
    assert {t.conversation_id: t.language for t in overview.queues["nurse"]} == {zh: "zh", unknown: "en", odd: "en"}
    assert [t.language for t in overview.resolved] == ["ru"] and overview.mine == []
    # The patient switches language: the next read shows it.
    speaks(world, zh, "ru")
    assert world.inbox.ticket(nina(world), tickets[zh].id).language == "ru"


@contextlib.contextmanager
def counting_language_queries(world):
    """Counts the SQL statements that read ``contact_languages`` while the block runs."""
    engine = world.sessions.kw["bind"]
    statements = []

    def seen(conn, cursor, statement, *args):
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", seen)
    try:
        yield lambda: sum("contact_languages" in s for s in statements)
    finally:
        event.remove(engine, "before_cursor_execute", seen)


def test_one_language_query_per_page_whatever_the_number_of_tickets(world):
    for n in range(12):
        cid = conversation(f"many-{n}")
        if n % 3:
            speaks(world, cid, "ru" if n % 3 == 1 else "zh")
        ticket = world.inbox.open_for_handoff(cid, "nurse" if n % 2 else "reception").ticket
        if n < 4:
            world.inbox.claim(world.members["sara"].actor, ticket.id)
        if n < 2:
            world.inbox.resolve(world.members["sara"].actor, ticket.id, "answered")
    sara = world.members["sara"].actor
    with counting_language_queries(world) as count:
        overview = world.inbox.overview(sara)
    assert count() == 1
    assert sum(len(v) for v in overview.queues.values()) == 10 and len(overview.mine) == 2
    assert len(overview.resolved) == 2
    assert {t.language for v in overview.queues.values() for t in v} == {"en", "ru", "zh"}
    for read in (lambda: world.inbox.queues(sara), lambda: world.inbox.my_tickets(sara),
                 lambda: world.inbox.recently_resolved(sara)):
        with counting_language_queries(world) as count:
            assert read()
        assert count() == 1


# ── replies in any language ─────────────────────────────────────────────────────────────
@pytest.mark.parametrize("language, text", [("ru", RUSSIAN), ("zh", CHINESE)])
def test_replies_in_russian_and_chinese_go_through_unchanged(world, language, text):
    patient = conversation(f"reply-{language}")
    speaks(world, patient, language)
    ticket = claimed(world, patient)
    reply = world.inbox.reply(nina(world), ticket.id, f"  {text}\n")
    assert reply.delivery == Delivery.SENT.value and reply.text == text  # only trimmed
    assert world.replies.delivered[-1][1] == text
    assert [e["text"] for e in world.rasa.events(patient) if e.get("metadata", {}).get("inbox_message_id")] == [
        JOINED[language], text]  # who has joined (at the claim), then the reply
    # Stored encrypted, read back exactly; shown once in the timeline.
    with world.sessions() as session:
        stored = session.get(MessageRow, reply.id).text_encrypted
    assert text not in stored and text.split()[0] not in stored
    page = world.inbox.open_ticket_page(nina(world), ticket.id)
    assert [(i.sender, i.text) for i in page.timeline].count(("staff", text)) == 1
    # The audit row names the message, never its text.
    assert all(text.split()[0] not in row.detail for row in audit_rows(world))
    # The limit counts characters, not bytes: 4096 Chinese or Cyrillic characters fit.
    wide = (text * 200)[:4096]
    assert len(wide.encode("utf-8")) > 4096
    assert world.inbox.reply(nina(world), ticket.id, wide).text == wide.strip()
    with pytest.raises(InvalidInput):
        world.inbox.reply(nina(world), ticket.id, "я" * 4097)


# ── who has joined, in the patient's language ───────────────────────────────────────────
@pytest.mark.parametrize("language", sorted(JOINED))
def test_the_patient_is_told_who_has_joined_in_their_language(world, language):
    patient = conversation(f"joined-{language}")
    speaks(world, patient, language)
    ticket = claimed(world, patient)
    assert world.replies.delivered[-1][:2] == (patient, JOINED[language])
    row = [r for r in audit_rows(world) if r.action == "join_notice_sent"][-1]
    assert row.ticket_id == ticket.id and f"language={language}" in row.detail


def test_a_conversation_in_an_unknown_language_is_told_in_the_default_one(world):
    patient = conversation("joined-unknown")
    claimed(world, patient)
    assert world.replies.delivered[-1][1] == JOINED["en"]


def test_every_inbox_text_and_team_exists_in_every_language():
    raw = yaml.safe_load(DEFAULT_FILE.read_text(encoding="utf-8"))
    codes = set(default_catalogue().codes)
    for table in ("messages", "teams"):
        for key, by_language in raw[table].items():
            assert set(by_language) == codes, f"{table}.{key}"
    assert set(raw["teams"]) == {"nurse", "billing", "reception"}
    texts = default_patient_texts()
    for code in codes:
        for team, words in raw["teams"].items():
            assert words[code] in texts.staff_joined(code, "Nina", team) and "Nina" in texts.staff_joined(code, "Nina", team)
            assert words[code] in texts.staff_joined(code, None, team) and "{" not in texts.staff_joined(code, None, team)


def test_a_broken_inbox_texts_file_is_refused_with_the_entry_named(tmp_path):
    path = tmp_path / "inbox.yml"
    path.write_text(yaml.safe_dump({"messages": {"staff_joined": {"ru": "{name}"}, "staff_joined_team": {"en": "x"}},
                                    "teams": {}}, allow_unicode=True), encoding="utf-8")
    with pytest.raises(PatientTextsError, match="messages.staff_joined needs a text in 'en'"):
        load_patient_texts(path)
    path.write_text(yaml.safe_dump({"messages": {"staff_joined": {"en": "{nmae} joined"},
                                                 "staff_joined_team": {"en": "x"}}, "teams": {}}), encoding="utf-8")
    with pytest.raises(PatientTextsError, match=r"messages.staff_joined.en: only \{name\} and \{team\}"):
        load_patient_texts(path)
    # A language without a text of its own falls back to the default language.
    path.write_text(yaml.safe_dump({"messages": {"staff_joined": {"en": "{name} ({team})"},
                                                 "staff_joined_team": {"en": "{team}"}},
                                    "teams": {"nurse": {"en": "nurses"}}}), encoding="utf-8")
    assert load_patient_texts(path).staff_joined("ru", "Nina", "nurse") == "Nina (nurses)"


# ── templates in the patient's language ─────────────────────────────────────────────────
def test_templates_are_listed_once_each_with_its_languages(world):
    names = [t.name for t in world.inbox.templates]
    assert names == ["visit_followup", "recall_reminder", "results_ready"] == list(dict.fromkeys(names))
    assert all(t.languages == ("en_US", "ru", "zh_CN") for t in world.inbox.templates)
    for language in ("en", "ru", "zh"):
        offers = world.inbox.template_offers(language)
        assert [o.name for o in offers] == names
        assert {o.language for o in offers} == {default_catalogue().whatsapp_code(language)}
        assert not any(o.fallback for o in offers)


def test_the_default_templates_are_the_simulators_approved_texts():
    from simulator.templates import BUILTIN_TEMPLATES

    approved = {(t["name"], t["language"]): t["body"] for t in BUILTIN_TEMPLATES}
    for template in DEFAULT_TEMPLATES:
        assert approved[(template.name, template.language)] == template.body, (template.name, template.language)
        placeholders = set(re.findall(r"\{\{(\d+)\}\}", template.body))
        assert placeholders == {str(n) for n in range(1, len(template.params) + 1)}


@pytest.mark.parametrize("language, code, greeting", [
    ("ru", "ru", "Здравствуйте, Анна! Ваши результаты анализов готовы."),
    ("zh", "zh_CN", "您好，安娜！您的检查结果已出。"),
    ("en", "en_US", "Hi Anna, your test results are ready."),
])
def test_a_template_is_sent_in_the_patients_language(world, language, code, greeting):
    patient = conversation(f"template-{language}")
    speaks(world, patient, language)
    ticket = claimed(world, patient, window_closed=True)
    refused = world.inbox.reply(nina(world), ticket.id, "Are you there?")
    assert refused.delivery == Delivery.REFUSED.value
    offers = {o.name: o for o in world.inbox.ticket_templates(nina(world), ticket.id)}
    assert offers["results_ready"].language == code and not offers["results_ready"].fallback
    name = {"ru": "Анна", "zh": "安娜", "en": "Anna"}[language]
    sent = world.inbox.send_template(nina(world), ticket.id, "results_ready", [name])
    assert sent.delivery == "sent" and sent.text.startswith(f"[template results_ready] {greeting}")
    assert world.replies.templates_sent[-1] == (patient, "results_ready", code, (name,))
    page = world.inbox.open_ticket_page(nina(world), ticket.id)
    assert [i.sender for i in page.timeline if i.text.startswith(greeting)] == ["staff"]
    assert not [i for i in page.timeline if i.sender == "note"]  # nothing to explain
    row = [r for r in audit_rows(world) if r.action == "reply_sent"][-1]
    assert f"template=results_ready language={code}" in row.detail and "fallback" not in row.detail


CLINIC_TEMPLATES = (
    ApprovedTemplate("we_tried_to_reach_you", "en_US", "We tried to reach you",
                     "Hi {{1}}, we tried to reach you. Please reply to this message.", ("First name",)),
    ApprovedTemplate("we_tried_to_reach_you", "zh_CN", "We tried to reach you",
                     "您好，{{1}}！我们曾尝试联系您，请回复此消息。", ("First name",)),
    ApprovedTemplate("bring_your_card", "de", "Bring your insurance card",
                     "Hallo {{1}}, bitte bringen Sie Ihre Versichertenkarte mit.", ("Vorname",)),
)


def clinic_inbox(world) -> Inbox:
    """The same database and ports, with the clinic's own templates: English and Chinese
    only, and one approved in German only."""
    inbox = world.inbox
    return Inbox(world.sessions, inbox._cipher, transcripts=inbox.transcripts, control=inbox.control,
                 replies=inbox.replies, defaults=inbox._defaults, clock=world.clock, templates=CLINIC_TEMPLATES)


def test_without_a_version_in_the_patients_language_english_is_sent_and_that_is_recorded(world):
    inbox = clinic_inbox(world)
    patient = conversation("fallback-ru")
    speaks(world, patient, "ru")
    ticket = claimed(world, patient, window_closed=True)
    offers = {o.name: o for o in inbox.ticket_templates(nina(world), ticket.id)}
    tried = offers["we_tried_to_reach_you"]
    assert (tried.language, tried.wanted, tried.fallback) == ("en_US", "ru", True)  # shown before sending
    before = world.audit.count()
    sent = inbox.send_template(nina(world), ticket.id, "we_tried_to_reach_you", ["Анна"])
    assert sent.delivery == "sent"
    assert world.replies.templates_sent[-1] == (patient, "we_tried_to_reach_you", "en_US", ("Анна",))
    # Recorded on the ticket (an internal note, never sent) …
    page = inbox.open_ticket_page(nina(world), ticket.id)
    notes = [i.text for i in page.timeline if i.sender == "note"]
    assert notes == ["Sent in English (en_US): no Russian (ru) version of template we_tried_to_reach_you."]
    assert not any("no Russian" in (e.get("text") or "") for e in world.rasa.events(patient))
    # … and in the send's one audit row.
    rows = audit_rows(world)[before:]
    [row] = [r for r in rows if r.action not in ("ticket_viewed",)]
    assert row.action == "reply_sent"
    assert "template=we_tried_to_reach_you language=en_US fallback_from=ru note=" in row.detail
    assert world.audit.verify().ok


def test_the_fallback_is_recorded_when_the_send_fails_too_and_never_for_the_patients_own_language(world):
    inbox = clinic_inbox(world)
    zh, ru = conversation("fallback-zh"), conversation("fallback-ru-failed")
    speaks(world, zh, "zh")
    speaks(world, ru, "ru")
    ticket = claimed(world, zh, window_closed=True)
    inbox.send_template(nina(world), ticket.id, "we_tried_to_reach_you", ["王"])
    assert world.replies.templates_sent[-1][2] == "zh_CN"
    assert not [i for i in inbox.open_ticket_page(nina(world), ticket.id).timeline if i.sender == "note"]
    # A template approved in German only: sent in German for a Chinese patient, recorded.
    inbox.send_template(nina(world), ticket.id, "bring_your_card", ["王"])
    assert world.replies.templates_sent[-1][1:3] == ("bring_your_card", "de")
    notes = [i.text for i in inbox.open_ticket_page(nina(world), ticket.id).timeline if i.sender == "note"]
    assert notes == ["Sent in German (de): no Chinese (zh_CN) version of template bring_your_card."]
    # Delivery failed: the note says so (staff may try again).
    other = claimed(world, ru, window_closed=True)
    world.rasa.down = True
    failed = inbox.send_template(nina(world), other.id, "we_tried_to_reach_you", ["Анна"])
    world.rasa.down = False
    assert failed.delivery == "failed"
    notes = [i.text for i in inbox.open_ticket_page(nina(world), other.id).timeline if i.sender == "note"]
    assert notes == ["Not delivered (failed); it was in English (en_US): no Russian (ru) version of template "
                     "we_tried_to_reach_you."]
    row = [r for r in audit_rows(world) if r.action == "reply_not_delivered"][-1]
    assert "fallback_from=ru" in row.detail


def test_versions_of_one_template_must_agree():
    en = ApprovedTemplate("t", "en_US", "T", "Hi {{1}}", ("Name",))
    assert [c.name for c in group_templates([en, ApprovedTemplate("t", "ru", "T", "Привет, {{1}}", ("Name",))],
                                            "en_US")] == ["t"]
    with pytest.raises(ValueError, match="twice in en_US"):
        group_templates([en, en], "en_US")
    with pytest.raises(ValueError, match="needs 1 value"):
        group_templates([en, ApprovedTemplate("t", "ru", "T", "Привет, {{1}} {{2}}", ("Name", "Clinic"))], "en_US")
    with pytest.raises(ValueError, match="placeholders"):
        group_templates([en, ApprovedTemplate("t", "ru", "T", "Привет, {{2}}", ("Name",))], "en_US")
    # The default language's version comes first (its label, its body for the list).
    [choice] = group_templates([ApprovedTemplate("t", "ru", "Т", "Привет, {{1}}", ("Имя",)), en], "en_US")
    assert choice.languages == ("en_US", "ru") and choice.label == "T"


def test_a_clinic_file_lists_one_entry_per_language(tmp_path):
    path = tmp_path / "templates.yml"
    path.write_text(yaml.safe_dump({"templates": [
        {"name": "we_tried_to_reach_you", "language": "en_US", "label": "We tried to reach you",
         "body": "Hi {{1}}, we tried to reach you.", "params": ["First name"], "quick_reply_payloads": ["/greet"]},
        {"name": "we_tried_to_reach_you", "language": "ru", "body": "Здравствуйте, {{1}}! Мы пытались с вами связаться."},
    ]}, allow_unicode=True), encoding="utf-8")
    en, ru = load_templates({"INBOX_TEMPLATES_FILE": str(path)})
    assert (ru.label, ru.params, ru.quick_reply_payloads) == ("We tried to reach you", ("First name",), ("/greet",))
    assert ru.render(["Анна"]) == "Здравствуйте, Анна! Мы пытались с вами связаться."
    [choice] = group_templates([en, ru], "en_US")
    assert choice.offer("ru", "en_US").template is ru and choice.offer("zh_CN", "en_US").template is en


# ── the web pages and the API ───────────────────────────────────────────────────────────
def web_ticket(server, language, owner="nina", window_closed=False):  # noqa: F811
    world = server.world
    cid = conversation(f"web-lang-{next(_counter)}")
    if language:
        speaks(world, cid, language)
    at = dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=30 if window_closed else 0)
    world.rasa.say(cid, "Здравствуйте" if language == "ru" else "你好" if language == "zh" else "Hello", at=at)
    ticket = world.inbox.open_for_handoff(cid, "nurse").ticket
    if owner:
        world.inbox.claim(world.members[owner].actor, ticket.id)
    return ticket


@pytest.fixture(scope="module")
def nina_web(server):  # noqa: F811
    return login(server, "nina")


def label_in(html: str, element_id: str) -> str:
    match = re.search(rf'id="{element_id}".*?<span class="lang" lang="(\w+)"[^>]*>([^<]+)</span>', html, re.S)
    assert match, f"no language label in #{element_id}"
    return f"{match.group(1)}:{match.group(2)}"


def test_the_queue_and_the_ticket_page_show_the_conversations_language(server, nina_web):  # noqa: F811
    ru, zh, unknown = web_ticket(server, "ru", owner=None), web_ticket(server, "zh"), web_ticket(server, None)
    with counting_language_queries(server.world) as count:
        html = nina_web.get(f"{server.url}/inbox/queues").text
    assert count() == 1  # the whole page: queues, mine and recently resolved
    with counting_language_queries(server.world) as count:
        nina_web.get(f"{server.url}/inbox/api/v1/queues")
    assert count() == 1
    assert label_in(html, f"ticket-row-{ru.id}") == "ru:Русский"
    assert label_in(html, f"ticket-row-{zh.id}") == "zh:中文"
    assert label_in(html, f"ticket-row-{unknown.id}") == "en:English"
    assert 'title="The patient\'s language: Russian"' in html
    page = nina_web.get(f"{server.url}/inbox/tickets/{zh.id}").text
    assert label_in(page, "language") == "zh:中文"
    detail = nina_web.get(f"{server.url}/inbox/api/v1/tickets/{ru.id}").json()
    assert detail["ticket"]["language"] == "ru"
    queues = nina_web.get(f"{server.url}/inbox/api/v1/queues").json()
    assert {t["id"]: t["language"] for t in queues["teams"]["nurse"]}[zh.id] == "zh"


@pytest.mark.parametrize("text", [RUSSIAN, CHINESE])
def test_replies_in_any_script_through_the_page_are_shown_as_typed_and_escaped(server, nina_web, text):  # noqa: F811
    ticket = web_ticket(server, "ru" if text == RUSSIAN else "zh")
    response = nina_web.post(f"{server.url}/inbox/tickets/{ticket.id}/reply",
                             data={"text": text, "csrf_token": nina_web.csrf})
    assert response.status_code == 200 and "not delivered" not in response.text
    assert server.world.replies.delivered[-1][1] == text
    html = response.text  # the ticket page after the redirect
    escaped = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    assert html.count(escaped) == 1 and "<b>важно</b>" not in html and "<i>重要</i>" not in html
    timeline = nina_web.get(f"{server.url}/inbox/api/v1/tickets/{ticket.id}").json()["timeline"]
    assert [i["text"] for i in timeline if i["sender"] == "staff"] == [text]


def test_the_ticket_page_offers_each_template_once_in_the_patients_language(server, nina_web):  # noqa: F811
    ticket = web_ticket(server, "zh", window_closed=True)
    html = nina_web.get(f"{server.url}/inbox/tickets/{ticket.id}").text
    for name in ("visit_followup", "recall_reminder", "results_ready"):
        assert html.count(f'name="name" value="{name}"') == 1
    assert "您好，{{1}}！您的检查结果已出。" in html and 'lang="zh-CN"' in html
    assert "English: Hi {{1}}, your test results are ready." in html  # for staff who read no Chinese
    assert "template-fallback" not in html
    offers = nina_web.get(f"{server.url}/inbox/api/v1/tickets/{ticket.id}/templates").json()
    assert [(o["name"], o["language"], o["fallback"]) for o in offers] == [
        ("visit_followup", "zh_CN", False), ("recall_reminder", "zh_CN", False), ("results_ready", "zh_CN", False)]
    listed = nina_web.get(f"{server.url}/inbox/api/v1/templates").json()
    assert [t["name"] for t in listed] == ["visit_followup", "recall_reminder", "results_ready"]
    assert set(listed[2]["translations"]) == {"en_US", "ru", "zh_CN"} and listed[2]["language"] == "en_US"
    response = nina_web.post(f"{server.url}/inbox/tickets/{ticket.id}/template",
                             data={"name": "results_ready", "values": ["王"], "csrf_token": nina_web.csrf})
    assert response.status_code == 200 and "not delivered" not in response.text
    assert server.world.replies.templates_sent[-1][1:] == ("results_ready", "zh_CN", ("王",))
    assert "您好，王！您的检查结果已出。" in response.text


def test_the_ticket_page_warns_before_a_template_goes_out_in_another_language(server, nina_web):  # noqa: F811
    world = server.world
    original = world.inbox.templates
    world.inbox.templates = group_templates(CLINIC_TEMPLATES, "en_US")
    try:
        ticket = web_ticket(server, "ru", window_closed=True)
        html = nina_web.get(f"{server.url}/inbox/tickets/{ticket.id}").text
        assert html.count("template-fallback") == 2  # English-only for Russian; German-only
        assert "No Russian version of this template is approved: it will be sent in English (en_US)" in html
        response = nina_web.post(f"{server.url}/inbox/tickets/{ticket.id}/template",
                                 data={"name": "we_tried_to_reach_you", "values": ["Анна"],
                                       "csrf_token": nina_web.csrf})
        assert "Sent in English (en_US): no Russian (ru) version of template we_tried_to_reach_you." in response.text
    finally:
        world.inbox.templates = original
