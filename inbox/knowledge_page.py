"""The staff inbox's documents page (issue 17), for administrators: upload a document (file
or page address), read the passages extracted from it, approve or reject the version with a
note, retire the document.

Administrators review content because they already own the clinic's settings and do not
see patient conversations: a document page shows no patient data, so no new role was needed
and every existing role check stays as it was. Every upload, view of a version, approval,
rejection and retirement is written to the audit log in the same transaction as the change
(ids, states and the reviewer's note, never document text).
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse

from clinic.clock import utcnow
from clinic.inbox import audit
from clinic.inbox.staff import StaffMember
from clinic.knowledge.ingest import IngestError, fetch_page
from clinic.knowledge.service import KnowledgeBase, ReviewError
from inbox.context import client_of, deps
from inbox.pages import admin_member, admin_writer, back, render
from inbox.schemas import RowId

router = APIRouter(prefix="/inbox", include_in_schema=False)
PAGE = "/inbox/knowledge"
MAX_UPLOAD = 20_000_000


def _kb(request: Request) -> KnowledgeBase:
    return KnowledgeBase(deps(request).inbox.sessions)  # the clinic database the inbox uses


@router.get("/knowledge", response_class=HTMLResponse)
def knowledge_page(request: Request, member: StaffMember = Depends(admin_member)):
    return render(request, "knowledge.html", member=member, documents=_kb(request).documents())


@router.post("/knowledge")
async def upload(request: Request, member: StaffMember = Depends(admin_writer)):
    form = await request.form()
    kb = _kb(request)
    title = str(form.get("title", ""))[:200]
    topic = str(form.get("topic", "") or "general")[:64]
    url = str(form.get("url", "")).strip()[:500] or None
    document_id = str(form.get("document_id", "")).strip()
    file = form.get("file")
    try:
        if url:
            data, name = fetch_page(url), url  # fetched now, by the clinic's server; never at answer time
        elif file is not None and getattr(file, "filename", ""):
            data, name = await file.read(MAX_UPLOAD + 1), file.filename
            if len(data) > MAX_UPLOAD:
                raise IngestError("The file is larger than 20 MB.")
        else:
            raise IngestError("Choose a file or give a page address.")

        def run():
            with audit.transaction(kb.sessions) as session:
                version = kb.upload(session, data=data, name=name[:300], by=member.username, title=title,
                                    document_id=int(document_id) if document_id.isdigit() else None,
                                    url=url, topic=topic)
                audit.append(session, member.actor, "knowledge_uploaded", at=utcnow(), client=client_of(request),
                             detail=f"document {version.document_id} version {version.id} kind={version.kind} "
                                    f"passages={version.passages} phi_flagged={version.phi_passages}")
                return version

        version = audit.retrying(run)
    except (IngestError, ReviewError) as refusal:
        return back(request, PAGE, f"Not uploaded: {refusal}")
    return back(request, f"{PAGE}/versions/{version.id}",
                f"Uploaded as version {version.number} (draft): {version.passages} passages. Review them below.")


@router.get("/knowledge/versions/{version_id}", response_class=HTMLResponse)
def version_page(version_id: RowId, request: Request, member: StaffMember = Depends(admin_member)):
    kb = _kb(request)
    version = kb.version(version_id)
    if version is None:
        return back(request, PAGE, f"Version {version_id} does not exist.")
    with audit.transaction(kb.sessions) as session:
        audit.append(session, member.actor, "knowledge_version_viewed", at=utcnow(), client=client_of(request),
                     detail=f"document {version.document_id} version {version.id}")
    return render(request, "knowledge_version.html", member=member, version=version,
                  passages=kb.passages(version_id), document=kb.document(version.document_id))


def _review(request: Request, member: StaffMember, version_id: int, action: str, note: str) -> str:
    kb = _kb(request)

    def run() -> str:
        with audit.transaction(kb.sessions) as session:
            if action == "approve":
                version = kb.approve(session, version_id, member.username, note)
            else:
                version = kb.reject(session, version_id, member.username, note)
            audit.append(session, member.actor, f"knowledge_{version.state}", at=utcnow(), client=client_of(request),
                         detail=f"document {version.document_id} version {version.id}"
                                + (f" note: {version.note}" if version.note else ""))
        if action == "approve":
            return f"Version {version.number} approved: the assistant answers from it now."
        return f"Version {version.number} rejected."

    try:
        return audit.retrying(run)
    except ReviewError as refusal:
        return str(refusal)


@router.post("/knowledge/versions/{version_id}/{action}")
async def review(version_id: RowId, action: str, request: Request, member: StaffMember = Depends(admin_writer)):
    if action not in ("approve", "reject"):
        return back(request, PAGE, "Unknown action.")
    form = await request.form()
    message = _review(request, member, version_id, action, str(form.get("note", ""))[:500])
    return back(request, f"{PAGE}/versions/{version_id}", message)


@router.post("/knowledge/documents/{document_id}/retire")
def retire(document_id: RowId, request: Request, member: StaffMember = Depends(admin_writer)):
    kb = _kb(request)

    def run() -> str:
        with audit.transaction(kb.sessions) as session:
            document = kb.retire(session, document_id, member.username)
            audit.append(session, member.actor, "knowledge_retired", at=utcnow(), client=client_of(request),
                         detail=f"document {document.id}")
        return f"“{document.title}” retired: the assistant no longer answers from it."

    try:
        return back(request, PAGE, audit.retrying(run))
    except ReviewError as refusal:
        return back(request, PAGE, str(refusal))
