"""Base of the actions that send what the reminder scheduler pushed (a reminder, a
notification): the one place where a persisted job becomes "sent".

The scheduler pushes ``EXTERNAL_*{"reminder_job": id}``; a subclass re-checks the job and
prepares the reply (``prepare`` returns the events, or ``None`` for nothing to send); then the
job is marked sent with a conditional update and the reply goes out **only if that update
won**: however many pushes reach Rasa for one job, one message goes out
(clinic/reminders/dispatcher.py explains the whole guarantee).
"""

from __future__ import annotations

import abc
import asyncio
import logging
from typing import Any, Dict, List, Optional, Text

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType
from rasa_sdk.executor import CollectingDispatcher

from actions.services import Services, get_services

logger = logging.getLogger(__name__)

JOB_ENTITY = "reminder_job"


class ScheduledJobAction(Action, metaclass=abc.ABCMeta):
    """Abstract: the action server registers only its concrete subclasses."""

    label = "Job"  # for the logs
    nothing: List[EventType] = []  # the events that mean "nothing is sent" (rules branch on them)

    @abc.abstractmethod
    def name(self) -> Text: ...

    @abc.abstractmethod
    def prepare(self, services: Services, tracker: Tracker, job_id: str) -> Optional[List[EventType]]: ...

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: Dict[Text, Any]) -> List[EventType]:
        job_id = next(tracker.get_latest_entity_values(JOB_ENTITY), None)
        if not job_id:
            # Not from the scheduler: a patient's text classified as the external event.
            dispatcher.utter_message(response="utter_ask_rephrase")
            return self.nothing
        services = get_services()
        try:
            events = await asyncio.to_thread(self.prepare, services, tracker, str(job_id))
        except Exception:  # noqa: BLE001 - the job stays dispatching: the scheduler retries it
            logger.exception("%s %s could not be prepared", self.label, job_id)
            return self.nothing
        if events is None:
            return self.nothing
        if not await asyncio.to_thread(services.reminders.mark_sent, str(job_id), services.clock()):
            logger.info("%s %s already handled elsewhere: not sent again", self.label, job_id)
            return self.nothing
        return events
