"""Reconciling after a crash at scale, and from another process than the sender.

Two cases the crash harness found (issue 10):

* SOLAPI: a lookup without a message id reads SOLAPI's list over a window of creation
  dates. Fifty rows looked up one by one read the same pages fifty times, slowly enough to
  time out, so a backlog stayed `unknown` and ended as "cannot tell". One reconcile now
  reads each page of the window once for all of its rows.
* Twilio: without the SID, only the process that sent a message remembered what to search
  for; another process answered "cannot tell". The outbox row holds the recipient, the
  text and the attempt time, and any process now finds the message by them.
"""

from __future__ import annotations

import asyncio
import math
import random
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from fakes.solapi import FakeSolapi
from fakes.twilio import ACCOUNT_SID, AUTH_TOKEN, FakeTwilio
from support.outbox import CONFIG, Sleeps, add_message, add_shop, row

from core.clock import FrozenClock
from core.config import OutboxConfig
from core.db import Database
from core.outbox import OutboxRequest, enqueue
from providers.base import Outgoing, Provider, Recipient
from providers.registry import Providers
from providers.solapi import SolapiProvider
from providers.twilio import TwilioProvider
from scheduler.dispatch import Dispatcher

OTHERS = 3000  # other messages of the account in the same minutes
AT_VENDOR = 160  # rows that reached SOLAPI before the kill
NEVER_SENT = 40  # rows claimed, then killed before the call
TWILIO_FROM = "+14155550199"


def dispatcher(
    database: Database,
    clock: FrozenClock,
    providers: dict[str, Provider],
    owner: str,
    config: OutboxConfig = CONFIG,
) -> Dispatcher:
    return Dispatcher(
        database,
        Providers(providers),
        clock,
        config,
        owner_id=owner,
        rng=random.Random(7),
        sleep=Sleeps(),
        send_timeout=5.0,
    )


async def add_rows(
    database: Database, clock: FrozenClock, provider: str, count: int, *, phone: str, text: str
) -> list[int]:
    """`count` outbox rows (with their messages) of a new shop, due now."""
    now = clock.now()
    shop = await add_shop(database, now, slug=f"{provider}-{phone[:9].strip('+')}")
    made = []
    for i in range(count):
        message_id = await add_message(database, shop, now)
        outbox_id = await database.write(
            lambda conn, i=i, m=message_id: enqueue(
                conn,
                OutboxRequest(
                    shop_id=shop,
                    purpose="reply",
                    provider=provider,
                    recipient={"phone": phone.format(i=i)},
                    payload={"text": text.format(i=i)},
                    idempotency_key=f"{provider}:{i}",
                    now=now,
                    message_id=m,
                ),
            )
        )
        assert outbox_id is not None
        made.append(outbox_id)
    return made


# --------------------------------------------------------------------------- SOLAPI


@pytest.fixture
async def solapi(clock: FrozenClock) -> AsyncIterator[tuple[FakeSolapi, SolapiProvider]]:
    fake = FakeSolapi(now=clock.now)
    server = TestServer(fake.app, host="127.0.0.1")
    await server.start_server()
    async with aiohttp.ClientSession() as session:
        provider = SolapiProvider(
            {
                "api_key": fake.api_key,
                "api_secret": fake.api_secret,
                "sender": "02-1234-5678",
                "base_url": str(server.make_url("")).rstrip("/"),
            },
            session,
            clock=clock.now,
        )
        yield fake, provider
    fake.release()
    await server.close()


def another_process(provider: SolapiProvider, clock: FrozenClock) -> SolapiProvider:
    """A provider as a restarted process builds it: the same account, no memory."""
    options = {k: v for k, v in provider.options.items() if v is not None}
    return SolapiProvider(options, provider.session, clock=clock.now)


