"""The JSON API (/inbox/api/v1): the same operations as the pages, for integrations and
tests. Authorization lives in the domain (``Inbox``, ``StaffAccounts``): this layer only
authenticates (401), checks CSRF on unsafe calls (403) and translates."""

from __future__ import annotations

from typing import List, Optional

from fastapi import APIRouter, Depends, Query, Request
from fastapi.security import APIKeyCookie, APIKeyHeader

from clinic.inbox.model import Forbidden, Role
from clinic.inbox.service import Task
from clinic.inbox.staff import StaffMember
from inbox.context import check_csrf, client_of, current_member, deps, session_of
from inbox.schemas import (
    ActionOut,
    AssignIn,
    AuditOut,
    ChainOut,
    Me,
    MessageOut,
    NewUserOut,
    NoteIn,
    PatientOut,
    Problem,
    Queues,
    ResolveIn,
    RowId,
    SettingsIn,
    SettingsOut,
    TaskIn,
    TaskOut,
    TemplateIn,
    TemplateOut,
    TextIn,
    TicketDetail,
    TicketOut,
    TicketTemplateOut,
    TimelineOut,
    TransferIn,
    UserIn,
    UserOut,
)
from inbox.security import COOKIE, CSRF_HEADER

# Declared for the OpenAPI description; the checks themselves are current_member/check_csrf.
_cookie = APIKeyCookie(name=COOKIE, auto_error=False, description="set by logging in on /inbox/login")
_csrf = APIKeyHeader(name=CSRF_HEADER, auto_error=False, description="the csrf_token of GET /inbox/api/v1/me")

ERRORS = {401: {"model": Problem}, 403: {"model": Problem}}
TICKET_ERRORS = {**ERRORS, 404: {"model": Problem}, 409: {"model": Problem}, 422: {"model": Problem}}


def member(request: Request, _: Optional[str] = Depends(_cookie)) -> StaffMember:
    return current_member(request)


async def writer(request: Request, _: Optional[str] = Depends(_csrf),
                 who: StaffMember = Depends(member)) -> StaffMember:
    """An authenticated member making an unsafe call with the right CSRF token."""
    await check_csrf(request)
    return who


def admin(who: StaffMember) -> StaffMember:
    if who.role is not Role.ADMIN:
        raise Forbidden("administrators only")
    return who


router = APIRouter(prefix="/inbox/api/v1", tags=["inbox"])


@router.get("/me", response_model=Me, responses=ERRORS, summary="Who is logged in (and the CSRF token)")
def me(request: Request, who: StaffMember = Depends(member)):
    return Me(id=who.id, username=who.username, display_name=who.display_name, role=who.role,
              teams=sorted(who.teams), csrf_token=session_of(request).csrf)


@router.get("/queues", response_model=Queues, responses=ERRORS,
            summary="Active tickets per visible team, and the caller's own",
            description="Agents: their teams. Supervisors: every team. Admins: 403.")
def queues(request: Request, who: StaffMember = Depends(member)):
    overview = deps(request).inbox.overview(who.actor, resolved_limit=0)  # one read, one language query
    return Queues(mine=[TicketOut.of(t) for t in overview.mine],
                  teams={team: [TicketOut.of(t) for t in tickets] for team, tickets in overview.queues.items()})




@router.get("/tickets/{ticket_id}", response_model=TicketDetail, responses=TICKET_ERRORS,
            summary="A ticket with its transcript, replies and internal notes (audited)")
def ticket(ticket_id: RowId, request: Request, who: StaffMember = Depends(member)):
    page = deps(request).inbox.open_ticket_page(who.actor, ticket_id, client_of(request))
    return TicketDetail(ticket=TicketOut.of(page.ticket),
                        timeline=[TimelineOut(**item.__dict__) for item in page.timeline],
                        transcript_error=page.transcript_error,
                        patient=PatientOut(**page.patient.__dict__) if page.patient else None)


def _action(result) -> ActionOut:
    return ActionOut(ticket=TicketOut.of(result.ticket), warning=result.warning)


@router.post("/tickets/{ticket_id}/claim", response_model=ActionOut, responses=TICKET_ERRORS,
             summary="Take a waiting ticket (the assistant pauses)")
def claim(ticket_id: RowId, request: Request, who: StaffMember = Depends(writer)):
    return _action(deps(request).inbox.claim(who.actor, ticket_id, client_of(request)))


@router.post("/tickets/{ticket_id}/release", response_model=ActionOut, responses=TICKET_ERRORS,
             summary="Put an assigned ticket back in its queue")
