"""The picture of an MMS, checked before it is uploaded: SOLAPI's limits are facts of
`SolapiProvider` (`image_formats`, `image_max_bytes`, `image_max_size`), passed in here.

The picture is read by Pillow, which only parses the header to tell the format and size;
no pixel is decoded.
"""

from __future__ import annotations

import io
import os
import struct

from PIL import Image

from providers.base import PermanentError

# What a broken or hostile file makes Pillow raise while reading a header (the family
# Pillow's own fuzzers expect); a declared size too large to be a photo is one of them.
_NOT_A_PICTURE = (
    OSError,  # includes UnidentifiedImageError and truncated data
    ValueError,
    SyntaxError,
    EOFError,
    IndexError,
    struct.error,
    Image.DecompressionBombError,
    Image.DecompressionBombWarning,  # raised only where warnings are errors (tests)
)


def jpeg_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) of a JPEG; None if `data` is not one."""
    try:
        with Image.open(io.BytesIO(data), formats=("JPEG",)) as image:
            width, height = image.size
    except _NOT_A_PICTURE:
        return None
    return (width, height) if width and height else None


def read_mms_image(path: str, max_bytes: int, max_size: tuple[int, int]) -> bytes:
    """The bytes of a JPEG within `max_bytes` and `max_size` (width, height), or a
    PermanentError saying why not (blocking: run it in a thread)."""
    limit = f"문자(MMS)는 최대 {max_bytes // 1000}KB"
    try:
        size = os.stat(path).st_size
        if size > max_bytes:
            raise PermanentError(
                f"사진 파일이 너무 커요 ({size / 1000:.0f}KB, {limit})", code="image_too_large"
            )
        with open(path, "rb") as f:
            data = f.read(max_bytes + 1)
    except FileNotFoundError:
        raise PermanentError("보낼 사진 파일을 찾을 수 없어요", code="image_missing") from None
    except OSError as exc:
        raise PermanentError(
            f"보낼 사진 파일을 읽을 수 없어요 ({type(exc).__name__})", code="image_unreadable"
        ) from None
    if len(data) > max_bytes:  # grew after the stat
        raise PermanentError(f"사진 파일이 너무 커요 ({limit})", code="image_too_large")
    found = jpeg_size(data)
    if found is None:
        raise PermanentError("문자(MMS)에는 JPG 사진만 보낼 수 있어요", code="image_not_jpeg")
    width, height = found
    if width > max_size[0] or height > max_size[1]:
        raise PermanentError(
            f"사진이 너무 커요 ({width}×{height}, 문자(MMS)는 최대 {max_size[0]}×{max_size[1]})",
            code="image_dimensions",
        )
    return data
