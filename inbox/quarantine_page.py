"""The staff inbox's quarantine page (supervisors and administrators): inbound WhatsApp
messages the channel could not read, store or answer (clinic/messaging/quarantine.py) — what, when,
why, how often it was tried and the follow-up ticket; retry or dismiss each.

Retry does not process anything here: it puts the message back in the channel's inbox
(``pending``, fresh attempts), where the gateway's sweep takes it within seconds, in its
conversation's order. Dismiss closes the item and deletes the text it kept. Every view,
retry and dismissal is written to the audit log in the same transaction
(clinic/inbox/audit.py), with ids, sources and reasons, never the text. Supervisors see the
(redacted) text, as they see conversations anyway; administrators, who do not see patient
conversations, see only its kind.
"""

from __future__ import annotations

import datetime as dt
from typing import Dict, List, Optional

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse
from sqlalchemy import func, select

from clinic.inbox import audit
from clinic.inbox.model import Role
from clinic.inbox.staff import StaffMember
from clinic.inbox.tables import TicketRow
from clinic.messaging.quarantine import NotRetryable, Quarantine, QuarantineItem
from inbox.analytics_page import supervisor_member
from inbox.context import check_csrf, client_of, deps
from inbox.pages import back, render
from inbox.schemas import RowId

router = APIRouter(prefix="/inbox", include_in_schema=False)
PAGE = "/inbox/quarantine"
SHOWN_TEXT_MAX = 1000  # enough to follow up; the whole (≤ 4,096 characters) is in the inbox row
SOURCES = {
    "webhook": "Could not be read",
    "journal": "Refused by the database",
    "inbox": "Failed on every attempt",
}


async def supervisor_writer(request: Request) -> StaffMember:
    member = supervisor_member(request)
    await check_csrf(request)
    return member


def _quarantine(request: Request) -> Quarantine:
    return Quarantine(deps(request).inbox.sessions)


def _tickets(quarantine: Quarantine, items: List[QuarantineItem]) -> Dict[str, int]:
    """Each conversation's latest ticket (the follow-up of a dead letter)."""
    conversations = {i.conversation_id for i in items if i.conversation_id}
    if not conversations:
        return {}
    with quarantine.sessions() as session:
        rows = session.execute(select(TicketRow.conversation_id, func.max(TicketRow.id))
                               .where(TicketRow.conversation_id.in_(conversations))
                               .group_by(TicketRow.conversation_id))
        return {conversation: ticket for conversation, ticket in rows}


@router.get("/quarantine", response_class=HTMLResponse)
def quarantine_page(request: Request, closed: int = 0, member: StaffMember = Depends(supervisor_member)):
    quarantine = _quarantine(request)
    items = quarantine.items(state=None if closed else "open")
    with audit.transaction(quarantine.sessions) as session:
        audit.append(session, member.actor, "quarantine_viewed", at=dt.datetime.now(dt.timezone.utc),
                     detail=f"{len(items)} listed", client=client_of(request))
    show_text = member.role is Role.SUPERVISOR
    tickets = _tickets(quarantine, items) if show_text else {}
    rows = []
    for item in items:
        text: Optional[str] = None
        if show_text and item.state == "open":
            text = (quarantine.message_text(item.id) or "")[:SHOWN_TEXT_MAX]
        rows.append({"item": item, "text": text, "source": SOURCES.get(item.source, item.source),
                     "ticket": tickets.get(item.conversation_id or "")})
    return render(request, "quarantine.html", member=member, rows=rows, closed=bool(closed),
                  show_text=show_text, counts=quarantine.counts()["by_state"])


def _change(request: Request, member: StaffMember, item_id: int, action: str) -> str:
    """Retry or dismiss one item, audited in the same transaction; the page's message."""
    quarantine = _quarantine(request)
    now = dt.datetime.now(dt.timezone.utc)

    def run() -> str:
        with audit.transaction(quarantine.sessions) as session:
            change = quarantine.retry if action == "retry" else quarantine.dismiss
            item = change(session, item_id, member.username)
            audit.append(session, member.actor, f"quarantine_{'retried' if action == 'retry' else 'dismissed'}",
                         at=now, conversation_id=item.conversation_id,
                         detail=f"quarantine {item_id} source={item.source} reason={item.reason}",
                         client=client_of(request))
        if action == "retry":
            return f"Quarantined message {item_id} is back in the inbox: the assistant takes it within seconds."
        return f"Quarantined message {item_id} dismissed."

    try:
        return audit.retrying(run)
    except LookupError:
        return f"Quarantined message {item_id} does not exist."
    except NotRetryable as refusal:
        return f"Quarantined message {item_id} cannot be retried: {refusal}."


@router.post("/quarantine/{item_id}/retry")
def retry(item_id: RowId, request: Request, member: StaffMember = Depends(supervisor_writer)):
    return back(request, PAGE, _change(request, member, item_id, "retry"))


@router.post("/quarantine/{item_id}/dismiss")
def dismiss(item_id: RowId, request: Request, member: StaffMember = Depends(supervisor_writer)):
    return back(request, PAGE, _change(request, member, item_id, "dismiss"))
