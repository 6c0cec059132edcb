"""`make bench`: the Kakao skill endpoint under load, against a bare aiohttp handler.

Same run, same machine, 50 connections from wrk on 127.0.0.1:
1. flat out: requests/s of the bare handler (first and last, as the host's speed drifts),
   of the least durable endpoints (bench/floor.py on SQLite, bench/floor_pg.py on
   PostgreSQL) and of dangol's durable endpoint (every message committed before the answer)
   on SQLite and on PostgreSQL; dangol on each database ÷ its plain-SQL floor there;
2. paced at half the bare handler's rate, and at three quarters of dangol's own: dangol's
   latency (p50/p90/p99/max), and the slowest response of any row (target: none over 1 s).
Afterwards the database is counted: every 200 answer must have its message stored.
Writes bench/RESULTS.md, keeping the sections other benchmarks own (bench/sections.py).
Needs `wrk` (Debian package) and, for the PostgreSQL rows, the server in DANGOL_TEST_PG_URL.

    .venv/bin/python bench/run.py                        # `make bench` runs this
    BENCH_SECONDS=3 BENCH_USERS=200 .venv/bin/python bench/run.py --no-write   # a quick try
    BENCH_PROBE=1 .venv/bin/python bench/run.py          # dangol under bench/probe.py

BENCH_SECONDS: seconds per measured run (15). BENCH_USERS: the pool of distinct customers
(2000; the floors need every one of them stored by dangol's run first, so keep it small
for short runs). BENCH_PROBE=1: dangol runs under bench/probe.py, which prints every slow
commit, long garbage collection, blocked event loop and long tick; they are shown at the end.
--no-write: print the tables, leave bench/RESULTS.md alone.
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import sections

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
PY = sys.executable
DANGOL = str(Path(PY).parent / "dangol")
CONNECTIONS = 50
DURATION = int(os.environ.get("BENCH_SECONDS", "15"))
WARMUP = 3
PROBE = os.environ.get("BENCH_PROBE") == "1"
SECRET = "bench-secret"
PG_URL = os.environ.get("DANGOL_TEST_PG_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")

CONFIG = """
[server]
host = "127.0.0.1"
port = {port}
simulator = false
[database]
url = "{url}"
{schema}
[logging]
level = "WARNING"
[providers.console]
[[shops]]
slug = "bench"
name = "벤치설비"
phone = "02-1234-5678"
[shops.hours]
mon = "00:00-23:59"
tue = "00:00-23:59"
wed = "00:00-23:59"
thu = "00:00-23:59"
fri = "00:00-23:59"
sat = "00:00-23:59"
sun = "00:00-23:59"
closed_on_public_holidays = false
[shops.kakao]
bot_id = "66a1e9d0e4b0a1b2c3d4e000"
skill_secret_env = "BENCH_SKILL_SECRET"
[shops.owner]
name = "벤치"
phone = "010-2222-3333"
notify_via = ["console"]
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(port: int, proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited early with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"server on {port} did not start")


def payload_file(tmp: Path) -> Path:
    data = json.loads((ROOT / "tests/payloads/kakao/skill-fallback-text.json").read_text("utf-8"))
    data["userRequest"]["utterance"] = "__TEXT__"
    data["userRequest"]["user"]["id"] = "__USER__"
    data["userRequest"]["user"]["properties"]["botUserKey"] = "__USER__"
    path = tmp / "payload.json"
    path.write_text(json.dumps(data, ensure_ascii=False), "utf-8")
    return path


def wrk(port: int, payload: Path, tmp: Path, seconds: int, rate: float = 0) -> dict[str, float]:
    out = tmp / "wrk.json"
    env = dict(
        os.environ,
        BENCH_PAYLOAD=str(payload),
        BENCH_SECRET=SECRET,
        BENCH_OUT=str(out),
        BENCH_RATE=str(rate),
        BENCH_CONNECTIONS=str(CONNECTIONS),
    )
    cmd = [
        "wrk",
        "-t1",
        f"-c{CONNECTIONS}",
        f"-d{seconds}s",
        "--timeout",
        "5s",
        "-s",
        str(BENCH / "skill.lua"),
        f"http://127.0.0.1:{port}/hooks/kakao/bench",
    ]
    subprocess.run(cmd, env=env, check=True, capture_output=True)
    result: dict[str, float] = json.loads(out.read_text())
    result["rps"] = result["requests"] / (result["duration_us"] / 1e6)
    result["ok"] = result["requests"] - result["errors_status"]
    return result


