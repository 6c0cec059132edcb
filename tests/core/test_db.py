"""The database spine: migrations, SQLite pragmas, group commit, UTC datetimes."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import sqlite
from sqlalchemy.engine import Connection

from core.db import Database, upgrade
from core.models import Shop, UTCDateTime

NOW = datetime(2026, 11, 23, 1, 0, tzinfo=UTC)


def _add_shop(slug: str):
    def unit(conn: Connection) -> int:
        row = conn.execute(
            sa.insert(Shop)
            .values(slug=slug, name=slug, owner_status="available", created_at=NOW)
            .returning(Shop.id)
        ).scalar_one()
        return int(row)

    return unit


async def test_group_commit_runs_concurrent_units_in_few_transactions(database: Database) -> None:
    ids = await asyncio.gather(*(database.write(_add_shop(f"s{i}")) for i in range(60)))
    assert len(set(ids)) == 60
    assert database.writer.units == 60
    assert database.writer.batches < 60  # they shared commits
    async with database.read() as conn:
        count = (await conn.execute(sa.select(sa.func.count()).select_from(Shop))).scalar_one()
    assert count == 60


async def test_one_failing_unit_does_not_fail_its_neighbours(database: Database) -> None:
    await database.write(_add_shop("taken"))
    results = await asyncio.gather(
        database.write(_add_shop("a")),
        database.write(_add_shop("taken")),  # unique slug violated
        database.write(_add_shop("b")),
        return_exceptions=True,
    )
    assert isinstance(results[0], int)
    assert isinstance(results[1], sa.exc.IntegrityError)
    assert isinstance(results[2], int)
    async with database.read() as conn:
        slugs = set((await conn.execute(sa.select(Shop.slug))).scalars())
    assert slugs == {"taken", "a", "b"}


async def test_idle_returns_once_everything_queued_has_committed(database: Database) -> None:
    """What tests await instead of sleeping: nothing queued, nothing in flight — units
    whose callers stopped waiting (the skill budget) and failed ones included."""
    await database.writer.idle()  # nothing to do: at once
    await database.write(_add_shop("taken"))
    given_up = database.writer.submit(_add_shop("late"))
    given_up.cancel()  # the caller's deadline passed; the unit still commits
    failing = database.writer.submit(_add_shop("taken"))
    await database.writer.idle()
    assert database.writer.depth == 0
    assert isinstance(failing.exception(), sa.exc.IntegrityError)
    async with database.read() as conn:
        slugs = set((await conn.execute(sa.select(Shop.slug))).scalars())
    assert slugs == {"taken", "late"}


async def test_datetimes_come_back_aware_utc(database: Database) -> None:
    await database.write(_add_shop("tz"))
    async with database.read() as conn:
        created = (await conn.execute(sa.select(Shop.created_at))).scalar_one()
    assert created == NOW
    assert created.tzinfo is not None


async def test_sqlite_is_configured_for_a_server(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'p.db'}"
    await upgrade(url)
    database = Database(url)
    async with database.read() as conn:
        mode = (await conn.exec_driver_sql("PRAGMA journal_mode")).scalar_one()
        fk = (await conn.exec_driver_sql("PRAGMA foreign_keys")).scalar_one()
        busy = (await conn.exec_driver_sql("PRAGMA busy_timeout")).scalar_one()
        with pytest.raises(sa.exc.OperationalError, match="readonly"):
            await conn.execute(
                sa.insert(Shop).values(slug="x", name="x", owner_status="off", created_at=NOW)
            )
    await database.close()
    assert (mode, fk, busy) == ("wal", 1, 5000)


@pytest.mark.parametrize(
    "value",
    [
        NOW,
        datetime(2026, 11, 23, 10, 0, 0, 123456, tzinfo=timezone(timedelta(hours=9))),
        datetime(2026, 1, 1, 0, 0, 0, 1, tzinfo=UTC),
    ],
)
def test_sqlite_stores_utc_datetimes_as_sqlalchemy_would(value: datetime) -> None:
    """Rows written before the one-step binding must still compare and sort with new ones."""
    dialect = sqlite.dialect()
    ours = UTCDateTime().bind_processor(dialect)
    theirs = sqlite.DATETIME().bind_processor(dialect)
    assert ours is not None
    assert theirs is not None
    assert ours(value) == theirs(value.astimezone(UTC).replace(tzinfo=None))
    assert ours(None) is None
    with pytest.raises(ValueError, match="naive datetime"):
        ours(value.replace(tzinfo=None))


async def test_a_failed_statement_keeps_its_parameters_out_of_the_error(
    database: Database,
) -> None:
    """Whoever logs a failed write logs its error: the customer's words and number must not
    be in it."""
    secret = "010-5555-6666 에어컨에서 물이 새요"

    def unit(conn: Connection) -> None:
        conn.execute(sa.text("INSERT INTO no_such_table (body) VALUES (:body)"), {"body": secret})

    with pytest.raises(sa.exc.DBAPIError) as caught:
        await database.write(unit)
    assert "no_such_table" in str(caught.value)
    assert secret not in str(caught.value)
    assert "5555" not in str(caught.value)
