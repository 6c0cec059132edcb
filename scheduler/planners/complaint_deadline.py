"""A second notice to the owner before an open complaint's deadline passes.

The first notice goes when the complaint opens (a complaint keyword in bot.inbound, a low
satisfaction score in core/jobs/survey.py); this one goes `WARN_BEFORE` the deadline
(`complaint_due_at`, 24 hours by default) if the conversation still is not resolved — once
per complaint, whichever process or tick gets there first (the idempotency key carries the
deadline, which stays put while the complaint is open). A deadline that passed while the
server was down gets a late "missed" notice, within `LOOK_BACK`. One statement a tick finds
every shop's due complaints (the deadline is indexed).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from core.config import ShopConfig
from core.models import Conversation
from core.notices import owner_notices
from core.outbox import OutboxRequest, enqueue_many
from core.texts import Texts, korean_duration

WARN_BEFORE = timedelta(hours=3)
LOOK_BACK = timedelta(hours=12)
BATCH = 200

_DUE_SOON = (
    sa.select(
        Conversation.id,
        Conversation.shop_id,
        Conversation.customer_id,
        Conversation.complaint_due_at,
    )
    .where(
        Conversation.complaint_due_at <= sa.bindparam("horizon"),
        Conversation.complaint_due_at > sa.bindparam("since"),
        Conversation.complaint.is_(True),
        Conversation.status != "resolved",
        Conversation.shop_id.in_(sa.bindparam("shop_ids", expanding=True)),
    )
    .order_by(Conversation.complaint_due_at)
    .limit(BATCH)
)


def warn_before_complaint_deadlines(
    shops: Mapping[int, ShopConfig], texts: Texts, now: datetime
) -> Callable[[Connection], int]:
    """A unit: queue the warnings that are due; returns how many rows it offered (a row
    whose key is taken — warned already — is skipped by the outbox)."""

    def unit(conn: Connection) -> int:
        rows: list[OutboxRequest] = []
        due = conn.execute(
            _DUE_SOON,
            {"horizon": now + WARN_BEFORE, "since": now - LOOK_BACK, "shop_ids": list(shops)},
        )
        for conv in due:
            shop = shops[conv.shop_id]
            missed = conv.complaint_due_at <= now
            left = conv.complaint_due_at - now
            label = f"고객 #{conv.customer_id}"
            text = texts.render(
                "owner_complaint_due",
                shop=shop,
                customer_label=label,
                left=left,
                due_local=conv.complaint_due_at.astimezone(shop.timezone),
                missed=missed,
            )
            deadline = int(conv.complaint_due_at.timestamp())
            rows += owner_notices(
                shop,
                conv.shop_id,
                conv.id,
                text=text,
                kind="불만 해결 기한 지남" if missed else "불만 해결 기한 임박",
                customer_label=label,
                content="기한 지남" if missed else f"{korean_duration(left)} 남음",
                key=_key(conv.id, deadline),
                now=now,
            )
        enqueue_many(conn, rows)
        return len(rows)

    return unit


def _key(conversation_id: int, deadline: int) -> Callable[[str], str]:
    """Each provider's idempotency key: one warning per complaint, whatever ticks it."""
    return lambda provider: f"complaint-due:{provider}:{conversation_id}:{deadline}"
