"""Appointment actions against the real SQL backend: a temporary SQLite file with the demo
clinic installed, and "now" pinned to Wednesday 10 June 2026, 08:00 in Berlin."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from rasa_sdk import Tracker
from rasa_sdk.events import SlotSet

from actions.appointments.booking import (
    ActionAskBookingPractitioner,
    ActionAskBookingService,
    ActionAskBookingSlot,
    ActionBookAppointment,
    ActionStartBooking,
    ValidateBookingForm,
)
from actions.appointments.changes import (
    ActionAskAppointmentId,
    ActionCancelAppointment,
    ActionFindAppointment,
    ActionListAppointments,
    ActionRescheduleAppointment,
    ValidateCancelForm,
    ValidateRescheduleForm,
)
from actions.appointments.common import BOOKING_SLOTS
from actions.services import build_services, use_services
from clinic.db import make_engine, make_session_factory
from clinic.privacy import contact_key
from clinic.scheduling.demo_data import install_demo_clinic
from clinic.scheduling.model import AppointmentStatus
from clinic.scheduling.preferences import parse_preference
from tests.conftest import PROJECT_ROOT, SESSION_START, TEST_PSEUDONYM_KEY, user_event

TZ = ZoneInfo("Europe/Berlin")
NOW = dt.datetime(2026, 6, 10, 8, 0, tzinfo=TZ)  # a Wednesday
SENDER = "+15550001111"
OTHER_SENDER = "+15550002222"


@pytest.fixture
def clinic(tmp_path, monkeypatch):
    monkeypatch.setenv("CLINIC_PSEUDONYM_KEY", TEST_PSEUDONYM_KEY)
    monkeypatch.setenv("CLINIC_TIMEZONE", "Europe/Berlin")
    url = f"sqlite:///{tmp_path / 'clinic.db'}"
    built = build_services(url, clock=lambda: NOW)
    engine = make_engine(url)
    install_demo_clinic(make_session_factory(engine), timezone=TZ, weeks=4, now=NOW)
    use_services(built)
    yield built
    use_services(None)
    engine.dispose()


@pytest.fixture(scope="module")
def domain(domain):
    """conftest's merged domain, plus the forms (validation reads their required slots)."""
    import yaml

    forms = {}
    for path in sorted((PROJECT_ROOT / "domain").glob("*.yml")):
        forms.update((yaml.safe_load(path.read_text()) or {}).get("forms") or {})
    return {**domain, "forms": forms}


@pytest.fixture
def dispatcher():
    from rasa_sdk.executor import CollectingDispatcher

    return CollectingDispatcher()


def key_of(sender=SENDER):
    return contact_key(sender, "rest", TEST_PSEUDONYM_KEY.encode())


def tracker(intent="inform", text="", entities=None, slots=None, form=None, requested=None,
            candidates=None, sender=SENDER):
    """The tracker an action (or a form's validation) receives. With ``form``, the
    candidates follow the form's ActionExecuted, as Rasa's FormAction sends them."""
    events = [SESSION_START, user_event(intent, text=text, entities=entities)]
    values = dict(slots or {})
    if form:
        events.append({"event": "action", "name": form})
        for name, value in (candidates or {}).items():
            events.append({"event": "slot", "name": name, "value": value})
        values.update(candidates or {})
        values["requested_slot"] = requested
    return Tracker(sender_id=sender, slots=values, latest_message=events[1]["parse_data"],
                   events=events, paused=False, followup_action=None,
                   active_loop={"name": form} if form else {},
                   latest_action_name="action_listen")


def entity(name, value):
    return [{"entity": name, "value": value}]


def responses(dispatcher):
    return [m.get("response") for m in dispatcher.messages]


def window(text, now=NOW):
    return parse_preference(text, now, TZ).to_dict()


def search(clinic, service_id, text, practitioner=None):
    query = parse_preference(text, NOW, TZ).to_query(service_id, practitioner, limit=100)
    return clinic.scheduling.search_slots(query)


def book_for(clinic, sender, slot_id, service_id="gp_consultation", name="Test Patient"):
    patient = clinic.scheduling.register_patient(key_of(sender), name, dt.date(1980, 1, 1),
                                                 sender, "rest")
    return clinic.scheduling.book(slot_id, patient.id, service_id, NOW)


# --- starting ---------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_start_booking_forgets_old_answers_and_keeps_what_the_message_says(
        clinic, dispatcher, domain):
    text = "can I book a blood test for friday morning"
    events = await ActionStartBooking().run(
        dispatcher, tracker("book_appointment", text, slots={"booking_service": "physiotherapy"}),
        domain)
    assert events == [SlotSet(name, None) for name in BOOKING_SLOTS] + [
        SlotSet("booking_result", None),
        SlotSet("booking_service", "blood_test"),
        SlotSet("booking_preference", text),
        SlotSet("booking_window", window("friday morning")),
    ]
    assert dispatcher.messages == []


@pytest.mark.asyncio
async def test_start_booking_from_the_menu_button_prefills_nothing(clinic, dispatcher, domain):
    events = await ActionStartBooking().run(
        dispatcher, tracker("book_appointment", "/book_appointment"), domain)
    assert events == [SlotSet(name, None) for name in BOOKING_SLOTS] + [
        SlotSet("booking_result", None)]


# --- the questions ----------------------------------------------------------------------


@pytest.mark.asyncio
async def test_services_are_offered_from_the_catalogue(clinic, dispatcher, domain):
    assert await ActionAskBookingService().run(dispatcher, tracker(), domain) == []
    [message] = dispatcher.messages
    assert message["response"] == "utter_ask_booking_service"
    assert [(b["title"], json.loads(b["payload"][len("/inform"):])) for b in message["buttons"]] == [
        ("Blood test", {"service": "blood_test"}),
        ("GP consultation", {"service": "gp_consultation"}),
        ("Physiotherapy", {"service": "physiotherapy"}),
        ("Vaccination", {"service": "vaccination"}),
    ]


@pytest.mark.asyncio
async def test_practitioners_offered_are_those_who_do_the_service_plus_anyone(
        clinic, dispatcher, domain):
    await ActionAskBookingPractitioner().run(
        dispatcher, tracker(slots={"booking_service": "blood_test"}), domain)
    [message] = dispatcher.messages
    assert message["response"] == "utter_ask_booking_practitioner"
    assert message["appointment_service"] == "Blood test"
    assert [b["title"] for b in message["buttons"]] == [
        "Anyone", "Nurse Camille Moreau", "Nurse Kenji Tanaka"]
    assert message["buttons"][0]["payload"] == '/inform{"practitioner": "any"}'


# --- validating answers -----------------------------------------------------------------


async def validate(dispatcher, domain, validator=None, **kwargs):
    validator = validator or ValidateBookingForm()
    return await validator.run(dispatcher, tracker(form=validator.form_name(), **kwargs), domain)


@pytest.mark.asyncio
async def test_a_typed_service_is_matched_and_a_single_practitioner_chosen_for_it(
        clinic, dispatcher, domain):
    events = await validate(dispatcher, domain, text="physio pls", requested="booking_service",
                            candidates={"booking_service": "physio pls"})
    assert SlotSet("booking_service", "physiotherapy") in events
    assert SlotSet("booking_practitioner", "silva") in events  # the only physiotherapist
    assert SlotSet("appointment_service", "Physiotherapy") in events
    assert events[-1] == SlotSet("requested_slot", "booking_preference")
    assert dispatcher.messages == []


