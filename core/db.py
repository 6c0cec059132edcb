"""The database: engines, SQLite done right, migrations, and the group-commit writer.

Every write in dangol is a *unit*: a plain function that takes a SQLAlchemy `Connection`
and does its statements. Units go through one writer per process, which runs whatever
units are waiting in one transaction and commits them together (group commit). That is
what lets the Kakao webhook commit every message before answering and still keep up with
a bare handler: one fsync for many requests instead of one each. Work that can be done
set-based is written as `Batched(run_many, item)`: the writer hands every such job waiting
for the same commit to one `run_many` call, so the statements are shared too.

On SQLite the writer owns a single connection (`BEGIN IMMEDIATE`, so a writer never
deadlocks upgrading a read lock) and all other connections are read-only; its statements
run on the event loop, BEGIN and COMMIT in a thread of its own. On PostgreSQL the writer
runs the same units through asyncpg via `run_sync`.

When the database itself fails — the disk is full, an I/O error, a lost connection that
does not come back — the writer fails the batch at once (only a locked file and a dropped
connection are retried), rolls back, and records it in `Writer.health`: `/healthz` answers
503 and the webhooks tell the sender the truth until a write commits again.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import itertools
import logging
import sqlite3
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Generic, TypeVar

import sqlalchemy as sa
from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from tenacity import (
    AsyncRetrying,
    retry_if_exception,
    stop_after_delay,
    wait_exponential,
)

from core.checkpoints import Checkpointer, no_autocheckpoint

log = logging.getLogger(__name__)

T = TypeVar("T")
X = TypeVar("X")
Unit = Callable[[Connection], T]

SQLITE_BUSY_TIMEOUT_MS = 5000


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


def sqlite_path(url: str) -> str:
    """The database file a SQLite URL names ("" or ":memory:" for none)."""
    return sa.make_url(url).database or ""


def _sqlite_pragmas(synchronous: str, *, read_only: bool) -> Callable[[Any, Any], None]:
    def on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event emit BEGIN itself (pysqlite's implicit one is deferred).
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA synchronous={synchronous}")
        cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cur.execute("PRAGMA foreign_keys=ON")
        if read_only:
            cur.execute("PRAGMA query_only=ON")  # writes go through the writer, nowhere else
        cur.close()

    return on_connect


def _begin_with(statement: str) -> Callable[[Connection], None]:
    def on_begin(conn: Connection) -> None:
        conn.exec_driver_sql(statement)

    return on_begin


# Every engine is made with `hide_parameters=True`: a failed statement's error (logged at
# ERROR by whoever catches it) would otherwise carry its parameters — customers' words and
# phone numbers — into the log.


def _async_engine(
    url: str, *, synchronous: str = "FULL", read_only: bool, search_path: str | None = None
) -> AsyncEngine:
    if is_sqlite(url):
        path = sqlite_path(url)
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(
            url,
            connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
            hide_parameters=True,
        )
        event.listen(
            engine.sync_engine, "connect", _sqlite_pragmas(synchronous, read_only=read_only)
        )
        event.listen(
            engine.sync_engine, "begin", _begin_with("BEGIN" if read_only else "BEGIN IMMEDIATE")
        )
        return engine
    connect_args: dict[str, Any] = {}
    if search_path:
        connect_args["server_settings"] = {"search_path": search_path}
    return create_async_engine(
        url,
        pool_size=10,
        max_overflow=10,
        pool_pre_ping=True,
        connect_args=connect_args,
        hide_parameters=True,
    )


# --------------------------------------------------------------------------- migrations

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config() -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


async def upgrade(url: str, revision: str = "head", *, search_path: str | None = None) -> None:
    """Bring the schema to `revision` (used by `dangol db upgrade`, `init`, `demo` and tests)."""
    engine = _async_engine(url, read_only=False, search_path=search_path)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(_upgrade_on, revision)
    finally:
        await engine.dispose()


class SchemaOutOfDate(RuntimeError):
    pass


async def check_schema(database: Database) -> None:
    """Refuse to serve on a schema older (or newer) than this code expects."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    async with database.read() as conn:
        current = await conn.run_sync(
            lambda c: MigrationContext.configure(c).get_current_revision()
        )
    if current != head:
        found = current or "empty"
        raise SchemaOutOfDate(
            f"database schema is at {found}, this dangol needs {head}: "
            "run `dangol db upgrade --config …`"
        )


def _upgrade_on(conn: Connection, revision: str) -> None:
    cfg = alembic_config()
    cfg.attributes["connection"] = conn
    command.upgrade(cfg, revision)


# --------------------------------------------------------------------------- the writer


def _is_transient(exc: BaseException) -> bool:
    """Lost connections and a locked SQLite file pass; constraint violations do not, and
    neither does a full disk or an I/O error: retrying those would hold every caller for a
    minute, and the sender retries on its own once told the message was not stored."""
    if isinstance(exc, sa.exc.DBAPIError) and exc.connection_invalidated:
        return True
    if isinstance(exc, sa.exc.DBAPIError) and isinstance(exc.orig, sqlite3.Error):
        return _sqlite_code(exc.orig) in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
    return isinstance(exc, sa.exc.OperationalError | OSError | ConnectionError)


