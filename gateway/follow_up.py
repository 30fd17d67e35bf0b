"""A person follows up when the assistant's reply finally could not be delivered.

The sender (gateway/sender.py) calls this for a turn's reply whose delivery rounds are
used up, or that failed with an error no retry can fix (e.g. 131026, not on WhatsApp): a
handoff request with reason ``reply_failed`` opens (or reuses) the conversation's ticket in
the reception queue, through the same service every other handoff uses, so staff see the
patient is waiting and can reply, call or write. The dead letter itself is listed on the
inbox's dead-letters page (inbox/dead_letters.py) with the ticket's number.
"""

from __future__ import annotations

from typing import Callable, Optional

from sqlalchemy import select
from sqlalchemy.orm import sessionmaker

from clinic.handoff.requests import HandoffRequests, Reason
from clinic.handoff.teams import FALLBACK_TEAM
from clinic.inbox.model import TicketState
from clinic.inbox.tables import TicketRow
from clinic.messaging.store import OutboundItem
from clinic.privacy import contact_key
from gateway.render import CHANNEL_NAME


def follow_up_opener(sessions: sessionmaker, pseudonym_key: bytes,
                     channel: str = CHANNEL_NAME) -> Callable[[OutboundItem], Optional[int]]:
    """The sender's ``on_final_failure``: opens the ticket, returns its id (runs in a worker
    thread)."""
    handoffs = HandoffRequests(sessions)

    def open_follow_up(item: OutboundItem) -> Optional[int]:
        key = contact_key(item.conversation_id, channel, pseudonym_key)
        handoffs.record(key, FALLBACK_TEAM, Reason.REPLY_FAILED, conversation_id=item.conversation_id)
        with sessions() as session:
            ticket_id = session.scalars(
                select(TicketRow.id).where(TicketRow.conversation_id == item.conversation_id,
                                           TicketRow.state != TicketState.RESOLVED.value)
                .order_by(TicketRow.id.desc()).limit(1)
            ).first()
            return None if ticket_id is None else int(ticket_id)

    return open_follow_up
