"""Outbound recovery (issue 13): a turn's replies recorded before the first is sent, the
ambiguous flag, dead-letter retries with a follow-up ticket, and the callback that ties a
status webhook to the row it proves sent.

``wa_outbound`` gains ``turn_wamid`` + ``turn_seq`` (unique together: recording a turn
twice changes nothing), ``ambiguous``, ``retries``, ``retry_at`` and ``ticket_id``;
``wa_statuses`` gains ``callback`` (our ``biz_opaque_callback_data``, echoed by Meta).

Revision ID: 0011_outbox_recovery
Revises: 0010_quarantine
Create Date: 2026-12-12
"""

import sqlalchemy as sa
from alembic import op

revision = "0011_outbox_recovery"
down_revision = "0010_quarantine"
branch_labels = None
depends_on = None


def upgrade() -> None:
    inspector = sa.inspect(op.get_bind())
    # A database adopted by 0001 (tables made by create_all from newer models) may have them.
    outbound = {c["name"] for c in inspector.get_columns("wa_outbound")}
    if "turn_wamid" not in outbound:
        with op.batch_alter_table("wa_outbound") as batch:
            batch.add_column(sa.Column("turn_wamid", sa.String(length=191), nullable=True))
            batch.add_column(sa.Column("turn_seq", sa.Integer(), nullable=True))
            batch.add_column(sa.Column("ambiguous", sa.Boolean(), nullable=False, server_default=sa.false()))
            batch.add_column(sa.Column("retries", sa.Integer(), nullable=False, server_default="0"))
            batch.add_column(sa.Column("retry_at", sa.DateTime(timezone=True), nullable=True))
            batch.add_column(sa.Column("ticket_id", sa.Integer(), nullable=True))
            batch.create_unique_constraint("uq_wa_outbound_turn_seq", ["turn_wamid", "turn_seq"])
            batch.create_index(op.f("ix_wa_outbound_retry_at"), ["retry_at"], unique=False)
    statuses = {c["name"] for c in inspector.get_columns("wa_statuses")}
    if "callback" not in statuses:
        with op.batch_alter_table("wa_statuses") as batch:
            batch.add_column(sa.Column("callback", sa.String(length=64), nullable=True))
            batch.create_index(op.f("ix_wa_statuses_callback"), ["callback"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("wa_statuses") as batch:
        batch.drop_index(op.f("ix_wa_statuses_callback"))
        batch.drop_column("callback")
    # The old schema knows no queued or dismissed rows: queued ones become dead letters.
    op.execute(sa.text("UPDATE wa_outbound SET state = 'dead' WHERE state IN ('queued', 'dismissed')"))
    with op.batch_alter_table("wa_outbound") as batch:
        batch.drop_index(op.f("ix_wa_outbound_retry_at"))
        batch.drop_constraint("uq_wa_outbound_turn_seq", type_="unique")
        for column in ("ticket_id", "retry_at", "retries", "ambiguous", "turn_seq", "turn_wamid"):
            batch.drop_column(column)
