"""Staff inbox: tickets, staff replies and internal notes, call-back tasks, staff accounts
and teams, settings, and the append-only hash-chained audit log (clinic.inbox.tables).

Revision ID: 0004_inbox
Revises: 0003_api_keys
Create Date: 2026-11-22

At most one active (not resolved) ticket per conversation: a partial unique index. Texts
and TOTP secrets are stored encrypted (Fernet) by the application. UPDATE and DELETE on
``inbox_audit`` are refused by triggers (SQLite and PostgreSQL).
"""

import sqlalchemy as sa
from alembic import op

revision = "0004_inbox"
down_revision = "0003_api_keys"
branch_labels = None
depends_on = None

AUDIT_TRIGGERS = {
    "sqlite": [
        "CREATE TRIGGER inbox_audit_no_update BEFORE UPDATE ON inbox_audit "
        "BEGIN SELECT RAISE(ABORT, 'inbox_audit is append-only'); END",
        "CREATE TRIGGER inbox_audit_no_delete BEFORE DELETE ON inbox_audit "
        "BEGIN SELECT RAISE(ABORT, 'inbox_audit is append-only'); END",
    ],
    "postgresql": [
        "CREATE OR REPLACE FUNCTION inbox_audit_append_only() RETURNS trigger AS $$ "
        "BEGIN RAISE EXCEPTION 'inbox_audit is append-only'; END; $$ LANGUAGE plpgsql",
        "CREATE TRIGGER inbox_audit_no_change BEFORE UPDATE OR DELETE ON inbox_audit "
        "FOR EACH ROW EXECUTE FUNCTION inbox_audit_append_only()",
    ],
}


