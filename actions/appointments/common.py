"""What the appointment actions share: services, "now", payloads, slot names, searching.

The rules of the conversation live in domain/appointments.yml (texts), data/rules and
data/stories/appointments.yml (flow); the clinic logic in clinic/scheduling. This module
is the glue: it reads slots, calls the backend off the event loop and sends responses.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from typing import Any, Callable, Dict, List, Optional, TypeVar

from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher

from actions.services import Services, get_services
from clinic.handoff.hours import describe_hours, describe_windows
from clinic.scheduling import formatting
from clinic.scheduling.model import Service, Slot, SlotQuery
from clinic.scheduling.preferences import (
    ClinicClosed,
    DateInPast,
    ImpossibleDate,
    PreferenceError,
    TimeWindow,
    parse_preference,
)

T = TypeVar("T")

ANYONE = "any"
MAX_OFFERS = 10  # a WhatsApp list holds 10 rows

# Everything one booking (or a move) remembers; cleared at the start and the end of a flow.
BOOKING_SLOTS = (
    "booking_service", "booking_practitioner", "booking_preference", "booking_window",
    "booking_slot", "booking_offers", "booking_confirmed", "patient_name",
    "patient_birth_date",
)
SUMMARY_SLOTS = (
    "appointment_when", "appointment_service", "appointment_practitioner",
    "appointment_location", "appointment_address", "appointment_preparation",
)


async def call(function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Database work off the event loop, so other patients' actions keep flowing."""
    return await asyncio.to_thread(function, *args, **kwargs)


def services() -> Services:
    return get_services()


def now() -> dt.datetime:
    svc = services()
    return svc.clock().astimezone(svc.settings.timezone)


def payload(intent: str, **entities: str) -> str:
    """``/intent{"entity": "value"}``: what a button sends back (ids only, never text)."""
    return f"/{intent}{json.dumps(entities)}" if entities else f"/{intent}"


def latest_entity(tracker: Tracker, entity: str) -> Optional[str]:
    value = next(tracker.get_latest_entity_values(entity), None)
    return str(value) if value is not None else None


def latest_text(tracker: Tracker) -> str:
    text = (tracker.latest_message or {}).get("text") or ""
    # A button payload ("/inform{...}") is not something the patient typed.
    return "" if text.startswith("/") else text


def read_preference(text: str, dispatcher: CollectingDispatcher,
                    language: str = "en",
                    anchor: Optional[dt.datetime] = None) -> Optional[TimeWindow]:
    """The window for ``text``, or ``None`` after telling the patient kindly why not (the
    day and hours in the reply written in ``language``, the conversation's). ``anchor``:
    what "the day after", "a week later", "same time"... refer to (the start of the
    appointment being moved; see clinic/scheduling/preferences.py)."""
    svc = services()
    try:
        return parse_preference(text, now(), svc.settings.timezone,
                                opening_hours=svc.settings.reception_hours.windows,
                                language=language, anchor=anchor)
    except DateInPast as error:
        dispatcher.utter_message(response="utter_preference_in_past",
                                 day=formatting.long_day(error.day, language=language))
    except ImpossibleDate:
        dispatcher.utter_message(response="utter_preference_impossible_date")
    except ClinicClosed as error:
        hours = describe_windows(error.hours_that_day, language=language)
        if hours:  # open that day, but not at the hours asked for
            dispatcher.utter_message(response="utter_preference_closed_hours", hours=hours,
                                     day=formatting.long_day(error.day, language=language))
        else:
            # "We're closed on {day}" / "Извините, {day} у нас выходной": the day it happens
            # on ("в воскресенье, 29 марта").
            dispatcher.utter_message(
                response="utter_preference_closed_day",
                day=formatting.on_day(error.day, language=language),
                opening_hours=describe_hours(svc.settings.reception_hours, language=language))
    except PreferenceError:
        dispatcher.utter_message(response="utter_preference_unclear")
    return None


def reads_as_preference(text: str, language: str = "en",
                        anchor: Optional[dt.datetime] = None) -> Optional[TimeWindow]:
    """Silent version: does ``text`` name a usable day or time?"""
    svc = services()
    try:
        return parse_preference(text, now(), svc.settings.timezone,
                                opening_hours=svc.settings.reception_hours.windows,
                                language=language, anchor=anchor)
    except PreferenceError:
        return None


async def search(service_id: str, practitioner: Optional[str],
                 window: Dict[str, Any]) -> List[Slot]:
    time_window = TimeWindow.from_dict(window)
    query = time_window.to_query(
        service_id, None if practitioner in (None, ANYONE) else practitioner, MAX_OFFERS)
    return await call(services().scheduling.search_slots, query)


async def still_free(offer: Dict[str, Any], service_id: str) -> bool:
    """Is the offered slot still free? Asked through the protocol's search, so an EHR
    adapter answers it too."""
    start = dt.datetime.fromisoformat(offer["start"])
    query = SlotQuery(service_id=service_id, earliest=start, latest=start,
                      practitioner_id=offer.get("practitioner_id"), limit=100)
    found = await call(services().scheduling.search_slots, query)
    return any(slot.id == offer["id"] for slot in found)


def offer_of(slot: Slot, with_practitioner: bool, language: str = "en") -> Dict[str, Any]:
    tz = services().settings.timezone
    return {
        "id": slot.id,
        "title": formatting.slot_title(slot, tz, with_practitioner, language=language),
        "start": slot.start.isoformat(),
        "practitioner_id": slot.practitioner.id,
        # A move compares it with the appointment's site (names differ by language).
        "location_id": slot.location.id,
        **formatting.slot_variables(slot, "", tz, language=language),
    }


def service_named(service_id: Optional[str]) -> Optional[Service]:
    if not service_id:
        return None
    return next((s for s in services().scheduling.services() if s.id == service_id), None)
