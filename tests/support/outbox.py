"""Outbox rows and the shop and messages they belong to, written straight to the database,
for the dispatcher's tests."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from core.config import OutboxConfig
from core.db import Database
from core.models import Conversation, Customer, Message, Shop
from core.outbox import OUTBOX, OutboxRequest, enqueue

PHONE = "+821022223333"
CONFIG = OutboxConfig(
    tick_seconds=1.0,
    batch_size=50,
    lease_seconds=60,
    max_attempts=3,
    backoff_base_seconds=10.0,
    backoff_max_seconds=600.0,
)


async def add_shop(database: Database, now: datetime, slug: str = "hanbit") -> int:
    def unit(conn: Connection) -> int:
        return int(
            conn.execute(
                sa.insert(Shop)
                .values(slug=slug, name="한빛설비", owner_status="available", created_at=now)
                .returning(Shop.id)
            ).scalar_one()
        )

    return await database.write(unit)


async def add_message(database: Database, shop_id: int, now: datetime) -> int:
    """An outgoing message row in 'queued', as a handler would write it with its outbox row."""

    def unit(conn: Connection) -> int:
        customer = conn.execute(
            sa.insert(Customer)
            .values(shop_id=shop_id, name="손님", tier="bronze", tags=[], notes="", created_at=now)
            .returning(Customer.id)
        ).scalar_one()
        conversation = conn.execute(
            sa.insert(Conversation)
            .values(
                shop_id=shop_id,
                customer_id=customer,
                channel="sms",
                status="open",
                complaint=False,
                unread_count=0,
                last_message_at=now,
                created_at=now,
            )
            .returning(Conversation.id)
        ).scalar_one()
        return int(
            conn.execute(
                sa.insert(Message)
                .values(
                    shop_id=shop_id,
                    conversation_id=conversation,
                    customer_id=customer,
                    direction="out",
                    sender="owner",
                    channel="sms",
                    body="내일 10시에 방문드릴게요",
                    payload={},
                    status="queued",
                    created_at=now,
                )
                .returning(Message.id)
            ).scalar_one()
        )

    return await database.write(unit)


async def put(
    database: Database,
    shop_id: int,
    now: datetime,
    *,
    count: int = 1,
    provider: str = "fake",
    key: str = "k",
    message_id: int | None = None,
    phone: str = PHONE,
    **payload: Any,
) -> list[int]:
    def unit(conn: Connection) -> list[int]:
        ids = []
        for i in range(count):
            new = enqueue(
                conn,
                OutboxRequest(
                    shop_id=shop_id,
                    purpose="reply",
                    provider=provider,
                    recipient={"phone": phone, "name": "손님"},
                    payload={"text": f"안녕하세요 {i}", **payload},
                    idempotency_key=f"{key}:{i}",
                    now=now,
                    message_id=message_id,
                ),
            )
            assert new is not None
            ids.append(new)
        return ids

    return await database.write(unit)


async def row(database: Database, outbox_id: int) -> sa.RowMapping:
    async with database.read() as conn:
        result = await conn.execute(sa.select(OUTBOX).where(OUTBOX.c.id == outbox_id))
        return result.mappings().one()


async def message(database: Database, message_id: int) -> sa.RowMapping:
    async with database.read() as conn:
        result = await conn.execute(sa.select(Message.__table__).where(Message.id == message_id))
        return result.mappings().one()


class Sleeps:
    """Stands in for asyncio.sleep in the dispatcher's in-call retries."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)
