"""Booking: the ``booking_form`` (service → practitioner → day/time → slot → confirm →
name and date of birth for first-time patients) and the booking itself.

The form asks with ``action_ask_*`` (lists built from the live catalogue and free slots)
or domain responses; ``validate_booking_form`` reads the answers, including changes of
mind ("actually another day", "a different doctor"); ``action_book_appointment`` books and
sets ``booking_result``, which data/rules/appointments.yml turns into the reply.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from typing import Any, Dict, List, Optional, Text

from rasa_sdk import Action, FormValidationAction, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.appointments.booking_flow import offer_booking_flow
from actions.appointments.common import (
    ANYONE,
    BOOKING_SLOTS,
    SUMMARY_SLOTS,
    call,
    latest_entity,
    latest_text,
    now,
    offer_of,
    payload,
    read_preference,
    reads_as_preference,
    search,
    service_named,
    services,
    still_free,
)
from actions.labels import label
from actions.language import language_of
from clinic.scheduling import formatting
from clinic.scheduling.answers import (
    InvalidBirthDate,
    InvalidName,
    choice_index,
    clean_name,
    match_practitioner,
    match_service,
    parse_birth_date,
    requested_change,
    wants_anyone,
)
from clinic.scheduling.model import SchedulingError, SlotUnavailable
from clinic.scheduling.translations import service_name, with_translated_synonyms

logger = logging.getLogger(__name__)

YES, NO = "yes", "no"


class ActionStartBooking(Action):
    """Forget any earlier booking's answers, keep what the first message already said
    ("a blood test on Friday morning")."""

    def name(self) -> Text:
        return "action_start_booking"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: DomainDict) -> List[EventType]:
        events: List[EventType] = [SlotSet(name, None) for name in BOOKING_SLOTS]
        events.append(SlotSet("booking_result", None))
        # On WhatsApp: the booking form ("Book in a form") first; the chat questions follow.
        offer_booking_flow(dispatcher, tracker)
        text = latest_text(tracker)
        if text:
            catalogue = with_translated_synonyms(await call(services().scheduling.services))
            # Only a service named plainly: a close spelling of a word in a long first
            # message ("blood pressure check") is no reason to skip the question.
            service = match_service(text, catalogue, fuzzy=False)
            if service:
                events.append(SlotSet("booking_service", service.id))
            window = reads_as_preference(text, language_of(tracker))
            if window:
                events += [SlotSet("booking_preference", text),
                           SlotSet("booking_window", window.to_dict())]
        return events


class NextQuestion:
    """Always name the next question (Rasa's default only does when required slots are
    dynamic), so what comes next is decided in one place and visible in the events."""

    async def next_requested_slot(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                                  domain: DomainDict) -> Optional[EventType]:
        required = await self.required_slots(self.domain_slots(domain), dispatcher, tracker,
                                             domain)
        missing = next((s for s in required if tracker.slots.get(s) is None), None)
        return SlotSet("requested_slot", missing)


class SlotChoiceValidation(NextQuestion):
    """Validators shared by ``booking_form`` and ``reschedule_form``: the day/time
    preference, the slot picked from the list, and the final yes/no."""

    async def preference_anchor(self, tracker: Tracker) -> Optional[dt.datetime]:
        """What "the day after", "a week later", "same time"... count from. A new booking
        has nothing to refer back to (they count from today); a move overrides this with
        the start of the appointment being moved."""
        return None

    async def handle_change(self, change: str, dispatcher: CollectingDispatcher,
                            tracker: Tracker) -> Dict[Text, Any]:
        cleared: Dict[Text, Any] = {"booking_slot": None, "booking_confirmed": None,
                                    "booking_offers": None}
        if change == "time":
            dispatcher.utter_message(response="utter_ask_other_time")
            return {**cleared, "booking_preference": None, "booking_window": None}
        if change == "practitioner":
            if tracker.active_loop_name == "booking_form":
                return {**cleared, "booking_practitioner": None}
            dispatcher.utter_message(response="utter_any_practitioner_now")
            return {**cleared, "booking_practitioner": ANYONE}
        if tracker.active_loop_name == "booking_form":
            return {**cleared, "booking_service": None, "booking_practitioner": None}
        dispatcher.utter_message(response="utter_reschedule_same_service")
        return {**cleared}

    async def validate_booking_preference(self, value: Any, dispatcher: CollectingDispatcher,
                                          tracker: Tracker, domain: DomainDict) -> Dict[Text, Any]:
        text = str(value or "")
        change = latest_entity(tracker, "change") or requested_change(text)
        if change in ("practitioner", "service"):
            return {**await self.handle_change(change, dispatcher, tracker),
                    "booking_preference": None}
        if text.startswith("/"):
            return {"booking_preference": None}  # a button of an earlier question
        window = read_preference(text, dispatcher, language_of(tracker),
                                 await self.preference_anchor(tracker))
        if window is None:
            return {"booking_preference": None, "booking_window": None}
        return {"booking_preference": text, "booking_window": window.to_dict(),
                "booking_slot": None, "booking_offers": None}

    async def validate_booking_slot(self, value: Any, dispatcher: CollectingDispatcher,
                                    tracker: Tracker, domain: DomainDict) -> Dict[Text, Any]:
        offers = tracker.get_slot("booking_offers") or []
        service_id = tracker.get_slot("booking_service")
        chosen = None
        slot_id = latest_entity(tracker, "slot_id")
        text = latest_text(tracker)
        if slot_id:
            chosen = next((o for o in offers if o["id"] == slot_id), None)
        else:
            change = latest_entity(tracker, "change") or requested_change(text)
            if change is None and _intent(tracker) == "deny":
                change = "time"  # "none of those", "no"
            if change:
                return await self.handle_change(change, dispatcher, tracker)
            index = choice_index(text, len(offers))
            if index is not None:
                chosen = offers[index]
            else:
                chosen = _offer_at_time(text, offers)
            if chosen is None:
                window = reads_as_preference(text, language_of(tracker),
                                             await self.preference_anchor(tracker))
                if window is not None:  # "actually, friday afternoon"
                    return {"booking_slot": None, "booking_offers": None,
                            "booking_preference": text, "booking_window": window.to_dict()}
                dispatcher.utter_message(response="utter_slot_choice_unclear")
                return {"booking_slot": None}
        if chosen is None or not await still_free(chosen, service_id):
            dispatcher.utter_message(response="utter_slot_just_taken")
            return {"booking_slot": None, "booking_offers": None}
        return {
            "booking_slot": chosen["id"],
            "appointment_when": chosen["appointment_when"],
            "appointment_practitioner": chosen["appointment_practitioner"],
            "appointment_location": chosen["appointment_location"],
            "appointment_address": chosen["appointment_address"],
        }

    async def validate_booking_confirmed(self, value: Any, dispatcher: CollectingDispatcher,
                                         tracker: Tracker, domain: DomainDict) -> Dict[Text, Any]:
        if value in (YES, NO):
            if value == NO:
                dispatcher.utter_message(response="utter_booking_not_confirmed")
                return {"booking_confirmed": None, "booking_slot": None, "booking_offers": None}
            return {"booking_confirmed": YES}
        text = latest_text(tracker)
        change = latest_entity(tracker, "change") or requested_change(text)
        if change:
            return await self.handle_change(change, dispatcher, tracker)
        if not text:
            return {"booking_confirmed": None}  # a button of another message: answered there
        window = reads_as_preference(text, language_of(tracker),
                                     await self.preference_anchor(tracker))
        if window is not None:
            return {"booking_confirmed": None, "booking_slot": None, "booking_offers": None,
                    "booking_preference": text, "booking_window": window.to_dict()}
        dispatcher.utter_message(response="utter_please_answer_yes_no")
        return {"booking_confirmed": None}


def _intent(tracker: Tracker) -> str:
    return ((tracker.latest_message or {}).get("intent") or {}).get("name") or ""


def _offer_at_time(text: str, offers: List[Dict[str, Any]]) -> Optional[Dict[str, Any]]:
    """"9:20" or "the 09:20 one" when exactly one offered time matches."""
    match = re.search(r"\b(\d{1,2})[:.h](\d{2})\b", text or "")
    if not match:
        return None
    wanted = f"{int(match.group(1)):02d}:{match.group(2)}"
    found = [o for o in offers if wanted in o["title"]]
    return found[0] if len(found) == 1 else None


class ValidateBookingForm(SlotChoiceValidation, FormValidationAction):
    def name(self) -> Text:
        return "validate_booking_form"

    async def required_slots(self, domain_slots: List[Text], dispatcher: CollectingDispatcher,
                             tracker: Tracker, domain: DomainDict) -> List[Text]:
        svc = services()
        patient = await call(svc.scheduling.find_patient, svc.contact_key_for(tracker))
        if patient is None:
            return list(domain_slots)
        return [s for s in domain_slots if s not in ("patient_name", "patient_birth_date")]

    async def validate_booking_service(self, value: Any, dispatcher: CollectingDispatcher,
                                       tracker: Tracker, domain: DomainDict) -> Dict[Text, Any]:
        catalogue = with_translated_synonyms(await call(services().scheduling.services))
        wanted = latest_entity(tracker, "service") or str(value or "")
        service = next((s for s in catalogue if s.id == wanted), None)
        if service is None and not wanted.startswith("/"):
            service = match_service(wanted, catalogue)
        if service is None:
            # "I'd like to book an appointment" said again while asked which service: the
            # form asks its question again, without "I couldn't match that to a service".
            if _intent(tracker) != "book_appointment":
                dispatcher.utter_message(response="utter_service_unknown")
            return {"booking_service": None}
        result: Dict[Text, Any] = {
            "booking_service": service.id,
            "appointment_service": service_name(service, language_of(tracker)),
        }
        performers = await call(services().scheduling.practitioners, service.id)
        if len(performers) == 1:
            # Only one person does it: no point asking.
            result["booking_practitioner"] = performers[0].id
        return result

    async def validate_booking_practitioner(self, value: Any, dispatcher: CollectingDispatcher,
                                            tracker: Tracker,
                                            domain: DomainDict) -> Dict[Text, Any]:
        service_id = tracker.get_slot("booking_service")
        if not service_id:
            return {"booking_practitioner": None}
        performers = await call(services().scheduling.practitioners, service_id)
        wanted = latest_entity(tracker, "practitioner") or str(value or "")
        no_preference = _intent(tracker) == "deny" or wants_anyone(wanted)
        if wanted == ANYONE or (not wanted.startswith("/") and no_preference):
            return {"booking_practitioner": ANYONE, "booking_slot": None, "booking_offers": None}
        chosen = next((p for p in performers if p.id == wanted), None)
        if chosen is None and not wanted.startswith("/"):
            change = requested_change(wanted)
            if change == "service":
                return await self.handle_change(change, dispatcher, tracker)
            chosen = match_practitioner(wanted, performers)
            if chosen is None:
                everyone = await call(services().scheduling.practitioners)
                elsewhere = match_practitioner(wanted, everyone)
                if elsewhere is not None:
                    dispatcher.utter_message(response="utter_practitioner_not_for_service",
                                             practitioner=elsewhere.name)
                    return {"booking_practitioner": None}
        if chosen is None:
            dispatcher.utter_message(response="utter_practitioner_unknown")
            return {"booking_practitioner": None}
        return {"booking_practitioner": chosen.id, "booking_slot": None, "booking_offers": None}

    async def validate_patient_name(self, value: Any, dispatcher: CollectingDispatcher,
                                    tracker: Tracker, domain: DomainDict) -> Dict[Text, Any]:
        try:
            return {"patient_name": clean_name(str(value or ""))}
        except InvalidName:
            dispatcher.utter_message(response="utter_patient_name_invalid")
            return {"patient_name": None}

    async def validate_patient_birth_date(self, value: Any, dispatcher: CollectingDispatcher,
                                          tracker: Tracker,
                                          domain: DomainDict) -> Dict[Text, Any]:
        try:
            born = parse_birth_date(str(value or ""), now().date())
        except InvalidBirthDate:
            dispatcher.utter_message(response="utter_patient_birth_date_invalid")
            return {"patient_birth_date": None}
        return {"patient_birth_date": born.isoformat()}


class ActionAskBookingService(Action):
    def name(self) -> Text:
        return "action_ask_booking_service"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: DomainDict) -> List[EventType]:
        catalogue = await call(services().scheduling.services)
        language = language_of(tracker)
        buttons = [{"title": service_name(s, language)[:24],
                    "payload": payload("inform", service=s.id)}
                   for s in catalogue[:10]]
        dispatcher.utter_message(response="utter_ask_booking_service", buttons=buttons)
        return []


class ActionAskBookingPractitioner(Action):
    def name(self) -> Text:
        return "action_ask_booking_practitioner"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: DomainDict) -> List[EventType]:
        service = service_named(tracker.get_slot("booking_service"))
        performers = await call(services().scheduling.practitioners,
                                tracker.get_slot("booking_service"))
        language = language_of(tracker)
        buttons = [{"title": label("anyone", language),
                    "payload": payload("inform", practitioner=ANYONE)}]
        buttons += [{"title": p.name[:24], "payload": payload("inform", practitioner=p.id)}
                    for p in performers[:9]]
        dispatcher.utter_message(
            response="utter_ask_booking_practitioner", buttons=buttons,
            appointment_service=service_name(service, language) if service else "")
        return []


class ActionAskBookingSlot(Action):
    """The soonest free slots in the patient's window, as a list; or, when there are none,
    the ways on (another time, anyone, reception)."""

    def name(self) -> Text:
        return "action_ask_booking_slot"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: DomainDict) -> List[EventType]:
        service_id = tracker.get_slot("booking_service")
        practitioner = tracker.get_slot("booking_practitioner")
        window = tracker.get_slot("booking_window")
        if not service_id or not window:
            # Nothing to search with (should not happen): ask for the day again.
            dispatcher.utter_message(response="utter_ask_booking_preference")
            return [SlotSet("booking_preference", None)]
        try:
            slots = await search(service_id, practitioner, window)
        except SchedulingError:
            logger.exception("Slot search failed (service=%s)", service_id)
            slots = []
        language = language_of(tracker)
        if not slots:
            buttons = [{"title": label("another_time", language),
                        "payload": payload("inform", change="time")}]
            if practitioner not in (None, ANYONE):
                buttons.append({"title": label("anyone_available", language),
                                "payload": payload("inform", practitioner=ANYONE)})
            buttons.append({"title": label("talk_to_reception", language),
                            "payload": payload("request_human", team="reception")})
            dispatcher.utter_message(response="utter_no_slots", buttons=buttons)
            return [SlotSet("booking_offers", [])]
        with_practitioner = practitioner in (None, ANYONE)
        offers = [offer_of(slot, with_practitioner, language) for slot in slots]
        buttons = [{"title": o["title"], "payload": payload("inform", slot_id=o["id"])}
                   for o in offers]
        dispatcher.utter_message(response="utter_ask_booking_slot", buttons=buttons)
        return [SlotSet("booking_offers", offers)]


class ActionBookAppointment(Action):
    """Register a first-time patient, book the slot, and say how it went through
    ``booking_result`` (booked | slot_taken | failed)."""

    def name(self) -> Text:
        return "action_book_appointment"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: DomainDict) -> List[EventType]:
        svc = services()
        backend = svc.scheduling
        key = svc.contact_key_for(tracker)
        # What the patient typed as name and date of birth leaves the conversation state
        # once it is in the clinic's records.
        forget = [SlotSet("patient_name", None), SlotSet("patient_birth_date", None)]
        try:
            patient = await call(backend.find_patient, key)
            if patient is None:
                name = tracker.get_slot("patient_name")
                born = tracker.get_slot("patient_birth_date")
                if not name or not born:
                    raise ValueError("first-time patient without name or date of birth")
                patient = await call(backend.register_patient, key, name,
                                     dt.date.fromisoformat(born), tracker.sender_id,
                                     tracker.get_latest_input_channel() or "unknown")
            appointment = await call(backend.book, tracker.get_slot("booking_slot"),
                                     patient.id, tracker.get_slot("booking_service"), now())
        except SlotUnavailable:
            return forget + [SlotSet("booking_slot", None), SlotSet("booking_confirmed", None),
                             SlotSet("booking_offers", None),
                             SlotSet("booking_result", "slot_taken")]
        except Exception:  # noqa: BLE001 - the patient must still get an answer and a route
            logger.exception("Booking failed")
            return forget + [SlotSet("booking_result", "failed")]
        details = formatting.appointment_variables(appointment, svc.settings.timezone,
                                                   language=language_of(tracker))
        events = [SlotSet(name, None) for name in BOOKING_SLOTS]
        events += [SlotSet(name, details[name]) for name in ("appointment_id", *SUMMARY_SLOTS)]
        events.append(SlotSet("booking_result", "booked"))
        return events
