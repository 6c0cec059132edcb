"""A database slower than the webhooks' budget — really, not by patching the writer.

While `HeldWrites` is held, another connection has the lock the app's writer needs, so its
next commit waits until the test lets go: on SQLite a second connection holds the write
lock (BEGIN IMMEDIATE); on PostgreSQL a second session locks the messages table against
writes (plain reads go on). The writer waits as it would for another process. Let go
within SQLite's busy timeout (5 s), or the writer counts it as a failed write.
"""

from __future__ import annotations

import asyncio
import sqlite3
from types import TracebackType

import asyncpg
from aiohttp import web

from bot import keys
from core.db import sqlite_path


class HeldWrites:
    """`async with HeldWrites(app):` — the app's writes wait until the block ends (or
    `release()`)."""

    def __init__(self, app: web.Application) -> None:
        self.database = app[keys.DATABASE]
        self.schema = app[keys.SETTINGS].database.schema
        self._sqlite: sqlite3.Connection | None = None
        self._postgres: asyncpg.Connection | None = None

    async def hold(self) -> None:
        if self.database.dialect == "sqlite":
            # In a thread: the writer may be half-way through a transaction that needs the
            # event loop to finish.
            self._sqlite = await asyncio.to_thread(self._hold_sqlite)
            return
        url = self.database.url.replace("postgresql+asyncpg", "postgresql")
        conn = await asyncpg.connect(url)
        if self.schema:
            await conn.execute(f'SET search_path TO "{self.schema}"')
        await conn.execute("BEGIN")
        await conn.execute("LOCK TABLE messages IN EXCLUSIVE MODE")
        self._postgres = conn

    def _hold_sqlite(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            sqlite_path(self.database.url), isolation_level=None, check_same_thread=False
        )
        conn.execute("BEGIN IMMEDIATE")
        return conn

    async def release(self) -> None:
        if self._sqlite is not None:
            conn, self._sqlite = self._sqlite, None
            conn.rollback()
            conn.close()
        if self._postgres is not None:
            pg, self._postgres = self._postgres, None
            await pg.execute("ROLLBACK")
            await pg.close()

    async def __aenter__(self) -> HeldWrites:
        await self.hold()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.release()
