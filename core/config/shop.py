"""One shop's settings: a `[[shops]]` table and the tables inside it."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, AliasPath, Field, PlainValidator, ValidationInfo

from core.advertising import OPT_OUT_WORDS
from core.config.errors import WrittenAs, fail, problem
from core.config.hours import ClosureEntry, OpeningHours, WeekTable, week
from core.config.services import JourneyConfig, ServiceConfig, Services
from core.config.templates import TemplatesDir
from core.config.tiers import TiersConfig, tiers_in_order
from core.config.values import (
    Flag,
    Name,
    Names,
    SecretFromEnv,
    Tables,
    Text,
    check,
    from_env,
    whole,
)
from core.phone import PhoneError, to_e164
from providers.masking import mask_in_text

SLUG_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,39}$")
# Kakao documents 14 chars for button labels and nothing for quick replies; we hold
# quick replies to the same limit so they never get cut off on a phone.
QUICK_REPLY_LABEL_MAX = 14
# Kakao's 10 quick replies hold the FAQ and the three the bot always offers.
FAQ_MAX = 7
ANSWER_MAX = 1000  # Kakao's limit on a text bubble


def _known(info: ValidationInfo) -> set[str]:
    """The providers the file sets up (`[providers.*]`), handed in by `parse`."""
    return set((info.context or {}).get("providers", ()))


def _provider(name: str | None, info: ValidationInfo) -> str | None:
    if name is not None and name not in _known(info):
        raise problem(f"unknown provider {name!r} (add a [providers.{name}] table)")
    return name


Provider = Annotated[Text | None, AfterValidator(_provider)]


@dataclass(frozen=True)
class FaqEntry:
    id: Name
    label: Annotated[
        Name,
        check(
            lambda v: (
                f"must be at most {QUICK_REPLY_LABEL_MAX} characters"
                if len(v) > QUICK_REPLY_LABEL_MAX
                else None
            )
        ),
    ]
    answer: Annotated[
        Name,
        check(
            lambda v: (
                f"must be at most {ANSWER_MAX} characters (Kakao's limit)"
                if len(v) > ANSWER_MAX
                else None
            )
        ),
    ]
    keywords: Names = ()


def _faq_fits(faq: tuple[FaqEntry, ...]) -> str | None:
    if len(faq) > FAQ_MAX:
        return f"at most {FAQ_MAX} entries fit in Kakao's 10 quick replies"
    ids = [e.id for e in faq]
    return "every entry needs its own id" if len(set(ids)) != len(ids) else None


@dataclass(frozen=True)
class KakaoConfig:
    bot_id: Name
    skill_secret: Annotated[SecretFromEnv, from_env("skill_secret")]
    secret_header: Text = "X-Dangol-Skill-Secret"  # noqa: S105 (a header name, not a secret)


def _long_token(hook: SolapiHookConfig) -> SolapiHookConfig:
    if len(hook.webhook_token.reveal()) < 16:
        fail((("webhook_token_env",), "the token must be at least 16 characters long", "********"))
    return hook


@dataclass(frozen=True)
class SolapiHookConfig:
    """`[shops.solapi]`: the secret token in this shop's SOLAPI delivery-report webhook URL."""

    webhook_token: Annotated[SecretFromEnv, from_env("webhook_token")]


def _e164(raw: str | None) -> str | None:
    if not raw:
        return None
    try:
        return to_e164(raw)
    except PhoneError:
        # Echoed as written, so the installer finds it in the file; a part that is a real
        # number is still masked (this line reaches logs).
        raise problem(f"not a valid phone number: {mask_in_text(raw)!r}") from None


def _providers(names: tuple[str, ...], info: ValidationInfo) -> tuple[str, ...]:
    for name in names:
        if name not in _known(info):
            raise problem(f"unknown provider {name!r}")
    return names


@dataclass(frozen=True)
class OwnerConfig:
    name: Name
    phone: Annotated[Text | None, AfterValidator(_e164)] = None  # E.164
    notify_via: Annotated[Names, AfterValidator(_providers)] = ("console",)
    # An approved AlimTalk template for owner notices (core/notices.py lists its variables).
    alimtalk_template: Text | None = None


