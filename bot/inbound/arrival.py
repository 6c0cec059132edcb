"""What a webhook hands over: an arriving message (`Arrival`), its fingerprint for spotting
resends (`digest_of`, `digest_of_body`), and the links to its attachments kept in `extra`."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from core.config import ShopConfig


@dataclass(frozen=True)
class Arrival:
    """An inbound message as the webhook understood it."""

    shop: ShopConfig
    shop_id: int
    channel: str  # kakao | simulator | sms
    identities: tuple[tuple[str, str], ...]  # (kind, value); the first one is looked up
    text: str
    digest: str  # fingerprint of the request, for resend detection
    received_at: datetime
    extra: Mapping[str, str] = field(default_factory=dict)


def with_attachments(links: list[tuple[str, str]]) -> dict[str, str]:
    """The `extra` entries for a message's attachment links, (url, content type) each: the
    links wait there, stored with the message, until `bot.customer_photos` fetches them."""
    if not links:
        return {}
    return {
        "media_urls": "\n".join(url for url, _ in links),
        "media_types": "\n".join(kind for _, kind in links),
    }


def attachment_links(extra: Any) -> list[tuple[str, str]]:
    """The (url, content type) links `with_attachments` put in `extra`; [] for none."""
    if not isinstance(extra, Mapping) or not extra.get("media_urls"):
        return []
    urls = str(extra["media_urls"]).split("\n")
    kinds = str(extra.get("media_types") or "").split("\n")
    return list(zip(urls, kinds + [""] * (len(urls) - len(kinds)), strict=False))


def digest_of(shop_id: int, payload: Any) -> str:
    """Fingerprint of a parsed payload (key order and spacing do not matter)."""
    canonical = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(f"{shop_id}\n{canonical}".encode()).hexdigest()


def digest_of_body(shop_id: int, body: bytes) -> str:
    """Fingerprint of a request body as received: a resend repeats the same bytes, and
    hashing them costs a fraction of re-serialising the parsed payload."""
    return hashlib.sha256(b"%d\n%s" % (shop_id, body)).hexdigest()
