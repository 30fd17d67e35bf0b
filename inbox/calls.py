"""WhatsApp voice calls from the staff inbox (issue 19, item 1).

The ticket page (templates/_calls.html, static/calls.js) uses the browser's WebRTC: to call
the patient it makes the SDP offer with the microphone and posts it here; the inbox queues a
``connect`` for the WhatsApp gateway (the one process that talks to Meta) in the clinic's
database (clinic/messaging/calls.py), exactly as staff replies are queued for its outbox;
the patient's SDP answer comes back through Meta's ``calls`` webhook → the gateway → the
same table, where the page reads it (polling) and sets it. A patient's call rings on the
ticket page of the team it is routed to (and on the Calls page): the page answers with its
own SDP (``pre_accept`` then ``accept``), or declines (``reject``); either side ends with
``terminate``. Every call stays listed on its ticket: direction, start, duration, outcome,
who took it — never audio.

Who may: placing a call, only the member who holds the ticket (like a reply); answering,
a member who sees the ticket (its team, a supervisor); administrators see no conversation.
Every call placed, answered, declined and ended is in the audit log (the call's row id).
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Dict, List, Optional, Sequence

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, Field

from clinic.inbox import audit
from clinic.inbox.model import (
    Forbidden,
    InvalidInput,
    InvalidTransition,
    NotFound,
    Role,
    TicketState,
)
from clinic.inbox.service import TimelineItem
from clinic.inbox.staff import StaffMember
from clinic.messaging.calls import BUSINESS, Call, CallError, CallStore
from inbox.context import check_csrf, client_of, current_member, deps, session_of
from inbox.schemas import RowId

router = APIRouter(prefix="/inbox", include_in_schema=False)
API = "/api/v1"
SDP_MAX = 64 * 1024
ACTION_WORDS = {"pre_accept": "call_pre_accepted", "accept": "call_answered", "reject": "call_declined",
                "terminate": "call_ended"}
OUTCOME_WORDS = {"completed": "completed", "rejected": "declined", "missed": "not answered",
                 "failed": "failed"}


class CallRequest(BaseModel):
    sdp: Optional[str] = Field(default=None, max_length=SDP_MAX)


def _store(request: Request) -> CallStore:
    return CallStore(deps(request).inbox.sessions)


def ticket_calls(request: Request, conversation_id: str, timeline: Sequence[TimelineItem] = ()) -> Dict[str, Any]:
    """The conversation's calls for the ticket page (newest last, in words), the
    conversation's timeline with each call in its place, and whether the patient allows the
    clinic to call them (their last call-permission reply)."""
    store = _store(request)
    calls = store.for_conversation(conversation_id)
    merged: List[Any] = list(timeline) + [TimelineItem(call.created_at, "call", call_line(call)) for call in calls]
    try:
        merged.sort(key=lambda item: item.at)
    except TypeError:  # a time without its zone: the calls after the messages rather than no page
        merged = list(timeline) + merged[len(timeline):]
    permission = store.permission(conversation_id)
    now = dt.datetime.now(dt.timezone.utc)
    if permission is None:
        allowed = None
    else:
        allowed = {"allowed": permission.allowed(now), "response": permission.response,
                   "expires_at": permission.expires_at, "answered_at": permission.answered_at}
    return {"items": [describe(call) for call in calls], "permission": allowed, "timeline": merged}


def call_line(call: Call) -> str:
    """A call as a line of the conversation: "Voice call, clinic → patient: completed (42 s)"."""
    item = describe(call)
    duration = f" ({call.duration_seconds} s)" if call.duration_seconds is not None else ""
    return f"Voice call, {item['direction']}: {item['outcome_words']}{duration}"


def describe(call: Call, *, with_sdp: bool = False) -> Dict[str, Any]:
    item: Dict[str, Any] = {
        "id": call.id, "ticket_id": call.ticket_id, "team": call.team,
        "direction": "clinic → patient" if call.direction == BUSINESS else "patient → clinic",
        "from_patient": call.direction != BUSINESS, "state": call.state, "outcome": call.outcome,
        "outcome_words": OUTCOME_WORDS.get(call.outcome or "", call.state),
        "created_at": call.created_at, "started_at": call.started_at, "ended_at": call.ended_at,
        "duration_seconds": call.duration_seconds, "error": call.error,
    }
    if with_sdp:
        # The other end's SDP, for the page that sets it: the patient's answer to a staff
        # call, or the patient's offer of their call.
        item["remote_sdp"] = call.answer_sdp if call.direction == BUSINESS else call.offer_sdp
        for key in ("created_at", "started_at", "ended_at"):
            value = item[key]
            item[key] = value.isoformat() if isinstance(value, dt.datetime) else None
    return item


def _audit(request: Request, member: StaffMember, action: str, call: Call, detail: str = "") -> None:
    def run() -> None:
        with audit.transaction(deps(request).inbox.sessions) as session:
            audit.append(session, member.actor, action, at=dt.datetime.now(dt.timezone.utc),
                         conversation_id=call.conversation_id, ticket_id=call.ticket_id,
                         detail=f"call {call.id}{': ' + detail if detail else ''}", client=client_of(request))
    audit.retrying(run)


def _visible_call(request: Request, member: StaffMember, call_id: int) -> Call:
    call = _store(request).get(call_id)
    if call is None:
        raise NotFound("no such call")
    if member.role is Role.ADMIN:
        raise Forbidden("administrators do not see patient conversations")
    if call.staff_id == member.id:
        return call
    if call.ticket_id is not None:
        deps(request).inbox.ticket(member.actor, call.ticket_id)  # Forbidden / NotFound as for the ticket
    elif not member.actor.sees_team(call.team or ""):
        raise Forbidden("this call is for a team you are not in")
    return call


@router.post(API + "/tickets/{ticket_id}/calls", dependencies=[Depends(check_csrf)])
def place_call(ticket_id: RowId, body: CallRequest, request: Request,
               member: StaffMember = Depends(current_member)) -> Dict[str, Any]:
    """Call the patient of this ticket with the browser's SDP offer."""
    view = deps(request).inbox.ticket(member.actor, ticket_id)
    if view.state is not TicketState.ASSIGNED or view.assignee_id != member.id:
        raise InvalidTransition("claim the ticket first: only the staff member who has it may call the patient")
    if not body.sdp or not body.sdp.startswith("v=0"):
        raise InvalidInput("sdp: the browser's SDP offer is required")
    try:
        call = _store(request).place(view.conversation_id, body.sdp, staff_id=member.id, ticket_id=view.id,
                                     team=view.team)
    except CallError as error:
        raise InvalidTransition(str(error)) from None
    _audit(request, member, "call_placed", call)
    return describe(call, with_sdp=True)


