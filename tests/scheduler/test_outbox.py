"""The outbox: enqueue, claim with a lease, send, record — on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection
from support.outbox import CONFIG, PHONE, Sleeps, add_message, add_shop, message, put, row

from core.clock import FrozenClock
from core.config import OutboxConfig
from core.db import Database
from core.outbox import (
    OUTBOX,
    AttachedPhoto,
    OutboxRequest,
    PhotoUnavailable,
    cancel,
    enqueue,
    requeue,
)
from providers.base import (
    CannotTell,
    NotYet,
    PermanentError,
    RateLimited,
    SendRef,
    SendResult,
    TransientError,
    UnknownOutcome,
)
from providers.console import ConsoleProvider
from providers.fake import FakeProvider
from providers.registry import Providers
from scheduler.dispatch import Dispatcher
from scheduler.dispatch.claims import Claimed
from scheduler.dispatch.outgoing import build_outgoing


def make_dispatcher(
    database: Database,
    clock: FrozenClock,
    fake: FakeProvider,
    *,
    owner: str = "proc-a",
    config: OutboxConfig = CONFIG,
    sleeps: Sleeps | None = None,
    **kwargs: Any,
) -> Dispatcher:
    providers = Providers({"fake": fake, "console": ConsoleProvider({"show_text": False})})
    return Dispatcher(
        database,
        providers,
        clock,
        config,
        owner_id=owner,
        rng=random.Random(7),
        sleep=sleeps or Sleeps(),
        **kwargs,
    )


@pytest.fixture
def fake() -> FakeProvider:
    return FakeProvider()


@pytest.fixture
async def shop(database: Database, clock: FrozenClock) -> int:
    return await add_shop(database, clock.now())


# --------------------------------------------------------------------------- enqueue


async def test_enqueue_is_idempotent(database: Database, clock: FrozenClock, shop: int) -> None:
    now = clock.now()
    other = await add_shop(database, now, "other")

    def twice(conn: Connection) -> list[int | None]:
        args: dict[str, Any] = {
            "purpose": "journey:aftercare",
            "provider": "fake",
            "recipient": {"phone": PHONE},
            "payload": {"text": "관리 팁"},
            "idempotency_key": "journey:aftercare:job:123",
            "now": now,
        }
        return [
            enqueue(conn, OutboxRequest(shop_id=shop, **args)),
            enqueue(conn, OutboxRequest(shop_id=shop, **args)),
        ]

    first, second = await database.write(twice)
    assert isinstance(first, int)
    assert second is None
    # a later transaction, and a double planner tick, change nothing either
    again = await asyncio.gather(database.write(twice), database.write(twice))
    assert list(again) == [[None, None], [None, None]]
    # the key is unique per shop, not across shops
    assert await put(database, other, now, key="journey:aftercare:job:123") != []

    async with database.read() as conn:
        count = await conn.execute(
            sa.select(sa.func.count()).select_from(OUTBOX).where(OUTBOX.c.shop_id == shop)
        )
        assert count.scalar_one() == 1
    item = await row(database, first)
    assert (item["status"], item["attempts"], item["not_before"]) == ("pending", 0, now)


async def test_enqueue_refuses_a_payload_without_text(
    database: Database, clock: FrozenClock, shop: int
) -> None:
    def unit(conn: Connection) -> int | None:
        return enqueue(
            conn,
            OutboxRequest(
                shop_id=shop,
                purpose="reply",
                provider="fake",
                recipient={"phone": PHONE},
                payload={"subject": "제목만"},
                idempotency_key="x",
                now=clock.now(),
            ),
        )

    with pytest.raises(ValueError, match="text"):
        await database.write(unit)


# --------------------------------------------------------------------------- the happy path


async def test_tick_sends_due_rows_and_updates_the_message(
    database: Database, clock: FrozenClock, shop: int, fake: FakeProvider
) -> None:
    now = clock.now()
    mid = await add_message(database, shop, now)
    (oid,) = await put(database, shop, now, message_id=mid, subject="안내")

    def later(conn: Connection) -> int | None:
        return enqueue(
            conn,
            OutboxRequest(
                shop_id=shop,
                purpose="journey:aftercare",
                provider="fake",
                recipient={"phone": PHONE},
                payload={"text": "일주일 뒤"},
                idempotency_key="later",
                now=now,
                not_before=now + timedelta(days=7),
            ),
        )

    later_id = await database.write(later)
    assert later_id is not None
    dispatcher = make_dispatcher(database, clock, fake)

    assert await dispatcher.tick() == 1
    assert fake.sent_refs() == [str(oid)]
    sent = fake.sent[0]
    assert (sent.text, sent.subject, sent.purpose, sent.recipient.phone) == (
        "안녕하세요 0",
        "안내",
        "reply",
        PHONE,
    )
    item = await row(database, oid)
    assert item["status"] == "sent"
    assert item["sent_at"] == now
    assert item["provider_ref"] == "fake-1"
    assert (item["lease_owner"], item["lease_until"], item["attempts"]) == (None, None, 1)
    msg = await message(database, mid)
    assert (msg["status"], msg["path"], msg["provider"], msg["provider_message_id"]) == (
        "sent",
        "fake",
        "fake",
        "fake-1",
    )
    assert msg["delivered_at"] is None
    assert (await row(database, later_id))["status"] == "pending"
    assert await dispatcher.tick() == 0  # nothing is sent twice


async def test_a_delivered_result_marks_the_message_delivered(
    database: Database, clock: FrozenClock, shop: int, fake: FakeProvider
) -> None:
    now = clock.now()
    mid = await add_message(database, shop, now)
    await put(database, shop, now, provider="console", message_id=mid)
    await make_dispatcher(database, clock, fake).tick()
    msg = await message(database, mid)
    assert (msg["status"], msg["path"], msg["delivered_at"]) == ("delivered", "console", now)


async def test_concurrent_dispatchers_send_each_row_exactly_once(
    database: Database, db_url: tuple[str, str | None], clock: FrozenClock, shop: int
) -> None:
    ids = await put(database, shop, clock.now(), count=20)
    url, schema = db_url
    second = Database(url, search_path=schema)  # another process, as far as the rows can tell
    await second.start()
    fake = FakeProvider()
    small = OutboxConfig(**{**CONFIG.__dict__, "batch_size": 3})
    try:
        a = make_dispatcher(database, clock, fake, owner="proc-a", config=small)
        b = make_dispatcher(second, clock, fake, owner="proc-b", config=small)
        await asyncio.gather(a.drain(), b.drain(), a.drain(), b.drain())
        await asyncio.gather(a.tick(), b.tick())
    finally:
        await second.close()
    assert sorted(fake.sent_refs(), key=int) == [str(i) for i in ids]
    for oid in ids:
        item = await row(database, oid)
        assert (item["status"], item["attempts"]) == ("sent", 1)


# --------------------------------------------------------------------------- leases


async def test_an_expired_lease_is_reclaimed_after_a_lookup(
    database: Database, clock: FrozenClock, shop: int, fake: FakeProvider
) -> None:
    (oid,) = await put(database, shop, clock.now())
    crashed = make_dispatcher(database, clock, fake, owner="crashed")
    assert [c.id for c in await crashed.claim()] == [oid]  # ...and the process dies here

    other = make_dispatcher(database, clock, fake, owner="proc-b")
    assert await other.tick() == 0  # the lease still holds
    clock.advance(seconds=CONFIG.lease_seconds + 1)
    assert await other.tick() == 2  # reconciled, then claimed and sent
    assert [ref.ref for ref in fake.lookups] == [str(oid)]
    assert fake.sent_refs() == [str(oid)]
    item = await row(database, oid)
    assert (item["status"], item["attempts"], item["lease_owner"]) == ("sent", 2, None)


async def test_a_crash_after_the_provider_accepted_is_not_sent_again(
    database: Database, clock: FrozenClock, shop: int, fake: FakeProvider
) -> None:
    (oid,) = await put(database, shop, clock.now())
    crashed = make_dispatcher(database, clock, fake, owner="crashed")
    await crashed.deliver(await crashed.claim())  # sent, but never recorded
    clock.advance(seconds=CONFIG.lease_seconds + 1)
    await make_dispatcher(database, clock, fake, owner="proc-b").tick()
    assert len(fake.calls) == 1
    item = await row(database, oid)
    assert (item["status"], item["provider_ref"]) == ("sent", "fake-1")


async def test_a_stolen_lease_cannot_record(
    database: Database, clock: FrozenClock, shop: int, fake: FakeProvider
) -> None:
    now = clock.now()
    mid = await add_message(database, shop, now)
    (oid,) = await put(database, shop, now, message_id=mid)
    slow = make_dispatcher(database, clock, fake, owner="slow")
    claimed = await slow.claim()

    clock.advance(seconds=CONFIG.lease_seconds + 1)
    fast = make_dispatcher(database, clock, fake, owner="fast")
    await fast.tick()
    assert (await row(database, oid))["status"] == "sent"

    fake.fail_next(PermanentError("늦은 실패"))
    outcomes = await slow.deliver(claimed)
    assert await slow.record(claimed, outcomes) == 0
    assert slow.counters["lost_lease"] == 1
    item = await row(database, oid)
    assert (item["status"], item["provider_ref"], item["last_error"]) == ("sent", "fake-1", None)
    assert (await message(database, mid))["status"] == "sent"


# --------------------------------------------------------------------------- failures


async def test_a_blip_is_retried_within_the_call(
    database: Database, clock: FrozenClock, shop: int, fake: FakeProvider
) -> None:
    (oid,) = await put(database, shop, clock.now())
    fake.fail_next(TransientError("502 Bad Gateway"))
    sleeps = Sleeps()
    await make_dispatcher(database, clock, fake, sleeps=sleeps).tick()
    assert len(fake.calls) == 2
    assert len(sleeps.calls) == 1
    assert 0.2 <= sleeps.calls[0] <= 1.0
    assert ((await row(database, oid))["status"], (await row(database, oid))["attempts"]) == (
        "sent",
        1,
    )


async def test_transient_failure_backs_off_then_succeeds(
    database: Database, clock: FrozenClock, shop: int, fake: FakeProvider
) -> None:
    start = clock.now()
    (oid,) = await put(database, shop, start)
    fake.fail_next(TransientError("503 Service Unavailable"), times=3)  # outlasts in-call retries
    dispatcher = make_dispatcher(database, clock, fake)

    assert await dispatcher.tick() == 1
    item = await row(database, oid)
    assert (item["status"], item["attempts"], item["lease_owner"]) == ("pending", 1, None)
    assert item["last_error"] == "503 Service Unavailable"
    delay = (item["not_before"] - start).total_seconds()
    assert 8.0 <= delay <= 12.0  # 10 s ± 20 %

    assert await dispatcher.tick() == 0  # not yet
    clock.advance(seconds=delay)
    assert await dispatcher.tick() == 1
    item = await row(database, oid)
    assert (item["status"], item["attempts"], item["last_error"]) == ("sent", 2, None)
    assert fake.sent_refs() == [str(oid)]


async def test_backoff_grows_and_is_capped(
    database: Database, clock: FrozenClock, fake: FakeProvider
) -> None:
    dispatcher = make_dispatcher(database, clock, fake)
    for attempts, base in [(1, 10), (2, 20), (3, 40), (6, 320)]:
        assert base * 0.8 <= dispatcher.backoff(attempts) <= base * 1.2
    assert dispatcher.backoff(30) <= CONFIG.backoff_max_seconds
    assert dispatcher.backoff(1, retry_after=90) == 90


async def test_max_attempts_then_dead(
    database: Database, clock: FrozenClock, shop: int, fake: FakeProvider
) -> None:
    now = clock.now()
    mid = await add_message(database, shop, now)
    (oid,) = await put(database, shop, now, message_id=mid)
    fake.fail_for(str(oid), TransientError("503"))
    dispatcher = make_dispatcher(database, clock, fake, in_call_retries=0)
    for _ in range(CONFIG.max_attempts):
        assert await dispatcher.tick() == 1
        clock.advance(seconds=CONFIG.backoff_max_seconds)
    item = await row(database, oid)
    assert (item["status"], item["attempts"]) == ("dead", 3)
    assert item["last_error"] == "gave up after 3 attempts: 503"
    assert await dispatcher.tick() == 0
    msg = await message(database, mid)
    assert (msg["status"], msg["error"]) == ("failed", "gave up after 3 attempts: 503")


async def test_permanent_error_is_dead_at_once(
    database: Database, clock: FrozenClock, shop: int, fake: FakeProvider
) -> None:
    now = clock.now()
    mid = await add_message(database, shop, now)
    (oid,) = await put(database, shop, now, message_id=mid)
    fake.fail_for(PHONE, PermanentError("수신거부 번호", code="3059"))
    await make_dispatcher(database, clock, fake).tick()
    assert len(fake.calls) == 1
    item = await row(database, oid)
    assert (item["status"], item["attempts"], item["last_error"]) == (
        "dead",
        1,
        "수신거부 번호 [3059]",
    )
    msg = await message(database, mid)
    assert (msg["status"], msg["error"], msg["provider"]) == (
        "failed",
        "수신거부 번호 [3059]",
        "fake",
    )


async def test_rate_limited_waits_in_call_when_short(
    database: Database, clock: FrozenClock, shop: int, fake: FakeProvider
) -> None:
    (oid,) = await put(database, shop, clock.now())
    fake.fail_next(RateLimited(retry_after=1.5))
    sleeps = Sleeps()
    await make_dispatcher(database, clock, fake, sleeps=sleeps).tick()
    assert sleeps.calls
    assert sleeps.calls[0] >= 1.5
    assert (await row(database, oid))["status"] == "sent"


async def test_rate_limited_with_a_long_wait_goes_back_to_the_outbox(
    database: Database, clock: FrozenClock, shop: int, fake: FakeProvider
) -> None:
    start = clock.now()
    (oid,) = await put(database, shop, start)
    fake.fail_next(RateLimited("too many requests", retry_after=45))
    sleeps = Sleeps()
    await make_dispatcher(database, clock, fake, sleeps=sleeps).tick()
    assert len(fake.calls) == 1
    assert sleeps.calls == []
    item = await row(database, oid)
    assert item["status"] == "pending"
    assert item["not_before"] == start + timedelta(seconds=45)  # retry_after beats 10 s backoff


async def test_waiting_for_lawful_hours_spends_no_attempt(
    database: Database, clock: FrozenClock, shop: int, fake: FakeProvider
) -> None:
    """An ad held night after night (NotYet) must not run out of tries, even with one."""
    (oid,) = await put(database, shop, clock.now())
    one_try = OutboxConfig(**{**CONFIG.__dict__, "max_attempts": 1})
    dispatcher = make_dispatcher(database, clock, fake, config=one_try)
    for _night in range(3):
        fake.fail_next(
            NotYet("광고는 08:00–21:00에만 보내요", retry_after=11 * 3600, code="ad_hours")
        )
        held_at = clock.now()
        await dispatcher.tick()
        item = await row(database, oid)
        assert (item["status"], item["attempts"]) == ("pending", 0)
        assert item["not_before"] == held_at + timedelta(hours=11)
        assert item["last_error"] == "광고는 08:00–21:00에만 보내요 [ad_hours]"
        clock.advance(hours=11)
    await dispatcher.tick()
    item = await row(database, oid)
    assert (item["status"], item["attempts"]) == ("sent", 1)
    assert len(fake.calls) == 4


async def test_unknown_provider_is_dead(
    database: Database, clock: FrozenClock, shop: int, fake: FakeProvider
) -> None:
    now = clock.now()
    mid = await add_message(database, shop, now)
    (oid,) = await put(database, shop, now, provider="twilio", message_id=mid)
    await make_dispatcher(database, clock, fake).tick()
    item = await row(database, oid)
    assert item["status"] == "dead"
    assert "'twilio' is not configured" in item["last_error"]
    assert (await message(database, mid))["status"] == "failed"


async def test_a_row_the_provider_cannot_carry_is_dead(
    database: Database, clock: FrozenClock, shop: int, fake: FakeProvider
) -> None:
    (oid,) = await put(database, shop, clock.now(), text="가" * 2001)
    await make_dispatcher(database, clock, fake).tick()
    item = await row(database, oid)
    assert item["status"] == "dead"
    assert "2001 characters" in item["last_error"]
    assert fake.calls == []


# --------------------------------------------------------------------------- unknown outcomes


async def test_unknown_outcome_found_by_lookup_is_not_sent_again(
    database: Database, clock: FrozenClock, shop: int, fake: FakeProvider
) -> None:
    now = clock.now()
    mid = await add_message(database, shop, now)
    (oid,) = await put(database, shop, now, message_id=mid)
    fake.outcome_unknown_next()
    dispatcher = make_dispatcher(database, clock, fake)

    await dispatcher.tick()
    item = await row(database, oid)
    assert (item["status"], item["lease_owner"]) == ("unknown", None)
    assert "시간 초과" in item["last_error"]
    assert (await message(database, mid))["status"] == "queued"
    assert await dispatcher.tick() == 0  # the check is not due yet

    clock.advance(seconds=CONFIG.backoff_base_seconds)
    assert await dispatcher.tick() == 1
    assert len(fake.calls) == 1
    assert [r.ref for r in fake.lookups] == [str(oid)]
    item = await row(database, oid)
    assert (item["status"], item["provider_ref"], item["attempts"]) == ("sent", "fake-1", 1)
    assert (await message(database, mid))["status"] == "sent"


async def test_unknown_outcome_not_found_is_resent_once_after_the_lease(
    database: Database, clock: FrozenClock, shop: int, fake: FakeProvider
) -> None:
    (oid,) = await put(database, shop, clock.now())
    fake.fail_next(UnknownOutcome("read timeout"))  # the request never got there
    dispatcher = make_dispatcher(database, clock, fake)

    await dispatcher.tick()
    assert (await row(database, oid))["status"] == "unknown"
    clock.advance(seconds=CONFIG.backoff_base_seconds)
    await dispatcher.tick()  # not found, but the provider may still be catching up
    assert (await row(database, oid))["status"] == "unknown"
    assert len(fake.calls) == 1

    clock.advance(seconds=CONFIG.lease_seconds)
    await dispatcher.tick()
    assert len(fake.calls) == 2
    assert fake.sent_refs() == [str(oid)]
    item = await row(database, oid)
    assert (item["status"], item["attempts"]) == ("sent", 2)
    for _ in range(3):
        clock.advance(seconds=CONFIG.lease_seconds)
        await dispatcher.tick()
    assert len(fake.calls) == 2


async def test_a_provider_that_cannot_tell_never_resends_an_unknown_outcome(
    database: Database,
    clock: FrozenClock,
    shop: int,
    fake: FakeProvider,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def cannot_tell(ref: SendRef) -> None:
        raise CannotTell("no search by our ref")

    monkeypatch.setattr(fake, "lookup", cannot_tell)
    (oid,) = await put(database, shop, clock.now())
    fake.fail_next(UnknownOutcome("read timeout"))
    dispatcher = make_dispatcher(database, clock, fake)
    await dispatcher.tick()
    for _ in range(3):
        clock.advance(seconds=CONFIG.lease_seconds + 1)
        await dispatcher.tick()
    item = await row(database, oid)
    assert item["status"] == "dead"
    assert "cannot tell whether it arrived" in item["last_error"]
    assert len(fake.calls) == 1  # a person decides whether to send it again


async def test_a_lookup_that_fails_is_asked_again_not_taken_as_not_found(
    database: Database,
    clock: FrozenClock,
    shop: int,
    fake: FakeProvider,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    answers: list[Exception | None] = [TransientError("vendor down"), TransientError("down")]

    async def flaky(ref: SendRef) -> Any:
        answer = answers.pop(0) if answers else None
        if isinstance(answer, Exception):
            raise answer
        return SendResult(ref.ref, "V-1", "accepted", "sms")

    monkeypatch.setattr(fake, "lookup", flaky)
    (oid,) = await put(database, shop, clock.now())
    fake.fail_next(UnknownOutcome("read timeout"))
    dispatcher = make_dispatcher(database, clock, fake)
    await dispatcher.tick()
    for _ in range(2):  # lookups fail, long past the lease: still unknown, never resent
        clock.advance(seconds=CONFIG.lease_seconds * 2)
        await dispatcher.tick()
        assert (await row(database, oid))["status"] == "unknown"
    clock.advance(seconds=CONFIG.lease_seconds * 2)
    await dispatcher.tick()
    item = await row(database, oid)
    assert (item["status"], item["provider_ref"]) == ("sent", "V-1")
    assert len(fake.calls) == 1


async def test_a_lookup_that_keeps_failing_ends_as_cannot_tell_not_resent(
    database: Database,
    clock: FrozenClock,
    shop: int,
    fake: FakeProvider,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def down(ref: SendRef) -> Any:
        raise TransientError("vendor down")

    monkeypatch.setattr(fake, "lookup", down)
    now = clock.now()
    mid = await add_message(database, shop, now)
    (oid,) = await put(database, shop, now, message_id=mid)
    settings = OutboxConfig(**{**CONFIG.__dict__, "lookup_give_up_seconds": 600.0})
    fake.fail_next(UnknownOutcome("read timeout"))
    dispatcher = make_dispatcher(database, clock, fake, config=settings)
    await dispatcher.tick()
    in_doubt_until = (await row(database, oid))["lease_until"]
    while clock.now() < in_doubt_until + timedelta(seconds=600):
        assert (await row(database, oid))["status"] == "unknown"
        clock.advance(seconds=CONFIG.lease_seconds)
        await dispatcher.tick()
    item = await row(database, oid)
    assert item["status"] == "dead"
    assert "cannot tell whether it arrived" in item["last_error"]
    assert (await message(database, mid))["status"] == "failed"  # the console: 다시 보내기
    assert len(fake.calls) == 1


async def test_a_lookup_answering_for_another_message_is_not_a_not_found(
    database: Database,
    clock: FrozenClock,
    shop: int,
    fake: FakeProvider,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def confused(ref: SendRef) -> SendResult:
        return SendResult("someone else", "V-9", "accepted", "sms")

    monkeypatch.setattr(fake, "lookup", confused)
    (oid,) = await put(database, shop, clock.now())
    fake.fail_next(UnknownOutcome("read timeout"))
    dispatcher = make_dispatcher(database, clock, fake)
    await dispatcher.tick()
    for _ in range(3):
        clock.advance(seconds=CONFIG.lease_seconds + 1)
        await dispatcher.tick()
    assert (await row(database, oid))["status"] == "unknown"
    assert len(fake.calls) == 1


async def test_unknown_outcome_with_no_attempts_left_is_dead_not_resent(
    database: Database, clock: FrozenClock, shop: int, fake: FakeProvider
) -> None:
    (oid,) = await put(database, shop, clock.now())
    one_try = OutboxConfig(**{**CONFIG.__dict__, "max_attempts": 1})
    fake.fail_next(UnknownOutcome("read timeout"))
    dispatcher = make_dispatcher(database, clock, fake, config=one_try)
    await dispatcher.tick()
    clock.advance(seconds=CONFIG.lease_seconds + 1)
    await dispatcher.tick()
    item = await row(database, oid)
    assert item["status"] == "dead"
    assert "outcome unknown after 1 attempts" in item["last_error"]
    assert len(fake.calls) == 1


async def test_an_unexpected_exception_is_treated_as_an_unknown_outcome(
    database: Database,
    clock: FrozenClock,
    shop: int,
    fake: FakeProvider,
    caplog: pytest.LogCaptureFixture,
) -> None:
    (oid,) = await put(database, shop, clock.now())
    fake.fail_next(RuntimeError("adapter bug"))
    with caplog.at_level(logging.ERROR, logger="dangol.outbox"):
        await make_dispatcher(database, clock, fake).tick()
    assert (await row(database, oid))["status"] == "unknown"
    assert "RuntimeError" in caplog.text


async def test_a_hung_provider_times_out_into_unknown(
    database: Database, clock: FrozenClock, shop: int, fake: FakeProvider
) -> None:
    (oid,) = await put(database, shop, clock.now())
    fake.delay(0.5)
    await make_dispatcher(database, clock, fake, send_timeout=0.05).tick()
    item = await row(database, oid)
    assert item["status"] == "unknown"
    assert "no answer" in item["last_error"]


# --------------------------------------------------------------------------- housekeeping


async def test_stats_cancel_and_requeue(
    database: Database, clock: FrozenClock, shop: int, fake: FakeProvider
) -> None:
    now = clock.now()
    ok, bad, held = await put(database, shop, now, count=3)
    fake.fail_for(str(bad), PermanentError("없는 번호"))
    dispatcher = make_dispatcher(database, clock, fake)

    def cancel_held(conn: Connection) -> bool:
        return cancel(conn, shop_id=shop, idempotency_key="k:2", now=now)

    assert await database.write(cancel_held) is True
    assert await database.write(cancel_held) is False
    assert await dispatcher.stats() == {
        "pending": 2,
        "sending": 0,
        "unknown": 0,
        "dead": 0,
        "due": 2,
    }
    await dispatcher.tick()
    assert (await dispatcher.stats())["dead"] == 1
    assert (await row(database, ok))["status"] == "sent"
    assert (await row(database, held))["status"] == "cancelled"

    fake.reset()

    def retry(conn: Connection) -> bool:
        return requeue(conn, shop_id=shop, outbox_id=bad, now=now)

    assert await database.write(retry) is True
    await dispatcher.tick()
    item = await row(database, bad)
    assert (item["status"], item["attempts"]) == ("sent", 1)
    assert await dispatcher.stats() == dict.fromkeys(
        ("pending", "sending", "unknown", "dead", "due"), 0
    )


# --------------------------------------------------------------------------- photos

PHOTO = {
    "photo_id": 7,
    "url": "/p/" + "A" * 32 + ".jpg",
    "width": 2048,
    "height": 1365,
    "content_type": "image/jpeg",
}
PHOTO_URL = "https://shop.example/p/" + "A" * 32 + ".jpg"


class Photos:
    """A stand-in for the app's photo resolver (bot/photos/outbox.py OutboxPhotos)."""

    def __init__(
        self, url: str | None = PHOTO_URL, error: Exception | None = None, times: int = 1
    ) -> None:
        self.url, self.error, self.times = url, error, times
        self.calls: list[tuple[dict[str, object], bool]] = []

    async def __call__(self, found: Mapping[str, object], with_file: bool) -> AttachedPhoto:
        self.calls.append((dict(found), with_file))
        if self.error is not None and self.times > 0:
            self.times -= 1
            raise self.error
        return AttachedPhoto("/uploads/x.mms.jpg" if with_file else None, self.url)


