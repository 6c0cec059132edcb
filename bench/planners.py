"""The journey at scale: one shop with 100,000 customers, 300,000 past jobs and 20,000 jobs in
the coming week, on SQLite and on PostgreSQL.

Seeds the database in bulk (customers with a phone and an SMS conversation; past jobs over
three years, those of the last 30 days with their aftercare, survey and survey-reminder steps
planned; the week's jobs booked three days ago with their reminders planned), then at Monday
18:05 KST — tomorrow's reminders due, last week's surveys due — measures:

1. one pass of every planner (the journey's, the reply target's, the complaint deadline's;
   the journey's is the one with work at this size);
2. a second pass with nothing new;
3. dispatching what the first pass queued to the fake SOLAPI (send-many batches) over HTTP on
   loopback, through the real SOLAPI adapter and the outbox dispatcher;
4. the console's 작업 tab and a job page over HTTP, signed in as the owner (p50/p95/max of
   sequential requests).

Targets (issue #13): pass 1 < 30 s, pass 2 < 10 s, dispatch ≥ 1,000 messages/s on SQLite,
작업 tab and job page p95 < 100 ms.

    .venv/bin/python bench/planners.py          # SQLite, and PostgreSQL if reachable
    BENCH_PLANNERS_SCALE=0.1 .venv/bin/python bench/planners.py   # a tenth, to try it

Writes its section of bench/RESULTS.md (`<!-- planners -->`).
"""

from __future__ import annotations

import asyncio
import os
import platform
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
import tomllib
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import sqlalchemy as sa
from aiohttp.test_utils import TestServer

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from fakes.solapi import FakeSolapi  # noqa: E402

from bot.accounts import add_user  # noqa: E402
from bot.app import create_app  # noqa: E402
from core import config as config_mod  # noqa: E402
from core.clock import FrozenClock  # noqa: E402
from core.db import Database, upgrade  # noqa: E402
from core.jobs.steps import booking_steps, completion_steps  # noqa: E402
from core.models import (  # noqa: E402
    Conversation,
    Customer,
    CustomerIdentity,
    Job,
    JourneyStep,
    Shop,
)
from core.texts import Texts  # noqa: E402
from providers.registry import Providers  # noqa: E402
from scheduler.dispatch import Dispatcher  # noqa: E402
from scheduler.planners.complaint_deadline import warn_before_complaint_deadlines  # noqa: E402
from scheduler.planners.journey import send_due_steps  # noqa: E402
from scheduler.planners.reply_target import warn_owners  # noqa: E402

sys.path.insert(0, str(ROOT / "bench"))
import sections  # noqa: E402

SCALE = float(os.environ.get("BENCH_PLANNERS_SCALE", "1"))
CUSTOMERS = int(100_000 * SCALE)
PAST_JOBS = int(300_000 * SCALE)
UPCOMING_JOBS = int(20_000 * SCALE)
REQUESTS = int(os.environ.get("BENCH_PLANNERS_REQUESTS", "200"))
PG_URL = os.environ.get("DANGOL_TEST_PG_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")
NOW = datetime(2026, 11, 23, 9, 5, tzinfo=UTC)  # Monday 18:05 KST
PASSWORD = "bench-password-1234"
CHUNK = 5000

Row = tuple[str, str, str]  # database, what, figure


