"""Media patients send in the chat, kept encrypted for staff (issue 19, item 3): one row per
message with media (the sealed bytes are a file in the media folder, clinic/messaging/media.py).

Revision ID: 0018_inbound_media
Revises: 0017_privacy_erasures
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = "0018_inbound_media"
down_revision = "0017_privacy_erasures"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A database adopted by 0001 (tables made by create_all from newer models) may have it.
    if sa.inspect(op.get_bind()).has_table("inbound_media"):
        return
    op.create_table(
        "inbound_media",
        sa.Column("id", sa.String(length=24), nullable=False),
        sa.Column("conversation_id", sa.String(length=64), nullable=False),
        sa.Column("wamid", sa.String(length=191), nullable=False),
        sa.Column("inbox_id", sa.Integer(), nullable=True),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("meta_media_id", sa.String(length=64), nullable=True),
        sa.Column("mime_type", sa.String(length=100), nullable=True),
        sa.Column("expected_sha256", sa.String(length=100), nullable=True),
        sa.Column("state", sa.String(length=12), nullable=False),
        sa.Column("reason", sa.String(length=200), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("size_bytes", sa.Integer(), nullable=True),
        sa.Column("key_ref", sa.String(length=32), nullable=True),
        sa.Column("name_sealed", sa.LargeBinary(), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("stored_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_inbound_media")),
        sa.UniqueConstraint("wamid", name=op.f("uq_inbound_media_wamid")),
    )
    op.create_index("ix_inbound_media_conversation", "inbound_media", ["conversation_id"], unique=False)
    op.create_index("ix_inbound_media_created", "inbound_media", ["created_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_inbound_media_created", table_name="inbound_media")
    op.drop_index("ix_inbound_media_conversation", table_name="inbound_media")
    op.drop_table("inbound_media")
