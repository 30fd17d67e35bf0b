"""Booking in a WhatsApp Flow: offering the form, and reading its answers.

``offer_booking_flow`` adds the Flow message ("Book in a form") when a booking starts on
WhatsApp; the chat questions follow as they always did, so the patient may answer either.
``action_flow_booking`` reads the completed form (the channel turns ``nfm_reply`` into
``/flow_booking{"flow_response": …}``), checks its flow token was issued to this
conversation, and fills the chat form's slots; ``action_book_appointment`` then books them
(data/rules/booking_flow.yml) — the same code, the same answers, including a time taken in
the meantime.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from typing import Any, Dict, List, Text

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.appointments.common import (
    ANYONE,
    BOOKING_SLOTS,
    call,
    latest_entity,
    now,
    offer_of,
    services,
)
from actions.language import language_of
from clinic.booking_flow import tokens
from clinic.booking_flow.screens import texts
from clinic.booking_flow.settings import booking_flow_id
from clinic.scheduling import formatting
from clinic.scheduling.model import SlotQuery
from clinic.scheduling.preferences import TimeWindow
from clinic.scheduling.translations import service_name

logger = logging.getLogger(__name__)

WHATSAPP = "whatsapp"
CHECK_SLOT = "flow_booking_check"


def offer_booking_flow(dispatcher: CollectingDispatcher, tracker: Tracker) -> None:
    """On WhatsApp, with a published Flow: the form's message, in the patient's language."""
    flow_id = booking_flow_id()
    channel = tracker.get_latest_input_channel() or ""
    if not flow_id or channel != WHATSAPP:
        return
    language = language_of(tracker)
    token = tokens.issue(tracker.sender_id, channel, language, services().pseudonym_key, now())
    words = texts(language)
    dispatcher.utter_message(json_message={"whatsapp": {
        "type": "flow", "body": words["message_body"], "cta": words["cta"],
        "flow_id": flow_id, "flow_token": token}})


class ActionFlowBooking(Action):
    def name(self) -> Text:
        return "action_flow_booking"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: DomainDict) -> List[EventType]:
        svc = services()
        try:
            answers = json.loads(latest_entity(tracker, "flow_response") or "")
            tokens.verify(str(answers.get("flow_token")), svc.pseudonym_key, now(),
                          conversation_id=tracker.sender_id)
            service_id = str(answers["service"])
            practitioner = str(answers["practitioner"])
            slot_id = str(answers["slot"])
            day = dt.date.fromisoformat(str(answers["day"]))
        except (ValueError, KeyError, TypeError, AttributeError, tokens.InvalidFlowToken) as error:
            logger.info("A booking form's answers were refused: %s", type(error).__name__)
            return [SlotSet(CHECK_SLOT, "invalid")]
        language = language_of(tracker)
        tz = svc.settings.timezone
        start = dt.datetime.combine(day, dt.time(0), tz)
        window = TimeWindow(earliest=start, latest=start + dt.timedelta(days=1) - dt.timedelta(microseconds=1),
                            single_day=True)
        events: List[EventType] = [SlotSet(name, None) for name in BOOKING_SLOTS]
        events += [
            SlotSet("booking_result", None),
            SlotSet("booking_service", service_id),
            SlotSet("booking_practitioner", practitioner),
            # What the chat form would have read, so a time taken meanwhile is offered again
            # on the same day (data/rules/appointments.yml, "the time was taken meanwhile").
            SlotSet("booking_preference", formatting.long_day(day, language=language)),
            SlotSet("booking_window", window.to_dict()),
            SlotSet("booking_slot", slot_id),
            SlotSet("booking_confirmed", "yes"),
        ]
        if answers.get("name") and answers.get("birth_date"):
            events += [SlotSet("patient_name", str(answers["name"])),
                       SlotSet("patient_birth_date", str(answers["birth_date"]))]
        service = next((s for s in await call(svc.scheduling.services) if s.id == service_id), None)
        if service is not None:
            events.append(SlotSet("appointment_service", service_name(service, language)))
        offer = await self._offer(service_id, practitioner, slot_id, window, language)
        if offer is not None:
            events.append(SlotSet("booking_offers", [offer]))
        events.append(SlotSet(CHECK_SLOT, "ready"))
        return events

    @staticmethod
    async def _offer(service_id: str, practitioner: str, slot_id: str, window: TimeWindow,
                     language: str) -> Dict[str, Any] | None:
        query = SlotQuery(service_id=service_id, earliest=window.earliest, latest=window.latest,
                          practitioner_id=None if practitioner == ANYONE else practitioner, limit=100)
        try:
            found = await call(services().scheduling.search_slots, query)
        except Exception:  # noqa: BLE001 - only the summary; the booking itself decides
            return None
        slot = next((s for s in found if s.id == slot_id), None)
        return offer_of(slot, practitioner == ANYONE, language) if slot else None
