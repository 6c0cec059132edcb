"""Routers and the switchboard: handlers in one ordered list, the first match answers.

Handlers are plain synchronous functions of (message, context) → Reply. They read the
context, may record *effects* on it (wait for the owner, flag a complaint, record a
consent) and never do I/O: the caller applies the effects in the same transaction that
stores the message, so a reply and its consequences are committed together.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeVar, cast

from bot.kakao import QuickReply
from core.availability import Availability, OwnerState, assess
from core.config import ShopConfig
from core.texts import Texts

log = logging.getLogger(__name__)
T = TypeVar("T")
_SPACES = re.compile(r"\s+")


@dataclass(frozen=True)
class Incoming:
    """What the customer said, whatever the channel."""

    text: str
    channel: str  # kakao | simulator | sms
    extra: Mapping[str, str] = field(default_factory=dict)  # quick-reply payload
    # Lower-cased, width-folded and without spaces: "영업 시간" matches "영업시간". Every
    # message is matched against keywords, so it is made here (a cached_property would
    # take a lock for each message on Python 3.11).
    folded: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        folded = _SPACES.sub("", unicodedata.normalize("NFKC", self.text).casefold())
        object.__setattr__(self, "folded", folded)


@dataclass(frozen=True)
class Reply:
    texts: tuple[str, ...]
    quick_replies: tuple[QuickReply, ...] = ()
    handler: str = ""


@dataclass
class Effects:
    """What the conversation should become once this message is stored."""

    wait_for_owner: bool = False
    complaint: bool = False
    handoff: bool = False
    consent: tuple[str, bool, str] | None = None  # (scope, granted, source)


class Memo:
    """Answers computed this minute, by key. Customer texts speak in minutes ("15:30"), so
    every customer who writes in the same minute in the same situation gets the same words:
    computing them once keeps holiday arithmetic and templates off the webhook's hot path."""

    def __init__(self, size: int = 512) -> None:
        self._size = size
        self._values: dict[Hashable, Any] = {}

    def get(self, key: Hashable, make: Callable[[], T]) -> T:
        try:
            return cast(T, self._values[key])
        except KeyError:
            if len(self._values) >= self._size:
                self._values.clear()
            value = self._values[key] = make()
            return value


@dataclass
class Context:
    shop: ShopConfig
    now: datetime
    owner: OwnerState
    median_reply: timedelta | None
    texts: Texts
    memo: Memo
    customer_id: int
    conversation_id: int
    waiting: bool  # the customer is already waiting for the owner
    complaint_open: bool
    effects: Effects = field(default_factory=Effects)
    # Kept by hand rather than with cached_property, which on Python 3.11 takes a lock on
    # each first use, and a Context lives for one message: it is all first uses.
    _availability: Availability | None = field(default=None, init=False, repr=False)
    minute: datetime = field(init=False, repr=False)  # `now` to the minute: the memo's keys

    def __post_init__(self) -> None:
        self.minute = self.now.replace(second=0, microsecond=0)

    @property
    def availability(self) -> Availability:
        if self._availability is None:
            key = ("assess", self.shop.slug, self.owner, self.minute, self.median_reply)
            self._availability = self.memo.get(
                key, lambda: assess(self.shop, self.owner, self.minute, self.median_reply)
            )
        return self._availability

    def render(self, template: str, **values: Any) -> str:
        key = (
            template,
            self.shop.slug,
            self.availability,
            self.minute,
            tuple(sorted(values.items())) if values else (),
        )
        return self.memo.get(key, lambda: self._render(template, values))

    def _render(self, template: str, values: dict[str, Any]) -> str:
        tz = self.shop.timezone
        return self.texts.render(
            template,
            shop=self.shop,
            availability=self.availability,
            local_now=self.minute.astimezone(tz),
            reply_from_local=self.availability.reply_from.astimezone(tz),
            **values,
        )

    def reply(self, *templates: str, **values: Any) -> Reply:
        quick = self.memo.get(
            ("quick_replies", self.shop.slug), lambda: default_quick_replies(self.shop)
        )
        return Reply(tuple(self.render(t, **values) for t in templates), quick)


