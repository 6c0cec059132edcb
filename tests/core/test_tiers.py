"""Customer tiers follow completed jobs: the thresholds at their edges, the config's rules,
the set-based recompute, completion moving the tier and thanking a new gold customer once
(and the journey planner sending that thanks) — on SQLite and PostgreSQL."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from conftest import kst, make_settings, postgres_schema, settings_dict, shop_table
from sqlalchemy.engine import Connection
from support.jobs import add_customer, book_job, steps
from support.outbox import add_shop

from bot import keys
from core.clock import FrozenClock
from core.config import ConfigError, ShopConfig, TiersConfig, parse
from core.db import Database, upgrade
from core.jobs import complete
from core.models import Customer, Job, Message, OutboxItem
from core.texts import Texts
from core.tiers import name, recompute, tier_for, tiers_in_effect
from scheduler.planners.journey import send_due_steps

PROVIDERS: dict[str, Any] = {"fake": {}, "console": {}}
SHOP = make_settings(shops=[shop_table(delivery={"sms": "fake"})], providers=PROVIDERS).shops[0]
DEFAULTS = TiersConfig()


# --------------------------------------------------------------------------- the rule


@pytest.mark.parametrize(
    ("done", "tier"),
    [
        (0, None),
        (1, "bronze"),
        (2, "bronze"),
        (3, "silver"),
        (4, "silver"),
        (5, "gold"),
        (40, "gold"),
    ],
)
def test_the_default_thresholds_at_their_edges(done: int, tier: str | None) -> None:
    assert tier_for(done, DEFAULTS) == tier


def test_a_shops_own_thresholds() -> None:
    tiers = TiersConfig(gold=10, silver=4, bronze=2)
    assert [tier_for(n, tiers) for n in (1, 2, 3, 4, 9, 10)] == [
        None,
        "bronze",
        "bronze",
        "silver",
        "silver",
        "gold",
    ]


def test_names_and_benefits() -> None:
    assert [name(t) for t in ("gold", "silver", "bronze", None)] == ["골드", "실버", "브론즈", ""]
    assert tiers_in_effect(DEFAULTS) == [
        ("gold", "골드", 5, "우선 예약 + 특별 할인"),
        ("silver", "실버", 3, "정기 점검"),
        ("bronze", "브론즈", 1, "추가 서비스 10% 할인"),
    ]
    assert DEFAULTS.benefit(None) == ""


# --------------------------------------------------------------------------- the config


def test_an_unwritten_tiers_table_is_the_playbooks_tiers() -> None:
    assert parse(settings_dict(), "shop.toml").shops[0].tiers == DEFAULTS


def test_the_example_config_writes_the_tiers_out() -> None:
    example = (Path(__file__).resolve().parents[2] / "config.example.toml").read_text("utf-8")
    assert "[shops.tiers]" in example
    for line in ("gold = 5", "silver = 3", "bronze = 1", 'gold_benefit = "우선 예약 + 특별 할인"'):
        assert line in example


def test_a_shop_may_set_its_own_tiers() -> None:
    tiers = {"gold": 8, "silver": 4, "bronze": 2, "silver_benefit": "연 2회 점검"}
    shop = parse(settings_dict(shops=[shop_table(tiers=tiers)]), "shop.toml").shops[0]
    assert (shop.tiers.gold, shop.tiers.silver, shop.tiers.bronze) == (8, 4, 2)
    assert shop.tiers.benefit("silver") == "연 2회 점검"
    assert shop.tiers.benefit("gold") == "우선 예약 + 특별 할인"


@pytest.mark.parametrize(
    ("tiers", "expected"),
    [
        (
            {"gold": 3, "silver": 3},
            "shops[0].tiers: gold > silver > bronze ≥ 1 is needed (completed jobs from which "
            "each tier starts), got gold 3, silver 3, bronze 1",
        ),
        ({"silver": 1}, "got gold 5, silver 1, bronze 1"),
        ({"gold": 2, "silver": 3}, "got gold 2, silver 3, bronze 1"),
        ({"bronze": 0}, "shops[0].tiers.bronze: must be at least 1, got 0"),
        ({"gold": "5"}, "shops[0].tiers.gold: expected a whole number, got '5'"),
        ({"platinum": 9}, "shops[0].tiers.platinum: unknown key"),
    ],
)
def test_tiers_out_of_order_are_named(tiers: dict[str, Any], expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse(settings_dict(shops=[shop_table(tiers=tiers)]), "shop.toml")
    assert expected in str(info.value)


# --------------------------------------------------------------------------- in the database


async def done_jobs(
    database: Database, shop_id: int, customer_id: int, count: int, now: datetime, **fields: Any
) -> None:
    """Completed jobs written straight in, as an import or the demo's seed writes them."""

    def unit(conn: Connection) -> None:
        for n in range(count):
            at = now - timedelta(days=30 * (n + 1))
            conn.execute(
                sa.insert(Job).values(
                    shop_id=shop_id,
                    customer_id=customer_id,
                    service="aircon",
                    service_name="에어컨 청소",
                    starts_at=at,
                    ends_at=at + timedelta(hours=2),
                    status=fields.get("status", "done"),
                    booked_at=at,
                    done_at=at,
                    created_at=at,
                    updated_at=at,
                )
            )

    await database.write(unit)


