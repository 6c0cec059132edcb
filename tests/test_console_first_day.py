"""The owner's first day, server side: what the header tells, what the lists show, who
replied, the small things (the browser half is tests/test_browser_first_day.py)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from conftest import kst
from console_helpers import Client, thread

from bot.clock import FrozenClock


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
