"""The clinic objects actions use, built once per action-server process.

Kept in one place so tests can swap them (``use_services``) for ones bound to a temporary
database, instead of patching module internals.
"""

from __future__ import annotations

import dataclasses
from typing import Optional

from rasa_sdk import Tracker

from clinic.db import create_schema, make_engine, make_session_factory
from clinic.handoff.requests import HandoffRequests
from clinic.privacy import contact_key, load_pseudonym_key
from clinic.settings import ClinicSettings, load_settings


@dataclasses.dataclass
class Services:
    settings: ClinicSettings
    handoffs: HandoffRequests
    pseudonym_key: bytes

    def contact_key_for(self, tracker: Tracker) -> str:
        channel = tracker.get_latest_input_channel() or "unknown"
        return contact_key(tracker.sender_id, channel, self.pseudonym_key)


_services: Optional[Services] = None


def build_services(database_url: Optional[str] = None) -> Services:
    engine = make_engine(database_url)
    create_schema(engine)
    return Services(
        settings=load_settings(),
        handoffs=HandoffRequests(make_session_factory(engine)),
        pseudonym_key=load_pseudonym_key(),
    )


def get_services() -> Services:
    global _services
    if _services is None:
        _services = build_services()
    return _services


def use_services(services: Optional[Services]) -> None:
    """Replace the process-wide services (tests) or reset them (``None``)."""
    global _services
    _services = services
