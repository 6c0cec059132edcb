"""What bench/crash.py sends: dangol's config for the run, two shops' customers, and the
messages — owner replies and owner notices, enqueued with dangol's own units (the ones the
console and the inbound path run), in waves.

The Korean shop's texts go by SOLAPI (SMS, or LMS when long) and the shop abroad's by
Twilio. Every text ends with a tag (`crash_count.tag`) that finds it again at the vendor.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa
from crash_count import Planned, tag

from core.config import Settings
from core.db import Database
from core.models import Conversation, Customer, CustomerIdentity
from core.notices import owner_notices
from core.outbox import OutboxRequest, enqueue_many
from core.replies import owner_reply
from core.shops import sync_shops

TWILIO_BURST = (15, 45)  # rows per Twilio wave: a busy evening's replies
SOLAPI_WAVE = (20, 160)
CUSTOMERS = 150  # per shop

ENV = {
    "CRASH_SOLAPI_KEY": "NCSCRASHKEY",
    "CRASH_SOLAPI_SECRET": "crash-harness-secret",
    "CRASH_TWILIO_TOKEN": "fake-twilio-auth-token",
}

CONFIG = """
[server]
host = "127.0.0.1"
port = {port}
public_url = "http://127.0.0.1:{port}"
simulator = false
[database]
url = "{url}"
{schema}
[outbox]
lease_seconds = {lease}
backoff_max_seconds = 30.0
[logging]
level = "WARNING"
[storage]
path = "{tmp}/uploads"
[providers.solapi]
api_key_env = "CRASH_SOLAPI_KEY"
api_secret_env = "CRASH_SOLAPI_SECRET"
sender = "0212345678"
base_url = "http://127.0.0.1:{solapi}"
[providers.twilio]
account_sid = "AC0123456789abcdef0123456789abcdef"
auth_token_env = "CRASH_TWILIO_TOKEN"
from_number = "+17185550199"
base_url = "http://127.0.0.1:{twilio}"
rate_per_second = {twilio_rate}
[[shops]]
slug = "hanbit"
name = "한빛설비"
phone = "02-1234-5678"
[shops.hours]
mon = "00:00-23:59"
tue = "00:00-23:59"
wed = "00:00-23:59"
thu = "00:00-23:59"
fri = "00:00-23:59"
sat = "00:00-23:59"
sun = "00:00-23:59"
closed_on_public_holidays = false
[shops.owner]
name = "김한빛"
phone = "010-2222-3333"
notify_via = ["solapi"]
[shops.delivery]
sms = "solapi"
[[shops]]
slug = "brooklyn"
name = "Brooklyn Plumbing"
phone = "+17185550100"
timezone = "America/New_York"
[shops.hours]
mon = "00:00-23:59"
tue = "00:00-23:59"
wed = "00:00-23:59"
thu = "00:00-23:59"
fri = "00:00-23:59"
sat = "00:00-23:59"
sun = "00:00-23:59"
closed_on_public_holidays = false
[shops.owner]
name = "Sam"
phone = "+17185550101"
notify_via = ["twilio"]
[shops.delivery]
sms = "twilio"
"""


def write_config(
    path: Path,
    port: int,
    url: str,
    schema: str | None,
    lease: int,
    twilio_rate: float,
    vendor_ports: dict[str, int],
) -> None:
    """One dangol process's config: its port, the shared database, the fake vendors."""
    text = CONFIG.format(
        port=port,
        url=url,
        schema=f'schema = "{schema}"' if schema else "",
        lease=lease,
        tmp=path.parent,
        solapi=vendor_ports["solapi"],
        twilio=vendor_ports["twilio"],
        twilio_rate=twilio_rate,
    )
    path.write_text(text, "utf-8")


KOREAN = [
    "내일 오전 10시에 방문드릴게요.",
    "부품이 들어와서 오늘 오후에 교체 가능해요.",
    "견적은 8만원입니다. 괜찮으시면 답장 주세요.",
    "기사님이 지금 출발했어요. 30분 안에 도착해요.",
    "보일러 점검 끝났습니다. 이용해 주셔서 감사합니다.",
]
ENGLISH = [
    "We'll be there tomorrow at 10am.",
    "The part arrived; we can replace it this afternoon.",
    "The estimate is $80. Reply if that works for you.",
    "Our plumber is on the way and will be there within 30 minutes.",
]


