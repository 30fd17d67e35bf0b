"""Engagement: where opted-in contacts are reached, health-tip broadcasts, surveys.

Revision ID: 0006_engagement
Revises: 0006_handoff_ratings (both were planned after 0005; chained so there is one head)
Create Date: 2026-11-23

``contact_consent`` gains the pseudonymous conversation id and channel recorded at the
opt-in (a contact key is a one-way HMAC: a broadcast needs to know where to send).
``broadcast_campaigns`` / ``broadcast_recipients`` (unique campaign × contact) and
``survey_requests`` (unique kind × subject; rating 1–5; comment encrypted by the app).
"""

import sqlalchemy as sa
from alembic import op

revision = "0006_engagement"
down_revision = "0006_handoff_ratings"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("contact_consent") as batch:
        batch.add_column(sa.Column("conversation_id", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("channel", sa.String(length=32), nullable=True))
    op.create_index("ix_contact_consent_health_tips", "contact_consent", ["health_tips"], unique=False)

    op.create_table("broadcast_campaigns",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("description", sa.String(length=300), nullable=True),
        sa.Column("template", sa.String(length=100), nullable=False),
        sa.Column("language", sa.String(length=16), nullable=False),
        sa.Column("params_json", sa.Text(), nullable=False),
        sa.Column("quick_replies_json", sa.Text(), nullable=False),
        sa.Column("topic", sa.String(length=20), nullable=False),
        sa.Column("rate", sa.Float(), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("lease_owner", sa.String(length=80), nullable=True),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.String(length=300), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_broadcast_campaigns")),
        sa.UniqueConstraint("name", name=op.f("uq_broadcast_campaigns_name")),
    )
    op.create_table("broadcast_recipients",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("campaign_id", sa.Integer(), nullable=False),
        sa.Column("contact_key", sa.String(length=64), nullable=False),
        sa.Column("conversation_id", sa.String(length=64), nullable=False),
        sa.Column("channel", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("not_before", sa.DateTime(timezone=True), nullable=True),
        sa.Column("claimed_by", sa.String(length=80), nullable=True),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("wamid", sa.String(length=191), nullable=True),
        sa.Column("reason", sa.String(length=200), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["campaign_id"], ["broadcast_campaigns.id"], ondelete="CASCADE",
                                name=op.f("fk_broadcast_recipients_campaign_id_broadcast_campaigns")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_broadcast_recipients")),
        sa.UniqueConstraint("campaign_id", "contact_key", name="uq_broadcast_recipients_campaign_contact"),
    )
    op.create_index("ix_broadcast_recipients_campaign_status", "broadcast_recipients",
                    ["campaign_id", "status"], unique=False)
    op.create_index("ix_broadcast_recipients_contact", "broadcast_recipients", ["contact_key", "status"],
                    unique=False)

    op.create_table("survey_requests",
        sa.Column("id", sa.String(length=20), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("subject_id", sa.String(length=64), nullable=False),
        sa.Column("contact_key", sa.String(length=64), nullable=False),
        sa.Column("conversation_id", sa.String(length=128), nullable=False),
        sa.Column("channel", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("claimed_by", sa.String(length=80), nullable=True),
        sa.Column("wamid", sa.String(length=191), nullable=True),
        sa.Column("reason", sa.String(length=200), nullable=True),
        sa.Column("rating", sa.Integer(), nullable=True),
        sa.Column("comment_encrypted", sa.Text(), nullable=True),
        sa.Column("offered_human", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("rated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("commented_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("rating IS NULL OR (rating >= 1 AND rating <= 5)",
                           name=op.f("ck_survey_requests_rating_range")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_survey_requests")),
        sa.UniqueConstraint("kind", "subject_id", name="uq_survey_requests_kind_subject"),
    )
    op.create_index("ix_survey_requests_status_due", "survey_requests", ["status", "due_at"], unique=False)
    op.create_index("ix_survey_requests_rated_at", "survey_requests", ["rated_at"], unique=False)


def downgrade() -> None:
    op.drop_table("survey_requests")
    op.drop_table("broadcast_recipients")
    op.drop_table("broadcast_campaigns")
    op.drop_index("ix_contact_consent_health_tips", table_name="contact_consent")
    with op.batch_alter_table("contact_consent") as batch:
        batch.drop_column("channel")
        batch.drop_column("conversation_id")
