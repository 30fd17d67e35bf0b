"""Accepting a notification: idempotent per event id, PHI-checked, planned as a reminder job.

``submit`` runs in one transaction: the notification row, the patient's record state and
the ``reminder_jobs`` row (kind ``notify_<type>``, due now) are committed together or not at
all. A retried call with the same event id and the same request finds the row and returns
it (nothing is planned twice); the same id with a different request is a :class:`Conflict`.
Two identical calls racing: the primary key lets one insert win; the other re-reads.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
from typing import Any, Callable, Dict, Optional, Tuple

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import sessionmaker

from clinic import phi_guard
from clinic.clock import utcnow
from clinic.notifications import model as m
from clinic.notifications.tables import NotificationRow
from clinic.records import tables as rt
from clinic.records.store import RecordStore
from clinic.reminders import tables as jt

logger = logging.getLogger(__name__)

_JOB_STATUS = {jt.PENDING: "queued", jt.DISPATCHING: "queued", jt.SENT: "sent", jt.SKIPPED: "skipped",
               jt.FAILED: "failed"}
NOT_REACHABLE = "patient_not_reachable"


def request_hash(notification_type: str, patient_id: str, params: Dict[str, Any]) -> str:
    canonical = json.dumps({"type": notification_type, "patient_id": patient_id, "params": params},
                           sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _notification(row: NotificationRow) -> m.Notification:
    return m.Notification(row.event_id, row.type, row.patient_id, json.loads(row.params), row.job_id,
                          row.created_by, row.created_at)


class NotificationService:
    def __init__(self, session_factory: sessionmaker, records: Optional[RecordStore] = None,
                 clock: Callable[[], dt.datetime] = utcnow):
        self._sessions = session_factory
        self.records = records or RecordStore(session_factory, clock)
        self._clock = clock

    def submit(self, event_id: str, notification_type: str, patient_id: str, params: Dict[str, Any],
               actor: str) -> Tuple[m.Notification, bool]:
        """Returns the notification and whether it was a replay of an earlier call.
        Raises :class:`m.Conflict`, :class:`phi_guard.PhiBlocked`, :class:`m.NotImplementedType`."""
        if notification_type not in m.TYPES:
            raise ValueError(f"unknown notification type {notification_type!r}")
        digest = request_hash(notification_type, patient_id, params)
        existing = self.get(event_id)
        if existing is not None:
            return self._replay(existing, digest), True
        if notification_type not in m.IMPLEMENTED:
            raise m.NotImplementedType(notification_type)
        findings = phi_guard.check_fields(params, strict=True)
        if findings:
            # Logged by rule and field only: the text itself is health information.
            logger.warning("Notification %s refused: %s", event_id,
                           ", ".join(f"{f.rule}@{f.where}" for f in findings))
            raise phi_guard.PhiBlocked(findings)
        try:
            with self._sessions() as session, session.begin():
                job_id = self._plan(session, event_id, notification_type, patient_id, params)
                session.add(NotificationRow(event_id=event_id, type=notification_type, patient_id=patient_id,
                                            params=json.dumps(params, sort_keys=True, default=str),
                                            request_hash=digest, job_id=job_id, created_by=actor[:80],
                                            created_at=self._clock()))
        except IntegrityError:
            existing = self.get(event_id)
            if existing is None:
                raise
            return self._replay(existing, digest), True
        return self.get(event_id), False

    def _replay(self, existing: m.Notification, digest: str) -> m.Notification:
        with self._sessions() as session:
            stored = session.get(NotificationRow, existing.event_id).request_hash
        if stored != digest:
            raise m.Conflict(existing.event_id)
        return existing

    def _plan(self, session, event_id: str, notification_type: str, patient_id: str,
              params: Dict[str, Any]) -> Optional[str]:
        from clinic.scheduling.tables import PatientRow

        self._record_state(session, notification_type, patient_id, params)
        patient = session.get(PatientRow, patient_id)
        if patient is None:
            # Not a patient of the assistant (never booked here): nothing to send, recorded.
            return None
        now = self._clock()
        if notification_type == m.SURVEY_REQUEST:
            # A 1-5 satisfaction survey, sent (once, with its own pacing and consent check)
            # by the survey sender; the notification's event id is the survey's subject.
            self._plan_survey(session, event_id, patient, now)
            return None
        job_id = jt.new_job_id()
        session.add(jt.ReminderJobRow(
            id=job_id, kind=m.job_kind(notification_type), patient_id=patient.id,
            contact_key=patient.contact_key, conversation_id=patient.conversation_id,
            channel=patient.channel, due_at=now, available_at=now,
            expires_at=now + m.TIME_TO_LIVE[notification_type], status=jt.PENDING, attempts=0,
            created_at=now, updated_at=now))
        return job_id

    def _plan_survey(self, session, event_id: str, patient, now) -> None:
        from clinic.surveys import tables as st
        from clinic.surveys.store import SurveyStore

        SurveyStore(self._sessions).add(session, st.REQUEST, event_id, patient.contact_key,
                                        patient.conversation_id, patient.channel, now, now)

    def _record_state(self, session, notification_type: str, patient_id: str, params: Dict[str, Any]) -> None:
        """Keep the states the chat answers from in step with what was announced."""
        put = self.records.upsert
        if notification_type == m.RESULTS_READY:
            put(session, patient_id, rt.RESULT, "ready", document_id=params["document_id"])
        elif notification_type == m.DOCUMENT_READY:
            status = "ready" if params["delivery"] == "portal" else "ready_to_collect"
            put(session, patient_id, rt.DOCUMENT, status, subtype=params["document_kind"],
                document_id=params.get("document_id"))
        elif notification_type == m.BILLING_UPDATE:
            due = params.get("due_date")
            put(session, patient_id, rt.BILLING, params["status"], subtype=params["item"],
                reference=params.get("reference"),
                expected_at=dt.datetime.combine(dt.date.fromisoformat(str(due)), dt.time(12),
                                                tzinfo=dt.timezone.utc) if due else None)
        elif notification_type == m.QUEUE_CALLED:
            put(session, patient_id, rt.QUEUE, "called", reference=params["ticket"], room=params["room"])
        elif notification_type == m.QUEUE_POSITION:
            put(session, patient_id, rt.QUEUE, "waiting", reference=params["ticket"],
                position=params["position"],
                expected_at=self._clock() + dt.timedelta(minutes=params.get("estimated_minutes") or 0))

    # ── reads ───────────────────────────────────────────────────────────────────────────
    def get(self, event_id: str) -> Optional[m.Notification]:
        with self._sessions() as session:
            row = session.get(NotificationRow, event_id)
            return _notification(row) if row is not None else None

    def by_job(self, job_id: str) -> Optional[m.Notification]:
        from sqlalchemy import select

        with self._sessions() as session:
            row = session.scalars(select(NotificationRow).where(NotificationRow.job_id == job_id)).first()
            return _notification(row) if row is not None else None

    def status(self, event_id: str) -> Optional[m.NotificationStatus]:
        notification = self.get(event_id)
        if notification is None:
            return None
        if notification.type == m.SURVEY_REQUEST:
            return self._survey_status(notification)
        if notification.job_id is None:
            return m.NotificationStatus(event_id, notification.type, "skipped", NOT_REACHABLE,
                                        notification.created_at, None)
        with self._sessions() as session:
            job = session.get(jt.ReminderJobRow, notification.job_id)
        reason = job.reason if job.status in (jt.SKIPPED, jt.FAILED) else None
        return m.NotificationStatus(event_id, notification.type, _JOB_STATUS[job.status], reason,
                                    notification.created_at, job.sent_at)

    def _survey_status(self, notification: m.Notification) -> m.NotificationStatus:
        from sqlalchemy import select

        from clinic.surveys import tables as st

        with self._sessions() as session:
            survey = session.execute(select(st.SurveyRow).where(
                st.SurveyRow.kind == st.REQUEST, st.SurveyRow.subject_id == notification.event_id)).scalar_one_or_none()
        if survey is None:
            return m.NotificationStatus(notification.event_id, notification.type, "skipped", NOT_REACHABLE,
                                        notification.created_at, None)
        state = {st.PENDING: "queued", st.SENDING: "queued", st.SENT: "sent", st.SKIPPED: "skipped",
                 st.FAILED: "failed", st.UNKNOWN: "failed"}[survey.status]
        reason = survey.reason if state in ("skipped", "failed") else None
        return m.NotificationStatus(notification.event_id, notification.type, state, reason,
                                    notification.created_at, survey.sent_at)
