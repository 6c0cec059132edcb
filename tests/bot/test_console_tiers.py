"""The console shows each customer's tier as a small badge — inbox rows, the conversation's
customer panel, the customer page, the 고객 list and the 작업 tab's rows — derived from
their completed jobs; no badge before the first (SQLite and PostgreSQL)."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from support.console import Client, app_of, now_of, shop_id, thread, write
from support.jobs import steps
from support.outbox import add_shop

from bot import keys
from core.clock import FrozenClock
from core.config import ShopConfig, load
from core.db import Database
from core.jobs import Booking, book, complete
from core.models import Customer, Job

pytestmark = pytest.mark.usefixtures("cheap_hasher")

EXAMPLE = Path(__file__).resolve().parents[2] / "config.example.toml"
BADGE = re.compile(r'<span class="tier tier-(\w+)"[^>]*>([^<]*)</span>')


async def page(client: Client, path: str) -> str:
    resp = await client.get(path)
    assert resp.status == 200, path
    return await resp.text()


def shop_config(client: Client) -> ShopConfig:
    shop = app_of(client)[keys.SETTINGS].shop("hanbit")
    assert shop is not None
    return shop


async def a_job(client: Client, customer: int, days: int, *, done: bool) -> int:
    """A job `days` from now (negative: past), completed through core.jobs when `done`."""
    shop, sid, now = shop_config(client), shop_id(client), now_of(client)
    starts = now + timedelta(days=days, hours=1)
    booking = Booking(sid, customer, "aircon", starts, starts + timedelta(hours=2))
    job: int = await write(
        client, book(shop, booking, "user:1", now + timedelta(days=min(days, 0)))
    )
    if done:
        await write(client, complete(shop, sid, job, "user:1", starts + timedelta(hours=2)))
    return job


def li_of(html: str, cls: str, data_id: int) -> str:
    found = re.search(rf'<li class="{cls}[^"]*" data-id="{data_id}">(.*?)</li>', html, re.DOTALL)
    assert found, f"no {cls} row {data_id}"
    return found.group(1)


async def test_the_tier_shows_wherever_the_customer_does(owner: Client) -> None:
    silver, silver_conv = await thread(owner, name="김<b>단골</b>", kakao="k-silver")
    newcomer, newcomer_conv = await thread(owner, name="이처음", kakao="k-new")
    for n in range(3):  # three completed jobs: silver
        await a_job(owner, silver, -30 * (n + 1), done=True)
    upcoming = await a_job(owner, silver, 1, done=False)
    newcomer_job = await a_job(owner, newcomer, 1, done=False)

    badge = ("silver", "실버")
    for path in ("/console/", "/console/inbox/list"):
        html = await page(owner, path)
        assert BADGE.findall(li_of(html, "conv", silver_conv)) == [badge]
        assert BADGE.findall(li_of(html, "conv", newcomer_conv)) == []

    panel = await page(owner, f"/console/c/{silver_conv}")
    assert '<span class="tier tier-silver" title="완료 3회 이상 · 정기 점검">실버</span>' in panel
    assert '<span class="tier-benefit">정기 점검</span>' in panel
    assert "김&lt;b&gt;단골&lt;/b&gt;" in panel  # the name beside it, escaped
    assert "<b>단골</b>" not in panel
    assert "아직 없음 (완료된 작업 없음)" in await page(owner, f"/console/c/{newcomer_conv}")

    customer_page = await page(owner, f"/console/customers/{silver}")
    assert BADGE.findall(customer_page) == [badge]
    assert "정기 점검" in customer_page
    assert BADGE.findall(await page(owner, f"/console/customers/{newcomer}")) == []

    listing = await page(owner, "/console/customers")
    assert BADGE.findall(li_of(listing, "conv customer-row", silver)) == [badge]
    assert BADGE.findall(li_of(listing, "conv customer-row", newcomer)) == []

    jobs = await page(owner, "/console/jobs")
    assert BADGE.findall(li_of(jobs, "job job-booked", upcoming)) == [badge]
    assert BADGE.findall(li_of(jobs, "job job-booked", newcomer_job)) == []


async def test_completing_the_fifth_job_makes_the_badge_gold(owner: Client) -> None:
    customer, conversation = await thread(owner, name="박오회", kakao="k-gold")
    for n in range(4):
        await a_job(owner, customer, -10 * (n + 1), done=True)
    assert BADGE.findall(await page(owner, f"/console/customers/{customer}")) == [
        ("silver", "실버")
    ]
    await a_job(owner, customer, 0, done=True)
    html = await page(owner, f"/console/c/{conversation}")
    assert (
        '<span class="tier tier-gold" title="완료 5회 이상 · 우선 예약 + 특별 할인">골드</span>'
        in html
    )


async def test_the_demos_regulars_have_their_tiers_and_one_is_a_job_from_gold(
    database: Database, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the example's catalogue every regular is seeded: 박철수 gold, 김민수 silver,
    이영희 bronze — and completing 김민수's job today makes them gold, thanked once."""
    from bot.demo_jobs import seed_demo_jobs

    monkeypatch.setenv("DANGOL_DEMO_SKILL_SECRET", "x")
    (shop,) = load(EXAMPLE).shops
    now = clock.now()
    sid = await add_shop(database, now, slug=shop.slug)
    assert await database.write(seed_demo_jobs(shop, sid, now)) == 12
    async with database.read() as conn:
        found = (await conn.execute(sa.select(Customer.name, Customer.tier, Customer.id))).all()
        today = (
            (
                await conn.execute(
                    sa.select(Job.id).where(Job.status == "booked").order_by(Job.starts_at)
                )
            )
            .scalars()
            .first()
        )
    assert {r.name: r.tier for r in found} == {
        "김민수": "silver",
        "이영희": "bronze",
        "박철수": "gold",
    }
    assert today is not None
    assert [s["step"] for s in await steps(database, today)].count("gold_thanks") == 0

    await database.write(complete(shop, sid, today, "user:1", now + timedelta(hours=6)))
    async with database.read() as conn:
        tier = (
            await conn.execute(sa.select(Customer.tier).where(Customer.name == "김민수"))
        ).scalar_one()
    assert tier == "gold"
    assert [s["step"] for s in await steps(database, today)].count("gold_thanks") == 1