async def test_one_reconcile_reads_each_list_page_once_for_all_its_rows(
    database: Database, clock: FrozenClock, solapi: tuple[FakeSolapi, SolapiProvider]
) -> None:
    fake, provider = solapi
    others = [
        Outgoing(ref=f"other-{i}", recipient=Recipient(phone="+821099998888"), text="다른 안내")
        for i in range(OTHERS)
    ]
    await provider.send(others)
    rows = await add_rows(
        database,
        clock,
        "solapi",
        AT_VENDOR + NEVER_SENT,
        phone="+8210222{i:04d}",
        text="내일 10시에 방문드릴게요 {i}",
    )
    killed = dispatcher(database, clock, {"solapi": provider}, "killed")
    claimed = [c for _ in range(len(rows) // CONFIG.batch_size) for c in await killed.claim()]
    assert len(claimed) == len(rows)
    await killed.deliver(claimed[:AT_VENDOR])  # ...and kill -9 before `record`
    assert len(fake.messages) == OTHERS + AT_VENDOR

    clock.advance(seconds=CONFIG.lease_seconds + 1)  # the killed process's lease is over
    fresh = another_process(provider, clock)
    recovered = dispatcher(database, clock, {"solapi": fresh}, "recovered")
    before = fake.lists
    assert await recovered.reconcile() == len(rows)
    pages = math.ceil(len(fake.messages) / fresh.lookup_page_size)
    assert fake.lists - before == pages  # each page of the window once, not once per row

    statuses = [(await row(database, i))["status"] for i in rows]
    assert statuses == ["sent"] * AT_VENDOR + ["pending"] * NEVER_SENT
    await recovered.drain()
    for outbox_id in rows:
        assert (await row(database, outbox_id))["status"] == "sent"
        assert fake.refs().count(str(outbox_id)) == 1


async def test_rows_not_reached_in_a_round_are_asked_again_not_failed(
    database: Database, clock: FrozenClock, solapi: tuple[FakeSolapi, SolapiProvider]
) -> None:
    """A round has the dispatcher's time for a vendor call: rows the list was not read
    far enough for wait for the next round — neither resent nor logged as failed lookups —
    and the next round answers them."""
    fake, provider = solapi
    rows = await add_rows(database, clock, "solapi", 3, phone="+8210333{i:04d}", text="{i}")
    killed = dispatcher(database, clock, {"solapi": provider}, "killed")
    await killed.deliver(await killed.claim())
    clock.advance(seconds=CONFIG.lease_seconds + 1)

    fake.list_failure = "hang"  # a list that takes longer than the round has
    recovered = Dispatcher(
        database,
        Providers({"solapi": another_process(provider, clock)}),
        clock,
        CONFIG,
        owner_id="recovered",
        rng=random.Random(7),
        sleep=Sleeps(),
        send_timeout=0.2,
    )
    await recovered.reconcile()
    assert [(await row(database, i))["status"] for i in rows] == ["unknown"] * 3
    assert recovered.counters["lookup_not_reached"] == 3

    fake.list_failure = None
    clock.advance(seconds=CONFIG.lease_seconds)
    await recovered.reconcile()
    assert [(await row(database, i))["status"] for i in rows] == ["sent"] * 3
    assert len(fake.messages) == 3  # nothing sent twice


# --------------------------------------------------------------------------- Twilio


@pytest.fixture
async def twilio(clock: FrozenClock) -> AsyncIterator[tuple[FakeTwilio, dict[str, Any]]]:
    fake = FakeTwilio(now=clock.now)
    server = TestServer(fake.app, host="127.0.0.1")
    await server.start_server()
    options = {
        "account_sid": ACCOUNT_SID,
        "auth_token": AUTH_TOKEN,
        "from_number": TWILIO_FROM,
        "base_url": str(server.make_url("")).rstrip("/"),
    }
    yield fake, options
    fake.release()
    await server.close()


def on_record(fake: FakeTwilio, monkeypatch: pytest.MonkeyPatch) -> asyncio.Event:
    """Set once the fake has taken a message (and before it answers)."""
    recorded = asyncio.Event()
    record = fake._record

    def record_and_tell(*args: Any) -> dict[str, Any]:
        resource = record(*args)
        recorded.set()
        return resource

    monkeypatch.setattr(fake, "_record", record_and_tell)
    return recorded


@pytest.mark.parametrize("identical", [False, True])
async def test_a_twilio_send_from_a_killed_process_is_found_by_another(
    database: Database,
    clock: FrozenClock,
    twilio: tuple[FakeTwilio, dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
    identical: bool,
) -> None:
    """Process A is killed while Twilio holds its message (the answer never came back);
    process B, with its own provider instance, finds it rather than answering "cannot
    tell". With two identical rows to one customer, one of which never left, B matches the
    one message to one row only, and sends the other."""
    fake, options = twilio
    count = 2 if identical else 1
    rows = await add_rows(
        database, clock, "twilio", count, phone="+14155550100", text="See you at 10 tomorrow"
    )
    a = TwilioProvider(options)
    killed = dispatcher(database, clock, {"twilio": a}, "killed")
    claimed = [c for _ in rows for c in await killed.claim()]  # one a claim at 1/s
    assert [c.id for c in claimed] == rows
    fake.fail_next("timeout_after_record")  # Twilio takes it; the answer never comes
    recorded = on_record(fake, monkeypatch)
    tick = asyncio.create_task(killed.deliver(claimed[:1]))
    await recorded.wait()
    tick.cancel()  # kill -9: nothing recorded, the other row never sent
    with pytest.raises(asyncio.CancelledError):
        await tick
    await a.close()
    (sid,) = fake.messages

    clock.advance(seconds=CONFIG.lease_seconds + 1)
    b = TwilioProvider(options)
    recovered = dispatcher(database, clock, {"twilio": b}, "recovered")
    try:
        await recovered.reconcile()
        found = [dict(await row(database, i)) for i in rows]
        # One message, one row (either: they look the same); the other was not found.
        assert sorted((r["status"], r["provider_ref"]) for r in found) == sorted(
            [("sent", sid)] + [("pending", None)] * (count - 1)
        )
        await recovered.drain()
        after = [await row(database, i) for i in rows]
        assert [r["status"] for r in after] == ["sent"] * count
        assert len({r["provider_ref"] for r in after}) == count
    finally:
        await b.close()
    assert len(fake.messages) == count  # each row at Twilio exactly once
