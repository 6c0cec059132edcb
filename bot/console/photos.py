"""Photo upload and delivery.

- `POST /console/c/{conversation_id}/photos` — the owner uploads a photo into a conversation
  of their shop. The body is streamed (`request.multipart()`) and counted as it arrives; past
  `storage.max_upload_bytes` the answer is 413 at once, nothing more is kept. The CSRF token
  must come in the `X-CSRF-Token` header: a form field would make the CSRF middleware read
  the whole body first. Answers JSON `{id, url, width, height}` (201).
- `GET /console/photos/{id}` — the stored JPEG, for the signed-in users of the photo's shop.
- `GET /p/{stored_name}` — on the main app, for the customer the photo was sent to (Kakao's
  simpleImage, Twilio MMS by URL and the simulator fetch it without a session). The name is
  the capability: 192 random bits, accepted only in exactly the shape we generate.

Wiring: `setup(app)` in `console_app()`, `setup_public(app)` in `create_app()`.
"""

from __future__ import annotations

import asyncio
import functools
import logging

import sqlalchemy as sa
from aiohttp import BodyPartReader, web

from bot import keys
from bot.console.viewer import current
from bot.photos.cleaning import CONTENT_TYPE, PhotoRejected, prepare, too_large
from bot.photos.records import ConversationNotFound, clean_original_name, record_photo
from bot.photos.store import PhotoStore, is_stored_name
from core.config import Settings
from core.models import Conversation, Photo

log = logging.getLogger(__name__)

UPLOAD_FIELD = "photo"
# A browser's form has the file and perhaps a field or two; nothing needs more.
MAX_PARTS = 4
SMALL_FIELD_MAX = 4096
CHUNK = 64 * 1024
# Boundaries and part headers around the file: a Content-Length past the limit plus this
# cannot be a photo we would take, and is refused before a byte of it is read.
MULTIPART_OVERHEAD = 16 * 1024

UPLOAD_ROUTE = "console_photo_upload"
PHOTO_ROUTE = "console_photo"
PUBLIC_ROUTE = "public_photo"

# The photo is the whole document: even opened directly it can run nothing, load nothing.
PUBLIC_CSP = "default-src 'none'; sandbox"
CACHE_CONTROL = "private, max-age=3600"

STATUS_FOR = {
    "too_large": 413,
    "too_many_pixels": 413,
    "not_a_photo": 415,
    "heic_unsupported": 415,
    "broken": 422,
}


def no_photo() -> PhotoRejected:
    return PhotoRejected("no_photo", "올릴 사진을 골라 주세요.")


def bad_form() -> PhotoRejected:
    return PhotoRejected("bad_form", "사진을 받지 못했어요. 다시 올려 주세요.")


def setup(console: web.Application) -> None:
    """Register the console's photo routes (call in `console_app()`)."""
    console.router.add_post(r"/c/{conversation_id:\d{1,18}}/photos", upload, name=UPLOAD_ROUTE)
    console.router.add_get(r"/photos/{photo_id:\d{1,18}}", show, name=PHOTO_ROUTE)


def setup_public(app: web.Application) -> None:
    """Register the customer-facing `/p/{name}` (call in `create_app()`)."""
    app.router.add_get("/p/{name}", public_photo, name=PUBLIC_ROUTE)


def store_for(settings: Settings) -> PhotoStore:
    return PhotoStore(settings.storage.path)


# --------------------------------------------------------------------------- upload


