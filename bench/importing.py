"""Customer import at scale: a generated 10,000-row .xlsx (one row per past job: about
4,000 customers, a tenth of them already the shop's; consents on half; a few dozen rows to
refuse) read, planned and previewed, then imported, then imported again (which adds
nothing), on SQLite and on PostgreSQL — through the functions the console's pages call
(`core.importing`: read_sheet → plan_import → assess; import_customers in one unit).

Target (issue #14): preview + import of a 10,000-row spreadsheet < 30 s.

    .venv/bin/python bench/importing.py                        # SQLite, and PostgreSQL if reachable
    BENCH_IMPORT_ROWS=1000 .venv/bin/python bench/importing.py # smaller, to try it

Writes its section of bench/RESULTS.md (`<!-- importing -->`) at full size only.
"""

from __future__ import annotations

import asyncio
import os
import platform
import random
import sys
import tempfile
import time
import uuid
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import sqlalchemy as sa
from sqlalchemy.engine import Connection

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from conftest import kst, make_settings  # noqa: E402

from core.db import Database, upgrade  # noqa: E402
from core.importing import plan_import, read_sheet  # noqa: E402
from core.importing.sample import write_xlsx  # noqa: E402
from core.importing.unit import assess, import_customers  # noqa: E402
from core.models import Customer, CustomerIdentity, Shop  # noqa: E402

sys.path.insert(0, str(ROOT / "bench"))
import sections  # noqa: E402

ROWS = int(os.environ.get("BENCH_IMPORT_ROWS", "10000"))
PG_URL = os.environ.get("DANGOL_TEST_PG_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")
NOW = kst(2026, 11, 23, 10, 0)
TODAY = date(2026, 11, 23)
SHOP = make_settings().shops[0]


def phone_of(n: int) -> str:
    return f"010-{2000 + n // 10000:04d}-{n % 10000:04d}"


def generate(rows: int) -> bytes:
    rnd = random.Random(14)
    services = ["aircon", "에어컨 청소", "lawn", "잔디 관리"]
    out: list[tuple[Any, ...]] = []
    customer = 0
    while len(out) < rows:
        customer += 1
        consent = rnd.random() < 0.5
        for k in range(rnd.choice((1, 2, 3, 4))):
            on = TODAY - timedelta(days=rnd.randrange(30, 1500) + k)
            out.append(
                (
                    f"고객{customer}",
                    phone_of(customer),
                    rnd.choice(services),
                    on.isoformat(),
                    "예" if consent and k == 0 else "",
                    (on - timedelta(days=1)).isoformat() if consent and k == 0 else "",
                    "매장 서면" if consent and k == 0 else "",
                )
            )
    for i in range(0, len(out), 250):  # a few to refuse: a bad number, an unknown service
        name, _, service, on, *rest = out[i]
        out[i] = (
            (name, "123-45", service, on, *rest)
            if i % 500
            else (name, out[i][1], "보일러", on, *rest)
        )
    return write_xlsx(out[:rows])


async def seed(database: Database, existing: int) -> int:
    def unit(conn: Connection) -> int:
        shop_id = int(
            conn.execute(
                sa.insert(Shop)
                .values(slug="hanbit", name="한빛설비", owner_status="available", created_at=NOW)
                .returning(Shop.id)
            ).scalar_one()
        )
        ids = (
            conn.execute(
                sa.insert(Customer).returning(Customer.id, sort_by_parameter_order=True),
                [
                    {
                        "shop_id": shop_id,
                        "name": None,
                        "tier": "bronze",
                        "tags": [],
                        "notes": "",
                        "created_at": NOW,
                    }
                    for _ in range(existing)
                ],
            )
            .scalars()
            .all()
        )
        conn.execute(
            sa.insert(CustomerIdentity),
            [
                {
                    "shop_id": shop_id,
                    "customer_id": cid,
                    "kind": "phone",
                    "value": "+8210" + phone_of(n * 10 + 1)[4:].replace("-", ""),
                    "created_at": NOW,
                }
                for n, cid in enumerate(ids)
            ],
        )
        return shop_id

    return await database.write(unit)


