"""action_check_faq_answer: approved texts only, honest "unknown" otherwise; a curated text
yields to an approved document passage that answers the question when it does not."""

import pytest
from rasa_sdk.events import SlotSet

from actions.faq import MIN_ANSWER_CONFIDENCE, ActionCheckFaqAnswer
from actions.knowledge import ActionAnswerFromDocuments
from tests.conftest import SESSION_START, make_tracker, user_event
from tests.test_actions_knowledge import approve


async def run(dispatcher, domain, **event):
    tracker = make_tracker([SESSION_START, user_event("faq", **event)])
    return await ActionCheckFaqAnswer().run(dispatcher, tracker, domain)


@pytest.mark.asyncio
async def test_confident_match_with_an_approved_text(dispatcher, domain):
    events = await run(dispatcher, domain, response_key="faq/parking", confidence=0.93)
    assert events == [SlotSet("faq_answer", "approved")]
    assert dispatcher.messages == []  # the rule sends utter_faq, not the action


@pytest.mark.asyncio
async def test_low_confidence_is_unknown(dispatcher, domain):
    low = MIN_ANSWER_CONFIDENCE - 0.01
    events = await run(dispatcher, domain, response_key="faq/parking", confidence=low)
    assert events == [SlotSet("faq_answer", "unknown")]


@pytest.mark.asyncio
async def test_topic_without_an_approved_text_is_unknown(dispatcher, domain):
    events = await run(dispatcher, domain, response_key="faq/cafeteria", confidence=0.99)
    assert events == [SlotSet("faq_answer", "unknown")]


@pytest.mark.asyncio
async def test_missing_selector_output_is_unknown(dispatcher, domain):
    events = await run(dispatcher, domain)
    assert events == [SlotSet("faq_answer", "unknown")]


def test_every_approved_text_names_its_source(domain):
    answers = {k: v for k, v in domain["responses"].items() if k.startswith("utter_faq/")}
    required = {"opening_hours", "location", "parking", "insurance", "documents", "preparation"}
    assert required <= {k.split("/", 1)[1] for k in answers}
    for name, variations in answers.items():
        for variation in variations:
            assert variation["metadata"]["source"], name
            assert variation["metadata"]["approved_on"], name


# ── the curated text yields to an approved document passage that answers the question ──────


async def check(dispatcher, domain, question: str, key: str, language: str, form: str = ""):
    tracker = make_tracker([SESSION_START, user_event("faq", question, response_key=key, confidence=0.92)],
                           slots={"language": language})
    if form:
        tracker.active_loop = {"name": form}
    return await ActionCheckFaqAnswer().run(dispatcher, tracker, domain)


@pytest.mark.asyncio
@pytest.mark.parametrize("question, key, language, document, outcome", [
    # The NLU took them for "what to bring" / "preparing for your visit"; the documents answer
    # them ("unknown": data/rules/knowledge.yml answers from the documents).
    ("Can I bring food for a patient?", "faq/documents", "en", "visiting-policy", "unknown"),
    ("Can I eat before an abdominal ultrasound?", "faq/preparation", "en", "examinations", "unknown"),
    ("Где взять контейнер для мочи?", "faq/documents", "ru", "examinations", "unknown"),
    ("新患者登记需要带什么？", "faq/documents", "zh", "patient-guide", "unknown"),
    # The curated text carries half of the question or more: it answers.
    ("Are you open on public holidays?", "faq/opening_hours", "en", "patient-guide", "approved"),
    ("Where can visitors park?", "faq/parking", "en", "visiting-policy", "approved"),
    ("Можно ли пить воду перед анализом крови натощак?", "faq/preparation", "ru", "examinations", "approved"),
    # One subject word ("appointment") is too little to overrule the NLU.
    ("What should I bring to my appointment?", "faq/documents", "en", "patient-guide", "approved"),
    # Nothing in the documents answers.
    ("Do you accept private insurance?", "faq/insurance", "en", "visiting-policy", "approved"),
])
async def test_the_curated_text_yields_only_to_a_passage_that_answers_what_it_does_not(
        services, dispatcher, domain, question, key, language, document, outcome):
    approve(services, document, language)
    assert await check(dispatcher, domain, question, key, language) == [SlotSet("faq_answer", outcome)]
    assert dispatcher.messages == []


@pytest.mark.asyncio
async def test_the_document_answer_that_follows_is_the_passage_on_the_question(services, dispatcher, domain):
    approve(services, "visiting-policy", "en")
    await check(dispatcher, domain, "Can I bring food for a patient?", "faq/documents", "en")
    tracker = make_tracker([SESSION_START, user_event("faq", "Can I bring food for a patient?",
                                                      response_key="faq/documents")], slots={"language": "en"})
    assert await ActionAnswerFromDocuments().run(dispatcher, tracker, domain) == [SlotSet("document_answer", "found")]
    assert "food" in dispatcher.messages[0]["quote"].lower()


@pytest.mark.asyncio
async def test_a_failing_search_keeps_the_curated_text(services, dispatcher, domain, monkeypatch, caplog):
    approve(services, "visiting-policy", "en")

    def broken(*_args):
        raise RuntimeError("Can I bring food for a patient?")

    monkeypatch.setattr(services.documents, "better_than_curated", broken)
    events = await check(dispatcher, domain, "Can I bring food for a patient?", "faq/documents", "en")
    assert events == [SlotSet("faq_answer", "approved")]
    assert "RuntimeError" in caplog.text and "bring food" not in caplog.text


@pytest.mark.asyncio
@pytest.mark.parametrize("question, language, form", [
    ("Можно ли принести пациенту еду?", "ru", ""),  # the passage is English: never offered in Russian
    ("/faq{\"topic\": \"documents\"}", "en", ""),  # a button's payload asked for this text
    # In a form "unknown" is the honest "I don't know" (data/rules/faq.yml), not the passage.
    ("Can I bring food for a patient?", "en", "booking_form"),
])
async def test_the_curated_text_stays_where_the_documents_cannot_answer_instead(
        services, dispatcher, domain, question, language, form):
    approve(services, "visiting-policy", "en")
    events = await check(dispatcher, domain, question, "faq/documents", language, form=form)
    assert events == [SlotSet("faq_answer", "approved")]
