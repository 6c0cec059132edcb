"""Ask about deliveries that no webhook will report (the Kakao Event API), and fall back.

A provider with `Capability.DELIVERY_BY_LOOKUP` says "accepted" when it takes a message and
tells the outcome only when asked. For a while after each such send this planner asks
(`lookup` with the provider's id): delivered → the message is delivered; refused for this
customer (not a friend of the channel, blocked) → the reply moves down its path chain
(`core.replies.fall_back`: AlimTalk or SMS when the phone is known, else the mailbox), so the
owner's words still reach them and the console says what happened. Still pending, or the
vendor cannot be asked right now → asked again on the next tick, until `WINDOW` has passed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from core.config import ShopConfig
from core.db import Database
from core.delivery import status_changed
from core.outbox import MESSAGES, OUTBOX
from core.replies import fall_back
from providers.base import Capability, PermanentError, ProviderError, SendRef, SendResult
from providers.registry import Providers

log = logging.getLogger("dangol.delivery_check")

WINDOW = timedelta(minutes=30)  # Kakao finishes a talk in seconds; past this, stop asking
BATCH = 100

_TO_ASK = (
    sa.select(
        OUTBOX.c.id,
        OUTBOX.c.shop_id,
        OUTBOX.c.provider,
        OUTBOX.c.provider_ref,
        OUTBOX.c.sent_at,
        OUTBOX.c.message_id,
    )
    .join(MESSAGES, MESSAGES.c.id == OUTBOX.c.message_id)
    .where(
        OUTBOX.c.status == "sent",
        OUTBOX.c.provider.in_(sa.bindparam("providers", expanding=True)),
        OUTBOX.c.sent_at > sa.bindparam("since"),
        OUTBOX.c.provider_ref.is_not(None),
        MESSAGES.c.status == "sent",
    )
    .order_by(OUTBOX.c.sent_at)
    .limit(BATCH)
)

Verdict = SendResult | PermanentError | None


Changed = list[tuple[int, int, str]]  # (shop id, message id, new status)


async def check_deliveries(
    database: Database, providers: Providers, shops: Mapping[int, ShopConfig], now: datetime
) -> Changed:
    """One round; returns the messages that changed (the consoles hear of each after the
    commit: `core.delivery.StatusChanged`)."""
    asked = [
        name for name in providers if Capability.DELIVERY_BY_LOOKUP in providers[name].capabilities
    ]
    if not asked:
        return []
    async with database.read() as conn:
        rows = (await conn.execute(_TO_ASK, {"providers": asked, "since": now - WINDOW})).all()
    if not rows:
        return []
    verdicts = await asyncio.gather(*(_ask(providers, row) for row in rows))
    answered = [(row, v) for row, v in zip(rows, verdicts, strict=True) if v is not None]
    if not answered:
        return []
    changed: Changed = await database.write(_apply(answered, shops, now))
    return changed


async def _ask(providers: Providers, row: Any) -> Verdict:
    provider = providers[row.provider]
    try:
        result = await provider.lookup(SendRef(str(row.id), row.provider_ref, row.sent_at))
    except PermanentError as refused:
        return refused
    except (ProviderError, OSError, TimeoutError) as exc:  # cannot ask now: next tick
        log.info("outbox %d: delivery lookup at %s: %s", row.id, row.provider, exc)
        return None
    if result is None or result.status != "delivered":
        return None
    return result


def _apply(
    answered: list[tuple[Any, SendResult | PermanentError]],
    shops: Mapping[int, ShopConfig],
    now: datetime,
) -> Any:
    def unit(conn: Connection) -> Changed:
        changed: Changed = []
        for row, verdict in answered:
            if isinstance(verdict, SendResult):
                if conn.execute(
                    sa.update(MESSAGES)
                    .where(MESSAGES.c.id == row.message_id, MESSAGES.c.status == "sent")
                    .values(status="delivered", delivered_at=now)
                ).rowcount:
                    changed.append((row.shop_id, row.message_id, "delivered"))
                    status_changed(row.shop_id, row.message_id, "delivered")
                continue
            shop = shops.get(row.shop_id)
            if shop is None:
                continue
            still_sent = conn.execute(
                sa.select(MESSAGES.c.status).where(MESSAGES.c.id == row.message_id)
            ).scalar_one()
            if still_sent != "sent":
                continue  # another process got here first
            path = fall_back(row.shop_id, row.message_id, verdict.describe(), shop.delivery, now)(
                conn
            )
            log.info(
                "outbox %d: %s refused (%s); reply now %s",
                row.id,
                row.provider,
                verdict.describe(),
                path.name if path else "failed",
            )
            new_status = {"mailbox": "held"}.get(path.name, "queued") if path else "failed"
            changed.append((row.shop_id, row.message_id, new_status))
            status_changed(row.shop_id, row.message_id, new_status)
        return changed

    return unit
