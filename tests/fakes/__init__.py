"""Fake vendor servers for tests: aiohttp apps served on 127.0.0.1."""

from __future__ import annotations

import asyncio
import collections
import contextlib
from dataclasses import dataclass

# What a fake vendor can be told to do wrong with the next request.
FAILURES = (
    "429",
    "500",
    "503",
    "malformed",
    "reset",
    "timeout_after_record",
    "timeout_before_record",
)


@dataclass
class Failure:
    kind: str
    retry_after: str = "1"


@dataclass
class FailureScript:
    """The failures a fake plays next (`fail_next`), and the hang a "timeout" is: until
    `release()` or `hang_seconds`. Fakes call `_next_failure()` as a request comes in;
    `await hanging()` returns once a request hangs."""

    hang_seconds: float = 5.0  # how long a "timeout" keeps the client waiting

    def __post_init__(self) -> None:
        self._failures: collections.deque[Failure] = collections.deque()
        self._released = asyncio.Event()
        self._hanging = asyncio.Event()

    def fail_next(self, kind: str, *, times: int = 1, retry_after: str | float = 1) -> None:
        if kind not in FAILURES:
            raise ValueError(f"unknown failure {kind!r} (known: {', '.join(FAILURES)})")
        self._failures.extend(Failure(kind, str(retry_after)) for _ in range(times))

    def release(self) -> None:
        """End every hanging "timeout" handler now (call before closing the server)."""
        self._released.set()

    async def hanging(self) -> None:
        """Return once a request is hanging (at once if one already has)."""
        await self._hanging.wait()

    def _next_failure(self) -> Failure | None:
        return self._failures.popleft() if self._failures else None

    async def _hang(self) -> None:
        self._hanging.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._released.wait(), self.hang_seconds)
