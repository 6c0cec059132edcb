"""The ticks loop: static jobs that survive errors, wake on demand and stop cleanly.

The dispatcher's logic is tested through `tick()` with a frozen clock (test_outbox.py);
here APScheduler really runs, but every tick's interval is an hour: the test drives them
with `wake` and waits on `Ticks.idle()`, never on the wall clock.
"""

from __future__ import annotations

import asyncio
import logging

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from core.clock import FrozenClock
from core.config import OutboxConfig
from core.db import Database
from core.models import Shop
from core.outbox import OutboxRequest, enqueue
from providers.fake import FakeProvider
from providers.registry import Providers
from scheduler.dispatch import Dispatcher
from scheduler.loop import Ticks


async def test_a_tick_runs_and_survives_an_exception(caplog: pytest.LogCaptureFixture) -> None:
    calls = 0

    async def flaky() -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("boom")

    ticks = Ticks([("flaky", flaky, 3600)])
    with caplog.at_level(logging.ERROR, logger="dangol.scheduler"):
        ticks.start()
        try:
            await ticks.idle()  # the first run, at start, fails
            for _ in range(2):
                ticks.wake("flaky")
                await ticks.idle()
            assert calls == 3
        finally:
            await ticks.shutdown()
    assert "tick flaky failed" in caplog.text
    assert "RuntimeError: boom" in caplog.text
    assert ticks.stats()["flaky"]["failures"] == 1
    assert not ticks.running


async def test_wake_runs_a_tick_now() -> None:
    runs = 0

    async def rare() -> None:
        nonlocal runs
        runs += 1

    ticks = Ticks([("rare", rare, 3600)])
    ticks.start()
    try:
        await ticks.idle()
        assert runs == 1  # every tick runs once at start
        ticks.wake("rare")
        await ticks.idle()
        assert runs == 2
    finally:
        await ticks.shutdown()


async def test_wake_during_a_run_runs_once_more_afterwards() -> None:
    runs = 0
    running = 0
    overlap = False
    started, gate = asyncio.Event(), asyncio.Event()

    async def slow() -> None:
        nonlocal runs, running, overlap
        runs += 1
        running += 1
        overlap = overlap or running > 1
        if runs == 1:
            started.set()
            await gate.wait()
        running -= 1

    ticks = Ticks([("slow", slow, 3600)])
    ticks.start()
    try:
        await started.wait()
        ticks.wake("slow")
        ticks.wake("slow")  # several wakes while busy: one more run
        gate.set()
        await ticks.idle()
        assert runs == 2
    finally:
        await ticks.shutdown()
    assert not overlap


async def test_shutdown_waits_for_a_running_tick() -> None:
    started, release = asyncio.Event(), asyncio.Event()
    finished = False

    async def work() -> None:
        nonlocal finished
        started.set()
        await release.wait()
        finished = True

    ticks = Ticks([("work", work, 3600)])
    ticks.start()
    await started.wait()
    stopping = asyncio.ensure_future(ticks.shutdown())
    await asyncio.sleep(0)  # shutdown is under way, waiting for the tick
    assert not stopping.done()
    release.set()
    await stopping
    assert finished


async def test_shutdown_cancels_a_tick_that_overstays() -> None:
    started = asyncio.Event()
    cancelled = False

    async def stuck() -> None:
        nonlocal cancelled
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled = True
            raise

    ticks = Ticks([("stuck", stuck, 3600)])
    ticks.start()
    await started.wait()
    await ticks.shutdown(wait_seconds=0)
    assert cancelled


def test_tick_table_is_checked() -> None:
    async def noop() -> None:
        return None

    with pytest.raises(ValueError, match="declared twice"):
        Ticks([("a", noop, 1), ("a", noop, 2)])
    with pytest.raises(ValueError, match="no tick named"):
        Ticks([("a", noop, 1)]).wake("b")


async def test_enqueue_wakes_the_dispatch_tick(database: Database, clock: FrozenClock) -> None:
    now = clock.now()

    def setup(conn: Connection) -> int:
        return int(
            conn.execute(
                sa.insert(Shop)
                .values(slug="hanbit", name="한빛설비", owner_status="available", created_at=now)
                .returning(Shop.id)
            ).scalar_one()
        )

    shop = await database.write(setup)
    fake = FakeProvider()
    config = OutboxConfig(tick_seconds=3600)  # only a wake can make it run again
    dispatcher = Dispatcher(database, Providers({"fake": fake}), clock, config, owner_id="proc-a")
    ticks = Ticks.for_app(dispatcher, config)
    chores: list[str] = []

    async def chore() -> None:
        chores.append("swept")

    assert ticks.housekeeping is not None
    ticks.housekeeping.add("sweep", chore)
    ticks.start()
    try:
        await ticks.idle()
        assert ticks.stats()["dispatch"]["runs"] == 1
        assert chores == ["swept"]

        def notify_owner(conn: Connection) -> int | None:
            return enqueue(
                conn,
                OutboxRequest(
                    shop_id=shop,
                    purpose="owner_notification",
                    provider="fake",
                    recipient={"phone": "+821022223333", "owner": True},
                    payload={"text": "새 문의가 왔어요"},
                    idempotency_key="owner:inquiry:1",
                    now=now,
                ),
            )

        oid = await database.write(notify_owner)
        dispatcher.on_enqueued()
        await ticks.idle()
        assert fake.sent_refs() == [str(oid)]
    finally:
        await ticks.shutdown()
    assert fake.sent[0].recipient.owner
    assert chores == ["swept"]
