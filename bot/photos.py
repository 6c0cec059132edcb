"""Photos: untrusted uploads in, clean JPEGs out, kept outside any static root.

`prepare` turns whatever a phone sent into a JPEG we are willing to keep: the real type is
found by decoding (the file name and Content-Type are the sender's word, not a fact), the
pixel count is checked against the header before a single pixel is decoded, the camera's
orientation is applied, and everything that is not pixels — EXIF with its GPS location,
XMP, comments, ICC — is dropped by drawing a fresh image. `for_mms` squeezes such a JPEG
under SOLAPI's MMS limits.

`PhotoStore` keeps the files under random names in the configured directory (never a
static root: they are served only through handlers that check who is asking), and
`record_photo` is the unit that writes the `photos` row.

`OutboxPhotos` hands a reply's photo to the outbox (core/outbox.py `PhotoResolver`):
the MMS-ready copy, made once and kept next to the original, and the photo's absolute URL.
"""

from __future__ import annotations

import asyncio
import functools
import io
import ipaddress
import os
import re
import secrets
import struct
import threading
import unicodedata
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import sqlalchemy as sa
from PIL import Image, ImageOps
from sqlalchemy.engine import Connection

from core.db import Database
from core.models import Conversation, Photo
from core.outbox import AttachedPhoto, PhotoUnavailable
from providers.solapi import SolapiProvider

CONTENT_TYPE = "image/jpeg"
# Stored copies fit in this box: plenty for a phone screen, a fraction of a camera's bytes.
STORE_MAX_SIDE = 2048
STORE_QUALITY = 85
# The MMS copy fits the provider that takes pictures as uploaded files — SOLAPI: its facts.
MMS_MAX_BYTES = SolapiProvider.image_max_bytes
MMS_MAX_SIZE = SolapiProvider.image_max_size
MMS_QUALITIES = (85, 75, 65, 55, 45, 35)
MMS_SHRINK = 0.8
# Decoders we let near an upload; HEIF/AVIF only where a plugin for them is installed.
WANTED_FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "HEIF", "AVIF")
# secrets.token_urlsafe(24) is 32 URL-safe characters; nothing else is ever a stored name.
STORED_NAME = re.compile(r"[A-Za-z0-9_-]{32}\.jpg")
# The MMS copy of <token>.jpg is <token>.mms.jpg: never a stored name, so never served.
MMS_SUFFIX = ".mms.jpg"
ORIGINAL_NAME_MAX = 200

# What hostile or broken input makes Pillow raise while identifying and decoding (the same
# family Pillow's own fuzzers expect). Anything else is a bug of ours and should surface.
_DECODE_ERRORS = (
    OSError,  # includes UnidentifiedImageError and truncated data
    ValueError,
    SyntaxError,
    EOFError,
    IndexError,
    struct.error,
    Image.DecompressionBombError,
    Image.DecompressionBombWarning,
)

# `warnings.catch_warnings` swaps process-wide state, so two threads decoding at once could
# leave each other's filters behind. Decoding one photo at a time also bounds peak memory
# to one image (a 40-megapixel photo is ~120 MB as RGB) — a small shop uploads a few a day.
_decode_lock = threading.Lock()


@functools.cache
def accepted_formats() -> tuple[str, ...]:
    """The formats of WANTED_FORMATS this Pillow can decode (usually not HEIF)."""
    Image.init()
    return tuple(f for f in WANTED_FORMATS if f in Image.OPEN)


class PhotoRejected(Exception):
    """An upload we will not keep; `reason_ko` is shown to the owner as it is."""

    def __init__(self, code: str, reason_ko: str) -> None:
        super().__init__(f"{code}: {reason_ko}")
        self.code = code
        self.reason_ko = reason_ko


def too_large(max_bytes: int) -> PhotoRejected:
    mb = max_bytes / (1024 * 1024)
    return PhotoRejected("too_large", f"사진이 너무 커요. {mb:.0f}MB 이하로 올려 주세요.")


def not_a_photo() -> PhotoRejected:
    return PhotoRejected(
        "not_a_photo", "사진 파일이 아니에요. JPG, PNG, WEBP, GIF 사진을 올려 주세요."
    )


def heic_unsupported() -> PhotoRejected:
    return PhotoRejected(
        "heic_unsupported",
        "HEIC 사진은 아직 받을 수 없어요. 아이폰은 설정 > 카메라 > 포맷에서 "
        "'높은 호환성'을 고르거나, 사진을 JPG로 저장해서 올려 주세요.",
    )