def default_quick_replies(shop: ShopConfig) -> tuple[QuickReply, ...]:
    faq = tuple(QuickReply(e.label, e.label, {"faq": e.id}) for e in shop.faq)
    return (
        QuickReply("영업시간", "영업시간", {"faq": "hours"}),
        QuickReply("위치 안내", "위치 안내", {"faq": "location"}),
        *faq,
        QuickReply("상담원 연결", "상담원 연결", {"action": "handoff"}),
    )


Filter = Callable[[Incoming, Context], bool]
Handler = Callable[[Incoming, Context], Reply]


def keywords(*words: str) -> Filter:
    """Matches when the message contains any of the words (spaces and case ignored)."""
    folded = [re.sub(r"\s+", "", w.casefold()) for w in words]
    if not folded:
        return lambda _msg, _ctx: False
    # One alternation searched in C, rather than a Python loop over the words per message.
    pattern = re.compile("|".join(map(re.escape, folded)))
    return lambda msg, _ctx: pattern.search(msg.folded) is not None


def exactly(*words: str) -> Filter:
    """Matches when the whole message is one of the words (for STOP-style commands)."""
    folded = {re.sub(r"\s+", "", w.casefold()) for w in words}
    return lambda msg, _ctx: msg.folded.strip(".!") in folded


def extra(key: str, value: str | None = None) -> Filter:
    """Matches a quick reply that carried `extra[key]` (== value when given)."""
    return lambda msg, _ctx: key in msg.extra and (value is None or msg.extra[key] == value)


def any_of(*filters: Filter) -> Filter:
    return lambda msg, ctx: any(f(msg, ctx) for f in filters)


@dataclass
class Route:
    filters: tuple[Filter, ...]
    handler: Handler
    matches: Filter = field(init=False, repr=False)

    def __post_init__(self) -> None:
        # Most routes have one filter: call it as it is, without an all() per message.
        if len(self.filters) == 1:
            self.matches = self.filters[0]
        else:
            filters = self.filters
            self.matches = lambda msg, ctx: all(f(msg, ctx) for f in filters)


class Router:
    def __init__(self, name: str) -> None:
        self.name = name
        self.routes: list[Route] = []

    def message(self, *filters: Filter) -> Callable[[Handler], Handler]:
        """Register a handler; with several filters all must match, with none it always does."""

        def register(handler: Handler) -> Handler:
            self.routes.append(Route(filters, handler))
            return handler

        return register


class Switchboard:
    """Puts each message through to the first handler that matches, in the routers' order;
    the fallback answers what none does, and what a broken handler could not."""

    def __init__(self, routers: Sequence[Router], fallback: Handler) -> None:
        names = [r.name for r in routers]
        if len(set(names)) != len(names):
            raise ValueError(f"router names must be unique: {names}")
        self.routers = tuple(routers)
        self.fallback = fallback

    def answer(self, msg: Incoming, ctx: Context) -> Reply:
        for router in self.routers:
            for route in router.routes:
                if route.matches(msg, ctx):
                    return self._call(
                        f"{router.name}.{route.handler.__name__}", route.handler, msg, ctx
                    )
        return self._call("fallback", self.fallback, msg, ctx)

    def _call(self, name: str, handler: Handler, msg: Incoming, ctx: Context) -> Reply:
        try:
            reply = handler(msg, ctx)
        except Exception:
            # The one error route: a broken handler must not cost the customer an answer.
            log.exception("handler %s failed; answering with the fallback", name)
            ctx.effects = Effects()
            reply = self.fallback(msg, ctx)
            name = "fallback"
        return Reply(reply.texts, reply.quick_replies, reply.handler or name)