@pytest.mark.asyncio
async def test_an_unknown_service_is_asked_again(clinic, dispatcher, domain):
    events = await validate(dispatcher, domain, text="a haircut", requested="booking_service",
                            candidates={"booking_service": "a haircut"})
    assert events == [SlotSet("booking_service", None),
                      SlotSet("requested_slot", "booking_service")]
    assert responses(dispatcher) == ["utter_service_unknown"]


@pytest.mark.asyncio
async def test_asking_to_book_again_while_asked_which_service_is_asked_again_without_an_apology(
        clinic, dispatcher, domain):
    events = await validate(dispatcher, domain, intent="book_appointment", text="I'd like to book an appointment",
                            requested="booking_service",
                            candidates={"booking_service": "I'd like to book an appointment"})
    assert events == [SlotSet("booking_service", None), SlotSet("requested_slot", "booking_service")]
    assert responses(dispatcher) == []  # the form's own question follows: "What would you like to book?"


@pytest.mark.asyncio
@pytest.mark.parametrize("text, intent, expected", [
    ("anyone is fine", "inform", "any"),
    ("no", "deny", "any"),  # "no preference"
    ("Dr Okafor please", "inform", "okafor"),
    ("lindqvst", "inform", "lindqvist"),
])
async def test_practitioner_answers(clinic, dispatcher, domain, text, intent, expected):
    events = await validate(dispatcher, domain, intent=intent, text=text,
                            slots={"booking_service": "gp_consultation"},
                            requested="booking_practitioner",
                            candidates={"booking_practitioner": text})
    assert SlotSet("booking_practitioner", expected) in events
    assert dispatcher.messages == []


@pytest.mark.asyncio
async def test_an_unknown_practitioner_gets_a_kind_reply_and_the_question_again(
        clinic, dispatcher, domain):
    events = await validate(dispatcher, domain, text="dr zebedee",
                            slots={"booking_service": "gp_consultation"},
                            requested="booking_practitioner",
                            candidates={"booking_practitioner": "dr zebedee"})
    assert events == [SlotSet("booking_practitioner", None),
                      SlotSet("requested_slot", "booking_practitioner")]
    assert responses(dispatcher) == ["utter_practitioner_unknown"]


@pytest.mark.asyncio
async def test_a_practitioner_who_does_not_do_the_service_is_named_kindly(
        clinic, dispatcher, domain):
    events = await validate(dispatcher, domain, text="nurse moreau",
                            slots={"booking_service": "gp_consultation"},
                            requested="booking_practitioner",
                            candidates={"booking_practitioner": "nurse moreau"})
    assert SlotSet("booking_practitioner", None) in events
    assert dispatcher.messages[0]["response"] == "utter_practitioner_not_for_service"
    assert dispatcher.messages[0]["practitioner"] == "Nurse Camille Moreau"


@pytest.mark.asyncio
async def test_a_usable_preference_is_kept_with_its_window(clinic, dispatcher, domain):
    text = "next Tuesday morning"
    events = await validate(dispatcher, domain, text=text,
                            slots={"booking_service": "gp_consultation",
                                   "booking_practitioner": "any"},
                            requested="booking_preference",
                            candidates={"booking_preference": text})
    assert events[:4] == [SlotSet("booking_preference", text),
                          SlotSet("booking_window", window(text)),
                          SlotSet("booking_slot", None), SlotSet("booking_offers", None)]
    assert events[-1] == SlotSet("requested_slot", "booking_slot")


@pytest.mark.asyncio
@pytest.mark.parametrize("text, response, variables", [
    ("yesterday", "utter_preference_in_past", {"day": "Tuesday 9 June"}),
    ("31 February", "utter_preference_impossible_date", {}),
    ("sunday", "utter_preference_closed_day",
     {"day": "Sunday 14 June", "opening_hours": "Mon–Fri 08:00–18:00, Sat 09:00–12:00"}),
    ("saturday afternoon", "utter_preference_closed_hours",
     {"day": "Saturday 13 June", "hours": "09:00–12:00"}),
    ("purple", "utter_preference_unclear", {}),
])
async def test_unusable_preferences_get_a_kind_reply_and_change_nothing(
        clinic, dispatcher, domain, text, response, variables):
    events = await validate(dispatcher, domain, text=text,
                            slots={"booking_service": "gp_consultation",
                                   "booking_practitioner": "any"},
                            requested="booking_preference",
                            candidates={"booking_preference": text})
    assert events == [SlotSet("booking_preference", None), SlotSet("booking_window", None),
                      SlotSet("requested_slot", "booking_preference")]
    [message] = dispatcher.messages
    assert message["response"] == response
    assert {k: message[k] for k in variables} == variables


# --- offering times ---------------------------------------------------------------------


@pytest.mark.asyncio
async def test_the_soonest_matching_free_times_are_offered_as_a_list(clinic, dispatcher, domain):
    slots = {"booking_service": "gp_consultation", "booking_practitioner": "any",
             "booking_window": window("next Tuesday morning")}
    events = await ActionAskBookingSlot().run(dispatcher, tracker(slots=slots), domain)
    [message] = dispatcher.messages
    assert message["response"] == "utter_ask_booking_slot"
    buttons = message["buttons"]
    assert len(buttons) == 10
    expected = search(clinic, "gp_consultation", "next Tuesday morning")[:10]
    assert [b["payload"] for b in buttons] == [
        f'/inform{{"slot_id": "{s.id}"}}' for s in expected]
    # Tuesday 16 June, mornings, with the practitioner's name (anyone may see the patient).
    assert buttons[0]["title"] == "Tue 16 Jun 08:00 Okafor"
    assert all(len(b["title"]) <= 24 and b["title"].startswith("Tue 16 Jun") for b in buttons)
    [offers_event] = events
    assert offers_event["name"] == "booking_offers"
    assert [o["id"] for o in offers_event["value"]] == [s.id for s in expected]


@pytest.mark.asyncio
async def test_no_free_time_offers_another_time_anyone_or_reception(clinic, dispatcher, domain):
    # Dr Okafor doesn't work on Saturdays.
    slots = {"booking_service": "gp_consultation", "booking_practitioner": "okafor",
             "booking_window": window("saturday")}
    events = await ActionAskBookingSlot().run(dispatcher, tracker(slots=slots), domain)
    assert events == [SlotSet("booking_offers", [])]
    [message] = dispatcher.messages
    assert message["response"] == "utter_no_slots"
    assert [(b["title"], b["payload"]) for b in message["buttons"]] == [
        ("Another day or time", '/inform{"change": "time"}'),
        ("Anyone available", '/inform{"practitioner": "any"}'),
        ("Talk to reception", '/request_human{"team": "reception"}'),
    ]


async def offers_for(clinic, dispatcher, domain, text="next Tuesday morning",
                     practitioner="any", service="gp_consultation"):
    slots = {"booking_service": service, "booking_practitioner": practitioner,
             "booking_preference": text, "booking_window": window(text)}
    events = await ActionAskBookingSlot().run(dispatcher, tracker(slots=slots), domain)
    dispatcher.messages.clear()
    return {**slots, "booking_offers": events[0]["value"]}


