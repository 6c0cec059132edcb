"""The second notice: the owner hears before an open complaint's deadline passes, once —
and a complaint resolved in time, or another shop's, is none of its business."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from conftest import Client, kst, make_settings, shop_table
from sqlalchemy.engine import Connection
from support.kakao import post, rows, said
from support.settle import settled

from bot import keys
from core.clock import FrozenClock
from core.db import Database
from core.models import Conversation, Customer, OutboxItem, Shop
from core.texts import Texts
from scheduler.planners.complaint_deadline import (
    LOOK_BACK,
    WARN_BEFORE,
    warn_before_complaint_deadlines,
)

OPENED = kst(2026, 11, 23, 10, 0)
DUE = OPENED + timedelta(hours=24)
SHOP = make_settings(
    shops=[
        shop_table(
            owner={"name": "김사장", "phone": "010-2222-3333", "notify_via": ["console", "fake"]}
        )
    ],
    providers={"fake": {}},
).shops[0]
TEXTS = Texts()


async def _complaint(
    database: Database, *, slug: str = "hanbit", status: str = "open", due: datetime = DUE
) -> tuple[int, int, int]:
    """(shop id, customer id, conversation id) of a conversation with a complaint open."""

    def unit(conn: Connection) -> tuple[int, int, int]:
        shop = conn.execute(sa.select(Shop.id).where(Shop.slug == slug)).scalar()
        if shop is None:
            shop = conn.execute(
                sa.insert(Shop)
                .values(slug=slug, name="한빛설비", owner_status="available", created_at=OPENED)
                .returning(Shop.id)
            ).scalar_one()
        customer = conn.execute(
            sa.insert(Customer)
            .values(shop_id=shop, tier="bronze", tags=[], notes="", created_at=OPENED)
            .returning(Customer.id)
        ).scalar_one()
        conv = conn.execute(
            sa.insert(Conversation)
            .values(
                shop_id=shop,
                customer_id=customer,
                channel="kakao",
                status=status,
                complaint=True,
                complaint_due_at=due,
                unread_count=1,
                last_message_at=OPENED,
                created_at=OPENED,
            )
            .returning(Conversation.id)
        ).scalar_one()
        return int(shop), int(customer), int(conv)

    return await database.write(unit)


async def _notices(database: Database) -> list[sa.Row[Any]]:
    async with database.read() as conn:
        return list((await conn.execute(sa.select(OutboxItem).order_by(OutboxItem.id))).all())


async def _tick(database: Database, shop_id: int, at: datetime) -> int:
    return await database.write(warn_before_complaint_deadlines({shop_id: SHOP}, TEXTS, at))


async def test_warns_once_some_hours_before_the_deadline(database: Database) -> None:
    shop_id, customer, conv = await _complaint(database)

    assert await _tick(database, shop_id, DUE - WARN_BEFORE - timedelta(minutes=1)) == 0
    assert await _notices(database) == []

    at = DUE - timedelta(hours=2, minutes=30)
    await _tick(database, shop_id, at)
    await _tick(database, shop_id, at + timedelta(minutes=1))  # the next tick
    await _tick(database, shop_id, DUE + timedelta(minutes=1))  # past it: warned already
    notices = await _notices(database)
    assert sorted(n.provider for n in notices) == ["console", "fake"]
    assert {n.payload["text"] for n in notices} == {
        f"[단골] 불만 해결 기한(10:00)까지 약 2시간 30분 남았어요 · 고객 #{customer}"
    }
    assert {n.payload["conversation_id"] for n in notices} == {conv}
    assert {n.purpose for n in notices} == {"owner_notification"}


async def test_a_deadline_missed_while_down_is_told_late_within_the_look_back(
    database: Database,
) -> None:
    shop_id, customer, _ = await _complaint(database)
    await _tick(database, shop_id, DUE + LOOK_BACK + timedelta(minutes=1))  # too long ago
    assert await _notices(database) == []
    await _tick(database, shop_id, DUE + timedelta(hours=1))
    notices = await _notices(database)
    assert {n.payload["text"] for n in notices} == {
        f"[단골] 불만 해결 기한(24시간)이 지났어요 · 고객 #{customer}"
    }


async def test_a_resolved_conversation_or_no_complaint_gets_no_warning(database: Database) -> None:
    shop_id, _, _ = await _complaint(database, status="resolved")
    _, _, conv = await _complaint(database)

    def settled_complaint(conn: Connection) -> None:
        conn.execute(sa.update(Conversation).where(Conversation.id == conv).values(complaint=False))

    await database.write(settled_complaint)
    await _tick(database, shop_id, DUE - timedelta(hours=1))
    assert await _notices(database) == []


async def test_each_complaint_is_warned_of_in_one_pass(database: Database) -> None:
    shop_id, _, first = await _complaint(database)
    _, _, second = await _complaint(database, due=DUE + timedelta(minutes=30))
    _, _, later = await _complaint(database, due=DUE + timedelta(hours=5))
    offered = await _tick(database, shop_id, DUE - timedelta(hours=1))
    assert offered == 4  # two complaints, two ways to hear
    warned = {n.payload["conversation_id"] for n in await _notices(database)}
    assert warned == {first, second}
    assert later not in warned


async def test_only_the_shops_given_are_looked_at(database: Database) -> None:
    shop_id, _, _ = await _complaint(database)
    other, _, _ = await _complaint(database, slug="other")
    await database.write(
        warn_before_complaint_deadlines({other: SHOP}, TEXTS, DUE - timedelta(hours=1))
    )
    notices = await _notices(database)
    assert {n.shop_id for n in notices} == {other}
    assert shop_id != other


async def test_the_app_ticks_it(
    make_client: Callable[..., Awaitable[Client]], clock: FrozenClock
) -> None:
    client = await make_client()
    assert client.app is not None
    await post(client, said("환불해 주세요. 또 고장났어요"))  # a complaint keyword
    (conv,) = await rows(client, Conversation)
    assert conv.complaint
    clock.set(conv.complaint_due_at - timedelta(hours=1))
    client.app[keys.TICKS].wake("complaint_deadline")
    await settled(client.app)
    keys_sent = [n.idempotency_key for n in await rows(client, OutboxItem)]
    due = int(conv.complaint_due_at.timestamp())
    assert f"complaint-due:console:{conv.id}:{due}" in keys_sent
