"""Photos: validation and re-encoding (pure), storage, and the upload/serve handlers on the
real app factory, SQLite and PostgreSQL. Every test image is made here with Pillow."""

from __future__ import annotations

import asyncio
import io
import os
import random
import re
import stat
import struct
import time
import zlib
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import sqlalchemy as sa
from aiohttp import web
from aiohttp.test_utils import TestClient
from conftest import make_settings, shop_table
from PIL import ExifTags, Image
from support.console import add, cookie, login, page_csrf, use_session
from support.photos import encode, phone_photo

from bot import keys
from bot.app import create_app
from bot.photos import store as photo_store
from bot.photos.cleaning import MMS_MAX_BYTES, PhotoRejected, for_mms, prepare
from bot.photos.outbox import OutboxPhotos, public_photo_url, stored_name_of
from bot.photos.records import attachment, clean_original_name, find_attachment
from bot.photos.store import PhotoStore, is_stored_name
from core.clock import FrozenClock
from core.config import ConfigError, parse
from core.models import Conversation, Customer, Photo
from core.outbox import PhotoUnavailable

Client = TestClient[web.Request, web.Application]
LIMITS = {"max_bytes": 15 * 1024 * 1024, "max_pixels": 40_000_000}
UPLOAD_LIMIT = 300_000  # the app tests' max_upload_bytes
REPO = Path(__file__).resolve().parents[2]
STATIC_DIRS = [REPO / "bot" / "console" / "static", REPO / "bot" / "simulator" / "static"]


pytestmark = pytest.mark.usefixtures("cheap_hasher")


# --------------------------------------------------------------------------- test images


def noisy(width: int, height: int, seed: int = 7) -> Image.Image:
    """Random pixels: the worst case for JPEG's size."""
    return Image.frombytes(
        "RGB", (width, height), random.Random(seed).randbytes(width * height * 3)
    )


