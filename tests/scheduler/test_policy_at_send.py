"""The send-time policy in force: through the real Dispatcher, on SQLite and PostgreSQL.

Every claimed row is put to `scheduler.policy.decide` in the claim's own unit: an ad to a
customer without consent is dropped, its reason on the row, its message and its journey
step; information that can wait is held until courtesy hours with no try spent, and goes
then; urgent information goes at once; an opt-out recorded after the ad was enqueued drops
it; an open complaint holds it; one claim of many rows costs a fixed number of queries.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any, cast

import aiohttp
import pytest
import sqlalchemy as sa
from aiohttp.test_utils import TestServer
from conftest import kst, make_settings, shop_table
from fakes.solapi import FakeSolapi
from sqlalchemy import event
from sqlalchemy.engine import Connection
from support.console import add_account as add_console_account
from support.console import app_of, sign_in, thread, write
from support.jobs import add_customer
from support.outbox import CONFIG, add_shop, row
from support.outbox import message as message_row

from bot import keys
from core.advertising import ad_request
from core.clock import FrozenClock
from core.config import OutboxConfig, ShopConfig
from core.consents import ConsentChange, record_consents
from core.db import Database, Work
from core.delivery import StatusChanged
from core.models import Conversation, Job, JourneyStep, Message
from core.outbox import OutboxRequest, enqueue
from providers.base import Provider
from providers.fake import FakeProvider
from providers.registry import Providers
from providers.solapi import SolapiProvider
from scheduler.dispatch import Dispatcher
from scheduler.policy import rules_for

OPT_OUT = "무료수신거부 080-123-4567"
PHONE = "+821022223333"
NO_CONSENT = "광고 수신 동의가 없어요 (최근 6개월 안에 같은 서비스 이용도 없음)"

Client = Any


@pytest.fixture
def shop_config() -> ShopConfig:
    settings = make_settings(shops=[shop_table(advertising={"opt_out_line": OPT_OUT})])
    return settings.shops[0]


@pytest.fixture
async def shop(database: Database, clock: FrozenClock) -> int:
    return await add_shop(database, clock.now())  # "한빛설비", as in shop_config


@pytest.fixture
def fake() -> FakeProvider:
    return FakeProvider()


def dispatcher(
    database: Database,
    clock: FrozenClock,
    provider: Provider,
    rules: dict[int, Any],
    config: OutboxConfig = CONFIG,
) -> Dispatcher:
    return Dispatcher(
        database,
        Providers({provider.name: provider}),
        clock,
        config,
        owner_id="proc-a",
        rng=random.Random(7),
        rules=rules,
    )


@pytest.fixture
def outbox(
    database: Database, clock: FrozenClock, fake: FakeProvider, shop: int, shop_config: ShopConfig
) -> Dispatcher:
    return dispatcher(database, clock, fake, {shop: rules_for(shop_config)})


# --------------------------------------------------------------------------- rows


async def customer(
    database: Database,
    shop: int,
    now: datetime,
    *,
    marketing: bool | None = None,
    complaint: bool = False,
) -> tuple[int, int]:
    """(customer id, conversation id); marketing consent recorded as `core.consents` does."""
    customer_id, conversation = await add_customer(database, shop, now, phone=None)

    def unit(conn: Connection) -> None:
        if marketing is not None:
            record_consents(conn, [consent(shop, customer_id, marketing, now, "console")])
        if complaint:
            conn.execute(
                sa.update(Conversation)
                .where(Conversation.id == conversation)
                .values(complaint=True, complaint_due_at=now + timedelta(hours=24))
            )

    await database.write(unit)
    return customer_id, conversation


def consent(shop: int, customer_id: int, granted: bool, at: datetime, source: str) -> ConsentChange:
    return ConsentChange(shop, customer_id, "marketing", granted, source, "customer", at)


async def queued_message(
    database: Database, shop: int, customer_id: int, conversation: int, now: datetime, body: str
) -> int:
    def unit(conn: Connection) -> int:
        return int(
            conn.execute(
                sa.insert(Message)
                .values(
                    shop_id=shop,
                    conversation_id=conversation,
                    customer_id=customer_id,
                    direction="out",
                    sender="bot",
                    channel="sms",
                    body=body,
                    payload={},
                    status="queued",
                    created_at=now,
                )
                .returning(Message.id)
            ).scalar_one()
        )

    return await database.write(unit)


async def put(database: Database, request: OutboxRequest) -> int:
    new = await database.write(lambda conn: enqueue(conn, request))
    assert new is not None
    return new


def an_ad(
    shop_config: ShopConfig,
    shop: int,
    customer_id: int,
    now: datetime,
    *,
    key: str = "ad",
    provider: str = "fake",
    message_id: int | None = None,
    service: str | None = None,
) -> OutboxRequest:
    return ad_request(
        shop_config,
        shop_id=shop,
        customer_id=customer_id,
        purpose="campaign",
        provider=provider,
        recipient={"phone": PHONE},
        text="겨울맞이 보일러 점검 10% 할인해 드려요",
        idempotency_key=key,
        now=now,
        service=service,
        message_id=message_id,
    )


def info(
    shop: int, purpose: str, now: datetime, *, key: str, customer_id: int | None = None
) -> OutboxRequest:
    return OutboxRequest(
        shop_id=shop,
        purpose=purpose,
        provider="fake",
        recipient={"phone": PHONE},
        payload={"text": "[한빛설비] 내일 14:00 방문 예정이에요."},
        idempotency_key=key,
        now=now,
        customer_id=customer_id,
    )


# --------------------------------------------------------------------------- dropped


async def test_an_ad_without_consent_is_dropped_and_says_why(
    database: Database,
    clock: FrozenClock,
    shop: int,
    shop_config: ShopConfig,
    fake: FakeProvider,
    outbox: Dispatcher,
) -> None:
    now = clock.now()
    stranger, conversation = await customer(database, shop, now)
    fan, _ = await customer(database, shop, now, marketing=True)
    mid = await queued_message(database, shop, stranger, conversation, now, "광고")
    dropped = await put(database, an_ad(shop_config, shop, stranger, now, message_id=mid))
    sent = await put(database, an_ad(shop_config, shop, fan, now, key="ad-fan"))
    step = await journey_step(database, shop, stranger, conversation, now, dropped)
    heard: list[StatusChanged] = []
    stop = database.listen(StatusChanged, heard.extend)
    try:
        assert await outbox.tick() == 1
    finally:
        stop()

    assert fake.sent_refs() == [str(sent)]  # the consenting customer's, not the other's
    item = await row(database, dropped)
    assert (item["status"], item["last_error"], item["attempts"]) == ("dropped", NO_CONSENT, 0)
    assert (item["lease_owner"], item["lease_until"]) == (None, None)
    msg = await message_row(database, mid)
    assert (msg["status"], msg["error"]) == ("dropped", NO_CONSENT)
    assert heard == [StatusChanged(shop, mid, "dropped")]  # the consoles refresh it
    async with database.read() as conn:
        found = (await conn.execute(sa.select(JourneyStep).where(JourneyStep.id == step))).one()
    assert (found.status, found.reason) == ("dropped", NO_CONSENT)
    assert (outbox.counters["dropped"], outbox.counters["sent"]) == (1, 1)
    assert await outbox.tick() == 0  # a dropped row is never claimed again


async def done_job(
    database: Database, shop: int, customer_id: int, conversation: int, done_at: datetime
) -> int:
    """An air-conditioner clean, finished at `done_at`."""

    def unit(conn: Connection) -> int:
        return int(
            conn.execute(
                sa.insert(Job)
                .values(
                    shop_id=shop,
                    customer_id=customer_id,
                    conversation_id=conversation,
                    service="aircon",
                    service_name="에어컨 청소",
                    starts_at=done_at - timedelta(hours=2),
                    ends_at=done_at,
                    status="done",
                    booked_at=done_at - timedelta(days=1),
                    done_at=done_at,
                    created_at=done_at,
                    updated_at=done_at,
                )
                .returning(Job.id)
            ).scalar_one()
        )

    return await database.write(unit)


async def journey_step(
    database: Database, shop: int, customer_id: int, conversation: int, now: datetime, outbox: int
) -> int:
    """A review invitation with a coupon (an ad, PROTOCOLS §4.2) handed to the outbox."""
    job = await done_job(database, shop, customer_id, conversation, now - timedelta(days=8))

    def unit(conn: Connection) -> int:
        return int(
            conn.execute(
                sa.insert(JourneyStep)
                .values(
                    shop_id=shop,
                    job_id=job,
                    customer_id=customer_id,
                    step="review",
                    key="review",
                    kind="ad",
                    due_at=now,
                    status="sent",
                    payload={},
                    outbox_id=outbox,
                    created_at=now,
                    updated_at=now,
                )
                .returning(JourneyStep.id)
            ).scalar_one()
        )

    return await database.write(unit)


async def test_a_recent_buyer_of_the_same_service_may_get_its_ad(
    database: Database,
    clock: FrozenClock,
    shop: int,
    shop_config: ShopConfig,
    fake: FakeProvider,
    outbox: Dispatcher,
) -> None:
    """The existing-customer exception, with the purchase read from the jobs table: an
    air-conditioner clean done 5 months ago (and an older one) allows an aircon ad only."""
    now = clock.now()
    buyer, conversation = await customer(database, shop, now)
    await done_job(database, shop, buyer, conversation, now - timedelta(days=400))
    await done_job(database, shop, buyer, conversation, now - timedelta(days=150))
    same = await put(database, an_ad(shop_config, shop, buyer, now, key="a", service="aircon"))
    other = await put(database, an_ad(shop_config, shop, buyer, now, key="b", service="lawn"))
    await outbox.tick()
    assert fake.sent_refs() == [str(same)]
    assert (await row(database, other))["status"] == "dropped"


# --------------------------------------------------------------------------- held, then sent


async def test_information_that_can_wait_is_held_until_courtesy_hours_then_sent(
    database: Database, clock: FrozenClock, shop: int, fake: FakeProvider, outbox: Dispatcher
) -> None:
    clock.set(kst(2026, 11, 23, 22, 0))
    reminder = await put(database, info(shop, "journey:reminder", clock.now(), key="r"))
    assert await outbox.tick() == 0
    assert fake.calls == []
    item = await row(database, reminder)
    assert item["status"] == "pending"
    assert item["not_before"] == kst(2026, 11, 24, 9, 0)
    assert item["attempts"] == 0  # waiting is no failed try
    assert "09:00" in item["last_error"]  # what the console shows
    assert outbox.counters["held"] == 1

    clock.set(kst(2026, 11, 24, 8, 59))
    assert await outbox.tick() == 0  # not due: not even claimed
    assert outbox.counters["held"] == 1
    clock.set(kst(2026, 11, 24, 9, 0))
    assert await outbox.tick() == 1
    assert fake.sent_refs() == [str(reminder)]
    item = await row(database, reminder)
    assert (item["status"], item["attempts"], item["last_error"]) == ("sent", 1, None)


@pytest.mark.parametrize("purpose", ["journey:confirmation", "journey:on_my_way", "reply"])
async def test_urgent_information_goes_at_once_at_night(
    database: Database,
    clock: FrozenClock,
    shop: int,
    fake: FakeProvider,
    outbox: Dispatcher,
    purpose: str,
) -> None:
    clock.set(kst(2026, 11, 23, 23, 30))
    urgent = await put(database, info(shop, purpose, clock.now(), key="u"))
    assert await outbox.tick() == 1
    assert fake.sent_refs() == [str(urgent)]


# --------------------------------------------------------------------------- consent, complaint


async def test_an_opt_out_recorded_after_enqueue_drops_the_ad(
    database: Database,
    clock: FrozenClock,
    shop: int,
    shop_config: ShopConfig,
    fake: FakeProvider,
    outbox: Dispatcher,
) -> None:
    now = clock.now()
    leaving, _ = await customer(database, shop, now, marketing=True)
    staying, _ = await customer(database, shop, now, marketing=True)
    ads = [
        await put(database, an_ad(shop_config, shop, who, now, key=f"ad-{who}"))
        for who in (leaving, staying)
    ]
    clock.advance(minutes=1)  # the customer texts 수신거부 before the ad goes
    later = clock.now()
    await database.write(
        lambda conn: record_consents(
            conn, [consent(shop, leaving, False, later, "keyword:수신거부")]
        )
    )
    await outbox.tick()
    assert fake.sent_refs() == [str(ads[1])]
    item = await row(database, ads[0])
    assert (item["status"], item["last_error"]) == ("dropped", "고객이 광고 수신을 거부했어요")


async def test_an_open_complaint_holds_an_ad_until_it_is_resolved(
    database: Database,
    clock: FrozenClock,
    shop: int,
    shop_config: ShopConfig,
    fake: FakeProvider,
    outbox: Dispatcher,
) -> None:
    now = clock.now()
    upset, conversation = await customer(database, shop, now, marketing=True, complaint=True)
    held = await put(database, an_ad(shop_config, shop, upset, now))
    survey = await put(database, info(shop, "journey:survey", now, key="s", customer_id=upset))
    await outbox.tick()
    assert fake.sent_refs() == [str(survey)]  # information is not held by a complaint
    item = await row(database, held)
    assert (item["status"], item["attempts"]) == ("pending", 0)
    assert item["not_before"] == now + timedelta(hours=1)
    assert item["last_error"] == "불만 처리 중이라 광고를 보류했어요"

    clock.advance(hours=1)
    await outbox.tick()  # asked again: still open
    assert (await row(database, held))["status"] == "pending"

    await database.write(
        lambda conn: conn.execute(
            sa.update(Conversation)
            .where(Conversation.id == conversation)
            .values(status="resolved", resolved_at=clock.now())
        )
    )
    clock.advance(hours=1)
    await outbox.tick()
    assert fake.sent_refs() == [str(survey), str(held)]


async def test_night_consent_is_read_for_the_night_ban(
    database: Database, clock: FrozenClock, shop: int, fake: FakeProvider
) -> None:
    """A shop whose courtesy hours reach 22:00: at 21:30 only the customer who also gave
    the separate night consent (§50③) gets the ad; the other's waits until 08:00."""
    late = make_settings(
        shops=[
            shop_table(
                advertising={"opt_out_line": OPT_OUT},
                journey={"courtesy_opens": "07:00", "courtesy_closes": "22:00"},
            )
        ]
    ).shops[0]
    outbox = dispatcher(database, clock, fake, {shop: rules_for(late)})
    now = clock.now()
    owl, _ = await customer(database, shop, now, marketing=True)
    lark, _ = await customer(database, shop, now, marketing=True)
    night = ConsentChange(shop, owl, "night", True, "console", "user:1", now)
    await database.write(lambda conn: record_consents(conn, [night]))
    clock.set(kst(2026, 11, 23, 21, 30))
    ads = [await put(database, an_ad(late, shop, who, now, key=f"ad-{who}")) for who in (owl, lark)]
    await outbox.tick()
    assert fake.sent_refs() == [str(ads[0])]
    waiting = await row(database, ads[1])
    assert (waiting["status"], waiting["not_before"]) == ("pending", kst(2026, 11, 24, 8, 0))


