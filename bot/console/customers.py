"""Customers: the 고객 tab's list and search, a customer's page (also shown beside a
conversation), edits, and the phone reveal.

The phone number is masked everywhere (010-****-5678). Seeing it whole is a POST that
reads it and writes a `phone_revealed` audit entry in the same transaction.
"""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from bot import keys
from bot.console import changes, customer_list
from bot.console.changes import customer as customer_changes
from bot.console.changes.customer import CustomerEdit
from bot.console.customer_list import Cursor, Search
from bot.console.layout import clean_text, field, now, object_id, page, shop_of, wants_json
from bot.console.middleware import see_other
from bot.console.queries.customer import read_customer
from bot.console.queries.header import read_header
from bot.console.queries.jobs import read_history
from bot.console.viewer import current
from bot.console.views import safe_next
from core.phone import to_domestic

NAME_MAX = 100
TAGS_MAX = 20
TAG_MAX = 30
NOTES_MAX = 2000
LIMITS = {"name": NAME_MAX, "tags": TAGS_MAX, "tag": TAG_MAX, "notes": NOTES_MAX}


@dataclass(frozen=True)
class Form:
    """The edit form as typed, and what is wrong with it (field → problem code)."""

    name: str
    tags: str
    notes: str
    problems: dict[str, str]


def parse_edit(name: str, tags: str, notes: str) -> tuple[CustomerEdit | None, Form]:
    """Validate the edit form: name ≤ 100, at most 20 tags of ≤ 30 characters, notes ≤ 2000."""
    name = " ".join(clean_text(name).split())
    notes = clean_text(notes).strip()
    tag_list: list[str] = []
    for raw in clean_text(tags).replace("\n", ",").split(","):
        tag = " ".join(raw.split()).lstrip("#")
        if tag and tag not in tag_list:
            tag_list.append(tag)
    problems: dict[str, str] = {}
    if len(name) > NAME_MAX:
        problems["name"] = "too_long"
    if len(tag_list) > TAGS_MAX:
        problems["tags"] = "too_many"
    elif any(len(t) > TAG_MAX for t in tag_list):
        problems["tags"] = "too_long"
    if len(notes) > NOTES_MAX:
        problems["notes"] = "too_long"
    form = Form(name, ", ".join(tag_list) if not problems.get("tags") else tags, notes, problems)
    if problems:
        return None, form
    return CustomerEdit(name or None, tag_list, notes), form


async def show(
    request: web.Request,
    *,
    status: int = 200,
    form: Form | None = None,
    revealed: str | None = None,
) -> web.Response:
    viewer = current(request)
    shop = shop_of(request, viewer)
    at = now(request)
    async with request.config_dict[keys.DATABASE].read() as conn:
        customer = await read_customer(conn, viewer, object_id(request), shop.timezone)
        if customer is None:
            raise web.HTTPNotFound
        history = await read_history(conn, viewer, customer.id, shop.timezone)
        header = await read_header(conn, viewer, at, shop.timezone)
    return page(
        request,
        "customer.html",
        viewer=viewer,
        header=header,
        status=status,
        customer=customer,
        history=history,
        form=form,
        revealed=revealed,  # E.164, for the tel: link
        revealed_display=to_domestic(revealed) if revealed else None,
        limits=LIMITS,
        nav="customers",
    )


async def index(request: web.Request) -> web.Response:
    """The 고객 tab: the shop's customers, newest activity first, or those a search finds."""
    viewer = current(request)
    shop = shop_of(request, viewer)
    at = now(request)
    search = Search.parse(request.query.get("q", ""))
    cursor = Cursor.decode(request.query["after"]) if "after" in request.query else None
    async with request.config_dict[keys.DATABASE].read() as conn:
        listing = await customer_list.customers(conn, viewer, search, shop.timezone, cursor=cursor)
        header = await read_header(conn, viewer, at, shop.timezone)
    return page(
        request, "customers.html", viewer=viewer, header=header, listing=listing, nav="customers"
    )


async def customer_page(request: web.Request) -> web.Response:
    return await show(request)


async def update(request: web.Request) -> web.Response:
    viewer = current(request)
    customer_id = object_id(request)
    posted = await request.post()
    edit, form = parse_edit(field(posted, "name"), field(posted, "tags"), field(posted, "notes"))
    if edit is None:
        if wants_json(request):
            return web.json_response({"ok": False, "problems": form.problems}, status=400)
        return await show(request, status=400, form=form)
    try:
        await request.config_dict[keys.DATABASE].write(
            customer_changes.update_customer(viewer, customer_id, edit, now(request))
        )
    except changes.NotFound:
        raise web.HTTPNotFound from None
    if wants_json(request):
        return web.json_response({"ok": True})
    fallback = f"/console/customers/{customer_id}"
    target = safe_next(field(posted, "next"))
    return see_other(target if target != "/console/" else fallback)


async def reveal_phone(request: web.Request) -> web.Response:
    viewer = current(request)
    try:
        phone = await request.config_dict[keys.DATABASE].write(
            customer_changes.reveal_phone(viewer, object_id(request), now(request))
        )
    except changes.NotFound:
        raise web.HTTPNotFound from None
    shown = to_domestic(phone) if phone else None
    if wants_json(request):
        return web.json_response({"phone": shown, "e164": phone})
    # Without the script: the customer page once, with the number shown (never redirected
    # to, so it never sits in the history as a URL).
    return await show(request, revealed=phone)
