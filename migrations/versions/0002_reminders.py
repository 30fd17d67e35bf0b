"""Reminder jobs, recalls and contact consent.

Revision ID: 0002_reminders
Revises: 0001_initial
Create Date: 2026-11-22

``reminder_jobs``: persisted reminders / follow-ups / recalls (clinic.reminders.tables),
unique per (appointment, kind) and (recall, kind). ``recall_due``: recalls from due dates.
``contact_consent`` + ``consent_events``: reminders opt-out and health-tips opt-in per
pseudonymous contact, with the wording shown and an append-only history (clinic.consent).
Like 0001, this migration does not import application code.
"""

import sqlalchemy as sa
from alembic import op

revision = "0002_reminders"
down_revision = "0001_initial"
branch_labels = None
depends_on = None

JOB_STATUSES = ("pending", "dispatching", "sent", "skipped", "failed")
RECALL_STATUSES = ("open", "planned", "done", "cancelled")


def _in(column: str, values) -> str:
    return f"{column} IN (" + ", ".join(f"'{v}'" for v in values) + ")"


def upgrade() -> None:
    op.create_table("reminder_jobs",
        sa.Column("id", sa.String(length=20), nullable=False),
        sa.Column("kind", sa.String(length=24), nullable=False),
        sa.Column("appointment_id", sa.String(length=64), nullable=True),
        sa.Column("recall_id", sa.String(length=20), nullable=True),
        sa.Column("patient_id", sa.String(length=64), nullable=False),
        sa.Column("contact_key", sa.String(length=64), nullable=False),
        sa.Column("conversation_id", sa.String(length=128), nullable=False),
        sa.Column("channel", sa.String(length=32), nullable=False),
        sa.Column("planned_for", sa.DateTime(timezone=True), nullable=True),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("available_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("reason", sa.String(length=200), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("claimed_by", sa.String(length=64), nullable=True),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(_in("status", JOB_STATUSES), name=op.f("ck_reminder_jobs_status_valid")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reminder_jobs")),
        sa.UniqueConstraint("appointment_id", "kind", name="uq_reminder_jobs_appointment_kind"),
        sa.UniqueConstraint("recall_id", "kind", name="uq_reminder_jobs_recall_kind"),
    )
    op.create_index("ix_reminder_jobs_status_available", "reminder_jobs", ["status", "available_at"], unique=False)
    op.create_index("ix_reminder_jobs_contact", "reminder_jobs", ["contact_key"], unique=False)

    op.create_table("recall_due",
        sa.Column("id", sa.String(length=20), nullable=False),
        sa.Column("patient_id", sa.String(length=64), nullable=False),
        sa.Column("contact_key", sa.String(length=64), nullable=False),
        sa.Column("topic", sa.String(length=32), nullable=False),
        sa.Column("due_date", sa.Date(), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(_in("status", RECALL_STATUSES), name=op.f("ck_recall_due_status_valid")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_recall_due")),
    )
    op.create_index("ix_recall_due_status_date", "recall_due", ["status", "due_date"], unique=False)

    op.create_table("contact_consent",
        sa.Column("contact_key", sa.String(length=64), nullable=False),
        sa.Column("reminders", sa.Boolean(), nullable=False),
        sa.Column("reminders_changed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("reminders_wording", sa.String(length=64), nullable=True),
        sa.Column("health_tips", sa.Boolean(), nullable=False),
        sa.Column("health_tips_changed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("health_tips_wording", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("contact_key", name=op.f("pk_contact_consent")),
    )

    op.create_table("consent_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("contact_key", sa.String(length=64), nullable=False),
        sa.Column("topic", sa.String(length=20), nullable=False),
        sa.Column("granted", sa.Boolean(), nullable=False),
        sa.Column("wording", sa.String(length=64), nullable=False),
        sa.Column("channel", sa.String(length=32), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_consent_events")),
    )
    op.create_index("ix_consent_events_contact", "consent_events", ["contact_key", "id"], unique=False)


def downgrade() -> None:
    for table in ("consent_events", "contact_consent", "recall_due", "reminder_jobs"):
        op.drop_table(table)
