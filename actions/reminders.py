"""Reminders pushed by the scheduler, and the patient's Confirm tap.

``action_send_reminder`` runs on the external events ``EXTERNAL_appointment_reminder``,
``EXTERNAL_visit_followup`` and ``EXTERNAL_recall_reminder`` (entity ``reminder_job``). It
re-checks the job (cancelled, moved, opted out, expired: skipped with the reason), then
marks it sent with a conditional update and lets the reply go out **only if that update
won** (``reminder_to_send``; data/rules/reminders.yml sends the template): whatever number
of pushes reach Rasa for one job, one message goes out (clinic/reminders/dispatcher.py
explains the whole guarantee).

``action_confirm_appointment``: the Confirm quick reply carries the appointment id;
``backend.confirm`` checks that the appointment is this contact's and still active. A tap
on a cancelled appointment or from another contact gets a kind answer and changes nothing.
Typed without an id ("I'll be there"), the contact's only upcoming appointment is meant.

The values the templates quote are written in the conversation's ``language`` slot (the
scheduler can set it with the push: clinic/reminders/rasa_client.py, ``language_for``).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Dict, List, Optional, Text

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions.jobs import ScheduledJobAction
from actions.labels import label
from actions.language import language_of
from actions.services import Services, get_services
from clinic.reminders import tables as t
from clinic.reminders.dispatcher import skip_reason
from clinic.reminders.store import Job
from clinic.scheduling.formatting import clock, on_day
from clinic.scheduling.model import Appointment, InvalidTransition, NotFound, NotYours
from clinic.scheduling.translations import location_name

logger = logging.getLogger(__name__)

APPOINTMENT_ENTITY = "appointment_id"
TO_SEND = {t.KIND_FOLLOWUP: "followup", t.KIND_RECALL: "recall"}  # otherwise "appointment"


def first_name(full_name: str, language: str = "en") -> str:
    """The first name to greet with; without one, "Hi there" (or its ru / zh form)."""
    parts = (full_name or "").split()
    return parts[0] if parts else label("no_first_name", language)


def visit_slots(appointment: Appointment, services: Services,
                language: str = "en") -> List[EventType]:
    """What the replies quote: when, with whom, where. Never the service (it could reveal
    a condition to anyone who sees the patient's screen, and to Meta).

    ``visit_date`` is the day the visit happens on ("Tuesday 3 March", "во вторник,
    3 марта", "3月3日星期二"): the responses put it where English says "on {visit_date}"."""
    tz = services.settings.timezone
    local = appointment.start.astimezone(tz)
    return [
        SlotSet("visit_date", on_day(local.date(), language=language)),
        SlotSet("visit_time", clock(appointment.start, tz, language=language)),
        SlotSet("visit_practitioner", appointment.practitioner.name),
        SlotSet("visit_location", location_name(appointment.location, language)),
        SlotSet("visit_appointment_id", appointment.id),
    ]


NOTHING = [SlotSet("reminder_to_send", "nothing")]


class ActionSendReminder(ScheduledJobAction):
    label = "Reminder"
    nothing = NOTHING

    def name(self) -> Text:
        return "action_send_reminder"

    def prepare(self, services: Services, tracker: Tracker, job_id: str) -> Optional[List[EventType]]:
        return self._prepare(services, tracker, job_id)

    @staticmethod
    def _prepare(services: Services, tracker: Tracker, job_id: str) -> Optional[List[EventType]]:
        store = services.reminders
        job: Optional[Job] = store.job(job_id)
        if job is None or job.status != t.DISPATCHING:
            logger.info("Reminder %s is %s: nothing to send", job_id, job.status if job else "unknown")
            return None
        if job.conversation_id != tracker.sender_id:
            # Never send one patient's reminder into another conversation.
            store.skip(job.id, "wrong_conversation", from_statuses=(t.DISPATCHING,))
            return None
        reason = skip_reason(job, services.scheduling, services.consent, services.clock(),
                             store.recall_status)
        if reason:
            store.skip(job.id, reason, from_statuses=(t.DISPATCHING,))
            logger.info("Reminder %s skipped: %s", job.id, reason)
            return None
        patient = services.scheduling.find_patient(job.contact_key)
        language = language_of(tracker)
        events: List[EventType] = [
            SlotSet("visit_first_name", first_name(patient.name if patient else "", language))]
        if job.appointment_id:
            events += visit_slots(services.scheduling.appointment(job.appointment_id), services,
                                  language)
        events.append(SlotSet("reminder_to_send", TO_SEND.get(job.kind, "appointment")))
        return events


class ActionConfirmAppointment(Action):
    def name(self) -> Text:
        return "action_confirm_appointment"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: Dict[Text, Any]) -> List[EventType]:
        services = get_services()
        contact = services.contact_key_for(tracker)
        appointment_id = next(tracker.get_latest_entity_values(APPOINTMENT_ENTITY), None)
        try:
            if not appointment_id:
                upcoming = await asyncio.to_thread(services.scheduling.upcoming, contact, services.clock())
                if len(upcoming) != 1:
                    return [SlotSet("confirm_result", "choose" if upcoming else "none_upcoming")]
                appointment_id = upcoming[0].id
            before = await asyncio.to_thread(services.scheduling.appointment, str(appointment_id), contact)
            confirmed = await asyncio.to_thread(services.scheduling.confirm, str(appointment_id), contact,
                                                services.clock())
        except (NotFound, NotYours):
            return [SlotSet("confirm_result", "not_found")]
        except InvalidTransition:
            return [SlotSet("confirm_result", "not_active")]
        except Exception:  # noqa: BLE001 - the patient always gets an answer
            logger.exception("Could not confirm an appointment")
            return [SlotSet("confirm_result", "failed")]
        result = "already_confirmed" if before.confirmed_at is not None else "confirmed"
        return visit_slots(confirmed, services, language_of(tracker)) + [
            SlotSet("confirm_result", result)]
