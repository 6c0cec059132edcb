"""`make soak`: dangol on SQLite for ten minutes at half of its own flat-out rate.

One real `dangol serve` on a fresh SQLite database (synchronous=FULL), the Kakao skill
endpoint driven by wrk (bench/skill.lua, 50 connections on 127.0.0.1, distinct messages):
a warm-up, a flat-out run to learn this server's own rate here, then the soak at half that
rate, in one-minute slices. wrk paces by making each connection wait before each request,
so the offered rate of each slice is corrected by what the previous one achieved, to keep
the achieved rate at half the flat-out one. Every slice records its latency (p50/p99/max),
the server's resident memory (VmRSS) and the WAL file's size; the report gives them at the
start and the end, the worst slice's p99 and the slowest response of all.
Afterwards the database is counted: every 200 answer must have its message stored.

Targets (issue #10): p99 ≤ 100 ms, max < 1 s, resident memory and the WAL bounded.

    .venv/bin/python bench/soak.py                      # `make soak`: 10 minutes
    .venv/bin/python bench/soak.py --minutes 1 --no-write
    BENCH_PROBE=1 .venv/bin/python bench/soak.py --minutes 2 --no-write

--minutes: the soak's length (10). --no-write: print the report, leave bench/RESULTS.md
alone (otherwise it goes into its own section, `<!-- soak -->`). BENCH_PROBE=1: the server
runs under bench/probe.py, whose findings (slow commits, checkpoints, long GC, a blocked
event loop) are printed at the end. Needs `wrk` (Debian package).
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import run
import sections

SLICE_SECONDS = 60
P99_TARGET_MS = 100.0
MAX_TARGET_MS = 1000.0


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def wal_mb(database: Path) -> float:
    wal = database.with_name(database.name + "-wal")
    return wal.stat().st_size / 1e6 if wal.exists() else 0.0


def soak(minutes: float, tmp: Path) -> dict[str, object]:
    payload = run.payload_file(tmp)
    database = tmp / "soak.db"
    port = run.free_port()
    cfg = tmp / "soak.toml"
    cfg.write_text(
        run.CONFIG.format(port=port, url=f"sqlite+aiosqlite:///{database}", schema=""), "utf-8"
    )
    env = dict(os.environ, BENCH_SKILL_SECRET=run.SECRET)
    subprocess.run(
        [run.DANGOL, "db", "upgrade", "--config", str(cfg)],
        env=env,
        check=True,
        capture_output=True,
    )
    serve = [run.PY, str(run.BENCH / "probe.py")] if run.PROBE else [run.DANGOL]
    log = tmp / "server.log"
    proc = run.run_server([*serve, "serve", "--config", str(cfg)], port, env, log)
    slices: list[dict[str, float]] = []
    try:
        run.wrk(port, payload, tmp, run.WARMUP)
        flat = run.wrk(port, payload, tmp, run.DURATION)
        target = flat["rps"] / 2
        print(f"flat out: {flat['rps']:.0f} req/s; soaking at {target:.0f} req/s")
        start = {"rss_mb": rss_mb(proc.pid), "wal_mb": wal_mb(database)}
        left = minutes * 60
        offered = target
        while left > 0:
            seconds = round(min(SLICE_SECONDS, left))
            result = run.wrk(port, payload, tmp, seconds, rate=offered)
            result["offered"] = offered
            result["rss_mb"] = rss_mb(proc.pid)
            result["wal_mb"] = wal_mb(database)
            slices.append(result)
            print(
                f"slice {len(slices)}: {result['rps']:.0f} req/s, p99 {run.ms(result['p99_us'])}, "
                f"max {run.ms(result['max_us'])}, RSS {result['rss_mb']:.0f} MB, "
                f"WAL {result['wal_mb']:.1f} MB",
                flush=True,
            )
            # wrk's pacing adds each response's time to the wait: offer more to get `target`.
            offered = min(offered * target / max(result["rps"], 1.0), target * 3)
            left -= seconds
    finally:
        run.stop(proc)
    if run.PROBE:
        print("what bench/probe.py saw:")
        print(log.read_text("utf-8", "replace")[-20000:])
    return {
        "flat": flat,
        "target": target,
        "start": start,
        "slices": slices,
        "stored": run.count_inbound(f"sqlite+aiosqlite:///{database}", None),
        "answered": sum(s["ok"] for s in slices),
    }


def report(minutes: float, result: dict[str, object]) -> str:
    flat, start, slices = result["flat"], result["start"], result["slices"]
    assert isinstance(flat, dict)
    assert isinstance(start, dict)
    assert isinstance(slices, list)
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=run.ROOT
    ).stdout.strip()
    worst_p99 = max(s["p99_us"] for s in slices) / 1000
    slowest = max(s["max_us"] for s in slices) / 1000
    achieved = sum(s["requests"] for s in slices) / sum(s["duration_us"] / 1e6 for s in slices)
    lines = [
        "## Soak: dangol on SQLite at half its flat-out rate (bench/soak.py)",
        "",
        f"{minutes:g} minutes in {len(slices)} slices after a {run.WARMUP} s warm-up and a "
        f"{run.DURATION} s flat-out run ({flat['rps']:.0f} req/s); wrk with {run.CONNECTIONS} "
        "connections on 127.0.0.1, distinct customers and messages, SQLite "
        "`synchronous=FULL`. Each slice's offered rate is corrected by what the one before "
        "achieved (wrk's pacing waits on top of each response).",
        "",
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC at commit `{commit}` on "
        f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}.",
        "",
        "| slice | achieved req/s | p50 | p99 | max | non-2xx | server RSS | WAL file |",
        "|---|---|---|---|---|---|---|---|",
        f"| start | — | — | — | — | — | {start['rss_mb']:.0f} MB | {start['wal_mb']:.1f} MB |",
    ]
    for n, s in enumerate(slices, 1):
        lines.append(
            f"| {n} | {s['rps']:.0f} | {run.ms(s['p50_us'])} | {run.ms(s['p99_us'])} "
            f"| {run.ms(s['max_us'])} | {s['errors_status']:.0f} | {s['rss_mb']:.0f} MB "
            f"| {s['wal_mb']:.1f} MB |"
        )
    end = slices[-1]
    lines += [
        "",
        f"Achieved {achieved:.0f} req/s for a target of {result['target']:.0f}. Worst slice p99 "
        f"{worst_p99:.1f} ms (target ≤ {P99_TARGET_MS:.0f} ms: "
        f"{'met' if worst_p99 <= P99_TARGET_MS else 'NOT met'}); slowest response "
        f"{slowest:.1f} ms (target < 1 s: {'met' if slowest < MAX_TARGET_MS else 'NOT met'}). "
        f"Server RSS {start['rss_mb']:.0f} MB at the start, {end['rss_mb']:.0f} MB at the end; "
        f"WAL {start['wal_mb']:.1f} MB at the start, {end['wal_mb']:.1f} MB at the end "
        f"(largest {max(s['wal_mb'] for s in slices):.1f} MB). Messages stored: "
        f"{result['stored']} (200 answers in the slices: {result['answered']:.0f}; the "
        "warm-up and flat-out runs' messages are stored too).",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("wrk is needed: apt-get install -y wrk")
    tmp = Path(tempfile.mkdtemp(prefix="dangol-soak-"))
    try:
        text = report(args.minutes, soak(args.minutes, tmp))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(text)
    if not args.no_write:
        sections.write_section("soak", text)


if __name__ == "__main__":
    main()
