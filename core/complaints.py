"""A complaint on a customer's conversation: the flag and its fix-within deadline.

A complaint keyword in a message (bot/inbound/decision.py, for a whole batch at once) and a
low satisfaction score (core/jobs/survey.py) open one the same way: `complaint` set, and
`complaint_due_at` = now + `complaint_fix_hours` — the first deadline kept while the
complaint stays open, so a second complaint does not push the owner's deadline back. The
console shows it; scheduler/planners/complaint_deadline.py warns the owner before it
passes; the send-time policy holds advertising while it is open.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from core.config import ShopConfig
from core.models import Conversation, UTCDateTime


def complaint_due(shop: ShopConfig, now: datetime) -> datetime:
    """When a complaint opened at `now` must be fixed by."""
    return now + timedelta(hours=shop.complaint_fix_hours)


def open_complaint(
    conn: Connection,
    shop: ShopConfig,
    shop_id: int,
    customer_id: int,
    now: datetime,
    *,
    prefer: int | None = None,
) -> int | None:
    """Open a complaint on the customer's conversation; returns its id.

    The customer's open conversation if they have one (a customer has one open at a time);
    otherwise `prefer` (the job's conversation) or else their latest is opened again, so
    the complaint shows in the owner's inbox. None when the customer has no conversation
    at all (booked by phone and never written): the owner's notice is all there is then.
    """
    C = Conversation
    ours = sa.and_(C.shop_id == shop_id, C.customer_id == customer_id)
    conversation_id = conn.execute(
        sa.select(C.id).where(ours, C.status != "resolved").limit(1)
    ).scalar()
    if conversation_id is None:
        conversation_id = conn.execute(
            sa.select(C.id)
            .where(ours)
            .order_by((C.id == (prefer or 0)).desc(), C.last_message_at.desc(), C.id.desc())
            .limit(1)
        ).scalar()
    if conversation_id is None:
        return None
    conn.execute(
        sa.update(C)
        .where(C.id == conversation_id)
        .values(
            complaint=True,
            # A complaint already open keeps its deadline; a resolved conversation opened
            # again starts a new one.
            complaint_due_at=sa.case(
                (
                    sa.and_(
                        C.complaint.is_(True),
                        C.status != "resolved",
                        C.complaint_due_at.is_not(None),
                    ),
                    C.complaint_due_at,
                ),
                else_=sa.bindparam("due", complaint_due(shop, now), type_=UTCDateTime()),
            ),
            status="open",
            resolved_at=None,
            snoozed_until=None,
        )
    )
    return int(conversation_id)
