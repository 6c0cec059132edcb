"""A second notice to the owner when a customer's 30-minute reply target is about to pass.

The first notice goes when the customer starts waiting (bot.inbound); this one goes a few
minutes before `sla_due_at` if nobody has answered by then — once per waiting period,
whichever process or tick gets there first (the idempotency key carries the period's start).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from math import ceil

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from core.config import ShopConfig
from core.models import Conversation
from core.notices import owner_notices
from core.outbox import OutboxRequest, enqueue_many
from core.texts import Texts

WARN_BEFORE = timedelta(minutes=5)
# Targets missed longer ago than this get no late notice (after downtime, say): the owner
# has the inbox for those, and the query stays bounded by the last hour's traffic.
LOOK_BACK = timedelta(hours=1)
BATCH = 200

_DUE_SOON = (
    sa.select(
        Conversation.id,
        Conversation.shop_id,
        Conversation.customer_id,
        Conversation.waiting_since,
        Conversation.sla_due_at,
    )
    .where(
        Conversation.status == "open",
        Conversation.waiting_since.is_not(None),
        Conversation.sla_due_at <= sa.bindparam("horizon"),
        Conversation.sla_due_at > sa.bindparam("since"),
        Conversation.shop_id.in_(sa.bindparam("shop_ids", expanding=True)),
    )
    .order_by(Conversation.sla_due_at)
    .limit(BATCH)
)


def warn_owners(
    shops: Mapping[int, ShopConfig], texts: Texts, now: datetime
) -> Callable[[Connection], int]:
    """A unit: queue the warnings that are due; returns how many rows it offered."""

    def unit(conn: Connection) -> int:
        rows: list[OutboxRequest] = []
        due = conn.execute(
            _DUE_SOON,
            {"horizon": now + WARN_BEFORE, "since": now - LOOK_BACK, "shop_ids": list(shops)},
        )
        for conv in due:
            shop = shops[conv.shop_id]
            waited = max(1, ceil((now - conv.waiting_since).total_seconds() / 60))
            label = f"고객 #{conv.customer_id}"
            missed = conv.sla_due_at <= now
            text = texts.render(
                "owner_reply_target",
                shop=shop,
                customer_label=label,
                waited_minutes=waited,
                missed=missed,
            )
            period = int(conv.waiting_since.timestamp())
            rows += owner_notices(
                shop,
                conv.shop_id,
                conv.id,
                text=text,
                kind="답변 목표 지남" if missed else "답변 목표 임박",
                customer_label=label,
                content=f"{waited}분째 기다리는 중",
                key=lambda provider: f"reply-target:{provider}:{conv.id}:{period}",
                now=now,
            )
        enqueue_many(conn, rows)
        return len(rows)

    return unit
