"""A shop's customers and jobs written straight to the database, for the journey's tests."""

from __future__ import annotations

from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from core.config import ShopConfig
from core.db import Database
from core.jobs import Booking, book
from core.models import Conversation, Customer, CustomerIdentity, JourneyStep

PHONE = "+821055556666"


async def add_customer(
    database: Database,
    shop_id: int,
    now: datetime,
    *,
    channel: str = "sms",
    phone: str | None = PHONE,
    name: str = "김민수",
) -> tuple[int, int]:
    """A customer with one open conversation on `channel`: (customer id, conversation id)."""

    def unit(conn: Connection) -> tuple[int, int]:
        customer = conn.execute(
            sa.insert(Customer)
            .values(shop_id=shop_id, name=name, tags=[], notes="", created_at=now)
            .returning(Customer.id)
        ).scalar_one()
        if phone:
            conn.execute(
                sa.insert(CustomerIdentity).values(
                    shop_id=shop_id, customer_id=customer, kind="phone", value=phone, created_at=now
                )
            )
        conversation = conn.execute(
            sa.insert(Conversation)
            .values(
                shop_id=shop_id,
                customer_id=customer,
                channel=channel,
                status="open",
                complaint=False,
                unread_count=0,
                last_message_at=now,
                created_at=now,
            )
            .returning(Conversation.id)
        ).scalar_one()
        return int(customer), int(conversation)

    return await database.write(unit)


async def book_job(
    database: Database,
    shop: ShopConfig,
    shop_id: int,
    customer_id: int,
    now: datetime,
    *,
    starts_at: datetime,
    service: str = "aircon",
    hours: int = 2,
    **fields: object,
) -> int:
    booking = Booking(
        shop_id=shop_id,
        customer_id=customer_id,
        service=service,
        starts_at=starts_at,
        ends_at=starts_at + timedelta(hours=hours),
        address="서울시 마포구 월드컵로 12",
        **fields,  # type: ignore[arg-type]
    )
    return await database.write(book(shop, booking, "user:1", now))


async def steps(database: Database, job_id: int) -> list[sa.RowMapping]:
    """The job's journey steps, in the order they were planned."""
    async with database.read() as conn:
        result = await conn.execute(
            sa.select(JourneyStep.__table__)
            .where(JourneyStep.job_id == job_id)
            .order_by(JourneyStep.id)
        )
        return list(result.mappings())
