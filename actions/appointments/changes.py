"""Listing, rescheduling and cancelling the patient's own appointments.

``action_find_appointment`` starts a change: it checks the appointment a button named
(reminder or list taps carry ``appointment_id``) or looks up the patient's upcoming ones,
and sets ``appointment_lookup`` (found | none | inactive | unknown | error) for the rules.
A tap for someone else's appointment gets the same answer as an unknown id, so a forwarded
message reveals nothing. ``reschedule_form`` / ``cancel_form`` then ask what is missing.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any, Dict, List, Optional, Text

from rasa_sdk import Action, FormValidationAction, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.appointments.booking import NO, YES, NextQuestion, SlotChoiceValidation
from actions.appointments.common import (
    ANYONE,
    BOOKING_SLOTS,
    SUMMARY_SLOTS,
    call,
    latest_entity,
    latest_text,
    now,
    payload,
    reads_as_preference,
    services,
)
from actions.labels import label
from actions.language import language_of
from clinic.scheduling import formatting
from clinic.scheduling.answers import choice_index
from clinic.scheduling.model import (
    Appointment,
    InvalidTransition,
    Location,
    NotFound,
    NotYours,
    SlotUnavailable,
)
from clinic.scheduling.translations import location_name

logger = logging.getLogger(__name__)

MAX_LISTED = 5


def _summary(appointment: Appointment, language: str) -> List[EventType]:
    details = formatting.appointment_variables(appointment, services().settings.timezone,
                                               language=language)
    return [SlotSet(name, details[name]) for name in ("appointment_id", *SUMMARY_SLOTS)]


async def _upcoming(tracker: Tracker) -> List[Appointment]:
    svc = services()
    return await call(svc.scheduling.upcoming, svc.contact_key_for(tracker), now())


async def _being_moved(tracker: Tracker) -> Optional[Appointment]:
    """The patient's appointment the reschedule form is moving, if one is chosen."""
    appointment_id = tracker.get_slot("appointment_id")
    if not appointment_id:
        return None
    svc = services()
    try:
        return await call(svc.scheduling.appointment, appointment_id,
                          svc.contact_key_for(tracker))
    except (NotFound, NotYours):
        return None
    except Exception:  # noqa: BLE001 - the question still gets an answer, from today
        logger.exception("Looking up the appointment being moved failed")
        return None


def _say_other_site(dispatcher: CollectingDispatcher, before: Location, after_name: str,
                    after_address: str, language: str) -> None:
    """A move may land at another of the clinic's sites (a practitioner who works at two,
    or "anyone"): the patient must not find out at the wrong door."""
    dispatcher.utter_message(response="utter_reschedule_other_site", new_location=after_name,
                             new_address=after_address,
                             old_location=location_name(before, language))


class ActionFindAppointment(Action):
    def name(self) -> Text:
        return "action_find_appointment"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: DomainDict) -> List[EventType]:
        svc = services()
        reset: List[EventType] = [SlotSet(name, None) for name in BOOKING_SLOTS]
        reset += [SlotSet("cancel_confirmed", None), SlotSet("reschedule_result", None),
                  SlotSet("cancel_result", None)]
        named = latest_entity(tracker, "appointment_id")
        try:
            if named:
                appointment = await call(svc.scheduling.appointment, named,
                                         svc.contact_key_for(tracker))
                if not appointment.status.is_active:
                    return reset + [SlotSet("appointment_id", None),
                                    SlotSet("appointment_lookup", "inactive")]
                return reset + [SlotSet("appointment_id", appointment.id),
                                SlotSet("appointment_lookup", "found")]
            upcoming = await _upcoming(tracker)
        except (NotFound, NotYours):
            return reset + [SlotSet("appointment_id", None),
                            SlotSet("appointment_lookup", "unknown")]
        except Exception:  # noqa: BLE001 - answer with a route to reception instead
            logger.exception("Appointment lookup failed")
            return reset + [SlotSet("appointment_id", None), SlotSet("appointment_lookup", "error")]
        if not upcoming:
            return reset + [SlotSet("appointment_id", None), SlotSet("appointment_lookup", "none")]
        only = upcoming[0].id if len(upcoming) == 1 else None
        return reset + [SlotSet("appointment_id", only), SlotSet("appointment_lookup", "found")]