def claimed(**payload: object) -> Claimed:
    return Claimed(
        id=41,
        shop_id=1,
        message_id=None,
        purpose="reply",
        provider="fake",
        recipient={"phone": PHONE},
        payload={"text": "사진 보내드려요", "attachments": [PHOTO], **payload},
        attempts=1,
        lease_until=None,
        provider_ref=None,
    )


CONSOLE = ConsoleProvider({"show_text": False})  # carries no pictures


async def test_a_photo_goes_as_the_picture_where_the_provider_carries_one() -> None:
    photos = Photos()
    msg = await build_outgoing(claimed(), FakeProvider(), photos)
    assert not isinstance(msg, Exception)
    assert (msg.image_path, msg.image_url, msg.text) == (
        "/uploads/x.mms.jpg",
        PHOTO_URL,
        "사진 보내드려요",
    )
    assert photos.calls == [(PHOTO, True)]


async def test_elsewhere_the_photo_is_a_link_in_the_text() -> None:
    photos = Photos()
    msg = await build_outgoing(claimed(), CONSOLE, photos)
    assert not isinstance(msg, Exception)
    assert msg.text == f"사진 보내드려요\n\n{PHOTO_URL}"
    assert (msg.image_path, msg.image_url) == (None, None)
    assert photos.calls == [(PHOTO, False)]  # no MMS copy made for nothing


