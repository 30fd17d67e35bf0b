"""Several gateway workers on one database (issue 16): leases on inbox rows, and the worker
that claimed an outbound row.

``wa_inbox`` gains ``lease_owner`` and ``lease_until`` (a worker holds a ``processing`` row
until then, renewing it while the turn runs; only an expired lease, or a worker known dead,
lets another take the row back); ``wa_outbound`` gains ``lease_owner`` (who is sending a
``sending`` row: another worker leaves it alone while that worker lives).

Revision ID: 0016_worker_leases
Revises: 0015_audit_retention
Create Date: 2026-12-18
"""

import sqlalchemy as sa
from alembic import op

revision = "0016_worker_leases"
down_revision = "0015_audit_retention"
branch_labels = None
depends_on = None


def upgrade() -> None:
    inspector = sa.inspect(op.get_bind())
    # A database adopted by 0001 (tables made by create_all from newer models) may have them.
    if "lease_owner" not in {c["name"] for c in inspector.get_columns("wa_inbox")}:
        with op.batch_alter_table("wa_inbox") as batch:
            batch.add_column(sa.Column("lease_owner", sa.String(length=120), nullable=True))
            batch.add_column(sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True))
    if "lease_owner" not in {c["name"] for c in inspector.get_columns("wa_outbound")}:
        with op.batch_alter_table("wa_outbound") as batch:
            batch.add_column(sa.Column("lease_owner", sa.String(length=120), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("wa_outbound") as batch:
        batch.drop_column("lease_owner")
    with op.batch_alter_table("wa_inbox") as batch:
        batch.drop_column("lease_until")
        batch.drop_column("lease_owner")