class ActionAskAppointmentId(Action):
    """Which appointment? One button per upcoming appointment."""

    def name(self) -> Text:
        return "action_ask_appointment_id"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: DomainDict) -> List[EventType]:
        tz = services().settings.timezone
        language = language_of(tracker)
        upcoming = await _upcoming(tracker)
        buttons = [
            {"title": formatting.row_title(a.start, tz, a.practitioner, language=language),
             "payload": payload("inform", appointment_id=a.id)}
            for a in upcoming[:10]
        ]
        dispatcher.utter_message(response="utter_ask_appointment_id", buttons=buttons)
        return []


class AppointmentChoiceValidation:
    async def validate_appointment_id(self, value: Any, dispatcher: CollectingDispatcher,
                                      tracker: Tracker, domain: DomainDict) -> Dict[Text, Any]:
        svc = services()
        wanted: Optional[str] = latest_entity(tracker, "appointment_id")
        if not wanted:
            wanted = str(value or "")
            if not wanted.startswith("apt_"):
                wanted = await self._typed_choice(latest_text(tracker), tracker) or ""
        if not wanted:
            dispatcher.utter_message(response="utter_appointment_choice_unclear")
            return {"appointment_id": None}
        try:
            appointment = await call(svc.scheduling.appointment, wanted,
                                     svc.contact_key_for(tracker))
        except (NotFound, NotYours):
            dispatcher.utter_message(response="utter_appointment_not_found")
            return {"appointment_id": None}
        if not appointment.status.is_active:
            dispatcher.utter_message(response="utter_appointment_not_active")
            return {"appointment_id": None}
        result = {event["name"]: event["value"]
                  for event in _summary(appointment, language_of(tracker))}
        if tracker.active_loop_name == "reschedule_form":
            result.update(booking_service=appointment.service.id,
                          booking_practitioner=appointment.practitioner.id)
        return result

    async def _typed_choice(self, text: str, tracker: Tracker) -> Optional[str]:
        """"the second one", "2", or a day that matches exactly one appointment."""
        upcoming = await _upcoming(tracker)
        index = choice_index(text, len(upcoming))
        if index is not None:
            return upcoming[index].id
        window = reads_as_preference(text, language_of(tracker))
        if window is None:
            return None
        matching = [a for a in upcoming if window.earliest <= a.start < window.latest
                    or window.earliest.date() == a.start.astimezone(window.earliest.tzinfo).date()]
        return matching[0].id if len(matching) == 1 else None


class ValidateRescheduleForm(AppointmentChoiceValidation, SlotChoiceValidation,
                             FormValidationAction):
    def name(self) -> Text:
        return "validate_reschedule_form"

    async def validate_booking_practitioner(self, value: Any, dispatcher: CollectingDispatcher,
                                            tracker: Tracker,
                                            domain: DomainDict) -> Dict[Text, Any]:
        # Set from the appointment; the "anyone" button widens the search.
        wanted = latest_entity(tracker, "practitioner") or value
        if wanted == ANYONE:
            return {"booking_practitioner": ANYONE, "booking_slot": None, "booking_offers": None}
        return {"booking_practitioner": value}

    async def preference_anchor(self, tracker: Tracker) -> Optional[dt.datetime]:
        # "The Monday after", "a week later", "same time next week": after the appointment
        # being moved, not after today.
        moving = await _being_moved(tracker)
        return moving.start if moving is not None else None

    async def validate_booking_slot(self, value: Any, dispatcher: CollectingDispatcher,
                                    tracker: Tracker, domain: DomainDict) -> Dict[Text, Any]:
        result = await super().validate_booking_slot(value, dispatcher, tracker, domain)
        chosen = result.get("booking_slot")
        offer = next((o for o in tracker.get_slot("booking_offers") or []
                      if o.get("id") == chosen), None) if chosen else None
        moving = await _being_moved(tracker) if offer else None
        if offer and moving:
            # Said before "Shall I book this?", so the patient agrees to the new place too.
            # Offers kept from before they carried the site's id are compared by address.
            if "location_id" in offer:
                elsewhere = offer["location_id"] != moving.location.id
            else:
                elsewhere = offer.get("appointment_address") != moving.location.address
            if elsewhere:
                _say_other_site(dispatcher, moving.location, offer["appointment_location"],
                                offer["appointment_address"], language_of(tracker))
        return result