@pytest.mark.asyncio
async def test_picking_an_offered_time_shows_it_for_confirmation(clinic, dispatcher, domain):
    slots = await offers_for(clinic, dispatcher, domain)
    first = slots["booking_offers"][0]
    events = await validate(dispatcher, domain, text=f'/inform{{"slot_id": "{first["id"]}"}}',
                            entities=entity("slot_id", first["id"]), slots=slots,
                            requested="booking_slot", candidates={"booking_slot": first["id"]})
    assert events[:5] == [
        SlotSet("booking_slot", first["id"]),
        SlotSet("appointment_when", "Tuesday 16 June 2026 at 08:00"),
        SlotSet("appointment_practitioner", "Dr Amara Okafor"),
        SlotSet("appointment_location", "Riverside Family Clinic (main site)"),
        SlotSet("appointment_address", "12 Riverside Avenue, Rivertown"),
    ]
    assert events[-1] == SlotSet("requested_slot", "booking_confirmed")
    assert dispatcher.messages == []


@pytest.mark.asyncio
async def test_typed_choices_by_number(clinic, dispatcher, domain):
    slots = await offers_for(clinic, dispatcher, domain)
    second = slots["booking_offers"][1]
    for text in ("the second one", "2"):
        events = await validate(dispatcher, domain, text=text, slots=slots,
                                requested="booking_slot", candidates={"booking_slot": text})
        assert events[0] == SlotSet("booking_slot", second["id"])
        assert events[-1] == SlotSet("requested_slot", "booking_confirmed")


@pytest.mark.asyncio
async def test_a_time_taken_while_choosing_is_refused_and_the_list_comes_again(
        clinic, dispatcher, domain):
    slots = await offers_for(clinic, dispatcher, domain)
    first = slots["booking_offers"][0]
    book_for(clinic, OTHER_SENDER, first["id"])  # someone else is faster
    events = await validate(dispatcher, domain, text="1", slots=slots, requested="booking_slot",
                            candidates={"booking_slot": "1"})
    assert events == [SlotSet("booking_slot", None), SlotSet("booking_offers", None),
                      SlotSet("requested_slot", "booking_slot")]
    assert responses(dispatcher) == ["utter_slot_just_taken"]


@pytest.mark.asyncio
@pytest.mark.parametrize("text, intent, cleared, response, next_slot", [
    ("actually another day", "inform", ["booking_preference", "booking_window"],
     ["utter_ask_other_time"], "booking_preference"),
    ("none of those", "deny", ["booking_preference", "booking_window"],
     ["utter_ask_other_time"], "booking_preference"),
    ("can I see a different doctor", "inform", ["booking_practitioner"], [],
     "booking_practitioner"),
    ("I'd like something else", "inform", ["booking_service", "booking_practitioner"], [],
     "booking_service"),
])
async def test_changes_of_mind_while_choosing_a_time(clinic, dispatcher, domain, text, intent,
                                                     cleared, response, next_slot):
    slots = await offers_for(clinic, dispatcher, domain, practitioner="okafor")
    events = await validate(dispatcher, domain, intent=intent, text=text, slots=slots,
                            requested="booking_slot", candidates={"booking_slot": text})
    set_to_none = {e["name"] for e in events if e["value"] is None}
    assert set(cleared) <= set_to_none
    assert responses(dispatcher) == response
    assert events[-1] == SlotSet("requested_slot", next_slot)


@pytest.mark.asyncio
async def test_a_new_day_typed_instead_of_a_choice_searches_again(clinic, dispatcher, domain):
    slots = await offers_for(clinic, dispatcher, domain)
    events = await validate(dispatcher, domain, text="friday afternoon", slots=slots,
                            requested="booking_slot",
                            candidates={"booking_slot": "friday afternoon"})
    assert events[:4] == [SlotSet("booking_slot", None), SlotSet("booking_offers", None),
                          SlotSet("booking_preference", "friday afternoon"),
                          SlotSet("booking_window", window("friday afternoon"))]
    assert events[-1] == SlotSet("requested_slot", "booking_slot")


@pytest.mark.asyncio
async def test_no_at_the_confirmation_offers_other_times(clinic, dispatcher, domain):
    slots = await offers_for(clinic, dispatcher, domain)
    slots["booking_slot"] = slots["booking_offers"][0]["id"]
    events = await validate(dispatcher, domain, intent="deny", text="no", slots=slots,
                            requested="booking_confirmed", candidates={"booking_confirmed": "no"})
    assert events == [SlotSet("booking_confirmed", None), SlotSet("booking_slot", None),
                      SlotSet("booking_offers", None), SlotSet("requested_slot", "booking_slot")]
    assert responses(dispatcher) == ["utter_booking_not_confirmed"]


@pytest.mark.asyncio
async def test_first_time_patients_are_asked_name_and_date_of_birth(clinic, dispatcher, domain):
    slots = await offers_for(clinic, dispatcher, domain)
    slots["booking_slot"] = slots["booking_offers"][0]["id"]
    events = await validate(dispatcher, domain, intent="affirm", text="yes", slots=slots,
                            requested="booking_confirmed",
                            candidates={"booking_confirmed": "yes"})
    assert events == [SlotSet("booking_confirmed", "yes"),
                      SlotSet("requested_slot", "patient_name")]
    # A patient we know is not asked again.
    clinic.scheduling.register_patient(key_of(), "Known Patient", dt.date(1970, 5, 5), SENDER,
                                       "rest")
    events = await validate(dispatcher, domain, intent="affirm", text="yes", slots=slots,
                            requested="booking_confirmed",
                            candidates={"booking_confirmed": "yes"})
    assert events == [SlotSet("booking_confirmed", "yes"), SlotSet("requested_slot", None)]


@pytest.mark.asyncio
@pytest.mark.parametrize("slot, text, stored, response", [
    ("patient_name", "my name is Maria Jensen", "Maria Jensen", None),
    ("patient_name", "DE89370400440532013000", None, "utter_patient_name_invalid"),
    ("patient_birth_date", "14/03/1985", "1985-03-14", None),
    ("patient_birth_date", "31/02/1985", None, "utter_patient_birth_date_invalid"),
    ("patient_birth_date", "14/03/2030", None, "utter_patient_birth_date_invalid"),
])
async def test_name_and_date_of_birth(clinic, dispatcher, domain, slot, text, stored, response):
    events = await validate(dispatcher, domain, text=text, requested=slot,
                            slots={"booking_service": "gp_consultation"},
                            candidates={slot: text})
    assert events[0] == SlotSet(slot, stored)
    assert responses(dispatcher) == ([response] if response else [])


# --- booking ----------------------------------------------------------------------------


def booked_slots(slots):
    return {**slots, "booking_slot": slots["booking_offers"][0]["id"],
            "booking_confirmed": "yes"}


