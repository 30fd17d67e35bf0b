"""Opt-out and the double opt-in, recorded per pseudonymous contact (clinic/consent.py).

* ``opt_out`` ("STOP", "unsubscribe"): everything off at once (reminders, follow-ups,
  surveys, health tips), queued broadcast messages for the contact skipped, confirmed.
* ``opt_out_tips`` ("stop tips", the template's "Stop tips" button): health tips only.
* ``opt_in`` ("START", "subscribe"): the rules ask the double opt-in question
  (``utter_ask_opt_in``); only a tap on one of its choices (``confirm_opt_in`` with
  ``consent_scope`` ``all`` or ``reminders``) or a "yes" to it records anything.

The wording stored with each change is the text the patient agreed to: the question
(``utter_ask_opt_in@vN``) for an opt-in, the confirmation for an opt-out. Bump the version
here whenever that response's text changes in domain/consent.yml.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Dict, List, Sequence, Text

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions.services import get_services
from clinic.consent import HEALTH_TIPS, REMINDERS

logger = logging.getLogger(__name__)

# Wording ids: response name + version of its text (domain/consent.yml).
OPT_OUT_WORDING = "utter_opt_out_recorded@v2"
TIPS_OPT_OUT_WORDING = "utter_tips_opt_out_recorded@v1"
OPT_IN_WORDING = "utter_ask_opt_in@v1"  # the double opt-in question the patient said yes to
SCOPE_ENTITY = "consent_scope"


class _RecordConsent:
    """Shared run(); a mixin, not an Action, so the SDK does not register it."""

    granted: bool
    wording: str

    def topics(self, tracker: Tracker) -> Sequence[str]:
        return (REMINDERS, HEALTH_TIPS)

    def result(self, topics: Sequence[str]) -> str:
        return "recorded"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: Dict[Text, Any]) -> List[EventType]:
        services = get_services()
        contact = services.contact_key_for(tracker)
        channel = tracker.get_latest_input_channel()
        topics = self.topics(tracker)
        try:
            await asyncio.to_thread(services.consent.record, contact, topics, self.granted, self.wording,
                                    channel, services.clock(), tracker.sender_id)
            if not self.granted and HEALTH_TIPS in topics:
                # Messages of a running broadcast not yet handed over are skipped now (the
                # runner also re-checks consent right before each send).
                from clinic.broadcasts.store import BroadcastStore

                await asyncio.to_thread(BroadcastStore(services.consent.sessions, services.consent)
                                        .skip_opted_out, contact)
        except Exception:  # noqa: BLE001 - the patient must hear it was not saved
            logger.exception("Could not record a consent change")
            return [SlotSet("consent_result", "failed")]
        # data/rules/consent.yml answers with the wording recorded here.
        return [SlotSet("consent_result", self.result(topics))]


class ActionRecordOptOut(_RecordConsent, Action):
    granted, wording = False, OPT_OUT_WORDING

    def name(self) -> Text:
        return "action_record_opt_out"


class ActionRecordTipsOptOut(_RecordConsent, Action):
    granted, wording = False, TIPS_OPT_OUT_WORDING

    def name(self) -> Text:
        return "action_record_tips_opt_out"

    def topics(self, tracker: Tracker) -> Sequence[str]:
        return (HEALTH_TIPS,)


class ActionRecordOptIn(_RecordConsent, Action):
    granted, wording = True, OPT_IN_WORDING

    def name(self) -> Text:
        return "action_record_opt_in"

    def topics(self, tracker: Tracker) -> Sequence[str]:
        scope = next(tracker.get_latest_entity_values(SCOPE_ENTITY), None)
        return (REMINDERS,) if scope == "reminders" else (REMINDERS, HEALTH_TIPS)

    def result(self, topics: Sequence[str]) -> str:
        return "recorded" if HEALTH_TIPS in topics else "recorded_reminders"
