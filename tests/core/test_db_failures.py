"""When the database cannot write: a failed commit is rolled back, the writer recovers by
itself once the cause goes, nobody is told a message arrived that was not stored, and
`/healthz` and `/metrics` say what is going on — on SQLite and PostgreSQL.

The disk is made full with each database's own errors, not a mock. SQLite: the writer's
connection gets `PRAGMA max_page_count` at the file's current size, in a database of
512-byte pages whose last free pages a filler took, so any row that needs a new page fails
with SQLITE_FULL. PostgreSQL: a deferred constraint trigger on every table raises
`disk_full` (SQLSTATE 53100) at COMMIT, as the server does when it cannot extend a file.
"""

from __future__ import annotations

import asyncio
import dataclasses
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import sqlalchemy as sa
from conftest import PG_URL, Client, make_settings, postgres_schema, shop_table
from fakes.twilio import inbound_sms_form
from sqlalchemy.engine import Connection
from support.kakao import post as post_skill
from support.kakao import said, texts
from support.settle import settled
from support.slow_database import HeldWrites
from support.solapi import post as post_report
from support.solapi import report
from support.twilio import post_signed, twilio_client

from bot import keys
from bot.live import LiveEvent, announce
from core import db as db_module
from core.clock import FrozenClock
from core.db import Database, upgrade
from core.models import DeliveryEvent, Message, Shop
from core.outbox import OutboxRequest, RowsAdded, enqueue, enqueue_many
from core.texts import Texts

NOW = datetime(2026, 11, 23, 1, 0, tzinfo=UTC)
BOUND = 10.0  # seconds: a write that used to be retried for a minute must fail well within
# ~400 characters, more than a 512-byte page holds
LONG = ("에어컨 배수관에서 물이 계속 새요. " * 20).strip()
NAME = LONG[:190]  # a shop's name has room for 200
NOT_STORED = "잠시 후 다시 보내 주세요"

