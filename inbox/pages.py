"""Server-rendered pages (Jinja2 with autoescaping: patient text is shown as text, never
as HTML). No JavaScript, except the ticket page's voice calls (inbox/calls.py, which need the
browser's WebRTC): forms post, the server redirects (303) back."""

from __future__ import annotations

from typing import Optional

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from clinic.handoff.teams import Team
from clinic.inbox.media_access import may_see_media
from clinic.inbox.model import Forbidden, InboxError, Role, TicketState
from clinic.inbox.service import RESOLUTION_REASONS
from clinic.inbox.staff import LoginFailed, StaffMember
from inbox.calls import ticket_calls
from inbox.context import check_csrf, client_of, current_member, deps, session_of
from inbox.documents import ticket_documents
from inbox.media import ticket_media
from inbox.schemas import RowId

router = APIRouter(prefix="/inbox", include_in_schema=False)
TEAMS = [t.value for t in Team]


def page_member(request: Request) -> StaffMember:
    return current_member(request)


async def page_writer(request: Request) -> StaffMember:
    """Logged in first (else the login page), then the form's CSRF token (else 403)."""
    member = current_member(request)
    await check_csrf(request)
    return member


def render(request: Request, template: str, status_code: int = 200, **context) -> HTMLResponse:
    session = session_of(request)
    context.setdefault("member", None)
    context.update(csrf=session.csrf, flash=session.pop_flash(), teams=TEAMS)
    return deps(request).templates.TemplateResponse(request, template, context, status_code=status_code)


def back(request: Request, url: str, message: Optional[str] = None) -> RedirectResponse:
    if message:
        session_of(request).say(message)
    return RedirectResponse(url, status_code=303)


# ── login ───────────────────────────────────────────────────────────────────────────────
@router.get("/", response_class=HTMLResponse)
def home(request: Request, member: StaffMember = Depends(page_member)):
    return RedirectResponse("/inbox/admin/users" if member.role is Role.ADMIN else "/inbox/queues", status_code=303)


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request):
    return render(request, "login.html")


@router.post("/login", dependencies=[Depends(check_csrf)])
def login(request: Request, username: str = Form("", max_length=200), password: str = Form("", max_length=300)):
    d = deps(request)
    try:
        member = d.staff.check_password(username, password, client_of(request))
    except LoginFailed as exc:
        return render(request, "login.html", status_code=401, error=str(exc))
    request.state.session = d.codec.start(member.id, "password", member.session_epoch)
    return RedirectResponse("/inbox/login/totp", status_code=303)


@router.get("/login/totp", response_class=HTMLResponse)
def totp_page(request: Request):
    session = session_of(request)
    if session.stage != "password":
        return back(request, "/inbox/login")
    return render(request, "totp.html", provisioning=deps(request).staff.provisioning(session.staff_id))


@router.post("/login/totp", dependencies=[Depends(check_csrf)])
def totp(request: Request, code: str = Form("", max_length=20)):
    d, session = deps(request), session_of(request)
    if session.stage != "password" or session.staff_id is None:
        return back(request, "/inbox/login", "Please enter your password first.")
    try:
        member = d.staff.check_totp(session.staff_id, code, client_of(request))
    except LoginFailed as exc:
        return render(request, "totp.html", status_code=401, error=str(exc),
                      provisioning=d.staff.provisioning(session.staff_id))
    request.state.session = d.codec.start(member.id, "full", member.session_epoch)
    return RedirectResponse("/inbox/", status_code=303)


@router.post("/logout", dependencies=[Depends(check_csrf)])
def logout(request: Request):
    session, d = session_of(request), deps(request)
    if session.stage == "full" and session.staff_id is not None:
        try:
            who = current_member(request)
            d.staff.end_sessions(who.id, by=who.actor, client=client_of(request))
        except Exception:  # noqa: BLE001 - logging out always ends the cookie below
            pass
    request.state.session = d.codec.load(None)
    return back(request, "/inbox/login", "You are logged out.")


# ── queues and tickets ──────────────────────────────────────────────────────────────────
@router.get("/queues", response_class=HTMLResponse)
def queues(request: Request, member: StaffMember = Depends(page_member)):
    overview = deps(request).inbox.overview(member.actor)  # one read, one language query
    return render(request, "queues.html", member=member, queues=overview.queues, mine=overview.mine,
                  resolved=overview.resolved, overdue_minutes=overview.overdue_minutes)


