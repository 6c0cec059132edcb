"""Photos customers send by MMS: fetched from the vendor and kept like the owner's photos.

Twilio hands over an inbound MMS as links (`MediaUrl0…`, behind the account's credentials;
PROTOCOLS §5.1). The webhook stores them with the message, in its payload's `extra`
(`bot.inbound.with_attachments`), so nothing is lost if we stop. `fetch_photos` then
downloads each image, cleans it exactly like an owner's upload
(`bot.photos.cleaning.prepare`: decoded, location and other metadata dropped, re-encoded),
stores it, and records the result on the message in one unit: a `photos` row per picture,
`payload.attachments` (the shape owner photos have, so the console shows both alike) and
`payload.media`, one outcome per link, `{"photo_id": …}` or `{"error": "<reason>"}`. A
message with `media` is done: a second run stores nothing twice.

It runs once the webhook's message is committed, and at start-up for the messages of the
last days that a stop interrupted. Network trouble and Twilio's 5xx are tried five times
over some fifteen seconds; then the link is recorded with its reason, which the console shows.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from aiohttp import web
from sqlalchemy.engine import Connection
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from bot import keys
from bot.inbound import attachment_links
from bot.photos.cleaning import PhotoRejected, Prepared, prepare
from bot.photos.records import attachment, record_photo
from bot.photos.store import PhotoStore
from core.delivery import status_changed
from core.models import Message
from providers.base import Provider, ProviderError, TransientError
from providers.twilio import TwilioProvider

log = logging.getLogger(__name__)

LOOK_BACK = timedelta(days=3)  # start-up: how far back an interrupted fetch is picked up
# Network trouble and 5xx: five tries, 1 + 2 + 4 + 8 s apart (tests replace the wait).
ATTEMPTS = 5
RETRY_WAIT = wait_exponential(multiplier=1, max=10)


@dataclass(frozen=True)
class Pending:
    """A customer's message whose links have not been fetched yet."""

    message_id: int
    shop_id: int
    conversation_id: int
    provider: str
    links: tuple[tuple[str, str], ...]  # (url, content type)


@dataclass(frozen=True)
class Kept:
    stored_name: str
    prepared: Prepared


Result = Kept | str  # a kept photo, or why the link gave none


def pending_of(message_id: int, shop_id: int, conversation_id: int, payload: Any) -> Pending | None:
    """The message's links still to fetch, or None (none, or fetched already)."""
    if not isinstance(payload, dict) or "media" in payload:
        return None
    extra = payload.get("extra")
    links = attachment_links(extra)
    if not links:
        return None
    assert isinstance(extra, dict)
    provider = str(extra.get("provider") or "")
    return Pending(message_id, shop_id, conversation_id, provider, tuple(links))


_MESSAGE = sa.select(Message.id, Message.shop_id, Message.conversation_id, Message.payload)
_RECENT_SMS = _MESSAGE.where(
    Message.direction == "in",
    Message.channel == "sms",
    Message.created_at >= sa.bindparam("since"),
).order_by(Message.id)


async def fetch_photos(app: web.Application, message_id: int) -> None:
    """Fetch the photos of one stored message (after the webhook's commit)."""
    async with app[keys.DATABASE].read() as conn:
        row = (await conn.execute(_MESSAGE.where(Message.id == message_id))).first()
    if row is None:
        return
    pending = pending_of(row.id, row.shop_id, row.conversation_id, row.payload)
    if pending is not None:
        await _fetch(app, pending)


async def fetch_interrupted(app: web.Application) -> None:
    """At start-up: the recent messages whose photos a stop left unfetched."""
    since = app[keys.CLOCK].now() - LOOK_BACK
    async with app[keys.DATABASE].read() as conn:
        rows = (await conn.execute(_RECENT_SMS, {"since": since})).all()
    for row in rows:
        pending = pending_of(row.id, row.shop_id, row.conversation_id, row.payload)
        if pending is not None:
            await _fetch(app, pending)


