"""The database: its engines and the writer every write goes through.

`Database` is what the app holds: `read()` for queries, `write(unit)` for everything else
(the group-commit writer, `core.writer`), `listen` for what follows a commit. Engines and
SQLite's settings are `core.engines`; migrations and the schema check `core.schema`.

On SQLite the writer owns a single connection (`BEGIN IMMEDIATE`, so a writer never
deadlocks upgrading a read lock) and all other connections are read-only; its statements
run on the event loop, BEGIN and COMMIT in a thread of its own. On PostgreSQL the writer
runs the same units through asyncpg via `run_sync`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import sqlite3
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.ext.asyncio import AsyncConnection

from core.checkpoints import Checkpointer, no_autocheckpoint
from core.engines import (
    SQLITE_BUSY_TIMEOUT_MS,
    async_engine,
    begin_with,
    is_sqlite,
    sqlite_path,
    sqlite_pragmas,
)
from core.schema import SchemaOutOfDate, alembic_config, check_schema, upgrade
from core.writer import (
    Batched,
    Unit,
    Work,
    Writer,
    WriterHealth,
    after_commit,
    describe_failure,
    run_units,
)

# What the rest of dangol imports from here.
__all__ = [
    "SQLITE_BUSY_TIMEOUT_MS",
    "Batched",
    "Database",
    "SchemaOutOfDate",
    "Unit",
    "Work",
    "Writer",
    "WriterHealth",
    "after_commit",
    "alembic_config",
    "check_schema",
    "describe_failure",
    "is_sqlite",
    "run_units",
    "sqlite_path",
    "upgrade",
]

log = logging.getLogger(__name__)

T = TypeVar("T")
S = TypeVar("S")


class Database:
    """Engines plus the writer. `read()` for queries, `write(unit)` for everything else."""

    def __init__(
        self,
        url: str,
        *,
        sqlite_synchronous: str = "FULL",
        group_commit_max: int = 200,
        search_path: str | None = None,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        on_commit_failure: Callable[[BaseException], None] | None = None,
    ) -> None:
        self.url = url
        self.dialect = "sqlite" if is_sqlite(url) else "postgresql"
        self.engine = async_engine(
            url,
            synchronous=sqlite_synchronous,
            read_only=self.dialect == "sqlite",
            search_path=search_path,
        )
        self._sync_engine: Engine | None = None
        self._thread: concurrent.futures.ThreadPoolExecutor | None = None
        self._sync_conn: Connection | None = None
        self._changes_at_begin = 0
        if self.dialect == "sqlite":
            self._sync_engine = sa.create_engine(
                "sqlite:///" + sqlite_path(url),
                connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
                poolclass=sa.pool.StaticPool,
                hide_parameters=True,
            )
            event.listen(
                self._sync_engine, "connect", sqlite_pragmas(sqlite_synchronous, read_only=False)
            )
            event.listen(self._sync_engine, "begin", begin_with("BEGIN IMMEDIATE"))
            event.listen(self._sync_engine, "connect", no_autocheckpoint)
            self.checkpoints = Checkpointer(sqlite_path(url), sqlite_synchronous)
            self._thread = concurrent.futures.ThreadPoolExecutor(
                1, thread_name_prefix="dangol-sqlite-writer"
            )
            execute, wrote = self._execute_sqlite, self._sqlite_wrote
        else:
            execute, wrote = self._execute_async, _postgres_wrote
        self.writer = Writer(
            execute, group_commit_max, wrote=wrote, now=now, on_failure=on_commit_failure
        )

    async def start(self) -> None:
        self.writer.start()

    async def close(self) -> None:
        await self.writer.close()
        if self._thread is not None:
            await asyncio.get_running_loop().run_in_executor(self._thread, self._close_sync)
            self._thread.shutdown(wait=True)
            await self.checkpoints.close()
        await self.engine.dispose()

    def _close_sync(self) -> None:
        if self._sync_conn is not None:
            self._sync_conn.close()
            self._sync_conn = None
        if self._sync_engine is not None:
            self._sync_engine.dispose()

    async def write(self, work: Work[T]) -> T:
        return await self.writer.run(work)

    def listen(self, kind: type[S], listener: Callable[[list[S]], None]) -> Callable[[], None]:
        """After each commit whose units registered signals of type `kind` (`after_commit`),
        call `listener` with them. Returns what stops it."""
        return self.writer.listeners.listen(kind, listener)

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        async with self.engine.connect() as conn:
            yield conn

    # -- executors: run a list of units in one transaction and commit

    async def _execute_async(self, units: list[Unit[Any]]) -> list[Any]:
        async with self.engine.begin() as conn:
            return await conn.run_sync(run_units, units)

    async def _execute_sqlite(self, units: list[Unit[Any]]) -> list[Any]:
        # The statements run right here on the event loop: each takes microseconds, and a
        # writer thread would hand the GIL back and forth on every sqlite3 call, which cost
        # ten times more than the work. The two steps that can wait on the disk or on another
        # process — BEGIN IMMEDIATE (the file lock) and COMMIT (fsync) — run in the thread.
        loop = asyncio.get_running_loop()
        assert self._thread is not None
        await self.checkpoints.before_begin()
        conn = await loop.run_in_executor(self._thread, self._begin_sqlite)
        try:
            results = run_units(conn, units)
        except BaseException:
            await loop.run_in_executor(self._thread, self._end_sqlite, False)
            raise
        await loop.run_in_executor(self._thread, self._end_sqlite, True)
        self.checkpoints.after_commit()
        return results

    def _begin_sqlite(self) -> Connection:
        if self._sync_conn is None:
            assert self._sync_engine is not None
            self._sync_conn = self._sync_engine.connect()
        self._sync_conn.begin()
        self._changes_at_begin = _sqlite_changes(self._sync_conn)
        return self._sync_conn

    def _sqlite_wrote(self, conn: Connection) -> bool:
        return _sqlite_changes(conn) != self._changes_at_begin

    def _end_sqlite(self, commit: bool) -> None:
        conn = self._sync_conn
        assert conn is not None
        transaction = conn.get_transaction()
        if transaction is None:
            return
        if not commit:
            self._rollback_sqlite(conn, transaction)
            return
        try:
            transaction.commit()
        except sa.exc.DBAPIError as exc:
            if exc.connection_invalidated:
                conn.close()
                self._sync_conn = None
            else:
                # A failed COMMIT (disk full, I/O error, a deferred constraint) leaves the
                # transaction open, in SQLite and in SQLAlchemy, which then refuses every
                # later begin(): roll it back so the next batch starts clean.
                self._rollback_sqlite(conn, transaction)
            raise

    def _rollback_sqlite(self, conn: Connection, transaction: sa.engine.RootTransaction) -> None:
        try:
            transaction.rollback()
            # After a failed commit SQLAlchemy only forgets its transaction; SQLite's may
            # still be open, holding the write lock. (A no-op when there is none.)
            conn.connection.dbapi_connection.rollback()  # type: ignore[union-attr]
        except (sa.exc.DBAPIError, sqlite3.Error):
            # Cannot even roll back: drop the connection (closing it rolls back) and let the
            # next batch open a fresh one.
            log.exception("database rollback failed; reconnecting")
            conn.invalidate()
            conn.close()
            self._sync_conn = None


def _sqlite_changes(conn: Connection) -> int:
    """Rows this connection has inserted, updated or deleted since it opened."""
    changes: int = conn.connection.dbapi_connection.total_changes  # type: ignore[union-attr]
    return changes


def _postgres_wrote(conn: Connection) -> bool:
    """Whether this transaction changed anything: PostgreSQL gives it an id only then."""
    return bool(conn.exec_driver_sql("SELECT txid_current_if_assigned() IS NOT NULL").scalar())
