"""Documents patients sent through a secure upload link (clinic/portal/uploads.py), for staff:
the list on the ticket page (templates/_documents.html) and the download, decrypted on the
fly and never stored in clear.

Who may download: whoever may see the ticket (``Inbox.ticket``: the ticket's team or its
assignee, supervisors; not administrators), and only a document of that ticket's
conversation. Each download writes ``document_downloaded`` (the upload's id, never its
name) to the inbox's audit log in the same transaction that reads the document, so a
document cannot leave without its audit row. The file is always sent as an attachment with
its sniffed type: never rendered inside the inbox's pages.
"""

from __future__ import annotations

import re
from typing import List, Optional

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from clinic.inbox.model import NotFound
from clinic.inbox.staff import StaffMember
from clinic.portal.uploads import UploadInfo, Uploads
from inbox.context import current_member, deps
from inbox.schemas import RowId
from inbox.ticket_files import attachment_disposition, open_audited, private_headers

router = APIRouter(prefix="/inbox", include_in_schema=False)
UPLOAD_ID = re.compile(r"^pup_[0-9a-f]{16}$")


def _uploads(request: Request) -> Optional[Uploads]:
    """Set by ``python -m inbox`` (inbox/wiring.py); None where uploads are not wired."""
    return getattr(request.app.state, "documents", None)


def ticket_documents(request: Request, conversation_id: str) -> Optional[List[UploadInfo]]:
    """The conversation's documents for the ticket page (None: the section is not shown)."""
    uploads = _uploads(request)
    return uploads.for_conversation(conversation_id) if uploads is not None else None


@router.get("/tickets/{ticket_id}/documents/{upload_id}")
def download(ticket_id: RowId, upload_id: str, request: Request,
             member: StaffMember = Depends(current_member)) -> Response:
    d, uploads = deps(request), _uploads(request)
    if uploads is None or not UPLOAD_ID.match(upload_id):
        raise NotFound("no such document")
    view = d.inbox.ticket(member.actor, ticket_id)  # Forbidden / NotFound as for the ticket itself
    opened = open_audited(request, member, view, sessions=uploads.sessions, read=uploads.read,
                          item_id=upload_id, action="document_downloaded", noun="document")
    if isinstance(opened, Response):
        return opened
    info, content = opened
    return Response(content, media_type=info.media_type,
                    headers=private_headers(attachment_disposition(info.name)))
