"""After a crash, the vendor's lookup fails: nothing may be sent again on that account.

The audit's case: dangol is killed with messages at SOLAPI whose answers it never recorded;
during recovery SOLAPI's list endpoint answers 503 (or hangs, or holds more messages in the
window than a lookup reads). Such a lookup is no "not found": the rows stay in doubt and
are asked about again, and after `lookup_give_up_seconds` they are failed as "cannot tell"
for the owner to decide — the vendor still holds one copy of each.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from fakes.solapi import FakeSolapi
from support.outbox import CONFIG, Sleeps, add_message, add_shop, message, row

from core.clock import FrozenClock
from core.config import OutboxConfig
from core.db import Database
from core.outbox import OutboxRequest, enqueue
from providers.base import Outgoing, Recipient
from providers.registry import Providers
from providers.solapi import SolapiProvider
from scheduler.dispatch import Dispatcher

ROWS = 5
GIVE_UP = 300.0
SETTINGS = OutboxConfig(**{**CONFIG.__dict__, "lookup_give_up_seconds": GIVE_UP})


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
                "timeout": 0.3,
            },
            session,
            clock=clock.now,
        )
        yield fake, provider
    fake.release()
    await server.close()


def dispatcher(
    database: Database, clock: FrozenClock, provider: SolapiProvider, owner: str
) -> Dispatcher:
    return Dispatcher(
        database,
        Providers({"solapi": provider}),
        clock,
        SETTINGS,
        owner_id=owner,
        rng=random.Random(7),
        sleep=Sleeps(),
        send_timeout=5.0,
    )


async def sent_but_not_recorded(
    database: Database, clock: FrozenClock, provider: SolapiProvider
) -> list[tuple[int, int]]:
    """ROWS messages that reached SOLAPI from a process killed before it recorded them:
    (outbox id, message id) of each."""
    now = clock.now()
    shop = await add_shop(database, now)
    made = []
    for i in range(ROWS):
        message_id = await add_message(database, shop, now)
        outbox_id = await database.write(
            lambda conn, i=i, m=message_id: enqueue(
                conn,
                OutboxRequest(
                    shop_id=shop,
                    purpose="reply",
                    provider="solapi",
                    recipient={"phone": f"+8210222233{i:02d}"},
                    payload={"text": f"내일 10시에 방문드릴게요 {i}"},
                    idempotency_key=f"crash:{i}",
                    now=now,
                    message_id=m,
                ),
            )
        )
        assert outbox_id is not None
        made.append((outbox_id, message_id))
    killed = dispatcher(database, clock, provider, "killed")
    await killed.deliver(await killed.claim())  # ...and kill -9 before `record`
    return made


def break_lookups(fake: FakeSolapi, provider: SolapiProvider, how: str) -> None:
    if how == "window":  # two pages of one message, and two others come first
        provider.lookup_page_size, provider.lookup_max_pages = 1, 2
    else:
        fake.list_failure = how


def outgoing(ref: str) -> Outgoing:
    return Outgoing(ref=ref, recipient=Recipient(phone="+821099998888"), text="다른 안내")


def copies(fake: FakeSolapi, outbox_id: int) -> int:
    return fake.refs().count(str(outbox_id))


@pytest.mark.parametrize("how", ["503", "hang", "window"])
async def test_a_failing_lookup_never_resends_and_ends_as_cannot_tell(
    database: Database,
    clock: FrozenClock,
    solapi: tuple[FakeSolapi, SolapiProvider],
    how: str,
) -> None:
    fake, provider = solapi
    if how == "window":  # earlier messages in the window: a lookup reads only these
        await provider.send([outgoing("other-1"), outgoing("other-2")])
    made = await sent_but_not_recorded(database, clock, provider)
    assert all(copies(fake, outbox_id) == 1 for outbox_id, _ in made)
    sends = len(fake.requests)
    break_lookups(fake, provider, how)
    clock.advance(seconds=SETTINGS.lease_seconds + 1)  # the killed process's lease is over
    recovered = dispatcher(database, clock, provider, "recovered")

    asked = fake.lists
    for _ in range(int(GIVE_UP // SETTINGS.lease_seconds) - 1):
        await recovered.tick()
        for outbox_id, _ in made:
            assert (await row(database, outbox_id))["status"] == "unknown"
        clock.advance(seconds=SETTINGS.lease_seconds)
    assert fake.lists > asked  # it kept asking
    assert len(fake.requests) == sends  # and never sent again

    clock.advance(seconds=GIVE_UP)
    await recovered.tick()
    for outbox_id, message_id in made:
        item = await row(database, outbox_id)
        assert item["status"] == "dead"
        assert "cannot tell whether it arrived" in item["last_error"]
        assert (await message(database, message_id))["status"] == "failed"  # 다시 보내기
        assert copies(fake, outbox_id) == 1
    clock.advance(hours=1)
    await recovered.tick()
    assert len(fake.requests) == sends


async def test_when_the_lookup_works_again_the_messages_are_found(
    database: Database, clock: FrozenClock, solapi: tuple[FakeSolapi, SolapiProvider]
) -> None:
    fake, provider = solapi
    made = await sent_but_not_recorded(database, clock, provider)
    fake.list_failure = "503"
    clock.advance(seconds=SETTINGS.lease_seconds + 1)
    recovered = dispatcher(database, clock, provider, "recovered")
    await recovered.tick()
    clock.advance(seconds=SETTINGS.lease_seconds)
    fake.list_failure = None
    await recovered.tick()
    for outbox_id, message_id in made:
        item: Any = await row(database, outbox_id)
        assert (item["status"], item["attempts"]) == ("sent", 1)
        assert (await message(database, message_id))["status"] == "sent"
        assert copies(fake, outbox_id) == 1
    assert len(fake.requests) == 1
