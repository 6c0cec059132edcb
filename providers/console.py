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
import re
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
# How an owner notice names its sender in a text (core/templates/messages/owner_*.j2).
APP_TAG = re.compile(r"^\[단골\]")


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
        "heading": Option(
            str,
            help="the demo's: short lines, owner notices headed with this (the shop's name) "
            "instead of [단골]",
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
            log.info("%s", self._line(msg))
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

    def _line(self, msg: Outgoing) -> str:
        text = msg.text.replace("\r", "").replace("\n", " ⏎ ")
        subject = f"[{msg.subject}] " if msg.subject else ""
        body = f"{subject}{text}" if self.options["show_text"] else None
        heading = self.options["heading"]
        if heading is None:
            tail = "" if body is None else f": {body}"
            to = msg.recipient.masked()
            return f"[console] path=console purpose={msg.purpose or '-'} to={to}{tail}"
        # The demo's terminal: read at a glance, as the owner's phone would show it.
        to = "사장님께" if msg.recipient.owner else f"{msg.recipient.masked()}에게"
        if body is None:
            return f"{to} ▸ ({msg.purpose or '-'})"
        return f"{to} ▸ {APP_TAG.sub(f'[{heading}]', body, count=1)}"

    async def lookup(self, ref: SendRef) -> SendResult | None:
        return next((r for r in reversed(self._results) if r.ref == ref.ref), None)