async def tiers_of(database: Database, *customers: int) -> list[str | None]:
    async with database.read() as conn:
        rows = await conn.execute(
            sa.select(Customer.id, Customer.tier).where(Customer.id.in_(customers))
        )
        found = {r.id: r.tier for r in rows}
    return [found[c] for c in customers]


async def test_a_new_customer_has_no_tier(database: Database, clock: FrozenClock) -> None:
    shop_id = await add_shop(database, clock.now())
    customer, _ = await add_customer(database, shop_id, clock.now())
    assert await tiers_of(database, customer) == [None]


async def test_recompute_sets_many_customers_tiers_in_one_pass(
    database: Database, clock: FrozenClock
) -> None:
    now = clock.now()
    shop_id = await add_shop(database, now)
    other_shop = await add_shop(database, now, slug="other")
    customers = [(await add_customer(database, shop_id, now, phone=None))[0] for _ in range(6)]
    for count, customer in enumerate(customers):  # 0 … 5 completed jobs
        await done_jobs(database, shop_id, customer, count, now)
    # Jobs not done count for nothing.
    await done_jobs(database, shop_id, customers[0], 4, now, status="cancelled")
    await done_jobs(database, shop_id, customers[2], 3, now, status="booked")
    stranger, _ = await add_customer(database, other_shop, now, phone=None)
    await done_jobs(database, other_shop, stranger, 5, now)

    # Only the customers named: the others keep what they had.
    assert await database.write(lambda c: recompute(c, shop_id, DEFAULTS, customers[4:])) == 2
    assert await tiers_of(database, *customers) == [None, None, None, None, "silver", "gold"]
    assert await database.write(lambda c: recompute(c, shop_id, DEFAULTS, [])) == 0

    # The whole shop; the other shop's customer is not this shop's to touch.
    assert await database.write(lambda c: recompute(c, shop_id, DEFAULTS)) == 3
    assert await tiers_of(database, *customers) == [
        None,
        "bronze",
        "bronze",
        "silver",
        "silver",
        "gold",
    ]
    assert await tiers_of(database, stranger) == [None]
    assert await database.write(lambda c: recompute(c, shop_id, DEFAULTS)) == 0  # nothing to write

    # The owner raises the thresholds: the tiers follow, down as well as up.
    raised = TiersConfig(gold=6, silver=4, bronze=2)
    assert await database.write(lambda c: recompute(c, shop_id, raised)) == 3
    assert await tiers_of(database, *customers) == [
        None,
        None,
        "bronze",
        "bronze",
        "silver",
        "silver",
    ]


