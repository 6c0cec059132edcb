"""A reply's photo for the outbox (core/outbox.py `PhotoResolver`): the MMS-ready copy,
made once and kept next to the original, and the photo's absolute URL."""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from bot.photos.cleaning import PhotoRejected
from bot.photos.records import public_path
from bot.photos.store import PhotoStore, is_stored_name
from core.outbox import AttachedPhoto, PhotoUnavailable


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