# --------------------------------------------------------------------------- the vendor never sees it


async def test_an_unmarked_ad_is_dropped_before_solapi_sees_it(
    database: Database, clock: FrozenClock, shop: int, shop_config: ShopConfig
) -> None:
    """The adapter no longer checks the marking (providers/solapi): nothing is lost, the
    policy drops the row first."""
    fake = FakeSolapi(now=clock.now)
    server = TestServer(fake.app, host="127.0.0.1")
    await server.start_server()
    try:
        async with aiohttp.ClientSession() as session:
            solapi = SolapiProvider(
                {
                    "api_key": fake.api_key,
                    "api_secret": fake.api_secret,
                    "sender": "0212345678",
                    "base_url": str(server.make_url("")).rstrip("/"),
                },
                session,
                clock=clock.now,
            )
            now = clock.now()
            fan, _ = await customer(database, shop, now, marketing=True)
            unmarked = OutboxRequest(
                shop_id=shop,
                purpose="campaign",
                provider="solapi",
                recipient={"phone": PHONE},
                payload={"text": "겨울맞이 보일러 점검 10% 할인!"},
                idempotency_key="raw",
                now=now,
                kind="ad",
                customer_id=fan,
            )
            bad = await put(database, unmarked)
            good = await put(database, an_ad(shop_config, shop, fan, now, provider="solapi"))
            outbox = dispatcher(database, clock, solapi, {shop: rules_for(shop_config)})
            await outbox.tick()
            assert fake.refs() == [str(good)]  # the marked one went; the other never left
            item = await row(database, bad)
            assert item["status"] == "dropped"
            assert "(광고)" in item["last_error"]
    finally:
        fake.release()
        await server.close()


