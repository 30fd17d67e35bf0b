"""Retention (issue 18): the audit log's oldest rows may be purged, below a retention anchor.

``inbox_audit`` stays append-only for updates. Deletes were refused outright; now a row may be
deleted only when its id is below the first row kept by the newest anchor row
(``action = 'audit_trimmed'``, detail ``{"kept_from": <prev_hash of the first row kept>}``),
which the purge appends before deleting (clinic/inbox/audit.py, clinic/retention.py). Same
statements as clinic.inbox.tables.AUDIT_TRIGGERS, copied: migrations don't import
application code. Idempotent: a database adopted by 0001 already has the new triggers.

Revision ID: 0015_audit_retention
Revises: 0014_outbox_queue
Create Date: 2026-12-06
"""

from alembic import op

revision = "0015_audit_retention"
down_revision = "0014_outbox_queue"
branch_labels = None
depends_on = None

_SQLITE_DELETE_GUARD = (
    "CREATE TRIGGER inbox_audit_no_delete BEFORE DELETE ON inbox_audit "
    "WHEN OLD.id >= COALESCE((SELECT k.id FROM inbox_audit k WHERE k.prev_hash = "
    "(SELECT json_extract(a.detail, '$.kept_from') FROM inbox_audit a "
    "WHERE a.action = 'audit_trimmed' ORDER BY a.id DESC LIMIT 1)), 0) "
    "BEGIN SELECT RAISE(ABORT, 'inbox_audit is append-only'); END"
)
_SQLITE_OLD_DELETE = (
    "CREATE TRIGGER inbox_audit_no_delete BEFORE DELETE ON inbox_audit "
    "BEGIN SELECT RAISE(ABORT, 'inbox_audit is append-only'); END"
)
_PG_DROP = [
    "DROP TRIGGER IF EXISTS inbox_audit_no_change ON inbox_audit",
    "DROP TRIGGER IF EXISTS inbox_audit_no_update ON inbox_audit",
    "DROP TRIGGER IF EXISTS inbox_audit_no_delete ON inbox_audit",
]
_PG_UPGRADE = [
    "CREATE OR REPLACE FUNCTION inbox_audit_append_only() RETURNS trigger AS $$ "
    "BEGIN RAISE EXCEPTION 'inbox_audit is append-only'; END; $$ LANGUAGE plpgsql",
    "CREATE TRIGGER inbox_audit_no_update BEFORE UPDATE ON inbox_audit "
    "FOR EACH ROW EXECUTE FUNCTION inbox_audit_append_only()",
    "CREATE OR REPLACE FUNCTION inbox_audit_delete_guard() RETURNS trigger AS $$ "
    "BEGIN IF OLD.id >= COALESCE((SELECT k.id FROM inbox_audit k WHERE k.prev_hash = "
    "(SELECT a.detail::json ->> 'kept_from' FROM inbox_audit a "
    "WHERE a.action = 'audit_trimmed' ORDER BY a.id DESC LIMIT 1)), 0) "
    "THEN RAISE EXCEPTION 'inbox_audit is append-only'; END IF; RETURN OLD; END; $$ LANGUAGE plpgsql",
    "CREATE TRIGGER inbox_audit_no_delete BEFORE DELETE ON inbox_audit "
    "FOR EACH ROW EXECUTE FUNCTION inbox_audit_delete_guard()",
]
_PG_DOWNGRADE = [
    "CREATE TRIGGER inbox_audit_no_change BEFORE UPDATE OR DELETE ON inbox_audit "
    "FOR EACH ROW EXECUTE FUNCTION inbox_audit_append_only()",
    "DROP FUNCTION IF EXISTS inbox_audit_delete_guard()",
]


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        op.execute("DROP TRIGGER IF EXISTS inbox_audit_no_delete")
        op.execute(_SQLITE_DELETE_GUARD)
    elif dialect == "postgresql":
        for statement in _PG_DROP + _PG_UPGRADE:
            op.execute(statement)


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        op.execute("DROP TRIGGER IF EXISTS inbox_audit_no_delete")
        op.execute(_SQLITE_OLD_DELETE)
    elif dialect == "postgresql":
        for statement in _PG_DROP + _PG_DOWNGRADE:
            op.execute(statement)
