"""A conversation: its timeline, the composer, and what the owner does with it.

GET never changes anything: opening a conversation does not even mark it read — the page's
script posts `…/read` once the owner has it on screen. Every POST is CSRF-checked by the
middleware, scoped to the viewer's shop (another shop's id is 404) and audit-logged.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web

from bot import keys
from bot.console import changes, customers
from bot.console.changes import conversation as conversation_changes
from bot.console.changes import owner as owner_changes
from bot.console.layout import (
    clean_text,
    field,
    fragment,
    new_nonce,
    nonce_of,
    now,
    object_id,
    page,
    query_id,
    shop_of,
    wants_json,
)
from bot.console.middleware import see_other
from bot.console.photos import UPLOAD_ROUTE
from bot.console.queries.conversation import read_conversation, read_timeline
from bot.console.queries.customer import read_customer
from bot.console.queries.header import read_header
from bot.console.queries.jobs import read_history
from bot.console.queries.saved_replies import read_saved_replies
from bot.console.saved_replies import choices
from bot.console.viewer import Viewer, current
from bot.console.views import safe_next
from bot.photos.records import find_attachment
from core.availability import busy_until
from core.replies import NoPath, ReplyPath, addresses_of, choose_path
from core.shops import OWNER_STATUSES

TEXT_MAX = 1000  # a Kakao text bubble holds 1000 characters
PHOTOS_MAX = 4
SNOOZE_MAX = timedelta(days=30)

TOMORROW_AT = time(9, 0)


def _url(conversation_id: int) -> str:
    return f"/console/c/{conversation_id}"


# --------------------------------------------------------------------------- reading


async def show(
    request: web.Request,
    *,
    status: int = 200,
    error: str | None = None,
    draft: str | None = None,
    other: int | None = None,
) -> web.Response:
    viewer = current(request)
    shop = shop_of(request, viewer)
    at = now(request)
    tz = shop.timezone
    conversation_id = object_id(request)
    async with request.config_dict[keys.DATABASE].read() as conn:
        conv = await read_conversation(
            conn,
            viewer,
            conversation_id,
            now=at,
            tz=tz,
            target_minutes=shop.reply_target_minutes,
        )
        if conv is None:
            raise web.HTTPNotFound
        customer = await read_customer(conn, viewer, conv.customer_id, tz)
        assert customer is not None  # a conversation's customer is in the same shop
        items, older = await read_timeline(
            conn, viewer, conv.id, tz, before=query_id(request, "before")
        )
        saved = await read_saved_replies(conn, viewer, tz)
        history = await read_history(conn, viewer, conv.customer_id, tz)
        header = await read_header(conn, viewer, at, tz)
        addresses = await conn.run_sync(addresses_of, conv.customer_id)
    path: ReplyPath | None
    try:
        path = choose_path(conv.channel, shop.delivery, addresses)
    except NoPath:
        path = None
    offered = choices(saved, customer, shop)
    router = request.app.router
    photo_upload_url = (
        str(router[UPLOAD_ROUTE].url_for(conversation_id=str(conv.id)))
        if UPLOAD_ROUTE in router
        else None
    )
    if draft is None:
        picked = query_id(request, "saved")
        draft = next((c.text for c in offered if c.id == picked), "")
    return page(
        request,
        "conversation.html",
        viewer=viewer,
        header=header,
        status=status,
        conv=conv,
        customer=customer,
        history=history,
        items=items,
        older=older,
        prev_day=None,
        conversation_id=conv.id,
        saved=offered,
        path=path,
        has_phone=addresses.phone is not None,
        draft=draft,
        nonce=new_nonce(),
        error=error,
        other=other,
        text_max=TEXT_MAX,
        photo_upload_url=photo_upload_url,
        photos_max=PHOTOS_MAX,
        form=None,  # the customer panel's edit form, untouched
        revealed=None,
        revealed_display=None,
        limits=customers.LIMITS,
        nav="inbox",
    )


async def conversation_page(request: web.Request) -> web.Response:
    return await show(request)


async def timeline(request: web.Request) -> web.Response:
    """Messages after `after` (or the one `message`) as the page's list items."""
    viewer = current(request)
    shop = shop_of(request, viewer)
    tz = shop.timezone
    conversation_id = object_id(request)
    after = query_id(request, "after")
    only = query_id(request, "message")
    async with request.config_dict[keys.DATABASE].read() as conn:
        conv = await read_conversation(
            conn,
            viewer,
            conversation_id,
            now=now(request),
            tz=tz,
            target_minutes=shop.reply_target_minutes,
        )
        if conv is None:
            raise web.HTTPNotFound
        items, _ = await read_timeline(
            conn, viewer, conv.id, tz, after=after if only is None else None, only=only
        )
    try:  # the day of the item the page shows just before these: no repeated day divider
        prev_day: date | None = date.fromisoformat(request.query.get("day", ""))
    except ValueError:
        prev_day = None
    return fragment(
        request, "_timeline.html", items=items, prev_day=prev_day, conversation_id=conv.id
    )