def png_claiming(width: int, height: int) -> bytes:
    """A valid-looking PNG of a few dozen bytes whose header claims width × height pixels."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\0" * 1024))
        + chunk(b"IEND", b"")
    )


def opened(jpeg: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(jpeg))
    assert image.format == "JPEG"
    return image


def rejected(data: bytes, **limits: int) -> PhotoRejected:
    with pytest.raises(PhotoRejected) as info:
        prepare(data, **{**LIMITS, **limits})
    return info.value


# --------------------------------------------------------------------------- prepare


def test_a_phone_photo_comes_out_upright_and_without_any_metadata() -> None:
    original = phone_photo()
    assert Image.open(io.BytesIO(original)).getexif().get_ifd(ExifTags.IFD.GPSInfo)

    out = prepare(original, **LIMITS)

    image = opened(out.jpeg)
    assert (out.width, out.height) == image.size == (300, 400)  # turned upright
    top, bottom = image.getpixel((150, 10)), image.getpixel((150, 390))
    assert isinstance(top, tuple)
    assert isinstance(bottom, tuple)
    assert top[2] > 200 > top[0]  # the blue half is on top after a 90° clockwise turn
    assert bottom[0] > 200 > bottom[2]
    assert not image.getexif()
    assert "exif" not in image.info
    assert "icc_profile" not in image.info
    assert "comment" not in image.info
    # No APP1 (EXIF/XMP), APP2 (ICC) or COM segment at all; the scan data never contains
    # 0xFF followed by these bytes, so their absence anywhere is conclusive.
    for marker in (b"\xff\xe1", b"\xff\xe2", b"\xff\xfe"):
        assert marker not in out.jpeg
    for trace in (b"Exif", b"samsung", b"SM-S928N", b"home of the customer", b"ICC"):
        assert trace not in out.jpeg
    assert struct.pack(">II", 37, 1) not in out.jpeg  # the latitude's first rational


def test_big_photos_are_stored_at_most_2048_pixels_a_side() -> None:
    big = Image.new("RGB", (4096, 3072), (10, 120, 200))
    out = prepare(encode(big, "JPEG"), **LIMITS)
    assert (out.width, out.height) == (2048, 1536)
    assert opened(out.jpeg).size == (2048, 1536)


def test_a_png_with_transparency_becomes_a_jpeg_on_white() -> None:
    image = Image.new("RGBA", (100, 80), (0, 0, 0, 0))
    image.paste((0, 128, 0, 255), (0, 0, 50, 80))
    out = prepare(encode(image, "PNG"), **LIMITS)
    jpeg = opened(out.jpeg)
    assert jpeg.mode == "RGB"
    assert (out.width, out.height) == (100, 80)
    left, right = jpeg.getpixel((20, 40)), jpeg.getpixel((80, 40))
    assert isinstance(left, tuple)
    assert isinstance(right, tuple)
    assert left[1] > 100 > left[0]  # the opaque green stays
    assert min(right) > 240  # transparency became white, not black


@pytest.mark.parametrize(
    ("fmt", "params"),
    [
        ("WEBP", {}),
        ("GIF", {}),
        ("PNG", {}),
        ("JPEG", {"quality": 60}),
    ],
)
def test_common_formats_are_accepted(fmt: str, params: dict[str, Any]) -> None:
    image = Image.new("RGB", (64, 48), (200, 30, 30))
    out = prepare(encode(image, fmt, **params), **LIMITS)
    assert opened(out.jpeg).size == (64, 48)


def test_an_animated_gif_keeps_its_first_frame() -> None:
    frames = [Image.new("P", (32, 32), colour) for colour in (1, 2, 3)]
    data = encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100)
    out = prepare(data, **LIMITS)
    assert (out.width, out.height) == (32, 32)


@pytest.mark.parametrize(
    "data",
    [
        b"Hello, this is a text file renamed to photo.jpg\n" * 20,
        b"<svg xmlns='http://www.w3.org/2000/svg'><script>alert(1)</script></svg>",
        b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n",
        b"",
    ],
    ids=["text", "svg", "pdf", "empty"],
)
def test_what_is_not_a_photo_is_refused(data: bytes) -> None:
    exc = rejected(data)
    assert exc.code == "not_a_photo"
    assert exc.reason_ko.startswith("사진 파일이 아니에요")


def test_a_bmp_or_tiff_is_not_decoded_at_all() -> None:
    # Pillow could read them, but we only let the decoders phones need near an upload.
    image = Image.new("RGB", (16, 16))
    assert rejected(encode(image, "BMP")).code == "not_a_photo"
    assert rejected(encode(image, "TIFF")).code == "not_a_photo"


def test_heic_gets_its_own_explanation() -> None:
    # The start of an iPhone photo: an ISO BMFF "ftyp" box with the heic brand.
    heic = b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + b"\x00" * 64
    exc = rejected(heic)
    assert exc.code == "heic_unsupported"
    assert "HEIC" in exc.reason_ko


def test_a_truncated_photo_is_refused() -> None:
    whole = encode(noisy(200, 200), "JPEG")
    exc = rejected(whole[: len(whole) // 2])
    assert exc.code == "broken"


@pytest.mark.parametrize(
    ("width", "height"),
    [(50_000, 50_000), (7000, 7000), (1_000_000, 50)],
    ids=["beyond-pillow", "beyond-config", "long-strip"],
)
def test_a_decompression_bomb_is_refused_before_decoding(width: int, height: int) -> None:
    bomb = png_claiming(width, height)
    assert len(bomb) < 200
    started = time.perf_counter()
    exc = rejected(bomb)
    # Decoding 2.5 gigapixels would take minutes and 7.5 GB; the header alone takes nothing.
    assert time.perf_counter() - started < 0.5
    assert exc.code == "too_many_pixels"
    assert "해상도" in exc.reason_ko


def test_a_jpeg_bomb_is_refused_too() -> None:
    # A real, tiny, single-colour JPEG of 8000×6000 pixels: under max_bytes, over max_pixels.
    data = encode(Image.new("L", (8000, 6000)), "JPEG", quality=1)
    assert len(data) < 1_000_000
    assert rejected(data).code == "too_many_pixels"


def test_the_pixel_limit_is_exact() -> None:
    fits = encode(Image.new("RGB", (100, 100)), "PNG")
    assert prepare(fits, max_bytes=10**6, max_pixels=10_000).width == 100
    assert rejected(fits, max_pixels=9_999).code == "too_many_pixels"


def test_too_many_bytes_are_refused_before_decoding() -> None:
    data = phone_photo()
    exc = rejected(data, max_bytes=len(data) - 1)
    assert exc.code == "too_large"
    assert exc.reason_ko.startswith("사진이 너무 커요")
    assert prepare(data, **{**LIMITS, "max_bytes": len(data)}).width == 300


def test_pillows_global_limits_are_left_alone() -> None:
    before = Image.MAX_IMAGE_PIXELS
    rejected(png_claiming(50_000, 50_000))
    prepare(phone_photo(), **LIMITS)
    assert before == Image.MAX_IMAGE_PIXELS


# --------------------------------------------------------------------------- for_mms


@pytest.mark.parametrize(("width", "height"), [(4000, 3000), (3000, 4000)])
def test_for_mms_meets_solapis_limits_even_for_noise(width: int, height: int) -> None:
    stored = prepare(encode(noisy(width, height), "JPEG", quality=95), **LIMITS)
    mms = for_mms(stored.jpeg)
    assert len(mms) <= MMS_MAX_BYTES
    image = opened(mms)
    assert image.width <= 1500
    assert image.height <= 1440
    assert image.width >= 600  # shrunk only as far as needed
    assert not image.getexif()


def test_for_mms_keeps_a_small_photo_as_it_is_sized() -> None:
    small = prepare(phone_photo(), **LIMITS)
    mms = for_mms(small.jpeg)
    assert opened(mms).size == (300, 400)
    assert len(mms) <= MMS_MAX_BYTES


# --------------------------------------------------------------------------- storage


def test_the_store_writes_random_names_privately(tmp_path: Path) -> None:
    store = PhotoStore(tmp_path / "deep" / "uploads")
    first = store.save(b"\xff\xd8 first")
    second = store.save(b"\xff\xd8 second")
    assert first != second
    assert is_stored_name(first)
    assert is_stored_name(second)
    assert stat.S_IMODE(store.root.stat().st_mode) == 0o700
    assert stat.S_IMODE((store.root / first).stat().st_mode) == 0o600
    assert sorted(p.name for p in store.root.iterdir()) == sorted([first, second])  # no .tmp
    assert store.read(first) == b"\xff\xd8 first"


@pytest.mark.parametrize(
    "name",
    [
        "../../etc/passwd",
        "..",
        "",
        "a" * 32 + ".jpg/",
        "a" * 32 + ".JPG",
        "a" * 31 + ".jpg",
        "a" * 33 + ".jpg",
        "a" * 31 + "/.jpg",
        "a" * 31 + "..jpg",
        "a" * 32 + ".jpg\n",
        "a" * 32 + ".png",
        "%2e%2e%2f" + "a" * 23 + ".jpg",
    ],
)
def test_only_names_we_make_reach_the_disk(name: str, tmp_path: Path) -> None:
    assert not is_stored_name(name)
    with pytest.raises(ValueError, match="not a stored photo name"):
        PhotoStore(tmp_path).path_of(name)


def test_original_names_are_for_display_only() -> None:
    assert clean_original_name("../../etc/passwd") == "passwd"
    assert clean_original_name("C:\\Users\\kim\\사진.jpg") == "사진.jpg"
    assert clean_original_name("a\x00b\r\nc.jpg") == "abc.jpg"
    assert clean_original_name(None) == ""
    assert len(clean_original_name("가" * 500)) == 200


def test_the_attachment_points_at_the_capability_url() -> None:
    name = "A" * 32 + ".jpg"
    assert attachment(7, name, 300, 400) == {
        "photo_id": 7,
        "url": f"/p/{name}",
        "width": 300,
        "height": 400,
        "content_type": "image/jpeg",
    }


# --------------------------------------------------------------------------- for the outbox


def test_the_mms_copy_is_made_once_next_to_the_original(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = PhotoStore(tmp_path / "uploads")
    name = store.save(prepare(encode(noisy(2400, 1600), "JPEG", quality=95), **LIMITS).jpeg)
    made: list[int] = []

    def counted(jpeg: bytes) -> bytes:
        made.append(len(jpeg))
        return for_mms(jpeg)

    monkeypatch.setattr(photo_store, "for_mms", counted)
    copy = store.mms_file(name)
    assert store.mms_file(name) == copy
    assert len(made) == 1
    assert copy.parent == store.root
    assert copy.name == name.removesuffix(".jpg") + ".mms.jpg"
    assert not is_stored_name(copy.name)  # never served by /p/
    assert stat.S_IMODE(copy.stat().st_mode) == 0o600
    data = copy.read_bytes()
    assert len(data) <= MMS_MAX_BYTES
    image = opened(data)
    assert image.width <= 1500
    assert image.height <= 1440
    assert sorted(p.name for p in store.root.iterdir()) == sorted([name, copy.name])  # no .tmp

    store.remove(name)
    assert list(store.root.iterdir()) == []
    with pytest.raises(FileNotFoundError):
        store.mms_file(name)


def test_a_left_over_copy_does_not_bring_a_photo_back(tmp_path: Path) -> None:
    store = PhotoStore(tmp_path)
    name = store.save(prepare(phone_photo(), **LIMITS).jpeg)
    copy = store.mms_file(name)
    store.path_of(name).unlink()  # the original went some other way
    assert copy.exists()
    with pytest.raises(FileNotFoundError):
        store.mms_file(name)


def test_an_undecodable_stored_file_is_broken_for_mms(tmp_path: Path) -> None:
    store = PhotoStore(tmp_path)
    name = store.save(b"\xff\xd8\xff not a picture after all")
    with pytest.raises(PhotoRejected) as info:
        store.mms_file(name)
    assert info.value.code == "broken"
    assert not store.mms_path_of(name).exists()


@pytest.mark.parametrize(
    ("public_url", "expected"),
    [
        ("https://hanbit.example", "https://hanbit.example/p/{name}"),
        ("https://hanbit.example/", "https://hanbit.example/p/{name}"),
        ("https://hanbit.example/dangol", "https://hanbit.example/dangol/p/{name}"),
        ("http://192.168.0.10:8080", "http://192.168.0.10:8080/p/{name}"),
        ("http://127.0.0.1:8080", None),  # the default: this machine only
        ("http://[::1]:8080", None),
        ("http://localhost:8080", None),
        ("http://shop.localhost", None),
        ("ftp://hanbit.example", None),
        ("hanbit.example", None),
        ("", None),
        (None, None),
    ],
)
def test_the_public_photo_url(public_url: str | None, expected: str | None) -> None:
    name = "B" * 32 + ".jpg"
    found = public_photo_url(public_url, name)
    assert found == (expected.format(name=name) if expected else None)


def test_stored_names_come_only_from_our_own_attachments() -> None:
    name = "C" * 32 + ".jpg"
    assert stored_name_of(attachment(1, name, 10, 10)) == name
    for url in (f"/x/{name}", "/p/../../etc/passwd", f"https://evil.example/p/{name}", None, 7):
        assert stored_name_of({"url": url}) is None


async def test_the_outbox_resolver(tmp_path: Path) -> None:
    store = PhotoStore(tmp_path)
    name = store.save(prepare(phone_photo(), **LIMITS).jpeg)
    resolve = OutboxPhotos(store, "https://hanbit.example")
    found = attachment(3, name, 300, 400)

    with_file = await resolve(found, True)
    assert with_file.path == str(store.mms_path_of(name))
    assert with_file.url == f"https://hanbit.example/p/{name}"
    link_only = await resolve(found, False)
    assert (link_only.path, link_only.url) == (None, with_file.url)
    assert (await OutboxPhotos(store, "http://127.0.0.1:8080")(found, True)).url is None

    store.remove(name)
    for wanted in (True, False):
        with pytest.raises(PhotoUnavailable, match="photo 3: the file is gone"):
            await resolve(found, wanted)
    with pytest.raises(PhotoUnavailable):
        await resolve({"url": "/p/nope.jpg"}, True)
    broken_name = store.save(b"\xff\xd8\xff broken")
    with pytest.raises(PhotoUnavailable, match="cannot be decoded"):
        await resolve(attachment(4, broken_name, 1, 1), True)


# --------------------------------------------------------------------------- config


def test_storage_settings_default_and_resolve_relative_to_the_file(tmp_path: Path) -> None:
    from conftest import settings_dict

    settings = parse(settings_dict(), "test.toml")
    assert settings.storage.path == "var/uploads"
    assert settings.storage.max_upload_bytes == 15 * 1024 * 1024
    assert settings.storage.max_pixels == 40_000_000

    data = settings_dict(storage={"path": "files/photos", "max_upload_bytes": 5_000_000})
    settings = parse(data, str(tmp_path / "dangol.toml"), tmp_path)
    assert settings.storage.path == str(tmp_path / "files" / "photos")
    assert settings.storage.max_upload_bytes == 5_000_000


@pytest.mark.parametrize(
    ("storage", "message"),
    [
        ({"max_pixels": 100_000_000}, "storage.max_pixels: must be at most 89478485"),
        ({"max_upload_bytes": 10}, "storage.max_upload_bytes: must be at least 1024"),
        ({"path": " "}, "storage.path: must not be empty"),
        ({"paht": "x"}, "storage.paht: unknown key (did you mean 'path'?)"),
    ],
)
def test_storage_mistakes_are_named(storage: dict[str, Any], message: str) -> None:
    from conftest import settings_dict

    with pytest.raises(ConfigError, match=re.escape(message)):
        parse(settings_dict(storage=storage), "test.toml")


# --------------------------------------------------------------------------- the app


@pytest.fixture
def uploads(tmp_path: Path) -> Path:
    return tmp_path / "uploads"


@pytest.fixture
def make_client(
    db_url: tuple[str, str | None], clock: FrozenClock, aiohttp_client: Any, uploads: Path
) -> Callable[..., Awaitable[Client]]:
    """The real app with two shops and uploads in a temporary directory."""
    url, schema = db_url

    async def make(**sections: Any) -> Client:
        database = {"url": url, **({"schema": schema} if schema else {})}
        sections.setdefault("storage", {"path": str(uploads), "max_upload_bytes": UPLOAD_LIMIT})
        shops = [shop_table(), shop_table(slug="other", name="다른설비")]
        settings = make_settings(url, database=database, shops=shops, **sections)
        client: Client = await aiohttp_client(create_app(settings, clock=clock))
        return client

    return make


@pytest.fixture
async def client(make_client: Callable[..., Awaitable[Client]]) -> Client:
    return await make_client()


async def conversation_in(client: Client, shop: str) -> int:
    app = client.app
    assert app is not None
    shop_id = app[keys.SHOP_IDS][shop]
    now = app[keys.CLOCK].now()

    def unit(conn: sa.Connection) -> int:
        customer_id = conn.execute(
            sa.insert(Customer)
            .values(shop_id=shop_id, name="고객", created_at=now)
            .returning(Customer.id)
        ).scalar_one()
        conversation_id: int = conn.execute(
            sa.insert(Conversation)
            .values(
                shop_id=shop_id,
                customer_id=customer_id,
                channel="simulator",
                last_message_at=now,
                created_at=now,
            )
            .returning(Conversation.id)
        ).scalar_one()
        return conversation_id

    return await app[keys.DATABASE].write(unit)


async def signed_in_as(client: Client, username: str, shop: str) -> tuple[str, str]:
    """Log `username` (of `shop`) in; returns (session cookie, CSRF token)."""
    use_session(client, None)
    await add(client, username, shop=shop)
    resp = await login(client, username)
    assert resp.status == 303
    token = cookie(client, "dangol_session")
    assert token
    return token, await page_csrf(client)


def photo_form(data: bytes, filename: str = "IMG_0001.jpg") -> aiohttp.FormData:
    form = aiohttp.FormData()
    form.add_field("photo", data, filename=filename, content_type="image/jpeg")
    return form


async def upload(client: Client, conversation_id: int, csrf: str | None, data: bytes) -> Any:
    headers = {"X-CSRF-Token": csrf} if csrf is not None else {}
    return await client.post(
        f"/console/c/{conversation_id}/photos",
        data=photo_form(data),
        headers=headers,
        allow_redirects=False,
    )


async def photo_rows(client: Client) -> list[Any]:
    assert client.app is not None
    async with client.app[keys.DATABASE].read() as conn:
        return list((await conn.execute(sa.select(Photo).order_by(Photo.id))).all())


def stored_files(uploads: Path) -> list[Path]:
    return sorted(uploads.iterdir()) if uploads.exists() else []


async def test_an_owner_uploads_a_photo_and_sees_it(client: Client, uploads: Path) -> None:
    conversation_id = await conversation_in(client, "hanbit")
    _, csrf = await signed_in_as(client, "kim", "hanbit")

    resp = await upload(client, conversation_id, csrf, phone_photo())
    assert resp.status == 201, await resp.text()
    body = await resp.json()
    assert body == {
        "id": body["id"],
        "url": f"/console/photos/{body['id']}",
        "width": 300,
        "height": 400,
    }

    (photo,) = await photo_rows(client)
    assert photo.conversation_id == conversation_id
    assert photo.original_name == "IMG_0001.jpg"
    assert photo.content_type == "image/jpeg"
    assert (photo.width, photo.height) == (300, 400)
    assert photo.uploaded_by is not None
    assert photo.message_id is None

    # The file: under the configured directory, a random name, not the upload's.
    (path,) = stored_files(uploads)
    assert path.name == photo.stored_name
    assert is_stored_name(path.name)
    assert "IMG_0001" not in path.name
    assert photo.size_bytes == path.stat().st_size
    for static in STATIC_DIRS:
        assert not path.resolve().is_relative_to(static.resolve())
    assert not path.resolve().is_relative_to(REPO)  # nowhere near the package either

    shown = await client.get(body["url"])
    assert shown.status == 200
    assert shown.headers["Content-Type"] == "image/jpeg"
    assert shown.headers["X-Content-Type-Options"] == "nosniff"
    assert shown.headers["Content-Disposition"] == f'inline; filename="photo-{photo.id}.jpg"'
    # Never for shared caches. (The console's middleware may tighten it to no-store.)
    cache = shown.headers["Cache-Control"]
    assert "public" not in cache
    assert "private" in cache or "no-store" in cache
    served = await shown.read()
    assert served == path.read_bytes()
    assert not opened(served).getexif()


async def test_an_upload_needs_the_csrf_header(client: Client, uploads: Path) -> None:
    conversation_id = await conversation_in(client, "hanbit")
    _, csrf = await signed_in_as(client, "kim", "hanbit")
    for token in (None, "wrong"):
        resp = await upload(client, conversation_id, token, phone_photo())
        assert resp.status == 403
    # The form field does not count for a photo either: the header is the way.
    form = photo_form(phone_photo())
    form.add_field("csrf", "wrong")
    resp = await client.post(f"/console/c/{conversation_id}/photos", data=form)
    assert resp.status == 403
    assert await photo_rows(client) == []
    assert stored_files(uploads) == []
    assert (await upload(client, conversation_id, csrf, phone_photo())).status == 201


async def test_a_stranger_is_sent_to_the_login_page(client: Client, uploads: Path) -> None:
    conversation_id = await conversation_in(client, "hanbit")
    resp = await upload(client, conversation_id, "anything", phone_photo())
    assert resp.status == 303
    assert resp.headers["Location"].startswith("/console/login")
    assert stored_files(uploads) == []


async def test_another_shops_conversation_does_not_exist(client: Client, uploads: Path) -> None:
    theirs = await conversation_in(client, "other")
    _, csrf = await signed_in_as(client, "kim", "hanbit")
    resp = await upload(client, theirs, csrf, phone_photo())
    assert resp.status == 404
    assert (await resp.json())["error"] == "not_found"
    resp = await upload(client, 999_999, csrf, phone_photo())
    assert resp.status == 404
    assert await photo_rows(client) == []
    assert stored_files(uploads) == []


async def test_another_shops_photo_does_not_exist(client: Client) -> None:
    ours = await conversation_in(client, "hanbit")
    kim_session, kim_csrf = await signed_in_as(client, "kim", "hanbit")
    resp = await upload(client, ours, kim_csrf, phone_photo())
    url = (await resp.json())["url"]

    await signed_in_as(client, "lee", "other")
    resp = await client.get(url, allow_redirects=False)
    assert resp.status == 404
    assert (await client.get("/console/photos/999999")).status == 404

    use_session(client, None)
    resp = await client.get(url, allow_redirects=False)
    assert resp.status == 303
    assert resp.headers["Location"].startswith("/console/login")

    use_session(client, kim_session)
    assert (await client.get(url)).status == 200


async def test_what_is_not_a_photo_gets_a_korean_reason(client: Client, uploads: Path) -> None:
    conversation_id = await conversation_in(client, "hanbit")
    _, csrf = await signed_in_as(client, "kim", "hanbit")
    resp = await upload(client, conversation_id, csrf, b"just text, named .jpg\n" * 10)
    assert resp.status == 415
    body = await resp.json()
    assert body["error"] == "not_a_photo"
    assert body["message"].startswith("사진 파일이 아니에요")

    resp = await upload(client, conversation_id, csrf, png_claiming(50_000, 50_000))
    assert resp.status == 413
    assert (await resp.json())["error"] == "too_many_pixels"

    form = aiohttp.FormData(default_to_multipart=True)
    form.add_field("note", "사진 없이")
    resp = await client.post(
        f"/console/c/{conversation_id}/photos", data=form, headers={"X-CSRF-Token": csrf}
    )
    assert resp.status == 400
    assert (await resp.json())["error"] == "no_photo"
    assert await photo_rows(client) == []
    assert stored_files(uploads) == []


async def test_an_upload_over_the_limit_is_refused_while_it_arrives(
    client: Client, uploads: Path
) -> None:
    conversation_id = await conversation_in(client, "hanbit")
    _, csrf = await signed_in_as(client, "kim", "hanbit")
    big = encode(noisy(400, 400), "PNG")
    assert len(big) > UPLOAD_LIMIT
    resp = await upload(client, conversation_id, csrf, big)
    assert resp.status == 413
    body = await resp.json()
    assert body["error"] == "too_large"
    assert body["message"].startswith("사진이 너무 커요")
    assert stored_files(uploads) == []


async def raw_exchange(client: Client, head: str, body: bytes) -> bytes:
    """Send a request's head and the start of its body, never the rest; return what the
    server answers meanwhile (its status line and headers)."""
    reader, writer = await asyncio.open_connection(client.host, client.port)
    try:
        writer.write(head.encode() + body)
        await writer.drain()
        return await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=10)
    finally:
        writer.close()


def raw_head(client: Client, conversation_id: int, csrf: str, framing: str) -> str:
    session = cookie(client, "dangol_session")
    return (
        f"POST /console/c/{conversation_id}/photos HTTP/1.1\r\n"
        f"Host: {client.host}:{client.port}\r\n"
        f"Cookie: dangol_session={session}\r\n"
        f"X-CSRF-Token: {csrf}\r\n"
        "Content-Type: multipart/form-data; boundary=XyZ\r\n"
        f"{framing}\r\n"
        "\r\n"
    )


PART_HEAD = (
    b"--XyZ\r\n"
    b'Content-Disposition: form-data; name="photo"; filename="big.jpg"\r\n'
    b"Content-Type: image/jpeg\r\n\r\n"
)


async def test_a_declared_length_over_the_limit_is_refused_before_reading(
    client: Client,
) -> None:
    conversation_id = await conversation_in(client, "hanbit")
    _, csrf = await signed_in_as(client, "kim", "hanbit")
    head = raw_head(client, conversation_id, csrf, "Content-Length: 50000000")
    # 50 MB announced, a few bytes sent: the answer cannot have waited for the rest.
    answer = await raw_exchange(client, head, PART_HEAD + b"\xff\xd8\xff")
    assert answer.startswith(b"HTTP/1.1 413 ")


async def test_a_chunked_upload_is_cut_off_at_the_limit(client: Client, uploads: Path) -> None:
    conversation_id = await conversation_in(client, "hanbit")
    _, csrf = await signed_in_as(client, "kim", "hanbit")
    head = raw_head(client, conversation_id, csrf, "Transfer-Encoding: chunked")
    payload = PART_HEAD + os.urandom(UPLOAD_LIMIT + 100_000)
    chunked = b"".join(
        b"%x\r\n%s\r\n" % (len(piece), piece)
        for piece in (payload[i : i + 32_768] for i in range(0, len(payload), 32_768))
    )
    # The body never ends (no closing chunk, no closing boundary), yet the answer comes.
    answer = await raw_exchange(client, head, chunked)
    assert answer.startswith(b"HTTP/1.1 413 ")
    assert stored_files(uploads) == []


async def test_the_customer_link_serves_the_photo_sandboxed(client: Client) -> None:
    conversation_id = await conversation_in(client, "hanbit")
    _, csrf = await signed_in_as(client, "kim", "hanbit")
    photo_id = (await (await upload(client, conversation_id, csrf, phone_photo())).json())["id"]
    (photo,) = await photo_rows(client)
    assert photo.id == photo_id

    use_session(client, None)  # the customer has no session
    resp = await client.get(f"/p/{photo.stored_name}")
    assert resp.status == 200
    assert resp.headers["Content-Type"] == "image/jpeg"
    assert resp.headers["Content-Security-Policy"] == "default-src 'none'; sandbox"
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert resp.headers["Content-Disposition"] == 'inline; filename="photo.jpg"'
    assert "public" not in resp.headers["Cache-Control"]
    assert resp.headers["Referrer-Policy"] == "no-referrer"
    assert opened(await resp.read()).size == (300, 400)

    head = await client.head(f"/p/{photo.stored_name}")
    assert head.status == 200


@pytest.mark.parametrize(
    "path",
    [
        "/p/../../etc/passwd",
        "/p/..%2F..%2Fetc%2Fpasswd",
        "/p/%2e%2e%2f%2e%2e%2fetc%2fpasswd",
        "/p/..%5c..%5cetc%5cpasswd",
        "/p/" + "A" * 32 + ".jpg%00",
        "/p/" + "A" * 32 + ".jpg%2F..",
        "/p/" + "A" * 31 + "$.jpg",
        "/p/" + "A" * 32 + ".jpeg",
        "/p/" + "A" * 32 + ".jpg",  # the right shape, but no such photo
        "/p/",
        "/p/.jpg",
    ],
)
async def test_the_customer_link_only_knows_real_names(client: Client, path: str) -> None:
    conversation_id = await conversation_in(client, "hanbit")
    _, csrf = await signed_in_as(client, "kim", "hanbit")
    assert (await upload(client, conversation_id, csrf, phone_photo())).status == 201
    use_session(client, None)
    resp = await client.get(path, allow_redirects=False)
    assert resp.status == 404
    assert resp.headers.get("Content-Type") != "image/jpeg"


async def test_the_attachment_is_found_only_in_its_own_conversation(client: Client) -> None:
    ours = await conversation_in(client, "hanbit")
    another = await conversation_in(client, "hanbit")
    _, csrf = await signed_in_as(client, "kim", "hanbit")
    photo_id = (await (await upload(client, ours, csrf, phone_photo())).json())["id"]
    (photo,) = await photo_rows(client)
    app = client.app
    assert app is not None
    database, shops = app[keys.DATABASE], app[keys.SHOP_IDS]

    found = await find_attachment(
        database, shop_id=shops["hanbit"], conversation_id=ours, photo_id=photo_id
    )
    assert found == attachment(photo_id, photo.stored_name, 300, 400)
    for shop, conversation in (("hanbit", another), ("other", ours)):
        assert (
            await find_attachment(
                database, shop_id=shops[shop], conversation_id=conversation, photo_id=photo_id
            )
            is None
        )
    # The customer fetches exactly the attachment's URL.
    use_session(client, None)
    assert found is not None
    assert (await client.get(found["url"])).status == 200


def test_mms_limits_are_the_providers_facts() -> None:
    """Issue 12 item 5: the limits are written once, on the provider that uploads files."""
    from bot.photos import cleaning as photos
    from providers.solapi import SolapiProvider
    from providers.twilio import TwilioProvider

    assert (SolapiProvider.image_max_bytes, SolapiProvider.image_max_size) == (
        200_000,
        (1500, 1440),
    )
    assert (
        SolapiProvider.image_max_bytes,
        SolapiProvider.image_max_size,
    ) == (photos.MMS_MAX_BYTES, photos.MMS_MAX_SIZE)
    assert TwilioProvider.image_max_bytes is None  # Twilio fetches the picture by its URL
