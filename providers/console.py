"""The embedded default: "delivers" by writing a log line, so a demo needs no vendor account.

Its line says what went where (purpose, masked recipient). The message body — a customer's
words, in an owner notice — is left out unless `show_text = true`: `dangol demo` turns it on
so the demo shows what would be sent; a real install, where this provider may be the
owner's only channel (`dangol init` says so), keeps bodies out of the log like every other
line.
"""

from __future__ import annotations

import collections
import itertools
import logging
from collections.abc import Mapping, Sequence
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
)

log = logging.getLogger("dangol.console")


class ConsoleProvider(Provider):
    name = "console"
    capabilities = Capability.INITIATE
    max_text_chars = 2000
    rate_per_second = None
    options_spec: ClassVar[Mapping[str, Option]] = {
        "history": Option(int, default=200, minimum=1, help="sent messages kept in memory"),
        "show_text": Option(
            bool, default=False, help="print message bodies in the log line (the demo's)"
        ),
    }

    def __init__(
        self,
        options: Mapping[str, Any] | None = None,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        super().__init__(options or {}, session)
        history = self.options["history"]
        self.sent: collections.deque[Outgoing] = collections.deque(maxlen=history)
        self._results: collections.deque[SendResult] = collections.deque(maxlen=history)
        self._ids = itertools.count(1)

    async def send(self, batch: Sequence[Outgoing]) -> Sequence[SendResult | ProviderError]:
        outcomes: list[SendResult | ProviderError] = []
        for msg in batch:
            text = msg.text.replace("\r", "").replace("\n", " ⏎ ")
            subject = f"[{msg.subject}] " if msg.subject else ""
            body = f": {subject}{text}" if self.options["show_text"] else ""
            log.info(
                "[console] path=console purpose=%s to=%s%s",
                msg.purpose or "-",
                msg.recipient.masked(),
                body,
            )
            result = SendResult(
                ref=msg.ref,
                provider_message_id=f"console-{next(self._ids)}",
                status="delivered",
                path="console",
            )
            self.sent.append(msg)
            self._results.append(result)
            outcomes.append(result)
        return outcomes

    async def lookup(self, ref: SendRef) -> SendResult | None:
        return next((r for r in reversed(self._results) if r.ref == ref.ref), None)
