"""FAQ: decide whether one of the clinic's approved texts answers the question.

The answer itself is Rasa's retrieval response ``utter_faq`` (texts in domain/faq.yml);
this action only sets ``faq_answer`` to ``approved`` or ``unknown`` and the rules in
data/rules/faq.yml pick the reply, so designers see both paths in the rules.

An approved text the NLU chose still yields to the clinic's documents when an approved
passage answers the question and the text does not (clinic/knowledge/curated.py): the
slot is then ``unknown`` and data/rules/knowledge.yml answers from the documents.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Dict, List, Optional, Text

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions.language import language_of
from actions.services import get_services
from clinic.language.responses import select_variation

logger = logging.getLogger(__name__)

# Below this ResponseSelector confidence we say "I don't know" rather than risk giving the
# answer to a different question.
MIN_ANSWER_CONFIDENCE = 0.5


class ActionCheckFaqAnswer(Action):
    def name(self) -> Text:
        return "action_check_faq_answer"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[Text, Any]
    ) -> List[EventType]:
        response = approved_answer(tracker.latest_message, domain)
        if response is not None and await documents_answer_better(tracker, domain, response):
            response = None
        return [SlotSet("faq_answer", "approved" if response is not None else "unknown")]


async def documents_answer_better(tracker: Tracker, domain: Dict[Text, Any], response: str) -> bool:
    """Whether an approved document passage answers the patient's question better than the
    curated ``response`` would, in the conversation's language. Any doubt keeps the curated
    text: no question text, a form under way, no document search, or a search that fails."""
    question = ((tracker.latest_message or {}).get("text") or "").strip()
    if not question or question.startswith("/"):
        return False  # a button's payload names the topic: the curated text it asked for
    if tracker.active_loop_name:
        # In a form the documents are not searched (data/rules/faq.yml): "unknown" would
        # be the honest "I don't know", not the passage.
        return False
    documents = get_services().documents
    variation = select_variation(domain["responses"][response], tracker.current_slot_values())
    if documents is None or variation is None or not variation.get("text"):
        return False
    try:
        better = await asyncio.to_thread(documents.better_than_curated, question, language_of(tracker),
                                         variation["text"])
        return better is not None
    except Exception as error:  # noqa: BLE001 - the curated answer still goes out
        # The error's class only: a message from deep inside could quote the question.
        logger.error("Document search failed (%s); keeping the curated answer", type(error).__name__)
        return False


def approved_answer(parse_data: Dict[Text, Any], domain: Dict[Text, Any]) -> Optional[str]:
    """The ``utter_faq/<topic>`` response that answers, or None when no approved text fits."""
    selected = ((parse_data.get("response_selector") or {}).get("faq") or {}).get("response") or {}
    key = selected.get("intent_response_key")
    if not key or (selected.get("confidence") or 0.0) < MIN_ANSWER_CONFIDENCE:
        return None
    response = f"utter_{key}"
    # Never rely on a response the domain doesn't have (e.g. a topic removed from the texts).
    if response not in (domain.get("responses") or {}):
        return None
    return response
