"""Pictures as customers' phones make them, for the photo tests."""

from __future__ import annotations

import io
from typing import Any

from PIL import ExifTags, Image


def encode(image: Image.Image, fmt: str, **params: Any) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **params)
    return out.getvalue()


# A GPS position in Seoul, as a phone writes it.
LATITUDE = (37.0, 33.0, 59.123)
LONGITUDE = (126.0, 58.0, 40.456)


def phone_photo(width: int = 400, height: int = 300) -> bytes:
    """What a phone camera sends: sensor-oriented pixels, EXIF orientation 6 (rotate 90°
    clockwise to view), the GPS position, the phone's make and model, a comment, an ICC
    profile. The left half is blue and the right half red, to see the rotation."""
    image = Image.new("RGB", (width, height), (255, 0, 0))
    image.paste((0, 0, 255), (0, 0, width // 2, height))
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = 6
    exif[ExifTags.Base.Make] = "samsung"
    exif[ExifTags.Base.Model] = "SM-S928N"
    exif[ExifTags.IFD.GPSInfo] = {
        ExifTags.GPS.GPSLatitudeRef: "N",
        ExifTags.GPS.GPSLatitude: LATITUDE,
        ExifTags.GPS.GPSLongitudeRef: "E",
        ExifTags.GPS.GPSLongitude: LONGITUDE,
    }
    return encode(
        image,
        "JPEG",
        exif=exif.tobytes(),
        comment=b"home of the customer",
        icc_profile=b"not really an ICC profile but carried all the same",
        quality=95,
    )
