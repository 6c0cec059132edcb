"""The Kakao webhook's hot-path shortcuts give the same results as the plain ways."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy.dialects import sqlite

from bot.metrics import Metrics
from bot.routing import Incoming
from bot.webhooks import _done_within
from core.models import UTCDateTime


def test_sqlite_datetimes_bind_as_before_when_one_repeats() -> None:
    process = UTCDateTime().bind_processor(sqlite.dialect())
    assert process is not None
    at = datetime(2026, 11, 23, 1, 0, 0, 123456, tzinfo=UTC)
    kst = timezone(timedelta(hours=9))
    later = datetime(2026, 11, 23, 10, 0, 1, tzinfo=kst)
    texts = [process(v) for v in (at, at, later, at, later, later, None)]
    assert texts == [
        "2026-11-23 01:00:00.123456",
        "2026-11-23 01:00:00.123456",
        "2026-11-23 01:00:01.000000",
        "2026-11-23 01:00:00.123456",
        "2026-11-23 01:00:01.000000",
        "2026-11-23 01:00:01.000000",
        None,
    ]


def test_served_requests_and_skill_replies_count_every_call() -> None:
    m = Metrics()
    for status in (200, 200, 404):
        m.served("kakao_skill", "POST", status, 0.003)
    m.skill_reply("fallback")
    m.skill_reply("fallback")
    text = m.render().decode()
    assert 'dangol_http_requests_total{method="POST",route="kakao_skill",status="200"} 2.0' in text
    assert 'dangol_http_requests_total{method="POST",route="kakao_skill",status="404"} 1.0' in text
    assert 'dangol_http_request_seconds_count{route="kakao_skill"} 3.0' in text
    assert 'dangol_kakao_skill_replies_total{kind="fallback"} 2.0' in text


def test_incoming_is_folded_for_keywords() -> None:
    msg = Incoming("영업 시간\tＡＢ 알려주세요", "kakao")
    assert msg.folded == "영업시간ab알려주세요"
    assert msg == Incoming("영업 시간\tＡＢ 알려주세요", "kakao")


async def test_waiting_within_a_budget_leaves_the_work_running() -> None:
    loop = asyncio.get_running_loop()
    committed: asyncio.Future[int] = loop.create_future()
    loop.call_soon(committed.set_result, 7)
    assert await _done_within(committed, 60)

    late: asyncio.Future[int] = loop.create_future()
    assert not await _done_within(late, 0)  # the budget is spent before the commit
    assert not late.cancelled()  # the unit still commits, and is answered late
    late.set_result(7)

    pending: asyncio.Future[int] = loop.create_future()
    waiting = asyncio.ensure_future(_done_within(pending, 60))
    await asyncio.sleep(0)
    waiting.cancel()  # the client went away
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert not pending.cancelled()
