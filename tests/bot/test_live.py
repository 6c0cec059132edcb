"""Live updates: the hub (local fan-out on SQLite, LISTEN/NOTIFY across processes on
PostgreSQL), the console's SSE stream, and owner replies pushed to the simulator."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import asyncpg
import pytest
import sqlalchemy as sa
from conftest import PG_URL, shop_table
from sqlalchemy.engine import Connection
from support.console import (
    Client,
    add_account,
    app_of,
    rows,
    shop_id,
    sign_in,
    thread,
    write,
)
from support.outbox import CONFIG, add_message, add_shop, put

from bot import keys
from bot.live import (
    RESYNC,
    Closed,
    Event,
    LiveHub,
    Subscription,
    TooManySubscribers,
    announce,
    message_event,
    status_event,
)
from bot.photos.records import public_path
from bot.photos.store import new_stored_name
from core.clock import FrozenClock
from core.db import Database
from core.delivery import apply_reports
from core.models import ConsoleSession, Message
from providers.base import DeliveryReport, DeliveryStatus
from providers.fake import FakeProvider
from providers.registry import Providers
from scheduler.dispatch import Dispatcher

WAIT = 5.0  # seconds an expected event may take (it takes milliseconds)


pytestmark = pytest.mark.usefixtures("cheap_hasher")


@pytest.fixture
async def hub(database: Database, db_url: tuple[str, str | None]) -> AsyncIterator[LiveHub]:
    live = LiveHub(database, namespace=db_url[1] or "")
    await live.start()
    await live.wait_listening()
    try:
        yield live
    finally:
        await live.close()


@pytest.fixture
async def pg_hub(pg_url: tuple[str, str]) -> AsyncIterator[LiveHub]:
    url, schema = pg_url
    database = Database(url, search_path=schema)
    await database.start()
    live = LiveHub(database, namespace=schema)
    await live.start()
    await live.wait_listening()
    try:
        yield live
    finally:
        await live.close()
        await database.close()


async def no_event(sub: Subscription) -> None:
    """Nothing is on its way to `sub`: a marker published now is the next event it gets.
    (Events arrive in the order they were committed or published, through PostgreSQL's
    NOTIFY too, so no wait on the clock can tell more.)"""
    await asyncio.sleep(0)  # done-callbacks already scheduled (a future's) run first
    marker = {"type": "nothing before this"}
    sub.hub.publish(sub.shop_id, marker)
    assert await sub.next(within=WAIT) == marker


# --------------------------------------------------------------------------- the hub


async def test_a_subscriber_receives_what_a_committed_unit_announces(
    hub: LiveHub, database: Database
) -> None:
    with hub.subscribe(1) as mine, hub.subscribe(2) as theirs:

        def unit(conn: Connection) -> str:
            conn.execute(sa.text("SELECT 1"))
            announce(
                1, message_event(7, 70, direction="in", sender="customer", preview="물이 새요")
            )
            return "done"

        assert await database.write(unit) == "done"
        event = await mine.next(within=WAIT)
        assert event == {
            "type": "message",
            "conversation_id": 7,
            "message_id": 70,
            "direction": "in",
            "sender": "customer",
            "preview": "물이 새요",
        }
        await no_event(theirs)


async def test_a_unit_that_fails_publishes_nothing(hub: LiveHub, database: Database) -> None:
    with hub.subscribe(1) as sub:

        def failing(conn: Connection) -> None:
            announce(1, {"type": "never"})
            raise RuntimeError("rolled back")

        with pytest.raises(RuntimeError):
            await database.write(failing)
        await database.write(lambda conn: announce(1, {"type": "after"}))
        # Events arrive in commit order, so the first one here shows the other never came.
        assert await sub.next(within=WAIT) == {"type": "after"}
        await no_event(sub)


async def test_a_closed_hub_hears_no_more_commits(database: Database) -> None:
    live = LiveHub(database)
    await live.start()
    heard: list[Any] = []
    live.publish = lambda *event: heard.append(event)  # type: ignore[method-assign]
    await database.write(lambda conn: announce(1, {"type": "heard"}))
    await live.close()
    await database.write(lambda conn: announce(1, {"type": "not heard"}))
    assert heard == [(1, {"type": "heard"})]


# --------------------------------------------------------------------------- statuses


async def test_a_status_change_that_rolls_back_publishes_nothing(
    hub: LiveHub, database: Database, clock: FrozenClock
) -> None:
    shop = await add_shop(database, clock.now())
    mid = await add_message(database, shop, clock.now())
    (oid,) = await put(database, shop, clock.now(), message_id=mid)
    delivered = DeliveryReport("ev-1", "vendor-1", DeliveryStatus.DELIVERED, ref=str(oid))
    apply = apply_reports(shop, "fake", [delivered], clock.now())
    with hub.subscribe(shop) as sub:

        def failing(conn: Connection) -> None:
            assert apply(conn) == [(mid, "delivered")]  # the status did change, then…
            raise RuntimeError("rolled back")

        with pytest.raises(RuntimeError):
            await database.write(failing)
        await no_event(sub)
        assert (await database.write(apply)) == [(mid, "delivered")]
        assert await sub.next(within=WAIT) == status_event(mid, "delivered")


async def test_a_status_the_dispatcher_records_reaches_a_console_after_the_commit(
    hub: LiveHub, database: Database, clock: FrozenClock
) -> None:
    shop = await add_shop(database, clock.now())
    mid = await add_message(database, shop, clock.now())
    await put(database, shop, clock.now(), message_id=mid)
    dispatcher = Dispatcher(
        database, Providers({"fake": FakeProvider()}), clock, CONFIG, owner_id="a"
    )
    published: list[tuple[int, Event]] = []
    publish = hub.publish

    def spy(shop_id: int, event: Event) -> None:
        published.append((shop_id, event))
        publish(shop_id, event)

    hub.publish = spy  # type: ignore[method-assign]
    # What had been published when each of the dispatcher's units finished, before its commit.
    before_commit: list[list[tuple[int, Event]]] = []
    write = database.write

    async def writing(work: Any) -> Any:
        if not callable(work):
            return await write(work)

        def unit(conn: Connection) -> Any:
            result = work(conn)
            before_commit.append(list(published))
            return result

        return await write(unit)

    database.write = writing  # type: ignore[method-assign]
    with hub.subscribe(shop) as sub:
        assert await dispatcher.tick() == 1
        assert await sub.next(within=WAIT) == status_event(mid, "sent")
        await no_event(sub)
    assert before_commit
    assert not any(before_commit)  # nothing was published before a commit
    assert published[0] == (shop, status_event(mid, "sent"))


async def test_publish_after_commit(hub: LiveHub) -> None:
    with hub.subscribe(3) as sub:
        hub.publish(3, {"type": "conversation", "conversation_id": 1, "change": "read"})
        hub.publish(3, status_event(55, "delivered"))
        long = "  여러   줄\n메시지 " + "가" * 200
        hub.publish(
            3, message_event(9, 90, direction="in", sender="customer", customer_id=4, preview=long)
        )
        assert (await sub.next(within=WAIT) or {})["change"] == "read"
        assert await sub.next(within=WAIT) == {
            "type": "status",
            "message_id": 55,
            "status": "delivered",
        }
        arrived = await sub.next(within=WAIT)
        assert arrived is not None
        assert arrived["customer_id"] == 4
        assert arrived["preview"].startswith("여러 줄 메시지 가")
        assert len(arrived["preview"]) == 80


async def test_a_slow_reader_gets_one_resync_instead_of_a_backlog(hub: LiveHub) -> None:
    sub = Subscription(hub, 1, size=3)
    for i in range(10):
        sub.put({"type": "message", "n": i})
    queued = []
    while (event := await sub.next(within=0)) is not None:
        queued.append(event)
    assert RESYNC in queued
    assert len(queued) <= 3


async def test_consoles_per_shop_are_limited(database: Database) -> None:
    live = LiveHub(database, subscribers_per_shop=2)
    with live.subscribe(1), live.subscribe(1):
        with pytest.raises(TooManySubscribers):
            live.subscribe(1)
        with live.subscribe(2):  # another shop has its own allowance
            assert live.subscribers(2) == 1
        # and so do the simulator's long polls: they cannot crowd the consoles out
        with (
            live.subscribe(1, kind="simulator"),
            live.subscribe(1, kind="simulator"),
            pytest.raises(TooManySubscribers),
        ):
            live.subscribe(1, kind="simulator")
    assert live.subscribers(1) == 0
    with live.subscribe(1):
        pass
    await live.close()


async def test_closing_the_hub_ends_every_subscription(database: Database) -> None:
    live = LiveHub(database)
    await live.start()
    sub = live.subscribe(1)
    waiting = asyncio.ensure_future(sub.next())
    await asyncio.sleep(0)
    await live.close()
    with pytest.raises(Closed):
        await waiting
    received = [event async for event in live.subscribe(1)]  # closed from the start
    assert received == []
    live.publish(1, {"type": "ignored"})  # after close: a no-op, not an error


@pytest.mark.postgres
async def test_what_another_process_announces_reaches_this_ones_consoles(
    pg_hub: LiveHub, pg_url: tuple[str, str]
) -> None:
    """Another `dangol serve` is another Database and hub with its own connections: what
    its units announce reaches this process's subscribers when (and only when) they commit."""
    hub = pg_hub
    assert hub.postgres
    url, schema = pg_url
    other = Database(url, search_path=schema)
    await other.start()
    theirs = LiveHub(other, namespace=schema or "")
    # Another install sharing the database (another schema) is not ours to hear.
    stranger = LiveHub(other, namespace="someone_else")
    try:
        await theirs.start()
        await theirs.wait_listening()
        with hub.subscribe(1) as sub:
            await other.write(lambda conn: announce(1, {"type": "a"}))
            # (Both hubs hear `other`'s commits; only ours shares our namespace.)
            assert await sub.next(within=WAIT) == {"type": "a"}

            def rolled_back(conn: Connection) -> None:
                announce(1, {"type": "never"})
                raise RuntimeError("no commit, no notification")

            with pytest.raises(RuntimeError):
                await other.write(rolled_back)
            await stranger.start()
            await stranger.wait_listening()
            await theirs.close()
            await other.write(lambda conn: announce(1, {"type": "no"}))
            raw = await asyncpg.connect(PG_URL.replace("postgresql+asyncpg", "postgresql"))
            try:
                for junk in ("not json", "[]", '{"ns": "%s"}' % (schema or "")):
                    await raw.execute("SELECT pg_notify('dangol_events', $1)", junk)
                payload = json.dumps({"ns": schema or "", "shop": 1, "event": {"type": "b"}})
                await raw.execute("SELECT pg_notify('dangol_events', $1)", payload)
            finally:
                await raw.close()
            assert await sub.next(within=WAIT) == {"type": "b"}
    finally:
        await stranger.close()
        await theirs.close()
        await other.close()


