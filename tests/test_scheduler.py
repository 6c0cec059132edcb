"""The ticks loop: static jobs that survive errors, wake on demand and stop cleanly.

The dispatcher's logic is tested through `tick()` with a frozen clock (test_outbox.py);
here APScheduler really runs, so every wait is short and bounded.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

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


async def eventually(condition: Callable[[], bool], within: float = 1.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not condition():
        if loop.time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.005)


async def test_a_tick_runs_and_survives_an_exception(caplog: pytest.LogCaptureFixture) -> None:
    calls = 0

    async def flaky() -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("boom")

    ticks = Ticks([("flaky", flaky, 0.02)])
    with caplog.at_level(logging.ERROR, logger="dangol.scheduler"):
        ticks.start()
        try:
            await eventually(lambda: calls >= 3)
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
        await eventually(lambda: runs == 1)  # every tick runs once at start
        ticks.wake("rare")
        await eventually(lambda: runs == 2)
    finally:
        await ticks.shutdown()


async def test_wake_during_a_run_runs_once_more_afterwards() -> None:
    runs = 0
    running = 0
    overlap = False
    gate = asyncio.Event()

    async def slow() -> None:
        nonlocal runs, running, overlap
        runs += 1
        running += 1
        overlap = overlap or running > 1
        if runs == 1:
            await gate.wait()
        running -= 1

    ticks = Ticks([("slow", slow, 3600)])
    ticks.start()
    try:
        await eventually(lambda: runs == 1)
        ticks.wake("slow")
        ticks.wake("slow")  # several wakes while busy: one more run
        gate.set()
        await eventually(lambda: runs == 2)
        await asyncio.sleep(0.05)
        assert runs == 2
    finally:
        await ticks.shutdown()
    assert not overlap


async def test_shutdown_waits_for_a_running_tick() -> None:
    started = asyncio.Event()
    finished = False

    async def work() -> None:
        nonlocal finished
        started.set()
        await asyncio.sleep(0.05)
        finished = True

    ticks = Ticks([("work", work, 3600)])
    ticks.start()
    await asyncio.wait_for(started.wait(), 1)
    await ticks.shutdown()
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
    await asyncio.wait_for(started.wait(), 1)
    await ticks.shutdown(wait_seconds=0.05)
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
        await eventually(lambda: ticks.stats()["dispatch"]["runs"] >= 1 and bool(chores))

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
        await eventually(lambda: fake.sent_refs() == [str(oid)])
    finally:
        await ticks.shutdown()
    assert fake.sent[0].recipient.owner
    assert chores == ["swept"]
