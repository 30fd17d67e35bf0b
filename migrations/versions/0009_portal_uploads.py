"""Portal uploads: upload links bound to a conversation, and the encrypted files sent through them.

``portal_tokens`` gains ``conversation_id`` (where an upload goes; nullable: results links
are bound to a patient) and ``patient_id`` becomes nullable (an upload link may go to a
conversation whose patient has not booked yet). ``portal_uploads`` holds each file as an
AES-GCM ciphertext with its sniffed type, size and time; one upload per token.

Revision ID: 0009_portal_uploads
Revises: 0008_contact_languages
Create Date: 2026-12-10
"""

import sqlalchemy as sa
from alembic import op

revision = "0009_portal_uploads"
down_revision = "0008_contact_languages"
branch_labels = None
depends_on = None


def upgrade() -> None:
    inspector = sa.inspect(op.get_bind())
    # A database adopted by 0001 (tables made by create_all from newer models) may have them.
    columns = {c["name"]: c for c in inspector.get_columns("portal_tokens")}
    if "conversation_id" not in columns or not columns["patient_id"]["nullable"]:
        with op.batch_alter_table("portal_tokens") as batch:
            if "conversation_id" not in columns:
                batch.add_column(sa.Column("conversation_id", sa.String(length=128), nullable=True))
            batch.alter_column("patient_id", existing_type=sa.String(length=32), nullable=True)
    if inspector.has_table("portal_uploads"):
        return
    op.create_table(
        "portal_uploads",
        sa.Column("id", sa.String(length=24), nullable=False),
        sa.Column("token_id", sa.String(length=24), nullable=False),
        sa.Column("conversation_id", sa.String(length=128), nullable=False),
        sa.Column("patient_id", sa.String(length=32), nullable=True),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("media_type", sa.String(length=40), nullable=False),
        sa.Column("size_bytes", sa.Integer(), nullable=False),
        sa.Column("key_ref", sa.String(length=16), nullable=False),
        sa.Column("name_sealed", sa.LargeBinary(), nullable=False),
        sa.Column("content", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["token_id"], ["portal_tokens.id"],
                                name=op.f("fk_portal_uploads_token_id_portal_tokens")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_portal_uploads")),
        sa.UniqueConstraint("token_id", name=op.f("uq_portal_uploads_token_id")),
    )
    op.create_index("ix_portal_uploads_conversation", "portal_uploads", ["conversation_id", "created_at"],
                    unique=False)


def downgrade() -> None:
    op.drop_index("ix_portal_uploads_conversation", table_name="portal_uploads")
    op.drop_table("portal_uploads")
    # Upload links have no patient (or only a conversation): they cannot exist in the old schema.
    op.execute(sa.text("DELETE FROM portal_tokens WHERE purpose = 'upload' OR patient_id IS NULL"))
    with op.batch_alter_table("portal_tokens") as batch:
        batch.alter_column("patient_id", existing_type=sa.String(length=32), nullable=False)
        batch.drop_column("conversation_id")
