"""wa_inbox.started_at: when processing of a message last started.

Crash recovery uses it to tell whether the patient was already answered (replies logged in
wa_outbound after it) even when Rasa had not saved its tracker yet.

Revision ID: 0007_inbox_started_at
Revises: 0006_engagement
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op

revision = "0007_inbox_started_at"
down_revision = "0006_engagement"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A database adopted by 0001 (tables made by create_all from newer models) may have it.
    columns = {c["name"] for c in sa.inspect(op.get_bind()).get_columns("wa_inbox")}
    if "started_at" not in columns:
        with op.batch_alter_table("wa_inbox") as batch:
            batch.add_column(sa.Column("started_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("wa_inbox") as batch:
        batch.drop_column("started_at")
