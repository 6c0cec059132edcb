"""The send-time policy: may this message go to this customer now? (DESIGN §3, PROTOCOLS §4)

One pure function, `decide`, asked for every message when it is about to go — by the
dispatcher for each outbox row it claims and by the journey planner for a step it is about
to send — never when it is planned: consent, complaints and the clock change in between.
It answers `SendNow`, `Hold(until)` or `Drop(reason)`; the callers do the rest.

The rules, in the law's words where it has them:
- Information (a booking, an ETA, the work's photos, aftercare for that job, the
  satisfaction check, replies) is never dropped for want of consent. What is urgent goes at
  once; the rest waits for the shop's courtesy hours (09:00–20:00 by default).
- Advertising (`AD_RULES`, in the order they are asked) needs marketing consent, or the
  existing-customer exception: the same kind of service bought within the last 6 months
  (§50① and its decree), unless the person refused. An opt-out drops it at once. It must
  start with exactly ``(광고)`` and the shop's name and end with a free opt-out line
  (`core.advertising` writes and checks that), or it is dropped. It waits while the
  customer has an open complaint, for courtesy hours, and never goes 21:00–08:00 without
  separate night consent (§50③).

Which message is which: the outbox row's kind (info / ad), and for information whether it
is urgent — `is_urgent(purpose)`, the one mapping of purposes. A vendor's own rules (Kakao's
brand messages only 08:00–20:00) stay with its adapter.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

from core.advertising import AD_MARK, OPT_OUT_WORDS, is_marked, mark_advertising
from core.config import ShopConfig
from core.jobs.steps import STEPS

__all__ = [
    "AD_MARK",
    "AD_RULES",
    "DEFAULT_RULES",
    "OPT_OUT_WORDS",
    "Decision",
    "Drop",
    "Hold",
    "Outgoing",
    "Recipient",
    "SendNow",
    "ShopRules",
    "decide",
    "is_marked",
    "is_urgent",
    "mark_advertising",
    "outgoing",
    "rules_for",
]

# The law's night ban: no advertising 21:00–08:00 without separate consent (§50③).
NIGHT_BAN = (time(21), time(8))
EXISTING_CUSTOMER_MONTHS = 6  # the decree's period after the transaction ended
# While a complaint is open an ad waits; it is asked about again this often.
COMPLAINT_RECHECK = timedelta(hours=1)
JOURNEY = "journey:"  # an outbox purpose "journey:<step>" is a step of a job's journey


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
    purchases: Mapping[str, datetime] = field(default_factory=dict)


@dataclass(frozen=True)
class ShopRules:
    """The shop's side: its time zone, courtesy hours and the name its ads must carry."""

    zone: ZoneInfo
    courtesy_opens: time = time(9)
    courtesy_closes: time = time(20)
    name: str = ""  # an ad's first line names the shop (when set)


# For rows of a shop this process has no settings for: the law's defaults, in Korea.
DEFAULT_RULES = ShopRules(ZoneInfo("Asia/Seoul"))