@pytest.mark.postgres
async def test_the_listener_comes_back_and_asks_for_a_resync(pg_hub: LiveHub) -> None:
    hub = pg_hub
    raw = await asyncpg.connect(PG_URL.replace("postgresql+asyncpg", "postgresql"))
    try:
        pid = hub._conn.get_server_pid()
        with hub.subscribe(1) as sub:
            await raw.execute("SELECT pg_terminate_backend($1)", pid)
            assert await sub.next(within=WAIT) == RESYNC
            await hub.wait_listening(WAIT)
            while await sub.next(within=0) is not None:
                pass  # one more resync as it reconnects
            hub.publish(1, {"type": "again"})
            assert await sub.next(within=WAIT) == {"type": "again"}
    finally:
        await raw.close()


# --------------------------------------------------------------------------- the SSE stream


async def read_event(resp: Any) -> dict[str, Any]:
    """The next `data:` event of an open stream (skipping comments and blank lines)."""
    while True:
        line = await asyncio.wait_for(resp.content.readline(), WAIT)
        assert line, "the stream ended"
        text = line.decode().rstrip("\n")
        if text.startswith("data: "):
            event: dict[str, Any] = json.loads(text[6:])
            return event


async def next_line(resp: Any) -> str:
    """The next non-blank line of an open stream."""
    while True:
        line = await asyncio.wait_for(resp.content.readline(), WAIT)
        assert line, "the stream ended"
        if line.strip():
            return str(line.decode().rstrip("\n"))


