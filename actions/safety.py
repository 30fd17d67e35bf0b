"""Emergencies: the guidance itself is the domain response ``utter_emergency``, sent before
this action runs (so it never depends on the action server). Here we raise an urgent
handoff to the nurse team — the conversation's inbox ticket is opened or escalated to
urgent in the same transaction — and set ``urgent_handoff`` to ``recorded`` or ``failed``.

(While a staff member owns the conversation Rasa runs no actions at all; the WhatsApp
connector then sends the same guidance and raises the same urgent handoff itself, see
connectors/whatsapp/safety_net.py.)"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Dict, List, Text

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions.handoff import record_handoff
from actions.services import get_services
from clinic.handoff.requests import Reason
from clinic.handoff.teams import Team

logger = logging.getLogger(__name__)


class ActionRaiseUrgentHandoff(Action):
    def name(self) -> Text:
        return "action_raise_urgent_handoff"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[Text, Any]
    ) -> List[EventType]:
        services = get_services()
        category = tracker.get_slot("red_flag")  # None when only the classifier said emergency
        try:
            queued = await asyncio.to_thread(record_handoff, services, tracker, Team.NURSE,
                                             Reason.EMERGENCY, category)
            result = "recorded" if queued else "failed"
        except Exception:  # noqa: BLE001 - the guidance was already sent
            logger.exception("Could not record urgent handoff (category=%s)", category)
            result = "failed"
        # Clear the detector's slots so a later emergency picks its own wording.
        return [
            SlotSet("urgent_handoff", result),
            SlotSet("red_flag", None),
            SlotSet("red_flag_response", None),
        ]
