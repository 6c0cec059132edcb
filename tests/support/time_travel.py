"""The demo in this process, on a clock the test moves: for browser tests that follow a job
over days (book today, the satisfaction check a week after completion).

The real app (`create_app` with `dangol demo`'s settings and first start) serves on a free
loopback port from a thread of its own; `advance(days=7)` moves its FrozenClock, wakes the
ticks and returns once they are idle — an awaitable hook, no sleeping.

A module uses it by naming it its `demo` fixture:

    from support.time_travel import travelling_demo as demo  # noqa: F401
"""

from __future__ import annotations

import asyncio
import os
import shutil
import threading
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import pytest
from aiohttp import web

from bot import keys
from bot.app import create_app
from bot.cli import EXAMPLE
from bot.cli.install import prepare
from bot.demo import demo_settings
from core import config as config_mod
from core.clock import FrozenClock
from support.browser import Demo, _free_port, _need_browser

T = TypeVar("T")


@dataclass
class TravellingDemo(Demo):
    clock: FrozenClock | None = None
    loop: asyncio.AbstractEventLoop | None = None
    app: web.Application | None = None
    errors: list[BaseException] = field(default_factory=list)

    def run(self, work: Callable[[], Awaitable[T]], timeout: float = 30) -> T:
        """Run `work` on the server's loop and wait for its result."""
        assert self.loop is not None
        future: Future[T] = asyncio.run_coroutine_threadsafe(_call(work), self.loop)
        return future.result(timeout)

    def advance(self, **delta: float) -> datetime:
        """Move the clock, run every tick at once, return once they are idle."""
        assert self.clock is not None
        assert self.app is not None
        app, clock = self.app, self.clock

        async def move() -> datetime:
            now = clock.advance(**delta)
            await settle(app)
            return now

        return self.run(move)

    def settle(self) -> None:
        """Wait until every tick has run what is due (a booking's confirmation, say)."""
        assert self.app is not None
        app = self.app
        self.run(lambda: settle(app))


async def _call(work: Callable[[], Awaitable[T]]) -> T:
    return await work()


async def settle(app: web.Application) -> None:
    """Wake every tick and wait for the writer and the ticks to go quiet, twice: what one
    tick commits may wake another (a planned step → the planner → the outbox → dispatch)."""
    ticks = app[keys.TICKS]
    for _ in range(3):
        for name in ticks.stats():
            ticks.wake(name)
        await ticks.idle()
        await app[keys.DATABASE].writer.idle()


@pytest.fixture(scope="module")
def travelling_demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TravellingDemo]:
    """The demo shop on a moveable clock, at 09:30 KST on a Monday (the shop is open)."""
    _need_browser()
    home = tmp_path_factory.mktemp("travel")
    cfg = home / "config.toml"
    shutil.copy(EXAMPLE, cfg)
    with running_in_thread(
        cfg, FrozenClock(datetime.fromisoformat("2026-11-23T09:30:00+09:00"))
    ) as demo:
        yield demo


def running_in_thread(cfg: Path, clock: FrozenClock) -> Any:
    @contextmanager
    def run() -> Iterator[TravellingDemo]:
        os.environ.setdefault("DANGOL_DEMO_SKILL_SECRET", "travel-demo-secret")
        port = _free_port()
        # Relative paths in the copied example (the database, photos) are relative to it.
        settings = demo_settings(config_mod.load(cfg), port)
        passwords = asyncio.run(prepare(settings, clock, demo=True))
        password = next(p for p in passwords.values() if p)
        loop = asyncio.new_event_loop()
        demo = TravellingDemo(
            f"http://127.0.0.1:{port}", settings.shops[0].slug, password, clock=clock, loop=loop
        )
        started = threading.Event()
        stop = asyncio.Event()

        async def serve() -> None:
            app = create_app(settings, clock=clock)
            runner = web.AppRunner(app)
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", port).start()
            demo.app = app
            started.set()
            await stop.wait()
            await runner.cleanup()

        def main() -> None:
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(serve())
            except BaseException as exc:  # reported by the fixture, not lost in the thread
                demo.errors.append(exc)
                started.set()
            finally:
                loop.close()

        thread = threading.Thread(target=main, daemon=True)
        thread.start()
        assert started.wait(60), "the app did not start"
        assert not demo.errors, demo.errors
        try:
            yield demo
        finally:
            loop.call_soon_threadsafe(stop.set)
            thread.join(timeout=30)
            assert not demo.errors, demo.errors

    return run()
