"""users.display_name: the name customers and colleagues see on a reply

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03 13:50:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Empty means "not set": the console then says 사장님 for an owner, the login for staff.
    # A plain ADD COLUMN (no batch rebuild on SQLite, which would lose the expression index
    # on lower(username)); the default fills the existing rows.
    op.add_column(
        "users",
        sa.Column("display_name", sa.String(length=40), nullable=False, server_default=sa.text("''")),
    )


def downgrade() -> None:
    op.drop_column("users", "display_name")
