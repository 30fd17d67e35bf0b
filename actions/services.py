"""The clinic objects actions use, built once per action-server process.

Kept in one place so tests can swap them (``use_services``) for ones bound to a temporary
database, instead of patching module internals.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import threading
from typing import Callable, Optional

from rasa_sdk import Tracker

from clinic.consent import ConsentStore
from clinic.container import build_scheduling
from clinic.db import create_schema, make_engine, make_session_factory
from clinic.handoff.requests import HandoffRequests
from clinic.inbox.patient_side import PatientSide
from clinic.knowledge.answers import DocumentAnswers
from clinic.privacy import contact_key, load_pseudonym_key
from clinic.privacy_erasure import PrivacyErasure
from clinic.reminders.store import ReminderStore
from clinic.scheduling.backend import SchedulingBackend
from clinic.settings import ClinicSettings, load_settings

logger = logging.getLogger(__name__)


@dataclasses.dataclass
class Services:
    settings: ClinicSettings
    handoffs: HandoffRequests
    pseudonym_key: bytes
    scheduling: SchedulingBackend
    # "Now" for the conversation (time preferences, bookings); tests pin it.
    clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.timezone.utc)
    reminders: Optional[ReminderStore] = None  # reminder jobs (actions/reminders.py)
    consent: Optional[ConsentStore] = None  # opt-out / opt-in (actions/consent.py)
    inbox: Optional[PatientSide] = None  # queue wait, call-backs, ratings (actions/handoff.py)
    documents: Optional[DocumentAnswers] = None  # answers from approved documents (actions/knowledge.py)
    erasure: Optional[PrivacyErasure] = None  # "delete my data" (actions/privacy.py)

    def contact_key_for(self, tracker: Tracker) -> str:
        channel = tracker.get_latest_input_channel() or "unknown"
        return contact_key(tracker.sender_id, channel, self.pseudonym_key)


_services: Optional[Services] = None


def build_services(database_url: Optional[str] = None,
                   clock: Optional[Callable[[], dt.datetime]] = None) -> Services:
    engine = make_engine(database_url)
    create_schema(engine)
    sessions = make_session_factory(engine)
    extra = {"clock": clock} if clock else {}
    settings = load_settings()
    # One "now" for the outcomes the document answers count, the services' own by default.
    now = clock or Services.clock
    return Services(
        settings=settings,
        handoffs=HandoffRequests(sessions),
        pseudonym_key=load_pseudonym_key(),
        # Bookings made in chat plan their reminders in the same transaction.
        scheduling=build_scheduling(sessions, settings, clock),
        reminders=ReminderStore(sessions),
        consent=ConsentStore(sessions),
        inbox=PatientSide(sessions, clock=clock) if clock else PatientSide(sessions),
        documents=DocumentAnswers(sessions, clock=now),
        # Rasa's tracker store deletes the conversation's events itself (it holds them
        # during the turn): no tracker database here.
        erasure=PrivacyErasure(sessions, clock=now),
        **extra,
    )


_building = threading.Lock()


def get_services() -> Services:
    global _services
    if _services is None:
        with _building:  # the action server runs actions in several threads
            if _services is None:
                _services = build_services()
                _start_warm_up(_services)
    return _services


def _start_warm_up(services: Services) -> None:
    """Get the document search ready in the background as soon as the process serves its
    first action (usually a session start), so the patient's first question does not wait
    for the sentence encoder and the passages' vectors."""
    documents = services.documents
    if documents is None:
        return

    def warm_up() -> None:
        try:
            ready = documents.searcher.warm_up()
            logger.info("Document search ready", extra={"passages": ready})
        except Exception:  # noqa: BLE001 - warming up is an optimisation: the search retries on use
            logger.exception("Document search warm-up failed; the first question will build it")

    threading.Thread(target=warm_up, name="document-search-warm-up", daemon=True).start()


def use_services(services: Optional[Services]) -> None:
    """Replace the process-wide services (tests) or reset them (``None``)."""
    global _services
    _services = services
