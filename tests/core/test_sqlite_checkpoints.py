"""SQLite checkpoints happen beside the writer, never inside a COMMIT (core.checkpoints).

SQLite's automatic checkpoint copies the WAL into the database file inside the COMMIT that
takes the WAL past 1000 pages, and the whole group commit — every request waiting on it —
waits for that copy and its fsync: the intermittent stall of the Kakao bench (issue #10).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from sqlalchemy.engine import Connection

from core import checkpoints
from core.db import Database, upgrade

ROWS_PER_COMMIT = 20
BLOB = 8000  # bytes: two or three pages a row


def _create_filler(conn: Connection) -> None:
    conn.exec_driver_sql("CREATE TABLE filler (body BLOB)")


def _fill(conn: Connection) -> None:
    for _ in range(ROWS_PER_COMMIT):
        conn.exec_driver_sql("INSERT INTO filler (body) VALUES (zeroblob(?))", (BLOB,))


async def _database(tmp_path: Path) -> tuple[Database, Path]:
    path = tmp_path / "dangol.db"
    url = f"sqlite+aiosqlite:///{path}"
    await upgrade(url)
    database = Database(url)
    await database.start()
    await database.write(_create_filler)
    return database, path


def _wal(path: Path) -> Path:
    return path.with_name(path.name + "-wal")


async def test_a_commit_never_copies_the_wal_into_the_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The checkpointer runs once, after the first commit, and then not for an hour.
    monkeypatch.setattr(checkpoints, "EVERY_SECONDS", 3600.0)
    database, path = await _database(tmp_path)
    try:
        await database.checkpoints.idle()
        before = path.stat().st_size
        for _ in range(60):  # some 3,000 pages: SQLite alone would checkpoint twice or more
            await database.write(_fill)
        assert path.stat().st_size == before  # not a page copied by a COMMIT
        assert _wal(path).stat().st_size > 60 * ROWS_PER_COMMIT * BLOB  # all of it in the WAL
    finally:
        await database.close()


async def test_the_checkpointer_copies_the_wal_beside_the_writer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(checkpoints, "EVERY_SECONDS", 0.0)
    database, path = await _database(tmp_path)
    try:
        for _ in range(60):
            await database.write(_fill)
        await database.checkpoints.idle()
        await database.write(_fill)  # one more round, after the last of those commits
        await database.checkpoints.idle()
        assert database.checkpoints.rounds > 1
        assert path.stat().st_size > 60 * ROWS_PER_COMMIT * BLOB
    finally:
        await database.close()


async def test_the_wal_starts_over_once_it_holds_the_catch_up_mark(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(checkpoints, "EVERY_SECONDS", 0.0)
    monkeypatch.setattr(checkpoints, "CATCH_UP_FRAMES", 200)
    database, path = await _database(tmp_path)
    try:
        for _ in range(120):  # some 6,000 pages, 24 MB, through the WAL
            await database.write(_fill)
        assert database.checkpoints.catch_ups > 0
        # Started over each time it held about 200 pages (plus one commit and one round's worth).
        assert _wal(path).stat().st_size < 4_000_000
    finally:
        await database.close()


async def test_the_wal_file_is_cut_back_after_a_long_reader_let_it_grow(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(checkpoints, "EVERY_SECONDS", 0.0)
    monkeypatch.setattr(checkpoints, "CATCH_UP_FRAMES", 200)
    monkeypatch.setattr(checkpoints, "WAL_FILE_LIMIT_BYTES", 1_000_000)
    database, path = await _database(tmp_path)
    reader = sqlite3.connect(path, isolation_level=None)
    try:
        reader.execute("BEGIN")
        reader.execute("SELECT count(*) FROM filler").fetchone()  # holds its snapshot
        for _ in range(40):  # nothing can be copied past the reader's snapshot meanwhile
            await database.write(_fill)
        grown = _wal(path).stat().st_size
        assert grown > 5_000_000
        reader.execute("COMMIT")
        for _ in range(40):
            await database.write(_fill)
        assert _wal(path).stat().st_size < grown / 2
    finally:
        reader.close()
        await database.close()


async def test_a_failing_checkpoint_never_fails_a_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def disk_error(_self: checkpoints.Checkpointer) -> None:
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(checkpoints, "EVERY_SECONDS", 0.0)
    database, _ = await _database(tmp_path)
    try:
        await database.checkpoints.idle()
        monkeypatch.setattr(checkpoints.Checkpointer, "_checkpoint", disk_error)
        database.checkpoints.wal_frames = checkpoints.CATCH_UP_FRAMES  # a catch-up is due
        await database.write(_fill)  # catch-up fails first, then the round after the commit
        await database.checkpoints.idle()
        await database.write(_fill)
        assert "WAL checkpoint before a write failed: disk I/O error" in caplog.text
        assert "WAL checkpoint failed: disk I/O error" in caplog.text
    finally:
        monkeypatch.undo()  # the real checkpointer, to close
        await database.close()
