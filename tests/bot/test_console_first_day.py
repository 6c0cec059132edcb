"""The owner's first day, server side: what the header tells, what the lists show, who
replied, the small things (the browser half is tests/test_browser_first_day.py)."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from conftest import kst
from support.console import PASSWORD, Client, app_of, now_of, sign_in, thread

from bot import keys
from bot.accounts import add_user
from bot.cli import main
from core.clock import FrozenClock
from core.db import Database
from core.models import User


@pytest.fixture
def clock() -> FrozenClock:
    # Monday 23 November 2026, 20:00 in Seoul: the shop closed at 18:00.
    return FrozenClock(kst(2026, 11, 23, 20, 0))


def csrf(client: Client) -> str:
    token: str = client.csrf  # type: ignore[attr-defined]
    return token


async def post(client: Client, path: str, data: dict[str, str] | None = None, **kw: Any) -> Any:
    form = {"csrf": csrf(client), **(data or {})}
    return await client.post(path, data=form, allow_redirects=False, **kw)


async def page(client: Client, path: str) -> str:
    resp = await client.get(path)
    assert resp.status == 200, path
    return await resp.text()


def told(html: str) -> str:
    found = re.search(r'<span id="told">([^<]*)</span>', html)
    assert found, "the header shows no status"
    return found.group(1)


async def test_the_header_says_what_customers_are_told(owner: Client) -> None:
    # The owner is "available", but after hours the bot says the shop is closed.
    assert told(await page(owner, "/console/")) == "영업 종료 · 내일 09:00"
    await post(owner, "/console/owner-status", {"status": "off"})
    assert told(await page(owner, "/console/")) == "영업 종료 · 내일 09:00"


async def test_the_header_follows_the_owner_while_open(owner: Client, clock: FrozenClock) -> None:
    clock.set(kst(2026, 11, 23, 10, 0))
    assert told(await page(owner, "/console/")) == "대기 중"
    await post(owner, "/console/owner-status", {"status": "on_site", "until": "15:30"})
    assert told(await page(owner, "/console/")) == "현장 작업 중 ~15:30"
    await post(owner, "/console/owner-status", {"status": "off"})
    assert told(await page(owner, "/console/")) == "오늘 휴무 · 내일 09:00"


async def test_a_resolved_complaint_shows_no_deadline_in_the_list(owner: Client) -> None:
    await thread(
        owner,
        complaint=True,
        complaint_due_at=kst(2026, 11, 24, 20, 0),
        status="resolved",
        waited_minutes=None,
    )
    html = await page(owner, "/console/?filter=resolved")
    badge = re.search(r'<span class="badge complaint">([^<]*)</span>', html)
    assert badge
    assert badge.group(1) == "불만"


# --------------------------------------------------------------------------- 9. who replied


_SIGNED = re.compile(r'<p class="who">([^<]*)</p>|<p class="meta">([^<·]*) · <time>')


def signatures(html: str) -> list[str]:
    """Who each owner reply and note is signed by, in the timeline's order."""
    names = ((a or b).strip() for a, b in _SIGNED.findall(html))
    return [n for n in names if n not in ("고객", "자동 응답")]


async def test_replies_and_notes_are_signed_with_the_display_name(owner: Client) -> None:
    _, conv = await thread(owner)
    await post(owner, f"/console/c/{conv}/reply", {"text": "내일 갈게요"})
    # Not the login ("kim"): an owner who set no name signs as 사장님.
    assert signatures(await page(owner, f"/console/c/{conv}")) == ["사장님"]
    assert "내 정보" in await page(owner, "/console/me")

    resp = await post(owner, "/console/me", {"display_name": "  김한빛  "})
    assert resp.status == 303
    assert 'value="김한빛"' in await page(owner, "/console/me")
    await post(owner, f"/console/c/{conv}/note", {"text": "부품 주문함"})
    await post(owner, f"/console/c/{conv}/reply", {"text": "부품이 왔어요"})
    assert signatures(await page(owner, f"/console/c/{conv}")) == ["사장님", "김한빛", "김한빛"]

    too_long = await post(owner, "/console/me", {"display_name": "가" * 41})
    assert too_long.status == 400