def flat_out(
    proc: subprocess.Popen[bytes], port: int, payload: Path, tmp: Path
) -> dict[str, float]:
    """A flat-out run, with the CPU time the server spent per request (Linux /proc)."""
    before = cpu_seconds(proc.pid)
    result = wrk(port, payload, tmp, DURATION)
    result["cpu_us"] = (cpu_seconds(proc.pid) - before) / result["requests"] * 1e6
    return result


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def yardstick(cmd: list[str], payload: Path, tmp: Path, *args: Path | str) -> dict[str, float]:
    """A flat-out run of a yardstick server: `cmd PORT *args`."""
    port = free_port()
    proc = run_server([*cmd, str(port), *map(str, args)], port, dict(os.environ))
    try:
        wrk(port, payload, tmp, WARMUP)
        return flat_out(proc, port, payload, tmp)
    finally:
        stop(proc)


def run_server(
    cmd: list[str], port: int, env: dict[str, str], log: Path | None = None
) -> subprocess.Popen[bytes]:
    """Start a server; its stderr goes to `log` (a pipe nobody reads could fill and stop it)."""
    with open(log or os.devnull, "wb") as err:
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=err)
    wait_for(port, proc)
    return proc


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()


def count_inbound(url: str, schema: str | None) -> int:
    async def run() -> int:
        from sqlalchemy import func, select

        from core.db import Database
        from core.models import Message

        db = Database(url, search_path=schema)
        async with db.read() as conn:
            n = (
                await conn.execute(select(func.count()).where(Message.direction == "in"))
            ).scalar_one()
        await db.close()
        return int(n)

    return asyncio.run(run())


def durable(
    name: str, url: str, schema: str | None, tmp: Path, payload: Path, rate: float
) -> dict[str, object]:
    port = free_port()
    cfg = tmp / f"{name}.toml"
    cfg.write_text(
        CONFIG.format(port=port, url=url, schema=f'schema = "{schema}"' if schema else ""), "utf-8"
    )
    env = dict(os.environ, BENCH_SKILL_SECRET=SECRET)
    subprocess.run(
        [DANGOL, "db", "upgrade", "--config", str(cfg)], env=env, check=True, capture_output=True
    )
    serve = [PY, str(BENCH / "probe.py")] if PROBE else [DANGOL]
    proc = run_server([*serve, "serve", "--config", str(cfg)], port, env, tmp / f"{name}.log")
    try:
        wrk(port, payload, tmp, WARMUP)
        flat = flat_out(proc, port, payload, tmp)
        paced = wrk(port, payload, tmp, DURATION, rate=rate)
        # Latency under a load it can carry: three quarters of what it just did flat out.
        sustained = wrk(port, payload, tmp, DURATION, rate=round(flat["rps"] * 0.75))
    finally:
        stop(proc)
    if PROBE:
        print(f"dangol, {name}: what bench/probe.py saw")
        print((tmp / f"{name}.log").read_text("utf-8", "replace")[-20000:])
    stored = count_inbound(url, schema)
    answered = sum(r["ok"] for r in (flat, paced, sustained))
    return {
        "flat": flat,
        "paced": paced,
        "sustained": sustained,
        "stored": stored,
        "answered": answered,
    }


async def pg_schema(create: bool, schema: str) -> bool:
    try:
        conn = await asyncpg.connect(PG_URL.replace("postgresql+asyncpg", "postgresql"), timeout=3)
    except (OSError, asyncpg.PostgresError) as exc:
        print(f"PostgreSQL not reachable ({exc}); skipping its row")
        return False
    try:
        if create:
            await conn.execute(f'CREATE SCHEMA "{schema}"')
        else:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()
    return True