@pytest.mark.asyncio
async def test_booking_registers_a_first_time_patient_and_confirms(clinic, dispatcher, domain):
    slots = booked_slots(await offers_for(clinic, dispatcher, domain, service="blood_test"))
    slots.update(patient_name="Maria Jensen", patient_birth_date="1985-03-14")

    events = await ActionBookAppointment().run(dispatcher, tracker(slots=slots), domain)

    [appointment] = clinic.scheduling.upcoming(key_of(), NOW)
    assert events == [SlotSet(name, None) for name in BOOKING_SLOTS] + [
        SlotSet("appointment_id", appointment.id),
        SlotSet("appointment_when", "Tuesday 16 June 2026 at 08:00"),
        SlotSet("appointment_service", "Blood test"),
        SlotSet("appointment_practitioner", "Nurse Camille Moreau"),
        SlotSet("appointment_location", "Riverside Family Clinic (main site)"),
        SlotSet("appointment_address", "12 Riverside Avenue, Rivertown"),
        SlotSet("appointment_preparation", appointment.service.preparation),
        SlotSet("booking_result", "booked"),
    ]
    assert dispatcher.messages == []  # the rule sends utter_booking_confirmed
    patient = clinic.scheduling.find_patient(key_of())
    assert (patient.name, patient.birth_date) == ("Maria Jensen", dt.date(1985, 3, 14))
    assert SENDER not in patient.contact_key
    assert appointment.slot_id == slots["booking_slot"]
    assert appointment.status == AppointmentStatus.BOOKED


@pytest.mark.asyncio
async def test_race_lost_at_booking_books_nothing_and_offers_again(clinic, dispatcher, domain):
    slots = booked_slots(await offers_for(clinic, dispatcher, domain))
    clinic.scheduling.register_patient(key_of(), "Known Patient", dt.date(1970, 5, 5), SENDER,
                                       "rest")
    book_for(clinic, OTHER_SENDER, slots["booking_slot"])

    events = await ActionBookAppointment().run(dispatcher, tracker(slots=slots), domain)

    assert events == [SlotSet("patient_name", None), SlotSet("patient_birth_date", None),
                      SlotSet("booking_slot", None), SlotSet("booking_confirmed", None),
                      SlotSet("booking_offers", None), SlotSet("booking_result", "slot_taken")]
    assert clinic.scheduling.upcoming(key_of(), NOW) == []


@pytest.mark.asyncio
async def test_booking_without_name_for_a_new_patient_fails_safely(clinic, dispatcher, domain):
    slots = booked_slots(await offers_for(clinic, dispatcher, domain))
    events = await ActionBookAppointment().run(dispatcher, tracker(slots=slots), domain)
    assert events[-1] == SlotSet("booking_result", "failed")
    assert clinic.scheduling.find_patient(key_of()) is None


# --- listing, rescheduling, cancelling --------------------------------------------------


def two_appointments(clinic):
    gp = search(clinic, "gp_consultation", "next Tuesday morning")
    blood = search(clinic, "blood_test", "next Thursday afternoon")
    return (book_for(clinic, SENDER, gp[0].id, name="Maria Jensen"),
            book_for(clinic, SENDER, blood[0].id, "blood_test", name="Maria Jensen"))


@pytest.mark.asyncio
async def test_list_shows_each_upcoming_appointment_with_change_buttons(clinic, dispatcher, domain):
    first, second = two_appointments(clinic)
    events = await ActionListAppointments().run(dispatcher, tracker("list_appointments"), domain)
    assert events == [SlotSet("appointment_lookup", "found")]
    assert [m["response"] for m in dispatcher.messages] == ["utter_appointment_item"] * 2
    message = dispatcher.messages[0]
    assert (message["appointment_when"], message["appointment_practitioner"],
            message["appointment_address"]) == (
        "Tuesday 16 June 2026 at 08:00", "Dr Amara Okafor", "12 Riverside Avenue, Rivertown")
    assert [(b["title"], b["payload"]) for b in message["buttons"]] == [
        ("Reschedule", f'/reschedule_appointment{{"appointment_id": "{first.id}"}}'),
        ("Cancel", f'/cancel_appointment{{"appointment_id": "{first.id}"}}'),
    ]
    assert dispatcher.messages[1]["appointment_service"] == "Blood test"


@pytest.mark.asyncio
async def test_list_with_nothing_booked(clinic, dispatcher, domain):
    events = await ActionListAppointments().run(dispatcher, tracker("list_appointments"), domain)
    assert events == [SlotSet("appointment_lookup", "none")]
    assert dispatcher.messages == []


def find_events(events):
    return {e["name"]: e["value"] for e in events if e["name"] in (
        "appointment_id", "appointment_lookup")}


@pytest.mark.asyncio
async def test_find_from_a_button_for_the_patients_own_appointment(clinic, dispatcher, domain):
    first, _ = two_appointments(clinic)
    events = await ActionFindAppointment().run(dispatcher, tracker(
        "cancel_appointment", entities=entity("appointment_id", first.id)), domain)
    assert find_events(events) == {"appointment_id": first.id, "appointment_lookup": "found"}


@pytest.mark.asyncio
async def test_find_without_an_id(clinic, dispatcher, domain):
    events = await ActionFindAppointment().run(dispatcher, tracker("cancel_appointment"), domain)
    assert find_events(events) == {"appointment_id": None, "appointment_lookup": "none"}
    first, _ = two_appointments(clinic)
    events = await ActionFindAppointment().run(dispatcher, tracker("cancel_appointment"), domain)
    assert find_events(events) == {"appointment_id": None, "appointment_lookup": "found"}
    clinic.scheduling.cancel(_.id, key_of(), now=NOW)
    events = await ActionFindAppointment().run(dispatcher, tracker("cancel_appointment"), domain)
    assert find_events(events) == {"appointment_id": first.id, "appointment_lookup": "found"}


@pytest.mark.asyncio
@pytest.mark.parametrize("case", ["someone_elses", "unknown", "cancelled", "fulfilled"])
async def test_bad_taps_change_nothing(clinic, dispatcher, domain, case):
    mine, _ = two_appointments(clinic)
    theirs = book_for(clinic, OTHER_SENDER, search(clinic, "gp_consultation", "friday")[0].id)
    target, expected = {
        "someone_elses": (theirs.id, "unknown"),
        "unknown": ("apt_0000000000", "unknown"),
        "cancelled": (mine.id, "inactive"),
        "fulfilled": (mine.id, "inactive"),
    }[case]
    if case == "cancelled":
        clinic.scheduling.cancel(mine.id, key_of(), now=NOW)
    if case == "fulfilled":
        clinic.scheduling.set_status(mine.id, AppointmentStatus.FULFILLED, "staff:test", now=NOW)
    before = [clinic.scheduling.appointment(a.id) for a in (mine, theirs)]

    for intent in ("cancel_appointment", "reschedule_appointment"):
        events = await ActionFindAppointment().run(dispatcher, tracker(
            intent, entities=entity("appointment_id", target)), domain)
        assert find_events(events) == {"appointment_id": None, "appointment_lookup": expected}
    # Even straight to the cancel action (e.g. a stale slot value), nothing changes.
    events = await ActionCancelAppointment().run(dispatcher, tracker(
        slots={"appointment_id": target, "cancel_confirmed": "yes"}), domain)
    assert events[-1] == SlotSet("cancel_result", expected)
    assert [clinic.scheduling.appointment(a.id) for a in (mine, theirs)] == before
    assert dispatcher.messages == []