@router.get("/tickets/{ticket_id}", response_class=HTMLResponse)
def ticket(ticket_id: RowId, request: Request, member: StaffMember = Depends(page_member)):
    d = deps(request)
    page = d.inbox.open_ticket_page(member.actor, ticket_id, client_of(request))
    assignable = []
    if member.role is Role.SUPERVISOR:
        assignable = [m for m in d.staff.all() if not m.disabled and m.role is not Role.ADMIN]
    media_by_wamid, media = ticket_media(request, page.ticket.conversation_id)
    shown = {item.wamid for item in page.timeline if item.wamid}
    return render(request, "ticket.html", member=member, page=page, t=page.ticket, W=TicketState.WAITING,
                  media_by_wamid=media_by_wamid, media_apart=[m for m in media if m.wamid not in shown],
                  may_see_media=may_see_media(member.actor),
                  A=TicketState.ASSIGNED, R=TicketState.RESOLVED, reasons=RESOLUTION_REASONS,
                  assignable=assignable, tasks=d.inbox.tasks_for_ticket(member.actor, ticket_id),
                  templates=d.inbox.template_offers(page.ticket.language),
                  documents=ticket_documents(request, page.ticket.conversation_id),
                  calls=ticket_calls(request, page.ticket.conversation_id, page.timeline))


def _ticket_action(request: Request, ticket_id: RowId, run) -> RedirectResponse:
    url = f"/inbox/tickets/{ticket_id}"
    try:
        result = run()
    except Forbidden:
        raise
    except InboxError as exc:
        return back(request, url, str(exc))
    message = getattr(result, "warning", None)
    if getattr(result, "delivery", None) in ("refused", "failed"):
        message = f"Reply not delivered: {result.delivery_detail}"
    if getattr(result, "ticket", None) is not None and result.ticket.state is TicketState.RESOLVED:
        return back(request, "/inbox/queues", message or f"Ticket {ticket_id} resolved; the assistant answers again.")
    try:
        deps(request).inbox.ticket(current_member(request).actor, ticket_id)
    except Forbidden:  # transferred to a team we are not in
        return back(request, "/inbox/queues", message or f"Ticket {ticket_id} transferred.")
    return back(request, url, message)


@router.post("/tickets/{ticket_id}/claim")
def claim(ticket_id: RowId, request: Request, member: StaffMember = Depends(page_writer)):
    return _ticket_action(request, ticket_id,
                          lambda: deps(request).inbox.claim(member.actor, ticket_id, client_of(request)))


@router.post("/tickets/{ticket_id}/release")
def release(ticket_id: RowId, request: Request, member: StaffMember = Depends(page_writer)):
    return _ticket_action(request, ticket_id,
                          lambda: deps(request).inbox.release(member.actor, ticket_id, client_of(request)))


@router.post("/tickets/{ticket_id}/assign")
def assign(ticket_id: RowId, request: Request, staff_id: RowId = Form(...),
           member: StaffMember = Depends(page_writer)):
    return _ticket_action(request, ticket_id, lambda: deps(request).inbox.assign(
        member.actor, ticket_id, staff_id, client_of(request)))


@router.post("/tickets/{ticket_id}/transfer")
def transfer(ticket_id: RowId, request: Request, team: str = Form(..., max_length=20),
             member: StaffMember = Depends(page_writer)):
    return _ticket_action(request, ticket_id, lambda: deps(request).inbox.transfer(
        member.actor, ticket_id, team, client_of(request)))


@router.post("/tickets/{ticket_id}/resolve")
def resolve(ticket_id: RowId, request: Request, reason: str = Form(..., max_length=40),
            member: StaffMember = Depends(page_writer)):
    return _ticket_action(request, ticket_id, lambda: deps(request).inbox.resolve(
        member.actor, ticket_id, reason, client_of(request)))


@router.post("/tickets/{ticket_id}/reply")
def reply(ticket_id: RowId, request: Request, text: str = Form("", max_length=5000),
          member: StaffMember = Depends(page_writer)):
    return _ticket_action(request, ticket_id, lambda: deps(request).inbox.reply(
        member.actor, ticket_id, text, client_of(request)))


@router.post("/tickets/{ticket_id}/template")
async def template(ticket_id: RowId, request: Request, member: StaffMember = Depends(page_writer)):
    form = await request.form()
    name = str(form.get("name", ""))[:100]
    values = [str(v)[:300] for v in form.getlist("values")][:20]
    return _ticket_action(request, ticket_id, lambda: deps(request).inbox.send_template(
        member.actor, ticket_id, name, values, client_of(request)))


@router.post("/tickets/{ticket_id}/note")
def note(ticket_id: RowId, request: Request, text: str = Form("", max_length=5000),
         member: StaffMember = Depends(page_writer)):
    return _ticket_action(request, ticket_id, lambda: deps(request).inbox.add_note(
        member.actor, ticket_id, text, client_of(request)))