def release(ticket_id: RowId, request: Request, who: StaffMember = Depends(writer)):
    return _action(deps(request).inbox.release(who.actor, ticket_id, client_of(request)))


@router.post("/tickets/{ticket_id}/assign", response_model=ActionOut, responses=TICKET_ERRORS,
             summary="Assign or reassign (supervisors)")
def assign(ticket_id: RowId, body: AssignIn, request: Request, who: StaffMember = Depends(writer)):
    return _action(deps(request).inbox.assign(who.actor, ticket_id, body.staff_id, client_of(request)))


@router.post("/tickets/{ticket_id}/transfer", response_model=ActionOut, responses=TICKET_ERRORS,
             summary="Send to another team's queue")
def transfer(ticket_id: RowId, body: TransferIn, request: Request, who: StaffMember = Depends(writer)):
    return _action(deps(request).inbox.transfer(who.actor, ticket_id, body.team, client_of(request)))


@router.post("/tickets/{ticket_id}/resolve", response_model=ActionOut, responses=TICKET_ERRORS,
             summary="Resolve with a reason (the assistant takes over again)")
def resolve(ticket_id: RowId, body: ResolveIn, request: Request, who: StaffMember = Depends(writer)):
    return _action(deps(request).inbox.resolve(who.actor, ticket_id, body.reason, client_of(request)))


def _message(message) -> MessageOut:
    return MessageOut(id=message.id, kind=message.kind.value, author=message.author,
                      created_at=message.created_at, delivery=message.delivery,
                      delivery_detail=message.delivery_detail)


@router.post("/tickets/{ticket_id}/reply", response_model=MessageOut, responses=TICKET_ERRORS,
             summary="Reply to the patient (owner only)",
             description="`delivery` says whether it reached the patient: `refused` outside "
                         "WhatsApp's 24-hour window (a template is needed), `failed` if the "
                         "channel could not be reached (the text is kept).")
def reply(ticket_id: RowId, body: TextIn, request: Request, who: StaffMember = Depends(writer)):
    return _message(deps(request).inbox.reply(who.actor, ticket_id, body.text, client_of(request)))


@router.get("/templates", response_model=List[TemplateOut], responses=ERRORS,
            summary="The approved WhatsApp templates staff may send outside the 24-hour window")
def templates(request: Request, who: StaffMember = Depends(member)):
    return [TemplateOut(name=t.name, language=t.language, label=t.label, body=t.body, params=list(t.params),
                        translations={v.language: v.body for v in t.versions})
            for t in deps(request).inbox.templates]


@router.get("/tickets/{ticket_id}/templates", response_model=List[TicketTemplateOut], responses=TICKET_ERRORS,
            summary="The approved templates as they would be sent on this ticket (the patient's language)",
            description="Each template once; `fallback` when it has no version in the patient's "
                        "language and would go out in the clinic's default language.")
def ticket_templates(ticket_id: RowId, request: Request, who: StaffMember = Depends(member)):
    return [TicketTemplateOut(name=o.name, label=o.label, params=list(o.params), language=o.language,
                              body=o.body, wanted=o.wanted, fallback=o.fallback)
            for o in deps(request).inbox.ticket_templates(who.actor, ticket_id)]


@router.post("/tickets/{ticket_id}/template", response_model=MessageOut, responses=TICKET_ERRORS,
             summary="Send an approved template to the patient (owner only)",
             description="For when a reply was `refused` because the patient's 24-hour window has "
                         "closed: only an approved template may reach them then.")
def send_template(ticket_id: RowId, body: TemplateIn, request: Request, who: StaffMember = Depends(writer)):
    return _message(deps(request).inbox.send_template(who.actor, ticket_id, body.name, body.values,
                                                      client_of(request)))


@router.post("/tickets/{ticket_id}/notes", response_model=MessageOut, responses=TICKET_ERRORS,
             summary="Internal note (never sent to the patient)")
def note(ticket_id: RowId, body: NoteIn, request: Request, who: StaffMember = Depends(writer)):
    return _message(deps(request).inbox.add_note(who.actor, ticket_id, body.text, client_of(request)))


def _task(task: Task) -> TaskOut:
    return TaskOut(**task.__dict__)


@router.post("/tickets/{ticket_id}/tasks", response_model=TaskOut, responses=TICKET_ERRORS,
             summary="Create a call-back task for this ticket's patient")
def create_task(ticket_id: RowId, body: TaskIn, request: Request, who: StaffMember = Depends(writer)):
    inbox = deps(request).inbox
    view = inbox.ticket(who.actor, ticket_id)
    return _task(inbox.request_callback(view.conversation_id, view.team, body.note, body.due_at,
                                        actor=who.actor, client=client_of(request), ticket_id=ticket_id))


