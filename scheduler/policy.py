"""The send-time policy: may this message go to this customer now? (DESIGN §3, PROTOCOLS §4)

One pure function, `decide`, asked for every message when it is about to go — by the
dispatcher for each outbox row it claims and by the journey planner for a step it is about
to send — never when it is planned: consent, complaints and the clock change in between.
It answers `SendNow`, `Hold(until)` or `Drop(reason)`; the callers do the rest.

The rules, in the law's words where it has them:
- Information (a booking, an ETA, the work's photos, aftercare for that job, the
  satisfaction check, replies) is never dropped for want of consent. What is urgent goes at
  once; the rest waits for the shop's courtesy hours (09:00–20:00 by default).
- Advertising needs marketing consent, or the existing-customer exception: the same kind of
  service bought within the last 6 months (§50① and its decree), unless the person refused.
  An opt-out drops it at once. It never goes 21:00–08:00 without separate night consent
  (§50③), nor outside courtesy hours, and waits while the customer has an open complaint.
  It must start with exactly ``(광고)`` and the shop's name and end with a free opt-out line:
  `mark_advertising` writes that, `is_marked` checks it, and an unmarked ad is dropped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from core.config import ShopConfig

AD_MARK = "(광고)"  # exactly this at the very start: not [광고], (광 고), （광고） (§4.1)
OPT_OUT_WORDS = ("무료수신거부", "무료거부")  # the free opt-out, on the last line (§4.1)
# The law's night ban: no advertising 21:00–08:00 without separate consent (§50③).
NIGHT_BAN = (time(21), time(8))
EXISTING_CUSTOMER_MONTHS = 6  # the decree's period after the transaction ended
# While a complaint is open an ad waits; it is asked about again this often.
COMPLAINT_RECHECK = timedelta(hours=1)


@dataclass(frozen=True)
class Outgoing:
    """What is about to go: its kind and, for an ad, the service it is about."""

    kind: Literal["info", "ad"]
    urgent: bool = False  # information that cannot wait (confirmation, ETA, a reply)
    text: str = ""
    service: str | None = None  # an ad about this service (the existing-customer exception)


@dataclass(frozen=True)
class Recipient:
    """What is known about the customer when the message is about to go.

    `marketing` and `night` are the latest word on each consent: True (given), False
    (refused or withdrawn — an opt-out, 수신거부, STOP, a vendor's report) or None (never
    asked). `purchases` maps a service key to when the customer's last job of it was done.
    """

    marketing: bool | None = None
    night: bool | None = None
    complaint_open: bool = False
    purchases: dict[str, datetime] = field(default_factory=dict)


@dataclass(frozen=True)
class ShopRules:
    zone: ZoneInfo
    courtesy_opens: time = time(9)
    courtesy_closes: time = time(20)


def rules_for(shop: ShopConfig) -> ShopRules:
    """The shop's side of the policy: its time zone and `[shops.journey]` courtesy hours."""
    return ShopRules(
        zone=shop.timezone,
        courtesy_opens=shop.journey.courtesy_opens,
        courtesy_closes=shop.journey.courtesy_closes,
    )


@dataclass(frozen=True)
class SendNow:
    pass


@dataclass(frozen=True)
class Hold:
    until: datetime
    reason: str


@dataclass(frozen=True)
class Drop:
    reason: str
    code: str  # no_consent | opted_out | unmarked


Decision = SendNow | Hold | Drop
SEND_NOW = SendNow()


def decide(message: Outgoing, to: Recipient | None, shop: ShopRules, now: datetime) -> Decision:
    """May `message` go to `to` (None: the owner, or no customer) at `now`?"""
    if message.kind == "info":
        if message.urgent:
            return SEND_NOW
        return _within(shop.courtesy_opens, shop.courtesy_closes, shop, now, "안내 시간")
    if to is None:
        return Drop("광고를 받을 고객이 없어요", "no_consent")
    if to.marketing is False:
        return Drop("고객이 광고 수신을 거부했어요", "opted_out")
    if not to.marketing and not _recent_buyer(message.service, to, now):
        return Drop(
            "광고 수신 동의가 없어요 (최근 6개월 안에 같은 서비스 이용도 없음)", "no_consent"
        )
    if not is_marked(message.text):
        return Drop(
            "광고 메시지는 '(광고)'로 시작하고 무료 수신거부 안내로 끝나야 해요", "unmarked"
        )
    if to.complaint_open:
        return Hold(now + COMPLAINT_RECHECK, "불만 처리 중이라 광고를 보류했어요")
    courtesy = _within(shop.courtesy_opens, shop.courtesy_closes, shop, now, "안내 시간")
    if isinstance(courtesy, Hold) or to.night:
        return courtesy
    return _within(NIGHT_BAN[1], NIGHT_BAN[0], shop, now, "야간 광고 금지")


def _recent_buyer(service: str | None, to: Recipient, now: datetime) -> bool:
    """The existing-customer exception: the same service, done within the last 6 months."""
    if service is None or service not in to.purchases:
        return False
    return now < add_months(to.purchases[service], EXISTING_CUSTOMER_MONTHS)


def _within(opens: time, closes: time, shop: ShopRules, now: datetime, name: str) -> Decision:
    """SendNow within [opens, closes) local time, else Hold until they next open."""
    local = now.astimezone(shop.zone)
    if opens == closes or _inside(local.time(), opens, closes):
        return SEND_NOW
    day = local.date() if local.time() < opens else local.date() + timedelta(days=1)
    until = datetime.combine(day, opens, tzinfo=shop.zone).astimezone(UTC)
    return Hold(until, f"{name}({opens:%H:%M}–{closes:%H:%M}) 밖이라 {opens:%H:%M}에 보낼게요")


def _inside(t: time, opens: time, closes: time) -> bool:
    if opens < closes:
        return opens <= t < closes
    return t >= opens or t < closes  # a window past midnight


def add_months(moment: datetime, months: int) -> datetime:
    """The same day `months` later (the month's last day when it has no such day)."""
    month = moment.month - 1 + months
    year, month = moment.year + month // 12, month % 12 + 1
    last = (date(year + month // 12, month % 12 + 1, 1) - timedelta(days=1)).day
    return moment.replace(year=year, month=month, day=min(moment.day, last))


def is_marked(text: str) -> bool:
    """Starts with exactly ``(광고)`` and names the free opt-out on its last line."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return (
        text.startswith(AD_MARK)
        and bool(lines)
        and any(word in lines[-1] for word in OPT_OUT_WORDS)
    )


def mark_advertising(text: str, shop_name: str, opt_out: str) -> str:
    """`text` as an ad must read: ``(광고)`` and the shop's name first, the free opt-out
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
