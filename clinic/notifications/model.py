"""Notification types, their parameters' vocabularies and how long each is worth sending.

Parameters are enums, dates, ticket numbers and opaque ids only: nothing a clinic system
could fill with clinical free text. The labels are what the patient reads.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from typing import Any, Dict, Optional

RESULTS_READY = "results_ready"
DOCUMENT_READY = "document_ready"
BILLING_UPDATE = "billing_update"
QUEUE_CALLED = "queue_called"
QUEUE_POSITION = "queue_position"
FOLLOWUP = "followup"
SURVEY_REQUEST = "survey_request"
TYPES = (RESULTS_READY, DOCUMENT_READY, BILLING_UPDATE, QUEUE_CALLED, QUEUE_POSITION, FOLLOWUP, SURVEY_REQUEST)
IMPLEMENTED = TYPES  # survey_request is delivered by the survey sender (clinic/surveys)

# Service notices the patient asked for by using the service (a test, a document, a bill, a
# place in the queue): sent even after "STOP", which the opt-out text scopes to reminders,
# follow-ups and health tips. Follow-ups and survey requests follow the reminders consent.
TRANSACTIONAL = (RESULTS_READY, DOCUMENT_READY, BILLING_UPDATE, QUEUE_CALLED, QUEUE_POSITION)

# How long after the call a notice is still worth sending (quiet hours may hold it back).
TIME_TO_LIVE = {
    RESULTS_READY: dt.timedelta(days=7),
    DOCUMENT_READY: dt.timedelta(days=7),
    BILLING_UPDATE: dt.timedelta(days=3),
    QUEUE_CALLED: dt.timedelta(minutes=20),
    QUEUE_POSITION: dt.timedelta(minutes=10),
    FOLLOWUP: dt.timedelta(days=2),
    SURVEY_REQUEST: dt.timedelta(days=3),
}

JOB_KIND_PREFIX = "notify_"

DOCUMENT_KINDS = {
    "sick_note": "sick note",
    "records_copy": "copy of your records",
    "referral_letter": "referral letter",
    "prescription": "prescription",
    "certificate": "certificate",
}
DELIVERIES = ("portal", "collect")
BILLING_ITEMS = {"invoice": "invoice", "insurance_claim": "insurance claim", "refund": "refund"}
BILLING_STATUSES = {
    "issued": "has been issued",
    "paid": "has been paid, thank you",
    "overdue": "is overdue",
    "submitted": "has been sent to your insurer",
    "approved": "has been approved",
    "rejected": "was not accepted; our billing team can help",
    "refunded": "has been refunded",
}

EVENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}\Z")
PATIENT_ID = re.compile(r"^[A-Za-z0-9_-]{1,32}\Z")
DOCUMENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}\Z")
REFERENCE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{0,31}\Z")
TICKET = re.compile(r"^[A-Za-z]{0,3}[0-9]{1,4}\Z")
ROOM = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 .'-]{0,39}\Z")


def job_kind(notification_type: str) -> str:
    return JOB_KIND_PREFIX + notification_type


def is_notification_kind(kind: str) -> bool:
    return kind.startswith(JOB_KIND_PREFIX)


def type_of_kind(kind: str) -> str:
    return kind[len(JOB_KIND_PREFIX):]


@dataclasses.dataclass(frozen=True)
class Notification:
    event_id: str
    type: str
    patient_id: str
    params: Dict[str, Any]
    job_id: Optional[str]
    created_by: str
    created_at: dt.datetime


@dataclasses.dataclass(frozen=True)
class NotificationStatus:
    event_id: str
    type: str
    status: str  # queued | sent | skipped | failed
    reason: Optional[str]
    created_at: dt.datetime
    sent_at: Optional[dt.datetime]


class NotificationError(Exception):
    pass


class Conflict(NotificationError):
    """The event id was used before with a different request."""


class NotImplementedType(NotificationError):
    pass
