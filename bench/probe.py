"""`dangol serve` with probes for the intermittent stall: where does a slow answer wait?

Runs the real server (same arguments as `dangol serve`) with four probes that change
nothing in what it does, each printing one line to stderr when something takes long:
- each SQLite group commit, timed in its three steps (BEGIN IMMEDIATE in the writer's
  thread, the statements on the event loop, COMMIT in the thread), with the WAL size;
- each garbage collection, with its generation;
- the event loop's lag (a 10 ms sleep that wakes late);
- each tick (dispatch, housekeeping, planners) that runs long.

    .venv/bin/python bench/probe.py serve --config bench.toml [--slow-ms 100]

bench/run.py and bench/soak.py start the server through it when BENCH_PROBE=1, and show
what it printed.
"""

from __future__ import annotations

import asyncio
import gc
import os
import statistics
import struct
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot import cli  # noqa: E402
from bot.cli import running  # noqa: E402
from core import db  # noqa: E402
from scheduler import loop as ticks_mod  # noqa: E402

SLOW = float(os.environ.get("BENCH_PROBE_SLOW_MS", "100")) / 1000
START = time.monotonic()
WATCHERS: set[asyncio.Task[None]] = set()


def say(what: str) -> None:
    print(f"probe {time.monotonic() - START:8.2f}s {what}", file=sys.stderr, flush=True)


def wal_bytes(database: db.Database) -> int:
    try:
        return os.path.getsize(db.sqlite_path(database.url) + "-wal")
    except OSError:
        return -1


SHM: dict[str, int] = {}  # -shm file → a descriptor kept open for the process's life


def wal_index(database: db.Database) -> tuple[int, int]:
    """(frames in the WAL, frames already copied into the database) from the -shm file:
    mxFrame of the WAL-index header and nBackfill of the checkpoint info after it.

    The file is opened once and never closed: closing any descriptor of a file drops every
    POSIX lock this process holds on it, SQLite's included, and another process opening
    the database would then take it for unused and truncate the -shm under our feet."""
    path = db.sqlite_path(database.url) + "-shm"
    try:
        if path not in SHM:
            SHM[path] = os.open(path, os.O_RDONLY)
        head = os.pread(SHM[path], 100, 0)
    except OSError:
        return -1, -1
    if len(head) < 100:
        return -1, -1
    return struct.unpack_from("=I", head, 16)[0], struct.unpack_from("=I", head, 96)[0]


COMMITS: dict[str, list[float]] = {"plain": [], "checkpoint": []}
SEEN: list[db.Database] = []  # the database the writer commits to
BESIDE: list[bool] = []  # not empty: checkpoints run beside the writer (core.checkpoints)


def probe_commits() -> None:
    begin, end = db.Database._begin_sqlite, db.Database._end_sqlite
    steps: dict[str, float] = {}

    def timed_begin(self: db.Database) -> Any:
        t = time.monotonic()
        try:
            return begin(self)
        finally:
            steps["begin"] = time.monotonic() - t
            steps["began_at"] = time.monotonic()

    def timed_end(self: db.Database, commit: bool) -> None:
        t = time.monotonic()
        if not SEEN:
            SEEN.append(self)
        wal_before = wal_bytes(self)
        _, copied_before = wal_index(self)
        try:
            end(self, commit)
        finally:
            try:  # a probe must never fail the commit it watches
                note(self, t, wal_before, copied_before)
            except Exception as exc:
                say(f"probe error: {exc!r}")

    def note(self: db.Database, t: float, wal_before: int, copied_before: int) -> None:
        done = time.monotonic()
        frames, copied = wal_index(self)
        if copied > copied_before and not BESIDE:  # SQLite's own checkpoint, in the COMMIT
            COMMITS["checkpoint"].append(done - t)
            say(
                f"checkpoint inside COMMIT: {copied - copied_before} pages copied, "
                f"COMMIT took {(done - t) * 1000:.0f} ms ({frames} frames in the WAL)"
            )
        else:
            COMMITS["plain"].append(done - t)
        statements = t - steps.get("began_at", t)
        total = steps.get("begin", 0) + statements + (done - t)
        if total > SLOW:
            say(
                f"slow commit {total * 1000:.0f} ms: begin {steps.get('begin', 0) * 1000:.0f} "
                f"statements+queue {statements * 1000:.0f} commit {(done - t) * 1000:.0f} ms; "
                f"WAL {wal_before / 1e6:.1f} → {wal_bytes(self) / 1e6:.1f} MB"
            )

    db.Database._begin_sqlite = timed_begin  # type: ignore[method-assign]
    db.Database._end_sqlite = timed_end  # type: ignore[method-assign]


