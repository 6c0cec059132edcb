"""The ticks: a few static jobs on APScheduler 3, declared in one table.

APScheduler only ticks. Business schedules (journeys, reminders, greetings) are database
rows written by planners; its in-memory job store holds nothing but the table below, so
every process can run the same ticks and the database decides who does what.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from core.config import OutboxConfig
from scheduler.dispatch import Dispatcher

log = logging.getLogger("dangol.scheduler")

TickFn = Callable[[], Awaitable[object]]

HOUSEKEEPING_SECONDS = 300.0
SHUTDOWN_WAIT_SECONDS = 30.0


class Housekeeping:
    """The housekeeping tick's chores; the app adds its own (purges, KPI rollups…)."""

    def __init__(self) -> None:
        self._chores: list[tuple[str, TickFn]] = []

    def add(self, name: str, chore: TickFn) -> None:
        if any(n == name for n, _ in self._chores):
            raise ValueError(f"housekeeping chore {name!r} is already added")
        self._chores.append((name, chore))

    async def run(self) -> None:
        for name, chore in self._chores:
            try:
                await chore()
            except Exception:  # one broken chore must not starve the others
                log.exception("housekeeping chore %s failed", name)


def static_ticks(
    dispatcher: Dispatcher, outbox: OutboxConfig, housekeeping: Housekeeping
) -> list[tuple[str, TickFn, float]]:
    """Every static tick: (name, coroutine function, interval in seconds)."""
    return [
        ("dispatch", dispatcher.drain, outbox.tick_seconds),
        ("housekeeping", housekeeping.run, HOUSEKEEPING_SECONDS),
    ]


@dataclass
class _Tick:
    name: str
    fn: TickFn
    seconds: float
    running: bool = False
    woken: bool = False
    starting: bool = False  # due at once (started, or woken while idle), not yet running
    runs: int = 0
    failures: int = 0


class Ticks:
    """Runs the static ticks: one instance of each at a time, never killed by an error."""

    def __init__(self, table: Sequence[tuple[str, TickFn, float]]) -> None:
        self._ticks: dict[str, _Tick] = {}
        for name, fn, seconds in table:
            if name in self._ticks:
                raise ValueError(f"tick {name!r} is declared twice")
            if seconds <= 0:
                raise ValueError(f"tick {name!r} needs a positive interval")
            self._ticks[name] = _Tick(name, fn, seconds)
        self._scheduler = AsyncIOScheduler(timezone=UTC)
        self._tasks: set[asyncio.Task[object]] = set()
        self._stopping = False
        self._on_stop: list[Callable[[], None]] = []
        self.housekeeping: Housekeeping | None = None

    @classmethod
    def for_app(
        cls,
        dispatcher: Dispatcher,
        outbox: OutboxConfig,
        planners: Sequence[tuple[str, TickFn, float]] = (),
    ) -> Ticks:
        """The app's ticks (the static ones plus its planners); wires
        `dispatcher.on_enqueued` to wake the dispatch tick."""
        housekeeping = Housekeeping()
        ticks = cls([*static_ticks(dispatcher, outbox, housekeeping), *planners])
        ticks.housekeeping = housekeeping
        dispatcher.set_waker(lambda: ticks.wake("dispatch"))
        ticks.on_stop(dispatcher.stop_claiming)
        return ticks

    @property
    def running(self) -> bool:
        return bool(self._scheduler.running)

    def stats(self) -> dict[str, dict[str, int]]:
        return {t.name: {"runs": t.runs, "failures": t.failures} for t in self._ticks.values()}

    def start(self) -> None:
        """Schedule every tick (each runs once right away) and start. Needs a running loop."""
        # APScheduler logs every run at INFO: once a second is noise, unless asked for.
        executor_log = logging.getLogger("apscheduler.executors.default")
        if executor_log.level == logging.NOTSET:
            executor_log.setLevel(logging.WARNING)
        # A tick still busy when its next run comes is merged into it (coalesce, one instance);
        # APScheduler would warn about each such skipped run, which under load is every second.
        scheduler_log = logging.getLogger("apscheduler.scheduler")
        if scheduler_log.level == logging.NOTSET:
            scheduler_log.setLevel(logging.ERROR)
        now = datetime.now(UTC)
        for tick in self._ticks.values():
            tick.starting = True
            self._scheduler.add_job(
                self._run,
                "interval",
                seconds=tick.seconds,
                args=[tick.name],
                id=tick.name,
                name=tick.name,
                next_run_time=now,
                max_instances=1,
                # Late runs (a blocked loop, a suspended laptop) merge into one and still
                # happen: a tick skipped for being late would only delay the work further.
                coalesce=True,
                misfire_grace_time=None,
                replace_existing=True,
            )
        self._stopping = False
        self._scheduler.start()

    def on_stop(self, hook: Callable[[], None]) -> None:
        """Have `stop` call `hook`: how a running tick hears it must wind down."""
        self._on_stop.append(hook)

    def stop(self) -> None:
        """Start nothing from now on, and tell the ticks under way to wind down: the
        dispatcher claims no more rows. Call it as soon as the process is asked to stop
        (SIGTERM), not only once the server has finished its requests; `shutdown` then
        waits for what is under way."""
        if self._stopping:
            return
        self._stopping = True
        if self._scheduler.running:
            self._scheduler.pause()
        for hook in self._on_stop:
            hook()

    def wake(self, name: str) -> None:
        """Run tick `name` now (or right after its current run) instead of at its next time."""
        tick = self._ticks.get(name)
        if tick is None:
            raise ValueError(f"no tick named {name!r}")
        if self._stopping or not self._scheduler.running:
            return
        if tick.running:
            tick.woken = True  # the running instance goes round once more
            return
        job = self._scheduler.get_job(name)
        if job is not None:
            tick.starting = True
            job.modify(next_run_time=datetime.now(self._scheduler.timezone))

    async def idle(self) -> None:
        """Return once no tick is running and none due at once is still to begin: what
        tests await instead of polling until, say, the outbox has sent what was woken."""
        while True:
            if self._tasks:
                await asyncio.wait(set(self._tasks))
            elif self.running and not self._stopping and self._starting():
                await asyncio.sleep(0)  # APScheduler starts it within a few turns of the loop
            else:
                return

    def _starting(self) -> bool:
        return any(tick.starting for tick in self._ticks.values())

    async def shutdown(self, wait_seconds: float = SHUTDOWN_WAIT_SECONDS) -> None:
        """Stop scheduling, let running ticks finish (cancel them after `wait_seconds`)."""
        if not self._scheduler.running:
            return
        self.stop()
        if self._tasks:
            _, late = await asyncio.wait(set(self._tasks), timeout=wait_seconds)
            for task in late:
                log.warning("tick still running at shutdown; cancelling it")
                task.cancel()
            if late:
                await asyncio.wait(late)
        self._scheduler.shutdown(wait=False)
        await asyncio.sleep(0)  # APScheduler finishes its shutdown on the loop

    async def _run(self, name: str) -> None:
        tick = self._ticks[name]
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        tick.running = True
        tick.starting = False
        try:
            while True:
                tick.woken = False
                tick.runs += 1
                try:
                    await tick.fn()
                except Exception:
                    tick.failures += 1
                    log.exception("tick %s failed", name)
                if not tick.woken or self._stopping:
                    break
        finally:
            tick.running = False
            if task is not None:
                self._tasks.discard(task)