# --------------------------------------------------------------------------- answers


def _done(request: web.Request, conversation_id: int, **data: Any) -> web.Response:
    if wants_json(request):
        return web.json_response({"ok": True, **data})
    anchor = f"#m-{data['message_id']}" if data.get("message_id") else ""
    return see_other(_url(conversation_id) + anchor)


async def _refused(
    request: web.Request,
    code: str,
    status: int,
    draft: str | None = None,
    other: int | None = None,
) -> web.Response:
    if wants_json(request):
        return web.json_response({"ok": False, "error": code, "other": other}, status=status)
    return await show(request, status=status, error=code, draft=draft, other=other)


async def _photos(
    request: web.Request, form: Any, viewer: Viewer, conversation_id: int
) -> list[dict[str, Any]] | None:
    """The photos the reply carries (`photo` fields: ids uploaded into this conversation
    through `bot.console.photos`); None if any is not such a photo."""
    raw = [v for v in form.getall("photo", []) if isinstance(v, str)]
    if len(raw) > PHOTOS_MAX or not all(v.isdigit() and len(v) <= 18 for v in raw):
        return None
    found = []
    for photo_id in dict.fromkeys(int(v) for v in raw):
        attachment = await find_attachment(
            request.config_dict[keys.DATABASE],
            shop_id=viewer.shop_id,
            conversation_id=conversation_id,
            photo_id=photo_id,
        )
        if attachment is None:
            return None
        found.append(attachment)
    return found


def _text(form: Any) -> tuple[str, str | None]:
    text = clean_text(field(form, "text")).strip()
    if not text:
        return text, "empty"
    if len(text) > TEXT_MAX:
        return text, "too_long"
    return text, None


# --------------------------------------------------------------------------- changes


async def read(request: web.Request) -> web.Response:
    viewer = current(request)
    try:
        await request.config_dict[keys.DATABASE].write(
            conversation_changes.mark_read(viewer, object_id(request))
        )
    except changes.NotFound:
        raise web.HTTPNotFound from None
    if wants_json(request):
        return web.json_response({"ok": True})
    return see_other(_url(object_id(request)))


async def reply(request: web.Request) -> web.Response:
    viewer = current(request)
    shop = shop_of(request, viewer)
    conversation_id = object_id(request)
    form = await request.post()
    attachments = await _photos(request, form, viewer, conversation_id)
    if attachments is None:
        return await _refused(request, "bad_photo", 400, draft=field(form, "text"))
    text, problem = _text(form)
    if problem == "empty" and attachments:
        # A photo alone is a reply too, sent without words (core.replies.owner_reply gives a
        # channel that cannot carry a bare picture the least text it needs).
        problem = None
    if problem is not None:
        return await _refused(request, problem, 400, draft=text)
    unit = conversation_changes.reply(
        viewer,
        conversation_id,
        text,
        shop.delivery,
        now(request),
        nonce=nonce_of(form),
        attachments=attachments,
    )
    try:
        posted = await request.config_dict[keys.DATABASE].write(unit)
    except changes.NotFound:
        raise web.HTTPNotFound from None
    except changes.Refused as exc:
        return await _refused(request, exc.code, 409, draft=text)
    except NoPath:
        return await _refused(request, "no_path", 409, draft=text)
    path = posted.sent.path.name if posted.sent else None
    return _done(request, conversation_id, message_id=posted.message_id, path=path)