async def test_events_need_a_session(client: Client) -> None:
    resp = await client.get("/console/api/events")
    assert resp.status == 401
    assert await resp.json() == {"error": "login_required"}


async def test_a_foreign_origin_is_refused(owner: Client) -> None:
    for origin in ("https://evil.example", "null", "http://127.0.0.1.evil.example"):
        resp = await owner.get("/console/api/events", headers={"Origin": origin})
        assert resp.status == 403, origin
        assert await resp.json() == {"error": "origin"}
    ours = str(owner.make_url("")).rstrip("/")
    for origin in (ours, "http://127.0.0.1:8080"):  # the page's own, and server.public_url
        resp = await owner.get("/console/api/events", headers={"Origin": origin})
        assert resp.status == 200, origin
        assert resp.headers["Content-Type"] == "text/event-stream; charset=utf-8"
        resp.close()


async def test_the_stream_carries_the_shops_events(owner: Client) -> None:
    _, conv = await thread(owner)
    resp = await owner.get("/console/api/events")
    assert resp.status == 200
    assert resp.headers["Cache-Control"] == "no-store"
    assert "default-src 'self'" in resp.headers["Content-Security-Policy"]
    first = await asyncio.wait_for(resp.content.readline(), WAIT)
    assert first == b"retry: 3000\n"
    assert await read_event(resp) == {"type": "hello"}

    hub = app_of(owner)[keys.LIVE]
    hub.publish(shop_id(owner) + 1000, {"type": "not yours"})
    note = await owner.post(
        f"/console/c/{conv}/note",
        data={"csrf": owner.csrf, "text": "메모"},  # type: ignore[attr-defined]
        headers={"Accept": "application/json"},
    )
    assert note.status == 200
    message_id = (await note.json())["message_id"]
    assert await read_event(resp) == {
        "type": "message",
        "conversation_id": conv,
        "message_id": message_id,
        "direction": "note",
        "sender": "owner",
    }
    await owner.post(
        f"/console/c/{conv}/reply",
        data={"csrf": owner.csrf, "text": "답장"},  # type: ignore[attr-defined]
        headers={"Accept": "application/json"},
    )
    event = await read_event(resp)
    assert (event["type"], event["direction"], event["sender"]) == ("message", "out", "owner")
    await owner.post(
        f"/console/c/{conv}/resolve",
        data={"csrf": owner.csrf},  # type: ignore[attr-defined]
        headers={"Accept": "application/json"},
    )
    assert await read_event(resp) == {
        "type": "conversation",
        "conversation_id": conv,
        "change": "resolved",
    }
    resp.close()