def upgrade() -> None:
    op.create_table('inbox_audit',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('actor', sa.String(length=64), nullable=False),
    sa.Column('actor_id', sa.Integer(), nullable=True),
    sa.Column('action', sa.String(length=40), nullable=False),
    sa.Column('conversation_id', sa.String(length=64), nullable=True),
    sa.Column('ticket_id', sa.Integer(), nullable=True),
    sa.Column('detail', sa.String(length=500), nullable=False),
    sa.Column('client', sa.String(length=64), nullable=True),
    sa.Column('prev_hash', sa.String(length=64), nullable=False),
    sa.Column('entry_hash', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_inbox_audit')),
    sa.UniqueConstraint('entry_hash', name=op.f('uq_inbox_audit_entry_hash')),
    sa.UniqueConstraint('prev_hash', name=op.f('uq_inbox_audit_prev_hash'))
    )
    with op.batch_alter_table('inbox_audit', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_inbox_audit_conversation_id'), ['conversation_id'], unique=False)

    op.create_table('inbox_settings',
    sa.Column('key', sa.String(length=64), nullable=False),
    sa.Column('value', sa.String(length=200), nullable=False),
    sa.PrimaryKeyConstraint('key', name=op.f('pk_inbox_settings'))
    )
    op.create_table('inbox_staff',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('username', sa.String(length=64), nullable=False),
    sa.Column('display_name', sa.String(length=100), nullable=False),
    sa.Column('password_hash', sa.String(length=255), nullable=False),
    sa.Column('totp_secret_encrypted', sa.Text(), nullable=False),
    sa.Column('totp_confirmed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('totp_last_step', sa.Integer(), nullable=True),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('disabled', sa.Boolean(), nullable=False),
    sa.Column('failed_logins', sa.Integer(), nullable=False),
    sa.Column('locked_until', sa.DateTime(timezone=True), nullable=True),
    sa.Column('session_epoch', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_login_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_inbox_staff')),
    sa.UniqueConstraint('username', name=op.f('uq_inbox_staff_username'))
    )
    op.create_table('inbox_staff_teams',
    sa.Column('staff_id', sa.Integer(), nullable=False),
    sa.Column('team', sa.String(length=16), nullable=False),
    sa.ForeignKeyConstraint(['staff_id'], ['inbox_staff.id'], name=op.f('fk_inbox_staff_teams_staff_id_inbox_staff'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('staff_id', 'team', name=op.f('pk_inbox_staff_teams'))
    )
    op.create_table('inbox_tickets',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('conversation_id', sa.String(length=64), nullable=False),
    sa.Column('contact_key', sa.String(length=64), nullable=True),
    sa.Column('team', sa.String(length=16), nullable=False),
    sa.Column('priority', sa.String(length=8), nullable=False),
    sa.Column('state', sa.String(length=12), nullable=False),
    sa.Column('reason', sa.String(length=32), nullable=False),
    sa.Column('red_flag_category', sa.String(length=64), nullable=True),
    sa.Column('assignee_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('opened_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('waiting_since', sa.DateTime(timezone=True), nullable=True),
    sa.Column('claimed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('first_response_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('resolved_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('resolution_reason', sa.String(length=300), nullable=True),
    sa.Column('overdue_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('reopen_count', sa.Integer(), nullable=False),
    sa.Column('bot_paused', sa.Boolean(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['assignee_id'], ['inbox_staff.id'], name=op.f('fk_inbox_tickets_assignee_id_inbox_staff')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_inbox_tickets'))
    )
    with op.batch_alter_table('inbox_tickets', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_inbox_tickets_conversation_id'), ['conversation_id'], unique=False)
        batch_op.create_index('ix_inbox_tickets_queue', ['state', 'team'], unique=False)
        batch_op.create_index('uq_inbox_tickets_active_conversation', ['conversation_id'], unique=True, sqlite_where=sa.text("state != 'resolved'"), postgresql_where=sa.text("state != 'resolved'"))

    op.create_table('inbox_messages',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('ticket_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=8), nullable=False),
    sa.Column('author_id', sa.Integer(), nullable=False),
    sa.Column('text_encrypted', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('delivery', sa.String(length=12), nullable=True),
    sa.Column('delivery_detail', sa.String(length=300), nullable=True),
    sa.ForeignKeyConstraint(['author_id'], ['inbox_staff.id'], name=op.f('fk_inbox_messages_author_id_inbox_staff')),
    sa.ForeignKeyConstraint(['ticket_id'], ['inbox_tickets.id'], name=op.f('fk_inbox_messages_ticket_id_inbox_tickets')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_inbox_messages'))
    )
    with op.batch_alter_table('inbox_messages', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_inbox_messages_ticket_id'), ['ticket_id'], unique=False)

    op.create_table('inbox_tasks',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('conversation_id', sa.String(length=64), nullable=False),
    sa.Column('ticket_id', sa.Integer(), nullable=True),
    sa.Column('team', sa.String(length=16), nullable=False),
    sa.Column('note_encrypted', sa.Text(), nullable=True),
    sa.Column('due_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('state', sa.String(length=8), nullable=False),
    sa.Column('created_by', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('done_by_id', sa.Integer(), nullable=True),
    sa.Column('done_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['done_by_id'], ['inbox_staff.id'], name=op.f('fk_inbox_tasks_done_by_id_inbox_staff')),
    sa.ForeignKeyConstraint(['ticket_id'], ['inbox_tickets.id'], name=op.f('fk_inbox_tasks_ticket_id_inbox_tickets')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_inbox_tasks'))
    )
    with op.batch_alter_table('inbox_tasks', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_inbox_tasks_conversation_id'), ['conversation_id'], unique=False)

    # The audit log is append-only in the database too (same statements as
    # clinic.inbox.tables.AUDIT_TRIGGERS, copied: migrations don't import application code).
    for statement in AUDIT_TRIGGERS.get(op.get_bind().dialect.name, []):
        op.execute(statement)


def downgrade() -> None:
    with op.batch_alter_table('inbox_tasks', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_inbox_tasks_conversation_id'))

    op.drop_table('inbox_tasks')
    with op.batch_alter_table('inbox_messages', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_inbox_messages_ticket_id'))

    op.drop_table('inbox_messages')
    with op.batch_alter_table('inbox_tickets', schema=None) as batch_op:
        batch_op.drop_index('uq_inbox_tickets_active_conversation', sqlite_where=sa.text("state != 'resolved'"), postgresql_where=sa.text("state != 'resolved'"))
        batch_op.drop_index('ix_inbox_tickets_queue')
        batch_op.drop_index(batch_op.f('ix_inbox_tickets_conversation_id'))

    op.drop_table('inbox_tickets')
    op.drop_table('inbox_staff_teams')
    op.drop_table('inbox_staff')
    op.drop_table('inbox_settings')
    with op.batch_alter_table('inbox_audit', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_inbox_audit_conversation_id'))

    op.drop_table('inbox_audit')  # SQLite drops its triggers with the table
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS inbox_audit_append_only()")