def rules_for(shop: ShopConfig) -> ShopRules:
    """The shop's side of the policy: its time zone and `[shops.journey]` courtesy hours."""
    return ShopRules(
        zone=shop.timezone,
        courtesy_opens=shop.journey.courtesy_opens,
        courtesy_closes=shop.journey.courtesy_closes,
        name=shop.name,
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
    code: str  # no_customer | opted_out | no_consent | unmarked


Decision = SendNow | Hold | Drop
SEND_NOW = SendNow()


# --------------------------------------------------------------------------- which message


def is_urgent(purpose: str) -> bool:
    """Is information with this outbox purpose urgent (goes at once, any hour)?

    A journey step ("journey:<step>") is as its step says (`core.jobs.steps.STEPS`; a step
    not in the catalogue waits, to be safe). Every other purpose — a reply, an owner's
    notice, an SMS acknowledgement, a send test — answers something just said or is the
    owner's own business: urgent.
    """
    if not purpose.startswith(JOURNEY):
        return True
    step = STEPS.get(purpose[len(JOURNEY) :].split(":", 1)[0])
    return step is not None and step.urgent


def outgoing(kind: str, purpose: str, payload: Mapping[str, Any]) -> Outgoing:
    """An outbox row as the policy sees it. A kind other than "info" is held to the ad
    rules; an ad's service is `payload["service"]`, when present."""
    service = payload.get("service")
    text = payload.get("text")
    return Outgoing(
        kind="info" if kind == "info" else "ad",
        urgent=is_urgent(purpose),
        text=text if isinstance(text, str) else "",
        service=str(service) if service else None,
    )


def needs_recipient(message: Outgoing) -> bool:
    """Whether `decide` looks at the customer at all: only an ad's consents, complaints and
    purchases matter, so information needs no query."""
    return message.kind == "ad"


# --------------------------------------------------------------------------- the decision


def decide(message: Outgoing, to: Recipient | None, shop: ShopRules, now: datetime) -> Decision:
    """May `message` go to `to` (None: the owner, or no customer) at `now`?"""
    if message.kind == "info":
        if message.urgent:
            return SEND_NOW
        return _courtesy(message, to, shop, now) or SEND_NOW
    for rule in AD_RULES:
        found = rule(message, to, shop, now)
        if found is not None:
            return found
    return SEND_NOW


Rule = Callable[[Outgoing, "Recipient | None", ShopRules, datetime], "Hold | Drop | None"]


def _no_customer(
    message: Outgoing, to: Recipient | None, _: ShopRules, __: datetime
) -> Drop | None:
    return Drop("광고를 받을 고객이 없어요", "no_customer") if to is None else None


def _opted_out(message: Outgoing, to: Recipient | None, _: ShopRules, __: datetime) -> Drop | None:
    if to is not None and to.marketing is False:
        return Drop("고객이 광고 수신을 거부했어요", "opted_out")
    return None


def _no_consent(
    message: Outgoing, to: Recipient | None, shop: ShopRules, now: datetime
) -> Drop | None:
    if to is None or to.marketing or _recent_buyer(message.service, to, shop, now):
        return None
    return Drop("광고 수신 동의가 없어요 (최근 6개월 안에 같은 서비스 이용도 없음)", "no_consent")


def _unmarked(message: Outgoing, _: Recipient | None, shop: ShopRules, __: datetime) -> Drop | None:
    if is_marked(message.text, shop.name):
        return None
    return Drop(
        "광고 메시지는 '(광고)'와 가게 이름으로 시작하고 무료 수신거부 안내로 끝나야 해요",
        "unmarked",
    )


def _complaint(message: Outgoing, to: Recipient | None, _: ShopRules, now: datetime) -> Hold | None:
    if to is not None and to.complaint_open:
        return Hold(now + COMPLAINT_RECHECK, "불만 처리 중이라 광고를 보류했어요")
    return None


def _courtesy(
    message: Outgoing, _: Recipient | None, shop: ShopRules, now: datetime
) -> Hold | None:
    return _hold_outside(
        shop.courtesy_opens, shop.courtesy_closes, shop, now, "안내 시간({}) 밖이라 {}에 보낼게요"
    )


def _night(message: Outgoing, to: Recipient | None, shop: ShopRules, now: datetime) -> Hold | None:
    if to is not None and to.night:
        return None
    closes, opens = NIGHT_BAN
    return _hold_outside(
        opens, closes, shop, now, "야간 수신 동의가 없어 광고는 {}에만 보내요: {}에 보낼게요"
    )


# The ad rules, in the order they are asked; the first that says no decides. Drops come
# first (no waiting makes an unlawful ad lawful), then what only has to wait.
AD_RULES: tuple[Rule, ...] = (
    _no_customer,
    _opted_out,
    _no_consent,
    _unmarked,
    _complaint,
    _courtesy,
    _night,
)


def _recent_buyer(service: str | None, to: Recipient, shop: ShopRules, now: datetime) -> bool:
    """The existing-customer exception: the same service, done within the last 6 months
    (counted in the shop's calendar)."""
    if service is None or service not in to.purchases:
        return False
    done = to.purchases[service].astimezone(shop.zone)
    return now < add_months(done, EXISTING_CUSTOMER_MONTHS)


def _hold_outside(
    opens: time, closes: time, shop: ShopRules, now: datetime, reason: str
) -> Hold | None:
    """None within [opens, closes) local time, else Hold until they next open."""
    local = now.astimezone(shop.zone)
    if opens == closes or _inside(local.time(), opens, closes):
        return None
    day = local.date() if local.time() < opens else local.date() + timedelta(days=1)
    until = datetime.combine(day, opens, tzinfo=shop.zone).astimezone(UTC)
    return Hold(until, reason.format(f"{opens:%H:%M}–{closes:%H:%M}", f"{opens:%H:%M}"))


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