async def test_a_template_message_carries_no_photo() -> None:
    """The AlimTalk reply notice: only its approved text goes, whoever carries it."""
    photos = Photos()
    msg = await build_outgoing(claimed(template="KA01TP1"), FakeProvider(), photos)
    assert not isinstance(msg, Exception)
    assert (msg.text, msg.image_path, msg.image_url) == ("사진 보내드려요", None, None)
    assert photos.calls == []


async def test_no_public_address_or_no_room_means_text_only() -> None:
    msg = await build_outgoing(claimed(), CONSOLE, Photos(url=None))
    assert not isinstance(msg, Exception)
    assert msg.text == "사진 보내드려요"
    full = "가" * (CONSOLE.max_text_chars - 10)
    msg = await build_outgoing(claimed(text=full), CONSOLE, Photos())
    assert not isinstance(msg, Exception)
    assert msg.text == full  # the link would not fit: the owner's text goes as it is


async def test_the_first_image_attachment_is_the_one() -> None:
    pdf = {"photo_id": 1, "url": "/f/x.pdf", "content_type": "application/pdf"}
    second = {**PHOTO, "photo_id": 8}
    photos = Photos()
    await build_outgoing(claimed(attachments=[pdf, "junk", PHOTO, second]), FakeProvider(), photos)
    assert photos.calls == [(PHOTO, True)]
    photos = Photos()
    await build_outgoing(claimed(attachments=[pdf]), FakeProvider(), photos)
    await build_outgoing(claimed(attachments="nonsense"), FakeProvider(), photos)
    assert photos.calls == []