@router.get(API + "/calls/{call_id}")
def get_call(call_id: RowId, request: Request, member: StaffMember = Depends(current_member)) -> Dict[str, Any]:
    return describe(_visible_call(request, member, call_id), with_sdp=True)


@router.get(API + "/calls")
def ringing_calls(request: Request, member: StaffMember = Depends(current_member),
                  ticket: Optional[int] = None) -> Dict[str, Any]:
    """Patients' calls ringing for the member's teams (a supervisor: every team's)."""
    if member.role is Role.ADMIN:
        raise Forbidden("administrators do not see patient conversations")
    teams = None if member.role is Role.SUPERVISOR else member.teams
    calls = _store(request).ringing(teams)
    if ticket is not None:
        calls = [c for c in calls if c.ticket_id == ticket]
    return {"calls": [describe(c, with_sdp=True) for c in calls]}


@router.post(API + "/calls/{call_id}/{action}", dependencies=[Depends(check_csrf)])
def call_action(call_id: RowId, action: str, body: CallRequest, request: Request,
                member: StaffMember = Depends(current_member)) -> Dict[str, Any]:
    """``pre_accept`` / ``accept`` (with the browser's SDP answer), ``reject``, ``terminate``."""
    if action not in ACTION_WORDS:
        raise NotFound("no such call action")
    call = _visible_call(request, member, call_id)
    try:
        call = _store(request).ask(call.id, action, staff_id=member.id, sdp=body.sdp)
    except CallError as error:
        raise InvalidTransition(str(error)) from None
    _audit(request, member, ACTION_WORDS[action], call)
    return describe(call, with_sdp=True)


@router.get("/calls", response_class=HTMLResponse)
def calls_page(request: Request, member: StaffMember = Depends(current_member)):
    """Patients' calls ringing for the member's teams, each with its ticket (the page polls)."""
    if member.role is Role.ADMIN:
        raise Forbidden("administrators do not see patient conversations")
    teams = None if member.role is Role.SUPERVISOR else member.teams
    calls = [describe(c) for c in _store(request).ringing(teams)]
    session = session_of(request)  # as inbox/pages.render does (not imported: pages imports this)
    return deps(request).templates.TemplateResponse(request, "calls.html", {
        "member": member, "calls": calls, "csrf": session.csrf, "flash": session.pop_flash()})
