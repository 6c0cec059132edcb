"""customers.tier: derived from completed jobs, none before the first (was "bronze" for
everyone); customers.gold_thanked_at: the one thank-you for reaching gold

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-11 10:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The shipped thresholds ([shops.tiers] defaults); a shop with others has its customers'
# tiers recomputed with them when dangol starts (core.tiers.recompute_shop).
_BACKFILL = """
UPDATE customers SET tier = CASE
    WHEN done >= 5 THEN 'gold' WHEN done >= 3 THEN 'silver' WHEN done >= 1 THEN 'bronze'
END
FROM (
    SELECT customer_id, count(*) AS done FROM jobs WHERE status = 'done' GROUP BY customer_id
) AS counted
WHERE counted.customer_id = customers.id
"""


def upgrade() -> None:
    # "bronze" was written for every customer, done jobs or not: nothing in it to keep.
    # Dropped and added again, nullable (NULL: no completed job yet) — a plain DROP/ADD
    # COLUMN on SQLite (3.35+), no batch rebuild of customers; the column is in no index.
    op.drop_column("customers", "tier")
    op.add_column("customers", sa.Column("tier", sa.String(length=10), nullable=True))
    op.add_column(
        "customers", sa.Column("gold_thanked_at", sa.DateTime(timezone=True), nullable=True)
    )
    op.execute(_BACKFILL)  # UPDATE … FROM: PostgreSQL, and SQLite since 3.33


def downgrade() -> None:
    op.drop_column("customers", "gold_thanked_at")
    op.drop_column("customers", "tier")
    op.add_column(
        "customers",
        sa.Column("tier", sa.String(length=10), nullable=False, server_default="bronze"),
    )