def settings(url: str, schema: str | None, solapi_url: str) -> config_mod.Settings:
    os.environ.setdefault("BENCH_SKILL_SECRET", "bench-secret")
    os.environ.setdefault("BENCH_SOLAPI_KEY", FakeSolapi.api_key)
    os.environ.setdefault("BENCH_SOLAPI_SECRET", FakeSolapi.api_secret)
    example = tomllib.loads((ROOT / "config.example.toml").read_text("utf-8"))
    database: dict[str, Any] = {"url": url}
    if schema:
        database["schema"] = schema
    return config_mod.parse(
        {
            "server": {"simulator": False, "public_url": "http://127.0.0.1:8080"},
            "database": database,
            "logging": {"level": "WARNING"},
            "outbox": {"batch_size": 500},
            "providers": {
                "solapi": {
                    "api_key_env": "BENCH_SOLAPI_KEY",
                    "api_secret_env": "BENCH_SOLAPI_SECRET",
                    "sender": FakeSolapi.senders[0],
                    "base_url": solapi_url,
                },
            },
            "shops": [
                {
                    "slug": "bench",
                    "name": "벤치설비",
                    "phone": "02-1234-5678",
                    "hours": dict.fromkeys(
                        ("mon", "tue", "wed", "thu", "fri", "sat", "sun"), "09:00-18:00"
                    ),
                    "owner": {"name": "벤치", "phone": "010-2222-3333"},
                    "delivery": {"sms": "solapi"},
                    "services": example["shops"][0]["services"],
                    "journey": {"courtesy_closes": "21:00"},  # 18:05's reminders go now
                }
            ],
        },
        "bench.toml",
    )


def phone_of(i: int) -> str:
    return f"+8210{i * 7919 % 10**8:08d}"


def _insert(conn: sa.Connection, table: Any, rows: list[dict[str, Any]]) -> None:
    for start in range(0, len(rows), CHUNK):
        conn.execute(sa.insert(table), rows[start : start + CHUNK])


def seed(conn: sa.Connection, shop_id: int, shop: config_mod.ShopConfig) -> dict[str, int]:
    rng = random.Random(13)
    services = list(shop.services)
    created = NOW - timedelta(days=1200)
    _insert(
        conn,
        Customer,
        [
            {
                "id": i,
                "shop_id": shop_id,
                "name": f"고객{i}",
                "tier": "bronze",
                "tags": [],
                "notes": "",
                "created_at": created,
            }
            for i in range(1, CUSTOMERS + 1)
        ],
    )
    _insert(
        conn,
        CustomerIdentity,
        [
            {
                "shop_id": shop_id,
                "customer_id": i,
                "kind": "phone",
                "value": phone_of(i),
                "created_at": created,
            }
            for i in range(1, CUSTOMERS + 1)
        ],
    )
    _insert(
        conn,
        Conversation,
        [
            {
                "id": i,
                "shop_id": shop_id,
                "customer_id": i,
                "channel": "sms",
                "status": "resolved",
                "complaint": False,
                "unread_count": 0,
                "last_message_at": created,
                "created_at": created,
                "resolved_at": created,
            }
            for i in range(1, CUSTOMERS + 1)
        ],
    )
    jobs: list[dict[str, Any]] = []
    steps: list[dict[str, Any]] = []

    def job(job_id: int, customer: int, starts: datetime, status: str, **more: Any) -> None:
        service = services[job_id % len(services)]
        jobs.append(
            {
                "id": job_id,
                "shop_id": shop_id,
                "customer_id": customer,
                "conversation_id": customer,
                "service": service.key,
                "service_name": service.name,
                "address": f"서울시 마포구 월드컵로 {job_id % 500}",
                "starts_at": starts,
                "ends_at": starts + timedelta(hours=2),
                "status": status,
                "price_krw": 50_000 + job_id % 20 * 10_000,
                "notes": "",
                "source": "console",
                "revision": 1,
                "booked_at": starts - timedelta(days=3),
                "created_at": starts - timedelta(days=3),
                "updated_at": starts - timedelta(days=3),
                "started_at": None,
                "done_at": None,
                **more,
            }
        )

    def step(job_id: int, customer: int, planned: Any, sent: bool) -> None:
        steps.append(
            {
                "shop_id": shop_id,
                "job_id": job_id,
                "customer_id": customer,
                "step": planned.step,
                "key": planned.key,
                "kind": planned.kind,
                "due_at": planned.due_at,
                "status": "sent" if sent else planned.status,
                "reason": planned.reason,
                "payload": dict(planned.payload),
                "created_at": planned.due_at,
                "updated_at": planned.due_at,
                "sent_at": planned.due_at if sent else None,
            }
        )

    for job_id in range(1, PAST_JOBS + 1):
        customer = rng.randint(1, CUSTOMERS)
        done = NOW - timedelta(minutes=rng.randint(60, 60 * 24 * 1095))
        starts = done - timedelta(hours=2)
        job(job_id, customer, starts, "done", started_at=starts, done_at=done)
        if NOW - done < timedelta(days=30):
            service = services[job_id % len(services)]
            for planned in completion_steps(done_at=done, service=service, journey=shop.journey):
                # What fell due before today went on its day; today's are the planners' work.
                step(job_id, customer, planned, planned.due_at < NOW - timedelta(days=1))
    for n in range(UPCOMING_JOBS):
        job_id = PAST_JOBS + 1 + n
        customer = rng.randint(1, CUSTOMERS)
        starts = NOW + timedelta(minutes=rng.randint(60 * 15, 60 * 24 * 7))
        job(job_id, customer, starts, "booked")
        booked = starts - timedelta(days=3)
        for planned in booking_steps(
            starts_at=starts, revision=1, journey=shop.journey, zone=shop.timezone, now=booked
        ):
            step(job_id, customer, planned, planned.step == "confirmation")
    _insert(conn, Job, jobs)
    _insert(conn, JourneyStep, steps)
    if conn.dialect.name == "postgresql":
        for table in ("customers", "customer_identities", "conversations", "jobs", "journey_steps"):
            conn.exec_driver_sql(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                f"(SELECT max(id) FROM {table}))"
            )
            conn.exec_driver_sql(f"ANALYZE {table}")
    else:
        conn.exec_driver_sql("ANALYZE")
    due = sum(1 for s in steps if s["status"] == "planned" and s["due_at"] <= NOW)
    return {"jobs": len(jobs), "steps": len(steps), "due": due}


