"""The staff inbox's dead-letters page (supervisors and administrators): outbound WhatsApp
messages that could not be delivered, what they were, when, why, how often they were tried,
whether a later round is due and the follow-up ticket; retry or dismiss each.

Retry does not send from here: it marks the letter due, and the process that sends the
assistant's replies (the gateway, gateway/outbox.py) takes it on its next sweep, in the
conversation's order and with the same ambiguity checks as any send. Every view, retry and
dismissal is written to the audit log in the same transaction (clinic/inbox/audit.py); the
log holds ids and kinds, never the text. Supervisors see the text (they see conversations
anyway); administrators, who do not see patient conversations, see only its kind.
"""

from __future__ import annotations

import datetime as dt
from typing import Optional

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse
from sqlalchemy import update

from clinic.inbox import audit
from clinic.inbox.model import Role
from clinic.inbox.staff import StaffMember
from clinic.messaging.store import DEAD, DISMISSED, OutboundItem, OutboundRow, WhatsAppStore
from inbox.analytics_page import supervisor_member
from inbox.context import check_csrf, client_of, deps
from inbox.pages import back, render
from inbox.schemas import RowId

router = APIRouter(prefix="/inbox", include_in_schema=False)
PAGE = "/inbox/dead-letters"


async def supervisor_writer(request: Request) -> StaffMember:
    member = supervisor_member(request)
    await check_csrf(request)
    return member


def _sessions(request: Request):
    return deps(request).inbox.sessions


def shown_text(item: OutboundItem) -> str:
    """What the patient would have read: a text's body, an interactive message's body, a
    template's name."""
    payload = item.payload or {}
    kind = payload.get("type")
    content = payload.get(kind) if isinstance(kind, str) else None
    if not isinstance(content, dict):
        return "(no longer kept)" if not payload else "(withheld)"
    if kind == "text":
        return str(content.get("body", ""))
    if kind == "interactive":
        return str((content.get("body") or {}).get("text", ""))
    if kind == "template":
        return f"template {content.get('name')} ({(content.get('language') or {}).get('code', '')})"
    return f"[{kind}]"


@router.get("/dead-letters", response_class=HTMLResponse)
def dead_letters(request: Request, dismissed: int = 0, member: StaffMember = Depends(supervisor_member)):
    store = WhatsAppStore(_sessions(request))
    items = store.dead_letters(include_dismissed=bool(dismissed))
    with audit.transaction(_sessions(request)) as session:
        audit.append(session, member.actor, "dead_letters_viewed", at=dt.datetime.now(dt.timezone.utc),
                     detail=f"{len(items)} listed", client=client_of(request))
    show_text = member.role is Role.SUPERVISOR
    rows = [{"item": item, "text": shown_text(item) if show_text else None} for item in items]
    return render(request, "dead_letters.html", member=member, rows=rows, dismissed=bool(dismissed),
                  counts=store.outbound_counts())


def _change(request: Request, member: StaffMember, outbound_id: int, action: str) -> Optional[OutboundRow]:
    """Retry or dismiss one dead letter, audited in the same transaction."""
    now = dt.datetime.now(dt.timezone.utc)

    def run() -> Optional[str]:
        with audit.transaction(_sessions(request)) as session:
            row = session.get(OutboundRow, outbound_id)
            if row is None or row.state != DEAD:
                return None
            values = {"retry_at": now} if action == "retry" else {"state": DISMISSED, "retry_at": None,
                                                                    "payload_json": None}
            session.execute(update(OutboundRow).where(OutboundRow.id == outbound_id, OutboundRow.state == DEAD)
                            .values(updated_at=now, **values))
            audit.append(session, member.actor, f"dead_letter_{'retried' if action == 'retry' else 'dismissed'}",
                         at=now, conversation_id=row.conversation_id, ticket_id=row.ticket_id,
                         detail=f"outbound {outbound_id} kind={row.kind} code={row.error_code}",
                         client=client_of(request))
            return row.kind

    return audit.retrying(run)


@router.post("/dead-letters/{outbound_id}/retry")
def retry(outbound_id: RowId, request: Request, member: StaffMember = Depends(supervisor_writer)):
    if _change(request, member, outbound_id, "retry") is None:
        return back(request, PAGE, f"Dead letter {outbound_id} is no longer waiting.")
    return back(request, PAGE, f"Dead letter {outbound_id}: sent again within seconds by the WhatsApp gateway.")


@router.post("/dead-letters/{outbound_id}/dismiss")
def dismiss(outbound_id: RowId, request: Request, member: StaffMember = Depends(supervisor_writer)):
    if _change(request, member, outbound_id, "dismiss") is None:
        return back(request, PAGE, f"Dead letter {outbound_id} is no longer waiting.")
    return back(request, PAGE, f"Dead letter {outbound_id} dismissed.")