async def note(request: web.Request) -> web.Response:
    viewer = current(request)
    conversation_id = object_id(request)
    form = await request.post()
    text, problem = _text(form)
    if problem is not None:
        return await _refused(request, problem, 400, draft=text)
    unit = conversation_changes.add_note(
        viewer, conversation_id, text, now(request), nonce=nonce_of(form)
    )
    try:
        posted = await request.config_dict[keys.DATABASE].write(unit)
    except changes.NotFound:
        raise web.HTTPNotFound from None
    return _done(request, conversation_id, message_id=posted.message_id)


async def resolve(request: web.Request) -> web.Response:
    viewer = current(request)
    conversation_id = object_id(request)
    try:
        await request.config_dict[keys.DATABASE].write(
            conversation_changes.resolve(viewer, conversation_id, now(request))
        )
    except changes.NotFound:
        raise web.HTTPNotFound from None
    return _done(request, conversation_id)


async def send_again(request: web.Request) -> web.Response:
    viewer = current(request)
    conversation_id = object_id(request)
    message_id = int(request.match_info["mid"])
    try:
        await request.config_dict[keys.DATABASE].write(
            conversation_changes.send_again(viewer, conversation_id, message_id, now(request))
        )
    except changes.NotFound:
        raise web.HTTPNotFound from None
    except changes.Refused as exc:
        return await _refused(request, exc.code, 409)
    return _done(request, conversation_id, message_id=message_id)


async def reopen(request: web.Request) -> web.Response:
    viewer = current(request)
    conversation_id = object_id(request)
    try:
        await request.config_dict[keys.DATABASE].write(
            conversation_changes.reopen(viewer, conversation_id, now(request))
        )
    except changes.NotFound:
        raise web.HTTPNotFound from None
    except changes.Refused as exc:
        return await _refused(request, exc.code, 409, other=exc.other)
    return _done(request, conversation_id)


def snooze_until(choice: str, custom: str, at: datetime, tz: ZoneInfo) -> datetime | None:
    """When a snooze ends: in an hour, tomorrow 09:00 shop time, or a time picked (local,
    `YYYY-MM-DDTHH:MM` from a datetime-local field) within the next 30 days."""
    if choice == "1h":
        return at + timedelta(hours=1)
    if choice == "tomorrow":
        tomorrow = at.astimezone(tz).date() + timedelta(days=1)
        return datetime.combine(tomorrow, TOMORROW_AT, tzinfo=tz)
    if choice == "custom":
        try:
            picked = datetime.strptime(custom.strip(), "%Y-%m-%dT%H:%M").replace(tzinfo=tz)
        except ValueError:
            return None
        if at < picked <= at + SNOOZE_MAX:
            return picked
    return None


async def snooze(request: web.Request) -> web.Response:
    viewer = current(request)
    shop = shop_of(request, viewer)
    conversation_id = object_id(request)
    form = await request.post()
    at = now(request)
    until = snooze_until(field(form, "for"), field(form, "until"), at, shop.timezone)
    if until is None:
        return await _refused(request, "bad_snooze", 400)
    try:
        await request.config_dict[keys.DATABASE].write(
            conversation_changes.snooze(viewer, conversation_id, until, at)
        )
    except changes.NotFound:
        raise web.HTTPNotFound from None
    except changes.Refused as exc:
        return await _refused(request, exc.code, 409)
    return _done(request, conversation_id)


# --------------------------------------------------------------------------- owner status


async def owner_status(request: web.Request) -> web.Response:
    viewer: Viewer = current(request)
    shop = shop_of(request, viewer)
    form = await request.post()
    status = field(form, "status")
    if status not in OWNER_STATUSES:
        raise web.HTTPBadRequest(text="unknown owner status")
    at = now(request)
    until = None
    if status == "on_site":
        try:  # the CLI's rule too: a time already past today is tomorrow's
            until = busy_until(field(form, "until"), at, shop.timezone)
        except ValueError:
            raise web.HTTPBadRequest(text="until: expected HH:MM") from None
    await request.config_dict[keys.DATABASE].write(
        owner_changes.owner_status(viewer, status, until, at)
    )
    if wants_json(request):
        return web.json_response({"ok": True, "status": status})
    return see_other(safe_next(field(form, "next")))
