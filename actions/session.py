"""Session start: load the clinic settings into slots and welcome the patient.

The welcome goes out at the start of every session, whatever the first message says, so
every patient learns what the assistant can do, that it gives no medical advice and that
it is not for emergencies, before anything else.

In the patient's language: the WhatsApp door sends the contact's language with the message
(``session_started_metadata``), else the language carried over from the last session. Rasa
renders an action's responses before applying the action's own events, so a Russian
patient's first welcome would come out in English; the welcome variation is therefore
chosen here from the domain (clinic.language.responses, as Rasa chooses) and sent as text.
"""

from __future__ import annotations

from typing import Any, Dict, List, Text

from rasa_sdk import Action, Tracker
from rasa_sdk.events import ActionExecuted, EventType, SessionStarted, SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions.services import get_services
from clinic.handoff.hours import describe_hours
from clinic.i18n import language_code
from clinic.language.responses import fill, select_variation


class ActionSessionStart(Action):
    def name(self) -> Text:
        return "action_session_start"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[Text, Any]
    ) -> List[EventType]:
        settings = get_services().settings
        language = _session_language(tracker)
        values = settings.as_slots()
        # Hours as the patient reads them ("пн–пт 08:00–18:00"); English keeps the settings' wording.
        values["reception_hours"] = describe_hours(settings.reception_hours, language=language)
        values["nurse_line_hours"] = describe_hours(settings.nurse_line_hours, language=language)
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
        if language:
            events.append(SlotSet("language", language))
        welcome = select_variation((domain.get("responses") or {}).get("utter_welcome") or [],
                                   {"language": language})
        if welcome is not None and language:
            dispatcher.utter_message(text=fill(str(welcome["text"]), values))
        else:
            # The response is rendered before these slot events are applied, so pass the values.
            dispatcher.utter_message(response="utter_welcome", **values)
        events.append(ActionExecuted("action_listen"))
        return events


def _session_language(tracker: Tracker):
    """The door's decision for this message, else the language carried over, else None."""
    metadata = tracker.get_slot("session_started_metadata") or {}
    chosen = metadata.get("language") if isinstance(metadata, dict) else None
    chosen = chosen or tracker.get_slot("language")
    return language_code(chosen) if chosen else None
