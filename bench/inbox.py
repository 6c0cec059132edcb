"""The owner console's inbox at scale: one shop with 10,000 conversations and 100,000 messages.

Builds the real app (create_app) on a fresh database, seeds it in bulk, signs in and times
full page requests over HTTP on loopback: the inbox (each filter, and a second page), its
live list fragment, one conversation, and the 고객 tab (the list, a second page, and searches
by name, phone number and tag). Sequential requests, so each figure is the time one owner
waits. Targets: inbox page p95 < 100 ms (issue #3), 고객 tab p95 < 100 ms (issue #11).

    .venv/bin/python bench/inbox.py            # SQLite, and PostgreSQL if reachable
    BENCH_INBOX_REQUESTS=500 .venv/bin/python bench/inbox.py

Prints a Markdown table and writes it into its own section of bench/RESULTS.md (between
`<!-- inbox -->` and `<!-- /inbox -->`; bench/run.py keeps it when it rewrites the file).
`make bench` runs both.
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
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp
import asyncpg
import sqlalchemy as sa
from aiohttp.test_utils import TestServer

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.accounts import add_user  # noqa: E402
from bot.app import create_app  # noqa: E402
from core import config as config_mod  # noqa: E402
from core.clock import FrozenClock  # noqa: E402
from core.db import Database, upgrade  # noqa: E402
from core.models import Conversation, Customer, CustomerIdentity, Message  # noqa: E402

sys.path.insert(0, str(ROOT / "bench"))
import sections  # noqa: E402

CONVERSATIONS = int(os.environ.get("BENCH_INBOX_CONVERSATIONS", "10000"))
MESSAGES_EACH = 10
REQUESTS = int(os.environ.get("BENCH_INBOX_REQUESTS", "300"))
PG_URL = os.environ.get("DANGOL_TEST_PG_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")
NOW = datetime(2026, 11, 23, 1, 0, tzinfo=UTC)
PASSWORD = "bench-password-1234"
TARGET_P95_MS = 100.0

Row = tuple[str, str, float, float, float]  # database, page, p50, p95, max (ms)


def settings(url: str, schema: str | None) -> config_mod.Settings:
    os.environ.setdefault("BENCH_SKILL_SECRET", "bench-secret")
    database: dict[str, Any] = {"url": url}
    if schema:
        database["schema"] = schema
    return config_mod.parse(
        {
            "server": {"simulator": False},
            "database": database,
            "logging": {"level": "WARNING"},
            "shops": [
                {
                    "slug": "bench",
                    "name": "벤치설비",
                    "phone": "02-1234-5678",
                    "hours": dict.fromkeys(
                        ("mon", "tue", "wed", "thu", "fri", "sat", "sun"), "09:00-18:00"
                    ),
                    "kakao": {
                        "bot_id": "66a1e9d0e4b0a1b2c3d4e000",
                        "skill_secret_env": "BENCH_SKILL_SECRET",
                    },
                    "owner": {"name": "벤치", "phone": "010-2222-3333"},
                }
            ],
        },
        "bench.toml",
    )


# The regular the 고객 tab's searches look for (one of 10,000 customers).
SOUGHT = 1234


def phone_of(i: int) -> str:
    """Customer i's mobile number, distinct for every i (7919 is prime to 10⁸)."""
    return f"+8210{i * 7919 % 10**8:08d}"


def tags_of(i: int) -> list[str]:
    return [t for t, every in (("단골", 10), ("에어컨", 7)) if i % every == 0]