async def planner_pass(
    database: Database, shops: dict[int, config_mod.ShopConfig], public_url: str
) -> tuple[float, dict[str, int]]:
    started = time.perf_counter()
    found = await send_due_steps(database, shops, Texts(), public_url, NOW)
    await database.write(warn_owners(shops, Texts(), NOW))
    await database.write(warn_before_complaint_deadlines(shops, Texts(), NOW))
    return time.perf_counter() - started, dict(found)


async def timed(session: aiohttp.ClientSession, url: str) -> list[float]:
    times = []
    for _ in range(REQUESTS):
        started = time.perf_counter()
        async with session.get(url) as resp:
            await resp.read()
            assert resp.status == 200, (url, resp.status)
        times.append((time.perf_counter() - started) * 1000)
    return times


async def run(label: str, url: str, schema: str | None) -> list[Row]:
    rows: list[Row] = []
    await upgrade(url, search_path=schema)
    fake = FakeSolapi()  # the adapter signs with the real time: the fake checks against it
    vendor = TestServer(fake.app, host="127.0.0.1")
    await vendor.start_server()
    config = settings(url, schema, str(vendor.make_url("")).rstrip("/"))
    shop = config.shops[0]
    database = Database(url, search_path=schema)
    await database.start()
    try:
        shop_id = await database.write(
            lambda conn: conn.execute(
                sa.insert(Shop)
                .values(slug="bench", name=shop.name, owner_status="available", created_at=NOW)
                .returning(Shop.id)
            ).scalar_one()
        )
        started = time.perf_counter()
        counts = await database.write(lambda conn: seed(conn, shop_id, shop))
        print(f"{label}: seeded {counts} in {time.perf_counter() - started:.1f} s", file=sys.stderr)
        shops = {shop_id: shop}
        first, outcomes = await planner_pass(database, shops, config.server.public_url or "")
        second, again = await planner_pass(database, shops, config.server.public_url or "")
        rows.append((label, "planners, first pass", f"{first:.1f} s — {outcomes}"))
        rows.append((label, "planners, second pass (nothing new)", f"{second:.2f} s — {again}"))
        async with aiohttp.ClientSession() as http:
            providers = Providers.from_config(config.providers, http)
            await providers.start_all()
            dispatcher = Dispatcher(
                database, providers, FrozenClock(NOW), config.outbox, owner_id="bench"
            )
            started = time.perf_counter()
            sent = 0
            while True:
                handled = await dispatcher.drain(max_rounds=1000)
                sent += handled
                if (await dispatcher.stats())["due"] == 0:
                    break
            elapsed = time.perf_counter() - started
            await providers.close_all()
        accepted = len(fake.messages)
        rows.append(
            (
                label,
                "dispatch to the fake SOLAPI",
                f"{accepted:,} messages in {elapsed:.1f} s = {accepted / elapsed:,.0f} messages/s",
            )
        )
    finally:
        await database.close()
        await vendor.close()
    rows += await pages(label, url, schema, config)
    return rows


