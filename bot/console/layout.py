"""What every signed-in console page shares: the shop, the clock, the header, the answer.

Pages work without JavaScript (forms post and redirect); `console.js` makes them live and
posts the same forms with fetch, asking for JSON (`Accept: application/json`).
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping
from datetime import datetime, timedelta, tzinfo
from typing import Any

from aiohttp import web

from bot import keys
from bot.console.queries.header import Header
from bot.console.render import render, static_url
from bot.console.viewer import Viewer
from core.availability import Availability, OwnerState, assess
from core.config import ShopConfig

MAX_ID = 2**62  # larger ids cannot exist (and would overflow BIGINT)
_NONCE = re.compile(r"[A-Za-z0-9_-]{16,64}")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def shop_of(request: web.Request, viewer: Viewer) -> ShopConfig:
    """The viewer's shop as configured (hours, time zone, reply target, delivery)."""
    shop = request.config_dict[keys.SETTINGS].shop(viewer.shop_slug)
    if shop is None:  # the shop was taken out of the config file; its rows remain
        raise web.HTTPServiceUnavailable(text="this shop is no longer configured")
    return shop


def now(request: web.Request) -> datetime:
    return request.config_dict[keys.CLOCK].now()


def object_id(request: web.Request, name: str = "id") -> int:
    """A numeric id from the path (the routes only match digits)."""
    value = int(request.match_info[name])
    if value >= MAX_ID:
        raise web.HTTPNotFound
    return value


def query_id(request: web.Request, name: str) -> int | None:
    raw = request.query.get(name, "")
    if not raw.isdigit() or len(raw) > 18:
        return None
    return int(raw)


def wants_json(request: web.Request) -> bool:
    return "application/json" in request.headers.get("Accept", "")


def field(form: Mapping[str, Any], name: str) -> str:
    value = form.get(name)
    return value if isinstance(value, str) else ""


def clean_text(value: str) -> str:
    """Text as typed: Windows newlines made plain, control characters (NUL…) dropped."""
    return _CONTROL.sub("", value.replace("\r\n", "\n").replace("\r", "\n"))


def nonce_of(form: Mapping[str, Any]) -> str | None:
    """The form's one-time value that makes a double tap post once."""
    value = field(form, "nonce")
    return value if _NONCE.fullmatch(value) else None


def new_nonce() -> str:
    return secrets.token_urlsafe(16)


def default_busy_until(at: datetime, tz: tzinfo) -> str:
    """What the "on site until" field suggests: two hours from now, on the half hour."""
    later = (at + timedelta(hours=2)).astimezone(tz)
    minutes = 30 if later.minute < 30 else 60
    suggestion = later.replace(minute=0, second=0, microsecond=0) + timedelta(minutes=minutes)
    return suggestion.strftime("%H:%M")


def customer_view(shop: ShopConfig, header: Header, at: datetime) -> Availability:
    """What the bot tells a customer who writes now (core/availability.py, the rule the
    replies use), so the header never says "대기 중" while customers hear "영업 종료"."""
    # owner_status holds one of OwnerState's three values (core.shops.OWNER_STATUSES).
    owner = OwnerState(header.owner_status, header.busy_until)  # type: ignore[arg-type]
    return assess(shop, owner, at)


def page(
    request: web.Request,
    template: str,
    *,
    viewer: Viewer,
    header: Header,
    status: int = 200,
    **context: Any,
) -> web.Response:
    """A full console page: the layout's header, navigation and scripts around `template`."""
    shop = shop_of(request, viewer)
    at = now(request)
    return render(
        request,
        template,
        status=status,
        header=header,
        told=customer_view(shop, header, at),
        shop=shop,
        today=at.astimezone(shop.timezone).date(),
        busy_until_default=default_busy_until(at, shop.timezone),
        js_url=static_url(request, "console.js"),
        worker_url=static_url(request, "worker.js"),
        screens_css_url=static_url(request, "screens.css"),
        here=request.path_qs,
        **context,
    )


def fragment(request: web.Request, template: str, **context: Any) -> web.Response:
    """A piece of a page that the script swaps in (escaped by the same templates)."""
    return render(request, template, **context)
