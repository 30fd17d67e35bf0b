"""The outbox's durable queue (issue 14): every sender enqueues into ``wa_outbound`` and the
WhatsApp process that owns the outbox drains it with the number's one rate limiter.

``wa_outbound`` gains ``priority`` (lower leaves first: a turn's replies and staff replies
before reminders, reminders before surveys and broadcasts; clinic/messaging/outbox_queue.py)
and ``fallback_json`` (a queued template's version in the clinic's default language, sent
once instead when Meta answers 132001), and an index for the drain's query.

Revision ID: 0014_outbox_queue
Revises: 0013_knowledge_outcomes
Create Date: 2026-12-16
"""

import sqlalchemy as sa
from alembic import op

revision = "0014_outbox_queue"
down_revision = "0013_knowledge_outcomes"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A database adopted by 0001 (tables made by create_all from newer models) may have them.
    columns = {c["name"] for c in sa.inspect(op.get_bind()).get_columns("wa_outbound")}
    if "priority" in columns:
        return
    with op.batch_alter_table("wa_outbound") as batch:
        batch.add_column(sa.Column("priority", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("fallback_json", sa.Text(), nullable=True))
        batch.create_index("ix_wa_outbound_queue", ["state", "priority", "id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("wa_outbound") as batch:
        batch.drop_index("ix_wa_outbound_queue")
        batch.drop_column("fallback_json")
        batch.drop_column("priority")