# What the database does wrong rather than a unit: SQLite's result codes, and PostgreSQL's
# SQLSTATE classes connection (08), insufficient resources (53, disk full), operator
# intervention (57), system error (58, I/O) and internal error (XX).
_SQLITE_FAULTS = {
    sqlite3.SQLITE_BUSY,
    sqlite3.SQLITE_LOCKED,
    sqlite3.SQLITE_FULL,
    sqlite3.SQLITE_IOERR,
    sqlite3.SQLITE_READONLY,
    sqlite3.SQLITE_CANTOPEN,
    sqlite3.SQLITE_CORRUPT,
    sqlite3.SQLITE_NOTADB,
    sqlite3.SQLITE_NOMEM,
}
_POSTGRES_FAULTS = ("08", "53", "57", "58", "XX")


def _is_database_fault(exc: BaseException) -> bool:
    """The database could not write (disk full, I/O error, connection gone), as opposed to
    a unit's own mistake: a constraint it violates, a value too long, bad SQL, a bug."""
    if isinstance(exc, OSError | ConnectionError):
        return True
    if not isinstance(exc, sa.exc.DBAPIError):
        return False
    if exc.connection_invalidated:
        return True
    if isinstance(exc.orig, sqlite3.Error):
        return _sqlite_code(exc.orig) in _SQLITE_FAULTS
    sqlstate = getattr(exc.orig, "sqlstate", None)
    if sqlstate:
        return str(sqlstate)[:2] in _POSTGRES_FAULTS
    return isinstance(exc, sa.exc.OperationalError | sa.exc.InterfaceError)


def _sqlite_code(error: sqlite3.Error) -> int:
    """The primary result code: SQLITE_IOERR for SQLITE_IOERR_WRITE and its kin."""
    return getattr(error, "sqlite_errorcode", 0) & 0xFF


def describe_failure(exc: BaseException) -> str:
    """ "OperationalError: database or disk is full": the driver's own words, without the
    statement and its parameters (a customer's message and number) that SQLAlchemy adds."""
    return f"{type(exc).__name__}: {getattr(exc, 'orig', None) or exc}"


@dataclass
class WriterHealth:
    """What the writer last learned about writing to the database."""

    failing_since: datetime | None = None  # the first failure since the last good write
    error: str = ""  # the latest failure, e.g. "OperationalError: database or disk is full"
    failed_commits: int = 0  # since the process started

    @property
    def ok(self) -> bool:
        return self.failing_since is None


@dataclass(frozen=True)
class Batched(Generic[X, T]):
    """Work the writer may do for many callers in one call.

    `run_many(conn, items)` does the work of every item at once and returns one result per
    item, in order. Consecutive jobs with the same `run_many` are handed over together, so
    fifty callers cost one call instead of fifty (the Kakao webhook: a fixed number of
    statements per group commit rather than per message). Alone it is `run_many(conn, [item])`.
    """

    run_many: Callable[[Connection, list[X]], list[T]]
    item: X


Work = Unit[T] | Batched[Any, T]


@dataclass(eq=False)  # jobs are compared by identity (see `_together`)
class _Job:
    work: Work[Any]
    future: asyncio.Future[Any] = field(repr=False)


def run_units(conn: Connection, units: list[Unit[Any]]) -> list[Any]:
    """Run units one after another inside the caller's transaction."""
    return [unit(conn) for unit in units]


def _steps(jobs: list[_Job]) -> list[Unit[list[Any]]]:
    """The units to run for `jobs`, in order, each returning a list of its jobs' results:
    a plain unit on its own, a run of batched jobs sharing a `run_many` as one call."""
    steps: list[Unit[list[Any]]] = []
    for _, run in itertools.groupby(jobs, key=_together):
        group = list(run)
        first = group[0].work
        if isinstance(first, Batched):
            items = [job.work.item for job in group if isinstance(job.work, Batched)]
            steps.append(_run_many(first.run_many, items))
        else:
            steps.append(_run_alone(first))
    return steps


def _together(job: _Job) -> object:
    """Jobs with equal keys share a call: batched work by its `run_many`, any other alone."""
    return job.work.run_many if isinstance(job.work, Batched) else job


def _run_alone(unit: Unit[Any]) -> Unit[list[Any]]:
    return lambda conn: [unit(conn)]


def _run_many(
    run_many: Callable[[Connection, list[Any]], list[Any]], items: list[Any]
) -> Unit[list[Any]]:
    def step(conn: Connection) -> list[Any]:
        results = run_many(conn, items)
        if len(results) != len(items):
            raise RuntimeError(
                f"{run_many!r} returned {len(results)} results for {len(items)} items"
            )
        return results

    return step


