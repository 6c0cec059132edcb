"""What the console changes: one unit per action, each scoped by shop, audit-logged and
announced to the shop's live consoles when it commits — one module per thing changed:
a conversation (`conversation`), the owner's status (`owner`), a customer (`customer`) and
the saved replies (`saved_replies`). This module holds what they share: the two refusals
and the audit entry.

Units run through `Database.write`; what they `announce` reaches the consoles after the
commit. A conversation or customer of another shop is `NotFound` (the view answers 404,
the same as an id that does not exist).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from bot.console.viewer import Viewer
from core.models import AuditEntry


class NotFound(Exception):
    """No such object in the viewer's shop."""


class Refused(Exception):
    """The action does not apply to the object as it is now."""

    def __init__(self, code: str, *, other: int | None = None) -> None:
        super().__init__(code)
        self.code = code  # resolved | other_open
        self.other = other  # reopen: the customer's conversation that is open already


def audit(
    conn: Connection,
    viewer: Viewer,
    action: str,
    subject: str,
    now: datetime,
    detail: dict[str, Any] | None = None,
) -> None:
    conn.execute(
        sa.insert(AuditEntry).values(
            shop_id=viewer.shop_id,
            actor=viewer.actor,
            action=action,
            subject=subject,
            detail=detail or {},
            created_at=now,
        )
    )
