"""conversations (shop_id, customer_id, last_message_at): the 고객 tab's order

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03 14:40:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Each customer's latest conversation time, for the customer list's "newest activity
    # first", without reading the conversations themselves.
    op.create_index(
        "ix_conversations_customer_activity",
        "conversations",
        ["shop_id", "customer_id", "last_message_at"],
    )


def downgrade() -> None:
    op.drop_index("ix_conversations_customer_activity", table_name="conversations")