@pytest.mark.asyncio
async def test_choosing_which_appointment(clinic, dispatcher, domain):
    first, second = two_appointments(clinic)
    await ActionAskAppointmentId().run(dispatcher, tracker(), domain)
    [message] = dispatcher.messages
    assert message["response"] == "utter_ask_appointment_id"
    assert [b["payload"] for b in message["buttons"]] == [
        f'/inform{{"appointment_id": "{first.id}"}}', f'/inform{{"appointment_id": "{second.id}"}}']
    assert message["buttons"][0]["title"] == "Tue 16 Jun 08:00 Okafor"
    dispatcher.messages.clear()

    validator = ValidateRescheduleForm()
    events = await validate(dispatcher, domain, validator, text="the second one",
                            requested="appointment_id",
                            candidates={"appointment_id": "the second one"})
    values = {e["name"]: e["value"] for e in events}
    assert values["appointment_id"] == second.id
    assert (values["booking_service"], values["booking_practitioner"]) == (
        "blood_test", second.practitioner.id)
    assert values["requested_slot"] == "booking_preference"

    events = await validate(dispatcher, domain, ValidateCancelForm(),
                            text=f'/inform{{"appointment_id": "{first.id}"}}',
                            entities=entity("appointment_id", first.id),
                            requested="appointment_id", candidates={"appointment_id": first.id})
    values = {e["name"]: e["value"] for e in events}
    assert values["appointment_id"] == first.id
    assert values["appointment_when"] == "Tuesday 16 June 2026 at 08:00"
    assert values["requested_slot"] == "cancel_confirmed"


@pytest.mark.asyncio
async def test_choosing_someone_elses_appointment_in_the_form_is_refused(
        clinic, dispatcher, domain):
    theirs = book_for(clinic, OTHER_SENDER, search(clinic, "gp_consultation", "friday")[0].id)
    events = await validate(dispatcher, domain, ValidateCancelForm(), text="",
                            entities=entity("appointment_id", theirs.id),
                            requested="appointment_id", candidates={"appointment_id": theirs.id})
    assert events == [SlotSet("appointment_id", None), SlotSet("requested_slot", "appointment_id")]
    assert responses(dispatcher) == ["utter_appointment_not_found"]


@pytest.mark.asyncio
async def test_cancel_frees_the_slot_at_once(clinic, dispatcher, domain):
    first, second = two_appointments(clinic)
    assert first.slot_id not in {s.id for s in search(clinic, "gp_consultation",
                                                          "next Tuesday morning")}
    events = await ActionCancelAppointment().run(dispatcher, tracker(
        slots={"appointment_id": first.id, "cancel_confirmed": "yes"}), domain)
    assert events[0] == SlotSet("cancel_confirmed", None)
    assert events[1] == SlotSet("appointment_id", first.id)
    assert events[-1] == SlotSet("cancel_result", "cancelled")
    assert clinic.scheduling.appointment(first.id).status == AppointmentStatus.CANCELLED
    assert first.slot_id in {s.id for s in search(clinic, "gp_consultation",
                                                      "next Tuesday morning")}
    assert [a.id for a in clinic.scheduling.upcoming(key_of(), NOW)] == [second.id]


@pytest.mark.asyncio
async def test_no_keeps_the_appointment(clinic, dispatcher, domain):
    first, _ = two_appointments(clinic)
    events = await ActionCancelAppointment().run(dispatcher, tracker(
        slots={"appointment_id": first.id, "cancel_confirmed": "no"}), domain)
    assert events == [SlotSet("cancel_confirmed", None), SlotSet("cancel_result", "kept")]
    assert clinic.scheduling.appointment(first.id).status == AppointmentStatus.BOOKED


@pytest.mark.asyncio
async def test_cancel_confirmation_needs_yes_or_no(clinic, dispatcher, domain):
    first, _ = two_appointments(clinic)
    events = await validate(dispatcher, domain, ValidateCancelForm(), text="hmm maybe",
                            slots={"appointment_id": first.id}, requested="cancel_confirmed",
                            candidates={"cancel_confirmed": "hmm maybe"})
    assert events == [SlotSet("cancel_confirmed", None),
                      SlotSet("requested_slot", "cancel_confirmed")]
    assert responses(dispatcher) == ["utter_please_answer_yes_no"]


@pytest.mark.asyncio
async def test_a_button_of_another_message_at_the_confirmation_is_not_a_wrong_answer(
        clinic, dispatcher, domain):
    first, _ = two_appointments(clinic)
    payload = '/inform{"appointment_id": "apt_0000000000"}'
    events = await validate(dispatcher, domain, ValidateCancelForm(), text=payload,
                            entities=entity("appointment_id", "apt_0000000000"),
                            slots={"appointment_id": first.id}, requested="cancel_confirmed",
                            candidates={"appointment_id": "apt_0000000000",
                                        "cancel_confirmed": payload})
    assert events == [SlotSet("appointment_id", None), SlotSet("cancel_confirmed", None),
                      SlotSet("requested_slot", "appointment_id")]
    assert responses(dispatcher) == ["utter_appointment_not_found"]  # and no "yes or no?"


@pytest.mark.asyncio
async def test_reschedule_moves_the_appointment(clinic, dispatcher, domain):
    first, _ = two_appointments(clinic)
    new_slot = search(clinic, "gp_consultation", "friday afternoon", "okafor")[0]
    slots = {"appointment_id": first.id, "booking_slot": new_slot.id,
             "booking_service": "gp_consultation", "booking_practitioner": "okafor"}
    events = await ActionRescheduleAppointment().run(dispatcher, tracker(slots=slots), domain)
    assert events[-1] == SlotSet("reschedule_result", "rescheduled")
    assert SlotSet("appointment_when", "Friday 12 June 2026 at 13:00") in events
    moved = clinic.scheduling.appointment(first.id)
    assert (moved.id, moved.slot_id, moved.status) == (first.id, new_slot.id,
                                                       AppointmentStatus.BOOKED)
    assert first.slot_id in {s.id for s in search(clinic, "gp_consultation",
                                                      "next Tuesday morning")}


@pytest.mark.asyncio
async def test_reschedule_race_lost_leaves_the_appointment_alone(clinic, dispatcher, domain):
    first, _ = two_appointments(clinic)
    new_slot = search(clinic, "gp_consultation", "friday afternoon", "okafor")[0]
    book_for(clinic, OTHER_SENDER, new_slot.id)
    slots = {"appointment_id": first.id, "booking_slot": new_slot.id,
             "booking_service": "gp_consultation"}
    events = await ActionRescheduleAppointment().run(dispatcher, tracker(slots=slots), domain)
    assert events == [SlotSet("booking_slot", None), SlotSet("booking_confirmed", None),
                      SlotSet("booking_offers", None), SlotSet("reschedule_result", "slot_taken")]
    assert clinic.scheduling.appointment(first.id).slot_id == first.slot_id


@pytest.mark.asyncio
async def test_reschedule_widens_to_anyone_from_the_no_slots_button(clinic, dispatcher, domain):
    first, _ = two_appointments(clinic)
    events = await validate(dispatcher, domain, ValidateRescheduleForm(),
                            text='/inform{"practitioner": "any"}',
                            entities=entity("practitioner", "any"),
                            slots={"appointment_id": first.id, "booking_service": "gp_consultation",
                                   "booking_preference": "saturday",
                                   "booking_window": window("saturday")},
                            requested="booking_slot", candidates={"booking_practitioner": "any"})
    assert events[0] == SlotSet("booking_practitioner", "any")
    assert events[-1] == SlotSet("requested_slot", "booking_slot")



def lindqvist_at_northgate(clinic):
    """Dr Lindqvist sees patients at Northgate on Thursdays and at Riverside on Mondays."""
    slot = search(clinic, "gp_consultation", "thursday 18 june at 13:00", "lindqvist")[0]
    assert (slot.location.id, slot.start) == ("northgate", dt.datetime(2026, 6, 18, 13, tzinfo=TZ))
    return book_for(clinic, SENDER, slot.id, name="Maria Jensen")