@router.get("/tasks", response_model=List[TaskOut], responses=ERRORS, summary="Open call-back tasks of visible teams")
def tasks(request: Request, who: StaffMember = Depends(member)):
    return [_task(t) for t in deps(request).inbox.tasks(who.actor)]


@router.post("/tasks/{task_id}/done", response_model=TaskOut, responses=TICKET_ERRORS, summary="Mark a task done")
def task_done(task_id: RowId, request: Request, who: StaffMember = Depends(writer)):
    return _task(deps(request).inbox.complete_task(who.actor, task_id, client_of(request)))


# ── admin ───────────────────────────────────────────────────────────────────────────────
def _user(m) -> UserOut:
    return UserOut(id=m.id, username=m.username, display_name=m.display_name, role=m.role,
                   teams=sorted(m.teams), disabled=m.disabled, totp_confirmed=m.totp_confirmed,
                   last_login_at=m.last_login_at)


@router.get("/users", response_model=List[UserOut], responses=ERRORS, summary="Staff accounts (admins)")
def users(request: Request, who: StaffMember = Depends(member)):
    admin(who)
    return [_user(m) for m in deps(request).staff.all()]


@router.post("/users", response_model=NewUserOut, status_code=201,
             responses={**ERRORS, 409: {"model": Problem}, 422: {"model": Problem}},
             summary="Create a staff account (admins); returns its TOTP secret once")
def create_user(body: UserIn, request: Request, who: StaffMember = Depends(writer)):
    admin(who)
    created = deps(request).staff.create(body.username, body.password, body.role, body.teams,
                                         display_name=body.display_name, by=who.actor,
                                         client=client_of(request))
    return NewUserOut(**_user(created.member).dict(), totp_secret=created.totp_secret,
                      provisioning_uri=created.provisioning_uri)


@router.post("/users/{staff_id}/disable", response_model=UserOut,
             responses={**ERRORS, 404: {"model": Problem}, 422: {"model": Problem}},
             summary="Disable an account (its sessions end at once)")
def disable_user(staff_id: RowId, request: Request, who: StaffMember = Depends(writer)):
    admin(who)
    return _user(deps(request).staff.set_disabled(staff_id, True, by=who.actor, client=client_of(request)))


@router.post("/users/{staff_id}/enable", response_model=UserOut,
             responses={**ERRORS, 404: {"model": Problem}}, summary="Enable an account again")
def enable_user(staff_id: RowId, request: Request, who: StaffMember = Depends(writer)):
    admin(who)
    return _user(deps(request).staff.set_disabled(staff_id, False, by=who.actor, client=client_of(request)))


@router.get("/audit", response_model=List[AuditOut], responses=ERRORS,
            summary="The audit log, newest first (admins)")
def audit_log(request: Request, who: StaffMember = Depends(member),
              conversation_id: Optional[str] = Query(None, max_length=64),
              actor: Optional[str] = Query(None, max_length=64),
              action: Optional[str] = Query(None, max_length=40),
              before_id: Optional[int] = Query(None, ge=1, le=2**62),
              limit: int = Query(100, ge=1, le=500)):
    admin(who)
    entries = deps(request).audit.entries(conversation_id=conversation_id, actor=actor, action=action,
                                          before_id=before_id, limit=limit)
    return [AuditOut(**e.__dict__) for e in entries]


@router.get("/audit/verify", response_model=ChainOut, responses=ERRORS,
            summary="Recompute the audit log's hash chain (admins)")
def audit_verify(request: Request, who: StaffMember = Depends(member)):
    admin(who)
    check = deps(request).audit.verify()
    return ChainOut(ok=check.ok, rows=check.rows, first_bad_id=check.first_bad_id, problem=check.problem)


@router.get("/settings", response_model=SettingsOut, responses=ERRORS, summary="Inbox settings (admins)")
def get_settings(request: Request, who: StaffMember = Depends(member)):
    admin(who)
    return SettingsOut(**deps(request).inbox.settings().__dict__)


@router.put("/settings", response_model=SettingsOut, responses={**ERRORS, 422: {"model": Problem}},
            summary="Change inbox settings (admins)")
def put_settings(body: SettingsIn, request: Request, who: StaffMember = Depends(writer)):
    admin(who)
    values = {k: v for k, v in body.dict().items() if v is not None}
    settings = deps(request).inbox.update_settings(who.actor, values, client_of(request))
    return SettingsOut(**settings.__dict__)
