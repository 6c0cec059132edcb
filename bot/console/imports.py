"""Customer import (owner only; staff get 403): 고객 → 목록 가져오기.

- `GET /console/customers/import` — the upload form and the format.
- `POST /console/customers/import` — the file. Streamed and counted like a photo
  (`bot/console/photos.py`): past `storage.max_upload_bytes` it is refused at once (a
  Content-Length beyond it before a byte is read). The page's script sends the CSRF token
  as the X-CSRF-Token header so the body is never read whole by the CSRF middleware; without
  the script the form's `csrf` field works for files within `server.max_body_bytes`. A file
  that cannot be read is refused with its Korean reason; one that can is kept server-side
  (`import_uploads`) and the browser goes to its preview.
- `GET /console/customers/import/{id}` — the preview: counts, the first rows as they will be
  imported, every refused row and why.
- `POST /console/customers/import/{id}` — 가져오기: the kept file planned again; imported in
  one transaction when the plan is the one previewed (`core.importing.unit`).
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Mapping
from datetime import date
from urllib.parse import unquote

from aiohttp import BodyPartReader, web

from bot import keys
from bot.console.import_uploads import UploadStore
from bot.console.layout import field, now, page, shop_of, wants_json
from bot.console.middleware import see_other
from bot.console.queries.header import read_header
from bot.console.render import static_url
from bot.console.viewer import Viewer, require_owner
from bot.photos.records import clean_original_name
from core.config import ShopConfig
from core.config.services import Services
from core.importing import FileRefused, Plan, plan_import, read_sheet
from core.importing.reading import too_large
from core.importing.sample import COLUMNS
from core.importing.unit import Outcome, assess, import_customers

log = logging.getLogger(__name__)

UPLOAD_FIELD = "file"
MAX_PARTS = 4
SMALL_FIELD_MAX = 4096
CHUNK = 64 * 1024
MULTIPART_OVERHEAD = 16 * 1024
PREVIEW_LINES = 20
BASE = "/console/customers/import"

STATUS_FOR = {"too_large": 413, "no_file": 400, "bad_form": 400}


def setup(app: web.Application) -> None:
    """Register the import's routes on the console sub-app (call in `console_app()`)."""
    app.router.add_get("/customers/import", form, name="console_import")
    app.router.add_post("/customers/import", upload, name="console_import_upload")
    app.router.add_get(r"/customers/import/{upload:[A-Za-z0-9_-]{32}}", preview)
    app.router.add_post(r"/customers/import/{upload:[A-Za-z0-9_-]{32}}", confirm)


def store_of(request: web.Request) -> UploadStore:
    return UploadStore(request.config_dict[keys.SETTINGS].storage.path)


async def _page(
    request: web.Request, viewer: Viewer, template: str, *, status: int = 200, **context: object
) -> web.Response:
    shop = shop_of(request, viewer)
    async with request.config_dict[keys.DATABASE].read() as conn:
        header = await read_header(conn, viewer, now(request), shop.timezone)
    return page(
        request,
        template,
        viewer=viewer,
        header=header,
        status=status,
        nav="customers",
        import_js_url=static_url(request, "import.js"),
        **context,
    )


async def form(request: web.Request) -> web.Response:
    viewer = require_owner(request)
    return await _show_form(request, viewer)


async def _show_form(
    request: web.Request, viewer: Viewer, *, error: str | None = None, status: int = 200
) -> web.Response:
    limit = request.config_dict[keys.SETTINGS].storage.max_upload_bytes
    return await _page(
        request,
        viewer,
        "import.html",
        status=status,
        error=error,
        columns=COLUMNS,
        max_mb=f"{limit / (1024 * 1024):g}",
    )


def _refused(exc: FileRefused) -> tuple[int, str]:
    return STATUS_FOR.get(exc.code, 415 if exc.code == "not_a_sheet" else 400), exc.message


async def _answer_refusal(request: web.Request, viewer: Viewer, exc: FileRefused) -> web.Response:
    status, message = _refused(exc)
    log.info("console: customer list refused (%s) for shop %d", exc.code, viewer.shop_id)
    if wants_json(request):
        return web.json_response({"error": exc.code, "message": message}, status=status)
    return await _show_form(request, viewer, error=message, status=status)


async def upload(request: web.Request) -> web.Response:
    viewer = require_owner(request)
    limit = request.config_dict[keys.SETTINGS].storage.max_upload_bytes
    length = request.content_length
    try:
        if length is not None and length > limit + MULTIPART_OVERHEAD:
            raise too_large(limit)
        if request.content_type != "multipart/form-data":
            raise FileRefused("bad_form", "파일을 받지 못했어요. 다시 올려 주세요.")
        data, filename = await _read_upload(request, limit)
        # Reading a workbook is CPU work: off the event loop. Only whether it reads at all
        # is decided here; the rows are checked on the preview.
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, _check_readable, data, shop_of(request, viewer))
    except FileRefused as exc:
        return await _answer_refusal(request, viewer, exc)
    # Some clients send a name percent-encoded (RFC 5987); browsers send it as UTF-8.
    name = clean_original_name(unquote(filename) if filename else None) or "customers"
    upload_id = await asyncio.get_running_loop().run_in_executor(
        None, store_of(request).save, viewer.shop_id, viewer.user_id, name, data, now(request)
    )
    target = f"{BASE}/{upload_id}"
    if wants_json(request):
        return web.json_response({"location": target}, status=201)
    return see_other(target)


