"""What each contact agreed to receive, per pseudonymous contact key.

Two flags, each with when it last changed and the wording the patient saw (an id of the
confirmation text in the domain, versioned: ``reminders_opt_out_v1``), plus an
append-only history of every change, so the clinic can show what was agreed and when.

* ``reminders``: appointment reminders, follow-ups and recalls. On by default (the patient
  gave their number for appointments); "STOP" turns them off, "START" back on.
* ``health_tips``: off by default (marketing: Meta and the GDPR both want an explicit,
  recorded opt-in). Only the double opt-in (``opt_in`` → the question → a "yes" tap) turns it
  on; "stop tips" turns only it off, "STOP" turns everything off.

The reminder scheduler and the reminder action check :meth:`ConsentStore.reminders_allowed`
before anything goes out; the broadcast runner (clinic/broadcasts) selects its segment with
:meth:`ConsentStore.tips_segment` and re-checks :meth:`ConsentStore.tips_allowed` just
before each send. docs/consent.md lists the rules per message class.

A contact key is a one-way HMAC, so the row also keeps the conversation's pseudonymous id
and channel from the moment of the opt-in (never a phone number): a broadcast needs to know
*where* to send, and the WhatsApp address itself stays encrypted in ``wa_contacts``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import List, Optional, Sequence, Union

from sqlalchemy import Boolean, Column, Index, Integer, String, select
from sqlalchemy.orm import sessionmaker

from clinic.clock import utcnow
from clinic.db import Base
from clinic.scheduling.tables import UTCDateTime

REMINDERS = "reminders"
HEALTH_TIPS = "health_tips"
TOPICS = (REMINDERS, HEALTH_TIPS)


class ConsentRow(Base):
    __tablename__ = "contact_consent"

    contact_key = Column(String(64), primary_key=True)
    reminders = Column(Boolean, nullable=False, default=True)
    reminders_changed_at = Column(UTCDateTime, nullable=True)
    reminders_wording = Column(String(64), nullable=True)
    health_tips = Column(Boolean, nullable=False, default=False)
    health_tips_changed_at = Column(UTCDateTime, nullable=True)
    health_tips_wording = Column(String(64), nullable=True)
    # Where the contact last changed a preference (pseudonymous conversation id + channel):
    # what a broadcast sends to (migration 0006_engagement).
    conversation_id = Column(String(64), nullable=True)
    channel = Column(String(32), nullable=True)

    __table_args__ = (Index("ix_contact_consent_health_tips", "health_tips"),)


class ConsentEventRow(Base):
    """Append-only history of consent changes."""

    __tablename__ = "consent_events"

    id = Column(Integer, primary_key=True)
    contact_key = Column(String(64), nullable=False)
    topic = Column(String(20), nullable=False)
    granted = Column(Boolean, nullable=False)
    wording = Column(String(64), nullable=False)
    channel = Column(String(32), nullable=True)
    at = Column(UTCDateTime, nullable=False)

    __table_args__ = (Index("ix_consent_events_contact", "contact_key", "id"),)


@dataclasses.dataclass(frozen=True)
class Preferences:
    contact_key: str
    reminders: bool
    health_tips: bool
    reminders_changed_at: Optional[dt.datetime] = None
    health_tips_changed_at: Optional[dt.datetime] = None


@dataclasses.dataclass(frozen=True)
class Subscriber:
    """A contact opted in to health tips, and where to reach them."""

    contact_key: str
    conversation_id: str
    channel: str
    since: Optional[dt.datetime]


class ConsentStore:
    def __init__(self, session_factory: sessionmaker):
        self._sessions = session_factory

    @property
    def sessions(self) -> sessionmaker:
        return self._sessions

    def preferences(self, contact_key: str) -> Preferences:
        with self._sessions() as session:
            row = session.get(ConsentRow, contact_key)
            if row is None:
                return Preferences(contact_key, reminders=True, health_tips=False)
            return Preferences(contact_key, row.reminders, row.health_tips,
                               row.reminders_changed_at, row.health_tips_changed_at)

    def reminders_allowed(self, contact_key: str) -> bool:
        return self.preferences(contact_key).reminders

    def tips_allowed(self, contact_key: str) -> bool:
        """Health tips (marketing) only after an explicit opt-in that was not withdrawn."""
        return self.preferences(contact_key).health_tips

    def tips_segment(self, channel: Optional[str] = "whatsapp") -> List[Subscriber]:
        """Every contact opted in to health tips whose conversation is known (oldest first)."""
        with self._sessions() as session:
            query = select(ConsentRow).where(ConsentRow.health_tips.is_(True),
                                             ConsentRow.conversation_id.is_not(None))
            if channel:
                query = query.where(ConsentRow.channel == channel)
            rows = session.scalars(query.order_by(ConsentRow.health_tips_changed_at, ConsentRow.contact_key))
            return [Subscriber(r.contact_key, r.conversation_id, r.channel, r.health_tips_changed_at)
                    for r in rows]

    def record(self, contact_key: str, topics: Union[str, Sequence[str]], granted: bool, wording: str,
               channel: Optional[str] = None, now: Optional[dt.datetime] = None,
               conversation_id: Optional[str] = None) -> Preferences:
        """Set one or more flags and append them to the history, in one transaction.

        ``conversation_id`` (the channel's pseudonymous id) is kept as the place a broadcast
        reaches the contact."""
        topics = (topics,) if isinstance(topics, str) else tuple(topics)
        unknown = [topic for topic in topics if topic not in TOPICS]
        if unknown or not topics:
            raise ValueError(f"unknown consent topic(s) {unknown!r}")
        if not contact_key or not wording:
            raise ValueError("contact_key and wording are required")
        now = now or utcnow()
        with self._sessions() as session, session.begin():
            row = session.get(ConsentRow, contact_key, with_for_update=True)
            if row is None:
                row = ConsentRow(contact_key=contact_key, reminders=True, health_tips=False)
                session.add(row)
            if conversation_id:
                row.conversation_id, row.channel = conversation_id, channel
            for topic in topics:
                setattr(row, topic, granted)
                setattr(row, f"{topic}_changed_at", now)
                setattr(row, f"{topic}_wording", wording)
                session.add(ConsentEventRow(contact_key=contact_key, topic=topic, granted=granted,
                                            wording=wording, channel=channel, at=now))
        return self.preferences(contact_key)

    def history(self, contact_key: str) -> List[dict]:
        with self._sessions() as session:
            rows = session.scalars(select(ConsentEventRow).where(ConsentEventRow.contact_key == contact_key)
                                   .order_by(ConsentEventRow.id))
            return [{"topic": r.topic, "granted": r.granted, "wording": r.wording,
                     "channel": r.channel, "at": r.at} for r in rows]