async def complete_one(
    database: Database, shop: ShopConfig, shop_id: int, customer: int, now: datetime
) -> int:
    job = await book_job(database, shop, shop_id, customer, now, starts_at=now + timedelta(hours=1))
    await database.write(complete(shop, shop_id, job, "user:1", now + timedelta(hours=2)))
    return job


def thanks_of(planned: list[sa.RowMapping]) -> list[sa.RowMapping]:
    return [s for s in planned if s["step"] == "gold_thanks"]


async def test_completing_jobs_moves_the_tier_and_thanks_a_new_gold_customer_once(
    database: Database, clock: FrozenClock
) -> None:
    now = clock.now()
    shop_id = await add_shop(database, now)
    customer, _ = await add_customer(database, shop_id, now)
    seen: list[str | None] = []
    jobs: list[int] = []
    for n in range(7):
        jobs.append(await complete_one(database, SHOP, shop_id, customer, now + timedelta(days=n)))
        seen += await tiers_of(database, customer)
    assert seen == ["bronze", "bronze", "silver", "silver", "gold", "gold", "gold"]

    thanked = {job: thanks_of(await steps(database, job)) for job in jobs}
    assert [len(t) for t in thanked.values()] == [0, 0, 0, 0, 1, 0, 0]
    (thanks,) = thanked[jobs[4]]
    assert (thanks["key"], thanks["kind"], thanks["status"]) == ("gold_thanks", "info", "planned")
    assert thanks["due_at"] == now + timedelta(days=4, hours=2)  # at completion
    async with database.read() as conn:
        thanked_at = (
            await conn.execute(sa.select(Customer.gold_thanked_at).where(Customer.id == customer))
        ).scalar_one()
    assert thanked_at == now + timedelta(days=4, hours=2)


async def test_a_customer_gold_before_dangol_knew_them_is_not_thanked_for_reaching_it(
    database: Database, clock: FrozenClock
) -> None:
    now = clock.now()
    shop_id = await add_shop(database, now)
    customer, _ = await add_customer(database, shop_id, now)
    await done_jobs(database, shop_id, customer, 6, now)  # imported history
    await database.write(lambda c: recompute(c, shop_id, SHOP.tiers, [customer]))
    job = await complete_one(database, SHOP, shop_id, customer, now)
    assert await tiers_of(database, customer) == ["gold"]
    assert thanks_of(await steps(database, job)) == []


async def test_a_customer_thanked_once_is_never_thanked_again(
    database: Database, clock: FrozenClock
) -> None:
    now = clock.now()
    shop_id = await add_shop(database, now)
    customer, _ = await add_customer(database, shop_id, now)
    await done_jobs(database, shop_id, customer, 4, now)
    await database.write(lambda c: recompute(c, shop_id, SHOP.tiers, [customer]))
    first = await complete_one(database, SHOP, shop_id, customer, now)
    assert len(thanks_of(await steps(database, first))) == 1

    # The owner raises gold to 7: the customer is silver again, then reaches gold anew.
    raised = make_settings(shops=[shop_table(tiers={"gold": 7})]).shops[0]
    await database.write(lambda c: recompute(c, shop_id, raised.tiers))
    assert await tiers_of(database, customer) == ["silver"]
    later = now + timedelta(days=1)
    again = [await complete_one(database, raised, shop_id, customer, later) for _ in range(2)]
    assert await tiers_of(database, customer) == ["gold"]
    assert [thanks_of(await steps(database, job)) for job in again] == [[], []]