@pytest.mark.asyncio
@pytest.mark.parametrize("language, text", [
    ("en", "the Monday after"), ("ru", "в понедельник после этого"), ("zh", "之后的周一"),
])
async def test_reschedule_reads_relative_days_from_the_appointment_being_moved(
        clinic, dispatcher, domain, language, text):
    # Thursday 18 June; today is Wednesday 10 June, whose "Monday" would be 15 June.
    appointment = lindqvist_at_northgate(clinic)
    events = await validate(dispatcher, domain, ValidateRescheduleForm(), text=text,
                            slots={"appointment_id": appointment.id, "language": language,
                                   "booking_service": "gp_consultation",
                                   "booking_practitioner": "lindqvist"},
                            requested="booking_preference",
                            candidates={"booking_preference": text})
    assert events == [
        SlotSet("booking_preference", text),
        SlotSet("booking_window", {"earliest": "2026-06-22T00:00:00+02:00",
                                   "latest": "2026-06-23T00:00:00+02:00", "day_start": None,
                                   "day_end": None, "single_day": True}),
        SlotSet("booking_slot", None),
        SlotSet("booking_offers", None),
        SlotSet("requested_slot", "booking_slot"),
    ]
    assert dispatcher.messages == []


@pytest.mark.asyncio
async def test_reschedule_same_time_next_week_keeps_the_time_of_day(clinic, dispatcher, domain):
    appointment = lindqvist_at_northgate(clinic)
    events = await validate(dispatcher, domain, ValidateRescheduleForm(),
                            text="same time next week",
                            slots={"appointment_id": appointment.id,
                                   "booking_service": "gp_consultation",
                                   "booking_practitioner": "lindqvist"},
                            requested="booking_preference",
                            candidates={"booking_preference": "same time next week"})
    assert events[1] == SlotSet("booking_window", {
        "earliest": "2026-06-25T13:00:00+02:00", "latest": "2026-06-25T14:00:00+02:00",
        "day_start": "13:00", "day_end": "14:00", "single_day": True})


@pytest.mark.asyncio
async def test_a_new_booking_reads_relative_days_from_today(clinic, dispatcher, domain):
    events = await validate(dispatcher, domain, text="the Monday after",
                            slots={"booking_service": "gp_consultation",
                                   "booking_practitioner": "any"},
                            requested="booking_preference",
                            candidates={"booking_preference": "the Monday after"})
    assert events[1]["value"]["earliest"] == "2026-06-15T00:00:00+02:00"


@pytest.mark.asyncio
@pytest.mark.parametrize("language, new_location, old_location", [
    ("en", "Riverside Family Clinic (main site)", "Northgate branch"),
    ("ru", "Riverside Family Clinic (основное отделение)", "Филиал Northgate"),
    ("zh", "Riverside Family Clinic（总院）", "Northgate分院"),
])
async def test_moving_to_another_site_is_said_when_offered_and_when_booked(
        clinic, dispatcher, domain, language, new_location, old_location):
    appointment = lindqvist_at_northgate(clinic)
    text = "monday 22 june"  # "the Monday after": Dr Lindqvist is at Riverside on Mondays
    slots = {"appointment_id": appointment.id, "language": language,
             "booking_service": "gp_consultation", "booking_practitioner": "lindqvist",
             "booking_preference": text, "booking_window": window(text)}
    events = await ActionAskBookingSlot().run(dispatcher, tracker(slots=slots), domain)
    slots["booking_offers"] = offers = events[0]["value"]
    assert offers[0]["start"] == "2026-06-22T06:00:00+00:00"  # Monday 08:00, at Riverside
    dispatcher.messages.clear()

    notice = {"response": "utter_reschedule_other_site", "new_location": new_location,
              "new_address": "12 Riverside Avenue, Rivertown", "old_location": old_location}
    events = await validate(dispatcher, domain, ValidateRescheduleForm(),
                            text=f'/inform{{"slot_id": "{offers[0]["id"]}"}}',
                            entities=entity("slot_id", offers[0]["id"]), slots=slots,
                            requested="booking_slot", candidates={"booking_slot": offers[0]["id"]})
    assert events[0] == SlotSet("booking_slot", offers[0]["id"])
    assert SlotSet("appointment_location", new_location) in events
    assert events[-1] == SlotSet("requested_slot", "booking_confirmed")
    assert [{k: m[k] for k in notice} for m in dispatcher.messages] == [notice]
    dispatcher.messages.clear()

    slots["booking_slot"] = offers[0]["id"]
    events = await ActionRescheduleAppointment().run(dispatcher, tracker(slots=slots), domain)
    assert events[-1] == SlotSet("reschedule_result", "rescheduled")
    assert SlotSet("appointment_location", new_location) in events
    assert [{k: m[k] for k in notice} for m in dispatcher.messages] == [notice]
    assert clinic.scheduling.appointment(appointment.id).location.id == "riverside"


@pytest.mark.asyncio
async def test_moving_within_the_same_site_says_nothing_about_the_place(
        clinic, dispatcher, domain):
    appointment = lindqvist_at_northgate(clinic)
    text = "thursday 25 june"  # "a week later": Northgate again
    slots = {"appointment_id": appointment.id, "booking_service": "gp_consultation",
             "booking_practitioner": "lindqvist", "booking_preference": text,
             "booking_window": window(text)}
    events = await ActionAskBookingSlot().run(dispatcher, tracker(slots=slots), domain)
    slots["booking_offers"] = offers = events[0]["value"]
    assert offers[0]["location_id"] == "northgate"
    dispatcher.messages.clear()
    await validate(dispatcher, domain, ValidateRescheduleForm(),
                   text=f'/inform{{"slot_id": "{offers[0]["id"]}"}}',
                   entities=entity("slot_id", offers[0]["id"]), slots=slots,
                   requested="booking_slot", candidates={"booking_slot": offers[0]["id"]})
    slots["booking_slot"] = offers[0]["id"]
    events = await ActionRescheduleAppointment().run(dispatcher, tracker(slots=slots), domain)
    assert events[-1] == SlotSet("reschedule_result", "rescheduled")
    assert dispatcher.messages == []


# --- in the patient's language (the `language` slot) ------------------------------------

RU = {"language": "ru"}
ZH = {"language": "zh"}


@pytest.mark.asyncio
@pytest.mark.parametrize("language, titles, anyone", [
    ("ru", ["Анализ крови", "Приём терапевта", "Физиотерапия", "Вакцинация"], "Любой специалист"),
    ("zh", ["验血", "全科门诊", "物理治疗", "疫苗接种"], "任何人"),
])
async def test_services_and_practitioners_are_offered_in_the_patients_language(
        clinic, dispatcher, domain, language, titles, anyone):
    await ActionAskBookingService().run(dispatcher, tracker(slots={"language": language}), domain)
    [message] = dispatcher.messages
    assert [b["title"] for b in message["buttons"]] == titles
    # Payloads stay ids: what the patient taps is the same in every language.
    assert [b["payload"] for b in message["buttons"]][0] == '/inform{"service": "blood_test"}'
    dispatcher.messages.clear()
    await ActionAskBookingPractitioner().run(dispatcher, tracker(
        slots={"language": language, "booking_service": "blood_test"}), domain)
    [message] = dispatcher.messages
    assert message["appointment_service"] == titles[0]
    assert [b["title"] for b in message["buttons"]] == [
        anyone, "Nurse Camille Moreau", "Nurse Kenji Tanaka"]
    assert message["buttons"][0]["payload"] == '/inform{"practitioner": "any"}'