async def test_heartbeats_and_the_end_of_the_session(owner: Client) -> None:
    app_of(owner)[keys.LIVE].heartbeat = 0.05
    resp = await owner.get("/console/api/events")
    assert await read_event(resp) == {"type": "hello"}
    assert await next_line(resp) == ": ping"
    # The session ends (logout elsewhere, reset password…): the stream says so and stops.
    await app_of(owner)[keys.DATABASE].write(lambda conn: conn.execute(sa.delete(ConsoleSession)))
    assert await read_event(resp) == {"type": "signed_out"}
    rest = await asyncio.wait_for(resp.content.read(), WAIT)
    assert b"data:" not in rest


async def test_stopping_the_server_ends_open_streams_promptly(
    make_client: Callable[..., Awaitable[Client]],
) -> None:
    client = await make_client()
    await add_account(client)
    await sign_in(client)
    resp = await client.get("/console/api/events")
    assert await read_event(resp) == {"type": "hello"}
    started = time.monotonic()
    await client.close()  # on_shutdown ends the stream; no 60 s shutdown timeout
    assert time.monotonic() - started < 5


async def test_a_stream_the_browser_left_ends_quietly(
    make_client: Callable[..., Awaitable[Client]], caplog: pytest.LogCaptureFixture
) -> None:
    client = await make_client()
    await add_account(client)
    await sign_in(client)
    app_of(client)[keys.LIVE].heartbeat = 0.05
    resp = await client.get("/console/api/events")
    assert await read_event(resp) == {"type": "hello"}
    resp.close()  # the phone went out of range
    await client.close()
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []


# --------------------------------------------------------------------------- the simulator

USER = "0123456789abcdef0123456789abcdef"


async def say(client: Client, text: str, user: str = USER) -> None:
    resp = await client.post(
        "/simulator/api/say", json={"shop": "hanbit", "user": user, "text": text}
    )
    assert resp.status == 200


async def updates(client: Client, query: str) -> tuple[int, Any]:
    resp = await client.get(f"/simulator/api/updates?shop=hanbit&{query}")
    return resp.status, await resp.json()