def too_many_pixels() -> PhotoRejected:
    return PhotoRejected(
        "too_many_pixels", "사진의 해상도가 너무 커요. 크기를 줄여서 다시 올려 주세요."
    )


def broken() -> PhotoRejected:
    return PhotoRejected("broken", "사진 파일이 손상되어 열 수 없어요. 다시 골라 주세요.")


# ISO BMFF brands of HEIF/AVIF files (bytes 8–12, after the "ftyp" box type).
_HEIF_BRANDS = (b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1", b"avif")


def _looks_like_heif(data: bytes) -> bool:
    return data[4:8] == b"ftyp" and data[8:12] in _HEIF_BRANDS


@dataclass(frozen=True)
class Prepared:
    """A clean JPEG ready to store."""

    jpeg: bytes
    width: int
    height: int


def prepare(data: bytes, *, max_bytes: int, max_pixels: int) -> Prepared:
    """Validate an upload and re-encode it as a metadata-free JPEG (raises `PhotoRejected`).

    CPU-bound and blocking: call it in an executor.
    """
    if len(data) > max_bytes:
        raise too_large(max_bytes)
    if not data:
        raise not_a_photo()
    with _decode_lock, warnings.catch_warnings():
        # Pillow's remarks about odd files are not ours to print; its bomb warning is a no.
        warnings.simplefilter("ignore")
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        image = _decode(data, max_pixels)
        try:
            return _reencode(image)
        finally:
            image.close()


def _decode(data: bytes, max_pixels: int) -> Image.Image:
    try:
        image = Image.open(io.BytesIO(data), formats=accepted_formats())
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise too_many_pixels() from None
    except _DECODE_ERRORS:
        raise (heic_unsupported() if _looks_like_heif(data) else not_a_photo()) from None
    try:
        # Only the header has been read so far: refuse a bomb before it is unpacked.
        width, height = image.size
        if width < 1 or height < 1:
            raise broken()
        if width * height > max_pixels:
            raise too_many_pixels()
        # A JPEG can be decoded at 1/2, 1/4 or 1/8 scale directly: a 48-megapixel phone
        # photo then costs a fraction of the memory and time, and we shrink it anyway.
        image.draft("RGB", (STORE_MAX_SIDE, STORE_MAX_SIDE))
        image.load()  # a GIF or animated WEBP stops at its first frame
    except PhotoRejected:
        image.close()
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        image.close()
        raise too_many_pixels() from None
    except _DECODE_ERRORS:
        image.close()
        raise broken() from None
    return image


def _reencode(image: Image.Image) -> Prepared:
    try:
        upright = ImageOps.exif_transpose(image)
    except _DECODE_ERRORS:
        upright = image  # unreadable EXIF: keep the pixels as they are rather than refuse
    try:
        rgb = _flatten(upright)
        rgb.thumbnail((STORE_MAX_SIDE, STORE_MAX_SIDE), Image.Resampling.LANCZOS)
        jpeg = _encode(rgb, STORE_QUALITY)
    except _DECODE_ERRORS:
        raise broken() from None
    return Prepared(jpeg, rgb.width, rgb.height)


def _flatten(image: Image.Image) -> Image.Image:
    """The pixels alone, as RGB on a white background, in a new image that carries no
    metadata at all (EXIF, GPS, XMP, comments, ICC live in `info`, which starts empty)."""
    clean = Image.new("RGB", image.size, "white")
    if image.has_transparency_data:
        rgba = image.convert("RGBA")
        clean.paste(rgba, mask=rgba.getchannel("A"))
    else:
        clean.paste(image.convert("RGB"))
    return clean


def _encode(image: Image.Image, quality: int) -> bytes:
    if image.info:  # belt and braces: nothing of the upload may ride along
        image.info = {}
    out = io.BytesIO()
    image.save(out, "JPEG", quality=quality, optimize=True, progressive=True)
    return out.getvalue()


def for_mms(jpeg: bytes) -> bytes:
    """A copy of one of our stored JPEGs within SOLAPI's MMS limits (`SolapiProvider`'s
    `image_max_size` and `image_max_bytes`: 1500×1440, 200 KB).

    Lowers the quality step by step first, then shrinks the picture and tries again.
    """
    with _decode_lock, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        with Image.open(io.BytesIO(jpeg), formats=("JPEG",)) as source:
            image = _flatten(source)
    image.thumbnail(MMS_MAX_SIZE, Image.Resampling.LANCZOS)
    while True:
        for quality in MMS_QUALITIES:
            out = _encode(image, quality)
            if len(out) <= MMS_MAX_BYTES:
                return out
        smaller = (max(1, int(image.width * MMS_SHRINK)), max(1, int(image.height * MMS_SHRINK)))
        image = image.resize(smaller, Image.Resampling.LANCZOS)


# --------------------------------------------------------------------------- storage


def new_stored_name() -> str:
    return secrets.token_urlsafe(24) + ".jpg"


def is_stored_name(name: str) -> bool:
    """True only for names we could have made: no dots, slashes or anything else."""
    return STORED_NAME.fullmatch(name) is not None


class PhotoStore:
    """JPEG files in one directory, each under a random name; written atomically."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).absolute()

    def path_of(self, stored_name: str) -> Path:
        if not is_stored_name(stored_name):
            raise ValueError("not a stored photo name")
        return self.root / stored_name

    def save(self, jpeg: bytes) -> str:
        """Write `jpeg` under a new random name and return the name (blocking)."""
        self._ensure_root()
        name = new_stored_name()
        self._write(self.path_of(name), jpeg)
        return name

    def mms_path_of(self, stored_name: str) -> Path:
        original = self.path_of(stored_name)
        return original.with_name(original.name.removesuffix(".jpg") + MMS_SUFFIX)

    def mms_file(self, stored_name: str) -> Path:
        """The photo's copy within SOLAPI's MMS limits (`for_mms`), made on first use and
        kept next to the original (blocking: file and CPU work).

        FileNotFoundError when the photo is gone (a copy left behind does not count);
        PhotoRejected("broken") when the stored file cannot be decoded.
        """
        original = self.path_of(stored_name)
        copy = self.mms_path_of(stored_name)
        if not original.is_file():
            raise FileNotFoundError(stored_name)
        if copy.is_file():
            return copy
        jpeg = original.read_bytes()
        try:
            smaller = for_mms(jpeg)
        except _DECODE_ERRORS:  # for_mms works in memory: these are about the picture
            raise broken() from None
        # Two senders making it at once write the same bytes; the rename is atomic.
        self._write(copy, smaller)
        return copy

    def _write(self, final: Path, data: bytes) -> None:
        tmp = self.root / f".{final.name}.{secrets.token_hex(4)}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                # On disk before the row that points at it is committed.
                os.fsync(f.fileno())
            os.replace(tmp, final)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        _fsync_dir(self.root)

    def read(self, stored_name: str) -> bytes:
        """The file's bytes (blocking); FileNotFoundError when it is gone."""
        return self.path_of(stored_name).read_bytes()

    def remove(self, stored_name: str) -> None:
        self.path_of(stored_name).unlink(missing_ok=True)
        self.mms_path_of(stored_name).unlink(missing_ok=True)

    def _ensure_root(self) -> None:
        if self.root.is_dir():
            return
        self.root.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.root.mkdir(mode=0o700)
        except FileExistsError:
            return
        self.root.chmod(0o700)  # mkdir's mode was filtered by the umask


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# --------------------------------------------------------------------------- the rows


def clean_original_name(name: str | None) -> str:
    """The upload's file name, for display only: no path, no control characters, bounded."""
    if not name:
        return ""
    base = re.split(r"[/\\]", name)[-1]
    base = "".join(ch for ch in base if unicodedata.category(ch)[0] != "C")
    return base.strip()[:ORIGINAL_NAME_MAX]


class ConversationNotFound(Exception):
    """The conversation is not this shop's (or does not exist)."""


def record_photo(
    *,
    shop_id: int,
    conversation_id: int,
    stored_name: str,
    original_name: str,
    prepared: Prepared,
    uploaded_by: int | None,
    now: datetime,
    message_id: int | None = None,
) -> Callable[[Connection], int]:
    """A unit: the `photos` row of a stored file, in a conversation of the shop; its id.
    `message_id`: the message it came with, when known now (a customer's MMS)."""

    def unit(conn: Connection) -> int:
        found = conn.execute(
            sa.select(Conversation.id).where(
                Conversation.id == conversation_id, Conversation.shop_id == shop_id
            )
        ).first()
        if found is None:
            raise ConversationNotFound(conversation_id)
        photo_id: int = conn.execute(
            sa.insert(Photo)
            .values(
                shop_id=shop_id,
                conversation_id=conversation_id,
                message_id=message_id,
                stored_name=stored_name,
                original_name=original_name,
                content_type=CONTENT_TYPE,
                width=prepared.width,
                height=prepared.height,
                size_bytes=len(prepared.jpeg),
                uploaded_by=uploaded_by,
                created_at=now,
            )
            .returning(Photo.id)
        ).scalar_one()
        return photo_id

    return unit


def link_to_message(conn: Connection, shop_id: int, photo_id: int, message_id: int) -> bool:
    """Inside the reply's unit: mark the photo as sent with that message (False: not found)."""
    result = conn.execute(
        sa.update(Photo)
        .where(Photo.id == photo_id, Photo.shop_id == shop_id)
        .values(message_id=message_id)
    )
    return bool(result.rowcount)


_ATTACHMENT = sa.select(Photo.id, Photo.stored_name, Photo.width, Photo.height).where(
    Photo.id == sa.bindparam("photo_id"),
    Photo.shop_id == sa.bindparam("shop_id"),
    Photo.conversation_id == sa.bindparam("conversation_id"),
)


async def find_attachment(
    database: Database, *, shop_id: int, conversation_id: int, photo_id: int
) -> dict[str, Any] | None:
    """The attachment for a photo uploaded into this conversation of this shop, or None
    (another shop's or another conversation's photo id is simply not found)."""
    params = {"photo_id": photo_id, "shop_id": shop_id, "conversation_id": conversation_id}
    async with database.read() as conn:
        row = (await conn.execute(_ATTACHMENT, params)).first()
    return None if row is None else attachment(row.id, row.stored_name, row.width, row.height)


def public_path(stored_name: str) -> str:
    """The customer-facing capability URL's path: whoever has it can see the photo."""
    return f"/p/{stored_name}"


def attachment(photo_id: int, stored_name: str, width: int, height: int) -> dict[str, Any]:
    """What a message's `attachments` list holds for a photo (see core/replies.py).

    `url` is relative; prefix `server.public_url` where a vendor needs an absolute
    https URL (Kakao simpleImage, Twilio MediaUrl).
    """
    return {
        "photo_id": photo_id,
        "url": public_path(stored_name),
        "width": width,
        "height": height,
        "content_type": CONTENT_TYPE,
    }


# --------------------------------------------------------------------------- the outbox


def stored_name_of(found: Mapping[str, Any]) -> str | None:
    """The stored name behind an `attachment()`'s URL, or None if it names none of ours."""
    url = found.get("url")
    if not isinstance(url, str) or not url.startswith("/p/"):
        return None
    name = url.removeprefix("/p/")
    return name if is_stored_name(name) else None


def public_photo_url(public_url: str | None, stored_name: str) -> str | None:
    """The photo's absolute customer URL — `server.public_url` + `/p/<name>` — or None when
    nobody outside could open it: no public URL, not http(s), or this machine only
    (localhost, 127.0.0.1: the default for a demo). Vendors and customers get no link then.
    """
    if not public_url:
        return None
    parts = urlsplit(public_url)
    host = parts.hostname or ""
    if parts.scheme not in ("http", "https") or not host:
        return None
    if host == "localhost" or host.endswith(".localhost"):
        return None
    try:
        if ipaddress.ip_address(host).is_loopback:
            return None
    except ValueError:
        pass  # a name, not an address
    return public_url.rstrip("/") + public_path(stored_name)


class OutboxPhotos:
    """The outbox's photo resolver (core/outbox.py `PhotoResolver`) for one store.

    Wiring: ``Dispatcher(..., photos=OutboxPhotos(PhotoStore(settings.storage.path),
    settings.server.public_url))``.
    """

    def __init__(self, store: PhotoStore, public_url: str | None) -> None:
        self.store = store
        self.public_url = public_url

    async def __call__(self, found: Mapping[str, Any], with_file: bool) -> AttachedPhoto:
        name = stored_name_of(found)
        if name is None:
            raise PhotoUnavailable("the attachment names no stored photo")
        url = public_photo_url(self.public_url, name)
        if not with_file:
            if not await asyncio.to_thread(self.store.path_of(name).is_file):
                raise PhotoUnavailable(f"photo {found.get('photo_id')}: the file is gone")
            return AttachedPhoto(None, url)
        try:
            path = await asyncio.to_thread(self.store.mms_file, name)
        except FileNotFoundError:
            raise PhotoUnavailable(f"photo {found.get('photo_id')}: the file is gone") from None
        except PhotoRejected:
            raise PhotoUnavailable(f"photo {found.get('photo_id')}: cannot be decoded") from None
        return AttachedPhoto(str(path), url)
