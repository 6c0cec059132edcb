"""SOLAPI delivery reports under load on PostgreSQL: 500 reports/s for 60 s (issue #10).

One real `dangol serve` on a fresh PostgreSQL schema with a shop that takes SOLAPI reports
(`[shops.solapi]`). The messages the reports are about are seeded first: outbound texts
already handed to SOLAPI (`sent`, with SOLAPI's message id). Each message then gets its
three reports — 2000 accepted, 3000 sent, and a final 4000 delivered (one in twenty a
failure code instead) — a second apart, and one message in ten gets them in the reverse
order (the final one first). One report in ten is posted twice (SOLAPI's retry, with
`retryCount` 1, up to 5 s later). The reports are posted one per request to
`/hooks/solapi/<shop>/<token>` at a fixed rate by an open-loop aiohttp client on 127.0.0.1:
each request leaves at its own time whatever the ones before it are doing, and its latency
is counted from that time, so a stall shows in full.

Then the database is checked:
- each report stored once: no report stored twice, none answered 200 missing;
- statuses never move back: every message whose final report was answered ends at that
  report's status (delivered or failed), however its reports arrived;
- every request answered 200 (a report not answered 200 may be missing: SOLAPI would post
  it again; one answered 200 must be stored); p99 < 200 ms (the target).

    .venv/bin/python bench/reports.py                  # `make bench` runs this
    .venv/bin/python bench/reports.py --seconds 5 --no-write

--rate (500) reports per second, --seconds (60), --no-write: print the report, leave
bench/RESULTS.md alone (otherwise it goes into its own section, `<!-- reports -->`).
--sqlite: the same run on a SQLite file instead (for comparison; the target is PostgreSQL's).
BENCH_PROBE=1: the server runs under bench/probe.py. Needs the PostgreSQL server in
DANGOL_TEST_PG_URL; every figure is from one run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import run
import sections
import sqlalchemy as sa

sys.path.insert(0, str(run.ROOT))

from core.db import Database
from core.models import Conversation, Customer, DeliveryEvent, Message, Shop

TOKEN = "bench-solapi-webhook-token-0123456789"
SEED = 20261203
DUPLICATED = 0.10
REVERSED = 0.10
FAILED = 0.05
CONNECTIONS = 64
P99_TARGET_MS = 200.0
NOW = datetime.now(UTC).replace(microsecond=0)

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
[shops.owner]
name = "벤치"
phone = "010-2222-3333"
notify_via = ["console"]
[shops.solapi]
webhook_token_env = "BENCH_SOLAPI_TOKEN"
"""


@dataclass(frozen=True)
class Post:
    at: float  # seconds into the run, before the posts are put in order
    message: int  # index of the seeded message
    code: str
    event: str
    retry: int = 0


FINAL = {"4000": "delivered"}  # any other final code: failed
TEXT = {"2000": "접수 완료", "3000": "발송 중", "4000": "발송 처리 완료", "3104": "수신 거부"}


def plan(messages: int, seconds: float, rng: random.Random) -> list[Post]:
    """Every report in the order it is posted."""
    posts: list[Post] = []
    spread = max(seconds - 2.0, seconds * 0.5)  # the last message's reports still fit
    for m in range(messages):
        final = "3104" if rng.random() < FAILED else "4000"
        codes = ["2000", "3000", final]
        if rng.random() < REVERSED:
            codes.reverse()
        start = rng.uniform(0, spread)
        for step, code in enumerate(codes):
            posts.append(Post(start + step * 0.5, m, code, f"EV{m:07d}{code}"))
    for post in rng.sample(posts, round(len(posts) * DUPLICATED)):
        posts.append(Post(post.at + rng.uniform(0.1, 5.0), post.message, post.code, post.event, 1))
    posts.sort(key=lambda p: p.at)
    return posts


def out_of_order(posts: list[Post]) -> int:
    """Messages whose first report to arrive was not "accepted"."""
    first: dict[int, str] = {}
    for p in posts:
        first.setdefault(p.message, p.code)
    return sum(1 for code in first.values() if code != "2000")


def message_id(m: int) -> str:
    return f"M4V{m:029d}"


def body(post: Post) -> bytes:
    when = (NOW + timedelta(seconds=post.at)).isoformat().replace("+00:00", "Z")
    item = {
        "eventDataId": post.event,
        "retryCount": post.retry,
        "data": {
            "messageId": message_id(post.message),
            "groupId": f"G4V{post.message // 100:029d}",
            "type": "SMS",
            "to": "01055556666",
            "from": "0212345678",
            "statusCode": post.code,
            "statusMessage": TEXT[post.code],
            "dateProcessed": when,
            "dateReported": when,
            "dateReceived": when,
            "networkCode": "",
            "customFields": {},
        },
    }
    return json.dumps([item], ensure_ascii=False).encode()