# --------------------------------------------------------------------------- cost


@contextmanager
def counting(conn: Connection) -> Iterator[list[str]]:
    sent: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_rest: Any) -> None:
        sent.append(statement)

    event.listen(conn, "before_cursor_execute", count)
    try:
        yield sent
    finally:
        event.remove(conn, "before_cursor_execute", count)


class CountingDatabase:
    """The database, counting the statements of each unit written through it."""

    def __init__(self, database: Database) -> None:
        self.database = database
        self.units: list[int] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.database, name)

    async def write(self, work: Work[Any]) -> Any:
        assert callable(work)

        def unit(conn: Connection) -> Any:
            with counting(conn) as sent:
                result = work(conn)
            self.units.append(len(sent))
            return result

        return await self.database.write(unit)


@pytest.mark.parametrize("size", [3, 30])
async def test_one_claim_of_many_rows_costs_a_fixed_number_of_queries(
    database: Database,
    clock: FrozenClock,
    shop: int,
    shop_config: ShopConfig,
    fake: FakeProvider,
    size: int,
) -> None:
    """Sent, dropped and held ads, and information, for `size` customers each: one claim
    statement per provider (and one for the unconfigured), one query per fact, and one
    write per distinct decision — whatever `size` is."""
    now = clock.now()
    for n in range(size):
        fan, _ = await customer(database, shop, now, marketing=True)
        stranger, conversation = await customer(database, shop, now)
        upset, _ = await customer(database, shop, now, marketing=True, complaint=True)
        mid = await queued_message(database, shop, stranger, conversation, now, "광고")
        for who in (fan, stranger, upset):
            request = an_ad(shop_config, shop, who, now, key=f"ad-{who}")
            await put(database, replace(request, message_id=mid if who == stranger else None))
        await put(database, info(shop, "reply", now, key=f"reply-{n}", customer_id=fan))
    counted = CountingDatabase(database)
    rules = {shop: rules_for(shop_config)}
    big = replace(CONFIG, batch_size=500)
    outbox = dispatcher(cast(Database, counted), clock, fake, rules, big)
    to_send = await outbox.claim()
    # claims: 2; facts: consents, complaints, purchases; holds: 1; drops: row, step, message
    assert counted.units == [2 + 3 + 1 + 3]
    assert len(to_send) == 2 * size  # the fans' ads and the replies go on
    assert (outbox.counters["held"], outbox.counters["dropped"]) == (size, size)


