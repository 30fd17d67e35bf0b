"""Notifications, portal links and the patient-record states the assistant answers from.

Revision ID: 0005_notifications
Revises: 0004_inbox
Create Date: 2026-11-23

``notifications``: one row per event id from the clinic's systems (idempotency), pointing at
the ``reminder_jobs`` row that sends it. ``portal_tokens``: SHA-256 of each single-use portal
token with its patient, document, purpose and expiry; ``portal_access_log``: every attempt,
without the token. ``patient_records``: result / document / billing / queue states (no
content). Like the earlier migrations, this one does not import application code.
"""

import sqlalchemy as sa
from alembic import op

revision = "0005_notifications"
down_revision = "0004_inbox"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "notifications",
        sa.Column("event_id", sa.String(length=64), nullable=False),
        sa.Column("type", sa.String(length=24), nullable=False),
        sa.Column("patient_id", sa.String(length=32), nullable=False),
        sa.Column("params", sa.Text(), nullable=False),
        sa.Column("request_hash", sa.String(length=64), nullable=False),
        sa.Column("job_id", sa.String(length=20), nullable=True),
        sa.Column("created_by", sa.String(length=80), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("event_id", name=op.f("pk_notifications")),
    )
    op.create_index("ix_notifications_job", "notifications", ["job_id"], unique=False)
    op.create_index("ix_notifications_patient", "notifications", ["patient_id"], unique=False)
    op.create_table(
        "patient_records",
        sa.Column("id", sa.String(length=24), nullable=False),
        sa.Column("patient_id", sa.String(length=32), nullable=False),
        sa.Column("kind", sa.String(length=12), nullable=False),
        sa.Column("subtype", sa.String(length=32), nullable=True),
        sa.Column("status", sa.String(length=24), nullable=False),
        sa.Column("document_id", sa.String(length=64), nullable=True),
        sa.Column("reference", sa.String(length=32), nullable=True),
        sa.Column("room", sa.String(length=40), nullable=True),
        sa.Column("position", sa.Integer(), nullable=True),
        sa.Column("expected_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("kind IN ('result', 'document', 'billing', 'queue')",
                           name=op.f("ck_patient_records_kind_valid")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_patient_records")),
    )
    op.create_index("ix_patient_records_patient_kind", "patient_records", ["patient_id", "kind"], unique=False)
    op.create_table(
        "portal_access_log",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("token_ref", sa.String(length=24), nullable=False),
        sa.Column("outcome", sa.String(length=24), nullable=False),
        sa.Column("via", sa.String(length=80), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_portal_access_log")),
    )
    op.create_index("ix_portal_access_log_at", "portal_access_log", ["at"], unique=False)
    op.create_table(
        "portal_tokens",
        sa.Column("id", sa.String(length=24), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("patient_id", sa.String(length=32), nullable=False),
        sa.Column("document_id", sa.String(length=64), nullable=False),
        sa.Column("purpose", sa.String(length=24), nullable=False),
        sa.Column("source", sa.String(length=80), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("failed_checks", sa.Integer(), nullable=False),
        sa.Column("locked_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_portal_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_portal_tokens_token_hash")),
    )
    op.create_index("ix_portal_tokens_patient", "portal_tokens", ["patient_id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_portal_tokens_patient", table_name="portal_tokens")
    op.drop_table("portal_tokens")
    op.drop_index("ix_portal_access_log_at", table_name="portal_access_log")
    op.drop_table("portal_access_log")
    op.drop_index("ix_patient_records_patient_kind", table_name="patient_records")
    op.drop_table("patient_records")
    op.drop_index("ix_notifications_patient", table_name="notifications")
    op.drop_index("ix_notifications_job", table_name="notifications")
    op.drop_table("notifications")
