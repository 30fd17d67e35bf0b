"""Enums, value objects and errors of the staff inbox."""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import re
from typing import FrozenSet, Optional


class TicketState(str, enum.Enum):
    WAITING = "waiting"      # queued for a team, nobody owns it yet (the bot still answers)
    ASSIGNED = "assigned"    # a staff member owns it: the bot is silent
    RESOLVED = "resolved"    # done: the next message goes to the bot again


class Priority(str, enum.Enum):
    NORMAL = "normal"
    URGENT = "urgent"


class Role(str, enum.Enum):
    AGENT = "agent"            # their own teams' queues
    SUPERVISOR = "supervisor"  # every queue, reassign
    ADMIN = "admin"            # users, settings, audit log; no patient conversations


class MessageKind(str, enum.Enum):
    REPLY = "reply"    # goes to the patient
    NOTE = "note"      # internal: never sent to the patient, never in Rasa's tracker
    NOTICE = "notice"  # goes to the patient, sent by the inbox itself ("Nina has joined the chat")


class Delivery(str, enum.Enum):
    SENT = "sent"
    REFUSED = "refused"   # e.g. outside WhatsApp's 24-hour window: a template is needed
    FAILED = "failed"     # the gateway could not be reached; the text is kept, staff may retry


class InboxError(Exception):
    """Base of the errors the inbox reports to staff (the message is safe to show)."""


class NotFound(InboxError):
    pass


class Forbidden(InboxError):
    pass


class InvalidTransition(InboxError):
    pass


class Conflict(InboxError):
    """Someone else changed the ticket first (e.g. two staff claiming at once)."""


class InvalidInput(InboxError, ValueError):
    pass


# Conversation ids are the channel's pseudonyms (a keyed HMAC for WhatsApp). Anything that
# reads as a phone number is refused, so a misconfigured channel can't fill the inbox (and
# its audit log) with numbers in clear.
_PHONE_LIKE = re.compile(r"^\+?[\d\s().-]{7,20}$")
_CONVERSATION_ID = re.compile(r"^[A-Za-z0-9_.:@-]{1,64}$")


def check_conversation_id(value: Optional[str]) -> str:
    if not value or not _CONVERSATION_ID.match(value):
        raise InvalidInput("a conversation id is 1-64 letters, digits or _.:@-")
    if _PHONE_LIKE.match(value) and sum(c.isdigit() for c in value) >= 7:
        raise InvalidInput("a conversation id must be a pseudonym, not a phone number")
    return value


@dataclasses.dataclass(frozen=True)
class Actor:
    """Who does something: a staff member, or ``system``/``bot`` (id None)."""

    id: Optional[int]
    username: str
    role: Optional[Role]
    teams: FrozenSet[str] = frozenset()

    @property
    def is_staff(self) -> bool:
        return self.id is not None

    def sees_team(self, team: str) -> bool:
        if self.role is Role.SUPERVISOR:
            return True
        return self.role is Role.AGENT and team in self.teams


SYSTEM = Actor(None, "system", None)
BOT = Actor(None, "bot", None)


def aware(moment: Optional[dt.datetime]) -> Optional[dt.datetime]:
    """SQLite gives naive datetimes back; every time we store is UTC. PostgreSQL gives them
    back in the session's time zone: converted to UTC, so the audit log's hash (which covers
    the time as text) is the same whatever the server's TimeZone setting."""
    if moment is None:
        return None
    return moment.astimezone(dt.timezone.utc) if moment.tzinfo else moment.replace(tzinfo=dt.timezone.utc)
