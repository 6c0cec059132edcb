"""The group-commit writer: every write in dangol goes through it.

Every write is a *unit*: a plain function that takes a SQLAlchemy `Connection` and does
its statements. Units go through one writer per process, which runs whatever units are
waiting in one transaction and commits them together (group commit). That is what lets
the Kakao webhook commit every message before answering and still keep up with a bare
handler: one fsync for many requests instead of one each. Work that can be done
set-based is written as `Batched(run_many, item)`: the writer hands every such job waiting
for the same commit to one `run_many` call, so the statements are shared too.

A unit may register what must follow its commit — wake the outbox's dispatcher, tell the
owner's consoles — with `after_commit(signal)`. The writer hands the signals of a committed
transaction to the listeners of their type (`Database.listen`, wired by the app), once per
commit; a unit that rolls back, or whose group commit fails, registers nothing that runs.

When the database itself fails — the disk is full, an I/O error, a lost connection that
does not come back — the writer fails the batch at once (only a locked file and a dropped
connection are retried), rolls back, and records it in `Writer.health`: `/healthz` answers
503 and the webhooks tell the sender the truth until a write commits again.

How a transaction is run and committed is the database's (`core.db.Database` gives the
writer its `execute`); this module knows no engine.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import sqlite3
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from tenacity import (
    AsyncRetrying,
    retry_if_exception,
    stop_after_delay,
    wait_exponential,
)

log = logging.getLogger(__name__)

T = TypeVar("T")
X = TypeVar("X")
S = TypeVar("S")
Unit = Callable[[Connection], T]


# --------------------------------------------------------------------------- after commit

# The signals registered by the units of the transaction under way. The writer sets a fresh
# list for each attempt: its units run inside that attempt (on the event loop, or in
# SQLAlchemy's greenlet, which shares the task's context), so nothing else can append to it.
_registered: ContextVar[list[object] | None] = ContextVar("dangol_after_commit", default=None)


def after_commit(signal: object) -> None:
    """Inside a unit: once its transaction commits, hand `signal` to the listeners of its
    type (`Database.listen`). Nothing follows a rollback, nor a unit run outside the writer
    (a test or a tool running a unit on a connection of its own: no commit to follow)."""
    registered = _registered.get()
    if registered is not None:
        registered.append(signal)


Listener = Callable[[list[Any]], None]


class CommitListeners:
    """Who hears what a commit carried: each listener is called once per commit with that
    commit's signals of its type, in the order the units registered them. Listeners run on
    the event loop and must not block; one that raises is logged and does not stop the rest."""

    def __init__(self) -> None:
        self._by_type: dict[type, list[Listener]] = {}

    def listen(self, kind: type[S], listener: Callable[[list[S]], None]) -> Callable[[], None]:
        """Call `listener` after each commit that registered signals of type `kind`.
        Returns what stops it."""
        self._by_type.setdefault(kind, []).append(listener)
        return lambda: self._by_type[kind].remove(listener)

    def committed(self, signals: list[object]) -> None:
        if not signals:
            return
        by_type: dict[type, list[object]] = {}
        for signal in signals:
            by_type.setdefault(type(signal), []).append(signal)
        for kind, group in by_type.items():
            for listener in tuple(self._by_type.get(kind, ())):
                try:
                    listener(group)
                except Exception:
                    log.exception("after commit: a listener of %s failed", kind.__name__)


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
        self.listeners = CommitListeners()

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
            results, signals = await self._with_retry(_steps(batch))
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
                    ((result,),), signals = await self._with_retry(_steps([job]))
                except Exception as exc:
                    self._settle(job, exc=exc)
                else:
                    self.listeners.committed(signals)
                    self._settle(job, result=result)
            return
        self.batches += 1
        self.units += len(batch)
        # Before the callers hear: once `write` returns, what follows its commit has happened.
        self.listeners.committed(signals)
        flat = [result for step in results for result in step]
        for job, result in zip(batch, flat, strict=True):
            self._settle(job, result=result)

    async def _with_retry(self, units: list[Unit[Any]]) -> tuple[list[Any], list[object]]:
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

    async def _attempt(self, units: list[Unit[Any]]) -> tuple[list[Any], list[object]]:
        """One transaction, with what it teaches about the database's health; returns the
        units' results and the signals they registered for after the commit."""
        checking = not self.health.ok
        signals: list[object] = []
        registering = _registered.set(signals)
        try:
            results: list[Any] = await self._execute([*units, self._wrote] if checking else units)
        except Exception as exc:
            if _is_database_fault(exc):
                self._failed(exc)
            raise
        finally:
            _registered.reset(registering)
        if checking and results.pop():
            log.warning("database writes again (failing since %s)", self.health.failing_since)
            self.health.failing_since = None
        return results, signals

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