async def upload(request: web.Request) -> web.Response:
    viewer = current(request)
    settings = request.config_dict[keys.SETTINGS]
    database = request.config_dict[keys.DATABASE]
    limits = settings.storage
    conversation_id = int(request.match_info["conversation_id"])
    loop = asyncio.get_running_loop()

    # Before reading any of the body: whose conversation is it, and could this fit at all?
    stmt = sa.select(Conversation.id).where(
        viewer.scope(Conversation.shop_id), Conversation.id == conversation_id
    )
    async with database.read() as conn:
        if (await conn.execute(stmt)).first() is None:
            return _error(404, "not_found", "대화를 찾을 수 없어요.")
    length = request.content_length
    if length is not None and length > limits.max_upload_bytes + MULTIPART_OVERHEAD:
        return _rejected(too_large(limits.max_upload_bytes))
    if request.content_type != "multipart/form-data":
        return _rejected(bad_form(), status=400)

    try:
        data, filename = await _read_upload(request, limits.max_upload_bytes)
        # Decoding is CPU work of up to a second: off the event loop.
        prepared = await loop.run_in_executor(
            None,
            functools.partial(
                prepare, data, max_bytes=limits.max_upload_bytes, max_pixels=limits.max_pixels
            ),
        )
    except PhotoRejected as exc:
        log.info("console: photo refused (%s) for conversation %d", exc.code, conversation_id)
        return _rejected(exc)
    del data

    store = store_for(settings)
    stored_name = await loop.run_in_executor(None, store.save, prepared.jpeg)
    unit = record_photo(
        shop_id=viewer.shop_id,
        conversation_id=conversation_id,
        stored_name=stored_name,
        original_name=clean_original_name(filename),
        prepared=prepared,
        uploaded_by=viewer.user_id,
        now=request.config_dict[keys.CLOCK].now(),
    )
    try:
        photo_id = await database.write(unit)
    except BaseException as exc:
        # No row points at the file: it must not stay behind.
        await loop.run_in_executor(None, store.remove, stored_name)
        if isinstance(exc, ConversationNotFound):  # gone between the check and the write
            return _error(404, "not_found", "대화를 찾을 수 없어요.")
        raise
    url = request.app.router[PHOTO_ROUTE].url_for(photo_id=str(photo_id))
    return web.json_response(
        {"id": photo_id, "url": str(url), "width": prepared.width, "height": prepared.height},
        status=201,
    )


async def _read_upload(request: web.Request, max_bytes: int) -> tuple[bytes, str | None]:
    """The bytes and file name of the `photo` part, read while counting (never more than
    `max_bytes` of it is held); other small fields are read and dropped."""
    try:
        reader = await request.multipart()
        for _ in range(MAX_PARTS):
            part = await reader.next()
            if part is None:
                break
            if not isinstance(part, BodyPartReader):  # a multipart inside the multipart
                raise bad_form()
            if part.name == UPLOAD_FIELD:
                return await _read_part(part, max_bytes), part.filename
            await _read_part(part, SMALL_FIELD_MAX)
    except ValueError:  # a malformed body: boundaries, headers
        raise bad_form() from None
    raise no_photo()


async def _read_part(part: BodyPartReader, limit: int) -> bytes:
    received = bytearray()
    while chunk := await part.read_chunk(CHUNK):
        received += chunk
        if len(received) > limit:
            raise too_large(limit)
    return bytes(received)


def _rejected(exc: PhotoRejected, *, status: int | None = None) -> web.Response:
    return _error(status or STATUS_FOR.get(exc.code, 400), exc.code, exc.reason_ko)


def _error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": code, "message": message}, status=status)


# --------------------------------------------------------------------------- serving


async def show(request: web.Request) -> web.Response:
    """The photo for a user of its shop; any other photo id does not exist (404)."""
    viewer = current(request)
    photo_id = int(request.match_info["photo_id"])
    stmt = sa.select(Photo.stored_name).where(viewer.scope(Photo.shop_id), Photo.id == photo_id)
    async with request.config_dict[keys.DATABASE].read() as conn:
        stored_name = (await conn.execute(stmt)).scalar_one_or_none()
    if stored_name is None:
        raise web.HTTPNotFound
    body = await _read_stored(request, stored_name)
    return _jpeg(body, f"photo-{photo_id}.jpg")


async def public_photo(request: web.Request) -> web.Response:
    """The photo by its capability name, for the customer it was sent to."""
    name = request.match_info["name"]
    if not is_stored_name(name):  # nothing but our own token shape ever reaches the disk
        raise web.HTTPNotFound
    stmt = sa.select(Photo.id).where(Photo.stored_name == name)
    async with request.config_dict[keys.DATABASE].read() as conn:
        if (await conn.execute(stmt)).first() is None:
            raise web.HTTPNotFound
    body = await _read_stored(request, name)
    response = _jpeg(body, "photo.jpg")
    response.headers["Content-Security-Policy"] = PUBLIC_CSP
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["X-Robots-Tag"] = "noindex, nofollow"
    return response


async def _read_stored(request: web.Request, stored_name: str) -> bytes:
    store = store_for(request.config_dict[keys.SETTINGS])
    loop = asyncio.get_running_loop()
    try:
        return await loop.run_in_executor(None, store.read, stored_name)
    except FileNotFoundError:
        log.warning("photo file missing from %s (row exists)", store.root)
        raise web.HTTPNotFound from None


def _jpeg(body: bytes, filename: str) -> web.Response:
    headers = {
        "Content-Type": CONTENT_TYPE,
        "X-Content-Type-Options": "nosniff",
        "Content-Disposition": f'inline; filename="{filename}"',
        "Cache-Control": CACHE_CONTROL,
    }
    return web.Response(body=body, headers=headers)
