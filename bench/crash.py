"""The crash harness: real `dangol serve` processes killed while they send, counted at the vendors.

    python bench/crash.py [--db sqlite|postgresql|all] [--messages 5000] [--kills 20]
                          [--seed 1] [--time-limit 300] [--write-results]

What one run does, per database (seeded, loopback only, bounded, stops by itself):

1. Starts the fake SOLAPI and the fake Twilio (tests/fakes) as processes of their own
   (bench/fake_vendors.py), and dangol — `python -m bot serve` with the real SOLAPI and
   Twilio adapters pointed at them: one process on SQLite, two on one PostgreSQL schema.
2. Enqueues the messages in waves while it runs, from this process, through dangol's own
   units: owner replies (`core.replies.owner_reply`, the console's reply) and owner notices
   (`core.notices.owner_notices` + `enqueue_many`), for two shops — a Korean one whose texts
   go by SOLAPI (SMS or LMS by length) and one abroad whose texts go by Twilio, at Twilio's
   real 1 message/s per sender number. Twilio rows come in bursts, as a busy evening does.
3. Kills a dangol process at random moments (SIGKILL, sometimes SIGTERM) and restarts it.
   After some kills the vendors' lookup endpoints answer 503 around the time the killed
   process's leases run out — while the rows it held are being reconciled.
4. Waits for quiescence (no row pending, sending or unknown; bounded), stops dangol, and
   counts every message by the tag in its text: at the vendors — delivered once, twice or
   more, never — and in dangol — sent, dead, stuck.

A dead row ("cannot tell whether it arrived", or any other give-up) is *truly in doubt*
only if a process was killed while that row was in its hands (status `sending`, leased by
the killed process: its request may or may not have reached the vendor, and the answer
died with it). Dead rows that no kill touched are counted as wrongly given up — split by
whether the vendor had in fact received them or never had them.

Target (issue 10): 0 duplicates, 0 lost (dangol says sent, the vendor never had it),
0 stuck, 0 wrongly given up. The exit status is 1 when a target is missed.

The outbox settings are dangol's defaults except `lease_seconds` (`--lease`, default 30 s
instead of 120, so that a killed process's rows come back within a bounded run) and
`backoff_max_seconds` (30 s); both are printed with the results.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import asyncpg  # type: ignore[import-untyped]
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # dangol itself; bench/ is on the path as the script's own

import crash_count  # noqa: E402
from crash_count import Planned  # noqa: E402
from crash_load import ENV, Enqueuer, plan, write_config  # noqa: E402
from crash_processes import PY, Child, Server, Vendor, free_port  # noqa: E402

from core import config as config_mod  # noqa: E402
from core.db import Database  # noqa: E402
from core.models import OutboxItem  # noqa: E402

PG_URL = os.environ.get("DANGOL_TEST_PG_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")
UPTIME = (0.5, 4.0)  # seconds between two kills (a slice of the messages is enqueued meanwhile)
DOWNTIME = (0.2, 1.5)  # seconds a killed process stays down
SIGKILL_SHARE = 0.8  # the rest are SIGTERM
OUTAGE_SHARE = 0.5  # kills after which the vendors' lookups fail for a while
BUSY_WAIT = 5.0  # seconds a kill waits for the process to hold rows


@dataclass
class Options:
    db: str
    seed: int
    messages: int
    kills: int
    time_limit: float
    lease: int
    twilio_rate: float
    twilio_share: float
    write_results: bool
    keep: bool


# --------------------------------------------------------------------------- one run


@dataclass
class Run:
    opts: Options
    db: str
    rng: random.Random
    started: float = field(default_factory=time.monotonic)
    in_flight: set[int] = field(default_factory=set)  # rows held by a process when it died
    outages: list[tuple[float, float]] = field(default_factory=list)  # monotonic windows
    kills: dict[str, int] = field(default_factory=lambda: {"SIGKILL": 0, "SIGTERM": 0})
    notes: list[str] = field(default_factory=list)

    def say(self, text: str) -> None:
        print(f"[{self.db} {time.monotonic() - self.started:6.1f}s] {text}", flush=True)

    @property
    def deadline(self) -> float:
        return self.started + self.opts.time_limit


async def run_mode(opts: Options, db: str) -> crash_count.Result:
    run = Run(opts, db, random.Random(f"{opts.seed}:{db}"))
    tmp = Path(tempfile.mkdtemp(prefix=f"dangol-crash-{db}-"))
    env = {**os.environ, **ENV, "PYTHONPATH": str(ROOT)}
    os.environ.update(ENV)  # the harness loads the same config
    vendors = {kind: Vendor(kind, tmp, env) for kind in ("solapi", "twilio")}
    schema = f"crash_{os.getpid()}_{opts.seed}" if db == "postgresql" else None
    servers: list[Server] = []
    database: Database | None = None
    try:
        async with aiohttp.ClientSession() as http:
            await asyncio.gather(*(v.start() for v in vendors.values()))
            url = f"sqlite+aiosqlite:///{tmp}/dangol.db"
            if schema is not None:
                url = PG_URL
                await _pg(f"CREATE SCHEMA {schema}")
            for i in range(2 if db == "postgresql" else 1):
                config, port = tmp / f"config-{i + 1}.toml", free_port()
                ports = {kind: v.port for kind, v in vendors.items()}
                write_config(config, port, url, schema, opts.lease, opts.twilio_rate, ports)
                servers.append(Server(i, config, port, tmp, env))
            upgrade = await asyncio.create_subprocess_exec(
                PY, "-m", "bot", "db", "upgrade", "--config", str(tmp / "config-1.toml"),
                env=env, cwd=ROOT, stdout=asyncio.subprocess.DEVNULL,
            )  # fmt: skip
            if await upgrade.wait() != 0:
                raise SystemExit("dangol db upgrade failed")
            settings = config_mod.load(tmp / "config-1.toml")
            database = Database(settings.database.url, search_path=settings.database.schema)
            await database.start()
            enqueuer = Enqueuer(database, settings)
            await enqueuer.prepare()
            waves = plan(run.rng, opts.messages, opts.twilio_share)
            await asyncio.gather(*(s.start(http, time.monotonic() + 60) for s in servers))
            run.say(f"{len(servers)} dangol process(es) up; {opts.messages} messages to send")

            outages = asyncio.create_task(_outages(run, vendors, http))
            await _drive(run, enqueuer, waves, servers, database, http)
            open_rows = await _settle(run, database)
            await asyncio.gather(*(s.child.stop() for s in servers))
            outages.cancel()
            received = {k: await v.received(http) for k, v in vendors.items()}
            rows = await _outbox_rows(database)
        planned = {m.n: m for wave in waves for m in wave}
        result = crash_count.count(planned, rows, received, run.in_flight)
        result.db = db
        result.kills = dict(run.kills)
        result.outages = len(run.outages)
        result.seconds = time.monotonic() - run.started
        result.settled = open_rows == 0
        result.enqueued = enqueuer.enqueued
        result.notes = run.notes
        return result
    finally:
        await asyncio.gather(*(s.child.stop(signal.SIGKILL) for s in servers))
        for v in vendors.values():
            await v.child.stop()
        if database is not None:
            await database.close()
        if schema is not None:
            try:
                await _pg(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
            except (OSError, asyncpg.PostgresError) as exc:
                print(f"could not drop schema {schema}: {exc}", file=sys.stderr)
        if opts.keep:
            print(f"kept {tmp} (configs, logs, database)")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


async def _pg(statement: str) -> None:
    conn = await asyncpg.connect(PG_URL.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


async def _drive(
    run: Run,
    enqueuer: Enqueuer,
    waves: list[list[Planned]],
    servers: list[Server],
    database: Database,
    http: aiohttp.ClientSession,
) -> None:
    """Enqueue the waves in as many slices as there are kills, each over an uptime drawn
    from UPTIME; in the second half of each uptime, kill a process — once it holds rows,
    if it takes any within BUSY_WAIT — and restart it."""
    kills = run.opts.kills
    slices = max(kills, 1)
    bounds = [round(i * len(waves) / slices) for i in range(slices + 1)]
    for i in range(slices):
        uptime = run.rng.uniform(*UPTIME)
        chunk = waves[bounds[i] : bounds[i + 1]]
        enqueue = asyncio.create_task(_enqueue_over(run, enqueuer, chunk, uptime))
        if i < kills and time.monotonic() > run.deadline - 3 * run.opts.lease:
            run.notes.append(f"time limit: stopped after {i} of {kills} kills")
            kills = i
        if i < kills:
            await asyncio.sleep(run.rng.uniform(0.5, 1.0) * uptime)
            await _kill_and_restart(run, run.rng.choice(servers), database, http)
        await enqueue
    run.say(f"all {enqueuer.enqueued} messages enqueued, {sum(run.kills.values())} kills done")


async def _enqueue_over(
    run: Run, enqueuer: Enqueuer, waves: list[list[Planned]], seconds: float
) -> None:
    """The waves at random moments within `seconds`."""
    moments = sorted(run.rng.uniform(0, seconds) for _ in waves)
    begun = time.monotonic()
    for at, wave in zip(moments, waves, strict=True):
        await asyncio.sleep(max(0.0, begun + at - time.monotonic()))
        await enqueuer.wave(wave)


async def _kill_and_restart(
    run: Run, server: Server, database: Database, http: aiohttp.ClientSession
) -> None:
    pid = server.child.pid
    # A kill between two sends proves little: wait (a bounded while) until it holds rows,
    # then strike at a random point of the send.
    for _ in range(round(BUSY_WAIT / 0.05)):
        if await _rows_held_by(database, pid):
            break
        await asyncio.sleep(0.05)
    await asyncio.sleep(run.rng.uniform(0, 0.3))
    sig = signal.SIGKILL if run.rng.random() < SIGKILL_SHARE else signal.SIGTERM
    await server.child.stop(sig)
    run.kills[sig.name] += 1
    held = await _rows_held_by(database, pid)
    run.in_flight |= held
    what = f"{sig.name} {server.name} (pid {pid}): it held {len(held)} rows"
    if run.rng.random() < OUTAGE_SHARE:
        # While the killed process's leases run out and its rows are reconciled.
        lease = run.opts.lease
        start = time.monotonic() + 0.7 * lease
        end = start + run.rng.uniform(0.3 * lease + 5, 0.3 * lease + 20)
        run.outages.append((start, end))
        what += f"; lookups fail {start - run.started:.0f}–{end - run.started:.0f} s"
    run.say(what)
    await asyncio.sleep(run.rng.uniform(*DOWNTIME))
    await server.start(http, time.monotonic() + 60)


async def _outages(run: Run, vendors: dict[str, Vendor], http: aiohttp.ClientSession) -> None:
    failing = False
    while True:
        now = time.monotonic()
        want = any(start <= now < end for start, end in run.outages)
        if want != failing:
            await asyncio.gather(*(v.fail_lookups(http, want) for v in vendors.values()))
            failing = want
        await asyncio.sleep(0.25)


async def _settle(run: Run, database: Database) -> int:
    """Wait until no row is pending, sending or unknown (twice in a row, a second apart):
    nothing is left to send or to ask about, whatever outage may still be scheduled."""
    last_report = 0.0
    quiet_polls = 0
    while True:
        now = time.monotonic()
        open_rows = await _open_rows(database)
        quiet_polls = quiet_polls + 1 if open_rows == 0 else 0
        if quiet_polls == 2:
            run.say("quiet: no row pending, sending or unknown")
            return 0
        if now > run.deadline:
            run.notes.append(f"time limit: {open_rows} rows still open")
            run.say(f"time limit reached with {open_rows} rows open")
            return open_rows
        if now - last_report >= 15:
            run.say(f"settling: {open_rows} rows open")
            last_report = now
        await asyncio.sleep(1.0)


OUTBOX = OutboxItem.__table__


async def _open_rows(database: Database) -> int:
    async with database.read() as conn:
        query = sa.select(sa.func.count()).where(
            OUTBOX.c.status.in_(("pending", "sending", "unknown"))
        )
        return int((await conn.execute(query)).scalar_one())


async def _rows_held_by(database: Database, pid: int) -> set[int]:
    """Rows a process was sending when it died (its owner id is host:pid:random)."""
    async with database.read() as conn:
        query = sa.select(OUTBOX.c.id).where(
            OUTBOX.c.status == "sending", OUTBOX.c.lease_owner.like(f"%:{pid}:%")
        )
        return {int(r[0]) for r in await conn.execute(query)}


async def _outbox_rows(database: Database) -> list[crash_count.Row]:
    async with database.read() as conn:
        query = sa.select(
            OUTBOX.c.id, OUTBOX.c.provider, OUTBOX.c.status, OUTBOX.c.last_error, OUTBOX.c.payload
        )
        return [
            crash_count.Row(
                int(r.id), r.provider, r.status, r.last_error, r.payload.get("text", "")
            )
            for r in await conn.execute(query)
        ]


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> Options:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--db", choices=["sqlite", "postgresql", "all"], default="all")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--messages", type=int, default=5000)
    p.add_argument("--kills", type=int, default=20)
    p.add_argument("--time-limit", type=float, default=300, help="seconds per database")
    p.add_argument("--lease", type=int, default=30, help="outbox lease_seconds (default 30)")
    p.add_argument("--twilio-rate", type=float, default=1.0, help="Twilio messages/s")
    p.add_argument("--twilio-share", type=float, default=0.03, help="share of Twilio messages")
    p.add_argument("--write-results", action="store_true", help="update bench/RESULTS.md")
    p.add_argument("--keep", action="store_true", help="keep the temporary directory")
    a = p.parse_args(argv)
    if a.messages < 1 or a.kills < 0 or a.time_limit <= 0 or a.lease < 5:
        p.error("--messages ≥ 1, --kills ≥ 0, --time-limit > 0, --lease ≥ 5")
    return Options(
        a.db, a.seed, a.messages, a.kills, a.time_limit, a.lease, a.twilio_rate,
        a.twilio_share, a.write_results, a.keep,
    )  # fmt: skip


async def main_async(opts: Options) -> int:
    main_task = asyncio.current_task()
    assert main_task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, main_task.cancel)  # as Ctrl-C
    modes = ["sqlite", "postgresql"] if opts.db == "all" else [opts.db]
    results = [await run_mode(opts, db) for db in modes]
    print()
    print(crash_count.table(results, opts))
    if opts.write_results:
        crash_count.write_results(results, opts)
        print("\nbench/RESULTS.md updated (section crash)")
    return 0 if all(r.passed for r in results) else 1


def main() -> int:
    opts = parse_args()
    try:
        return asyncio.run(main_async(opts))
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("\ninterrupted; child processes stopped", file=sys.stderr)
        return 130
    finally:
        Child.kill_all_now()


if __name__ == "__main__":
    sys.exit(main())
