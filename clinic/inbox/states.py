"""The ticket state machine: every allowed (state, event) pair, and nothing else.

    (none) ──open──▶ waiting ──claim/assign──▶ assigned ──resolve──▶ resolved
                       ▲  ▲                      │  │                   │
                       │  └──────transfer/release┘  │                   │
                       │                            └─reply/note/assign─┘ (stay)
                       └──────────────open (a new request reopens)──────┘

``open`` on a conversation that already has an active ticket does not duplicate it: the
ticket is reused (and its priority raised for an emergency). Only the table below decides
what may happen; the service adds *who* may do it.
"""

from __future__ import annotations

import enum
from typing import Dict, Optional, Tuple

from clinic.inbox.model import InvalidTransition, TicketState

W, A, R = TicketState.WAITING, TicketState.ASSIGNED, TicketState.RESOLVED


class Event(str, enum.Enum):
    OPEN = "open"          # the patient (or the safety net) asks for a human
    CLAIM = "claim"        # a staff member takes a waiting ticket
    ASSIGN = "assign"      # a supervisor gives it to someone (or reassigns it)
    RELEASE = "release"    # the owner puts it back in the queue
    TRANSFER = "transfer"  # to another team: waiting again, nobody owns it
    REPLY = "reply"        # a message to the patient: only the owner, only while assigned
    NOTE = "note"          # internal note: any time, even after resolution
    RESOLVE = "resolve"    # with a reason: the bot takes over again


TRANSITIONS: Dict[Tuple[Optional[TicketState], Event], TicketState] = {
    (None, Event.OPEN): W,
    (W, Event.OPEN): W,          # reuse, no duplicate
    (A, Event.OPEN): A,          # reuse; the owner keeps it
    (R, Event.OPEN): W,          # reopen
    (W, Event.CLAIM): A,
    (W, Event.ASSIGN): A,
    (A, Event.ASSIGN): A,        # reassign
    (A, Event.RELEASE): W,
    (W, Event.TRANSFER): W,
    (A, Event.TRANSFER): W,
    (A, Event.REPLY): A,
    (W, Event.NOTE): W,
    (A, Event.NOTE): A,
    (R, Event.NOTE): R,
    (W, Event.RESOLVE): R,       # e.g. the patient no longer needs help
    (A, Event.RESOLVE): R,
}

_WHY_NOT = {
    Event.CLAIM: "only a waiting ticket can be claimed",
    Event.REPLY: "claim the ticket before replying",
    Event.RESOLVE: "this ticket is already resolved",
    Event.TRANSFER: "a resolved ticket cannot be transferred",
    Event.RELEASE: "only an assigned ticket can be released",
    Event.ASSIGN: "a resolved ticket cannot be assigned",
}


def next_state(state: Optional[TicketState], event: Event) -> TicketState:
    """The state after ``event``, or InvalidTransition with a reason staff can read."""
    try:
        return TRANSITIONS[(state, event)]
    except KeyError:
        label = state.value if state else "no ticket"
        raise InvalidTransition(f"{_WHY_NOT.get(event, 'not allowed')} (ticket is {label})") from None


def allowed_events(state: Optional[TicketState]) -> list[Event]:
    return [event for (source, event) in TRANSITIONS if source == state]