def probe_checkpointer() -> None:
    """The checkpoints done beside the writer (core.checkpoints), where there are any."""
    try:
        from core import checkpoints
    except ImportError:  # a dangol from before them
        return
    round_, catch_up = checkpoints.Checkpointer._checkpoint, checkpoints.Checkpointer.before_begin

    def timed_round(self: checkpoints.Checkpointer) -> None:
        t = time.monotonic()
        round_(self)
        COMMITS.setdefault("beside the writer", []).append(time.monotonic() - t)
        if time.monotonic() - t > SLOW:
            say(f"checkpoint beside the writer: {(time.monotonic() - t) * 1000:.0f} ms")

    async def timed_catch_up(self: checkpoints.Checkpointer) -> None:
        t, before = time.monotonic(), self.catch_ups
        await catch_up(self)
        if self.catch_ups > before:
            say(f"writer waited {(time.monotonic() - t) * 1000:.0f} ms for a WAL catch-up")

    BESIDE.append(True)
    checkpoints.Checkpointer._checkpoint = timed_round  # type: ignore[method-assign]
    checkpoints.Checkpointer.before_begin = timed_catch_up  # type: ignore[method-assign]


def probe_gc() -> None:
    started: dict[str, float] = {}

    def callback(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            started["t"] = time.monotonic()
        else:
            took = time.monotonic() - started.get("t", time.monotonic())
            if took > SLOW / 4:
                say(f"gc gen {info['generation']} {took * 1000:.0f} ms, {info['collected']} freed")

    gc.callbacks.append(callback)


def commit_summary() -> None:
    if SEEN:
        say(f"WAL file {wal_bytes(SEEN[0]) / 1e6:.1f} MB, {wal_index(SEEN[0])[0]} frames")
    for kind, times in COMMITS.items():
        if len(times) > 1:
            q = statistics.quantiles(times, n=100)
            say(
                f"COMMIT steps, {kind}: {len(times)}, p50 {q[49] * 1000:.1f} ms, "
                f"p99 {q[98] * 1000:.1f} ms, max {max(times) * 1000:.1f} ms"
            )


async def lag_watch() -> None:
    last_summary = time.monotonic()
    while True:
        if time.monotonic() - last_summary > 30:
            commit_summary()
            last_summary = time.monotonic()
        t = time.monotonic()
        await asyncio.sleep(0.01)
        late = time.monotonic() - t - 0.01
        if late > SLOW:
            say(f"event loop blocked {late * 1000:.0f} ms")


def probe_ticks() -> None:
    run = ticks_mod.Ticks._run

    async def timed(self: ticks_mod.Ticks, name: str) -> None:
        t = time.monotonic()
        try:
            await run(self, name)
        finally:
            took = time.monotonic() - t
            if took > SLOW:
                say(f"tick {name} ran {took * 1000:.0f} ms")

    ticks_mod.Ticks._run = timed  # type: ignore[method-assign]


def main() -> int:
    probe_commits()
    probe_checkpointer()
    probe_gc()
    probe_ticks()
    serve = running._settle_garbage_collector

    async def settle_and_watch(app: Any) -> None:
        await serve(app)
        WATCHERS.add(asyncio.get_running_loop().create_task(lag_watch()))

    running._settle_garbage_collector = settle_and_watch  # type: ignore[assignment]
    say("probes on")
    return cli.main(sys.argv[1:])


if __name__ == "__main__":
    raise SystemExit(main())