MakeClient = Callable[..., Awaitable[Client]]


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
async def db_url(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[tuple[str, str | None]]:
    """Overrides conftest's: the SQLite file has 512-byte pages, so a few hundred bytes of
    text need a page of their own (see the module's docstring)."""
    if request.param == "sqlite":
        path = tmp_path / "dangol.db"
        with closing(sqlite3.connect(path)) as conn:  # the first table fixes the page size
            conn.execute("PRAGMA page_size = 512")
            conn.execute("CREATE TABLE first (x)")
            conn.execute("DROP TABLE first")
        url = f"sqlite+aiosqlite:///{path}"
        await upgrade(url)
        yield url, None
        return
    async with postgres_schema() as found:
        yield found


class Disk:
    """The test database's disk: `fill()` makes it full, `free()` gives the space back."""

    def __init__(self, database: Database, schema: str | None) -> None:
        self.database = database
        self.schema = schema

    async def fill(self) -> None:
        if self.database.dialect == "sqlite":
            await self.database.write(_create_filler)
            await self.database.write(_cap_and_fill)
        else:
            await self._postgres(_TRIGGERS)

    async def free(self) -> None:
        if self.database.dialect == "sqlite":
            await self.database.write(_uncap)
        else:
            await self._postgres(_NO_TRIGGERS)

    async def _postgres(self, template: str) -> None:
        conn = await asyncpg.connect(PG_URL.replace("postgresql+asyncpg", "postgresql"))
        try:
            await conn.execute(template.replace("SCHEMA", self.schema or "public"))
        finally:
            await conn.close()


def _create_filler(conn: Connection) -> None:
    conn.exec_driver_sql("CREATE TABLE filler (x BLOB)")


def _cap_and_fill(conn: Connection) -> None:
    # The free pages left by the migrations go to a filler (free pages are taken before
    # the file grows), then the file may not grow: this connection's limit.
    free = conn.exec_driver_sql("PRAGMA freelist_count").scalar_one()
    conn.exec_driver_sql("INSERT INTO filler VALUES (zeroblob(?))", ((free + 1) * 512,))
    assert conn.exec_driver_sql("PRAGMA freelist_count").scalar_one() == 0
    pages = conn.exec_driver_sql("PRAGMA page_count").scalar_one()
    conn.exec_driver_sql(f"PRAGMA max_page_count = {pages}")


def _uncap(conn: Connection) -> None:
    conn.exec_driver_sql("PRAGMA max_page_count = 1073741823")


_TRIGGERS = """
CREATE FUNCTION "SCHEMA".disk_full() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'could not extend file: No space left on device' USING ERRCODE = 'disk_full';
END $$;
DO $$
DECLARE t text;
BEGIN
    FOR t IN SELECT tablename FROM pg_tables WHERE schemaname = 'SCHEMA' LOOP
        EXECUTE format(
            'CREATE CONSTRAINT TRIGGER disk_full AFTER INSERT OR UPDATE OR DELETE ON %I.%I '
            'DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION %I.disk_full()',
            'SCHEMA', t, 'SCHEMA');
    END LOOP;
END $$;
"""
_NO_TRIGGERS = 'DROP FUNCTION "SCHEMA".disk_full() CASCADE'


def _add_shop(slug: str, name: str = "") -> Callable[[Connection], int]:
    def unit(conn: Connection) -> int:
        row = conn.execute(
            sa.insert(Shop)
            .values(slug=slug, name=name or slug, owner_status="available", created_at=NOW)
            .returning(Shop.id)
        ).scalar_one()
        return int(row)

    return unit


def _fails_at_commit(dialect: str) -> Callable[[Connection], None]:
    """A unit whose statements pass and whose COMMIT fails: a deferred constraint."""

    def unit(conn: Connection) -> None:
        if dialect == "sqlite":
            conn.exec_driver_sql("PRAGMA defer_foreign_keys = ON")
            conn.exec_driver_sql(
                "INSERT INTO customers (shop_id, tier, tags, notes, created_at) "
                "VALUES (424242, 'bronze', '[]', '', '2026-11-23 01:00:00.000000')"
            )
        else:
            conn.exec_driver_sql(
                "CREATE TEMPORARY TABLE once (id int UNIQUE DEFERRABLE INITIALLY DEFERRED) "
                "ON COMMIT DROP"
            )
            conn.exec_driver_sql("INSERT INTO once VALUES (1), (1)")

    return unit


async def _slugs(database: Database) -> set[str]:
    async with database.read() as conn:
        return set((await conn.execute(sa.select(Shop.slug))).scalars())


# --------------------------------------------------------------------------- the writer


async def test_a_failed_commit_is_rolled_back_and_the_next_write_goes_through(
    database: Database,
) -> None:
    with pytest.raises(sa.exc.IntegrityError):
        await database.write(_fails_at_commit(database.dialect))
    # Alone, and in a batch with neighbours: the writer is not left inside the failed
    # transaction (SQLAlchemy: "already initialized a … Transaction"), nor is anyone else.
    assert await database.write(_add_shop("after")) > 0
    results = await asyncio.gather(
        database.write(_add_shop("a")),
        database.write(_fails_at_commit(database.dialect)),
        database.write(_add_shop("b")),
        return_exceptions=True,
    )
    assert isinstance(results[0], int)
    assert isinstance(results[1], sa.exc.IntegrityError)
    assert isinstance(results[2], int)
    assert await _slugs(database) == {"after", "a", "b"}
    assert database.writer.health.ok  # the unit's own fault, not the database's


async def test_a_full_disk_fails_writes_at_once_and_the_writer_recovers_by_itself(
    db_url: tuple[str, str | None],
) -> None:
    failures: list[BaseException] = []
    clock = FrozenClock(NOW)
    database = Database(
        db_url[0], search_path=db_url[1], now=clock.now, on_commit_failure=failures.append
    )
    await database.start()
    disk = Disk(database, db_url[1])
    try:
        await disk.fill()
        assert database.writer.health.ok  # full, but nobody has tried to write yet

        async with asyncio.timeout(BOUND):  # not retried for a minute while callers wait
            results = await asyncio.gather(
                database.write(_add_shop("big", NAME)),
                database.write(_add_shop("big2", NAME)),
                return_exceptions=True,
            )
        assert all(isinstance(r, sa.exc.DBAPIError) for r in results), results
        health = database.writer.health
        assert health.failing_since == NOW
        assert "full" in health.error or "No space left" in health.error
        assert "INSERT" not in health.error  # no statement, no parameters
        assert len(failures) == health.failed_commits >= 1

        clock.advance(minutes=5)
        await database.write(lambda conn: None)  # an empty commit proves nothing
        assert database.writer.health.failing_since == NOW

        await disk.free()
        assert not database.writer.health.ok  # no write has succeeded yet
        assert await database.write(_add_shop("big3", NAME)) > 0
        assert database.writer.health.ok
        assert await _slugs(database) == {"big3"}
    finally:
        await database.close()


async def test_a_locked_sqlite_file_is_still_waited_for_and_retried(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only a full disk and its kin fail at once: another process holding the write lock
    past the busy timeout is waited out as before (and shows as failing meanwhile)."""
    monkeypatch.setattr(db_module, "SQLITE_BUSY_TIMEOUT_MS", 50)
    path = tmp_path / "locked.db"
    url = f"sqlite+aiosqlite:///{path}"
    await upgrade(url)
    failed = asyncio.Event()
    database = Database(url, on_commit_failure=lambda _: failed.set())
    await database.start()
    other = sqlite3.connect(path, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        write = asyncio.ensure_future(database.write(_add_shop("waited")))
        async with asyncio.timeout(BOUND):
            await failed.wait()
        assert "locked" in database.writer.health.error
        assert not write.done()
        other.execute("ROLLBACK")
        async with asyncio.timeout(BOUND):
            assert await write > 0
        assert database.writer.health.ok
    finally:
        other.close()
        await database.close()


# --------------------------------------------------------------------------- the app


def disk_of(client: Client, db_url: tuple[str, str | None]) -> Disk:
    return Disk(client.app[keys.DATABASE], db_url[1])


async def inbound(client: Client) -> list[Any]:
    async with client.app[keys.DATABASE].read() as conn:
        query = sa.select(Message.body).where(Message.direction == "in").order_by(Message.id)
        return list((await conn.execute(query)).scalars())


async def health(client: Client) -> tuple[int, dict[str, Any]]:
    resp = await client.get("/healthz")
    return resp.status, await resp.json()


async def commit_failures(client: Client) -> float:
    text = await (await client.get("/metrics")).text()
    (line,) = [ln for ln in text.splitlines() if ln.startswith("dangol_db_commit_failures_total")]
    return float(line.split()[-1])


async def test_kakao_customer_is_told_the_truth_and_healthz_says_so(
    client: Client, db_url: tuple[str, str | None], clock: FrozenClock
) -> None:
    disk = disk_of(client, db_url)
    await disk.fill()
    assert (await health(client))[0] == 200

    status, answer = await post_skill(client, said(LONG))  # checks the SkillResponse shape
    assert status == 200
    (text,) = texts(answer)
    assert NOT_STORED in text
    assert "받았어요" not in text
    assert "02-1234-5678" in text  # the shop's phone, for what cannot wait
    assert await inbound(client) == []

    status, body = await health(client)
    assert status == 503
    assert body["database"] == "cannot write"
    assert body["failing_since"] == clock.now().isoformat()
    assert "full" in body["error"] or "No space left" in body["error"]
    assert await commit_failures(client) == 1.0

    await disk.free()
    status, answer = await post_skill(client, said(LONG))  # the customer sends it again
    assert status == 200
    assert "사장님이 확인하고 바로 답변드릴게요" in texts(answer)[0]
    assert await inbound(client) == [LONG]
    assert await health(client) == (200, {"status": "ok", "database": "ok", "writer_queue": 0})
    assert await commit_failures(client) == 1.0


async def test_kakao_answer_after_the_budget_is_honest_while_writes_fail(
    make_client: MakeClient, db_url: tuple[str, str | None]
) -> None:
    """The answer that cannot wait for the commit says "received" only while writes work."""
    client = await make_client(server={"skill_budget_ms": 50})
    disk = disk_of(client, db_url)
    await disk.fill()
    writer = client.app[keys.DATABASE].writer
    with pytest.raises(sa.exc.DBAPIError):  # a write has failed: the writer is failing
        await client.app[keys.DATABASE].write(_add_shop("big", NAME))
    assert not writer.health.ok

    async with HeldWrites(client.app):  # the next transaction takes longer than the budget
        status, answer = await post_skill(client, said(LONG + "!"))
    assert status == 200
    (text,) = texts(answer)
    assert NOT_STORED in text
    assert "받았어요" not in text
    await settled(client.app)
    assert await inbound(client) == []


async def test_twilio_hears_5xx_and_its_resend_is_stored_once(
    make_client: MakeClient, db_url: tuple[str, str | None]
) -> None:
    client = await twilio_client(make_client)
    disk = disk_of(client, db_url)
    await disk.fill()
    form = inbound_sms_form(LONG)
    resp = await post_signed(client, "/hooks/twilio/hanbit/sms", form)
    assert resp.status == 503
    assert await inbound(client) == []

    await disk.free()
    for _ in range(2):  # Twilio's retry, then a duplicate of it: one message
        resp = await post_signed(client, "/hooks/twilio/hanbit/sms", form)
        assert resp.status == 200
        assert "<Response/>" in await resp.text()
    assert await inbound(client) == [LONG]
    assert (await health(client))[0] == 200


async def test_solapi_hears_503_and_its_resend_is_stored(
    make_client: MakeClient, db_url: tuple[str, str | None]
) -> None:
    client = await make_client(
        shops=[shop_table(solapi={"webhook_token_env": "DANGOL_TEST_SOLAPI_TOKEN"})]
    )
    disk = disk_of(client, db_url)
    await disk.fill()
    reports = [report(f"ev{i}", "3059", "x" * 400) for i in range(3)]
    status, body = await post_report(client, reports)
    assert (status, body) == (503, {"ok": False, "error": "not stored"})
    assert (await health(client))[0] == 503

    await disk.free()
    status, body = await post_report(client, reports)
    assert (status, body) == (200, {"ok": True})
    async with client.app[keys.DATABASE].read() as conn:
        stored = (await conn.execute(sa.select(sa.func.count(DeliveryEvent.id)))).scalar_one()
    assert stored == 3
    assert (await health(client))[0] == 200


def test_the_not_stored_text_offers_the_phone_only_when_there_is_one() -> None:
    shop = make_settings().shops[0]
    with_phone = Texts().render("not_stored", shop=shop)
    assert with_phone.endswith("급하시면 02-1234-5678로 전화 주세요.")
    without = Texts().render("not_stored", shop=dataclasses.replace(shop, phone=""))
    assert without == with_phone.splitlines()[0]
    assert NOT_STORED in without


# --------------------------------------------------------------------------- what follows a commit


class Followed:
    """What the app wires to the database's commits: the dispatcher woken, consoles told."""

    def __init__(self, database: Database) -> None:
        self.wakes = 0
        self.events: list[tuple[int, dict[str, Any]]] = []
        database.listen(RowsAdded, self._wake)
        database.listen(LiveEvent, self._publish)

    def _wake(self, _: list[RowsAdded]) -> None:
        self.wakes += 1

    def _publish(self, events: list[LiveEvent]) -> None:
        self.events += [(e.shop_id, e.event) for e in events]


def _notice_to_owner(slug: str, name: str = "") -> Callable[[Connection], int]:
    """A shop and an outbox row for it, announced to its consoles: what the Kakao webhook's
    unit does for a message that needs the owner."""

    def unit(conn: Connection) -> int:
        shop_id = _add_shop(slug, name)(conn)
        request = OutboxRequest(
            shop_id=shop_id,
            purpose="owner_notice",
            provider="console",
            recipient={},
            payload={"text": "새 문의"},
            idempotency_key=f"notify:{slug}",
            now=NOW,
        )
        assert enqueue(conn, request) is not None
        enqueue_many(conn, [dataclasses.replace(request, idempotency_key=f"notify2:{slug}")])
        announce(shop_id, {"type": "message", "slug": slug})
        return shop_id

    return unit


async def test_a_committed_unit_wakes_the_dispatcher_and_publishes_once(
    database: Database,
) -> None:
    followed = Followed(database)
    shop_id = await database.write(_notice_to_owner("a"))
    # Two rows added, one wake: once per commit, and before `write` returns.
    assert followed.wakes == 1
    assert followed.events == [(shop_id, {"type": "message", "slug": "a"})]


async def test_a_rolled_back_unit_wakes_nothing_and_publishes_nothing(
    database: Database,
) -> None:
    followed = Followed(database)

    def fails_after(conn: Connection) -> None:
        _notice_to_owner("gone")(conn)
        raise RuntimeError("rolled back")

    def fails_at_commit(conn: Connection) -> None:  # the statements pass; the COMMIT fails
        _notice_to_owner("gone2")(conn)
        _fails_at_commit(database.dialect)(conn)

    with pytest.raises(RuntimeError):
        await database.write(fails_after)
    with pytest.raises(sa.exc.IntegrityError):
        await database.write(fails_at_commit)
    assert (followed.wakes, followed.events) == (0, [])
    assert await _slugs(database) == set()


async def test_a_unit_run_outside_the_writer_registers_nothing(database: Database) -> None:
    """A tool or a test running a unit on a connection of its own: no commit to follow."""
    followed = Followed(database)
    async with database.engine.connect() as conn:
        await conn.run_sync(lambda c: announce(1, {"type": "nobody hears"}))
    assert followed.events == []


async def test_a_group_commit_runs_each_units_effects_after_the_shared_commit(
    database: Database,
) -> None:
    followed = Followed(database)
    seen_at_commit: list[int] = []
    database.listen(LiveEvent, lambda _: seen_at_commit.append(database.writer.batches))
    before = database.writer.batches
    ids = await asyncio.gather(*(database.write(_notice_to_owner(s)) for s in ("a", "b", "c")))
    assert database.writer.batches == before + 1  # one commit for the three
    assert followed.wakes == 1
    assert followed.events == [
        (shop_id, {"type": "message", "slug": s}) for shop_id, s in zip(ids, "abc", strict=True)
    ]
    assert seen_at_commit == [before + 1]  # once, after the commit was counted

    # One bad unit: the others are committed one by one, each followed by its own effects.
    results = await asyncio.gather(
        database.write(_notice_to_owner("d")),
        database.write(_fails_at_commit(database.dialect)),
        database.write(_notice_to_owner("e")),
        return_exceptions=True,
    )
    assert isinstance(results[1], sa.exc.IntegrityError)
    assert [event["slug"] for _, event in followed.events[3:]] == ["d", "e"]
    assert followed.wakes == 3


async def test_a_group_commit_that_fails_runs_no_effects(db_url: tuple[str, str | None]) -> None:
    database = Database(db_url[0], search_path=db_url[1])
    await database.start()
    followed = Followed(database)
    disk = Disk(database, db_url[1])
    try:
        await disk.fill()
        before = database.writer.units
        async with asyncio.timeout(BOUND):
            results = await asyncio.gather(
                *(database.write(_notice_to_owner(s, NAME)) for s in ("x", "y", "z")),
                return_exceptions=True,
            )
        assert all(isinstance(r, sa.exc.DBAPIError) for r in results), results
        assert database.writer.units == before
        assert (followed.wakes, followed.events) == (0, [])

        await disk.free()
        await database.write(_notice_to_owner("w", NAME))
        assert followed.wakes == 1
        assert [event["slug"] for _, event in followed.events] == ["w"]
    finally:
        await database.close()


async def test_a_listener_that_fails_does_not_fail_the_write_nor_the_others(
    database: Database, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(_: list[LiveEvent]) -> None:
        raise RuntimeError("a listener's bug")

    database.listen(LiveEvent, broken)
    followed = Followed(database)
    assert await database.write(_notice_to_owner("a")) > 0
    assert followed.wakes == 1
    assert len(followed.events) == 1
    assert "a listener of LiveEvent failed" in caplog.text