async def test_replies_and_owner_notices_cost_no_query_beyond_the_claim(
    database: Database, clock: FrozenClock, shop: int, shop_config: ShopConfig, fake: FakeProvider
) -> None:
    now = clock.now()
    someone, _ = await customer(database, shop, now)
    for n in range(10):
        await put(database, info(shop, "reply", now, key=f"r{n}", customer_id=someone))
        await put(database, info(shop, "owner_notification", now, key=f"o{n}"))
    counted = CountingDatabase(database)
    outbox = dispatcher(cast(Database, counted), clock, fake, {shop: rules_for(shop_config)})
    assert len(await outbox.claim()) == 20
    assert counted.units == [2]  # the claim statements, nothing else


# --------------------------------------------------------------------------- the console


async def test_the_conversation_shows_a_dropped_message_and_why(
    make_client: Callable[..., Awaitable[Client]], cheap_hasher: None
) -> None:
    client = await make_client(
        shops=[shop_table(delivery={"sms": "console"}, advertising={"opt_out_line": OPT_OUT})]
    )
    app = app_of(client)
    await add_console_account(client)
    await sign_in(client)
    customer_id, conversation = await thread(client, phone=PHONE)
    shop = app[keys.SHOP_IDS]["hanbit"]
    now = app[keys.CLOCK].now()

    def unit(conn: Connection) -> int:
        mid = conn.execute(
            sa.insert(Message)
            .values(
                shop_id=shop,
                conversation_id=conversation,
                customer_id=customer_id,
                direction="out",
                sender="bot",
                channel="kakao",
                body="(광고)[한빛설비] 겨울맞이 점검 할인",
                payload={},
                status="queued",
                created_at=now,
            )
            .returning(Message.id)
        ).scalar_one()
        enqueue(
            conn,
            ad_request(
                app[keys.SETTINGS].shops[0],
                shop_id=shop,
                customer_id=customer_id,
                purpose="campaign",
                provider="console",
                recipient={"phone": PHONE},
                text="겨울맞이 점검 할인",
                idempotency_key="ad",
                now=now,
                message_id=mid,
            ),
        )
        return int(mid)

    mid = await write(client, unit)
    await app[keys.OUTBOX].drain()
    async with app[keys.DATABASE].read() as conn:
        status = (await conn.execute(sa.select(Message.status).where(Message.id == mid))).scalar()
    assert status == "dropped"
    html = await (await client.get(f"/console/c/{conversation}")).text()
    assert f"보내지 않음: {NO_CONSENT}" in html
    assert "실패 이유" not in html
    assert "status-dropped" in html
