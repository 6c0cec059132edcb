"""The database as dangol builds it: the migrations make exactly the schema the models
describe (SQLite and PostgreSQL), and SQLite runs with the `synchronous` level the config
names, on the writer's connection and on the readers'."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from conftest import Client, make_settings
from sqlalchemy.engine import Connection

from bot import keys
from bot.app import create_app
from core.clock import FrozenClock
from core.db import Database, upgrade
from core.models import Base


def _drift(conn: Connection) -> list[Any]:
    context = MigrationContext.configure(
        conn, opts={"compare_type": True, "compare_server_default": True}
    )
    return list(compare_metadata(context, Base.metadata))


def _sqlite_indexes(conn: Connection) -> set[str]:
    rows = conn.exec_driver_sql("SELECT name FROM sqlite_master WHERE type = 'index'")
    return {name for (name,) in rows}


# SQLite cannot reflect an index on an expression (lower(username)), so autogenerate leaves
# it out of the comparison, with a warning; it is checked by name below instead.
@pytest.mark.filterwarnings("ignore:Skipped unsupported reflection of expression-based index")
@pytest.mark.filterwarnings("ignore:autogenerate skipping metadata-specified expression-based")
async def test_the_migrations_build_the_schema_the_models_describe(database: Database) -> None:
    # `database` is migrated to head by the fixture; any difference is a migration missing
    # from core/migrations/versions (or a model changed without one).
    async with database.read() as conn:
        drift = await conn.run_sync(_drift)
        if database.dialect == "sqlite":
            built = await conn.run_sync(_sqlite_indexes)
            described = {i.name for t in Base.metadata.tables.values() for i in t.indexes}
            assert described - built == set()
    assert drift == []


# SQLite's PRAGMA synchronous answers a number.
SYNCHRONOUS = {"OFF": 0, "NORMAL": 1, "FULL": 2, "EXTRA": 3}


@pytest.mark.parametrize("level", ["NORMAL", "FULL"])
async def test_sqlite_runs_with_the_configured_synchronous_level(
    aiohttp_client: Any, clock: FrozenClock, tmp_path: Path, level: str
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'dangol.db'}"
    await upgrade(url)
    settings = make_settings(url, database={"url": url, "sqlite_synchronous": level})
    client: Client = await aiohttp_client(create_app(settings, clock=clock))
    database = client.app[keys.DATABASE]

    on_writer = await database.write(
        lambda conn: conn.exec_driver_sql("PRAGMA synchronous").scalar_one()
    )
    assert on_writer == SYNCHRONOUS[level]

    # Three readers open at once: three pooled connections, each set up on connect.
    held = asyncio.Event()
    seen: list[int] = []

    async def read() -> None:
        async with database.read() as conn:
            seen.append((await conn.exec_driver_sql("PRAGMA synchronous")).scalar_one())
            if len(seen) == 3:
                held.set()
            await held.wait()

    await asyncio.wait_for(asyncio.gather(read(), read(), read()), timeout=10)
    assert seen == [SYNCHRONOUS[level]] * 3
