"""Survey answers: the 1–5 rating tap and the optional comment (clinic/surveys).

``action_record_rating``: the tap carries ``rating`` and ``survey_id``; the survey must be
this contact's (a forwarded survey tapped on another phone records nothing). A second tap
changes the rating. ``survey_result`` says good / low (1–2: the rules offer a person) /
not_found / failed. ``action_save_survey_comment`` stores the comment encrypted.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from typing import Any, Dict, List, Optional, Text

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions.services import get_services
from clinic.surveys.store import SurveyStore

logger = logging.getLogger(__name__)


@functools.lru_cache(maxsize=4)
def _store(sessions) -> SurveyStore:
    from clinic.privacy import ContactCipher

    return SurveyStore(sessions, ContactCipher.from_environment())


def survey_store() -> SurveyStore:
    return _store(get_services().consent.sessions)


def _rating(value: Any) -> Optional[int]:
    try:
        rating = int(str(value).strip())
    except (TypeError, ValueError):
        return None
    return rating if 1 <= rating <= 5 else None


class ActionRecordRating(Action):
    def name(self) -> Text:
        return "action_record_rating"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: Dict[Text, Any]) -> List[EventType]:
        services = get_services()
        rating = _rating(next(tracker.get_latest_entity_values("rating"), None))
        survey_id = next(tracker.get_latest_entity_values("survey_id"), None)
        if rating is None or not survey_id:
            return [SlotSet("survey_result", "not_found")]
        try:
            result = await asyncio.to_thread(survey_store().rate, str(survey_id), services.contact_key_for(tracker),
                                             rating, services.clock())
        except Exception:  # noqa: BLE001 - the patient hears it was not saved
            logger.exception("Could not record a survey rating")
            return [SlotSet("survey_result", "failed")]
        if result.outcome != "recorded":
            logger.info("Survey rating not recorded: %s", result.outcome)
            return [SlotSet("survey_result", "not_found")]
        return [SlotSet("survey_request_id", str(survey_id)), SlotSet("survey_comment", None),
                SlotSet("survey_result", "low" if result.low else "good")]


class ActionSaveSurveyComment(Action):
    def name(self) -> Text:
        return "action_save_survey_comment"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: Dict[Text, Any]) -> List[EventType]:
        services = get_services()
        survey_id = tracker.get_slot("survey_request_id")
        comment = tracker.get_slot("survey_comment")
        cleared = [SlotSet("survey_comment", None)]
        if not survey_id or not comment:
            return cleared + [SlotSet("survey_result", "comment_failed")]
        try:
            saved = await asyncio.to_thread(survey_store().comment, str(survey_id),
                                            services.contact_key_for(tracker), str(comment), services.clock())
        except Exception:  # noqa: BLE001
            logger.exception("Could not save a survey comment")
            saved = False
        return cleared + [SlotSet("survey_result", "comment_saved" if saved else "comment_failed")]
