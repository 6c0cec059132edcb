"""Engines: SQLite done right (WAL, a busy timeout, foreign keys, `BEGIN IMMEDIATE` for
the writer, read-only connections for everything else) and PostgreSQL's pool."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

SQLITE_BUSY_TIMEOUT_MS = 5000


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


def sqlite_path(url: str) -> str:
    """The database file a SQLite URL names ("" or ":memory:" for none)."""
    return sa.make_url(url).database or ""


def sqlite_pragmas(synchronous: str, *, read_only: bool) -> Callable[[Any, Any], None]:
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


def begin_with(statement: str) -> Callable[[Connection], None]:
    def on_begin(conn: Connection) -> None:
        conn.exec_driver_sql(statement)

    return on_begin


# Every engine is made with `hide_parameters=True`: a failed statement's error (logged at
# ERROR by whoever catches it) would otherwise carry its parameters — customers' words and
# phone numbers — into the log.


def async_engine(
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
            engine.sync_engine, "connect", sqlite_pragmas(synchronous, read_only=read_only)
        )
        event.listen(
            engine.sync_engine, "begin", begin_with("BEGIN" if read_only else "BEGIN IMMEDIATE")
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
