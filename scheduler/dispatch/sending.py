"""Sending claimed rows to their vendors: within the send window, with short in-call retries.

Each send() call has its own time limit, and a row not handed to its vendor within the
first half of the lease (`send_window`) comes back as `NotSent` — it goes back to `pending`
with no try spent, never `unknown`. A blip (a `TransientError`, a short `RateLimited`) is
retried at once within the call (tenacity); anything longer is the outbox's job
(`not_before`).
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
)
from tenacity.stop import stop_base

from core.clock import Clock
from core.outbox import PhotoResolver
from providers.base import (
    NotYet,
    Outgoing,
    Provider,
    ProviderError,
    RateLimited,
    SendResult,
    TransientError,
    UnknownOutcome,
)
from providers.registry import Providers
from scheduler.dispatch.claims import Claimed
from scheduler.dispatch.outgoing import build_outgoing, not_configured

log = logging.getLogger("dangol.outbox")

# Short in-call retries: a blip is retried at once; anything longer is the outbox's job.
IN_CALL_RETRIES = 2
IN_CALL_WAIT = (0.2, 1.0)
IN_CALL_RETRY_AFTER_MAX = 2.0


class _RetryNow(Exception):
    """Some messages of a call failed transiently; try them again within this call."""

    def __init__(self, retry_after: float) -> None:
        super().__init__(retry_after)
        self.retry_after = retry_after


class NotSent(NotYet):
    """The send window closed before this message was handed to its vendor: nothing can
    have gone out, so it waits for the next round (at once) and no try is counted."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason, retry_after=0.0, code="not_sent")


class _StopAt(stop_base):
    """Stop in-call retries once `clock` reaches `deadline` (the send window's end)."""

    def __init__(self, clock: Clock, deadline: datetime) -> None:
        self.clock = clock
        self.deadline = deadline

    def __call__(self, retry_state: RetryCallState) -> bool:
        return self.clock.now() >= self.deadline


def _retry_now(outcome: SendResult | ProviderError) -> bool:
    if not isinstance(outcome, TransientError):
        return False
    return not isinstance(outcome, RateLimited) or outcome.retry_after <= IN_CALL_RETRY_AFTER_MAX


class Courier:
    """Takes claimed rows to their vendors, outside any transaction, and brings back each
    one's outcome: a `SendResult` or the `ProviderError` saying why not."""

    def __init__(
        self,
        providers: Providers,
        clock: Clock,
        *,
        lease_seconds: float,
        send_window: float,
        send_timeout: float,
        photos: PhotoResolver | None,
        rng: random.Random,
        sleep: Callable[[float], Awaitable[None]],
        in_call_retries: int,
    ) -> None:
        self.providers = providers
        self.clock = clock
        self.lease_seconds = lease_seconds
        self.send_window = send_window
        self.send_timeout = send_timeout
        self.photos = photos
        self._rng = rng
        self._sleep = sleep
        self._in_call_retries = in_call_retries

    async def deliver(self, claimed: Sequence[Claimed]) -> dict[int, SendResult | ProviderError]:
        """Send claimed rows, grouped by provider, outside any transaction."""
        outcomes: dict[int, SendResult | ProviderError] = {}
        groups: dict[str, list[tuple[Claimed, Outgoing]]] = {}
        for item in claimed:
            provider = self.providers.get(item.provider)
            if provider is None:
                outcomes[item.id] = not_configured(self.providers, item.provider)
                continue
            built = await build_outgoing(item, provider, self.photos)
            if isinstance(built, ProviderError):
                outcomes[item.id] = built
            else:
                groups.setdefault(item.provider, []).append((item, built))

        async def send_group(name: str, items: list[tuple[Claimed, Outgoing]]) -> None:
            provider = self.providers[name]
            by_ref = {msg.ref: item.id for item, msg in items}
            closes = self._window_closes([item for item, _ in items])
            size = max(1, provider.max_batch)
            for start in range(0, len(items), size):
                if self.clock.now() >= closes:  # the rest was never handed to the vendor
                    late = NotSent(f"not sent within {self.send_window:g} s; next round")
                    outcomes.update((item.id, late) for item, _ in items[start:])
                    return
                chunk = [msg for _, msg in items[start : start + size]]
                got = await self._send_with_retries(provider, chunk, closes)
                for ref, outcome in got.items():
                    outcomes[by_ref[ref]] = outcome

        await asyncio.gather(*(send_group(name, items) for name, items in groups.items()))
        return outcomes

    def _window_closes(self, items: Sequence[Claimed]) -> datetime:
        """When vendor calls for these rows stop: `send_window` after they were claimed."""
        after_window = timedelta(seconds=self.lease_seconds - self.send_window)
        leases = [item.lease_until for item in items if item.lease_until is not None]
        if not leases:
            return self.clock.now() + timedelta(seconds=self.send_window)
        return min(leases) - after_window

    async def _send_with_retries(
        self, provider: Provider, batch: list[Outgoing], closes: datetime
    ) -> dict[str, SendResult | ProviderError]:
        outcomes: dict[str, SendResult | ProviderError] = {}
        todo = batch
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self._in_call_retries + 1) | _StopAt(self.clock, closes),
            wait=self._in_call_wait,
            retry=retry_if_exception_type(_RetryNow),
            sleep=self._sleep,
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    got = await self._send_once(provider, todo)
                    outcomes.update(got)
                    todo = [m for m in todo if _retry_now(got[m.ref])]
                    if todo:
                        waits = [
                            e.retry_after for m in todo if isinstance(e := got[m.ref], RateLimited)
                        ]
                        raise _RetryNow(max(waits, default=0.0))
        except _RetryNow:
            pass  # the last transient errors stand; the outbox backs off
        return outcomes

    def _in_call_wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        retry_after = exc.retry_after if isinstance(exc, _RetryNow) else 0.0
        return max(retry_after, self._rng.uniform(*IN_CALL_WAIT))

    async def _send_once(
        self, provider: Provider, batch: list[Outgoing]
    ) -> dict[str, SendResult | ProviderError]:
        rate = provider.send_rate  # the wait its rate limit may impose is no hang
        limit = self.send_timeout + (len(batch) / rate if rate else 0.0)
        try:
            async with asyncio.timeout(limit):
                results = await provider.send(batch)
        except ProviderError as exc:
            return dict.fromkeys((m.ref for m in batch), exc)
        except TimeoutError:
            unknown = UnknownOutcome(f"no answer from {provider.name} in {limit:g} s")
            return dict.fromkeys((m.ref for m in batch), unknown)
        except Exception as exc:
            # An adapter bug or an unmapped library error: the request may have left, so
            # treat it as an unknown outcome (lookup before any resend), never as a failure.
            log.exception("provider %s raised %s", provider.name, type(exc).__name__)
            unknown = UnknownOutcome(f"{provider.name} raised {type(exc).__name__}")
            return dict.fromkeys((m.ref for m in batch), unknown)
        outcomes: dict[str, SendResult | ProviderError] = {}
        for i, msg in enumerate(batch):
            outcome = results[i] if i < len(results) else None
            if isinstance(outcome, ProviderError) or (
                isinstance(outcome, SendResult) and outcome.ref == msg.ref
            ):
                outcomes[msg.ref] = outcome
            else:
                log.error("provider %s gave no proper outcome for ref %s", provider.name, msg.ref)
                outcomes[msg.ref] = UnknownOutcome(f"{provider.name} gave no proper outcome")
        return outcomes