def _template_with_alimtalk(delivery: Delivery) -> Delivery:
    if delivery.alimtalk and not delivery.alimtalk_template:
        fail((("alimtalk_template",), "is required when alimtalk is set", None))
    return delivery


@dataclass(frozen=True)
class Delivery:
    """Which provider carries each reply path (DESIGN §2); an unset path is skipped."""

    event_api: Provider = None  # Kakao Event API: the bot speaks first in the chat room
    alimtalk: Provider = None  # AlimTalk reply-notice template, to the customer's phone
    alimtalk_template: Text | None = None
    sms: Provider = None  # SMS/LMS/MMS

    def provider_for(self, path_key: str) -> str | None:
        value = getattr(self, path_key, None)
        return value if isinstance(value, str) else None


def _free_opt_out(line: str) -> str | None:
    if "\n" in line or "\r" in line:
        return "must be one line (it ends every ad)"
    if not any(word in line for word in OPT_OUT_WORDS):
        return "must name the free opt-out, 무료수신거부 or 무료거부 ('무료수신거부 080-000-0000')"
    return None


@dataclass(frozen=True)
class AdvertisingConfig:
    """`[shops.advertising]`: what the law makes every ad carry (PROTOCOLS §4.1).

    Without this table the shop sends no ads (`core.advertising.ad_request` refuses).
    """

    # The last line of every ad: a free way to refuse ("무료수신거부 080-000-0000").
    opt_out_line: Annotated[Name, check(_free_opt_out)]


def _zone(name: Any) -> ZoneInfo:
    if isinstance(name, ZoneInfo):  # the default
        return name
    if not isinstance(name, str):
        raise problem(f"expected a string, got {name!r}")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise problem(f"unknown time zone {name!r}") from None


@dataclass(frozen=True, kw_only=True)
class ShopConfig:
    slug: Annotated[
        Name,
        check(
            lambda v: (
                None
                if SLUG_RE.match(v)
                else f"use lowercase letters, digits and '-' (max 40), got {v!r}"
            )
        ),
    ]
    name: Name
    owner: OwnerConfig
    hours: Annotated[tuple[OpeningHours | None, ...], PlainValidator(week), WrittenAs(WeekTable)]
    closed_on_public_holidays: Annotated[
        Flag, Field(validation_alias=AliasPath("hours", "closed_on_public_holidays"))
    ] = True
    phone: Text = ""
    address: Text = ""
    timezone: Annotated[ZoneInfo, PlainValidator(_zone)] = field(
        default_factory=lambda: ZoneInfo("Asia/Seoul")
    )
    closures: Tables[ClosureEntry] = ()
    faq: Annotated[Tables[FaqEntry], check(_faq_fits)] = ()
    kakao: KakaoConfig | None = None
    reply_target_minutes: Annotated[int, whole(1)] = 30
    complaint_fix_hours: Annotated[int, whole(1)] = 24
    delivery: Annotated[Delivery, AfterValidator(_template_with_alimtalk)] = field(
        default_factory=Delivery
    )
    solapi: Annotated[SolapiHookConfig, AfterValidator(_long_token)] | None = None
    # An SMS customer's "the owner will answer" acknowledgement waits this long, and does
    # not go at all when the owner answers first.
    sms_ack_delay_seconds: Annotated[int, whole(0)] = 90
    # This shop's own wording: templates here shadow `[server] templates_dir`'s and
    # dangol's by path (core/config/templates.py).
    templates_dir: TemplatesDir = None
    services: Services = ()
    journey: JourneyConfig = field(default_factory=JourneyConfig)
    advertising: AdvertisingConfig | None = None
    tiers: Annotated[TiersConfig, AfterValidator(tiers_in_order)] = field(
        default_factory=TiersConfig
    )

    def service(self, key: str) -> ServiceConfig | None:
        """The catalogue's service by its key (None once removed from the file)."""
        return next((s for s in self.services if s.key == key), None)
