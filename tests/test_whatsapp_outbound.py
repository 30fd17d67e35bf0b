"""Outbound messages: every limit (one failing, one boundary case), Meta's payload shapes,
text splitting and the buttons-or-list decision."""

from __future__ import annotations

import dataclasses
import random
import re
from typing import Any, Callable, Dict, List

import pytest

from whatsapp import limits
from whatsapp.outbound import (
    Choice,
    CtaUrl,
    ListMessage,
    ListRow,
    ListSection,
    LocationRequest,
    Media,
    MessageShapeError,
    Reaction,
    ReplyButton,
    ReplyButtons,
    Template,
    Text,
    choice_message,
    mark_read_payload,
    split_text,
)

TO = "+16505551234"
BASE = {"messaging_product": "whatsapp", "recipient_type": "individual", "to": TO}


def s(n: int, char: str = "a") -> str:
    return char * n


def rows(n: int, prefix: str = "r") -> List[ListRow]:
    return [ListRow(f"{prefix}{i}", f"Row {i}") for i in range(n)]


def list_message(**overrides: Any) -> ListMessage:
    kwargs: Dict[str, Any] = dict(body="Pick one", button="Options",
                                  sections=[ListSection("Section", rows(2))])
    kwargs.update(overrides)
    return ListMessage(**kwargs)


def buttons_message(**overrides: Any) -> ReplyButtons:
    kwargs: Dict[str, Any] = dict(body="Pick one", buttons=[ReplyButton("a", "A"), ReplyButton("b", "B")])
    kwargs.update(overrides)
    return ReplyButtons(**kwargs)


# ---------------------------------------------------------------------------------------------
# Limits: (name, builder taking a size, boundary size that passes). boundary + 1 must fail.
# ---------------------------------------------------------------------------------------------

LENGTH_LIMITS: List[tuple[str, Callable[[int], Any], int]] = [
    ("text body", lambda n: Text(s(n)), limits.TEXT_BODY_MAX),
    ("button title", lambda n: ReplyButton("id", s(n)), limits.REPLY_BUTTON_TITLE_MAX),
    ("button id", lambda n: ReplyButton(s(n), "T"), limits.REPLY_BUTTON_ID_MAX),
    ("buttons body", lambda n: buttons_message(body=s(n)), limits.INTERACTIVE_BODY_MAX),
    ("buttons header", lambda n: buttons_message(header_text=s(n)), limits.HEADER_TEXT_MAX),
    ("buttons footer", lambda n: buttons_message(footer=s(n)), limits.FOOTER_MAX),
    ("row id", lambda n: ListRow(s(n), "T"), limits.LIST_ROW_ID_MAX),
    ("row title", lambda n: ListRow("id", s(n)), limits.LIST_ROW_TITLE_MAX),
    ("row description", lambda n: ListRow("id", "T", s(n)), limits.LIST_ROW_DESCRIPTION_MAX),
    ("section title", lambda n: ListSection(s(n), rows(1)), limits.LIST_SECTION_TITLE_MAX),
    ("list body", lambda n: list_message(body=s(n)), limits.INTERACTIVE_BODY_MAX),
    ("list button", lambda n: list_message(button=s(n)), limits.LIST_BUTTON_MAX),
    ("list header", lambda n: list_message(header_text=s(n)), limits.HEADER_TEXT_MAX),
    ("list footer", lambda n: list_message(footer=s(n)), limits.FOOTER_MAX),
    ("cta body", lambda n: CtaUrl(s(n), "Open", "https://x.org"), limits.INTERACTIVE_BODY_MAX),
    ("cta display text", lambda n: CtaUrl("Body", s(n), "https://x.org"), limits.CTA_DISPLAY_TEXT_MAX),
    ("cta header", lambda n: CtaUrl("Body", "Open", "https://x.org", header_text=s(n)), limits.HEADER_TEXT_MAX),
    ("cta footer", lambda n: CtaUrl("Body", "Open", "https://x.org", footer=s(n)), limits.FOOTER_MAX),
    ("location request body", lambda n: LocationRequest(s(n)), limits.LOCATION_REQUEST_BODY_MAX),
    ("media caption", lambda n: Media("image", media_id="1", caption=s(n)), limits.MEDIA_CAPTION_MAX),
    ("template quick reply payload", lambda n: Template("t", quick_reply_payloads=[s(n)]),
     limits.TEMPLATE_QUICK_REPLY_PAYLOAD_MAX),
    ("template header param", lambda n: Template("t", header_text_param=s(n)), limits.HEADER_TEXT_MAX),
    ("biz_opaque_callback_data", lambda n: Text("hi").to_payload(TO, biz_opaque_callback_data=s(n)),
     limits.BIZ_OPAQUE_CALLBACK_DATA_MAX),
]


