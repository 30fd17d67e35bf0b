"""The handoff request table and its vocabulary (reason, priority).

Apart from ``requests.py`` (which writes requests and opens the inbox's ticket with them) so
the inbox's domain can read the table without importing the writer that imports it back.
"""

from __future__ import annotations

import enum

from sqlalchemy import Column, DateTime, Integer, String

from clinic.db import Base


class Reason(str, enum.Enum):
    PATIENT_REQUEST = "patient_request"      # asked for a person (words or a button)
    EMERGENCY = "emergency"                  # the red-flag safety net (urgent)
    BOT_FALLBACK = "bot_fallback"            # accepted a person after misunderstandings
    FRUSTRATION = "frustration"              # "this is useless"
    CLINICAL_QUESTION = "clinical_question"  # insisted on a clinical question: the nurse
    LONG_MESSAGE = "long_message"            # too long to classify: a person reads all of it
    REPLY_FAILED = "reply_failed"            # the assistant's reply could not be delivered
    MESSAGE_FAILED = "message_failed"        # the assistant failed on it every attempt (a dead letter)


class Priority(str, enum.Enum):
    NORMAL = "normal"
    URGENT = "urgent"


class HandoffRequest(Base):
    __tablename__ = "handoff_requests"

    id = Column(Integer, primary_key=True)
    contact_key = Column(String(64), nullable=False, index=True)
    team = Column(String(16), nullable=False)
    reason = Column(String(32), nullable=False)
    priority = Column(String(16), nullable=False)
    red_flag_category = Column(String(64), nullable=True)
    status = Column(String(16), nullable=False, default="open")
    created_at = Column(DateTime(timezone=True), nullable=False)
