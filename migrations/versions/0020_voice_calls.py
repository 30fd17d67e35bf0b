"""WhatsApp voice calls (issue 19, item 1): the patients' call permissions, the calls (direction, state, outcome, times,
duration; never audio; SDPs only while a call is set up or running) and the queue of call
actions the gateway sends to Meta (clinic/messaging/calls.py).

Revision ID: 0020_voice_calls
Revises: 0019_whatsapp_identities
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = "0020_voice_calls"
down_revision = "0019_whatsapp_identities"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A database adopted by 0001 (tables made by create_all from newer models) may have them.
    if sa.inspect(op.get_bind()).has_table("wa_calls"):
        return
    op.create_table(
        "wa_calls",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("call_id", sa.String(length=191), nullable=True),
        sa.Column("conversation_id", sa.String(length=64), nullable=False),
        sa.Column("ticket_id", sa.Integer(), nullable=True),
        sa.Column("team", sa.String(length=16), nullable=True),
        sa.Column("direction", sa.String(length=8), nullable=False),
        sa.Column("state", sa.String(length=12), nullable=False),
        sa.Column("outcome", sa.String(length=12), nullable=True),
        sa.Column("staff_id", sa.Integer(), nullable=True),
        sa.Column("offer_sdp", sa.Text(), nullable=True),
        sa.Column("answer_sdp", sa.Text(), nullable=True),
        sa.Column("error", sa.String(length=300), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("duration_seconds", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_wa_calls")),
        sa.UniqueConstraint("call_id", name=op.f("uq_wa_calls_call_id")),
    )
    op.create_index("ix_wa_calls_conversation_id", "wa_calls", ["conversation_id"], unique=False)
    op.create_index("ix_wa_calls_state", "wa_calls", ["state", "team"], unique=False)
    op.create_table(
        "wa_call_actions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("call_row_id", sa.Integer(), nullable=False),
        sa.Column("action", sa.String(length=12), nullable=False),
        sa.Column("sdp", sa.Text(), nullable=True),
        sa.Column("state", sa.String(length=8), nullable=False),
        sa.Column("error", sa.String(length=300), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("done_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["call_row_id"], ["wa_calls.id"],
                                name=op.f("fk_wa_call_actions_call_row_id_wa_calls")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_wa_call_actions")),
    )
    op.create_table(
        "wa_call_permissions",
        sa.Column("conversation_id", sa.String(length=64), nullable=False),
        sa.Column("response", sa.String(length=8), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("answered_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("conversation_id", name=op.f("pk_wa_call_permissions")),
    )
    op.create_index("ix_wa_call_actions_call_row_id", "wa_call_actions", ["call_row_id"], unique=False)
    op.create_index("ix_wa_call_actions_queue", "wa_call_actions", ["state", "id"], unique=False)


def downgrade() -> None:
    op.drop_table("wa_call_permissions")
    op.drop_index("ix_wa_call_actions_queue", table_name="wa_call_actions")
    op.drop_index("ix_wa_call_actions_call_row_id", table_name="wa_call_actions")
    op.drop_table("wa_call_actions")
    op.drop_index("ix_wa_calls_state", table_name="wa_calls")
    op.drop_index("ix_wa_calls_conversation_id", table_name="wa_calls")
    op.drop_table("wa_calls")
