"""Typed keys for everything the aiohttp application holds."""

from __future__ import annotations

import aiohttp
from aiohttp import web

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

SETTINGS = web.AppKey("settings", Settings)
CLOCK = web.AppKey("clock", Clock)
DATABASE = web.AppKey("database", Database)
SHOP_IDS = web.AppKey("shop_ids", dict[str, int])
METRICS = web.AppKey("metrics", Metrics)
SERVICES = web.AppKey("services", Services)
REPLY_STATS = web.AppKey("reply_stats", ReplyStats)
HTTP = web.AppKey("http", aiohttp.ClientSession)
PROVIDERS = web.AppKey("providers", Providers)
OUTBOX = web.AppKey("outbox", Dispatcher)
TICKS = web.AppKey("ticks", Ticks)
BACKGROUND = web.AppKey("background", Background)
LIVE = web.AppKey("live", LiveHub)
