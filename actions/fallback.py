"""Misunderstandings: the first gets "could you rephrase?", a second in a row the offer of a
human. This action counts; data/rules/fallback.yml picks the reply."""

from __future__ import annotations

from typing import Any, Dict, List, Text

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions.conversation import intent_of, session_user_events

FALLBACK_INTENT = "nlu_fallback"
OFFER_HUMAN_AFTER = 2


class ActionTrackMisunderstanding(Action):
    def name(self) -> Text:
        return "action_track_misunderstanding"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[Text, Any]
    ) -> List[EventType]:
        repeated = consecutive_misunderstandings(tracker) >= OFFER_HUMAN_AFTER
        return [SlotSet("misunderstanding", "repeated" if repeated else "first")]


def consecutive_misunderstandings(tracker: Tracker) -> int:
    """How many of the latest user messages of this session in a row were not understood."""
    count = 0
    for event in reversed(session_user_events(tracker)):
        if intent_of(event) != FALLBACK_INTENT:
            break
        count += 1
    return count
