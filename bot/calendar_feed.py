"""The owner's calendar feed: a shop's jobs as an ICS file behind a secret URL,
`/calendar/<token>.ics`, that a phone's calendar subscribes to.

The token (scope "calendar", `core.api_tokens`) is the only key: an unknown or revoked
one is a plain 404, as if the address never existed. The feed covers 30 days back and 90
ahead, one event per job (its arrival window, in the shop's time zone), and carries no
phone number — the customer's is not in it, and any typed into an address or a note is
masked — for a calendar is synced to places the console is not.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta, tzinfo
from typing import Any, cast

import sqlalchemy as sa
from aiohttp import web
from icalendar import Calendar, Event, vDuration
from yarl import URL

from bot import keys
from core.api_tokens import verify
from core.config import ShopConfig
from core.jobs.lifecycle import LABELS
from core.models import Customer, Job
from providers.masking import mask_in_text

JOBS = cast(sa.Table, Job.__table__)
CUSTOMERS = cast(sa.Table, Customer.__table__)

PATH = "/calendar/{token:[A-Za-z0-9_-]{1,100}}.ics"
BEHIND = timedelta(days=30)
AHEAD = timedelta(days=90)
MAX_EVENTS = 5000  # a busy shop has a few hundred in that span; a feed must stay small
REFRESH = timedelta(minutes=15)  # what the feed asks calendar apps to poll at
ENDED = ("cancelled", "no_show")


def calendar_url(public_url: str, secret: str) -> str:
    """The address to subscribe to (shown once, with the token)."""
    return f"{public_url.rstrip('/')}/calendar/{secret}.ics"


def setup(app: web.Application) -> None:
    app.router.add_get(PATH, feed, name="calendar_feed")


def _price(price: int | None) -> str:
    return "현장 견적" if price is None else f"{price:,}원"


def _event(row: Any, zone: tzinfo, host: str, public_url: str) -> Event:
    link = f"{public_url.rstrip('/')}/console/jobs/{row.id}"
    ended = row.status in ENDED
    summary = f"{row.service_name} · {row.customer_name or '고객'}"
    lines = [f"상태: {LABELS.get(row.status, row.status)}", f"금액: {_price(row.price_krw)}"]
    if row.notes:
        lines.append(f"메모: {mask_in_text(row.notes)}")
    if ended and row.reason:
        lines.append(f"사유: {mask_in_text(row.reason)}")
    lines.append(f"작업 보기: {link}")
    event = Event()
    event.add("uid", f"job-{row.id}@{host}")
    event.add("dtstamp", row.updated_at)
    event.add("dtstart", row.starts_at.astimezone(zone))
    event.add("dtend", row.ends_at.astimezone(zone))
    # Many calendar apps ignore STATUS: the title says it too.
    event.add("summary", f"[{LABELS[row.status]}] {summary}" if ended else summary)
    if row.address:
        event.add("location", mask_in_text(row.address))
    event.add("description", "\n".join(lines))
    event.add("url", link)
    event.add("status", "CANCELLED" if ended else "CONFIRMED")
    event.add("sequence", row.revision)  # a rescheduled job replaces its old event
    event.add("created", row.created_at)
    event.add("last-modified", row.updated_at)
    return event


def build(shop: ShopConfig, rows: list[Any], public_url: str) -> bytes:
    """The ICS text of `rows` (jobs with their customer's name)."""
    zone = shop.timezone
    host = URL(public_url).host or "dangol"
    cal = Calendar()
    cal.add("prodid", "-//dangol//jobs//KO")
    cal.add("version", "2.0")
    cal.add("calscale", "GREGORIAN")
    cal.add("method", "PUBLISH")
    cal.add("x-wr-calname", f"{shop.name} 작업")
    cal.add("x-wr-timezone", str(zone))
    cal.add("refresh-interval", REFRESH, parameters={"VALUE": "DURATION"})
    cal.add("x-published-ttl", vDuration(REFRESH))  # an X- property: its type said here
    for row in rows:
        cal.add_component(_event(row, zone, host, public_url))
    cal.add_missing_timezones()  # a VTIMEZONE for the shop's zone, so TZID means one thing
    ics: bytes = cal.to_ical()
    return ics


async def _rows(request: web.Request, shop_id: int, now: datetime) -> list[Any]:
    stmt = (
        sa.select(
            JOBS.c.id,
            JOBS.c.service_name,
            JOBS.c.starts_at,
            JOBS.c.ends_at,
            JOBS.c.address,
            JOBS.c.status,
            JOBS.c.price_krw,
            JOBS.c.notes,
            JOBS.c.reason,
            JOBS.c.revision,
            JOBS.c.created_at,
            JOBS.c.updated_at,
            CUSTOMERS.c.name.label("customer_name"),
        )
        .join(CUSTOMERS, CUSTOMERS.c.id == JOBS.c.customer_id)
        .where(
            JOBS.c.shop_id == shop_id,
            JOBS.c.starts_at >= now - BEHIND,
            JOBS.c.starts_at < now + AHEAD,
        )
        .order_by(JOBS.c.starts_at, JOBS.c.id)
        .limit(MAX_EVENTS)
    )
    async with request.config_dict[keys.DATABASE].read() as conn:
        return list((await conn.execute(stmt)).all())


def _shop(request: web.Request, shop_id: int) -> ShopConfig | None:
    for slug, known in request.config_dict[keys.SHOP_IDS].items():
        if known == shop_id:
            return request.config_dict[keys.SETTINGS].shop(slug)
    return None


async def feed(request: web.Request) -> web.Response:
    """GET /calendar/<token>.ics — the shop's jobs, or 404."""
    now = request.config_dict[keys.CLOCK].now()
    database = request.config_dict[keys.DATABASE]
    token = await verify(database, request.match_info["token"], "calendar", now)
    shop = None if token is None else _shop(request, token.shop_id)
    if token is None or shop is None:
        raise web.HTTPNotFound(text="no such calendar\n", headers={"Cache-Control": "no-store"})
    public_url = request.config_dict[keys.SETTINGS].server.public_url
    body = build(shop, await _rows(request, token.shop_id, now), public_url)
    etag = hashlib.sha256(body).hexdigest()[:32]
    headers = {
        # The owner's customers' names and addresses: no shared cache may keep a copy.
        "Cache-Control": "private, max-age=300",
        "ETag": f'"{etag}"',
        "Referrer-Policy": "no-referrer",
        "X-Robots-Tag": "noindex",
    }
    if request.headers.get("If-None-Match", "").strip() in (f'"{etag}"', f'W/"{etag}"'):
        return web.Response(status=304, headers=headers)
    return web.Response(
        body=body,
        content_type="text/calendar",
        charset="utf-8",
        headers={**headers, "Content-Disposition": 'inline; filename="jobs.ics"'},
    )
