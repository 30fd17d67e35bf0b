"""Rows of health-education broadcasts (``broadcast_*`` tables, migration 0006_engagement).

One row per campaign, one per campaign × contact (unique: a contact can never be queued
twice for the same campaign). Rows hold pseudonyms only: the contact key, the channel's
conversation id and, once sent, the Graph API message id. The WhatsApp address stays
encrypted in ``wa_contacts`` and is decrypted by the sender at the moment of the call.
"""

from __future__ import annotations

from sqlalchemy import Column, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint

from clinic.db import Base
from clinic.scheduling.tables import UTCDateTime

# Campaign states
DRAFT, RUNNING, PAUSED, DONE, CANCELLED = "draft", "running", "paused", "done", "cancelled"
# Recipient states: pending → sending (claimed) → sent | skipped | failed | unknown
PENDING, SENDING, SENT, SKIPPED, FAILED, UNKNOWN = "pending", "sending", "sent", "skipped", "failed", "unknown"
RECIPIENT_STATES = (PENDING, SENDING, SENT, SKIPPED, FAILED, UNKNOWN)


class CampaignRow(Base):
    __tablename__ = "broadcast_campaigns"

    id = Column(Integer, primary_key=True)
    name = Column(String(64), nullable=False, unique=True)
    description = Column(String(300), nullable=True)
    template = Column(String(100), nullable=False)
    language = Column(String(16), nullable=False)
    params_json = Column(Text, nullable=False)  # body parameters: campaign-wide, never per patient
    quick_replies_json = Column(Text, nullable=False)
    topic = Column(String(20), nullable=False)  # the consent topic the segment needs (health_tips)
    rate = Column(Float, nullable=False)  # messages per second for this campaign
    status = Column(String(12), nullable=False)
    lease_owner = Column(String(80), nullable=True)  # the runner process sending it now
    lease_until = Column(UTCDateTime, nullable=True)
    created_at = Column(UTCDateTime, nullable=False)
    started_at = Column(UTCDateTime, nullable=True)
    finished_at = Column(UTCDateTime, nullable=True)
    last_error = Column(String(300), nullable=True)


class RecipientRow(Base):
    __tablename__ = "broadcast_recipients"

    id = Column(Integer, primary_key=True)
    campaign_id = Column(Integer, ForeignKey("broadcast_campaigns.id", ondelete="CASCADE"), nullable=False)
    contact_key = Column(String(64), nullable=False)
    conversation_id = Column(String(64), nullable=False)
    channel = Column(String(32), nullable=False)
    status = Column(String(10), nullable=False)
    not_before = Column(UTCDateTime, nullable=True)  # per-user pacing: deferred until then
    claimed_by = Column(String(80), nullable=True)
    claimed_at = Column(UTCDateTime, nullable=True)
    attempts = Column(Integer, nullable=False, default=0)
    wamid = Column(String(191), nullable=True)
    reason = Column(String(200), nullable=True)
    updated_at = Column(UTCDateTime, nullable=False)
    sent_at = Column(UTCDateTime, nullable=True)

    __table_args__ = (
        UniqueConstraint("campaign_id", "contact_key", name="uq_broadcast_recipients_campaign_contact"),
        Index("ix_broadcast_recipients_campaign_status", "campaign_id", "status"),
        Index("ix_broadcast_recipients_contact", "contact_key", "status"),
    )


def outbound_kind(recipient_id: int) -> str:
    """The ``wa_outbound.kind`` of a recipient's message: how a restarted runner finds out
    whether a row it had claimed reached the sender (see runner.reconcile)."""
    return f"bcast:{recipient_id}"
