"""Answers from the clinic's approved documents (issue 17), for questions the curated FAQ
does not answer and no other intent takes (out_of_scope, nlu_fallback, a FAQ question with
no approved text).

``action_answer_from_documents`` asks clinic/knowledge (which knows nothing of Rasa) for the
approved passage that answers, in the conversation's language. Found: it sends the quote
with its source line (and the page's address when the source is a page) and the offer of a
person, and sets ``document_answer`` to ``found``. Otherwise it sends nothing and sets
``not_found``: data/rules/knowledge.yml then gives the same honest reply as before documents
existed (utter_out_of_scope, the misunderstanding replies, utter_faq_unknown).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Dict, List, Text

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions.language import language_of
from actions.services import Services, get_services

logger = logging.getLogger(__name__)

ACTION_NAME = "action_answer_from_documents"
SLOT = "document_answer"
FOUND, NOT_FOUND = "found", "not_found"


class ActionAnswerFromDocuments(Action):
    def name(self) -> Text:
        return ACTION_NAME

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[Text, Any]
    ) -> List[EventType]:
        services = get_services()
        question = ((tracker.latest_message or {}).get("text") or "").strip()
        # A button's payload ("/out_of_scope") is not a question; nothing to search.
        if not question or question.startswith("/") or services.documents is None:
            return [SlotSet(SLOT, NOT_FOUND)]
        try:
            # Off the event loop: the first search loads the tokenizers and builds the indexes.
            answer = await asyncio.to_thread(services.documents.answer, question, language_of(tracker),
                                             services.contact_key_for(tracker))
        except Exception as error:  # noqa: BLE001 - the patient still gets the honest reply
            # The error's class only: a message from deep inside could quote the question.
            logger.error("Document search failed (%s); answering as not found", type(error).__name__)
            return [SlotSet(SLOT, NOT_FOUND)]
        if not answer.found:
            return [SlotSet(SLOT, NOT_FOUND)]
        if answer.url:
            dispatcher.utter_message(response="utter_document_answer_page", quote=answer.quote,
                                     source=answer.source, link=answer.url)
        else:
            dispatcher.utter_message(response="utter_document_answer", quote=answer.quote, source=answer.source)
        return [SlotSet(SLOT, FOUND)]


def after_document_answer(tracker: Tracker) -> bool:
    """Did the assistant's previous turn (before the patient's latest message) search the
    documents? Then a request for a person now is one "right after" that answer."""
    seen_user = False
    for event in reversed(tracker.events):
        if event.get("event") == "user":
            if seen_user:
                return False
            seen_user = True
        elif seen_user and event.get("event") == "action" and event.get("name") == ACTION_NAME:
            return True
    return False


async def count_handover(services: Services, tracker: Tracker) -> None:
    """Counts a request for a person against the document answer just before it (analytics:
    which documents leave patients needing a person). Never in the way of the handoff."""
    if services.documents is None or not after_document_answer(tracker):
        return
    try:
        await asyncio.to_thread(services.documents.handed_over, services.contact_key_for(tracker))
    except Exception as error:  # noqa: BLE001 - a count lost, the handoff goes on
        logger.error("Could not count a handover after a document answer (%s)", type(error).__name__)