async def run(label: str, url: str, schema: str | None, data: bytes) -> dict[str, Any]:
    await upgrade(url, search_path=schema)
    database = Database(url, search_path=schema)
    await database.start()
    try:
        shop_id = await seed(database, ROWS // 25)
        loop = asyncio.get_running_loop()
        figures: dict[str, Any] = {"db": label}

        t0 = time.perf_counter()
        plan = await loop.run_in_executor(
            None, lambda: plan_import(read_sheet(data), SHOP.services, TODAY)
        )
        async with database.read() as conn:
            preview = await conn.run_sync(lambda c: assess(c, shop_id, plan, SHOP.timezone, NOW))
        figures["preview"] = time.perf_counter() - t0

        t1 = time.perf_counter()
        plan = await loop.run_in_executor(
            None, lambda: plan_import(read_sheet(data), SHOP.services, TODAY)
        )
        unit = import_customers(
            shop_id,
            plan,
            SHOP.services,
            file_name="bench.xlsx",
            actor="user:1",
            tz=SHOP.timezone,
            now=NOW,
        )
        outcome = await database.write(unit)
        figures["import"] = time.perf_counter() - t1
        assert outcome == preview, (outcome, preview)

        t2 = time.perf_counter()
        again = await database.write(
            import_customers(
                shop_id,
                plan,
                SHOP.services,
                file_name="bench.xlsx",
                actor="user:1",
                tz=SHOP.timezone,
                now=NOW,
            )
        )
        figures["rerun"] = time.perf_counter() - t2
        assert (again.customers_new, again.jobs_added, again.consents_recorded) == (0, 0, 0)
        figures.update(outcome.as_detail())
        figures["rows"] = plan.rows
        return figures
    finally:
        await database.close()


def report(results: list[dict[str, Any]], size: int) -> str:
    lines = [
        f"## Customer import ({ROWS:,}-row .xlsx, {size / 1024:.0f} KB)",
        "",
        f"`bench/importing.py`, {datetime.now().date()}, {platform.python_version()}, "
        f"{os.cpu_count()} CPUs. Preview = read + check every row + count against the "
        "database; import = read + check again + one transaction; rerun = the same file "
        "once more (adds nothing).",
        "",
        "| database | rows | new customers | matched | jobs added | consents | refused | preview | import | preview + import | rerun |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r['db']} | {r['rows']:,} | {r['customers_new']:,} | {r['customers_matched']:,} | "
            f"{r['jobs_added']:,} | {r['consents_recorded']:,} | {r['rows_refused']} | "
            f"{r['preview']:.2f} s | {r['import']:.2f} s | {r['preview'] + r['import']:.2f} s | {r['rerun']:.2f} s |"
        )
    lines += ["", "Target (issue #14): preview + import < 30 s."]
    return "\n".join(lines) + "\n"


async def main() -> None:
    data = generate(ROWS)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        results.append(await run("SQLite", f"sqlite+aiosqlite:///{tmp}/bench.db", None, data))
    raw = PG_URL.replace("postgresql+asyncpg", "postgresql")
    try:
        conn = await asyncpg.connect(raw, timeout=3)
    except (OSError, asyncpg.PostgresError):
        print("PostgreSQL not reachable; SQLite only", file=sys.stderr)
    else:
        schema = f"bench_{uuid.uuid4().hex[:8]}"
        await conn.execute(f'CREATE SCHEMA "{schema}"')
        try:
            results.append(await run("PostgreSQL", PG_URL, schema, data))
        finally:
            await conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
            await conn.close()
    text = report(results, len(data))
    if ROWS == 10000:
        sections.write_section("importing", text)
    print(text)


if __name__ == "__main__":
    asyncio.run(main())