class Writer:
    """Group commit: every unit waiting when a transaction starts shares its commit."""

    def __init__(
        self,
        execute: Callable[[list[Unit[Any]]], Any],
        max_batch: int,
        *,
        wrote: Unit[bool],
        now: Callable[[], datetime],
        on_failure: Callable[[BaseException], None] | None = None,
    ) -> None:
        self._execute = execute  # async: runs units in one transaction, returns their results
        self._max_batch = max_batch
        # Run last in a transaction while the writer is failing: did it change anything? An
        # empty commit (a claim that found nothing due) succeeds on a full disk too.
        self._wrote = wrote
        self._now = now
        self._on_failure = on_failure
        self._queue: asyncio.Queue[_Job | None] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self.batches = 0
        self.units = 0
        self.health = WriterHealth()

    @property
    def depth(self) -> int:
        return self._queue.qsize()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="dangol-writer")

    async def close(self) -> None:
        """Finish everything already queued, then stop."""
        if self._task is None:
            return
        self._queue.put_nowait(None)
        await self._task
        self._task = None

    async def run(self, work: Work[T]) -> T:
        """Run `work` (a unit, or a `Batched` item) in a transaction; returns once committed."""
        return await self.submit(work)

    def submit(self, work: Work[T]) -> asyncio.Future[T]:
        """Queue `work`; the future resolves once it is committed. For callers with a
        deadline: they can stop waiting without a task of their own to shield."""
        if self._task is None:
            raise RuntimeError("the database writer is not running")
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Job(work, future))
        return future

    async def idle(self) -> None:
        """Return once every unit queued so far, and any queued meanwhile, has committed or
        failed: the writer has nothing left to do. (What tests await instead of sleeping.)"""
        if self._task is not None:
            await self._queue.join()

    async def _run(self) -> None:
        stopping = False
        while not stopping:
            job = await self._queue.get()
            if job is None:
                self._queue.task_done()
                break
            batch = [job]
            while len(batch) < self._max_batch and not self._queue.empty():
                nxt = self._queue.get_nowait()
                if nxt is None:
                    self._queue.task_done()
                    stopping = True
                    break
                batch.append(nxt)
            await self._commit(batch)
            for _ in batch:
                self._queue.task_done()  # what `idle` waits for

    async def _commit(self, batch: list[_Job]) -> None:
        try:
            results = await self._with_retry(_steps(batch))
        except Exception as exc:
            if len(batch) == 1 or _is_database_fault(exc):
                # The database failed, not a unit: each alone would fail the same way.
                for job in batch:
                    self._settle(job, exc=exc)
                return
            # One bad unit must not fail its neighbours: run each on its own.
            log.warning("group commit of %d units failed; running them one by one", len(batch))
            for job in batch:
                try:
                    ((result,),) = await self._with_retry(_steps([job]))
                except Exception as exc:
                    self._settle(job, exc=exc)
                else:
                    self._settle(job, result=result)
            return
        self.batches += 1
        self.units += len(batch)
        flat = [result for step in results for result in step]
        for job, result in zip(batch, flat, strict=True):
            self._settle(job, result=result)

    async def _with_retry(self, units: list[Unit[Any]]) -> list[Any]:
        async for attempt in AsyncRetrying(
            retry=retry_if_exception(_is_transient),
            wait=wait_exponential(multiplier=0.05, max=2.0),
            stop=stop_after_delay(60),
            reraise=True,
        ):
            with attempt:
                if attempt.retry_state.attempt_number > 1:
                    log.warning("database write retry #%d", attempt.retry_state.attempt_number)
                return await self._attempt(units)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _attempt(self, units: list[Unit[Any]]) -> list[Any]:
        """One transaction, with what it teaches about the database's health."""
        checking = not self.health.ok
        try:
            results: list[Any] = await self._execute([*units, self._wrote] if checking else units)
        except Exception as exc:
            if _is_database_fault(exc):
                self._failed(exc)
            raise
        if checking and results.pop():
            log.warning("database writes again (failing since %s)", self.health.failing_since)
            self.health.failing_since = None
        return results

    def _failed(self, exc: BaseException) -> None:
        self.health.failed_commits += 1
        self.health.error = describe_failure(exc)
        if self.health.failing_since is None:
            self.health.failing_since = self._now()
        log.error("database write failed: %s", self.health.error)
        if self._on_failure is not None:
            self._on_failure(exc)

    @staticmethod
    def _settle(job: _Job, *, result: Any = None, exc: BaseException | None = None) -> None:
        if job.future.done():  # the caller gave up waiting; the work is still committed
            return
        if exc is not None:
            job.future.set_exception(exc)
        else:
            job.future.set_result(result)


# --------------------------------------------------------------------------- the database


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
        self.engine = _async_engine(
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
                self._sync_engine, "connect", _sqlite_pragmas(sqlite_synchronous, read_only=False)
            )
            event.listen(self._sync_engine, "begin", _begin_with("BEGIN IMMEDIATE"))
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