def seed(conn: sa.Connection, shop_id: int) -> None:
    """10,000 conversations: 300 open (60 waiting, 10 complaints), the rest resolved.

    Each one's customer: two in three have a name and a phone number; some are tagged."""
    rng = random.Random(3)
    customers, identities, conversations, messages = [], [], [], []
    message_id = 0
    for i in range(1, CONVERSATIONS + 1):
        started = NOW - timedelta(minutes=rng.randint(1, 60 * 24 * 365))
        customers.append(
            {
                "id": i,
                "shop_id": shop_id,
                "name": f"고객{i}" if i % 3 else None,
                "tier": "bronze",
                "tags": tags_of(i),
                "notes": "",
                "created_at": started,
            }
        )
        if i % 3:
            identities.append(
                {
                    "shop_id": shop_id,
                    "customer_id": i,
                    "kind": "phone",
                    "value": phone_of(i),
                    "created_at": started,
                }
            )
        identities.append(
            {
                "shop_id": shop_id,
                "customer_id": i,
                "kind": "kakao_bot_user",
                "value": f"bench-user-{i:08d}",
                "created_at": started,
            }
        )
        open_ = i > CONVERSATIONS - 300
        waiting = open_ and i % 5 == 0
        last = started + timedelta(minutes=MESSAGES_EACH)
        if open_:
            last = NOW - timedelta(minutes=rng.randint(0, 600))
        conversations.append(
            {
                "id": i,
                "shop_id": shop_id,
                "customer_id": i,
                "channel": "kakao",
                "status": "open" if open_ else "resolved",
                "waiting_since": last if waiting else None,
                "complaint": open_ and i % 30 == 0,
                "unread_count": 1 if waiting else 0,
                "last_message_at": last,
                "created_at": started,
                "resolved_at": None if open_ else last,
            }
        )
        for k in range(MESSAGES_EACH):
            message_id += 1
            inbound = k % 2 == 0
            messages.append(
                {
                    "id": message_id,
                    "shop_id": shop_id,
                    "conversation_id": i,
                    "customer_id": i,
                    "direction": "in" if inbound else "out",
                    "sender": "customer" if inbound else "bot",
                    "channel": "kakao",
                    "body": "에어컨 점검 문의드립니다. 실외기에서 소리가 나요. " * 3,
                    "payload": {},
                    "status": "received" if inbound else "delivered",
                    "created_at": started + timedelta(minutes=k),
                }
            )
    for table, rows in (
        (Customer, customers),
        (CustomerIdentity, identities),
        (Conversation, conversations),
        (Message, messages),
    ):
        for start in range(0, len(rows), 5000):
            conn.execute(sa.insert(table), rows[start : start + 5000])
    if conn.dialect.name == "postgresql":
        for table in ("customers", "customer_identities", "conversations", "messages"):
            conn.exec_driver_sql(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                f"(SELECT max(id) FROM {table}))"
            )
            conn.exec_driver_sql(f"ANALYZE {table}")


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
    await upgrade(url, search_path=schema)
    clock = FrozenClock(NOW)
    app = create_app(settings(url, schema), clock=clock)
    server = TestServer(app)
    await server.start_server()
    try:
        from bot import keys

        database: Database = app[keys.DATABASE]
        shop_id = app[keys.SHOP_IDS]["bench"]
        started = time.perf_counter()
        await database.write(lambda conn: seed(conn, shop_id))
        seeded = time.perf_counter() - started
        await database.write(add_user(shop_id, "bench", PASSWORD, "owner", NOW))
        jar = aiohttp.CookieJar(unsafe=True)  # the server is 127.0.0.1, an IP address
        async with aiohttp.ClientSession(
            base_url=str(server.make_url("")), cookie_jar=jar
        ) as session:
            page = await (await session.get("/console/login")).text()
            csrf = re.search(r'name="csrf" value="([^"]+)"', page)
            assert csrf
            await session.post(
                "/console/login",
                data={"username": "bench", "password": PASSWORD, "csrf": csrf.group(1)},
            )
            home = await (await session.get("/console/?filter=resolved")).text()
            after = re.search(r'after=([0-9n.]+)"', home)
            assert after
            customers = await (await session.get("/console/customers")).text()
            next_customers = re.search(r'after=([0-9.]+)"', customers)
            assert next_customers
            mobile = phone_of(SOUGHT).removeprefix("+82")
            dashed = f"0{mobile[:2]}-{mobile[2:6]}-{mobile[6:]}"
            targets = [
                ("inbox, 전체", "/console/"),
                ("inbox, 답변 대기", "/console/?filter=waiting"),
                ("inbox, 불만", "/console/?filter=complaint"),
                ("inbox, 해결됨", "/console/?filter=resolved"),
                ("inbox, 해결됨 page 2", f"/console/?filter=resolved&after={after.group(1)}"),
                ("live list fragment", "/console/inbox/list?filter=all"),
                ("conversation page", f"/console/c/{CONVERSATIONS}"),
                ("customers, 고객 tab", "/console/customers"),
                ("customers, page 2", f"/console/customers?after={next_customers.group(1)}"),
                ("customers, name", f"/console/customers?{urlencode({'q': f'고객{SOUGHT}'})}"),
                ("customers, phone", f"/console/customers?{urlencode({'q': dashed})}"),
                ("customers, last 4 digits", f"/console/customers?q={mobile[-4:]}"),
                ("customers, #tag", f"/console/customers?{urlencode({'q': '#단골'})}"),
            ]
            for name, target in targets:  # each search finds what it is timed finding
                if name.startswith("customers, ") and "q=" in target:
                    found = await (await session.get(target)).text()
                    wanted = 'data-id="' if "#" in name else f'data-id="{SOUGHT}"'
                    assert wanted in found, f"{name} did not find the customer"
            rows: list[Row] = []
            for name, target in targets:
                await timed(session, target)  # warm up
                times = sorted(await timed(session, target))
                p50 = statistics.median(times)
                p95 = times[int(len(times) * 0.95) - 1]
                rows.append((label, name, p50, p95, times[-1]))
        print(f"{label}: seeded in {seeded:.1f} s", file=sys.stderr)
        return rows
    finally:
        await server.close()


