"""``survey_requests``: one per surveyed visit or resolved ticket (migration 0006_engagement).

Pseudonyms only; the comment is encrypted with the clinic's key (it may hold health
information). Delivery (``status``) and answer (``rating``) are separate: a patient may
answer a survey we could not confirm as sent, and a sent survey may never be answered.
"""

from __future__ import annotations

import secrets

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Column,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)

from clinic.db import Base
from clinic.scheduling.tables import UTCDateTime

# visit: after a fulfilled appointment; handoff: after a resolved ticket (when the inbox does
# not rate its own); request: asked for by the clinic system (notification API survey_request).
VISIT, HANDOFF, REQUEST = "visit", "handoff", "request"
PENDING, SENDING, SENT, SKIPPED, FAILED, UNKNOWN = "pending", "sending", "sent", "skipped", "failed", "unknown"
LOW_SCORE = 2  # 1–2: the bot offers a human


def new_survey_id() -> str:
    return "srv_" + secrets.token_hex(6)


class SurveyRow(Base):
    __tablename__ = "survey_requests"

    id = Column(String(20), primary_key=True)
    kind = Column(String(10), nullable=False)
    subject_id = Column(String(64), nullable=False)  # appointment id, or "<ticket id>:<episode>"
    contact_key = Column(String(64), nullable=False)
    conversation_id = Column(String(128), nullable=False)
    channel = Column(String(32), nullable=False)
    status = Column(String(10), nullable=False)
    due_at = Column(UTCDateTime, nullable=False)
    claimed_by = Column(String(80), nullable=True)
    wamid = Column(String(191), nullable=True)
    reason = Column(String(200), nullable=True)
    rating = Column(Integer, nullable=True)
    comment_encrypted = Column(Text, nullable=True)
    offered_human = Column(Boolean, nullable=False, default=False)
    created_at = Column(UTCDateTime, nullable=False)
    sent_at = Column(UTCDateTime, nullable=True)
    rated_at = Column(UTCDateTime, nullable=True)
    commented_at = Column(UTCDateTime, nullable=True)
    updated_at = Column(UTCDateTime, nullable=False)

    __table_args__ = (
        UniqueConstraint("kind", "subject_id", name="uq_survey_requests_kind_subject"),
        CheckConstraint("rating IS NULL OR (rating >= 1 AND rating <= 5)", name="rating_range"),
        Index("ix_survey_requests_status_due", "status", "due_at"),
        Index("ix_survey_requests_rated_at", "rated_at"),
    )


def outbound_kind(survey_id: str) -> str:
    return f"survey:{survey_id}"
