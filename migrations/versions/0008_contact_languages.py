"""contact_languages: the language of each contact's conversation.

Revision ID: 0008_contact_languages
Revises: 0007_inbox_started_at
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = "0008_contact_languages"
down_revision = "0007_inbox_started_at"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A database adopted by 0001 (tables made by create_all from newer models) may have it.
    if "contact_languages" in sa.inspect(op.get_bind()).get_table_names():
        return
    op.create_table(
        "contact_languages",
        sa.Column("contact_key", sa.String(128), nullable=False),
        sa.Column("language", sa.String(16), nullable=False),
        sa.Column("chosen", sa.Boolean(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("contact_key", name=op.f("pk_contact_languages")),
    )


def downgrade() -> None:
    op.drop_table("contact_languages")
