"""Background work we started and must not forget: tracked, logged, awaited on shutdown."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

log = logging.getLogger(__name__)


class Background:
    def __init__(self) -> None:
        self._tasks: set[asyncio.Future[Any]] = set()
        self._interruptible: set[asyncio.Future[Any]] = set()

    def track(self, work: asyncio.Future[Any], what: str, *, interruptible: bool = False) -> None:
        """Keep `work` until it is done. `interruptible`: work that the next start picks up
        again if it is stopped halfway, so shutdown cancels it instead of waiting for it."""
        self._tasks.add(work)
        if interruptible:
            self._interruptible.add(work)

        def done(fut: asyncio.Future[Any]) -> None:
            self._tasks.discard(fut)
            self._interruptible.discard(fut)
            if not fut.cancelled() and fut.exception() is not None:
                log.error("%s failed", what, exc_info=fut.exception())

        work.add_done_callback(done)

    def interrupt(self) -> None:
        """Cancel the interruptible work (on shutdown, before what it uses is closed)."""
        for work in list(self._interruptible):
            work.cancel()

    async def settled(self) -> None:
        """Wait until the work running now, and any it starts, is done (never cancels)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def close(self) -> None:
        self.interrupt()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