def main() -> None:
    if not shutil.which("wrk"):
        raise SystemExit("wrk is needed: apt-get install -y wrk")
    tmp = Path(tempfile.mkdtemp(prefix="dangol-bench-"))
    payload = payload_file(tmp)

    bare_cmd = [PY, str(BENCH / "bare.py")]
    bare = yardstick(bare_cmd, payload, tmp)
    target = round(bare["rps"] * 0.5)
    print(f"bare handler: {bare['rps']:.0f} req/s, p99 {bare['p99_us'] / 1000:.1f} ms")
    floor = [PY, str(BENCH / "floor.py")]
    floors = {"rows": yardstick(floor, payload, tmp, tmp / "floor.db", "rows")}

    results: dict[str, dict[str, object]] = {}
    results["SQLite"] = durable(
        "sqlite", f"sqlite+aiosqlite:///{tmp / 'bench.db'}", None, tmp, payload, target
    )
    # dangol's writes alone need its schema with the customers known: a copy of the
    # database the SQLite run just filled (every bench customer has written by then).
    with sqlite3.connect(tmp / "bench.db") as filled, sqlite3.connect(tmp / "schema.db") as copy:
        filled.backup(copy)
    floors["schema"] = yardstick(floor, payload, tmp, tmp / "schema.db", "schema")
    for name, run in floors.items():
        print(f"least durable endpoint ({name}): {run['rps']:.0f} req/s")

    schema = f"bench_{os.getpid()}"
    if asyncio.run(pg_schema(True, schema)):
        try:
            results["PostgreSQL"] = durable("pg", PG_URL, schema, tmp, payload, target)
            # Its yardstick on the schema that run filled (its customers known), right after.
            floors["asyncpg"] = yardstick(
                [PY, str(BENCH / "floor_pg.py")], payload, tmp, PG_URL, schema
            )
        finally:
            asyncio.run(pg_schema(False, schema))
    # This host's speed drifts by a fifth within minutes: the ratios are to the mean of a
    # bare run before everything and one after.
    write_results(
        [bare, yardstick(bare_cmd, payload, tmp)], floors, target, results, "--no-write" in sys.argv
    )
    shutil.rmtree(tmp, ignore_errors=True)


FLOOR_NAMES = {
    "rows": "least durable endpoint: one row (SQLite)",
    "schema": "least durable endpoint: dangol's rows, plain sqlite3",
    "asyncpg": "least durable endpoint: dangol's rows, plain asyncpg",
}
# Each dangol row's yardstick (issue #10): the same writes in plain SQL on the same database.
FLOOR_OF = {"SQLite": "schema", "PostgreSQL": "asyncpg"}
FLOOR_TARGET = 0.7
SLOWEST_ALLOWED_US = 1_000_000


def ms(us: float) -> str:
    return f"{us / 1000:.1f} ms"


def us(run: dict[str, float]) -> str:
    return f"{run['cpu_us']:.0f} µs"


