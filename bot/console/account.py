"""`/console/me`: the signed-in user's own details — for now the name replies are signed with."""

from __future__ import annotations

from aiohttp import web

from bot import accounts, keys
from bot.console.layout import clean_text, field, now, page, shop_of
from bot.console.middleware import see_other
from bot.console.queries.header import read_header
from bot.console.viewer import current

PATH = "/console/me"


async def _page(
    request: web.Request,
    *,
    problem: str | None = None,
    value: str | None = None,
    saved: bool = False,
) -> web.Response:
    viewer = current(request)
    shop = shop_of(request, viewer)
    async with request.config_dict[keys.DATABASE].read() as conn:
        header = await read_header(conn, viewer, now(request), shop.timezone)
    return page(
        request,
        "account.html",
        viewer=viewer,
        header=header,
        status=400 if problem else 200,
        problem=problem,
        value=viewer.display_name if value is None else value,
        saved=saved,
        owner_title=accounts.OWNER_TITLE,
        display_name_max=accounts.DISPLAY_NAME_MAX,
        nav="me",
    )


async def show(request: web.Request) -> web.Response:
    return await _page(request, saved=request.query.get("saved") == "1")


async def update(request: web.Request) -> web.Response:
    viewer = current(request)
    form = await request.post()
    value = clean_text(field(form, "display_name"))
    try:
        unit = accounts.set_display_name(viewer.user_id, value, now(request), viewer.actor)
    except accounts.AccountError:
        return await _page(request, problem="display_name", value=value)
    await request.config_dict[keys.DATABASE].write(unit)
    return see_other(f"{PATH}?saved=1")
