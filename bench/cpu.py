"""CPU time per Kakao skill request: dangol on SQLite against `bench/floor.py schema`.

On a shared machine requests per second measure the neighbours as much as the server;
the CPU time the server process spends per request does not (much). This drives the
same number of distinct skill requests, 50 at a time, through the real servers — `dangol
serve` on a SQLite file, then the plain-sqlite3 floor on a copy of the database dangol
filled — from this process (so the client's own CPU is not counted), and reports each
server's user + system time per request and their ratio. Issue 10's target (dangol ≥
0.7× the floor's req/s, both CPU-bound) is a ratio of at most 1/0.7 ≈ 1.43 here.

usage: cpu.py [REQUESTS] [--profile DIR]
  --profile DIR: py-spy records each server during its measured run (the thread holding
  the GIL: the Python CPU time) (DIR/dangol.txt and
  DIR/floor.txt, collapsed stacks for `flamegraph.pl` or speedscope).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run  # noqa: E402  (bench/run.py: the same configuration and helpers)

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


def measure(
    name: str, proc: subprocess.Popen[bytes], port: int, requests: int, profile: Path | None
) -> float:
    """Warm up (every customer writes once), then the measured run: µs of CPU a request."""
    warm = [payload(user, -user) for user in range(CUSTOMERS)]
    if asyncio.run(drive(port, warm)) != len(warm):
        raise SystemExit(f"{name}: the warm-up had non-200 answers")
    bodies = [payload(n % CUSTOMERS, n) for n in range(requests)]
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
    if ok != requests:
        raise SystemExit(f"{name}: {requests - ok} non-200 answers")
    return spent / requests * 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("requests", type=int, nargs="?", default=6000)
    parser.add_argument("--profile", type=Path)
    args = parser.parse_args()
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="dangol-cpu-"))
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
        proc = run.run_server([run.DANGOL, "serve", "--config", str(cfg)], port, env)
        try:
            dangol = measure("dangol", proc, port, args.requests, args.profile)
        finally:
            run.stop(proc)

        with sqlite3.connect(tmp / "bench.db") as filled, sqlite3.connect(tmp / "floor.db") as db:
            filled.backup(db)
        port = run.free_port()
        floor_cmd = [run.PY, str(run.BENCH / "floor.py"), str(port), str(tmp / "floor.db")]
        proc = run.run_server([*floor_cmd, "schema"], port, dict(os.environ))
        try:
            floor = measure("floor", proc, port, args.requests, args.profile)
        finally:
            run.stop(proc)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"{args.requests} requests, {CONCURRENCY} at a time; server CPU per request:")
    print(f"  dangol, SQLite:             {dangol:6.0f} µs")
    print(f"  floor, dangol's rows (SQL): {floor:6.0f} µs")
    print(f"  dangol / floor: {dangol / floor:.2f} (target ≤ {1 / 0.7:.2f})")


if __name__ == "__main__":
    main()
