"""FAQ: decide whether one of the clinic's approved texts answers the question.

The answer itself is Rasa's retrieval response ``utter_faq`` (texts in domain/faq.yml);
this action only sets ``faq_answer`` to ``approved`` or ``unknown`` and the rules in
data/rules/faq.yml pick the reply, so designers see both paths in the rules.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Text

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher

# Below this ResponseSelector confidence we say "I don't know" rather than risk giving the
# answer to a different question.
MIN_ANSWER_CONFIDENCE = 0.5


class ActionCheckFaqAnswer(Action):
    def name(self) -> Text:
        return "action_check_faq_answer"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[Text, Any]
    ) -> List[EventType]:
        found = approved_answer(tracker.latest_message, domain) is not None
        return [SlotSet("faq_answer", "approved" if found else "unknown")]


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
