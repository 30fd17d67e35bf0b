"""What staff open from a ticket — documents sent through an upload link (inbox/documents.py)
and media sent in the chat (inbox/media.py) — read, decrypted and audited in one place.

The file is read and its audit row written in the same transaction (``audit.transaction``,
retried as the audit log's appends are), so nothing leaves without its row; only a file of
the ticket's own conversation is found; a file that its key cannot open is a 500 page naming
the key problem, never garbage. Answers are never cached and never sniffed.
"""

from __future__ import annotations

import re
import unicodedata
import urllib.parse
from typing import Any, Callable, Dict, Optional, Tuple, Union

from fastapi import Request
from fastapi.responses import Response
from sqlalchemy.orm import Session, sessionmaker

from clinic.clock import utcnow
from clinic.inbox import audit
from clinic.inbox.model import NotFound
from clinic.inbox.service import TicketView
from clinic.inbox.staff import StaffMember
from clinic.portal.uploads import DocumentKeyError
from inbox.context import client_of, deps

Reader = Callable[[Session, str, str], Optional[Tuple[Any, bytes]]]


def attachment_disposition(name: str) -> str:
    """Content-Disposition for any file name (RFC 6266: an ASCII fallback and the UTF-8 name)."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")
    ascii_name = re.sub(r'[^A-Za-z0-9._ -]', "_", ascii_name).strip() or "document"
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{urllib.parse.quote(name, safe='')}"


def private_headers(disposition: str) -> Dict[str, str]:
    return {"Content-Disposition": disposition, "Cache-Control": "no-store",
            "X-Content-Type-Options": "nosniff"}


def open_audited(request: Request, member: StaffMember, ticket: TicketView, *, sessions: sessionmaker,
                 read: Reader, item_id: str, action: str, noun: str) -> Union[Tuple[Any, bytes], Response]:
    """(info, bytes) of ``item_id`` in the ticket's conversation, its ``action`` row in the
    audit log; or the error page when its key cannot open it."""
    now = utcnow()

    def run() -> Tuple[Any, bytes]:
        with audit.transaction(sessions) as session:
            found = read(session, item_id, ticket.conversation_id)
            if found is None:
                raise NotFound(f"no such {noun} in this conversation")
            audit.append(session, member.actor, action, at=now, conversation_id=ticket.conversation_id,
                         ticket_id=ticket.id, detail=item_id, client=client_of(request))
            return found

    try:
        return audit.retrying(run)
    except DocumentKeyError as error:  # media keys are document keys (MediaKeyError)
        return deps(request).templates.TemplateResponse(request, "error.html", {
            "status": 500, "message": f"This {noun} cannot be opened: {error}.", "member": member},
            status_code=500)