def report(rows: list[Row]) -> str:
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT
    ).stdout.strip()
    inbox = [r for r in rows if r[1].startswith("inbox")]
    worst = max(inbox, key=lambda r: r[3])
    verdict = "met" if worst[3] < TARGET_P95_MS else "NOT met"
    tab = [r for r in rows if r[1].startswith("customers")]
    worst_tab = max(tab, key=lambda r: r[3])
    tab_verdict = "met" if worst_tab[3] < TARGET_P95_MS else "NOT met"
    lines = [
        "## Owner console inbox at scale (bench/inbox.py)",
        "",
        f"One shop with {CONVERSATIONS:,} conversations and {CONVERSATIONS * MESSAGES_EACH:,} "
        "messages (300 open, 60 of them waiting, 10 complaints; the rest resolved), one "
        "customer each (two in three with a name and a phone number, some tagged). The real app "
        "over HTTP on 127.0.0.1, signed in as the owner; whole responses (page rendered, "
        f"session and CSRF checked), {REQUESTS} sequential requests per page after as many "
        "to warm up.",
        "",
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC at commit `{commit}` on "
        f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}.",
        "",
        "| database | page | p50 | p95 | max |",
        "|---|---|---|---|---|",
        *(
            f"| {d} | {page} | {p50:.1f} ms | {p95:.1f} ms | {mx:.1f} ms |"
            for d, page, p50, p95, mx in rows
        ),
        "",
        f"Target (issue #3): inbox page p95 < {TARGET_P95_MS:.0f} ms — {verdict}; the slowest "
        f"inbox page is {worst[1]} on {worst[0]} at p95 {worst[3]:.1f} ms.",
        "",
        f"Target (issue #11): 고객 tab p95 < {TARGET_P95_MS:.0f} ms — {tab_verdict}; the "
        f"slowest is {worst_tab[1]} on {worst_tab[0]} at p95 {worst_tab[3]:.1f} ms.",
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
    sections.write_section("inbox", text)
    print(text)
    print(f"(written to {sections.RESULTS})", file=sys.stderr)


if __name__ == "__main__":
    asyncio.run(main())