def write_results(
    bares: list[dict[str, float]],
    floors: dict[str, dict[str, float]],
    target: int,
    results: dict[str, dict[str, object]],
    dry_run: bool = False,
) -> None:
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT
    ).stdout.strip()
    lines = [
        "# Benchmark results",
        "",
        "`make bench` writes this file: bench/run.py the Kakao skill endpoint sections, "
        "bench/inbox.py, bench/reports.py and `make soak` (bench/soak.py) their own sections at "
        "the end. Kakao skill endpoint, wrk with "
        f"{CONNECTIONS} connections on 127.0.0.1, {DURATION} s per run after a {WARMUP} s warm-up, "
        "distinct customers and messages (no resends). The bare handler parses the same JSON and "
        "returns a fixed SkillResponse; dangol commits the message, the reply and any owner "
        "notification (group commit, SQLite `synchronous=FULL`) before answering. The least "
        "durable endpoints (bench/floor.py, bench/floor_pg.py) are the other yardsticks: the "
        "same JSON parsed, group-committed the way dangol's writer does it, a fixed answer, no "
        "validation, routing or rendering. *One row* stores the utterance as one row of a "
        "one-table database: what durability itself costs. *dangol's rows, plain sqlite3* does, "
        "in four hand-written statements a commit, the writes every message needs in dangol's "
        "own schema (on a copy of the database the SQLite run filled): look up the customer's "
        "open conversation, store the message with its idempotency key, update the "
        "conversation, store the reply. *dangol's rows, plain asyncpg* (bench/floor_pg.py) does "
        "the same four statements in the same group commit on PostgreSQL, on the schema the "
        "PostgreSQL run filled. What is left between a floor and dangol is the ORM and dangol's "
        "own work per message.",
        "",
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC at commit `{commit}` on "
        f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}.",
        "",
        "## Flat out (closed loop)",
        "",
        "| endpoint | req/s | × bare (mean of its two runs) | CPU per request | p50 | p99 | max | non-2xx "
        "| messages stored |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    rate = statistics.mean(bare["rps"] for bare in bares)
    for when, bare in zip(("first", "last"), bares, strict=True):
        lines.append(
            f"| bare aiohttp handler, {when} run | {bare['rps']:.0f} | {bare['rps'] / rate:.2f} "
            f"| {us(bare)} | {ms(bare['p50_us'])} | {ms(bare['p99_us'])} | {ms(bare['max_us'])} "
            f"| {bare['errors_status']:.0f} | — |"
        )
    for name, floor in floors.items():
        lines.append(
            f"| {FLOOR_NAMES[name]} | {floor['rps']:.0f} | {floor['rps'] / rate:.2f} "
            f"| {us(floor)} | {ms(floor['p50_us'])} | {ms(floor['p99_us'])} "
            f"| {ms(floor['max_us'])} | {floor['errors_status']:.0f} | — |"
        )
    for name, r in results.items():
        flat = r["flat"]
        assert isinstance(flat, dict)
        lines.append(
            f"| dangol, {name} | {flat['rps']:.0f} | {flat['rps'] / rate:.2f} | {us(flat)} "
            f"| {ms(flat['p50_us'])} "
            f"| {ms(flat['p99_us'])} | {ms(flat['max_us'])} | {flat['errors_status']:.0f} "
            f"| {r['stored']} (200 answers: {r['answered']:.0f}) |"
        )
    lines += [
        "",
        "## dangol against its floor (the same writes in plain SQL, same run)",
        "",
        "| database | dangol req/s | floor req/s | × floor | target |",
        "|---|---|---|---|---|",
    ]
    for name, r in results.items():
        flat, floor = r["flat"], floors.get(FLOOR_OF[name])
        assert isinstance(flat, dict)
        if floor is None:
            continue
        ratio = flat["rps"] / floor["rps"]
        verdict = "met" if ratio >= FLOOR_TARGET else "not met"
        lines.append(
            f"| {name} | {flat['rps']:.0f} | {floor['rps']:.0f} | {ratio:.2f} "
            f"| ≥ {FLOOR_TARGET} ({verdict}) |"
        )
    lines += [
        "",
        f"## Paced at half the bare handler's first run ({target} req/s)",
        "",
        "| endpoint | achieved req/s | p50 | p90 | p99 | max | non-2xx |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, r in results.items():
        paced = r["paced"]
        assert isinstance(paced, dict)
        lines.append(
            f"| dangol, {name} | {paced['rps']:.0f} | {ms(paced['p50_us'])} | {ms(paced['p90_us'])} "
            f"| {ms(paced['p99_us'])} | {ms(paced['max_us'])} | {paced['errors_status']:.0f} |"
        )
    lines += [
        "",
        "## Paced at three quarters of each endpoint's own flat-out rate",
        "",
        "| endpoint | paced at req/s | achieved req/s | p50 | p90 | p99 | max | non-2xx |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, r in results.items():
        flat, sus = r["flat"], r["sustained"]
        assert isinstance(flat, dict)
        assert isinstance(sus, dict)
        lines.append(
            f"| dangol, {name} | {flat['rps'] * 0.75:.0f} | {sus['rps']:.0f} | {ms(sus['p50_us'])} "
            f"| {ms(sus['p90_us'])} | {ms(sus['p99_us'])} | {ms(sus['max_us'])} | {sus['errors_status']:.0f} |"
        )
    slowest = max(
        [run["max_us"] for run in [*bares, *floors.values()]]
        + [
            run["max_us"]
            for r in results.values()
            for key in ("flat", "paced", "sustained")
            if isinstance(run := r[key], dict)
        ]
    )
    verdict = "met" if slowest < SLOWEST_ALLOWED_US else "NOT met"
    lines += [
        "",
        f"Slowest response in any row above: {ms(slowest)} (target: none over 1 s — {verdict}).",
        "",
        "Targets (issue #10, restating issue #2): dangol ≥ 0.7× its floor's req/s on each "
        "database, no response over 1 s in any row. "
        '"messages stored" counts inbound rows after all '
        "runs (warm-up included); it must be at least the number of 200 answers of the measured runs. "
        "CPU per request: the server process's user + system time over the flat-out run, "
        "divided by its requests (PostgreSQL's own work is not in it); at 0.5× the bare "
        f"handler's rate one core has {2e6 / rate:.0f} µs for each request. "
        "Pacing: wrk makes each connection wait its share of the pacing rate before every "
        "request, on top of the response time, so the achieved rate is below the paced one; the "
        "paced rows show latency under a load the endpoint carries, not at exactly that rate.",
        "",
    ]
    print("\n".join(lines))
    if dry_run:
        return
    # The other benchmarks' sections (bench/inbox.py …) stay as they were.
    kept = sections.every(sections.read())
    text = "\n".join(lines) + "".join("\n" + section for section in kept)
    sections.RESULTS.write_text(text, "utf-8")


if __name__ == "__main__":
    main()