async def test_a_payload_cannot_name_a_file_to_send() -> None:
    msg = await build_outgoing(
        claimed(attachments=[], image_path="/etc/passwd", image_url="https://evil.example/x"),
        FakeProvider(),
        Photos(),
    )
    assert not isinstance(msg, Exception)
    assert (msg.image_path, msg.image_url) == (None, None)


async def test_without_a_resolver_a_photo_reply_goes_as_text(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="dangol.outbox"):
        msg = await build_outgoing(claimed(), FakeProvider(), None)
    assert not isinstance(msg, Exception)
    assert (msg.text, msg.image_path) == ("사진 보내드려요", None)
    assert "no photo resolver" in caplog.text


async def test_a_missing_photo_is_permanent_a_disk_problem_is_not() -> None:
    gone = await build_outgoing(claimed(), FakeProvider(), Photos(error=PhotoUnavailable("gone")))
    assert isinstance(gone, PermanentError)
    assert gone.code == "photo_missing"
    full = await build_outgoing(claimed(), FakeProvider(), Photos(error=OSError(28, "No space")))
    assert isinstance(full, TransientError)
    assert full.code == "photo_not_ready"


async def test_a_photo_that_cannot_be_prepared_now_is_tried_again(
    database: Database, clock: FrozenClock, shop: int, fake: FakeProvider
) -> None:
    (oid,) = await put(database, shop, clock.now(), attachments=[PHOTO])
    photos = Photos(error=OSError(28, "No space left on device"))
    dispatcher = make_dispatcher(database, clock, fake, photos=photos)
    await dispatcher.tick()
    item = await row(database, oid)
    assert (item["status"], fake.calls) == ("pending", [])
    assert "사진을 준비하지 못했어요" in item["last_error"]
    clock.advance(seconds=CONFIG.backoff_max_seconds)
    await dispatcher.tick()
    assert (await row(database, oid))["status"] == "sent"
    (sent,) = fake.sent
    assert (sent.image_path, sent.image_url) == ("/uploads/x.mms.jpg", PHOTO_URL)
