"""The WhatsApp channel's inbound quarantine (issue 13): what could not be parsed, applied or
answered, with its reason, for staff to retry or dismiss (whatsapp/quarantine.py).

Revision ID: 0010_quarantine
Revises: 0009_portal_uploads
Create Date: 2026-12-12
"""

import sqlalchemy as sa
from alembic import op

revision = "0010_quarantine"
down_revision = "0009_portal_uploads"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A database adopted by 0001 (tables made by create_all from newer models) may have it.
    if sa.inspect(op.get_bind()).has_table("wa_quarantine"):
        return
    op.create_table(
        "wa_quarantine",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=64), nullable=False),
        sa.Column("detail", sa.String(length=200), nullable=True),
        sa.Column("wamid", sa.String(length=191), nullable=True),
        sa.Column("conversation_id", sa.String(length=64), nullable=True),
        sa.Column("kind", sa.String(length=32), nullable=True),
        sa.Column("inbox_id", sa.Integer(), nullable=True),
        sa.Column("record_json", sa.Text(), nullable=True),
        sa.Column("state", sa.String(length=12), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("resolved_by", sa.String(length=100), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_wa_quarantine")),
    )
    op.create_index(op.f("ix_wa_quarantine_conversation_id"), "wa_quarantine", ["conversation_id"], unique=False)
    op.create_index(op.f("ix_wa_quarantine_state"), "wa_quarantine", ["state"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_wa_quarantine_state"), table_name="wa_quarantine")
    op.drop_index(op.f("ix_wa_quarantine_conversation_id"), table_name="wa_quarantine")
    op.drop_table("wa_quarantine")
