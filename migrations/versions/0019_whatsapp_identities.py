"""Usernames without phone numbers (issue 19, item 4): which conversation each identifier of a
WhatsApp user (the pseudonym of a phone number or of a business-scoped user id) belongs to,
and the username, encrypted (clinic/messaging/identities.py).

Revision ID: 0019_whatsapp_identities
Revises: 0018_inbound_media
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = "0019_whatsapp_identities"
down_revision = "0018_inbound_media"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A database adopted by 0001 (tables made by create_all from newer models) may have it.
    if sa.inspect(op.get_bind()).has_table("wa_identities"):
        return
    op.create_table(
        "wa_identities",
        sa.Column("identity_key", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("conversation_id", sa.String(length=64), nullable=False),
        sa.Column("username_encrypted", sa.Text(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("identity_key", name=op.f("pk_wa_identities")),
    )
    op.create_index(op.f("ix_wa_identities_conversation_id"), "wa_identities", ["conversation_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_wa_identities_conversation_id"), table_name="wa_identities")
    op.drop_table("wa_identities")