@pytest.mark.parametrize("name,build,boundary", LENGTH_LIMITS, ids=[x[0] for x in LENGTH_LIMITS])
def test_length_limit(name, build, boundary):
    build(boundary)  # exactly at the limit: accepted
    with pytest.raises(MessageShapeError) as info:
        build(boundary + 1)
    text = str(info.value)
    assert f"the limit is {boundary}" in text
    assert str(boundary + 1) in text  # the actual length is reported ...
    assert s(boundary + 1) not in text  # ... but never the content


COUNT_LIMITS: List[tuple[str, Callable[[int], Any], int]] = [
    ("reply buttons", lambda n: ReplyButtons("Body", [ReplyButton(f"b{i}", f"B{i}") for i in range(n)]),
     limits.REPLY_BUTTONS_MAX),
    ("list sections", lambda n: list_message(sections=[ListSection(f"S{i}", [ListRow(f"r{i}", "R")]) for i in range(n)]),
     limits.LIST_SECTIONS_MAX),
    ("list rows in one section", lambda n: list_message(sections=[ListSection("S", rows(n))]),
     limits.LIST_ROWS_MAX),
    ("list rows across sections", lambda n: list_message(sections=[
        ListSection("First", rows(n // 2, "a")), ListSection("Second", rows(n - n // 2, "b"))]),
     limits.LIST_ROWS_MAX),
    ("template quick replies", lambda n: Template("t", quick_reply_payloads=[f"p{i}" for i in range(n)]), 10),
]


@pytest.mark.parametrize("name,build,boundary", COUNT_LIMITS, ids=[x[0] for x in COUNT_LIMITS])
def test_count_limit(name, build, boundary):
    build(boundary)
    with pytest.raises(MessageShapeError, match=f"the limit is {boundary}"):
        build(boundary + 1)


@pytest.mark.parametrize("build", [
    lambda: Text(""),
    lambda: Text("   \n"),
    lambda: ReplyButton("id", ""),
    lambda: ReplyButton("", "Title"),
    lambda: ReplyButtons("", [ReplyButton("a", "A")]),
    lambda: ReplyButtons("Body", []),
    lambda: ListRow("id", " "),
    lambda: ListRow("id", "T", ""),  # omit an empty description instead
    lambda: ListSection("", rows(1)),
    lambda: ListSection("S", []),
    lambda: list_message(body=""),
    lambda: list_message(button=""),
    lambda: list_message(sections=[]),
    lambda: list_message(header_text=""),
    lambda: CtaUrl("", "Open", "https://x.org"),
    lambda: LocationRequest(""),
    lambda: Template(""),
    lambda: Template("t", body_params=[""]),
])
def test_no_empty_texts(build):
    with pytest.raises(MessageShapeError):
        build()


@pytest.mark.parametrize("build", [
    lambda: ReplyButton(" id", "T"),
    lambda: ReplyButton("id ", "T"),
    lambda: ListRow(" id", "T"),
    lambda: ListRow("id\n", "T"),
])
def test_ids_without_leading_or_trailing_spaces(build):
    with pytest.raises(MessageShapeError, match="leading or trailing spaces"):
        build()
    ReplyButton("an id with inner spaces", "T")  # inner spaces are fine


def test_button_titles_and_ids_unique():
    with pytest.raises(MessageShapeError, match="titles must be unique"):
        ReplyButtons("Body", [ReplyButton("a", "Same"), ReplyButton("b", "Same")])
    with pytest.raises(MessageShapeError, match="ids must be unique"):
        ReplyButtons("Body", [ReplyButton("a", "One"), ReplyButton("a", "Two")])
    ReplyButtons("Body", [ReplyButton("a", "One"), ReplyButton("b", "Two")])


def test_row_ids_unique_across_sections():
    with pytest.raises(MessageShapeError, match="row ids must be unique across all sections"):
        list_message(sections=[ListSection("A", [ListRow("x", "One")]), ListSection("B", [ListRow("x", "Two")])])
    # Duplicate row *titles* are allowed by Meta.
    list_message(sections=[ListSection("A", [ListRow("x", "Same")]), ListSection("B", [ListRow("y", "Same")])])


def test_wrong_item_types_rejected():
    with pytest.raises(MessageShapeError):
        ReplyButtons("Body", [("a", "A")])  # type: ignore[list-item]
    with pytest.raises(MessageShapeError):
        ReplyButtons("Body", "ab")  # type: ignore[arg-type]
    with pytest.raises(MessageShapeError):
        ListSection("S", [{"id": "x", "title": "y"}])  # type: ignore[list-item]
    with pytest.raises(MessageShapeError):
        Text(42)  # type: ignore[arg-type]


@pytest.mark.parametrize("url", ["ftp://x.org/file", "javascript:alert(1)", "x.org", "https://", "", " https://x.org"])
def test_cta_url_must_be_http(url):
    with pytest.raises(MessageShapeError, match="http"):
        CtaUrl("Body", "Open", url)


def test_cta_url_accepts_http_and_https():
    CtaUrl("Body", "Open", "http://clinic.example/booking")
    CtaUrl("Body", "Open", "https://clinic.example/booking?x=1")


def test_media_rules():
    with pytest.raises(MessageShapeError, match="exactly one of link or media_id"):
        Media("image")
    with pytest.raises(MessageShapeError, match="exactly one of link or media_id"):
        Media("image", link="https://x.org/a.jpg", media_id="1")
    with pytest.raises(MessageShapeError, match="kind"):
        Media("voice", media_id="1")
    for kind in ("audio", "sticker"):
        with pytest.raises(MessageShapeError, match=f"caption is not allowed on {kind}"):
            Media(kind, media_id="1", caption="x")
        Media(kind, media_id="1")
    with pytest.raises(MessageShapeError, match="filename is only allowed on document"):
        Media("image", media_id="1", filename="a.jpg")
    with pytest.raises(MessageShapeError, match="http"):
        Media("image", link="file:///etc/passwd")
    for kind in ("image", "video", "document"):
        Media(kind, link="https://x.org/f", caption="c")


def test_template_rules():
    with pytest.raises(MessageShapeError, match="a-z, 0-9 and _"):
        Template("Appointment-Reminder")
    with pytest.raises(MessageShapeError, match="new lines"):
        Template("t", body_params=["line one\nline two"])
    with pytest.raises(MessageShapeError, match="new lines"):
        Template("t", body_params=["a     b"])  # 5 spaces
    Template("t", body_params=["a    b"])  # 4 spaces is fine
    with pytest.raises(MessageShapeError, match="new lines"):
        Template("t", header_text_param="a\tb")


def test_reaction_rules():
    Reaction("wamid.x", "")  # removes an earlier reaction
    Reaction("wamid.x", "\U0001f468\u200d\U0001f469\u200d\U0001f467\u200d\U0001f466")  # family ZWJ
    with pytest.raises(MessageShapeError):
        Reaction("", "\U0001f44d")
    with pytest.raises(MessageShapeError):
        Reaction("wamid.x", "this is a sentence, not an emoji")


def test_to_payload_rejects_empty_recipient_and_context():
    with pytest.raises(MessageShapeError):
        Text("hi").to_payload("")
    with pytest.raises(MessageShapeError):
        Text("hi").to_payload(TO, context_message_id="")


def test_messages_are_immutable():
    message = buttons_message(buttons=[ReplyButton("a", "A")])
    assert isinstance(message.buttons, tuple)
    with pytest.raises(dataclasses.FrozenInstanceError):
        message.body = "changed"  # type: ignore[misc]


# ---------------------------------------------------------------------------------------------
# Payload shapes (reference §5)
# ---------------------------------------------------------------------------------------------


def test_text_payload():
    assert Text("…https://clinic.example", preview_url=True).to_payload(TO) == {
        **BASE, "type": "text", "text": {"preview_url": True, "body": "…https://clinic.example"}}
    assert Text("hi").to_payload(TO)["text"] == {"preview_url": False, "body": "hi"}


def test_context_and_callback_data():
    payload = Text("hi").to_payload(TO, context_message_id="wamid.quoted", biz_opaque_callback_data="appt-42")
    assert payload == {**BASE, "type": "text", "text": {"preview_url": False, "body": "hi"},
                       "context": {"message_id": "wamid.quoted"}, "biz_opaque_callback_data": "appt-42"}
    assert "context" not in Text("hi").to_payload(TO)
    assert "biz_opaque_callback_data" not in Text("hi").to_payload(TO)


def test_reply_buttons_payload():
    message = ReplyButtons(
        body="Hi Pablo! Your gardening workshop is scheduled for 9am tomorrow. Use the buttons if you need to reschedule. Thank you!",
        buttons=[ReplyButton("change-button", "Change"), ReplyButton("cancel-button", "Cancel")],
        header_text="Workshop",
        footer="Lucky Shrub: Your gateway to succulents!™",
    )
    assert message.to_payload(TO) == {
        **BASE,
        "type": "interactive",
        "interactive": {
            "type": "button",
            "header": {"type": "text", "text": "Workshop"},
            "body": {"text": "Hi Pablo! Your gardening workshop is scheduled for 9am tomorrow. Use the buttons if you need to reschedule. Thank you!"},
            "footer": {"text": "Lucky Shrub: Your gateway to succulents!™"},
            "action": {"buttons": [
                {"type": "reply", "reply": {"id": "change-button", "title": "Change"}},
                {"type": "reply", "reply": {"id": "cancel-button", "title": "Cancel"}},
            ]},
        },
    }
    bare = ReplyButtons("Body", [ReplyButton("a", "A")]).to_payload(TO)["interactive"]
    assert "header" not in bare and "footer" not in bare


def test_list_payload():
    message = ListMessage(
        body="Which shipping option do you prefer?",
        button="Shipping Options",
        header_text="Choose Shipping Option",
        footer="Lucky Shrub: Your gateway to succulents™",
        sections=[
            ListSection("I want it ASAP!", [
                ListRow("priority_express", "Priority Mail Express", "Next Day to 2 Days"),
                ListRow("priority_mail", "Priority Mail", "1–3 Days"),
            ]),
            ListSection("I can wait a bit", [ListRow("ground_advantage", "USPS Ground Advantage")]),
        ],
    )
    assert message.to_payload(TO) == {
        **BASE,
        "type": "interactive",
        "interactive": {
            "type": "list",
            "header": {"type": "text", "text": "Choose Shipping Option"},
            "body": {"text": "Which shipping option do you prefer?"},
            "footer": {"text": "Lucky Shrub: Your gateway to succulents™"},
            "action": {
                "button": "Shipping Options",
                "sections": [
                    {"title": "I want it ASAP!", "rows": [
                        {"id": "priority_express", "title": "Priority Mail Express", "description": "Next Day to 2 Days"},
                        {"id": "priority_mail", "title": "Priority Mail", "description": "1–3 Days"},
                    ]},
                    {"title": "I can wait a bit", "rows": [{"id": "ground_advantage", "title": "USPS Ground Advantage"}]},
                ],
            },
        },
    }


def test_cta_url_payload():
    message = CtaUrl(
        body="Tap the button below to see available dates.",
        display_text="See Dates",
        url="https://www.luckyshrub.com?clickID=kqDGWd24Q5TRwoEQTICY7W1JKoXvaZOXWAS7h1P76s0R7Paec4",
        header_text="New workshop dates announced!",
        footer="Dates subject to change.",
    )
    assert message.to_payload(TO) == {
        **BASE,
        "type": "interactive",
        "interactive": {
            "type": "cta_url",
            "header": {"type": "text", "text": "New workshop dates announced!"},
            "body": {"text": "Tap the button below to see available dates."},
            "action": {"name": "cta_url", "parameters": {
                "display_text": "See Dates",
                "url": "https://www.luckyshrub.com?clickID=kqDGWd24Q5TRwoEQTICY7W1JKoXvaZOXWAS7h1P76s0R7Paec4"}},
            "footer": {"text": "Dates subject to change."},
        },
    }


def test_location_request_payload():
    assert LocationRequest("Let us start with your pickup. You can either manually *enter an address* or *share your current location*.").to_payload(TO) == {
        **BASE,
        "type": "interactive",
        "interactive": {
            "type": "location_request_message",
            "body": {"text": "Let us start with your pickup. You can either manually *enter an address* or *share your current location*."},
            "action": {"name": "send_location"},
        },
    }


def test_template_payloads():
    assert Template("hello_world", language="en_US").to_payload(TO) == {
        **BASE, "type": "template", "template": {"name": "hello_world", "language": {"code": "en_US"}}}
    full = Template("order_confirmation", language="en_US", body_params=["Jessica", "SKBUP2-4CPIG9"],
                    quick_reply_payloads=["aGlzIHRoaXMgaXMgY29v", "c2Vjb25k"], header_text_param="Your order")
    assert full.to_payload(TO) == {
        **BASE,
        "type": "template",
        "template": {
            "name": "order_confirmation",
            "language": {"code": "en_US"},
            "components": [
                {"type": "header", "parameters": [{"type": "text", "text": "Your order"}]},
                {"type": "body", "parameters": [{"type": "text", "text": "Jessica"},
                                                {"type": "text", "text": "SKBUP2-4CPIG9"}]},
                {"type": "button", "sub_type": "quick_reply", "index": "0",
                 "parameters": [{"type": "payload", "payload": "aGlzIHRoaXMgaXMgY29v"}]},
                {"type": "button", "sub_type": "quick_reply", "index": "1",
                 "parameters": [{"type": "payload", "payload": "c2Vjb25k"}]},
            ],
        },
    }
    assert Template("t").language == "en"


def test_media_payloads():
    assert Media("image", media_id="2762702990552401").to_payload(TO) == {
        **BASE, "type": "image", "image": {"id": "2762702990552401"}}
    assert Media("document", link="https://clinic.example/report.pdf", caption="Your report",
                 filename="report.pdf").to_payload(TO) == {
        **BASE, "type": "document",
        "document": {"link": "https://clinic.example/report.pdf", "caption": "Your report", "filename": "report.pdf"}}
    assert Media("audio", link="https://clinic.example/a.ogg").to_payload(TO)["audio"] == {
        "link": "https://clinic.example/a.ogg"}


def test_reaction_payload():
    assert Reaction("wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBI0RTJEOTc2ODVERUY5RDlGNkYA", "\U0001f600").to_payload(TO) == {
        **BASE, "type": "reaction",
        "reaction": {"message_id": "wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBI0RTJEOTc2ODVERUY5RDlGNkYA", "emoji": "\U0001f600"}}


def test_mark_read_and_typing_payloads():
    assert mark_read_payload("wamid.in") == {
        "messaging_product": "whatsapp", "status": "read", "message_id": "wamid.in"}
    assert mark_read_payload("wamid.in", typing=True) == {
        "messaging_product": "whatsapp", "status": "read", "message_id": "wamid.in",
        "typing_indicator": {"type": "text"}}
    with pytest.raises(MessageShapeError):
        mark_read_payload("")


# ---------------------------------------------------------------------------------------------
# split_text
# ---------------------------------------------------------------------------------------------


def assert_split_ok(text: str, chunks: List[str], limit: int) -> None:
    assert all(chunk.strip() for chunk in chunks), "no empty chunks"
    assert all(len(chunk) <= limit for chunk in chunks)
    # Only whitespace at the cuts may be lost: non-space content is identical, in order ...
    assert re.sub(r"\s", "", "".join(chunks)) == re.sub(r"\s", "", text)
    # ... and each chunk is a contiguous piece of the original.
    position = 0
    for chunk in chunks:
        found = text.find(chunk, position)
        assert found >= 0, "chunk is not a contiguous substring"
        assert text[position:found].strip() == "", "something other than whitespace was dropped"
        position = found + len(chunk)
    assert text[position:].strip() == ""


def test_split_short_text_is_unchanged():
    assert split_text("Hello there.") == ["Hello there."]
    assert split_text("x" * limits.TEXT_BODY_MAX) == ["x" * limits.TEXT_BODY_MAX]
    assert split_text("  keep my spaces  ", 100) == ["  keep my spaces  "]


def test_split_blank_gives_nothing():
    assert split_text("") == []
    assert split_text(" \n\t ") == []


def test_split_prefers_sentence_boundary():
    text = "First sentence here. Second one is a bit longer than that"
    chunks = split_text(text, 40)
    # A word cut would fit more ("... Second one is a bit"), but the sentence end wins.
    assert chunks == ["First sentence here.", "Second one is a bit longer than that"]
    assert_split_ok(text, chunks, 40)


def test_split_sentence_marks_and_newlines():
    assert split_text("Is it urgent? Call 112 now, please do it", 20) == ["Is it urgent?", "Call 112 now, please", "do it"]
    assert split_text("Wow! That is great news for you", 15) == ["Wow!", "That is great", "news for you"]
    assert split_text("line one\nline two is long", 15) == ["line one", "line two is", "long"]
    assert split_text('He said "stop." Then left quickly', 20) == ['He said "stop."', "Then left quickly"]


def test_split_falls_back_to_words_then_hard_cut():
    assert split_text("alpha beta gamma delta", 12) == ["alpha beta", "gamma delta"]
    assert split_text("abcdefghij", 4) == ["abcd", "efgh", "ij"]
    # A decimal point is not a sentence end.
    assert split_text("dose 2.5 mg twice daily", 12) == ["dose 2.5 mg", "twice daily"]


def test_split_hard_cut_keeps_combining_marks_together():
    text = "e\u0301" * 5  # é written as e + combining acute
    chunks = split_text(text, 3)
    assert all(not chunk[0] == "\u0301" for chunk in chunks)
    assert "".join(chunks) == text


def test_split_at_default_limit():
    sentence = "Please bring your insurance card and a list of your medicines. "
    text = sentence * 150  # ~9,600 characters
    chunks = split_text(text)
    assert len(chunks) == 3
    # Every cut falls after a full stop (the last chunk keeps the text's own trailing space).
    assert all(chunk.rstrip().endswith(".") for chunk in chunks)
    assert_split_ok(text, chunks, limits.TEXT_BODY_MAX)


def test_split_rejects_bad_limit():
    with pytest.raises(ValueError):
        split_text("abc", 0)


def test_split_properties_on_random_text():
    rng = random.Random(1234)
    alphabet = ["word", "a", "Dr.", "2.5", "ok!", "why?", "\n", " ", "  ", "xxxxxxxxxxxxxxxxxxxx", "é", ". ", "\n\n"]
    for _ in range(400):
        text = "".join(rng.choice(alphabet) + rng.choice([" ", "", "\n"]) for _ in range(rng.randint(0, 80)))
        limit = rng.randint(1, 60)
        chunks = split_text(text, limit)
        if not text.strip():
            assert chunks == []
            continue
        assert_split_ok(text, chunks, limit)


# ---------------------------------------------------------------------------------------------
# choice_message
# ---------------------------------------------------------------------------------------------


def test_choice_up_to_three_short_titles_are_buttons():
    message = choice_message("Which day?", [Choice("Monday", "mon"), Choice("Tuesday", "tue"), Choice("Wednesday", "wed")])
    assert isinstance(message, ReplyButtons)
    assert [(b.id, b.title) for b in message.buttons] == [("mon", "Monday"), ("tue", "Tuesday"), ("wed", "Wednesday")]
    assert isinstance(choice_message("Sure?", [Choice(s(20), "yes")]), ReplyButtons)


def test_choice_four_choices_become_a_list():
    choices = [Choice(f"Option {i}", f"o{i}") for i in range(4)]
    message = choice_message("Pick", choices, list_button="See options", section_title="Clinics")
    assert isinstance(message, ListMessage)
    assert message.button == "See options"
    assert len(message.sections) == 1 and message.sections[0].title == "Clinics"
    assert [(r.id, r.title, r.description) for r in message.sections[0].rows] == [
        (f"o{i}", f"Option {i}", None) for i in range(4)]


def test_choice_a_long_title_forces_a_list():
    message = choice_message("Pick", [Choice("Yes", "y"), Choice(s(21), "n")])
    assert isinstance(message, ListMessage)


def test_choice_description_forces_a_list_so_it_stays_visible():
    message = choice_message("Pick", [Choice("Cardiology", "c", "Floor 2, room 14")])
    assert isinstance(message, ListMessage)
    assert message.sections[0].rows[0].description == "Floor 2, room 14"


def test_choice_long_title_shortened_with_full_title_in_description():
    title = "Book a follow-up appointment with your doctor"  # 45 characters
    message = choice_message("Pick", [Choice(title, "book"), Choice("b", "b"), Choice("c", "c"), Choice("d", "d")])
    row = message.sections[0].rows[0]
    assert row.title == "Book a follow-up…"
    assert len(row.title) <= limits.LIST_ROW_TITLE_MAX
    assert row.description == title


def test_choice_long_title_keeps_existing_description():
    title = "Book a follow-up appointment with your doctor"
    row = choice_message("Pick", [Choice(title, "book", "Next free slot: Monday")]).sections[0].rows[0]
    assert row.title.endswith("…") and len(row.title) <= limits.LIST_ROW_TITLE_MAX
    assert row.description == "Next free slot: Monday"


def test_choice_title_too_long_for_description_is_only_shortened():
    title = " ".join(["word"] * 20)  # 99 characters
    row = choice_message("Pick", [Choice(title, "x")] + [Choice(str(i), str(i)) for i in range(3)]).sections[0].rows[0]
    assert row.description is None
    assert row.title.endswith("…") and len(row.title) <= limits.LIST_ROW_TITLE_MAX
    assert row.title[:-1].split() == ["word"] * len(row.title[:-1].split())  # cut at a word boundary


def test_choice_unbreakable_title_is_hard_cut():
    row = choice_message("Pick", [Choice(s(30), "x")]).sections[0].rows[0]
    assert row.title == s(23) + "…"


def test_choice_ten_is_a_list_eleven_raises():
    ten = [Choice(f"Slot {i}", f"s{i}") for i in range(10)]
    assert isinstance(choice_message("Pick", ten), ListMessage)
    with pytest.raises(MessageShapeError, match="at most 10"):
        choice_message("Pick", ten + [Choice("Slot 10", "s10")])


def test_choice_body_too_long_raises():
    choice_message(s(limits.INTERACTIVE_BODY_MAX), [Choice("Yes", "y")])
    with pytest.raises(MessageShapeError, match="send the text separately"):
        choice_message(s(limits.INTERACTIVE_BODY_MAX + 1), [Choice("Yes", "y")])


def test_choice_needs_choices():
    with pytest.raises(MessageShapeError):
        choice_message("Pick", [])
