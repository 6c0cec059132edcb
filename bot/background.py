"""Background work we started and must not forget: tracked, logged, awaited on shutdown."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

log = logging.getLogger(__name__)


class Background:
    def __init__(self) -> None:
        self._tasks: set[asyncio.Future[Any]] = set()

    def track(self, work: asyncio.Future[Any], what: str) -> None:
        self._tasks.add(work)

        def done(fut: asyncio.Future[Any]) -> None:
            self._tasks.discard(fut)
            if not fut.cancelled() and fut.exception() is not None:
                log.error("%s failed", what, exc_info=fut.exception())

        work.add_done_callback(done)

    async def close(self) -> None:
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
