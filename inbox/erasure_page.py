"""Erasure on request, by staff (issue 18, item 3): a patient asked by phone or letter to have
their data erased. Supervisors and administrators only (agents get 403); a confirmation page
says what is erased and what the clinic keeps, and the erasure runs only when the form is
sent with the confirmation ticked (CSRF-checked like every form here). The same service as
the chat's "delete my data" (clinic/privacy_erasure.py) erases every store at once,
Rasa's tracker store included, and writes the audit row (counts only) in its transaction.
"""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse

from clinic.inbox.model import NotFound
from clinic.inbox.staff import StaffMember
from clinic.inbox.tables import TicketRow
from clinic.privacy import contact_key, load_pseudonym_key
from clinic.privacy_erasure import KEPT, PrivacyErasure, TrackerEvents
from inbox.analytics_page import supervisor_member
from inbox.context import check_csrf, client_of, deps
from inbox.pages import back, render
from inbox.schemas import RowId

router = APIRouter(prefix="/inbox", include_in_schema=False)
WHATSAPP = "whatsapp"  # the channel of the conversations the inbox holds (connectors/whatsapp)
ERASED = ("the conversation with the assistant (Rasa's tracker store)", "this and every other ticket of the "
          "patient, with staff replies, notes, call-back tasks and ratings", "handoff requests",
          "survey answers and comments", "uploaded documents and upload links",
          "messaging preferences and their history", "the remembered language", "reminder jobs and recall dates",
          "broadcast recipients", "WhatsApp messages, delivery statuses, quarantine items and the contact "
          "mapping (the encrypted phone number)")


async def supervisor_writer(request: Request) -> StaffMember:
    member = supervisor_member(request)
    await check_csrf(request)
    return member


def erasure_service(request: Request) -> PrivacyErasure:
    """``app.state.erasure`` when set (tests), else one on the inbox's database and the
    tracker store's (``RASA_TRACKER_STORE_URL`` or var/rasa_tracker.db), made once."""
    service = getattr(request.app.state, "erasure", None)
    if service is None:
        service = PrivacyErasure(deps(request).inbox.sessions, tracker=TrackerEvents.from_environment())
        request.app.state.erasure = service
    return service


def _ticket(request: Request, ticket_id: int) -> TicketRow:
    with deps(request).inbox.sessions() as session:
        row = session.get(TicketRow, ticket_id)
    if row is None:
        raise NotFound(f"no ticket {ticket_id}")
    return row


def _page_url(ticket_id: int) -> str:
    return f"/inbox/tickets/{ticket_id}/erase"


@router.get("/tickets/{ticket_id}/erase", response_class=HTMLResponse)
def confirm_page(ticket_id: RowId, request: Request, member: StaffMember = Depends(supervisor_member)):
    row = _ticket(request, ticket_id)
    return render(request, "erasure.html", member=member, ticket_id=ticket_id, state=row.state,
                  erased=ERASED, kept=KEPT)


@router.post("/tickets/{ticket_id}/erase")
async def erase(ticket_id: RowId, request: Request, member: StaffMember = Depends(supervisor_writer)):
    form = await request.form()  # read once already by the CSRF check
    if form.get("confirm") != "erase":
        return back(request, _page_url(ticket_id), "Nothing erased: tick the confirmation first.")
    row = await asyncio.to_thread(_ticket, request, ticket_id)
    key = row.contact_key or contact_key(row.conversation_id, WHATSAPP, load_pseudonym_key())
    service = erasure_service(request)
    report = await asyncio.to_thread(service.erase, row.conversation_id, key, requested_by=member.username,
                                     actor=member.actor, client=client_of(request))
    return back(request, "/inbox/queues",
                f"Erasure {report.erasure_id} done: {report.total} records deleted. Appointments and the "
                "patient record stay with the clinic.")
