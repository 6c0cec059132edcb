"""Typed keys for everything the aiohttp application holds.

The types are for the type checker only: importing the keys imports nothing of the app
(a module that needs `keys.DATABASE` does not pull in the inbound path, the live hub and
the dispatcher with it)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    import aiohttp

    from bot.background import Background
    from bot.inbound import Services
    from bot.live import LiveHub
    from bot.metrics import Metrics
    from core.clock import Clock
    from core.config import Settings
    from core.db import Database
    from core.shops import ReplyStats
    from providers.registry import Providers
    from scheduler.dispatch import Dispatcher
    from scheduler.loop import Ticks

SETTINGS: web.AppKey[Settings] = web.AppKey("settings")
CLOCK: web.AppKey[Clock] = web.AppKey("clock")
DATABASE: web.AppKey[Database] = web.AppKey("database")
SHOP_IDS: web.AppKey[dict[str, int]] = web.AppKey("shop_ids")
METRICS: web.AppKey[Metrics] = web.AppKey("metrics")
SERVICES: web.AppKey[Services] = web.AppKey("services")
REPLY_STATS: web.AppKey[ReplyStats] = web.AppKey("reply_stats")
HTTP: web.AppKey[aiohttp.ClientSession] = web.AppKey("http")
PROVIDERS: web.AppKey[Providers] = web.AppKey("providers")
OUTBOX: web.AppKey[Dispatcher] = web.AppKey("outbox")
TICKS: web.AppKey[Ticks] = web.AppKey("ticks")
BACKGROUND: web.AppKey[Background] = web.AppKey("background")
LIVE: web.AppKey[LiveHub] = web.AppKey("live")
