"""A test double: records every call and fails on cue, deterministically.

fake.fail_next(TransientError("503"), times=2)   # the next two send() calls raise
fake.fail_for("+821011112222", PermanentError("수신거부 번호"))  # that message fails
fake.outcome_unknown_next()   # sends, then raises UnknownOutcome (timeout after it left)
"""

from __future__ import annotations

import asyncio
import collections
import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import aiohttp

from providers.base import (
    Capability,
    Option,
    Outgoing,
    Provider,
    ProviderError,
    SendRef,
    SendResult,
    UnknownOutcome,
)


@dataclass
class _Rule:
    error: ProviderError
    remaining: int | None  # None: for ever


class FakeProvider(Provider):
    name = "fake"
    capabilities = Capability.INITIATE | Capability.IMAGES | Capability.DELIVERY_REPORTS
    max_text_chars = 2000
    rate_per_second = None
    options_spec: ClassVar[Mapping[str, Option]] = {
        "status": Option(str, default="accepted", choices=("accepted", "delivered")),
        "path": Option(str, default="fake"),
        # Not used for anything: it lets tests see that secrets stay out of repr().
        "api_secret": Option(str, secret=True),
    }

    def __init__(
        self,
        options: Mapping[str, Any] | None = None,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        super().__init__(options or {}, session)
        self.calls: list[list[Outgoing]] = []  # every send() call, failed ones included
        self.sent: list[Outgoing] = []  # what actually "went out"
        self.lookups: list[SendRef] = []
        self.started = False
        self.closed = False
        self._results: dict[str, SendResult] = {}
        self._next: collections.deque[BaseException] = collections.deque()
        self._rules: dict[str, _Rule] = {}
        self._unknown_next = 0
        self._delay = 0.0
        self._ids = itertools.count(1)

    # -- the script

    def fail_next(self, error: ProviderError | Exception, times: int = 1) -> None:
        """The next `times` send() calls raise `error` (nothing is sent)."""
        self._next.extend([error] * times)

    def fail_for(self, ref_or_phone: str, error: ProviderError, times: int | None = None) -> None:
        """Messages with this ref or phone get `error` as their outcome (`times`, or always)."""
        self._rules[ref_or_phone] = _Rule(error, times)

    def delay(self, seconds: float) -> None:
        """Every send() waits this long first (a slow vendor)."""
        self._delay = seconds

    def outcome_unknown_next(self, times: int = 1) -> None:
        """The next send() calls really send, then raise UnknownOutcome (timeout after)."""
        self._unknown_next += times

    def reset(self) -> None:
        self._next.clear()
        self._rules.clear()
        self._unknown_next = 0
        self._delay = 0.0

    def sent_refs(self) -> list[str]:
        return [m.ref for m in self.sent]

    # -- the contract

    async def start(self) -> None:
        self.started = True

    async def close(self) -> None:
        self.closed = True

    async def send(self, batch: Sequence[Outgoing]) -> Sequence[SendResult | ProviderError]:
        batch = list(batch)
        self.calls.append(batch)
        if self._delay:
            await asyncio.sleep(self._delay)
        if self._next:
            raise self._next.popleft()
        outcomes: list[SendResult | ProviderError] = []
        for msg in batch:
            error = self._scripted_error(msg)
            if error is not None:
                outcomes.append(error)
                continue
            result = SendResult(
                ref=msg.ref,
                provider_message_id=f"fake-{next(self._ids)}",
                status=self.options["status"],
                path=self.options["path"],
            )
            self.sent.append(msg)
            self._results[msg.ref] = result
            outcomes.append(result)
        if self._unknown_next:
            self._unknown_next -= 1
            raise UnknownOutcome("응답 시간 초과 (fake)", code="timeout")
        return outcomes

    async def lookup(self, ref: SendRef) -> SendResult | None:
        self.lookups.append(ref)
        return self._results.get(ref.ref)

    def _scripted_error(self, msg: Outgoing) -> ProviderError | None:
        for key in (msg.ref, msg.recipient.phone):
            if not key or key not in self._rules:
                continue
            rule = self._rules[key]
            if rule.remaining is not None:
                rule.remaining -= 1
                if rule.remaining <= 0:
                    del self._rules[key]
            return rule.error
        return None