async def test_a_reply_to_a_simulator_customer_reaches_the_simulator(owner: Client) -> None:
    await say(owner, "에어컨이 안 켜져요")
    (conv,) = await rows(owner, sa.select(Message.conversation_id).where(Message.direction == "in"))
    assert await updates(owner, f"user={USER}") == (200, {"messages": [], "last": 0})

    resp = await owner.post(
        f"/console/c/{conv.conversation_id}/reply",
        data={"csrf": owner.csrf, "text": "오늘 오후에 가볼게요"},  # type: ignore[attr-defined]
        headers={"Accept": "application/json"},
    )
    assert (await resp.json())["path"] == "simulator"
    reply = (await rows(owner, sa.select(Message).where(Message.sender == "owner")))[0]
    assert (reply.status, reply.path) == ("delivered", "simulator")

    status, body = await updates(owner, f"user={USER}&after=0")
    assert status == 200
    assert [m["text"] for m in body["messages"]] == ["오늘 오후에 가볼게요"]
    assert body["last"] == reply.id
    assert await updates(owner, f"user={USER}&after={reply.id}") == (
        200,
        {"messages": [], "last": reply.id},
    )
    assert (await updates(owner, f"user={USER}"))[1]["last"] == reply.id
    # Another simulated customer sees none of it.
    assert (await updates(owner, "user=abcdefabcdefabcdef&after=0"))[1]["messages"] == []


async def test_a_photo_reply_reaches_the_simulator_by_its_public_url_only(owner: Client) -> None:
    await say(owner, "사진 보내주세요")
    (conv,) = await rows(owner, sa.select(Message.conversation_id).where(Message.direction == "in"))
    await owner.post(
        f"/console/c/{conv.conversation_id}/reply",
        data={"csrf": owner.csrf, "text": "사진을 보냈어요."},  # type: ignore[attr-defined]
    )
    name = new_stored_name()
    attachments = [
        {"photo_id": 1, "url": public_path(name), "width": 4, "height": 3},
        {"photo_id": 2, "url": "https://elsewhere.example/x.jpg"},  # never ours: dropped
        {"photo_id": 3, "url": "/p/../../etc/passwd"},
        "not an attachment",
    ]
    await write(
        owner,
        lambda conn: conn.execute(
            sa.update(Message)
            .where(Message.sender == "owner")
            .values(payload={"author": "kim", "attachments": attachments})
        ),
    )
    status, body = await updates(owner, f"user={USER}&after=0")
    assert status == 200
    assert [(m["text"], m["photos"]) for m in body["messages"]] == [
        ("사진을 보냈어요.", [f"/p/{name}"])
    ]


async def test_the_simulator_long_poll_answers_when_the_owner_replies(owner: Client) -> None:
    await say(owner, "견적 문의요")
    (conv,) = await rows(owner, sa.select(Message.conversation_id).where(Message.direction == "in"))
    waiting = asyncio.ensure_future(updates(owner, f"user={USER}&after=0&wait=1"))
    hub, shop_id = app_of(owner)[keys.LIVE], app_of(owner)[keys.SHOP_IDS]["hanbit"]
    # Yield until the long poll has subscribed (the subscription is made inside the request,
    # so there is no event to wait on): turns of the loop, not time.
    while not hub.subscribers(shop_id, kind="simulator"):  # noqa: ASYNC110
        await asyncio.sleep(0)
    assert not waiting.done()
    await owner.post(
        f"/console/c/{conv.conversation_id}/reply",
        data={"csrf": owner.csrf, "text": "10만원이에요"},  # type: ignore[attr-defined]
    )
    status, body = await asyncio.wait_for(waiting, WAIT)
    assert status == 200
    assert [m["text"] for m in body["messages"]] == ["10만원이에요"]


async def test_simulator_updates_check_their_input(owner: Client) -> None:
    status, body = await updates(owner, "user=short")
    assert (status, body["error"]) == (400, "bad_user")
    resp = await owner.get(f"/simulator/api/updates?shop=nowhere&user={USER}")
    assert resp.status == 404
    status, body = await updates(owner, f"user={USER}&after=abc")
    assert (status, body) == (200, {"messages": [], "last": 0})


async def test_no_simulator_no_updates(make_client: Callable[..., Awaitable[Client]]) -> None:
    client = await make_client(server={"simulator": False}, shops=[shop_table()])
    resp = await client.get(f"/simulator/api/updates?shop=hanbit&user={USER}")
    assert resp.status == 404
