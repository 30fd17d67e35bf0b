"""Media patients sent in the chat (clinic/messaging/media.py), for staff: where they appear
in the ticket's transcript (templates/_media.html) and the route that serves them, decrypted
on the fly and never stored in clear.

Who may see them: whoever may see the ticket (``Inbox.ticket``) *and* whose role may see
clinical content (clinic/inbox/media_access.py: supervisors and nurse-team agents); others
get 403 here and "photo (not shown to your role)" on the page. Only a media of that ticket's
conversation is served. Each view writes ``media_viewed`` (the media's id, never its content
or name) to the inbox's audit log in the same transaction that reads it, so no media leaves
without its audit row. Answers carry the type the row records (images, audio and video
inline, so the page's ``<img>``/``<audio>``/``<video>`` can show them; anything else as an
attachment), ``Cache-Control: no-store`` and ``X-Content-Type-Options: nosniff``; a type
that is not on the inline list is always an attachment (``application/octet-stream``).
"""

from __future__ import annotations

import re
from typing import Dict, List, Optional, Tuple

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from clinic.inbox.media_access import may_see_media
from clinic.inbox.model import Forbidden, NotFound
from clinic.inbox.staff import StaffMember
from clinic.messaging.media import INLINE_TYPES, MediaInfo, MediaStore
from inbox.context import current_member, deps
from inbox.schemas import RowId
from inbox.ticket_files import attachment_disposition, open_audited, private_headers

router = APIRouter(prefix="/inbox", include_in_schema=False)
MEDIA_ID = re.compile(r"^med_[0-9a-f]{16}$")


def _store(request: Request) -> Optional[MediaStore]:
    """Set by ``python -m inbox`` (inbox/wiring.py); None where media are not wired."""
    return getattr(request.app.state, "media", None)


def ticket_media(request: Request, conversation_id: str) -> Tuple[Dict[str, MediaInfo], List[MediaInfo]]:
    """The conversation's media by the patient's message id (for the transcript), and all of
    them in order (those whose message the transcript does not show are listed apart)."""
    store = _store(request)
    if store is None:
        return {}, []
    found = store.for_conversation(conversation_id)
    return {info.wamid: info for info in found}, found


@router.get("/tickets/{ticket_id}/media/{media_id}")
def view(ticket_id: RowId, media_id: str, request: Request,
         member: StaffMember = Depends(current_member)) -> Response:
    d, store = deps(request), _store(request)
    if store is None or not MEDIA_ID.match(media_id):
        raise NotFound("no such media")
    ticket = d.inbox.ticket(member.actor, ticket_id)  # Forbidden / NotFound as for the ticket itself
    if not may_see_media(member.actor):
        raise Forbidden("your role does not see patients' photos, voice notes or documents")
    opened = open_audited(request, member, ticket, sessions=store.sessions, read=store.read,
                          item_id=media_id, action="media_viewed", noun="media")
    if isinstance(opened, Response):
        return opened
    info, content = opened
    media_type = (info.mime_type or "").split(";")[0].strip().lower()
    inline = media_type in INLINE_TYPES
    disposition = attachment_disposition(info.download_name)
    if inline:
        disposition = "inline" + disposition[len("attachment"):]
    return Response(content, media_type=media_type if inline else "application/octet-stream",
                    headers=private_headers(disposition))
