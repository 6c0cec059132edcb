"""the consent notices the law asks for (14-day result, 2-year reconfirmation)

Reserved in the chain for the consent-housekeeping work, which fills it in; until then it changes nothing.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-12 10:00:00.000000
"""

from collections.abc import Sequence

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
