"""Erasure on request (issue 18, item 3): the proof that a contact's data was erased (who
asked, when, how many rows per store; no content), and, while the reply confirming a chat
erasure is still being sent, the conversation whose WhatsApp records are erased after it.

Revision ID: 0017_privacy_erasures
Revises: 0016_worker_leases
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = "0017_privacy_erasures"
down_revision = "0016_worker_leases"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A database adopted by 0001 (tables made by create_all from newer models) may have it.
    if sa.inspect(op.get_bind()).has_table("privacy_erasures"):
        return
    op.create_table(
        "privacy_erasures",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("contact_key", sa.String(length=64), nullable=False),
        sa.Column("requested_by", sa.String(length=64), nullable=False),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("pending_conversation_id", sa.String(length=64), nullable=True),
        sa.Column("counts", sa.String(length=500), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_privacy_erasures")),
    )
    op.create_index("ix_privacy_erasures_contact", "privacy_erasures", ["contact_key"], unique=False)
    op.create_index("ix_privacy_erasures_pending", "privacy_erasures", ["pending_conversation_id"],
                    unique=False)


def downgrade() -> None:
    op.drop_index("ix_privacy_erasures_pending", table_name="privacy_erasures")
    op.drop_index("ix_privacy_erasures_contact", table_name="privacy_erasures")
    op.drop_table("privacy_erasures")
