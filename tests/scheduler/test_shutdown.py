"""Stopping (SIGTERM) while the outbox is busy (issue 10, defect 6): the dispatcher claims
nothing more from the moment it is asked to stop, and finishes the batch it holds. The
waits are awaitable hooks (a provider that holds its send until released), not sleeps."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import sqlalchemy as sa
from conftest import Client
from sqlalchemy.engine import Connection

from bot import keys
from core.clock import FrozenClock
from core.config import OutboxConfig
from core.db import Database
from core.models import OutboxItem, Shop
from core.outbox import OutboxRequest, enqueue
from providers.base import Outgoing, ProviderError, SendResult
from providers.fake import FakeProvider
from providers.registry import Providers
from scheduler.dispatch import Dispatcher
from scheduler.loop import Ticks

BATCH = 2


class HeldProvider(FakeProvider):
    """Holds its first send until released: the batch in the dispatcher's hands."""

    def __init__(self) -> None:
        super().__init__()
        self.holding = asyncio.Event()
        self.release = asyncio.Event()

    async def send(self, batch: Sequence[Outgoing]) -> Sequence[SendResult | ProviderError]:
        if not self.holding.is_set():
            self.holding.set()
            await self.release.wait()
        return await super().send(batch)


async def no_sleep(_seconds: float) -> None:
    return None


async def queue(database: Database, now: object, count: int, provider: str) -> list[int]:
    def unit(conn: Connection) -> list[int]:
        shop_id = conn.execute(sa.select(Shop.id).where(Shop.slug == "hanbit")).scalar()
        if shop_id is None:
            shop_id = conn.execute(
                sa.insert(Shop)
                .values(slug="hanbit", name="한빛설비", created_at=now)
                .returning(Shop.id)
            ).scalar_one()
        ids = []
        for i in range(count):
            new = enqueue(
                conn,
                OutboxRequest(
                    shop_id=shop_id,
                    purpose="owner_notification",
                    provider=provider,
                    recipient={"phone": "+821022223333", "owner": True},
                    payload={"text": f"새 문의 {i}"},
                    idempotency_key=f"shutdown:{i}",
                    now=now,
                ),
            )
            assert new is not None
            ids.append(new)
        return ids

    return await database.write(unit)


async def outbox(database: Database) -> list[tuple[int, str, int, str | None]]:
    async with database.read() as conn:
        rows = await conn.execute(
            sa.select(
                OutboxItem.id, OutboxItem.status, OutboxItem.attempts, OutboxItem.lease_owner
            ).order_by(OutboxItem.id)
        )
        return [(r.id, r.status, r.attempts, r.lease_owner) for r in rows]


async def test_shutdown_stops_claiming_and_finishes_the_batch_it_holds(
    database: Database, clock: FrozenClock
) -> None:
    ids = await queue(database, clock.now(), 3 * BATCH, "fake")  # three batches due
    provider = HeldProvider()
    config = OutboxConfig(tick_seconds=3600, batch_size=BATCH)
    dispatcher = Dispatcher(
        database, Providers({"fake": provider}), clock, config, owner_id="proc-a", sleep=no_sleep
    )
    ticks = Ticks.for_app(dispatcher, config)
    ticks.start()
    await asyncio.wait_for(provider.holding.wait(), 10)  # the first batch is being sent

    stopping = asyncio.create_task(ticks.shutdown())
    await asyncio.sleep(0)  # the shutdown has begun: SIGTERM arrived mid-batch
    provider.release.set()
    await asyncio.wait_for(stopping, 10)

    assert provider.sent_refs() == [str(i) for i in ids[:BATCH]]  # the held batch went out
    assert await outbox(database) == [
        *((i, "sent", 1, None) for i in ids[:BATCH]),
        *((i, "pending", 0, None) for i in ids[BATCH:]),  # never claimed: free for the next
    ]


async def test_the_app_stops_claiming_as_soon_as_it_is_asked_to_stop(client: Client) -> None:
    # aiohttp runs on_shutdown at SIGTERM, before it waits for the requests under way; the
    # ticks are cleaned up only after that wait, so claiming must end here already.
    app = client.app
    await app.shutdown()
    (oid,) = await queue(app[keys.DATABASE], app[keys.CLOCK].now(), 1, "console")
    assert await app[keys.OUTBOX].drain() == 0
    assert await outbox(app[keys.DATABASE]) == [(oid, "pending", 0, None)]
