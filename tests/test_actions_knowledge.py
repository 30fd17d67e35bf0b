"""action_answer_from_documents (issue 17, the dialogue): the approved passage quoted with its
source in the patient's language, or "not found" for the rules' honest reply; the counts the
analytics show. Real SQLite database, real demo documents, the real search."""

from __future__ import annotations

import datetime as dt
from typing import List, Optional

import pytest
from rasa_sdk.events import SlotSet
from sqlalchemy import text

from actions.handoff import ActionRequestHuman
from actions.knowledge import ActionAnswerFromDocuments, after_document_answer
from clinic.knowledge.answers import NO_DOCUMENT, TopicFigures, outcome_figures
from clinic.knowledge.demo import DIRECTORY, DOCUMENTS
from clinic.knowledge.service import KnowledgeBase, VersionView
from tests.conftest import SESSION_START, make_tracker, user_event

SITE_EN = "https://www.riverside-clinic.example/en/preparing-for-examinations"
DOG_EN = "Animals are not allowed inside the clinic. Assistance dogs, such as guide dogs, are welcome everywhere in the clinic."
SMOKING_RU = "Курить, в том числе электронные сигареты, на территории клиники запрещено."
ANIMALS_ZH = "动物不得进入诊所。导盲犬等辅助犬可以进入诊所的所有区域。"
FASTING_EN = ("For a fasting blood test, do not eat for 8 to 12 hours beforehand. You may drink water, and you "
              "should take your usual medicines unless your doctor told you otherwise.")


def approve(services, key: str, language: str) -> VersionView:
    """Upload and approve one demo document in one language, as a reviewer would."""
    kb = KnowledgeBase(services.documents.sessions)
    document = next(d for d in DOCUMENTS if d.key == key)
    name = document.file.format(lang=language)
    with kb.sessions.begin() as session:
        version = kb.upload(session, data=(DIRECTORY / name).read_bytes(), name=name, by="reviewer",
                            title=document.titles[language], topic=document.topic,
                            url=document.url.format(lang=language) if document.url else None)
        return kb.approve(session, version.id, "reviewer")


async def ask(dispatcher, domain, question: str, language: str, intent: str = "out_of_scope",
              history: Optional[List[dict]] = None):
    tracker = make_tracker([SESSION_START, *(history or []), user_event(intent, question)], slots={"language": language})
    return await ActionAnswerFromDocuments().run(dispatcher, tracker, domain)


def answer_message(response: str, **fill) -> dict:
    """What the CollectingDispatcher holds for a response sent with its fill-ins."""
    return {"text": None, "buttons": [], "elements": [], "custom": {}, "template": response,
            "response": response, "image": None, "attachment": None, **fill}


@pytest.mark.asyncio
async def test_an_english_question_is_answered_with_the_passage_and_its_source(services, dispatcher, domain):
    approve(services, "visiting-policy", "en")
    events = await ask(dispatcher, domain, "Can I bring my dog?", "en")
    assert events == [SlotSet("document_answer", "found")]
    assert dispatcher.messages == [answer_message(
        "utter_document_answer", quote=DOG_EN, source="From: Visiting policy, Bringing things")]


@pytest.mark.asyncio
async def test_a_russian_question_is_answered_from_the_russian_document(services, dispatcher, domain):
    approve(services, "visiting-policy", "en")
    approve(services, "visiting-policy", "ru")
    events = await ask(dispatcher, domain, "Можно ли курить на территории клиники?", "ru")
    assert events == [SlotSet("document_answer", "found")]
    assert dispatcher.messages == [answer_message(
        "utter_document_answer", quote=SMOKING_RU, source="Источник: Правила посещения, Поведение в клинике")]


@pytest.mark.asyncio
async def test_a_chinese_question_not_understood_is_answered_from_the_chinese_document(services, dispatcher, domain):
    approve(services, "visiting-policy", "zh")
    events = await ask(dispatcher, domain, "可以带动物来诊所吗？", "zh", intent="nlu_fallback")
    assert events == [SlotSet("document_answer", "found")]
    assert dispatcher.messages == [answer_message("utter_document_answer", quote=ANIMALS_ZH,
                                                  source="来源: 探视规定, 可以带什么")]


@pytest.mark.asyncio
async def test_a_page_is_quoted_with_its_address(services, dispatcher, domain):
    approve(services, "examinations", "en")
    events = await ask(dispatcher, domain, "Can I drink water before a fasting blood test?", "en", intent="faq")
    assert events == [SlotSet("document_answer", "found")]
    assert dispatcher.messages == [answer_message(
        "utter_document_answer_page", quote=FASTING_EN,
        source="From: Preparing for your examination, Blood samples", link=SITE_EN)]


