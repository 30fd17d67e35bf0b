"""Tables of the clinic's documents.

``knowledge_documents``: one row per document the clinic maintains ("Patient guide 2026");
``retired_at`` set means none of its versions is offered any more.
``knowledge_versions``: each upload of a document. ``state``: ``draft`` (uploaded, waiting
for review) → ``approved`` (searchable) or ``rejected`` (with the reviewer's note); an
approved version becomes ``superseded`` when a newer version of the same document is
approved, and ``retired`` when the document is retired. At most one version per document is
approved at a time (the service keeps it so, under one transaction).
``knowledge_passages``: what the search quotes, as extracted, with where it came from
(page or heading), its language and its search terms (stored, so rebuilding an index after an
approval costs no segmentation). ``phi_rules``: what the PHI guard found at upload (rule
names only); a version with any is not approvable.
``knowledge_outcomes``: one row per question the dialogue searched the documents for — its
outcome (``answered`` / ``not_found``), the document that answered (or the closest one below
the threshold), the language and whether the patient asked for a person right after. For the
analytics (which documents answer, which are missing); never the question's text.
"""

from __future__ import annotations

from sqlalchemy import Boolean, Column, ForeignKey, Index, Integer, String, Text, UniqueConstraint

from clinic.db import Base
from clinic.scheduling.tables import UTCDateTime


class KnowledgeDocumentRow(Base):
    __tablename__ = "knowledge_documents"

    id = Column(Integer, primary_key=True)
    title = Column(String(200), nullable=False)
    topic = Column(String(64), nullable=False, default="general")  # for analytics: which subject it covers
    created_at = Column(UTCDateTime, nullable=False)
    created_by = Column(String(100), nullable=False)
    retired_at = Column(UTCDateTime, nullable=True)
    retired_by = Column(String(100), nullable=True)


class KnowledgeVersionRow(Base):
    __tablename__ = "knowledge_versions"

    id = Column(Integer, primary_key=True)
    document_id = Column(Integer, ForeignKey("knowledge_documents.id"), nullable=False)
    number = Column(Integer, nullable=False)  # 1, 2, … per document
    state = Column(String(12), nullable=False)  # draft | approved | rejected | superseded | retired
    kind = Column(String(12), nullable=False)  # pdf | html | markdown | text
    source_name = Column(String(300), nullable=False)  # file name or URL as uploaded
    url = Column(String(500), nullable=True)  # a page's address, shown as the answer's link
    sha256 = Column(String(64), nullable=False)
    uploaded_at = Column(UTCDateTime, nullable=False)
    uploaded_by = Column(String(100), nullable=False)
    reviewed_at = Column(UTCDateTime, nullable=True)
    reviewed_by = Column(String(100), nullable=True)
    note = Column(String(500), nullable=True)  # the reviewer's reason (rejections)
    changed_at = Column(UTCDateTime, nullable=False)  # searches rebuild their index when this moves

    __table_args__ = (
        UniqueConstraint("document_id", "number", name="uq_knowledge_versions_document_number"),
        Index("ix_knowledge_versions_state", "state"),
    )


class KnowledgePassageRow(Base):
    __tablename__ = "knowledge_passages"

    id = Column(Integer, primary_key=True)
    version_id = Column(Integer, ForeignKey("knowledge_versions.id"), nullable=False)
    seq = Column(Integer, nullable=False)  # order within the version
    language = Column(String(16), nullable=False)
    locator = Column(String(200), nullable=False)  # "page 3" or the heading it sits under
    text = Column(Text, nullable=False)  # as written in the document
    terms = Column(Text, nullable=False)  # search terms, space-separated (clinic.language.tokens)
    phi_rules = Column(String(200), nullable=True)  # rule names the PHI guard found, if any

    __table_args__ = (Index("ix_knowledge_passages_version", "version_id", "seq"),)


class KnowledgeOutcomeRow(Base):
    __tablename__ = "knowledge_outcomes"

    id = Column(Integer, primary_key=True)
    at = Column(UTCDateTime, nullable=False)
    language = Column(String(16), nullable=False)
    outcome = Column(String(12), nullable=False)  # answered | not_found
    # answered: the document quoted; not_found: the closest one below the threshold, if any.
    document_id = Column(Integer, ForeignKey("knowledge_documents.id"), nullable=True)
    # The contact's pseudonymous key (clinic.privacy.contact_key), only so that a request for
    # a person right after this answer is counted against it; no phone number, no text.
    contact_key = Column(String(64), nullable=False)
    handed_over = Column(Boolean, nullable=False, default=False)

    __table_args__ = (Index("ix_knowledge_outcomes_at", "at"),
                      Index("ix_knowledge_outcomes_contact", "contact_key", "id"))
