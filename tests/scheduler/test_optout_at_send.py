"""Issue 12 item 3: a send the vendor refuses *at send time* because the number opted out
(SOLAPI 1061/2061 in `failedMessageList`, Twilio 21610 on the POST) withdraws the
customer's marketing consent, with its source and an audit entry — exactly as a later
delivery report of the same opt-out does. Real adapters against the fake vendors on
loopback, the real dispatcher, SQLite and PostgreSQL."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import aiohttp
import pytest
import sqlalchemy as sa
from aiohttp.test_utils import TestServer
from fakes.solapi import FakeSolapi
from fakes.twilio import ACCOUNT_SID, AUTH_TOKEN, FakeTwilio
from sqlalchemy.engine import Connection
from support.outbox import CONFIG, add_message, add_shop, put
from support.outbox import message as message_row

from core.clock import FrozenClock
from core.db import Database
from core.models import AuditEntry, Consent, Message, OutboxItem, Shop
from providers.base import Provider
from providers.registry import Providers
from providers.solapi import SolapiProvider
from providers.twilio import TwilioProvider
from scheduler.dispatch import Dispatcher

KOREAN = "+821022223333"
AMERICAN = "+14155550123"


async def _vendor(app: Any) -> TestServer:
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    return server


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


async def _customer_with_a_queued_message(
    database: Database, now: datetime, phone: str, provider: str
) -> tuple[int, int, int]:
    """(customer id, message id, outbox id): an owner's text waiting in the outbox."""
    shop = await add_shop(database, now)
    message_id = await add_message(database, shop, now)
    (outbox,) = await put(
        database, shop, now, provider=provider, key="reply", message_id=message_id, phone=phone
    )
    customer = (await message_row(database, message_id))["customer_id"]
    return int(customer), message_id, outbox


async def _dispatch(database: Database, clock: FrozenClock, provider: Provider) -> None:
    dispatcher = Dispatcher(
        database,
        Providers({provider.name: provider}),
        clock,
        CONFIG,
        owner_id="proc-a",
        rng=random.Random(7),
    )
    await dispatcher.tick()


async def _rows(database: Database, model: Any) -> list[Any]:
    async with database.read() as conn:
        return list((await conn.execute(sa.select(model).order_by(model.id))).all())


async def _assert_opted_out(
    database: Database, customer: int, message: int, source: str, code: str
) -> None:
    (item,) = await _rows(database, OutboxItem)
    assert item.status == "dead"  # never retried
    (msg,) = await _rows(database, Message)
    assert (msg.id, msg.status) == (message, "failed")
    (consent,) = await _rows(database, Consent)
    assert (consent.customer_id, consent.scope, consent.granted, consent.source) == (
        customer,
        "marketing",
        False,
        source,
    )
    (audit,) = await _rows(database, AuditEntry)
    assert (audit.action, audit.subject, audit.detail) == (
        "consent_withdrawn",
        f"customer:{customer}",
        {"scope": "marketing", "code": code},
    )


@pytest.mark.parametrize("code", ["1061", "2061"])
async def test_solapi_080_refusal_at_send_withdraws_marketing_consent(
    database: Database, clock: FrozenClock, session: aiohttp.ClientSession, code: str
) -> None:
    fake = FakeSolapi(now=clock.now)
    fake.fail_recipient("01022223333", code, "080 수신거부")
    server = await _vendor(fake.app)
    try:
        provider = SolapiProvider(
            {
                "api_key": fake.api_key,
                "api_secret": fake.api_secret,
                "sender": "0212345678",
                "base_url": str(server.make_url("")).rstrip("/"),
            },
            session,
            clock=clock.now,
        )
        customer, message, _ = await _customer_with_a_queued_message(
            database, clock.now(), KOREAN, "solapi"
        )
        await _dispatch(database, clock, provider)
        assert fake.refs() == []  # refused: nothing went out
        await _assert_opted_out(database, customer, message, f"provider:solapi:{code}", code)
    finally:
        fake.release()
        await server.close()


async def test_twilio_21610_at_send_withdraws_marketing_consent(
    database: Database, clock: FrozenClock, session: aiohttp.ClientSession
) -> None:
    fake = FakeTwilio(now=clock.now)
    fake.opted_out.add(AMERICAN)
    server = await _vendor(fake.app)
    try:
        provider = TwilioProvider(
            {
                "account_sid": ACCOUNT_SID,
                "auth_token": AUTH_TOKEN,
                "from_number": "+14155550199",
                "base_url": str(server.make_url("")).rstrip("/"),
            },
            session,
        )
        customer, message, _ = await _customer_with_a_queued_message(
            database, clock.now(), AMERICAN, "twilio"
        )
        await _dispatch(database, clock, provider)
        assert fake.messages == {}
        await _assert_opted_out(database, customer, message, "provider:twilio:21610", "21610")
    finally:
        fake.release()
        await server.close()


async def test_a_customer_already_opted_out_gets_no_second_record(
    database: Database, clock: FrozenClock, session: aiohttp.ClientSession
) -> None:
    fake = FakeTwilio(now=clock.now)
    fake.opted_out.add(AMERICAN)
    server = await _vendor(fake.app)
    try:
        provider = TwilioProvider(
            {
                "account_sid": ACCOUNT_SID,
                "auth_token": AUTH_TOKEN,
                "from_number": "+14155550199",
                "base_url": str(server.make_url("")).rstrip("/"),
            },
            session,
        )
        customer, message, _ = await _customer_with_a_queued_message(
            database, clock.now(), AMERICAN, "twilio"
        )

        def withdrawn_by_keyword(conn: Connection) -> None:
            shop = conn.execute(sa.select(Shop.id)).scalar_one()
            conn.execute(
                sa.insert(Consent).values(
                    shop_id=shop,
                    customer_id=customer,
                    scope="marketing",
                    granted=False,
                    source="keyword:STOP",
                    created_at=clock.now(),
                )
            )

        await database.write(withdrawn_by_keyword)
        await _dispatch(database, clock, provider)
        (consent,) = await _rows(database, Consent)
        assert consent.source == "keyword:STOP"
        assert await _rows(database, AuditEntry) == []
        (msg,) = await _rows(database, Message)
        assert (msg.id, msg.status) == (message, "failed")
    finally:
        fake.release()
        await server.close()