def plan(rng: random.Random, messages: int, twilio_share: float) -> list[list[Planned]]:
    """Every message of the run, grouped in the waves they are enqueued in (shuffled)."""
    twilio = round(messages * twilio_share)
    counts = {"twilio": twilio, "solapi": messages - twilio}
    waves: list[list[Planned]] = []
    n = 0
    for vendor, total in counts.items():
        size_range = TWILIO_BURST if vendor == "twilio" else SOLAPI_WAVE
        while total > 0:
            size = min(total, rng.randint(*size_range))
            wave = []
            for _ in range(size):
                n += 1
                kind = "notice" if rng.random() < 0.3 else "reply"
                long = rng.random() < 0.3
                words = KOREAN if vendor == "solapi" else ENGLISH
                text = " ".join(rng.sample(words, 3 if long else 1))
                wave.append(Planned(n, vendor, kind, text, rng.randrange(CUSTOMERS)))
            waves.append(wave)
            total -= size
    rng.shuffle(waves)
    return waves


def seed_customers(
    shop_ids: dict[str, int], now: datetime
) -> Callable[[sa.Connection], dict[str, list[int]]]:
    """A unit: the customers and open conversations the owner replies in (slug → [conv id])."""

    def unit(conn: sa.Connection) -> dict[str, list[int]]:
        out: dict[str, list[int]] = {}
        for slug, shop_id in shop_ids.items():
            convs = []
            for i in range(CUSTOMERS):
                customer = conn.execute(
                    sa.insert(Customer)
                    .values(shop_id=shop_id, created_at=now)
                    .returning(Customer.id)
                ).scalar_one()
                phone = f"+8210{55000000 + i}" if slug == "hanbit" else f"+1718555{2000 + i}"
                identities = [("phone", phone)]
                if slug == "hanbit":  # a Kakao customer who gave their number
                    identities.append(("kakao_bot_user", f"crash-user-{i}"))
                for kind, value in identities:
                    conn.execute(
                        sa.insert(CustomerIdentity).values(
                            shop_id=shop_id,
                            customer_id=customer,
                            kind=kind,
                            value=value,
                            created_at=now,
                        )
                    )
                convs.append(
                    conn.execute(
                        sa.insert(Conversation)
                        .values(
                            shop_id=shop_id,
                            customer_id=customer,
                            channel="kakao" if slug == "hanbit" else "sms",
                            last_message_at=now,
                            created_at=now,
                        )
                        .returning(Conversation.id)
                    ).scalar_one()
                )
            out[slug] = convs
        return out

    return unit


class Enqueuer:
    """Writes the waves into dangol's database with dangol's own units, as the console does."""

    def __init__(self, database: Database, settings: Settings) -> None:
        self.database = database
        self.settings = settings
        self.shop_ids: dict[str, int] = {}
        self.convs: dict[str, list[int]] = {}
        self.enqueued = 0

    async def prepare(self) -> None:
        now = _now()
        self.shop_ids = await self.database.write(sync_shops(self.settings, now))
        self.convs = await self.database.write(seed_customers(self.shop_ids, now))

    async def wave(self, wave: list[Planned]) -> None:
        now = _now()
        units = []
        notices: list[OutboxRequest] = []
        for m in wave:
            slug = "hanbit" if m.vendor == "solapi" else "brooklyn"
            shop = self.settings.shop(slug)
            assert shop is not None
            shop_id, conv = self.shop_ids[slug], self.convs[slug][m.customer]
            text = f"{m.text} {tag(m.n)}"
            if m.kind == "reply":
                units.append(owner_reply(shop_id, conv, text, shop.delivery, now))
            else:
                notices += owner_notices(
                    shop,
                    shop_id,
                    conv,
                    text=text,
                    kind="새 문의",
                    customer_label=f"고객 #{m.customer}",
                    content=m.text,
                    key=f"crash-notice:{m.n}:{{}}".format,
                    now=now,
                )

        def unit(conn: sa.Connection) -> None:
            for reply in units:
                reply(conn)
            enqueue_many(conn, notices)

        await self.database.write(unit)
        self.enqueued += len(wave)


def _now() -> datetime:
    return datetime.now(UTC)