async def seed(database: Database, messages: int) -> None:
    """`messages` outbound texts already with SOLAPI, ten to a customer."""
    customers = (messages + 9) // 10

    def unit(conn: sa.Connection) -> None:
        shop_id = conn.execute(sa.select(Shop.id).where(Shop.slug == "bench")).scalar_one()
        people = conn.execute(
            sa.insert(Customer).returning(Customer.id, sort_by_parameter_order=True),
            [{"shop_id": shop_id, "created_at": NOW} for _ in range(customers)],
        ).scalars()
        people = list(people)
        talks = conn.execute(
            sa.insert(Conversation).returning(Conversation.id, sort_by_parameter_order=True),
            [
                {"shop_id": shop_id, "customer_id": c, "channel": "sms", "last_message_at": NOW}
                | {"created_at": NOW}
                for c in people
            ],
        ).scalars()
        talks = list(talks)
        conn.execute(
            sa.insert(Message),
            [
                {
                    "shop_id": shop_id,
                    "conversation_id": talks[m // 10],
                    "customer_id": people[m // 10],
                    "direction": "out",
                    "sender": "owner",
                    "channel": "sms",
                    "body": "예약 확인 문자입니다.",
                    "status": "sent",
                    "path": "sms",
                    "provider": "solapi",
                    "provider_message_id": message_id(m),
                    "idempotency_key": f"bench-report-{m}",
                    "created_at": NOW,
                }
                for m in range(messages)
            ],
        )

    await database.write(unit)


Driven = tuple[list[float], dict[int, int], set[str]]  # latencies, answers by status, 200'd


async def drive(url: str, posts: list[Post], rate: float) -> Driven:
    """Post every report at its own time (`rate` a second); latencies from those times.
    Also the reports answered 200 at least once: those must be stored."""
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    answered: set[str] = set()
    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=CONNECTIONS), timeout=timeout
    ) as session:

        async def post(event: str, data: bytes, due: float) -> None:
            try:
                async with session.post(
                    url, data=data, headers={"Content-Type": "application/json"}
                ) as response:
                    await response.read()
                    status = response.status
            except (aiohttp.ClientError, TimeoutError):
                status = 0  # no answer
            latencies.append(time.monotonic() - due)
            statuses[status] = statuses.get(status, 0) + 1
            if status == 200:
                answered.add(event)

        tasks: list[asyncio.Task[None]] = []
        bodies = [(p.event, body(p)) for p in posts]
        start = time.monotonic() + 0.5
        for n, (event, data) in enumerate(bodies):
            due = start + n / rate
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(post(event, data, due)))
        await asyncio.gather(*tasks)
    return latencies, statuses, answered


async def check(
    database: Database, posts: list[Post], messages: int, answered: set[str]
) -> dict[str, int]:
    """Counts from the database; a report not answered 200 may be missing (SOLAPI would
    post it again), but one answered 200 must be there."""
    expected: dict[int, str] = {}  # the final status of each message whose final was answered
    for p in posts:
        if p.code not in ("2000", "3000") and p.event in answered:
            expected[p.message] = FINAL.get(p.code, "failed")
    async with database.read() as conn:
        events = (
            await conn.execute(sa.select(sa.func.count()).select_from(DeliveryEvent))
        ).scalar_one()
        stored = set((await conn.execute(sa.select(DeliveryEvent.event_id))).scalars())
        distinct = (
            await conn.execute(sa.select(sa.func.count(sa.distinct(DeliveryEvent.event_id))))
        ).scalar_one()
        rows = (
            await conn.execute(
                sa.select(Message.provider_message_id, Message.status, Message.delivered_at).where(
                    Message.provider == "solapi"
                )
            )
        ).all()
    found = {row.provider_message_id: row for row in rows}
    wrong = sum(1 for m, status in expected.items() if found[message_id(m)].status != status)
    undated = sum(1 for row in rows if row.status == "delivered" and row.delivered_at is None)
    return {
        "events": int(events),
        "distinct_events": int(distinct),
        "reports": len({p.event for p in posts}),
        "answered_reports": len(answered),
        "answered_missing": len(answered - stored),
        "finals_answered": len(expected),
        "wrong_status": wrong,
        "delivered_undated": undated,
        "delivered": sum(1 for row in rows if row.status == "delivered"),
        "failed": sum(1 for row in rows if row.status == "failed"),
    }


