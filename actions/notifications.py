"""Notifications pushed by the reminder scheduler, and the clinic objects they and the
status answers (actions/status.py) share.

``action_send_notification`` runs on ``EXTERNAL_notification{"reminder_job": "rem_…"}``.
Like ``action_send_reminder`` it re-checks the job (expired, opted out, wrong conversation:
skipped with the reason), issues a fresh single-use portal link where the notice points to
a document, then marks the job sent with a conditional update and lets the template go out
**only if that update won** (``notification_to_send``; data/rules/notifications.yml sends).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from typing import List, Optional, Text

from rasa_sdk import Tracker
from rasa_sdk.events import EventType, SlotSet

from actions.jobs import ScheduledJobAction
from actions.labels import LABELS, label
from actions.language import language_of
from actions.reminders import first_name
from actions.services import Services, get_services
from clinic.db import create_schema, make_engine, make_session_factory
from clinic.notifications import model as m
from clinic.notifications.service import NotificationService
from clinic.portal.tokens import PortalTokens, load_token_key, portal_link
from clinic.records.store import RecordStore
from clinic.reminders import tables as t
from clinic.reminders.dispatcher import skip_reason
from clinic.scheduling.formatting import on_day

logger = logging.getLogger(__name__)

NOTHING = [SlotSet("notification_to_send", "nothing")]


@dataclasses.dataclass
class NotificationServices:
    notifications: NotificationService
    records: RecordStore
    portal: PortalTokens


_services: Optional[NotificationServices] = None


def build_notification_services(database_url: Optional[str] = None, settings=None) -> NotificationServices:
    engine = make_engine(database_url)
    create_schema(engine)
    sessions = make_session_factory(engine)
    settings = settings or get_services().settings
    return NotificationServices(
        notifications=NotificationService(sessions), records=RecordStore(sessions),
        portal=PortalTokens(sessions, load_token_key(), dt.timedelta(hours=settings.portal_token_hours)))


def get_notification_services() -> NotificationServices:
    global _services
    if _services is None:
        _services = build_notification_services()
    return _services


def use_notification_services(services: Optional[NotificationServices]) -> None:
    """Replace the process-wide notification services (tests) or reset them (``None``)."""
    global _services
    _services = services


class ActionSendNotification(ScheduledJobAction):
    label = "Notification job"
    nothing = NOTHING

    def name(self) -> Text:
        return "action_send_notification"

    def prepare(self, services: Services, tracker: Tracker, job_id: str) -> Optional[List[EventType]]:
        return self._prepare(services, get_notification_services(), tracker, job_id)

    @staticmethod
    def _prepare(services: Services, extra: NotificationServices, tracker: Tracker,
                 job_id: str) -> Optional[List[EventType]]:
        store = services.reminders
        job = store.job(job_id)
        if job is None or job.status != t.DISPATCHING or not m.is_notification_kind(job.kind):
            logger.info("Notification job %s is %s: nothing to send", job_id, job.status if job else "unknown")
            return None
        if job.conversation_id != tracker.sender_id:
            store.skip(job.id, "wrong_conversation", from_statuses=(t.DISPATCHING,))
            return None
        reason = skip_reason(job, services.scheduling, services.consent, services.clock(), store.recall_status)
        notification = extra.notifications.by_job(job.id)
        if notification is None:
            reason = reason or "no_notification"
        if reason:
            store.skip(job.id, reason, from_statuses=(t.DISPATCHING,))
            logger.info("Notification job %s skipped: %s", job.id, reason)
            return None
        patient = services.scheduling.find_patient(job.contact_key)
        language = language_of(tracker)
        name = first_name(patient.name if patient else "", language)
        return [SlotSet("notify_first_name", name),
                *_slots(notification, name, services, extra, language)]


def _model_label(prefix: str, code: str, english: dict, language: str) -> str:
    # The model's table says which codes exist (an unknown one is an error, as it always
    # was); actions/labels.py has their ru / zh wording.
    text = english[code]
    key = f"{prefix}.{code}"
    return label(key, language) if key in LABELS else text


def document_label(kind: str, language: str = "en") -> str:
    """``sick note`` / ``больничный лист`` / ``病假条`` for a DOCUMENT_KINDS code."""
    return _model_label("document", kind, m.DOCUMENT_KINDS, language)


def billing_item_label(item: str, language: str = "en") -> str:
    return _model_label("billing", item, m.BILLING_ITEMS, language)


def billing_status_label(status: str, language: str = "en") -> str:
    return _model_label("billing_status", status, m.BILLING_STATUSES, language)


def _slots(notification: m.Notification, name: str, services: Services,
           extra: NotificationServices, language: str = "en") -> List[EventType]:
    params = notification.params
    kind = notification.type

    def link(document_id: str, purpose: str) -> List[EventType]:
        # A fresh link per notice: the token is bound to this patient and this document.
        issued = extra.portal.issue(notification.patient_id, document_id, purpose, source=notification.event_id)
        return [SlotSet("notify_token", issued.token),
                SlotSet("notify_link", portal_link(services.settings.portal_url, issued.token))]

    if kind == m.RESULTS_READY:
        return [*link(params["document_id"], "results"), SlotSet("notification_to_send", "results_ready")]
    if kind == m.DOCUMENT_READY:
        document = document_label(params["document_kind"], language)
        if params["delivery"] == "portal":
            return [SlotSet("notify_document", document), *link(params["document_id"], "document"),
                    SlotSet("notification_to_send", "document_ready")]
        return [SlotSet("notify_document", document), SlotSet("notification_to_send", "document_collect")]
    if kind == m.BILLING_UPDATE:
        item = billing_item_label(params["item"], language)
        status = billing_status_label(params["status"], language)
        reference = params.get("reference")
        return [SlotSet("notify_billing", f"{item} {reference}" if reference else item),
                SlotSet("notify_billing_status", status),
                SlotSet("notification_to_send", "billing_update")]
    if kind == m.QUEUE_CALLED:
        return [SlotSet("notify_ticket", params["ticket"]), SlotSet("notify_room", params["room"]),
                SlotSet("notification_to_send", "queue_called")]
    if kind == m.QUEUE_POSITION:
        return [SlotSet("notify_ticket", params["ticket"]), SlotSet("notify_position", str(params["position"])),
                SlotSet("notify_minutes", str(params.get("estimated_minutes") or 0)),
                SlotSet("notification_to_send", "queue_position")]
    if kind == m.FOLLOWUP:
        return [SlotSet("visit_first_name", name),
                SlotSet("visit_date", on_day(dt.date.fromisoformat(params["visit_date"]),
                                             language=language)),
                SlotSet("notification_to_send", "followup")]
    raise ValueError(f"no message for notification type {kind!r}")
