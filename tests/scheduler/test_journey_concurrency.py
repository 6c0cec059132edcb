"""Two journey planners at once — two processes on one database — send every step once."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from datetime import timedelta

import asyncpg
import pytest
import sqlalchemy as sa
from conftest import PG_URL, kst, make_settings, shop_table
from support.jobs import add_customer, book_job, steps
from support.outbox import add_shop

from core.clock import FrozenClock
from core.db import Database
from core.models import Message, OutboxItem
from core.texts import Texts
from scheduler.planners.journey import send_due_steps

JOBS = 20
PUBLIC = "https://hanbit.example"
SHOP = make_settings(shops=[shop_table(delivery={"sms": "fake"})], providers={"fake": {}}).shops[0]


@pytest.fixture
async def two(db_url: tuple[str, str | None]) -> AsyncIterator[tuple[Database, Database]]:
    url, schema = db_url
    first, second = Database(url, search_path=schema), Database(url, search_path=schema)
    await first.start()
    await second.start()
    try:
        yield first, second
    finally:
        await first.close()
        await second.close()


async def test_two_planners_at_once_send_each_step_once(
    two: tuple[Database, Database], clock: FrozenClock
) -> None:
    first, second = two
    now = clock.now()
    shop_id = await add_shop(first, now)
    jobs = []
    for n in range(JOBS):
        customer, _ = await add_customer(first, shop_id, now, phone=f"+82105555{n:04d}")
        jobs.append(
            await book_job(first, SHOP, shop_id, customer, now, starts_at=kst(2026, 11, 26, 14))
        )
    texts, shops = Texts(), {shop_id: SHOP}

    async def run(database: Database, at: timedelta) -> Counter[str]:
        return await send_due_steps(database, shops, texts, PUBLIC, now + at, batch=3)

    # The confirmations, then the reminders: each time both planners at once, twice over.
    for at in (timedelta(0), timedelta(days=2, hours=8)):
        outcomes = await asyncio.gather(run(first, at), run(second, at), run(first, at))
        assert sum(o["sent"] for o in outcomes) == JOBS

    async with first.read() as conn:
        keys = (await conn.execute(sa.select(OutboxItem.idempotency_key))).scalars().all()
        messages = (await conn.execute(sa.select(sa.func.count()).select_from(Message))).scalar()
    assert len(keys) == len(set(keys)) == 2 * JOBS
    assert messages == 2 * JOBS
    for job in jobs:
        assert {r["status"] for r in await steps(first, job)} == {"sent"}


@pytest.mark.postgres
async def test_a_step_another_planner_holds_is_left_to_it(
    pg_url: tuple[str, str], clock: FrozenClock
) -> None:
    url, schema = pg_url
    database = Database(url, search_path=schema)
    await database.start()
    other = await asyncpg.connect(
        PG_URL.replace("postgresql+asyncpg", "postgresql"), server_settings={"search_path": schema}
    )
    try:
        now = clock.now()
        shop_id = await add_shop(database, now)
        customer, _ = await add_customer(database, shop_id, now)
        held = await book_job(
            database, SHOP, shop_id, customer, now, starts_at=kst(2026, 11, 26, 14)
        )
        free = await book_job(
            database, SHOP, shop_id, customer, now, starts_at=kst(2026, 11, 27, 14)
        )
        # Another process's planner has taken the first job's confirmation, not yet committed.
        transaction = other.transaction()
        await transaction.start()
        await other.execute("SELECT id FROM journey_steps WHERE job_id = $1 FOR UPDATE", held)
        shops = {shop_id: SHOP}
        assert await send_due_steps(database, shops, Texts(), PUBLIC, now) == Counter(sent=1)
        assert {r["key"]: r["status"] for r in await steps(database, free)}[
            "confirmation:r1"
        ] == "sent"
        assert {r["key"]: r["status"] for r in await steps(database, held)}[
            "confirmation:r1"
        ] == "planned"
        await transaction.rollback()  # it crashed: the step is free again
        assert await send_due_steps(database, shops, Texts(), PUBLIC, now) == Counter(sent=1)
    finally:
        await other.close()
        await database.close()
