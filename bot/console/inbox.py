"""The inbox: `GET /console/` and the list fragment the page's script refreshes live."""

from __future__ import annotations

from aiohttp import web

from bot import keys
from bot.console.layout import fragment, now, page, shop_of
from bot.console.queries.header import Header, read_header
from bot.console.queries.inbox import Cursor, Inbox, read_inbox
from bot.console.viewer import current


async def _load(request: web.Request) -> tuple[Inbox, Header]:
    viewer = current(request)
    shop = shop_of(request, viewer)
    at = now(request)
    raw_filter = request.query.get("filter", "all")
    cursor = Cursor.decode(request.query["after"]) if "after" in request.query else None
    async with request.config_dict[keys.DATABASE].read() as conn:
        inbox = await read_inbox(
            conn,
            viewer,
            now=at,
            tz=shop.timezone,
            target_minutes=shop.reply_target_minutes,
            filter_name=raw_filter,
            cursor=cursor,
        )
        header = await read_header(conn, viewer, at, shop.timezone)
    return inbox, header


async def inbox(request: web.Request) -> web.Response:
    """Conversations of the viewer's shop, longest-waiting first."""
    listing, header = await _load(request)
    return page(
        request,
        "inbox.html",
        viewer=current(request),
        header=header,
        inbox=listing,
        target=shop_of(request, current(request)).reply_target_minutes,
        nav="inbox",
    )


async def inbox_list(request: web.Request) -> web.Response:
    """Just the list (same query, same template): what the live page swaps in."""
    listing, header = await _load(request)
    return fragment(request, "_inbox_list.html", inbox=listing, header=header)
