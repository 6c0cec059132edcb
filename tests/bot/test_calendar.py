"""The owner's ICS feed: read back with icalendar — one event per job in the window,
cancelled ones marked, no phone number anywhere — behind a calendar token only."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
import sqlalchemy as sa
from conftest import KST, Client, kst
from icalendar import Calendar
from support.api import make_token, revoke_token
from support.console import app_of, shop_id
from support.jobs import add_customer, book_job

from bot import keys
from bot.calendar_feed import calendar_url
from bot.logs import Redact, redact
from core.jobs import end_unfinished, reschedule
from core.models import ApiToken


async def _job(client: Client, customer: int, **fields: object) -> int:
    app = app_of(client)
    return await book_job(
        app[keys.DATABASE],
        app[keys.SETTINGS].shops[0],
        shop_id(client),
        customer,
        app[keys.CLOCK].now(),
        **fields,  # type: ignore[arg-type]
    )


async def _customer(client: Client, **fields: object) -> int:
    app = app_of(client)
    customer, _ = await add_customer(
        app[keys.DATABASE],
        shop_id(client),
        app[keys.CLOCK].now(),
        **fields,  # type: ignore[arg-type]
    )
    return customer


def _feed_path(secret: str) -> str:
    return f"/calendar/{secret}.ics"


async def test_the_feed_has_one_event_per_job_in_its_window(client: Client) -> None:
    minsu = await _customer(client)  # 김민수, +821055556666
    job = await _job(
        client,
        minsu,
        starts_at=kst(2026, 11, 26, 14),
        price_krw=80000,
        notes="도착 전 010-5555-6666 으로 전화",
    )
    # 29 days back and 89 ahead are in; 31 back and 91 ahead are not.
    old = await _job(client, minsu, starts_at=kst(2026, 10, 25, 10), service="lawn")
    await _job(client, minsu, starts_at=kst(2026, 10, 23, 10))
    far = await _job(client, minsu, starts_at=kst(2027, 2, 20, 10))
    await _job(client, minsu, starts_at=kst(2027, 2, 22, 10))
    secret = await make_token(client, "calendar", name="휴대폰 캘린더")

    resp = await client.get(_feed_path(secret))
    assert resp.status == 200
    assert resp.content_type == "text/calendar"
    assert resp.headers["Cache-Control"].startswith("private")
    body = await resp.read()
    cal = Calendar.from_ical(body)
    assert str(cal["x-wr-calname"]) == "한빛설비 작업"
    assert b"X-PUBLISHED-TTL:PT15M" in body
    events = {str(e["uid"]): e for e in cal.walk("VEVENT")}
    assert set(events) == {f"job-{i}@127.0.0.1" for i in (old, job, far)}

    event = events[f"job-{job}@127.0.0.1"]
    assert str(event["summary"]) == "에어컨 청소 · 김민수"
    assert str(event["location"]) == "서울시 마포구 월드컵로 12"
    assert event.decoded("dtstart") == kst(2026, 11, 26, 14)
    assert event.decoded("dtend") == kst(2026, 11, 26, 16)
    assert event["dtstart"].params["TZID"] == "Asia/Seoul"
    assert str(event["status"]) == "CONFIRMED"
    description = str(event["description"])
    assert "상태: 예약" in description
    assert "금액: 80,000원" in description
    assert f"http://127.0.0.1:8080/console/jobs/{job}" in description
    assert str(event["url"]) == f"http://127.0.0.1:8080/console/jobs/{job}"
    assert "전화" in description
    # The time zone is in the file, so every calendar app reads the same hour.
    assert [str(tz["tzid"]) for tz in cal.walk("VTIMEZONE")] == ["Asia/Seoul"]
    # No phone number, however written, in the whole feed.
    text = body.decode()
    for digits in ("5555-6666", "55556666", "5555"):
        assert digits not in text


async def test_a_cancelled_job_or_no_show_is_a_cancelled_event(client: Client) -> None:
    customer = await _customer(client)
    cancelled = await _job(client, customer, starts_at=kst(2026, 11, 26, 14))
    no_show = await _job(client, customer, starts_at=kst(2026, 11, 20, 14))
    kept = await _job(client, customer, starts_at=kst(2026, 11, 27, 14))
    app = app_of(client)
    now = app[keys.CLOCK].now()
    for job, status in ((cancelled, "cancelled"), (no_show, "no_show")):
        unit = end_unfinished(shop_id(client), job, status, "고객 요청", "user:1", now)
        await app[keys.DATABASE].write(unit)
    secret = await make_token(client, "calendar")

    cal = Calendar.from_ical(await (await client.get(_feed_path(secret))).read())
    status = {str(e["uid"]).split("@")[0]: e for e in cal.walk("VEVENT")}
    assert str(status[f"job-{cancelled}"]["status"]) == "CANCELLED"
    assert str(status[f"job-{cancelled}"]["summary"]).startswith("[취소] ")
    assert "사유: 고객 요청" in str(status[f"job-{cancelled}"]["description"])
    assert str(status[f"job-{no_show}"]["status"]) == "CANCELLED"
    assert str(status[f"job-{no_show}"]["summary"]).startswith("[노쇼] ")
    assert str(status[f"job-{kept}"]["status"]) == "CONFIRMED"


async def test_a_rescheduled_job_keeps_its_uid_with_a_higher_sequence(client: Client) -> None:
    customer = await _customer(client)
    job = await _job(client, customer, starts_at=kst(2026, 11, 26, 14))
    secret = await make_token(client, "calendar")
    first = Calendar.from_ical(await (await client.get(_feed_path(secret))).read())
    app = app_of(client)
    new = kst(2026, 11, 28, 10)
    await app[keys.DATABASE].write(
        reschedule(
            app[keys.SETTINGS].shops[0],
            shop_id(client),
            job,
            new,
            new + timedelta(hours=2),
            "user:1",
            app[keys.CLOCK].now() + timedelta(minutes=5),
        )
    )
    second = Calendar.from_ical(await (await client.get(_feed_path(secret))).read())
    (before,) = first.walk("VEVENT")
    (after,) = second.walk("VEVENT")
    assert before["uid"] == after["uid"]
    assert int(after["sequence"]) == int(before["sequence"]) + 1
    assert after.decoded("dtstart").astimezone(KST) == new


async def test_an_unchanged_feed_answers_304_to_its_etag(client: Client) -> None:
    customer = await _customer(client)
    await _job(client, customer, starts_at=kst(2026, 11, 26, 14))
    secret = await make_token(client, "calendar")
    first = await client.get(_feed_path(secret))
    etag = first.headers["ETag"]
    again = await client.get(_feed_path(secret), headers={"If-None-Match": etag})
    assert again.status == 304
    assert await again.read() == b""


async def test_a_revoked_unknown_or_api_token_is_404(client: Client) -> None:
    customer = await _customer(client)
    await _job(client, customer, starts_at=kst(2026, 11, 26, 14))
    calendar = await make_token(client, "calendar")
    api = await make_token(client, "api")
    assert (await client.get(_feed_path(calendar))).status == 200
    await revoke_token(client, calendar)
    for secret in (calendar, api, "dgl_" + "a" * 43, "nothing"):
        resp = await client.get(_feed_path(secret))
        assert resp.status == 404, secret
        assert "김민수" not in await resp.text()


async def test_a_feed_poll_marks_the_token_used(client: Client) -> None:
    secret = await make_token(client, "calendar")
    await client.get(_feed_path(secret))
    async with app_of(client)[keys.DATABASE].read() as conn:
        used = (await conn.execute(sa.select(ApiToken.last_used_at))).scalar_one()
    assert used == app_of(client)[keys.CLOCK].now()


def test_the_subscription_url_and_the_logs_never_show_the_token() -> None:
    secret = "dgl_" + "Ab3_-" * 8 + "xyz"
    url = calendar_url("https://bot.example.kr/", secret)
    assert url == f"https://bot.example.kr/calendar/{secret}.ics"
    line = f'127.0.0.1 "GET /calendar/{secret}.ics HTTP/1.1" 200'
    assert secret not in redact(line)
    assert "/calendar/dgl_********.ics" in redact(line)
    record = logging.LogRecord("aiohttp.access", logging.INFO, "", 0, "%s", (line,), None)
    Redact().filter(record)
    assert secret not in record.getMessage()


@pytest.mark.parametrize("path", ["/calendar/.ics", "/calendar/a/b.ics", "/calendar/x"])
async def test_malformed_feed_paths_are_404(client: Client, path: str) -> None:
    assert (await client.get(path)).status == 404
