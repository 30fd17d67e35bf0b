"""Handoff satisfaction ratings (clinic.inbox.tables.HandoffRatingRow): the patient's 1-5
answer after a staff conversation is resolved.

Revision ID: 0006_handoff_ratings
Revises: 0005_notifications (issue 6; chained after it so there is one head)
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op

revision = "0006_handoff_ratings"
down_revision = "0005_notifications"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "handoff_ratings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("ticket_id", sa.Integer(), nullable=False),
        sa.Column("conversation_id", sa.String(length=64), nullable=False),
        sa.Column("team", sa.String(length=16), nullable=False),
        sa.Column("rating", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["ticket_id"], ["inbox_tickets.id"],
                                name=op.f("fk_handoff_ratings_ticket_id_inbox_tickets")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_handoff_ratings")),
        sa.UniqueConstraint("ticket_id", name=op.f("uq_handoff_ratings_ticket_id")),
    )
    op.create_index(op.f("ix_handoff_ratings_conversation_id"), "handoff_ratings", ["conversation_id"],
                    unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_handoff_ratings_conversation_id"), table_name="handoff_ratings")
    op.drop_table("handoff_ratings")
