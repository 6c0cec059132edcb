"""Untrusted image bytes in, clean JPEGs out.

`prepare` turns whatever a phone sent into a JPEG we are willing to keep: the real type is
found by decoding (the file name and Content-Type are the sender's word, not a fact), the
pixel count is checked against the header before a single pixel is decoded, the camera's
orientation is applied, and everything that is not pixels — EXIF with its GPS location,
XMP, comments, ICC — is dropped by drawing a fresh image. `for_mms` squeezes such a JPEG
under SOLAPI's MMS limits.
"""

from __future__ import annotations

import functools
import io
import struct
import threading
import warnings
from dataclasses import dataclass

from PIL import Image, ImageOps

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

# What hostile or broken input makes Pillow raise while identifying and decoding (the same
# family Pillow's own fuzzers expect). Anything else is a bug of ours and should surface.
DECODE_ERRORS = (
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
    except DECODE_ERRORS:
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
    except DECODE_ERRORS:
        image.close()
        raise broken() from None
    return image


def _reencode(image: Image.Image) -> Prepared:
    try:
        upright = ImageOps.exif_transpose(image)
    except DECODE_ERRORS:
        upright = image  # unreadable EXIF: keep the pixels as they are rather than refuse
    try:
        rgb = _flatten(upright)
        rgb.thumbnail((STORE_MAX_SIDE, STORE_MAX_SIDE), Image.Resampling.LANCZOS)
        jpeg = _encode(rgb, STORE_QUALITY)
    except DECODE_ERRORS:
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