async def pages(label: str, url: str, schema: str | None, config: config_mod.Settings) -> list[Row]:
    app = create_app(config, clock=FrozenClock(NOW))
    server = TestServer(app)
    await server.start_server()
    rows: list[Row] = []
    try:
        from bot import keys

        shop_id = app[keys.SHOP_IDS]["bench"]
        await app[keys.DATABASE].write(add_user(shop_id, "bench", PASSWORD, "owner", NOW))
        jar = aiohttp.CookieJar(unsafe=True)
        async with aiohttp.ClientSession(base_url=str(server.make_url("")), cookie_jar=jar) as s:
            page = await (await s.get("/console/login")).text()
            csrf = re.search(r'name="csrf" value="([^"]+)"', page)
            assert csrf
            await s.post(
                "/console/login",
                data={"username": "bench", "password": PASSWORD, "csrf": csrf.group(1)},
            )
            tab = await (await s.get("/console/jobs")).text()
            job = re.search(r'href="/console/jobs/(\d+)"', tab)
            assert job, "the 작업 tab lists no job"
            for name, target in (
                ("작업 tab", "/console/jobs"),
                ("job page", f"/console/jobs/{job.group(1)}"),
            ):
                await timed(s, target)
                times = sorted(await timed(s, target))
                p95 = times[int(len(times) * 0.95) - 1]
                rows.append(
                    (
                        label,
                        name,
                        f"p50 {statistics.median(times):.1f} ms, p95 {p95:.1f} ms, "
                        f"max {times[-1]:.1f} ms",
                    )
                )
    finally:
        await server.close()
    return rows


def report(rows: list[Row]) -> str:
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT
    ).stdout.strip()
    lines = [
        "## The journey at scale (bench/planners.py)",
        "",
        f"One shop: {CUSTOMERS:,} customers, {PAST_JOBS:,} past jobs (the last 30 days' with "
        f"their aftercare and survey steps), {UPCOMING_JOBS:,} jobs in the coming week (their "
        "reminders planned). At Monday 18:05 KST the planners run twice; what the first pass "
        "queued is dispatched to the fake SOLAPI on loopback (real adapter, send-many, outbox "
        "batch 500); then the console's pages over HTTP, signed in, "
        f"{REQUESTS} sequential requests each after as many to warm up.",
        "",
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC at commit `{commit}` on "
        f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}.",
        "",
        "| database | what | figure |",
        "|---|---|---|",
        *(f"| {d} | {what} | {figure} |" for d, what, figure in rows),
        "",
        "Targets (issue #13): first pass < 30 s; second pass < 10 s; dispatch ≥ 1,000 "
        "messages/s on SQLite; 작업 tab and job page p95 < 100 ms.",
    ]
    return "\n".join(lines) + "\n"


async def main() -> None:
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as tmp:
        rows += await run("SQLite", f"sqlite+aiosqlite:///{tmp}/bench.db", None)
    raw = PG_URL.replace("postgresql+asyncpg", "postgresql")
    try:
        conn = await asyncpg.connect(raw, timeout=3)
    except (OSError, asyncpg.PostgresError):
        print("PostgreSQL not reachable; SQLite only", file=sys.stderr)
    else:
        schema = f"bench_{uuid.uuid4().hex[:8]}"
        await conn.execute(f'CREATE SCHEMA "{schema}"')
        try:
            rows += await run("PostgreSQL", PG_URL, schema)
        finally:
            await conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
            await conn.close()
    text = report(rows)
    if SCALE == 1:
        sections.write_section("planners", text)
    print(text)


if __name__ == "__main__":
    asyncio.run(main())
