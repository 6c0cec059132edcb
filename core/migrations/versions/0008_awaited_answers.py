"""customers.awaiting(_until): the answer the shop awaits (a score, a reminder reply);
conversations by complaint deadline

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04 10:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Plain ADD COLUMNs of nullable columns: no batch rebuild of customers on SQLite.
    op.add_column("customers", sa.Column("awaiting", sa.String(length=40), nullable=True))
    op.add_column(
        "customers", sa.Column("awaiting_until", sa.DateTime(timezone=True), nullable=True)
    )
    op.create_index(
        "ix_conversations_complaint_due", "conversations", ["complaint_due_at"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_conversations_complaint_due", table_name="conversations")
    # SQLite (3.35+) drops a column in place; it is in no index or constraint.
    op.drop_column("customers", "awaiting_until")
    op.drop_column("customers", "awaiting")
