"""Requests to talk to a human: route to a team and record the request.

Sets ``handoff_team`` (which picks the wording of utter_handoff_requested) and
``handoff_result`` (``recorded`` or ``failed``); data/rules/handoff.yml picks the reply.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Dict, List, Text

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions.conversation import recent_topics
from actions.services import get_services
from clinic.handoff.requests import Reason
from clinic.handoff.teams import route

logger = logging.getLogger(__name__)


class ActionRequestHuman(Action):
    def name(self) -> Text:
        return "action_request_human"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[Text, Any]
    ) -> List[EventType]:
        services = get_services()
        # The team named in *this* message (entity), not one remembered from earlier.
        asked_for = next(tracker.get_latest_entity_values("team"), None)
        team = route(asked_for, recent_topics(tracker))
        try:
            # Database work off the event loop, so other patients' actions keep flowing.
            await asyncio.to_thread(
                services.handoffs.record,
                services.contact_key_for(tracker),
                team,
                Reason.PATIENT_REQUEST,
            )
            result = "recorded"
        except Exception:  # noqa: BLE001 - any failure must still leave the patient a route
            logger.exception("Could not record handoff request (team=%s)", team.value)
            result = "failed"
        return [SlotSet("handoff_team", team.value), SlotSet("handoff_result", result)]
