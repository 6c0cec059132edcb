"""The outbox at the vendors' real rates: Twilio's adapter sends 1 message a second.

Claims are sized to what each provider can send within the lease, every vendor call has its
own time limit, and a message not yet handed to its vendor when the send window closes
goes back to wait — never "unknown", never a spent try. The rate limiter runs on the
injected clock (its waits move the FrozenClock), so a minute of sending takes no minute.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from typing import Any

import aiohttp
import pytest
import sqlalchemy as sa
from aiohttp import web
from aiohttp.test_utils import TestServer
from fakes.twilio import ACCOUNT_SID, AUTH_TOKEN, FakeTwilio
from support.outbox import CONFIG, Sleeps, add_shop, put, row

from core.clock import FrozenClock
from core.config import OutboxConfig
from core.db import Database
from core.outbox import OUTBOX
from providers.fake import FakeProvider
from providers.registry import Providers
from providers.twilio import TwilioProvider
from scheduler.dispatch import Dispatcher

CUSTOMER = "+14155550123"
DEFAULTS = OutboxConfig()  # batch 50, lease 120 s: what a real installation runs with


def on_clock(clock: FrozenClock, real_fraction: float = 0.0) -> Callable[[float], Awaitable[None]]:
    """A sleep for the rate limiter that moves the injected clock by the full wait. With
    `real_fraction`, it also really waits that fraction of it, so that time limits kept by
    the event loop (scaled by the same fraction) see the wait too."""

    async def sleep(seconds: float) -> None:
        clock.advance(seconds=seconds)
        await asyncio.sleep(seconds * real_fraction)

    return sleep


def seconds_on(clock: FrozenClock) -> Callable[[], float]:
    start = clock.now()
    return lambda: (clock.now() - start).total_seconds()


@pytest.fixture
async def fake() -> AsyncIterator[FakeTwilio]:
    fake = FakeTwilio(hang_seconds=5.0)
    yield fake
    fake.release()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


Start = Callable[..., Awaitable[TwilioProvider]]


@pytest.fixture
async def twilio(
    fake: FakeTwilio, session: aiohttp.ClientSession, clock: FrozenClock
) -> AsyncIterator[Start]:
    """Serves the fake Twilio and builds the real adapter (one per process: each call is a
    fresh one, remembering nothing) at its default rate, 1/s."""
    servers: list[TestServer] = []

    async def start(real_fraction: float = 0.0, rate: float = 1.0) -> TwilioProvider:
        if not servers:
            servers.append(TestServer(fake.app, host="127.0.0.1"))
            await servers[0].start_server()
        server = servers[0]
        return TwilioProvider(
            {
                "account_sid": ACCOUNT_SID,
                "auth_token": AUTH_TOKEN,
                "from_number": "+14155550199",
                "base_url": str(server.make_url("")).rstrip("/"),
                "rate_per_second": rate,
            },
            session,
            monotonic=seconds_on(clock),
            sleep=on_clock(clock, real_fraction),
        )

    yield start
    fake.release()
    for server in servers:
        await server.close()


def dispatcher(
    database: Database,
    clock: FrozenClock,
    providers: dict[str, Any],
    config: OutboxConfig = DEFAULTS,
    **kwargs: Any,
) -> Dispatcher:
    return Dispatcher(
        database,
        Providers(providers),
        clock,
        config,
        owner_id="proc-a",
        rng=random.Random(7),
        sleep=Sleeps(),
        **kwargs,
    )


async def statuses(database: Database) -> dict[str, int]:
    async with database.read() as conn:
        found = await conn.execute(
            sa.select(OUTBOX.c.status, sa.func.count()).group_by(OUTBOX.c.status)
        )
        return {status: int(n) for status, n in found}


def copies(fake: FakeTwilio) -> dict[str, int]:
    """How many times the vendor got each text (every row's text is different)."""
    counts: dict[str, int] = {}
    for message in fake.messages.values():
        counts[message["body"]] = counts.get(message["body"], 0) + 1
    return counts


# --------------------------------------------------------------------------- claims


async def test_a_claim_takes_no_more_than_each_provider_can_send_in_time(
    database: Database, clock: FrozenClock, twilio: Start
) -> None:
    """Twilio at 1/s takes 1 row (what it sends in a second), at 20/s 20, and an unlimited
    provider the whole batch of 50 — each provider claimed on its own, not 50 rows all
    told."""
    shop = await add_shop(database, clock.now())
    await put(database, shop, clock.now(), count=60, provider="twilio", key="t", phone=CUSTOMER)
    await put(database, shop, clock.now(), count=60, provider="fast", key="s", phone=CUSTOMER)
    await put(database, shop, clock.now(), count=60, provider="fake", key="f")
    providers = {"twilio": await twilio(), "fast": await twilio(rate=20), "fake": FakeProvider()}
    outbox = dispatcher(database, clock, providers, config=CONFIG)
    claimed = await outbox.claim()
    assert {name: sum(c.provider == name for c in claimed) for name in providers} == {
        "twilio": 1,
        "fast": 20,
        "fake": 50,
    }
    assert outbox.more_due  # they all had more: drain goes round again


# --------------------------------------------------------------------------- a burst


async def test_sixty_twilio_messages_at_one_a_second_each_go_once(
    database: Database, clock: FrozenClock, fake: FakeTwilio, twilio: Start
) -> None:
    """The audit's burst: 60 rows, Twilio at 1/s, the default lease (120 s). Time runs 200
    times faster here — the rate limiter's waits move the clock by the full second and
    really wait 5 ms, and the send timeout (a quarter of the lease) is scaled alike — so a
    time limit on the whole batch would cut it off where it did in production (after 30 of
    50, the other 20 never attempted, all 50 "unknown", then dead as "cannot tell")."""
    scale = 1 / 200
    shop = await add_shop(database, clock.now())
    ids = await put(database, shop, clock.now(), count=60, provider="twilio", phone=CUSTOMER)
    provider = await twilio(real_fraction=scale)
    outbox = dispatcher(
        database, clock, {"twilio": provider}, send_timeout=DEFAULTS.lease_seconds / 4 * scale
    )
    start = clock.now()

    await outbox.drain()
    while outbox.more_due:  # as the ticks loop runs it again
        await outbox.drain()

    assert await statuses(database) == {"sent": 60}
    assert copies(fake) == {f"안녕하세요 {i}": 1 for i in range(60)}
    for outbox_id in ids:
        assert (await row(database, outbox_id))["attempts"] == 1
    assert (clock.now() - start).total_seconds() >= 59  # it did take a minute at 1/s


async def test_a_vendor_slower_than_its_rate_leaves_the_rest_unsent_not_unknown(
    database: Database, clock: FrozenClock, fake: FakeTwilio, twilio: Start
) -> None:
    """Twilio (at 10/s here) answers in 7 s, not the 0.1 s its rate allows, so a round of
    10 outlasts half the lease: after 60 s the 9 sent are recorded and the one never handed
    over goes back to wait, with no try counted — it was never "unknown" — for the next
    round."""

    @web.middleware
    async def slow(request: web.Request, handler: Any) -> web.StreamResponse:
        clock.advance(seconds=7)
        response: web.StreamResponse = await handler(request)
        return response

    fake.app.middlewares.append(slow)
    shop = await add_shop(database, clock.now())
    ids = await put(database, shop, clock.now(), count=12, provider="twilio", phone=CUSTOMER)
    outbox = dispatcher(database, clock, {"twilio": await twilio(rate=10)})

    await outbox.tick()  # claims 10
    assert await statuses(database) == {"sent": 9, "pending": 3}
    held = await row(database, ids[9])
    assert (held["status"], held["attempts"], held["not_before"]) == ("pending", 0, clock.now())
    assert "not sent within 60 s" in held["last_error"]
    assert len(fake.requests) == 9

    await outbox.drain()
    assert await statuses(database) == {"sent": 12}
    assert copies(fake) == {f"안녕하세요 {i}": 1 for i in range(12)}


async def test_a_call_cut_off_by_its_time_limit_leaves_only_its_own_message_in_doubt(
    database: Database, clock: FrozenClock, fake: FakeTwilio, twilio: Start
) -> None:
    """Twilio takes the first message and never answers: that one is unknown (then found
    by lookup), while the four after it are sent — none of them was ever in doubt."""
    shop = await add_shop(database, clock.now())
    first, *rest = await put(
        database, shop, clock.now(), count=5, provider="twilio", phone=CUSTOMER
    )
    outbox = dispatcher(database, clock, {"twilio": await twilio()}, send_timeout=0.2)
    fake.fail_next("timeout_after_record")

    await outbox.drain()
    assert (await row(database, first))["status"] == "unknown"
    for outbox_id in rest:
        item = await row(database, outbox_id)
        assert (item["status"], item["attempts"]) == ("sent", 1)

    clock.advance(seconds=DEFAULTS.backoff_base_seconds)
    await outbox.tick()
    assert (await row(database, first))["status"] == "sent"
    assert copies(fake) == {f"안녕하세요 {i}": 1 for i in range(5)}


# --------------------------------------------------------------------------- crashes


async def test_a_claimed_row_is_handed_over_at_once_never_left_waiting_its_turn(
    database: Database, clock: FrozenClock, fake: FakeTwilio, twilio: Start
) -> None:
    """At 1/s, each Twilio row is claimed only when it may go: when the vendor gets it, it
    is the only row in `sending` and was claimed that very moment (no rate wait since)."""
    seen: list[tuple[int, float]] = []  # (rows in sending, seconds since their claim)

    @web.middleware
    async def watch(request: web.Request, handler: Any) -> web.StreamResponse:
        async with database.read() as conn:
            leases = (
                (
                    await conn.execute(
                        sa.select(OUTBOX.c.lease_until).where(OUTBOX.c.status == "sending")
                    )
                )
                .scalars()
                .all()
            )
        for lease_until in leases:
            claimed_at = lease_until - timedelta(seconds=DEFAULTS.lease_seconds)
            seen.append((len(leases), (clock.now() - claimed_at).total_seconds()))
        response: web.StreamResponse = await handler(request)
        return response

    fake.app.middlewares.append(watch)
    shop = await add_shop(database, clock.now())
    await put(database, shop, clock.now(), count=5, provider="twilio", phone=CUSTOMER)
    outbox = dispatcher(database, clock, {"twilio": await twilio()})
    await outbox.drain()
    assert await statuses(database) == {"sent": 5}
    assert seen == [(1, 0.0)] * 5


async def test_after_a_kill_the_message_on_the_wire_is_looked_up_and_sent_once(
    database: Database, clock: FrozenClock, fake: FakeTwilio, twilio: Start
) -> None:
    """The process dies while the third request is on its way to Twilio. After the restart
    (a new adapter, remembering nothing), the third is looked up by what its outbox row
    holds, not found — Twilio never took it — and sent; every message is sent exactly once:
    none was claimed and waiting."""
    on_the_wire = asyncio.Event()

    @web.middleware
    async def die_on_the_third(request: web.Request, handler: Any) -> web.StreamResponse:
        if len(fake.requests) == 2 and not on_the_wire.is_set():
            on_the_wire.set()
            await fake._hang()  # the answer never comes: the process is gone
        response: web.StreamResponse = await handler(request)
        return response

    fake.app.middlewares.append(die_on_the_third)
    shop = await add_shop(database, clock.now())
    ids = await put(database, shop, clock.now(), count=5, provider="twilio", phone=CUSTOMER)
    running = asyncio.create_task(dispatcher(database, clock, {"twilio": await twilio()}).drain())
    await on_the_wire.wait()
    running.cancel()  # kill -9
    with contextlib.suppress(asyncio.CancelledError):
        await running

    clock.advance(seconds=DEFAULTS.lease_seconds + 1)
    restarted = dispatcher(database, clock, {"twilio": await twilio()})
    await restarted.drain()
    while restarted.more_due:
        await restarted.drain()

    final = {i: (await row(database, i))["status"] for i in ids}
    assert final == dict.fromkeys(ids, "sent")
    assert copies(fake) == {f"안녕하세요 {i}": 1 for i in range(5)}