@pytest.mark.asyncio
@pytest.mark.parametrize("language, text, service_id, name", [
    ("ru", "анализ крови", "blood_test", "Анализ крови"),
    ("ru", "мне нужна прививка", "vaccination", "Вакцинация"),
    ("zh", "验血", "blood_test", "验血"),
    ("zh", "理疗", "physiotherapy", "物理治疗"),
])
async def test_a_service_typed_in_russian_or_chinese_is_matched(clinic, dispatcher, domain,
                                                                language, text, service_id, name):
    events = await validate(dispatcher, domain, text=text, requested="booking_service",
                            slots={"language": language}, candidates={"booking_service": text})
    assert SlotSet("booking_service", service_id) in events
    assert SlotSet("appointment_service", name) in events
    assert dispatcher.messages == []


@pytest.mark.asyncio
async def test_a_russian_first_message_prefills_service_and_time(clinic, dispatcher, domain):
    text = "хочу записаться на прививку в пятницу утром"
    events = await ActionStartBooking().run(
        dispatcher, tracker("book_appointment", text, slots=RU), domain)
    assert events[-3:] == [SlotSet("booking_service", "vaccination"),
                           SlotSet("booking_preference", text),
                           SlotSet("booking_window", window("friday morning"))]


@pytest.mark.asyncio
@pytest.mark.parametrize("language, text, same_as", [
    ("ru", "в следующий вторник утром", "next Tuesday morning"),
    ("ru", "завтра после 15", "tomorrow after 3pm"),
    ("zh", "下周二上午", "next Tuesday morning"),
    ("zh", "明天3点以后", "tomorrow after 3pm"),
])
async def test_a_preference_in_russian_or_chinese_is_kept_with_its_window(
        clinic, dispatcher, domain, language, text, same_as):
    events = await validate(dispatcher, domain, text=text,
                            slots={"language": language, "booking_service": "gp_consultation",
                                   "booking_practitioner": "any"},
                            requested="booking_preference",
                            candidates={"booking_preference": text})
    assert events[:2] == [SlotSet("booking_preference", text),
                          SlotSet("booking_window", window(same_as))]
    assert dispatcher.messages == []


@pytest.mark.asyncio
@pytest.mark.parametrize("language, text, response, variables", [
    ("ru", "вчера", "utter_preference_in_past", {"day": "вторник, 9 июня"}),
    ("ru", "31 февраля", "utter_preference_impossible_date", {}),
    ("ru", "в воскресенье", "utter_preference_closed_day",
     {"day": "в воскресенье, 14 июня", "opening_hours": "пн–пт 08:00–18:00, сб 09:00–12:00"}),
    ("ru", "в субботу после обеда", "utter_preference_closed_hours",
     {"day": "суббота, 13 июня", "hours": "09:00–12:00"}),
    ("ru", "не знаю", "utter_preference_unclear", {}),
    ("zh", "昨天", "utter_preference_in_past", {"day": "6月9日星期二"}),
    ("zh", "2月31日", "utter_preference_impossible_date", {}),
    ("zh", "周日", "utter_preference_closed_day",
     {"day": "6月14日星期日", "opening_hours": "周一至周五 08:00–18:00，周六 09:00–12:00"}),
    ("zh", "周六下午", "utter_preference_closed_hours",
     {"day": "6月13日星期六", "hours": "09:00–12:00"}),
    ("zh", "不知道", "utter_preference_unclear", {}),
])
async def test_unusable_preferences_are_explained_in_the_patients_language(
        clinic, dispatcher, domain, language, text, response, variables):
    events = await validate(dispatcher, domain, text=text,
                            slots={"language": language, "booking_service": "gp_consultation",
                                   "booking_practitioner": "any"},
                            requested="booking_preference",
                            candidates={"booking_preference": text})
    assert events == [SlotSet("booking_preference", None), SlotSet("booking_window", None),
                      SlotSet("requested_slot", "booking_preference")]
    [message] = dispatcher.messages
    assert message["response"] == response
    assert {k: message[k] for k in variables} == variables


@pytest.mark.asyncio
@pytest.mark.parametrize("language, first_title, when", [
    ("ru", "вт, 16 июн. 08:00 Okafor", "вторник, 16 июня 2026 г. в 08:00"),
    ("zh", "6月16日周二 08:00 Okafor", "2026年6月16日星期二 08:00"),
])
async def test_free_times_are_listed_and_confirmed_in_the_patients_language(
        clinic, dispatcher, domain, language, first_title, when):
    slots = {"language": language, "booking_service": "gp_consultation",
             "booking_practitioner": "any", "booking_window": window("next Tuesday morning")}
    events = await ActionAskBookingSlot().run(dispatcher, tracker(slots=slots), domain)
    [message] = dispatcher.messages
    assert message["buttons"][0]["title"] == first_title
    assert all(len(b["title"]) <= 24 for b in message["buttons"])
    offers = events[0]["value"]
    dispatcher.messages.clear()
    # Typed "08:15" picks the offer at that time, as in English.
    events = await validate(dispatcher, domain, text="08:15",
                            slots={**slots, "booking_offers": offers},
                            requested="booking_slot", candidates={"booking_slot": "08:15"})
    values = {e["name"]: e["value"] for e in events}
    assert values["booking_slot"] == offers[1]["id"]
    assert values["appointment_when"] == when.replace("08:00", "08:15")


@pytest.mark.asyncio
@pytest.mark.parametrize("language, buttons", [
    ("ru", ["Другой день/время", "Любой специалист", "Помощь регистратуры"]),
    ("zh", ["换个日期或时间", "任何有空的医护人员", "联系前台"]),
])
async def test_no_free_time_buttons_in_the_patients_language(clinic, dispatcher, domain,
                                                             language, buttons):
    slots = {"language": language, "booking_service": "gp_consultation",
             "booking_practitioner": "okafor", "booking_window": window("saturday")}
    await ActionAskBookingSlot().run(dispatcher, tracker(slots=slots), domain)
    [message] = dispatcher.messages
    assert [b["title"] for b in message["buttons"]] == buttons
    assert [b["payload"] for b in message["buttons"]] == [
        '/inform{"change": "time"}', '/inform{"practitioner": "any"}',
        '/request_human{"team": "reception"}']


@pytest.mark.asyncio
async def test_booking_in_russian_quotes_the_russian_catalogue(clinic, dispatcher, domain):
    slots = booked_slots(await offers_for(clinic, dispatcher, domain, service="blood_test"))
    slots.update(patient_name="Мария Иванова", patient_birth_date="1985-03-14", **RU)
    events = await ActionBookAppointment().run(dispatcher, tracker(slots=slots), domain)
    values = {e["name"]: e["value"] for e in events}
    assert values["booking_result"] == "booked"
    assert values["appointment_when"] == "вторник, 16 июня 2026 г. в 08:00"
    assert values["appointment_service"] == "Анализ крови"
    assert values["appointment_location"] == "Riverside Family Clinic (основное отделение)"
    assert values["appointment_preparation"].startswith("Можно ли есть и пить")


