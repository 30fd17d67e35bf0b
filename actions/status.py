"""Answers "are my results ready?", "is my sick note ready?", "what about my bill?" and
"how long until my turn?" from the clinic's record states (clinic/records), never with the
content: a ready result or document gets a fresh single-use portal link (clinic/portal),
anything else a date or what happens next. Decides and sets ``status_answer`` (and the
facts the reply quotes); data/rules/status.yml picks the reply.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Dict, List, Text

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions.labels import LABELS, label, people
from actions.language import language_of
from actions.notifications import get_notification_services
from actions.services import get_services
from clinic.notifications.model import BILLING_ITEMS, DOCUMENT_KINDS
from clinic.portal.tokens import portal_link
from clinic.records.answers import QUESTIONS, answer
from clinic.scheduling.formatting import by_day, clock

logger = logging.getLogger(__name__)

SLOTS = ("status_link", "status_expected", "status_document", "status_reference", "status_room",
         "status_position")
# The answer carries the model's English label ("sick note", "invoice"); its code finds the
# patient's wording in actions/labels.py ("document" is the answers' word for an unknown kind).
_DOCUMENT_CODES = {english: code for code, english in DOCUMENT_KINDS.items()}
_BILLING_CODES = {english: code for code, english in BILLING_ITEMS.items()}


def patient_label(english: str, question: str, language: str) -> str:
    prefix, codes = (("billing", _BILLING_CODES) if question == "billing_status"
                     else ("document", _DOCUMENT_CODES))
    key = f"{prefix}.{codes.get(english, english)}"
    return label(key, language) if key in LABELS else english


class ActionStatusLookup(Action):
    def name(self) -> Text:
        return "action_status_lookup"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: Dict[Text, Any]) -> List[EventType]:
        question = (tracker.latest_message.get("intent") or {}).get("name")
        if question not in QUESTIONS:
            return [SlotSet("status_answer", "failed")]
        try:
            return await asyncio.to_thread(self._lookup, tracker, question)
        except Exception:  # noqa: BLE001 - the patient always gets an answer
            logger.exception("Status lookup (%s) failed", question)
            return [SlotSet("status_answer", "failed")]

    @staticmethod
    def _lookup(tracker: Tracker, question: str) -> List[EventType]:
        services = get_services()
        extra = get_notification_services()
        patient = services.scheduling.find_patient(services.contact_key_for(tracker))
        # Earlier answers' facts are cleared: a reply never quotes a stale link or date.
        events: List[EventType] = [SlotSet(name, None) for name in SLOTS]
        if patient is None:
            return events + [SlotSet("status_answer", "not_registered")]
        now = services.clock()
        result = answer(question, extra.records.records(patient.id, QUESTIONS[question]), now)
        if result.document_id:
            issued = extra.portal.issue(patient.id, result.document_id, result.purpose, source="chat")
            events.append(SlotSet("status_link", portal_link(services.settings.portal_url, issued.token)))
        language = language_of(tracker)
        if result.expected is not None:
            tz = services.settings.timezone
            local = result.expected.astimezone(tz)
            # "we expect them by {status_expected}": the date (or, in the queue, the time).
            when = (by_day(local.date(), language=language) if result.state != "queue_waiting"
                    else clock(result.expected, tz, language=language))
            events.append(SlotSet("status_expected", when))
        document = patient_label(result.label, question, language) if result.label else None
        if result.reference and question == "billing_status":
            document = f"{document} {result.reference}"
        if document:
            events.append(SlotSet("status_document", document))
        if result.reference:
            events.append(SlotSet("status_reference", result.reference))
        if result.room:
            events.append(SlotSet("status_room", result.room))
        if result.position is not None:
            events.append(SlotSet("status_position", people(result.position, language)))
        return events + [SlotSet("status_answer", result.state)]
