"""Session start: load the clinic settings into slots and welcome the patient.

The welcome goes out at the start of every session, whatever the first message says, so
every patient learns what the assistant can do, that it gives no medical advice and that
it is not for emergencies, before anything else.
"""

from __future__ import annotations

from typing import Any, Dict, List, Text

from rasa_sdk import Action, Tracker
from rasa_sdk.events import ActionExecuted, EventType, SessionStarted, SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions.services import get_services


class ActionSessionStart(Action):
    def name(self) -> Text:
        return "action_session_start"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[Text, Any]
    ) -> List[EventType]:
        values = get_services().settings.as_slots()
        events: List[EventType] = [SessionStarted()]
        # Carry over what the patient told us before (e.g. the team they asked for), as
        # Rasa's default session start does; clinic settings are refreshed below.
        if (domain.get("session_config") or {}).get("carry_over_slots_to_new_session", True):
            events += [
                SlotSet(name, value)
                for name, value in tracker.current_slot_values().items()
                if value is not None and name not in values and name != "requested_slot"
            ]
        events += [SlotSet(name, value) for name, value in values.items()]
        # The response is rendered before these slot events are applied, so pass the values.
        dispatcher.utter_message(response="utter_welcome", **values)
        events.append(ActionExecuted("action_listen"))
        return events
