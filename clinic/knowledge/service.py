"""The review workflow of the clinic's documents: upload a version (draft), approve or
reject it with a note, retire the document.

Every change takes the caller's session, so the inbox writes the audit row in the same
transaction (an approval without its audit row cannot happen). Rules kept here:

* only a draft can be approved or rejected; a rejection needs a note;
* a version any of whose passages the PHI guard flags cannot be approved (the reviewer fixes
  the document and uploads it again);
* approving a version supersedes the document's previously approved one in the same
  transaction: until the new one is approved, the old one keeps answering;
* retiring a document retires its approved version at once; a retired document takes no new
  versions (the clinic uploads it as a new document).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
from collections import Counter
from typing import Callable, List, Optional

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from clinic import phi_guard
from clinic.clock import utcnow
from clinic.knowledge.ingest import IngestError, RawPassage, extract, kind_of
from clinic.knowledge.tables import KnowledgeDocumentRow, KnowledgePassageRow, KnowledgeVersionRow
from clinic.language import detection
from clinic.language.tokens import terms

TITLE_MAX = 200
NOTE_MAX = 500


class ReviewError(ValueError):
    """A workflow step that is not allowed now; the message is for staff."""


@dataclasses.dataclass(frozen=True)
class PassageView:
    id: int
    seq: int
    language: str
    locator: str
    text: str
    phi_rules: Optional[str]


@dataclasses.dataclass(frozen=True)
class VersionView:
    id: int
    document_id: int
    document_title: str
    number: int
    state: str
    kind: str
    source_name: str
    url: Optional[str]
    uploaded_at: dt.datetime
    uploaded_by: str
    reviewed_at: Optional[dt.datetime]
    reviewed_by: Optional[str]
    note: Optional[str]
    passages: int
    languages: str
    phi_passages: int


@dataclasses.dataclass(frozen=True)
class DocumentView:
    id: int
    title: str
    topic: str
    retired_at: Optional[dt.datetime]
    versions: List[VersionView]

    @property
    def approved(self) -> Optional[VersionView]:
        return next((v for v in self.versions if v.state == "approved"), None)


class KnowledgeBase:
    def __init__(self, session_factory: sessionmaker, clock: Callable[[], dt.datetime] = utcnow) -> None:
        self.sessions = session_factory
        self._clock = clock

    # ── upload ─────────────────────────────────────────────────────────────────────────
    def upload(self, session: Session, *, data: bytes, name: str, by: str, title: Optional[str] = None,
               document_id: Optional[int] = None, url: Optional[str] = None, topic: str = "general",
               kind: Optional[str] = None) -> VersionView:
        """A new draft version: of a new document (``title``) or of ``document_id``.
        Raises IngestError (scanned PDF, unreadable file) or ReviewError."""
        kind = kind or kind_of(name, data)
        raw = extract(data, kind)
        now = self._clock()
        if document_id is None:
            title = (title or "").strip()
            if not title:
                raise ReviewError("A new document needs a title (patients see it as the source).")
            document = KnowledgeDocumentRow(title=title[:TITLE_MAX], topic=(topic or "general")[:64],
                                            created_at=now, created_by=by)
            session.add(document)
            session.flush()
        else:
            document = session.get(KnowledgeDocumentRow, document_id)
            if document is None:
                raise ReviewError(f"Document {document_id} does not exist.")
            if document.retired_at is not None:
                raise ReviewError("This document is retired; upload the file as a new document.")
            if title and title.strip():
                document.title = title.strip()[:TITLE_MAX]
        number = (session.execute(select(func.max(KnowledgeVersionRow.number))
                                  .where(KnowledgeVersionRow.document_id == document.id)).scalar() or 0) + 1
        version = KnowledgeVersionRow(
            document_id=document.id, number=number, state="draft", kind=kind, source_name=name[:300],
            url=url[:500] if url else None, sha256=hashlib.sha256(data).hexdigest(),
            uploaded_at=now, uploaded_by=by, changed_at=now)
        session.add(version)
        session.flush()
        for seq, (passage, language) in enumerate(zip(raw, _languages(raw), strict=True), start=1):
            findings = phi_guard.check(passage.text)
            session.add(KnowledgePassageRow(
                version_id=version.id, seq=seq, language=language, locator=passage.locator[:200],
                text=passage.text, terms=" ".join(_search_terms(passage)),
                phi_rules=",".join(phi_guard.rules_of(findings)) or None))
        session.flush()
        return self._version_view(session, version)

    # ── review ─────────────────────────────────────────────────────────────────────────
    def approve(self, session: Session, version_id: int, by: str, note: Optional[str] = None) -> VersionView:
        version = self._draft(session, version_id)
        document = session.get(KnowledgeDocumentRow, version.document_id)
        if document.retired_at is not None:
            raise ReviewError("This document is retired.")
        flagged = session.execute(select(func.count(KnowledgePassageRow.id)).where(
            KnowledgePassageRow.version_id == version.id, KnowledgePassageRow.phi_rules.is_not(None))).scalar_one()
        # Checked again now, not only at upload: the term list may have changed since.
        for passage in session.scalars(select(KnowledgePassageRow).where(KnowledgePassageRow.version_id == version.id)):
            if phi_guard.check(passage.text):
                flagged = max(flagged, 1)
        if flagged:
            raise ReviewError("The PHI guard flags passages of this version as health information about a "
                              "patient; it cannot be approved. Fix the document and upload it again.")
        now = self._clock()
        for previous in session.scalars(select(KnowledgeVersionRow).where(
                KnowledgeVersionRow.document_id == version.document_id, KnowledgeVersionRow.state == "approved")):
            previous.state, previous.changed_at = "superseded", now
        version.state, version.reviewed_at, version.reviewed_by, version.changed_at = "approved", now, by, now
        version.note = (note or "").strip()[:NOTE_MAX] or None
        session.flush()
        return self._version_view(session, version)

    def reject(self, session: Session, version_id: int, by: str, note: str) -> VersionView:
        note = (note or "").strip()
        if not note:
            raise ReviewError("Say why the version is rejected (the note is kept with it).")
        version = self._draft(session, version_id)
        now = self._clock()
        version.state, version.reviewed_at, version.reviewed_by, version.changed_at = "rejected", now, by, now
        version.note = note[:NOTE_MAX]
        session.flush()
        return self._version_view(session, version)

    def retire(self, session: Session, document_id: int, by: str) -> DocumentView:
        document = session.get(KnowledgeDocumentRow, document_id)
        if document is None:
            raise ReviewError(f"Document {document_id} does not exist.")
        if document.retired_at is not None:
            raise ReviewError("This document is already retired.")
        now = self._clock()
        document.retired_at, document.retired_by = now, by
        for version in session.scalars(select(KnowledgeVersionRow).where(
                KnowledgeVersionRow.document_id == document_id,
                KnowledgeVersionRow.state.in_(("approved", "draft")))):
            version.state, version.changed_at = "retired", now
        session.flush()
        return self._document_view(session, document)

    def _draft(self, session: Session, version_id: int) -> KnowledgeVersionRow:
        version = session.get(KnowledgeVersionRow, version_id)
        if version is None:
            raise ReviewError(f"Version {version_id} does not exist.")
        if version.state != "draft":
            raise ReviewError(f"Version {version_id} is {version.state}; only a draft can be reviewed.")
        return version

    # ── reading ────────────────────────────────────────────────────────────────────────
    def documents(self) -> List[DocumentView]:
        with self.sessions() as session:
            rows = session.scalars(select(KnowledgeDocumentRow).order_by(KnowledgeDocumentRow.id)).all()
            return [self._document_view(session, row) for row in rows]

    def document(self, document_id: int) -> Optional[DocumentView]:
        with self.sessions() as session:
            row = session.get(KnowledgeDocumentRow, document_id)
            return self._document_view(session, row) if row else None

    def version(self, version_id: int) -> Optional[VersionView]:
        with self.sessions() as session:
            row = session.get(KnowledgeVersionRow, version_id)
            return self._version_view(session, row) if row else None

    def passages(self, version_id: int) -> List[PassageView]:
        with self.sessions() as session:
            rows = session.scalars(select(KnowledgePassageRow).where(KnowledgePassageRow.version_id == version_id)
                                   .order_by(KnowledgePassageRow.seq))
            return [PassageView(r.id, r.seq, r.language, r.locator, r.text, r.phi_rules) for r in rows]

    def _document_view(self, session: Session, row: KnowledgeDocumentRow) -> DocumentView:
        versions = session.scalars(select(KnowledgeVersionRow).where(KnowledgeVersionRow.document_id == row.id)
                                   .order_by(KnowledgeVersionRow.number.desc())).all()
        return DocumentView(row.id, row.title, row.topic, row.retired_at,
                            [self._version_view(session, v, row) for v in versions])

    def _version_view(self, session: Session, row: KnowledgeVersionRow,
                      document: Optional[KnowledgeDocumentRow] = None) -> VersionView:
        document = document or session.get(KnowledgeDocumentRow, row.document_id)
        stats = session.execute(select(KnowledgePassageRow.language, KnowledgePassageRow.phi_rules)
                                .where(KnowledgePassageRow.version_id == row.id)).all()
        languages = ", ".join(sorted({language for language, _ in stats}))
        return VersionView(row.id, row.document_id, document.title, row.number, row.state, row.kind,
                           row.source_name, row.url, row.uploaded_at, row.uploaded_by, row.reviewed_at,
                           row.reviewed_by, row.note, len(stats), languages,
                           sum(1 for _, rules in stats if rules))


def _search_terms(passage: RawPassage) -> List[str]:
    """The passage's words, and its heading's: "Visiting hours" says what the paragraph under
    it is about even when the paragraph itself says "Visitors are welcome … 14:00 to 19:00"."""
    heading = [] if passage.locator.startswith("page ") or passage.locator == "text" else terms(passage.locator)
    return terms(passage.text) + heading


def _languages(passages: List[RawPassage]) -> List[str]:
    """Each passage's language; one too short to tell (a list item, a number) takes the
    document's most common language."""
    detected = [detection.detect(p.text).language for p in passages]
    common = Counter(code for code in detected if code).most_common(1)
    fallback = common[0][0] if common else "en"
    return [code or fallback for code in detected]


__all__ = ["IngestError", "KnowledgeBase", "ReviewError"]