async def test_staff_sign_with_the_name_given_at_creation(
    client: Client, cheap_hasher: None
) -> None:
    app = app_of(client)
    unit = add_user(
        app[keys.SHOP_IDS]["hanbit"],
        "park",
        PASSWORD,
        "staff",
        now_of(client),
        display_name="박기사",
    )
    await app[keys.DATABASE].write(unit)
    client.csrf = await sign_in(client, "park")  # type: ignore[attr-defined]
    _, conv = await thread(client)
    await post(client, f"/console/c/{conv}/reply", {"text": "제가 갈게요"})
    html = await page(client, f"/console/c/{conv}")
    assert signatures(html) == ["박기사"]
    assert "박기사 (park)" in html


def test_user_add_takes_a_display_name(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DANGOL_DEMO_SKILL_SECRET", "s" * 32)
    target = tmp_path / "config.toml"
    assert main(["init", "--config", str(target)]) == 0
    args = ["user", "add", "--config", str(target), "--shop", "demo", "--username", "lee"]
    assert main([*args, "--display-name", "이" * 41]) == 1  # too long: refused, no account
    assert main([*args, "--display-name", " 이 기사 "]) == 0
    capsys.readouterr()

    async def names() -> list[tuple[str, str]]:
        db = Database(f"sqlite+aiosqlite:///{tmp_path / 'var' / 'dangol.db'}")
        async with db.read() as conn:
            found = await conn.execute(
                sa.select(User.username, User.display_name).order_by(User.id)
            )
            result = [(r.username, r.display_name) for r in found]
        await db.close()
        return result

    assert asyncio.run(names()) == [("demo", ""), ("lee", "이 기사")]


# --------------------------------------------------------------------------- 10. small things


async def test_the_demo_ships_saved_replies_once(client: Client) -> None:
    from bot.console.saved_replies import DEMO_REPLIES, seed_demo_replies
    from core.models import SavedReply

    app = app_of(client)
    shop = app[keys.SHOP_IDS]["hanbit"]
    assert await app[keys.DATABASE].write(seed_demo_replies(shop, now_of(client))) == 4
    assert await app[keys.DATABASE].write(seed_demo_replies(shop, now_of(client))) == 0
    async with app[keys.DATABASE].read() as conn:
        titles = list((await conn.execute(sa.select(SavedReply.title))).scalars())
    assert sorted(titles) == sorted(t for t, _ in DEMO_REPLIES)


async def test_the_demo_ships_regulars_with_history_and_two_bookings_once(client: Client) -> None:
    from bot.demo_jobs import seed_demo_jobs
    from core.models import Customer, Job, JourneyStep

    app = app_of(client)
    shop_id = app[keys.SHOP_IDS]["hanbit"]
    shop = app[keys.SETTINGS].shops[0]
    database = app[keys.DATABASE]
    now = now_of(client)
    # The test shop's catalogue has aircon and lawn: only the aircon regular is seeded.
    assert await database.write(seed_demo_jobs(shop, shop_id, now)) == 5
    assert await database.write(seed_demo_jobs(shop, shop_id, now)) == 0
    async with database.read() as conn:
        jobs = (await conn.execute(sa.select(Job.status, Job.starts_at))).all()
        steps = (await conn.execute(sa.select(JourneyStep.step))).scalars().all()
        tiers = (await conn.execute(sa.select(Customer.name, Customer.tier))).all()
    assert sorted(status for status, _ in jobs) == ["booked", "done", "done", "done", "done"]
    assert [tuple(t) for t in tiers] == [("김민수", "silver")]  # four completed jobs
    booked = next(start for status, start in jobs if status == "booked")
    assert booked.astimezone(shop.timezone).date() == now.astimezone(shop.timezone).date()
    assert "confirmation" in steps  # booked like any job: its confirmation is planned


async def test_saved_replies_show_variables_as_words(owner: Client) -> None:
    body = "{{ customer.name }}님, {{shop.name}}입니다. {{ customer.unknown }}"
    resp = await post(owner, "/console/saved-replies", {"title": "인사", "body": body})
    assert resp.status == 303
    html = await page(owner, "/console/saved-replies")
    shown = re.search(r'<p class="body">(.*?)</p>', html)
    assert shown
    assert shown.group(1) == (
        '<span class="var">고객 이름</span>님, <span class="var">가게 이름</span>입니다. '
        "{{ customer.unknown }}"
    )
    for label in ("고객 이름", "등급", "가게 이름", "가게 전화번호"):
        assert f">{label}</button>" in html  # a chip that inserts it


async def test_the_favicon_is_served(client: Client) -> None:
    resp = await client.get("/favicon.ico")
    assert resp.status == 200
    assert resp.content_type == "image/x-icon"
    assert (await resp.read())[:4] == b"\x00\x00\x01\x00"  # an ICO header