@pytest.mark.asyncio
async def test_listing_choosing_and_moving_in_chinese(clinic, dispatcher, domain):
    first, second = two_appointments(clinic)
    await ActionListAppointments().run(dispatcher, tracker("list_appointments", slots=ZH), domain)
    message = dispatcher.messages[0]
    assert message["appointment_when"] == "2026年6月16日星期二 08:00"
    assert message["appointment_service"] == "全科门诊"
    assert [b["title"] for b in message["buttons"]] == ["改约", "取消预约"]
    assert dispatcher.messages[1]["appointment_service"] == "验血"
    dispatcher.messages.clear()

    await ActionAskAppointmentId().run(dispatcher, tracker(slots=RU), domain)
    assert dispatcher.messages[0]["buttons"][0]["title"] == "вт, 16 июн. 08:00 Okafor"

    new_slot = search(clinic, "gp_consultation", "friday afternoon", "okafor")[0]
    events = await ActionRescheduleAppointment().run(dispatcher, tracker(slots={
        "appointment_id": first.id, "booking_slot": new_slot.id, **ZH,
        "booking_service": "gp_consultation", "booking_practitioner": "okafor"}), domain)
    assert SlotSet("appointment_when", "2026年6月12日星期五 13:00") in events
    events = await ActionCancelAppointment().run(dispatcher, tracker(
        slots={"appointment_id": second.id, "cancel_confirmed": "yes", **RU}), domain)
    assert SlotSet("appointment_service", "Анализ крови") in events


# --- typed answers in Russian and Chinese (content/booking_answers.yml; the parser's own
# tests: tests/test_booking_answers.py) ---------------------------------------------------


@pytest.mark.asyncio
@pytest.mark.parametrize("language, text", [
    ("ru", "любой"), ("ru", "любой врач"), ("ru", "Мне всё равно"),
    ("zh", "随便"), ("zh", "都可以"),
    ("en", "любой"),  # the language slot not (yet) Russian: still understood
])
async def test_anyone_answers_which_practitioner_in_every_language(clinic, dispatcher, domain,
                                                                   language, text):
    events = await validate(dispatcher, domain, text=text,
                            slots={"language": language, "booking_service": "gp_consultation"},
                            requested="booking_practitioner",
                            candidates={"booking_practitioner": text})
    assert SlotSet("booking_practitioner", "any") in events
    assert events[-1] == SlotSet("requested_slot", "booking_preference")
    assert dispatcher.messages == []


@pytest.mark.asyncio
@pytest.mark.parametrize("language, text, cleared, response, next_slot", [
    ("ru", "другой врач", ["booking_practitioner"], [], "booking_practitioner"),
    ("zh", "换个医生", ["booking_practitioner"], [], "booking_practitioner"),
    ("ru", "другой день", ["booking_preference", "booking_window"], ["utter_ask_other_time"],
     "booking_preference"),
    ("zh", "换个时间", ["booking_preference", "booking_window"], ["utter_ask_other_time"],
     "booking_preference"),
    ("ru", "что-то другое", ["booking_service", "booking_practitioner"], [], "booking_service"),
    ("zh", "换个项目", ["booking_service", "booking_practitioner"], [], "booking_service"),
])
async def test_changes_of_mind_while_choosing_a_time_in_every_language(
        clinic, dispatcher, domain, language, text, cleared, response, next_slot):
    slots = await offers_for(clinic, dispatcher, domain, practitioner="okafor")
    events = await validate(dispatcher, domain, text=text, slots={**slots, "language": language},
                            requested="booking_slot", candidates={"booking_slot": text})
    set_to_none = {e["name"] for e in events if e["value"] is None}
    assert set(cleared) <= set_to_none
    assert responses(dispatcher) == response
    assert events[-1] == SlotSet("requested_slot", next_slot)


@pytest.mark.asyncio
@pytest.mark.parametrize("language, text", [("ru", "второй"), ("ru", "вариант 2"),
                                            ("zh", "第二个"), ("zh", "选2")])
async def test_the_second_one_in_every_language(clinic, dispatcher, domain, language, text):
    slots = await offers_for(clinic, dispatcher, domain)
    second = slots["booking_offers"][1]
    events = await validate(dispatcher, domain, text=text, slots={**slots, "language": language},
                            requested="booking_slot", candidates={"booking_slot": text})
    assert events[0] == SlotSet("booking_slot", second["id"])
    assert events[-1] == SlotSet("requested_slot", "booking_confirmed")
    assert dispatcher.messages == []


@pytest.mark.asyncio
async def test_the_afternoon_in_russian_is_a_new_search_not_the_second_time(
        clinic, dispatcher, domain):
    slots = await offers_for(clinic, dispatcher, domain)
    text = "в пятницу во второй половине дня"
    events = await validate(dispatcher, domain, text=text, slots={**slots, "language": "ru"},
                            requested="booking_slot", candidates={"booking_slot": text})
    assert events[:3] == [SlotSet("booking_slot", None), SlotSet("booking_offers", None),
                          SlotSet("booking_preference", text)]


@pytest.mark.asyncio
@pytest.mark.parametrize("language, text", [("ru", "ничего не подходит"), ("zh", "都不合适")])
async def test_not_this_time_at_the_confirmation_asks_for_another(clinic, dispatcher, domain,
                                                                  language, text):
    slots = await offers_for(clinic, dispatcher, domain)
    slots.update(booking_slot=slots["booking_offers"][0]["id"], language=language)
    events = await validate(dispatcher, domain, text=text, slots=slots,
                            requested="booking_confirmed", candidates={"booking_confirmed": text})
    assert responses(dispatcher) == ["utter_ask_other_time"]
    assert events[-1] == SlotSet("requested_slot", "booking_preference")


@pytest.mark.asyncio
@pytest.mark.parametrize("language, text", [("ru", "другой врач"), ("zh", "换个医生")])
async def test_another_practitioner_when_moving_widens_to_anyone(clinic, dispatcher, domain,
                                                                  language, text):
    first, _ = two_appointments(clinic)
    slots = await offers_for(clinic, dispatcher, domain, practitioner=first.practitioner.id)
    slots.update(appointment_id=first.id, language=language)
    events = await validate(dispatcher, domain, ValidateRescheduleForm(), text=text, slots=slots,
                            requested="booking_slot", candidates={"booking_slot": text})
    assert SlotSet("booking_practitioner", "any") in events
    assert responses(dispatcher) == ["utter_any_practitioner_now"]


@pytest.mark.asyncio
@pytest.mark.parametrize("language, text", [("ru", "вторую"), ("zh", "第二个")])
async def test_which_appointment_by_ordinal_in_every_language(clinic, dispatcher, domain,
                                                              language, text):
    _, second = two_appointments(clinic)
    events = await validate(dispatcher, domain, ValidateCancelForm(), text=text,
                            slots={"language": language}, requested="appointment_id",
                            candidates={"appointment_id": text})
    values = {e["name"]: e["value"] for e in events}
    assert values["appointment_id"] == second.id
    assert values["requested_slot"] == "cancel_confirmed"


# --- the domain has every response the actions send ----------------------------------------


def test_every_response_the_actions_send_exists(domain):
    sent = set()
    for path in (PROJECT_ROOT / "actions" / "appointments").glob("*.py"):
        sent |= set(re.findall(r'response="(utter_\w+)"', Path(path).read_text()))
    assert sent and sent <= set(domain["responses"])