class ValidateCancelForm(AppointmentChoiceValidation, NextQuestion, FormValidationAction):
    def name(self) -> Text:
        return "validate_cancel_form"

    async def validate_cancel_confirmed(self, value: Any, dispatcher: CollectingDispatcher,
                                        tracker: Tracker, domain: DomainDict) -> Dict[Text, Any]:
        if value in (YES, NO):
            return {"cancel_confirmed": value}
        if str(value or "").startswith("/"):
            return {"cancel_confirmed": None}  # a button of another message: answered there
        dispatcher.utter_message(response="utter_please_answer_yes_no")
        return {"cancel_confirmed": None}


class ActionRescheduleAppointment(Action):
    """Move the appointment to the chosen slot; ``reschedule_result`` says how it went."""

    def name(self) -> Text:
        return "action_reschedule_appointment"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: DomainDict) -> List[EventType]:
        svc = services()
        appointment_id = tracker.get_slot("appointment_id")
        key = svc.contact_key_for(tracker)
        try:
            # Read first: the confirmation says so when the site changed.
            before = await call(svc.scheduling.appointment, appointment_id, key)
            moved = await call(svc.scheduling.reschedule, appointment_id, key,
                               tracker.get_slot("booking_slot"), now())
        except SlotUnavailable:
            return [SlotSet("booking_slot", None), SlotSet("booking_confirmed", None),
                    SlotSet("booking_offers", None), SlotSet("reschedule_result", "slot_taken")]
        except InvalidTransition:
            return [SlotSet("reschedule_result", "inactive")]
        except (NotFound, NotYours):
            return [SlotSet("reschedule_result", "unknown")]
        except Exception:  # noqa: BLE001
            logger.exception("Reschedule failed")
            return [SlotSet("reschedule_result", "failed")]
        language = language_of(tracker)
        if moved.location.id != before.location.id:
            _say_other_site(dispatcher, before.location, location_name(moved.location, language),
                            moved.location.address, language)
        events: List[EventType] = [SlotSet(name, None) for name in BOOKING_SLOTS]
        return events + _summary(moved, language) + [
            SlotSet("reschedule_result", "rescheduled")]


class ActionCancelAppointment(Action):
    """Cancel after a "yes" (the slot is free for others at once); keep it after a "no"."""

    def name(self) -> Text:
        return "action_cancel_appointment"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: DomainDict) -> List[EventType]:
        svc = services()
        done = [SlotSet("cancel_confirmed", None)]
        if tracker.get_slot("cancel_confirmed") != YES:
            return done + [SlotSet("cancel_result", "kept")]
        try:
            cancelled = await call(svc.scheduling.cancel, tracker.get_slot("appointment_id"),
                                   svc.contact_key_for(tracker), "patient", now())
        except InvalidTransition:
            return done + [SlotSet("cancel_result", "inactive")]
        except (NotFound, NotYours):
            return done + [SlotSet("cancel_result", "unknown")]
        except Exception:  # noqa: BLE001
            logger.exception("Cancellation failed")
            return done + [SlotSet("cancel_result", "failed")]
        return done + _summary(cancelled, language_of(tracker)) + [
            SlotSet("cancel_result", "cancelled")]


class ActionListAppointments(Action):
    """One message per upcoming appointment, each with Reschedule / Cancel buttons."""

    def name(self) -> Text:
        return "action_list_appointments"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: DomainDict) -> List[EventType]:
        tz = services().settings.timezone
        language = language_of(tracker)
        try:
            upcoming = await _upcoming(tracker)
        except Exception:  # noqa: BLE001
            logger.exception("Listing appointments failed")
            return [SlotSet("appointment_lookup", "error")]
        if not upcoming:
            return [SlotSet("appointment_lookup", "none")]
        for appointment in upcoming[:MAX_LISTED]:
            details = formatting.appointment_variables(appointment, tz, language=language)
            buttons = [
                {"title": label("reschedule", language),
                 "payload": payload("reschedule_appointment", appointment_id=appointment.id)},
                {"title": label("cancel", language),
                 "payload": payload("cancel_appointment", appointment_id=appointment.id)},
            ]
            dispatcher.utter_message(response="utter_appointment_item", buttons=buttons,
                                     **details)
        if len(upcoming) > MAX_LISTED:
            dispatcher.utter_message(response="utter_more_appointments",
                                     count=len(upcoming) - MAX_LISTED)
        return [SlotSet("appointment_lookup", "found")]