async def _fetch(app: web.Application, pending: Pending) -> None:
    provider = app[keys.PROVIDERS].get(pending.provider)
    store = PhotoStore(app[keys.SETTINGS].storage.path)
    results: list[Result] = []
    try:
        for url, kind in pending.links:
            results.append(await _one(app, provider, store, url, kind))
    except BaseException:
        # Stopped before anything was recorded (shutdown cancels fetches): the photos saved
        # so far are nobody's, and the next start fetches the message again.
        for photo in results:
            if isinstance(photo, Kept):
                store.remove(photo.stored_name)
        raise
    kept = [r for r in results if isinstance(r, Kept)]
    unit = record_media(pending, results, app[keys.CLOCK].now())
    if await app[keys.DATABASE].write(unit):
        log.info("customer photos: %d of %d kept", len(kept), len(results))
        return
    for photo in kept:  # another run recorded this message first: ours are spare copies
        await asyncio.get_running_loop().run_in_executor(None, store.remove, photo.stored_name)


async def _one(
    app: web.Application, provider: Provider | None, store: PhotoStore, url: str, kind: str
) -> Result:
    """One link: a stored photo, or the reason there is none."""
    if not kind.startswith("image/"):
        return f"사진이 아닌 첨부({kind or '형식 모름'})는 받아오지 않아요"
    if not isinstance(provider, TwilioProvider):
        return "첨부를 받아올 Twilio 설정이 없어요"
    limits = app[keys.SETTINGS].storage
    loop = asyncio.get_running_loop()
    try:
        data = await _retrying(lambda: provider.fetch_media(url, max_bytes=limits.max_upload_bytes))
        prepared = await loop.run_in_executor(
            None,
            functools.partial(
                prepare, data, max_bytes=limits.max_upload_bytes, max_pixels=limits.max_pixels
            ),
        )
    except ProviderError as exc:
        log.warning("customer photos: not fetched: %s", exc.describe())
        return exc.reason
    except PhotoRejected as exc:
        return exc.reason_ko
    return Kept(await loop.run_in_executor(None, store.save, prepared.jpeg), prepared)


async def _retrying(fetch: Callable[[], Any]) -> bytes:
    async for attempt in AsyncRetrying(
        retry=retry_if_exception_type(TransientError),
        wait=RETRY_WAIT,
        stop=stop_after_attempt(ATTEMPTS),
        reraise=True,
    ):
        with attempt:
            data: bytes = await fetch()
            return data
    raise AssertionError("unreachable")  # pragma: no cover


def record_media(
    pending: Pending, results: list[Result], now: datetime
) -> Callable[[Connection], bool]:
    """A unit: the photos rows and the message's `attachments` and `media`, and the consoles
    told after the commit; False when the message was recorded already (nothing is written
    then)."""

    def unit(conn: Connection) -> bool:
        payload = conn.execute(
            sa.select(Message.payload).where(Message.id == pending.message_id)
        ).scalar_one()
        if not isinstance(payload, dict) or "media" in payload:
            return False
        attachments: list[dict[str, Any]] = []
        media: list[dict[str, Any]] = []
        for result in results:
            if isinstance(result, str):
                media.append({"error": result})
                continue
            photo_id = record_photo(
                shop_id=pending.shop_id,
                conversation_id=pending.conversation_id,
                stored_name=result.stored_name,
                original_name="MMS",
                prepared=result.prepared,
                uploaded_by=None,
                now=now,
                message_id=pending.message_id,
            )(conn)
            p = result.prepared
            attachments.append(attachment(photo_id, result.stored_name, p.width, p.height))
            media.append({"photo_id": photo_id})
        conn.execute(
            sa.update(Message)
            .where(Message.id == pending.message_id)
            .values(payload={**payload, "attachments": attachments, "media": media})
        )
        status_changed(pending.shop_id, pending.message_id, "received")  # the photos show
        return True

    return unit
