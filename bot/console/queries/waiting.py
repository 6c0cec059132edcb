"""What waiting for an answer means, shared by the header's count, the inbox's filter and
counts, and a conversation's page: who is waiting now, and how a wait compares with the
shop's reply target."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa

from core.models import Conversation

C = Conversation


def waiting_now(now: datetime) -> sa.ColumnElement[bool]:
    """Waiting for an answer now: a snoozed one only once its snooze is over."""
    return sa.and_(
        C.waiting_since.is_not(None),
        sa.or_(C.status == "open", sa.and_(C.status == "snoozed", C.snoozed_until <= now)),
    )


def level_of(waited_minutes: int | None, target_minutes: int) -> str:
    """Green under half the reply target, amber under it, red at or past it."""
    if waited_minutes is None:
        return "none"
    if waited_minutes * 2 < target_minutes:
        return "green"
    if waited_minutes < target_minutes:
        return "amber"
    return "red"