async def test_the_planner_sends_the_gold_thanks_with_the_tier_and_its_benefit(
    database: Database, clock: FrozenClock
) -> None:
    now = kst(2026, 11, 23, 10)
    shop_id = await add_shop(database, now)
    customer, conversation = await add_customer(database, shop_id, now)
    await done_jobs(database, shop_id, customer, 4, now)
    await database.write(lambda c: recompute(c, shop_id, SHOP.tiers, [customer]))
    job = await complete_one(database, SHOP, shop_id, customer, now)

    done_at = now + timedelta(hours=2)
    ran = await send_due_steps(
        database, {shop_id: SHOP}, Texts(), "https://hanbit.example", done_at
    )
    # The completion summary and the thanks; the confirmation came too late to matter.
    assert ran == Counter(sent=2, skipped=1)
    async with database.read() as conn:
        texts = (
            (
                await conn.execute(
                    sa.select(Message.body)
                    .where(Message.conversation_id == conversation)
                    .order_by(Message.id)
                )
            )
            .scalars()
            .all()
        )
        keys = (await conn.execute(sa.select(OutboxItem.idempotency_key))).scalars().all()
    thanks = texts[-1]
    assert thanks.startswith("[한빛설비] 김민수 고객님, 늘 저희를 찾아 주셔서")
    assert "이제 골드 고객님이세요." in thanks
    assert "우선 예약 + 특별 할인 혜택을 드릴게요." in thanks
    assert "작업을 마쳤어요" in texts[-2]  # the summary first
    assert f"journey:gold_thanks:job:{job}" in keys
    assert await send_due_steps(database, {shop_id: SHOP}, Texts(), "", done_at) == Counter()


async def test_the_app_recomputes_tiers_with_the_thresholds_the_config_writes_at_start(
    db_url: tuple[str, str | None], make_client: Any, clock: FrozenClock
) -> None:
    url, schema = db_url
    now = clock.now()
    database = Database(url, search_path=schema)
    await database.start()
    try:
        shop_id = await add_shop(database, now)  # "hanbit", the config's shop
        customers = [(await add_customer(database, shop_id, now, phone=None))[0] for _ in range(3)]
        for count, customer in zip((1, 2, 4), customers, strict=True):
            await done_jobs(database, shop_id, customer, count, now)
    finally:
        await database.close()

    client = await make_client(shops=[shop_table(tiers={"gold": 4, "silver": 2})])
    started = client.app[keys.DATABASE]
    assert await tiers_of(started, *customers) == ["bronze", "silver", "gold"]


# --------------------------------------------------------------------------- the migration


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
async def at_0008(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    """A database at revision 0008 (before tiers were derived): (url, search_path)."""
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'dangol.db'}"
        await upgrade(url, "0008")
        yield url, None
        return
    # The suite's own PostgreSQL schema, at 0008: unreachable PostgreSQL skips locally and
    # fails in CI, as every PostgreSQL test does (conftest._need_pg).
    async with postgres_schema("0008") as found:
        yield found


async def test_the_migration_derives_every_customers_tier_from_their_jobs(
    at_0008: tuple[str, str | None],
) -> None:
    url, schema = at_0008
    now = kst(2026, 11, 23, 10)
    database = Database(url, search_path=schema)
    await database.start()
    try:
        shop_id = await add_shop(database, now)

        def customer(conn: Connection) -> int:
            return int(
                conn.execute(
                    sa.text(
                        "INSERT INTO customers (shop_id, tier, tags, notes, created_at) "
                        "VALUES (:shop, 'bronze', '[]', '', :now) RETURNING id"
                    ),
                    {"shop": shop_id, "now": now},
                ).scalar_one()
            )

        customers = [await database.write(customer) for _ in range(4)]
        for count, who in zip((0, 1, 3, 5), customers, strict=True):
            await done_jobs(database, shop_id, who, count, now)
        await done_jobs(database, shop_id, customers[0], 2, now, status="cancelled")
    finally:
        await database.close()

    await upgrade(url, search_path=schema)
    database = Database(url, search_path=schema)
    await database.start()
    try:
        assert await tiers_of(database, *customers) == [None, "bronze", "silver", "gold"]
    finally:
        await database.close()
