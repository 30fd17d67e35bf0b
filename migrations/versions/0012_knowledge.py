"""The clinic's approved documents (issue 17): documents, their versions under review, and
the passages the assistant may quote (clinic/knowledge/).

Revision ID: 0012_knowledge
Revises: 0011_outbox_recovery
Create Date: 2026-12-14
"""

import sqlalchemy as sa
from alembic import op

revision = "0012_knowledge"
down_revision = "0011_outbox_recovery"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A database adopted by 0001 (tables made by create_all from newer models) may have them.
    if sa.inspect(op.get_bind()).has_table("knowledge_documents"):
        return
    op.create_table(
        "knowledge_documents",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("topic", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=100), nullable=False),
        sa.Column("retired_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("retired_by", sa.String(length=100), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_knowledge_documents")),
    )
    op.create_table(
        "knowledge_versions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("document_id", sa.Integer(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=12), nullable=False),
        sa.Column("kind", sa.String(length=12), nullable=False),
        sa.Column("source_name", sa.String(length=300), nullable=False),
        sa.Column("url", sa.String(length=500), nullable=True),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("uploaded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("uploaded_by", sa.String(length=100), nullable=False),
        sa.Column("reviewed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("reviewed_by", sa.String(length=100), nullable=True),
        sa.Column("note", sa.String(length=500), nullable=True),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["document_id"], ["knowledge_documents.id"],
                                name=op.f("fk_knowledge_versions_document_id_knowledge_documents")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_knowledge_versions")),
        sa.UniqueConstraint("document_id", "number", name="uq_knowledge_versions_document_number"),
    )
    op.create_index("ix_knowledge_versions_state", "knowledge_versions", ["state"], unique=False)
    op.create_table(
        "knowledge_passages",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("language", sa.String(length=16), nullable=False),
        sa.Column("locator", sa.String(length=200), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("terms", sa.Text(), nullable=False),
        sa.Column("phi_rules", sa.String(length=200), nullable=True),
        sa.ForeignKeyConstraint(["version_id"], ["knowledge_versions.id"],
                                name=op.f("fk_knowledge_passages_version_id_knowledge_versions")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_knowledge_passages")),
    )
    op.create_index("ix_knowledge_passages_version", "knowledge_passages", ["version_id", "seq"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_knowledge_passages_version", table_name="knowledge_passages")
    op.drop_table("knowledge_passages")
    op.drop_index("ix_knowledge_versions_state", table_name="knowledge_versions")
    op.drop_table("knowledge_versions")
    op.drop_table("knowledge_documents")
