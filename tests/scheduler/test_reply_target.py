"""The second notice: the owner hears before a customer's reply target passes, once."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from conftest import kst, make_settings, shop_table
from sqlalchemy.engine import Connection

from core.db import Database
from core.models import Conversation, Customer, OutboxItem, Shop
from core.texts import Texts
from scheduler.planners.reply_target import warn_owners

START = kst(2026, 11, 23, 10, 0)
SHOP = make_settings(
    shops=[
        shop_table(
            owner={"name": "김사장", "phone": "010-2222-3333", "notify_via": ["console", "fake"]}
        )
    ],
    providers={"fake": {}},
).shops[0]


async def _waiting(database: Database) -> tuple[int, int]:
    def unit(conn: Connection) -> tuple[int, int]:
        shop = conn.execute(
            sa.insert(Shop)
            .values(slug="hanbit", name="한빛설비", owner_status="available", created_at=START)
            .returning(Shop.id)
        ).scalar_one()
        customer = conn.execute(
            sa.insert(Customer)
            .values(shop_id=shop, tier="bronze", tags=[], notes="", created_at=START)
            .returning(Customer.id)
        ).scalar_one()
        conv = conn.execute(
            sa.insert(Conversation)
            .values(
                shop_id=shop,
                customer_id=customer,
                channel="kakao",
                status="open",
                complaint=False,
                unread_count=1,
                waiting_since=START,
                sla_due_at=START + timedelta(minutes=30),
                last_message_at=START,
                created_at=START,
            )
            .returning(Conversation.id)
        ).scalar_one()
        return shop, conv

    return await database.write(unit)


async def _notices(database: Database) -> list[sa.Row[Any]]:
    async with database.read() as conn:
        return list((await conn.execute(sa.select(OutboxItem).order_by(OutboxItem.id))).all())


async def test_warns_once_shortly_before_the_target(database: Database) -> None:
    shop_id, conv = await _waiting(database)
    shops, texts = {shop_id: SHOP}, Texts()

    await database.write(warn_owners(shops, texts, START + timedelta(minutes=24)))
    assert await _notices(database) == []

    at = START + timedelta(minutes=26)
    await database.write(warn_owners(shops, texts, at))
    await database.write(warn_owners(shops, texts, at + timedelta(seconds=30)))  # the next tick
    notices = await _notices(database)
    assert sorted(n.provider for n in notices) == ["console", "fake"]
    assert (
        notices[0].payload["text"]
        == "[단골] 답변 목표(30분)가 곧 지나요 · 고객 #1 26분째 기다리는 중"
    )
    assert notices[0].payload["conversation_id"] == conv


async def test_no_warning_once_answered_and_a_new_one_for_the_next_wait(database: Database) -> None:
    shop_id, conv = await _waiting(database)
    shops, texts = {shop_id: SHOP}, Texts()
    await database.write(warn_owners(shops, texts, START + timedelta(minutes=26)))

    async def wait_again(since: object) -> None:
        def unit(conn: Connection) -> None:
            conn.execute(
                sa.update(Conversation)
                .where(Conversation.id == conv)
                .values(
                    waiting_since=since,
                    sla_due_at=None if since is None else since + timedelta(minutes=30),  # type: ignore[operator]
                )
            )

        await database.write(unit)

    await wait_again(None)  # the owner answered
    await database.write(warn_owners(shops, texts, START + timedelta(minutes=40)))
    assert len(await _notices(database)) == 2

    later = START + timedelta(hours=2)
    await wait_again(later)
    await database.write(warn_owners(shops, texts, later + timedelta(minutes=31)))
    texts_sent = [n.payload["text"] for n in await _notices(database)]
    assert len(texts_sent) == 4
    assert texts_sent[-1].startswith("[단골] 답변 목표(30분)가 지났어요")