def bench(rate: float, seconds: float, tmp: Path, *, on_sqlite: bool = False) -> dict[str, Any]:
    rng = random.Random(SEED)
    messages = max(1, round(rate * seconds / (1 + DUPLICATED) / 3))
    posts = plan(messages, seconds, rng)
    schema: str | None = None
    db_url = f"sqlite+aiosqlite:///{tmp / 'reports.db'}"
    if not on_sqlite:
        schema, db_url = f"bench_reports_{os.getpid()}", run.PG_URL
        if not asyncio.run(run.pg_schema(True, schema)):
            raise SystemExit("PostgreSQL is needed (DANGOL_TEST_PG_URL)")
    try:
        port = run.free_port()
        cfg = tmp / "reports.toml"
        setting = f'schema = "{schema}"' if schema else ""
        cfg.write_text(CONFIG.format(port=port, url=db_url, schema=setting), "utf-8")
        env = dict(os.environ, BENCH_SOLAPI_TOKEN=TOKEN)
        subprocess.run(
            [run.DANGOL, "db", "upgrade", "--config", str(cfg)],
            env=env,
            check=True,
            capture_output=True,
        )
        serve = [run.PY, str(run.BENCH / "probe.py")] if run.PROBE else [run.DANGOL]
        log = tmp / "server.log"
        proc = run.run_server([*serve, "serve", "--config", str(cfg)], port, env, log)
        try:
            database = Database(db_url, search_path=schema)

            async def seeded() -> None:
                await database.start()
                await seed(database, messages)
                await database.close()

            asyncio.run(seeded())
            url = f"http://127.0.0.1:{port}/hooks/solapi/bench/{TOKEN}"
            began = time.monotonic()
            latencies, statuses, answered = asyncio.run(drive(url, posts, rate))
            took = time.monotonic() - began
        finally:
            run.stop(proc)
        if run.PROBE:
            print("what bench/probe.py saw:")
            print(log.read_text("utf-8", "replace")[-20000:])

        async def checked() -> dict[str, int]:
            database = Database(db_url, search_path=schema)
            try:
                return await check(database, posts, messages, answered)
            finally:
                await database.close()

        counts = asyncio.run(checked())
    finally:
        if schema:
            asyncio.run(run.pg_schema(False, schema))
    q = statistics.quantiles(latencies, n=100)
    return {
        "database": "SQLite" if on_sqlite else "PostgreSQL",
        "rate": rate,
        "seconds": seconds,
        "messages": messages,
        "posts": len(posts),
        "duplicates": sum(1 for p in posts if p.retry),
        "out_of_order": out_of_order(posts),
        "achieved": len(posts) / took,
        "statuses": statuses,
        "p50": q[49] * 1000,
        "p99": q[98] * 1000,
        "max": max(latencies) * 1000,
        **counts,
    }


def report(r: dict[str, Any]) -> str:
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=run.ROOT
    ).stdout.strip()
    ok = r["statuses"].get(200, 0)
    others = {k: v for k, v in r["statuses"].items() if k != 200}
    once = r["events"] == r["distinct_events"] and r["answered_missing"] == 0
    lines = [
        f"## SOLAPI delivery reports under load on {r['database']} (bench/reports.py)",
        "",
        f"{r['posts']} reports posted one per request at {r['rate']:.0f}/s for about "
        f"{r['seconds']:.0f} s (achieved {r['achieved']:.0f}/s) to the SOLAPI webhook of a real "
        f"`dangol serve`, about {r['messages']} seeded messages three reports each (accepted, "
        f"sent, then delivered or, one in twenty, failed); one message in ten got its reports "
        f"in reverse order ({r['out_of_order']} messages' first report was not 'accepted'), "
        f"and {r['duplicates']} reports ({DUPLICATED:.0%}) were posted twice. "
        f"An open-loop aiohttp client on 127.0.0.1 ({CONNECTIONS} connections at most): each "
        "latency counts from the time its request was due.",
        "",
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC at commit `{commit}` on "
        f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}.",
        "",
        "| reports posted | answered 200 | other answers | p50 | p99 | max "
        "| delivery events stored (distinct reports; answered 200) | answered but not stored "
        "| messages not at their final status |",
        "|---|---|---|---|---|---|---|---|---|",
        f"| {r['posts']} | {ok} | {others or 'none'} | {r['p50']:.1f} ms | {r['p99']:.1f} ms "
        f"| {r['max']:.1f} ms | {r['events']} ({r['reports']}; {r['answered_reports']}) "
        f"| {r['answered_missing']} | {r['wrong_status']} of {r['finals_answered']} |",
        "",
        f"Each report stored once: {'yes' if once else 'NO'}. Statuses never moved back: "
        f"{'yes' if r['wrong_status'] == 0 else 'NO'} ({r['delivered']} delivered, "
        f"{r['failed']} failed, {r['delivered_undated']} delivered without a time). "
        f"p99 {r['p99']:.1f} ms (target < {P99_TARGET_MS:.0f} ms: "
        f"{'met' if r['p99'] < P99_TARGET_MS else 'NOT met'}).",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rate", type=float, default=500.0)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--sqlite", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="dangol-reports-") as tmp:
        text = report(bench(args.rate, args.seconds, Path(tmp), on_sqlite=args.sqlite))
    print(text)
    if not args.no_write:
        sections.write_section("reports", text)


if __name__ == "__main__":
    main()