@router.post("/tickets/{ticket_id}/task")
def task(ticket_id: RowId, request: Request, note: str = Form("", max_length=5000),
         member: StaffMember = Depends(page_writer)):
    inbox = deps(request).inbox

    def run():
        view = inbox.ticket(member.actor, ticket_id)
        inbox.request_callback(view.conversation_id, view.team, note, actor=member.actor,
                               client=client_of(request), ticket_id=ticket_id)
    return _ticket_action(request, ticket_id, run)


# ── tasks ───────────────────────────────────────────────────────────────────────────────
@router.get("/tasks", response_class=HTMLResponse)
def tasks(request: Request, member: StaffMember = Depends(page_member)):
    return render(request, "tasks.html", member=member, tasks=deps(request).inbox.tasks(member.actor))


@router.post("/tasks/{task_id}/done")
def task_done(task_id: RowId, request: Request, member: StaffMember = Depends(page_writer)):
    try:
        deps(request).inbox.complete_task(member.actor, task_id, client_of(request))
    except Forbidden:
        raise
    except InboxError as exc:
        return back(request, "/inbox/tasks", str(exc))
    return back(request, "/inbox/tasks", f"Task {task_id} done.")


# ── admin ───────────────────────────────────────────────────────────────────────────────
def admin_member(request: Request) -> StaffMember:
    member = current_member(request)
    if member.role is not Role.ADMIN:
        raise Forbidden("administrators only")
    return member


async def admin_writer(request: Request) -> StaffMember:
    member = admin_member(request)
    await check_csrf(request)
    return member


@router.get("/admin/users", response_class=HTMLResponse)
def users(request: Request, member: StaffMember = Depends(admin_member)):
    return render(request, "users.html", member=member, users=deps(request).staff.all(),
                  roles=[r.value for r in Role])


@router.post("/admin/users")
async def create_user(request: Request, member: StaffMember = Depends(admin_writer)):
    form = await request.form()
    d = deps(request)
    try:
        created = d.staff.create(str(form.get("username", ""))[:100], str(form.get("password", ""))[:300],
                                 Role(form.get("role")) if form.get("role") in [r.value for r in Role] else None,
                                 [str(t) for t in form.getlist("teams")][:10],
                                 display_name=str(form.get("display_name", ""))[:100] or None,
                                 by=member.actor, client=client_of(request))
    except (InboxError, ValueError) as exc:
        return render(request, "users.html", status_code=422, member=member, users=d.staff.all(),
                      roles=[r.value for r in Role], error=str(exc))
    return render(request, "users.html", member=member, users=d.staff.all(), roles=[r.value for r in Role],
                  created=created)


@router.post("/admin/users/{staff_id}/{change}")
def change_user(staff_id: RowId, change: str, request: Request, member: StaffMember = Depends(admin_writer)):
    if change not in ("disable", "enable"):
        return back(request, "/inbox/admin/users", "Unknown change.")
    try:
        deps(request).staff.set_disabled(staff_id, change == "disable", by=member.actor, client=client_of(request))
    except InboxError as exc:
        return back(request, "/inbox/admin/users", str(exc))
    return back(request, "/inbox/admin/users", f"Account {change}d.")


@router.get("/admin/audit", response_class=HTMLResponse)
def audit(request: Request, member: StaffMember = Depends(admin_member), conversation: str = "",
          actor: str = "", action: str = "", before: Optional[int] = None):
    d = deps(request)
    entries = d.audit.entries(conversation_id=conversation[:64] or None, actor=actor[:64] or None,
                              action=action[:40] or None, before_id=before, limit=100)
    return render(request, "audit.html", member=member, entries=entries, chain=d.audit.verify(),
                  filters={"conversation": conversation, "actor": actor, "action": action})


@router.get("/admin/settings", response_class=HTMLResponse)
def settings(request: Request, member: StaffMember = Depends(admin_member)):
    return render(request, "settings.html", member=member, settings=deps(request).inbox.settings())


@router.post("/admin/settings")
def save_settings(request: Request, overdue_minutes: str = Form("", max_length=10),
                  idle_timeout_minutes: str = Form("", max_length=10),
                  member: StaffMember = Depends(admin_writer)):
    try:
        deps(request).inbox.update_settings(member.actor, {"overdue_minutes": overdue_minutes,
                                                           "idle_timeout_minutes": idle_timeout_minutes},
                                            client_of(request))
    except InboxError as exc:
        return back(request, "/inbox/admin/settings", str(exc))
    return back(request, "/inbox/admin/settings", "Settings saved.")