def _check_readable(data: bytes, shop: ShopConfig) -> None:
    _plan(data, shop.services, date.min)  # raises FileRefused


def _plan(data: bytes, services: Services, today: date) -> Plan:
    return plan_import(read_sheet(data), services, today)


async def _read_upload(request: web.Request, limit: int) -> tuple[bytes, str | None]:
    if "X-CSRF-Token" not in request.headers:
        # The CSRF middleware has read the form already (within server.max_body_bytes).
        return _from_form(await request.post())
    try:
        reader = await request.multipart()
        for _ in range(MAX_PARTS):
            part = await reader.next()
            if part is None:
                break
            if not isinstance(part, BodyPartReader):
                raise FileRefused("bad_form", "파일을 받지 못했어요. 다시 올려 주세요.")
            if part.name == UPLOAD_FIELD:
                return await _read_part(part, limit), part.filename
            await _read_part(part, SMALL_FIELD_MAX)
    except FileRefused:
        raise
    except ValueError:  # a malformed body: boundaries, headers
        raise FileRefused("bad_form", "파일을 받지 못했어요. 다시 올려 주세요.") from None
    raise _no_file()


def _no_file() -> FileRefused:
    return FileRefused("no_file", "올릴 파일을 골라 주세요.")


def _from_form(posted: Mapping[str, object]) -> tuple[bytes, str | None]:
    item = posted.get(UPLOAD_FIELD)
    if not isinstance(item, web.FileField):
        raise _no_file()
    return item.file.read(), item.filename


async def _read_part(part: BodyPartReader, limit: int) -> bytes:
    received = bytearray()
    while chunk := await part.read_chunk(CHUNK):
        received += chunk
        if len(received) > limit:
            raise too_large(limit)
    return bytes(received)


async def _planned(request: web.Request, viewer: Viewer) -> tuple[str, str, Plan] | None:
    """The kept upload's id, file name and plan; None when it is gone or expired."""
    shop = shop_of(request, viewer)
    loop = asyncio.get_running_loop()
    kept = await loop.run_in_executor(
        None, store_of(request).load, request.match_info["upload"], viewer.shop_id, now(request)
    )
    if kept is None:
        return None
    today = now(request).astimezone(shop.timezone).date()
    plan = await loop.run_in_executor(
        None, functools.partial(_plan, kept.data, shop.services, today)
    )
    return kept.id, kept.file_name, plan


async def _gone(request: web.Request, viewer: Viewer) -> web.Response:
    return await _show_form(
        request,
        viewer,
        error="올린 파일이 만료됐거나 찾을 수 없어요(1시간 동안 보관해요). 다시 올려 주세요.",
        status=404,
    )


async def preview(request: web.Request, *, note: str | None = None) -> web.Response:
    viewer = require_owner(request)
    shop = shop_of(request, viewer)
    try:
        found = await _planned(request, viewer)
    except FileRefused as exc:  # the catalogue changed so that … cannot happen; be plain
        return await _answer_refusal(request, viewer, exc)
    if found is None:
        return await _gone(request, viewer)
    upload_id, file_name, plan = found
    async with request.config_dict[keys.DATABASE].read() as conn:
        outcome = await conn.run_sync(
            lambda c: assess(c, viewer.shop_id, plan, shop.timezone, now(request))
        )
    return await _page(
        request,
        viewer,
        "import_preview.html",
        status=409 if note else 200,
        upload_id=upload_id,
        file_name=file_name,
        plan=plan,
        outcome=outcome,
        lines=plan.lines[:PREVIEW_LINES],
        note=note,
    )


async def confirm(request: web.Request) -> web.Response:
    viewer = require_owner(request)
    shop = shop_of(request, viewer)
    posted = await request.post()
    try:
        found = await _planned(request, viewer)
    except FileRefused as exc:
        return await _answer_refusal(request, viewer, exc)
    if found is None:
        return await _gone(request, viewer)
    upload_id, file_name, plan = found
    if field(posted, "plan") != plan.digest():
        return await preview(
            request,
            note="미리보기 뒤에 서비스 목록이나 날짜가 바뀌어 가져올 내용이 달라졌어요. "
            "아래 내용을 다시 확인해 주세요.",
        )
    unit = import_customers(
        viewer.shop_id,
        plan,
        shop.services,
        file_name=file_name,
        actor=viewer.actor,
        tz=shop.timezone,
        now=now(request),
        tiers=shop.tiers,
    )
    outcome: Outcome = await request.config_dict[keys.DATABASE].write(unit)
    await asyncio.get_running_loop().run_in_executor(None, store_of(request).remove, upload_id)
    log.info("console: customer list imported for shop %d: %s", viewer.shop_id, outcome)
    return await _page(
        request, viewer, "import_done.html", file_name=file_name, outcome=outcome, plan=plan
    )