@pytest.mark.asyncio
async def test_a_question_no_document_answers_is_not_found_and_sends_nothing(services, dispatcher, domain):
    approve(services, "visiting-policy", "en")
    events = await ask(dispatcher, domain, "What's the weather like tomorrow?", "en")
    assert events == [SlotSet("document_answer", "not_found")]
    assert dispatcher.messages == []  # the rules send today's honest reply


@pytest.mark.asyncio
async def test_a_retired_document_answers_no_more(services, dispatcher, domain):
    version = approve(services, "visiting-policy", "en")
    assert await ask(dispatcher, domain, "Can I bring my dog?", "en") == [SlotSet("document_answer", "found")]
    kb = KnowledgeBase(services.documents.sessions)
    with kb.sessions.begin() as session:
        kb.retire(session, version.document_id, "reviewer")
    dispatcher.messages.clear()
    assert await ask(dispatcher, domain, "Can I bring my dog?", "en") == [SlotSet("document_answer", "not_found")]
    assert dispatcher.messages == []


@pytest.mark.asyncio
async def test_a_passage_in_another_language_is_never_offered(services, dispatcher, domain):
    approve(services, "visiting-policy", "en")  # only the English document is approved
    # A Russian patient asking in Russian, and even in English: the English passage is not theirs.
    assert await ask(dispatcher, domain, "Можно ли курить на территории клиники?", "ru") == \
        [SlotSet("document_answer", "not_found")]
    assert await ask(dispatcher, domain, "Can I bring my dog?", "ru") == [SlotSet("document_answer", "not_found")]
    assert dispatcher.messages == []


@pytest.mark.asyncio
async def test_a_button_payload_is_not_searched(services, dispatcher, domain):
    approve(services, "visiting-policy", "en")
    assert await ask(dispatcher, domain, "/out_of_scope", "en") == [SlotSet("document_answer", "not_found")]
    with services.documents.sessions() as session:
        assert outcome_figures(session, dt.datetime(2000, 1, 1, tzinfo=dt.timezone.utc),
                               dt.datetime(2100, 1, 1, tzinfo=dt.timezone.utc)) == []


def test_a_request_for_a_person_counts_only_right_after_a_document_answer():
    searched = {"event": "action", "name": "action_answer_from_documents"}
    reply = {"event": "action", "name": "utter_out_of_scope"}
    right_after = make_tracker([SESSION_START, user_event("out_of_scope", "dog?"), searched, reply,
                                {"event": "action", "name": "action_listen"}, user_event("request_human")])
    assert after_document_answer(right_after)
    later = make_tracker([SESSION_START, user_event("out_of_scope", "dog?"), searched, reply,
                          user_event("greet"), {"event": "action", "name": "utter_main_menu"},
                          user_event("request_human")])
    assert not after_document_answer(later)


@pytest.mark.asyncio
async def test_analytics_count_answered_not_found_and_handed_over_per_document(services, dispatcher, domain):
    approve(services, "visiting-policy", "en")
    approve(services, "visiting-policy", "ru")
    searched = {"event": "action", "name": "action_answer_from_documents"}
    # Answered, then the patient asks for a person right away.
    await ask(dispatcher, domain, "Can I bring my dog?", "en")
    handover = make_tracker([SESSION_START, user_event("out_of_scope", "Can I bring my dog?"), searched,
                             user_event("request_human", "/request_human")], slots={"language": "en"})
    await ActionRequestHuman().run(dispatcher, handover, domain)
    # Answered, no person asked for; a Russian question nothing answers; one no document came near.
    await ask(dispatcher, domain, "Can I bring flowers?", "en")
    await ask(dispatcher, domain, "Сколько стоит пломба на зуб?", "ru")
    await ask(dispatcher, domain, "What's the weather like tomorrow?", "en")

    with services.documents.sessions() as session:
        figures = outcome_figures(session, dt.datetime(2000, 1, 1, tzinfo=dt.timezone.utc),
                                  dt.datetime(2100, 1, 1, tzinfo=dt.timezone.utc))
    by_key = {(f.title, f.language): f for f in figures}
    assert by_key[("Visiting policy", "en")] == TopicFigures("Visiting policy", "en", answered=2, not_found=0,
                                                             handed_over=1)
    assert by_key[(NO_DOCUMENT, "en")] == TopicFigures(NO_DOCUMENT, "en", 0, 1, 0)
    assert sum(f.not_found for f in figures if f.language == "ru") == 1
    assert sum(f.answered for f in figures) == 2
    # Counts only: the outcome rows hold no text of the questions.
    with services.documents.sessions() as session:
        dump = " ".join(str(v) for row in session.execute(text("SELECT * FROM knowledge_outcomes")) for v in row)
    assert "dog" not in dump and "пломба" not in dump and "weather" not in dump
