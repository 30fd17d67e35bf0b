"""What the clinic's systems know about a patient's pending items, so the assistant can say
whether something is ready without ever saying what it contains.

``patient_records``: one row per item: a test result (``result``), a document (sick note,
records copy, referral letter, prescription), a bill or insurance claim (``billing``), or
today's place in the waiting-room queue (``queue``). Only states and dates: no values, no
diagnosis, no amounts. ``document_id`` is the clinic system's opaque id of the document
the portal shows. Kept up to date by the notification API (clinic/notifications) and, in
the demo, by ``python -m clinic.records.demo_data``.
"""

from __future__ import annotations

from sqlalchemy import CheckConstraint, Column, Index, Integer, String

from clinic.db import Base
from clinic.scheduling.tables import UTCDateTime

RESULT = "result"
DOCUMENT = "document"
BILLING = "billing"
QUEUE = "queue"
KINDS = (RESULT, DOCUMENT, BILLING, QUEUE)


class PatientRecordRow(Base):
    __tablename__ = "patient_records"

    id = Column(String(24), primary_key=True)  # "rec_" + hex
    patient_id = Column(String(32), nullable=False)
    kind = Column(String(12), nullable=False)
    subtype = Column(String(32), nullable=True)  # document kind, billing item kind
    status = Column(String(24), nullable=False)  # see clinic.records.model
    document_id = Column(String(64), nullable=True)
    reference = Column(String(32), nullable=True)  # invoice / claim number, queue ticket
    room = Column(String(40), nullable=True)  # queue: where to go when called
    position = Column(Integer, nullable=True)  # queue: people ahead
    expected_at = Column(UTCDateTime, nullable=True)  # when it should be ready / due
    created_at = Column(UTCDateTime, nullable=False)
    updated_at = Column(UTCDateTime, nullable=False)

    __table_args__ = (
        CheckConstraint("kind IN ('result', 'document', 'billing', 'queue')", name="kind_valid"),
        Index("ix_patient_records_patient_kind", "patient_id", "kind"),
    )
