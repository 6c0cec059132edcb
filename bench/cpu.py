"""CPU time per Kakao skill request: dangol on SQLite against `bench/floor.py schema`.

On a shared machine requests per second measure the neighbours as much as the server;
the CPU time the server process spends per request does not (much). This drives the
same number of distinct skill requests, 50 at a time, through the real servers — `dangol
serve` on a SQLite file and the plain-sqlite3 floor on a copy of the database dangol
filled after its warm-up, taking turns for a few rounds — from this process (so the
client's own CPU is not counted), and reports each server's user + system time per
request and their ratio (medians of the rounds). Issue 10's target (dangol ≥
0.7× the floor's req/s, both CPU-bound) is a ratio of at most 1/0.7 ≈ 1.43 here.

usage: cpu.py [REQUESTS] [--rounds N] [--profile DIR] [--write-results]
  --profile DIR: py-spy records each server during the first round (the thread holding
  the GIL, so mostly the Python CPU time): DIR/dangol.txt and DIR/floor.txt, collapsed
  stacks for `flamegraph.pl` or speedscope; and prints where each server's time goes, per
  request, by the package of the innermost frame (SQLAlchemy, aiohttp, dangol's modules …).
  --write-results: puts the figures (and that breakdown) in bench/RESULTS.md's `cpu` section.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run  # bench/run.py: the same configuration and helpers
import sections

SAMPLE_RATE = 250  # py-spy samples a second (`-r`)
# Where a sample's innermost frame lives → the row it counts in (first match wins).
PLACES = (
    ("sqlalchemy/", "SQLAlchemy (statement execution, incl. sqlite3's own time holding the GIL)"),
    ("aiohttp/", "aiohttp (HTTP parsing, routing, responses)"),
    ("asyncio/", "asyncio (event loop, futures, timers)"),
    ("concurrent/", "thread pool hand-offs (the database thread)"),
    ("threading.py", "thread pool hand-offs (the database thread)"),
    ("json/", "json (request parsing, response encoding)"),
    ("bot/inbound", "dangol: bot/inbound (identity, decision, rows)"),
    ("bot/webhooks", "dangol: bot/webhooks (checks, deadlines)"),
    ("bot/kakao", "dangol: bot/kakao (payload decoding, SkillResponse)"),
    ("bot/routing", "dangol: routing and handlers"),
    ("bot/handlers", "dangol: routing and handlers"),
    ("core/models", "dangol: core/models (column types)"),
    ("core/texts", "dangol: texts (templates)"),
    ("jinja2/", "dangol: texts (templates)"),
    ("bot/", "dangol: other web modules"),
    ("core/", "dangol: other core modules"),
    ("floor.py", "the floor's own code (its four statements)"),
)

CONCURRENCY = 50
CUSTOMERS = 500  # each writes once in the warm-up, so the floor finds them all


def payload(user: int, message: int) -> bytes:
    data = json.loads((run.ROOT / "tests/payloads/kakao/skill-fallback-text.json").read_bytes())
    req = data["userRequest"]
    req["utterance"] = f"에어컨 점검 문의 {message}"
    req["user"]["id"] = req["user"]["properties"]["botUserKey"] = f"cpu-user-{user:05d}"
    req["user"]["properties"]["plusfriendUserKey"] = f"cpu-friend-{user:05d}"
    return json.dumps(data, ensure_ascii=False).encode()


async def drive(port: int, bodies: list[bytes]) -> int:
    """POSTs every body, CONCURRENCY at a time; the number of 200 answers."""
    url = f"http://127.0.0.1:{port}/hooks/kakao/bench"
    headers = {"Content-Type": "application/json", "X-Dangol-Skill-Secret": run.SECRET}
    queue = iter(bodies)
    ok = 0

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal ok
        for body in queue:
            async with session.post(url, data=body, headers=headers) as resp:
                await resp.read()
                ok += resp.status == 200

    connector = aiohttp.TCPConnector(limit=CONCURRENCY)
    async with aiohttp.ClientSession(connector=connector) as session:
        await asyncio.gather(*(worker(session) for _ in range(CONCURRENCY)))
    return ok


def warm_up(name: str, port: int) -> None:
    """Every customer writes once (so the floor's copy of the database knows them all)."""
    warm = [payload(user, -1 - user) for user in range(CUSTOMERS)]
    if asyncio.run(drive(port, warm)) != len(warm):
        raise SystemExit(f"{name}: the warm-up had non-200 answers")


def measure(
    name: str, proc: subprocess.Popen[bytes], bodies: list[bytes], port: int, profile: Path | None
) -> float:
    """One measured run: the server's µs of CPU per request."""
    spy = None
    if profile is not None:
        spy_bin = str(Path(sys.executable).parent / "py-spy")
        out = str(profile / f"{name}.txt")
        cmd = [spy_bin, "record", "-p", str(proc.pid), "-f", "raw", "-o", out, "-r", "250", "--gil"]
        spy = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    before = run.cpu_seconds(proc.pid)
    ok = asyncio.run(drive(port, bodies))
    spent = run.cpu_seconds(proc.pid) - before
    if spy is not None:
        spy.send_signal(2)  # SIGINT: py-spy writes its file and exits
        spy.wait()
    if ok != len(bodies):
        raise SystemExit(f"{name}: {len(bodies) - ok} non-200 answers")
    return spent / len(bodies) * 1e6


def breakdown(path: Path, requests: int) -> dict[str, float]:
    """µs per request holding the GIL, by `PLACES` row, from a py-spy raw (collapsed) file."""
    spent: dict[str, float] = {}
    for line in path.read_text("utf-8").splitlines():
        stack, _, count = line.rpartition(" ")
        innermost = stack.rsplit(";", 1)[-1]
        place = next((row for key, row in PLACES if key in innermost), "other")
        spent[place] = spent.get(place, 0.0) + int(count)
    scale = 1e6 / SAMPLE_RATE / requests
    return {place: n * scale for place, n in sorted(spent.items(), key=lambda kv: -kv[1])}


def breakdown_table(dangol: dict[str, float], floor: dict[str, float]) -> str:
    rows = ["| where (innermost frame) | dangol µs | floor µs |", "|---|---|---|"]
    for place in dict.fromkeys([*dangol, *floor]):
        d, f = dangol.get(place, 0.0), floor.get(place, 0.0)
        rows.append(f"| {place} | {d:.0f} | {f:.0f} |".replace("| 0 |", "| — |"))
    rows.append(
        f"| **all, holding the GIL** | **{sum(dangol.values()):.0f}** | "
        f"**{sum(floor.values()):.0f}** |"
    )
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("requests", type=int, nargs="?", default=4000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--profile", type=Path)
    parser.add_argument("--write-results", action="store_true")
    args = parser.parse_args()
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="dangol-cpu-"))
    servers: list[subprocess.Popen[bytes]] = []
    try:
        port = run.free_port()
        cfg = tmp / "dangol.toml"
        url = f"sqlite+aiosqlite:///{tmp / 'bench.db'}"
        cfg.write_text(run.CONFIG.format(port=port, url=url, schema=""), "utf-8")
        env = dict(os.environ, BENCH_SKILL_SECRET=run.SECRET)
        subprocess.run(
            [run.DANGOL, "db", "upgrade", "--config", str(cfg)],
            env=env,
            check=True,
            capture_output=True,
        )
        servers.append(run.run_server([run.DANGOL, "serve", "--config", str(cfg)], port, env))
        warm_up("dangol", port)
        with sqlite3.connect(tmp / "bench.db") as filled, sqlite3.connect(tmp / "floor.db") as db:
            filled.backup(db)
        floor_port = run.free_port()
        floor_cmd = [run.PY, str(run.BENCH / "floor.py"), str(floor_port), str(tmp / "floor.db")]
        servers.append(run.run_server([*floor_cmd, "schema"], floor_port, dict(os.environ)))
        warm_up("floor", floor_port)
        # The host's load drifts: the two take turns, and each round is compared on its own.
        rounds: list[tuple[float, float]] = []
        for r in range(args.rounds):
            first = r * args.requests
            bodies = [payload(n % CUSTOMERS, first + n) for n in range(args.requests)]
            profile = args.profile if r == 0 else None
            dangol = measure("dangol", servers[0], bodies, port, profile)
            floor = measure("floor", servers[1], bodies, floor_port, profile)
            rounds.append((dangol, floor))
            print(
                f"round {r + 1}: dangol {dangol:4.0f} µs, floor {floor:4.0f} µs, "
                f"ratio {dangol / floor:.2f}"
            )
    finally:
        for proc in servers:
            run.stop(proc)
        shutil.rmtree(tmp, ignore_errors=True)
    dangol = statistics.median(d for d, _ in rounds)
    floor = statistics.median(f for _, f in rounds)
    ratio = statistics.median(d / f for d, f in rounds)
    print(
        f"{args.requests} requests a run, {CONCURRENCY} at a time; server CPU per request, "
        f"median of {len(rounds)} rounds:"
    )
    print(f"  dangol, SQLite:             {dangol:6.0f} µs")
    print(f"  floor, dangol's rows (SQL): {floor:6.0f} µs")
    print(f"  dangol / floor: {ratio:.2f} (target ≤ {1 / 0.7:.2f})")
    table = ""
    if args.profile:
        table = breakdown_table(
            breakdown(args.profile / "dangol.txt", args.requests),
            breakdown(args.profile / "floor.txt", args.requests),
        )
        print(table)
    if args.write_results:
        body = (
            "## CPU per request, dangol against its floor (bench/cpu.py)\n\n"
            f"{args.requests} distinct Kakao skill requests a round, {CONCURRENCY} at a time, "
            f"{len(rounds)} rounds; the server process's user + system time per request "
            "(medians). The floor is `bench/floor.py schema` (dangol's four statements in "
            "plain sqlite3).\n\n"
            "| server | CPU per request |\n|---|---|\n"
            f"| dangol, SQLite | {dangol:.0f} µs |\n| floor, dangol's rows (SQL) | {floor:.0f} µs |\n"
            f"| dangol / floor | {ratio:.2f} (0.7× the floor's req/s needs ≤ {1 / 0.7:.2f}) |\n"
        )
        if table:
            body += (
                "\nWhere the time goes, first round, sampled by py-spy (`--gil`, 250 Hz) in "
                "the thread holding the GIL, µs per request by the innermost frame's "
                "package:\n\n" + table + "\n"
            )
        sections.RESULTS.write_text(sections.put(sections.read(), "cpu", body), "utf-8")


if __name__ == "__main__":
    main()
