"""Rate limits: a vendor's Retry-After read, and the token bucket a provider sends under."""

from __future__ import annotations

import asyncio
import email.utils
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime


def parse_retry_after(value: str | None, now: datetime) -> float:
    """Seconds from a Retry-After header (delta-seconds or HTTP-date); 1 s if absent."""
    if not value:
        return 1.0
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return 1.0
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


class TokenBucket:
    """An async token bucket: `rate` tokens per second, bursts up to `capacity`.

    Waiters are served in order (a lock is held while sleeping), and a request for more
    tokens than the bucket holds is granted by going into debt, so it waits but never hangs.
    """

    def __init__(
        self,
        rate: float,
        capacity: float | None = None,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = rate
        self.capacity = capacity if capacity is not None else max(1.0, rate)
        self._monotonic = monotonic
        self._sleep = sleep
        self._tokens = self.capacity
        self._last = monotonic()
        self._lock = asyncio.Lock()

    def _refill(self) -> None:
        now = self._monotonic()
        elapsed = max(0.0, now - self._last)
        self._tokens = min(self.capacity, self._tokens + elapsed * self.rate)
        self._last = now

    async def acquire(self, tokens: float = 1.0) -> float:
        """Take `tokens`, waiting as long as needed; returns the seconds waited."""
        async with self._lock:
            self._refill()
            self._tokens -= tokens
            if self._tokens >= 0:
                return 0.0
            wait = -self._tokens / self.rate
            await self._sleep(wait)
            self._refill()
            return wait

    async def ready(self, tokens: float = 1.0) -> None:
        """Wait until `tokens` could be taken at once (at most the capacity); take none."""
        async with self._lock:
            self._refill()
            missing = min(tokens, self.capacity) - self._tokens
            if missing > 0:
                await self._sleep(missing / self.rate)
                self._refill()
