"""How an advertising message must read (PROTOCOLS §4.1), and the one way to enqueue one.

The law's marking: exactly ``(광고)`` at the very start, then the sender's name; a free
opt-out method (``무료수신거부 080-…`` / ``무료거부``) on the last line. `mark_advertising`
writes it, `is_marked` checks it. They live in core, below the scheduler, because whoever
enqueues an ad (issue 14's campaigns) marks it with `ad_request`, and the send-time policy
(`scheduler.policy`) drops any ad row that is not marked before a vendor ever sees it.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from core.outbox import OutboxRequest

if TYPE_CHECKING:  # core.config imports this module for OPT_OUT_WORDS
    from core.config import ShopConfig

AD_MARK = "(광고)"  # exactly this at the very start: not [광고], (광 고), （광고） (§4.1)
OPT_OUT_WORDS = ("무료수신거부", "무료거부")  # the free opt-out, on the last line (§4.1)


class AdvertisingNotSetUp(ValueError):
    """The shop has no `[shops.advertising]` opt-out line: it cannot send ads."""


def is_marked(text: str, shop_name: str = "") -> bool:
    """Starts with exactly ``(광고)`` (and `shop_name` on that first line, when given) and
    names the free opt-out on its last non-empty line."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return (
        text.startswith(AD_MARK)
        and bool(lines)
        and shop_name in lines[0]
        and any(word in lines[-1] for word in OPT_OUT_WORDS)
    )


def mark_advertising(text: str, shop_name: str, opt_out: str) -> str:
    """`text` as an ad must read: ``(광고)`` and ``[shop_name]`` first, the free opt-out
    line (`opt_out`, e.g. "무료수신거부 080-123-4567") last. Marking twice marks once."""
    body = text.strip()
    if body.startswith(AD_MARK):
        body = body[len(AD_MARK) :].lstrip()
    if not body.startswith(f"[{shop_name}]"):
        body = f"[{shop_name}] {body}"
    lines = body.splitlines()
    if any(word in lines[-1] for word in OPT_OUT_WORDS):
        lines = lines[:-1]
    return AD_MARK + "\n".join(lines).rstrip() + "\n" + opt_out


def ad_request(
    shop: ShopConfig,
    *,
    shop_id: int,
    customer_id: int,
    purpose: str,
    provider: str,
    recipient: Mapping[str, Any],
    text: str,
    idempotency_key: str,
    now: datetime,
    service: str | None = None,
    message_id: int | None = None,
    not_before: datetime | None = None,
    payload: Mapping[str, Any] | None = None,
) -> OutboxRequest:
    """An advertising outbox row for `customer_id`, its text already marked with the shop's
    name and `[shops.advertising] opt_out_line`. `service` (a key of `[[shops.services]]`)
    is what the ad is about: the existing-customer exception is for that service only.

    Raises `AdvertisingNotSetUp` when the shop has no opt-out line configured.
    """
    if shop.advertising is None:
        raise AdvertisingNotSetUp(
            "광고를 보내려면 설정 파일의 [shops.advertising]에 opt_out_line"
            "(예: '무료수신거부 080-000-0000')을 적어 주세요"
        )
    body = dict(payload or {})
    body["text"] = mark_advertising(text, shop.name, shop.advertising.opt_out_line)
    if service is not None:
        body["service"] = service
    return OutboxRequest(
        shop_id=shop_id,
        purpose=purpose,
        provider=provider,
        recipient=recipient,
        payload=body,
        idempotency_key=idempotency_key,
        now=now,
        message_id=message_id,
        not_before=not_before,
        kind="ad",
        customer_id=customer_id,
    )
