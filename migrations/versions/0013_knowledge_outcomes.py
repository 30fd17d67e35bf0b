"""What the dialogue's document searches led to (issue 17, analytics): answered / not found
per document and language, and whether a person was asked for right after. Counts only; no
question text is stored.

Revision ID: 0013_knowledge_outcomes
Revises: 0012_knowledge
Create Date: 2026-12-15
"""

import sqlalchemy as sa
from alembic import op

revision = "0013_knowledge_outcomes"
down_revision = "0012_knowledge"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A database adopted by 0001 (tables made by create_all from newer models) may have it.
    if sa.inspect(op.get_bind()).has_table("knowledge_outcomes"):
        return
    op.create_table(
        "knowledge_outcomes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("language", sa.String(length=16), nullable=False),
        sa.Column("outcome", sa.String(length=12), nullable=False),
        sa.Column("document_id", sa.Integer(), nullable=True),
        sa.Column("contact_key", sa.String(length=64), nullable=False),
        sa.Column("handed_over", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(["document_id"], ["knowledge_documents.id"],
                                name=op.f("fk_knowledge_outcomes_document_id_knowledge_documents")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_knowledge_outcomes")),
    )
    op.create_index("ix_knowledge_outcomes_at", "knowledge_outcomes", ["at"], unique=False)
    op.create_index("ix_knowledge_outcomes_contact", "knowledge_outcomes", ["contact_key", "id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_knowledge_outcomes_contact", table_name="knowledge_outcomes")
    op.drop_index("ix_knowledge_outcomes_at", table_name="knowledge_outcomes")
    op.drop_table("knowledge_outcomes")
