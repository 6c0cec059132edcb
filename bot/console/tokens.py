"""`/console/tokens`: the owner makes and revokes the shop's API and calendar tokens.

Owner only (staff get 403, as for every owner-only change). A new token is shown once, on
the page that answers the form that made it — never stored, never redirected through a
URL — and the page carries `Cache-Control: no-store` like every console page.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, tzinfo

from aiohttp import web

from bot import keys
from bot.calendar_feed import calendar_url
from bot.console.layout import clean_text, field, now, object_id, page, shop_of
from bot.console.middleware import see_other
from bot.console.queries.header import read_header
from bot.console.viewer import require_owner
from core.api_tokens import (
    NAME_MAX,
    NewToken,
    TokenError,
    TokenNotFound,
    TokenView,
    create,
    list_tokens,
    revoke,
)

HOME = "/console/tokens"
SCOPE_LABELS = {"api": "작업 API", "calendar": "캘린더"}


@dataclass(frozen=True)
class Row:
    """A token as the page lists it."""

    id: int
    name: str
    scope: str
    masked: str
    created: str
    last_used: str
    revoked: str  # "" while it works


@dataclass(frozen=True)
class Shown:
    """The token just made, shown this once."""

    name: str
    scope: str
    secret: str
    url: str  # the calendar's address ("" for an API token)
    webcal: str  # the same for a phone's "subscribe" (webcal://)


def setup(app: web.Application) -> None:
    """The console's routes for tokens (one call in `console_app`)."""
    app.router.add_get("/tokens", index, name="console_tokens")
    app.router.add_post("/tokens", create_token, name="console_token_create")
    app.router.add_post(r"/tokens/{id:\d+}/revoke", revoke_token, name="console_token_revoke")


def _when(at: datetime | None, zone: tzinfo) -> str:
    return "" if at is None else at.astimezone(zone).strftime("%Y-%m-%d %H:%M")


def _row(token: TokenView, zone: tzinfo) -> Row:
    return Row(
        id=token.id,
        name=token.name,
        scope=SCOPE_LABELS.get(token.scope, token.scope),
        masked=token.masked,
        created=_when(token.created_at, zone),
        last_used=_when(token.last_used_at, zone),
        revoked=_when(token.revoked_at, zone),
    )


async def _page(
    request: web.Request,
    *,
    shown: Shown | None = None,
    problem: str | None = None,
    name: str = "",
    scope: str = "api",
) -> web.Response:
    viewer = require_owner(request)
    shop = shop_of(request, viewer)
    async with request.config_dict[keys.DATABASE].read() as conn:
        tokens = await list_tokens(conn, viewer.shop_id)
        header = await read_header(conn, viewer, now(request), shop.timezone)
    return page(
        request,
        "tokens.html",
        viewer=viewer,
        header=header,
        status=400 if problem else 200,
        rows=[_row(t, shop.timezone) for t in tokens],
        shown=shown,
        problem=problem,
        name=name,
        scope=scope,
        scope_labels=SCOPE_LABELS,
        name_max=NAME_MAX,
        revoked=request.query.get("revoked", "").isdigit(),
        api_docs="/api/openapi.json",
        nav="me",
    )


async def index(request: web.Request) -> web.Response:
    return await _page(request)


def _shown(request: web.Request, made: NewToken) -> Shown:
    url = webcal = ""
    if made.scope == "calendar":
        url = calendar_url(request.config_dict[keys.SETTINGS].server.public_url, made.secret)
        webcal = "webcal://" + url.split("://", 1)[-1]
    return Shown(made.name, SCOPE_LABELS[made.scope], made.secret, url, webcal)


async def create_token(request: web.Request) -> web.Response:
    viewer = require_owner(request)
    form = await request.post()
    name = clean_text(field(form, "name"))
    scope = field(form, "scope")
    if scope not in SCOPE_LABELS:
        return await _page(request, problem="토큰 종류를 골라 주세요", name=name)
    try:
        unit = create(
            viewer.shop_id, scope, name, viewer.actor, now(request), created_by=viewer.user_id
        )
    except TokenError as exc:
        return await _page(request, problem=str(exc), name=name, scope=scope)
    made = await request.config_dict[keys.DATABASE].write(unit)
    return await _page(request, shown=_shown(request, made))


async def revoke_token(request: web.Request) -> web.Response:
    viewer = require_owner(request)
    token_id = object_id(request)
    unit = revoke(token_id, viewer.actor, now(request), shop_id=viewer.shop_id)
    try:
        await request.config_dict[keys.DATABASE].write(unit)
    except TokenNotFound:
        raise web.HTTPNotFound from None
    return see_other(f"{HOME}?revoked={token_id}")
