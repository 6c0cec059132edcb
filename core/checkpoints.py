"""SQLite's WAL copied into the database file beside the writer, not inside its COMMIT.

By default SQLite checkpoints inside the COMMIT that takes the WAL past 1000 pages: that
COMMIT copies some 4 MB into the database file and fsyncs it (`synchronous=FULL`) while
its whole group of requests waits, and every group queued behind it. Under the Kakao
bench such a COMMIT came three times a second and took 13 ms at the median against
1.6 ms for the others; while another process wrote to the same disk, 0.4 s; after a
reader had held one snapshot for 6 s, a single COMMIT copied 56 MB. It is the writer's
one large exposure to a slow disk, and the likeliest cause of the intermittent stall of
the bench's paced runs (issue #10); what no policy removes is the WAL's own fsync.

So the writer's connection runs with `wal_autocheckpoint=0`, and `Checkpointer` does the
same PASSIVE checkpoint on a connection and thread of its own, at most every
`EVERY_SECONDS` after a commit. A PASSIVE checkpoint never takes the write lock: commits
go on while it copies, and a slow disk delays only the copy.

The WAL starts again from its beginning only when a write transaction begins with every
frame already copied. Under a steady stream of commits that moment may not come, so once
the WAL holds `CATCH_UP_FRAMES` the writer waits, before its next BEGIN, for one round
that copies what came since the last (the only wait left: tens of milliseconds, once per
16 MB of WAL).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import sqlite3
import time

log = logging.getLogger(__name__)

EVERY_SECONDS = 0.5
CATCH_UP_FRAMES = 4000  # about 16 MB of WAL with SQLite's 4 KiB pages
# A reader holding one snapshot for long (a backup, say) lets the WAL grow past the mark;
# when it starts over, the writer cuts the file back to this size.
WAL_FILE_LIMIT_BYTES = 32 * 1024 * 1024


def no_autocheckpoint(dbapi_conn: sqlite3.Connection, _record: object) -> None:
    """For the writer's connection (a SQLAlchemy "connect" listener): its COMMITs never
    checkpoint, `Checkpointer` does; and the WAL file does not keep the size of its
    largest moment."""
    dbapi_conn.execute("PRAGMA wal_autocheckpoint=0").close()
    dbapi_conn.execute(f"PRAGMA journal_size_limit={int(WAL_FILE_LIMIT_BYTES)}").close()


class Checkpointer:
    """PASSIVE checkpoints of one SQLite database, on a connection and thread of their own."""

    def __init__(self, path: str, synchronous: str) -> None:
        self._path = path
        self._synchronous = synchronous  # the checkpoint's fsyncs follow the writer's setting
        self._thread = concurrent.futures.ThreadPoolExecutor(
            1, thread_name_prefix="dangol-sqlite-checkpoint"
        )
        self._conn: sqlite3.Connection | None = None
        self._round: asyncio.Future[None] | None = None
        self._started = -EVERY_SECONDS
        self.wal_frames = 0  # frames in the WAL at the last round
        self.rounds = 0
        self.catch_ups = 0

    def after_commit(self) -> None:
        """On the event loop after each commit: start a round if none is running or due."""
        if self._round is not None and not self._round.done():
            return
        if time.monotonic() - self._started < EVERY_SECONDS:
            return
        self._started = time.monotonic()
        self._round = asyncio.get_running_loop().run_in_executor(self._thread, self._checkpoint)
        self._round.add_done_callback(_log_failure)

    async def before_begin(self) -> None:
        """On the event loop before each BEGIN: past `CATCH_UP_FRAMES`, copy what is left
        so that this transaction starts the WAL over."""
        if self.wal_frames < CATCH_UP_FRAMES:
            return
        await self.idle()
        try:
            await asyncio.get_running_loop().run_in_executor(self._thread, self._checkpoint)
        except sqlite3.Error as exc:  # the write must go on: the WAL still has everything
            log.warning("WAL checkpoint before a write failed: %s", exc)
        else:
            self.catch_ups += 1
        self.wal_frames = 0  # this BEGIN restarts the WAL; the next round says how it grows

    async def idle(self) -> None:
        """Wait for the round running now, if any."""
        if self._round is not None and not self._round.done():
            await asyncio.wait([self._round])

    async def close(self) -> None:
        await self.idle()
        await asyncio.get_running_loop().run_in_executor(self._thread, self._disconnect)
        self._thread.shutdown(wait=True)

    def _checkpoint(self) -> None:
        if self._conn is None:
            self._conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
            self._conn.execute(f"PRAGMA synchronous={self._synchronous}")
        _busy, frames, _copied = self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        self.wal_frames = max(frames, 0)  # -1: not in WAL mode
        self.rounds += 1

    def _disconnect(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def _log_failure(round_: asyncio.Future[None]) -> None:
    # A failed checkpoint (a full disk, say) loses nothing: the WAL keeps every commit,
    # and the next round tries again.
    if not round_.cancelled() and round_.exception() is not None:
        log.warning("WAL checkpoint failed: %s", round_.exception())
