"""`create_app(settings)`: the whole service as one aiohttp application.

Each resource is set up in a cleanup context, in order, and torn down in reverse — and
only if its setup succeeded: database → live-update hub → background work → HTTP client →
providers → ticks. Stopping therefore halts the ticks first and closes the database last,
after the writer has committed everything it was given.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import aiohttp
import sqlalchemy as sa
from aiohttp import web

from bot import calendar_feed, customer_photos, keys
from bot.api import api_app
from bot.background import Background
from bot.console import console_app
from bot.console import photos as console_photos
from bot.forwarded import from_trusted_proxy
from bot.handlers import build_switchboard
from bot.inbound import Services
from bot.live import LiveHub
from bot.metrics import CONTENT_TYPE, Metrics
from bot.photos.outbox import OutboxPhotos
from bot.photos.store import PhotoStore
from bot.survey import setup as setup_survey
from bot.webhooks import kakao, solapi
from bot.webhooks import twilio as twilio_hooks
from core.clock import Clock, SystemClock
from core.config import Settings
from core.db import Database, SchemaOutOfDate, check_schema
from core.jobs import StepsPlanned
from core.outbox import RowsAdded
from core.shops import ReplyStats, sync_shops
from core.texts import Texts
from core.tiers import recompute_shops
from providers.kakao_callback import KakaoCallbackProvider
from providers.registry import Providers
from scheduler.dispatch import Dispatcher
from scheduler.loop import Ticks
from scheduler.planners.complaint_deadline import warn_before_complaint_deadlines
from scheduler.planners.delivery_check import check_deliveries
from scheduler.planners.journey import TICK_SECONDS as JOURNEY_SECONDS
from scheduler.planners.journey import send_due_steps
from scheduler.planners.reply_target import warn_owners
from scheduler.policy import rules_for

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def create_app(settings: Settings, *, clock: Clock | None = None) -> web.Application:
    app = web.Application(
        client_max_size=settings.server.max_body_bytes,
        # The proxy's view first, so every handler and sub-app reads the same request.
        middlewares=[from_trusted_proxy, _measure] if settings.server.trust_proxy else [_measure],
    )
    app[keys.SETTINGS] = settings
    app[keys.CLOCK] = clock or SystemClock()
    app[keys.METRICS] = Metrics()
    app[keys.REPLY_STATS] = ReplyStats()
    app[keys.SERVICES] = Services(
        switchboard=build_switchboard(),
        texts=Texts(settings.server.templates_dir),
        median_reply=app[keys.REPLY_STATS].median,
    )
    app.cleanup_ctx.extend([_database, _live, _background, _http, _providers, _ticks])
    app.on_startup.append(_fetch_interrupted_photos)
    app.on_shutdown.append(_stop_ticks)
    app.on_shutdown.append(_end_live_streams)
    app.on_shutdown.append(_interrupt_background)

    app.router.add_post("/hooks/kakao/{shop}", kakao.skill, name="kakao_skill")
    app.router.add_post("/hooks/solapi/{shop}/{token}", solapi.report, name="solapi_report")
    app.router.add_post(
        "/hooks/twilio/{shop}/sms", twilio_hooks.inbound_sms, name="twilio_inbound_sms"
    )
    app.router.add_post(
        "/hooks/twilio/{shop}/status", twilio_hooks.status_callback, name="twilio_status"
    )
    app.router.add_get("/healthz", healthz, name="healthz")
    app.router.add_get("/metrics", metrics, name="metrics")
    app.router.add_get("/", index, name="index")
    app.router.add_get("/favicon.ico", favicon, name="favicon")
    app.add_subapp("/console/", console_app())
    app.add_subapp("/api/", api_app())
    calendar_feed.setup(app)
    console_photos.setup_public(app)
    setup_survey(app)
    if settings.server.simulator:
        from bot.simulator import views as simulator

        simulator.setup(app)
    return app


# --------------------------------------------------------------------------- resources


async def _database(app: web.Application) -> AsyncIterator[None]:
    cfg = app[keys.SETTINGS].database
    database = Database(
        cfg.url,
        sqlite_synchronous=cfg.sqlite_synchronous,
        group_commit_max=cfg.group_commit_max,
        search_path=cfg.schema,
        now=app[keys.CLOCK].now,
        on_commit_failure=lambda _: app[keys.METRICS].commit_failures.inc(),
    )
    try:
        await check_schema(database)
        await database.start()
        app[keys.SHOP_IDS] = await database.write(
            sync_shops(app[keys.SETTINGS], app[keys.CLOCK].now())
        )
        # Tiers follow the thresholds the config writes now (the owner may have changed them).
        ids = app[keys.SHOP_IDS]
        await database.write(
            recompute_shops([(ids[s.slug], s.tiers) for s in app[keys.SETTINGS].shops])
        )
    except BaseException:
        await database.close()
        raise
    app[keys.DATABASE] = database
    yield
    await database.close()


async def _live(app: web.Application) -> AsyncIterator[None]:
    hub = LiveHub(app[keys.DATABASE], namespace=app[keys.SETTINGS].database.schema or "")
    await hub.start()
    app[keys.LIVE] = hub
    yield
    await hub.close()


async def _stop_ticks(app: web.Application) -> None:
    # SIGTERM: the dispatcher claims nothing more from this moment, while the server still
    # waits for its requests; the ticks' cleanup then waits for the batch it holds.
    if keys.TICKS in app:
        app[keys.TICKS].stop()


async def _end_live_streams(app: web.Application) -> None:
    # on_shutdown runs before the server waits for its handlers to finish: the consoles'
    # open event streams end here, so stopping never sits out the shutdown timeout.
    if keys.LIVE in app:
        app[keys.LIVE].end_streams()


async def _interrupt_background(app: web.Application) -> None:
    # Before the providers and the HTTP session close under it: work a restart redoes stops.
    if keys.BACKGROUND in app:
        app[keys.BACKGROUND].interrupt()


async def _fetch_interrupted_photos(app: web.Application) -> None:
    work = asyncio.ensure_future(customer_photos.fetch_interrupted(app))
    app[keys.BACKGROUND].track(work, "customer photos", interruptible=True)


async def _background(app: web.Application) -> AsyncIterator[None]:
    app[keys.BACKGROUND] = Background()
    yield
    await app[keys.BACKGROUND].close()


async def _http(app: web.Application) -> AsyncIterator[None]:
    session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))
    app[keys.HTTP] = session
    yield
    await session.close()


async def _providers(app: web.Application) -> AsyncIterator[None]:
    providers = Providers.from_config(app[keys.SETTINGS].providers, app[keys.HTTP])
    if KakaoCallbackProvider.name not in providers:  # built in: it needs no credentials
        providers.add(KakaoCallbackProvider({}, app[keys.HTTP]))
    await providers.start_all()
    app[keys.PROVIDERS] = providers
    yield
    await providers.close_all()


async def _ticks(app: web.Application) -> AsyncIterator[None]:
    settings, database = app[keys.SETTINGS], app[keys.DATABASE]
    owner_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    photos = OutboxPhotos(PhotoStore(settings.storage.path), settings.server.public_url)
    outbox = Dispatcher(
        database,
        app[keys.PROVIDERS],
        app[keys.CLOCK],
        settings.outbox,
        owner_id=owner_id,
        photos=photos,
        rules={app[keys.SHOP_IDS][s.slug]: rules_for(s) for s in settings.shops},
    )
    app[keys.OUTBOX] = outbox
    # Whatever commits new outbox rows (`core.outbox.enqueue` registers it) wakes dispatch.
    stop_waking = database.listen(RowsAdded, lambda _: outbox.on_enqueued())

    async def refresh_reply_stats() -> None:
        shop_ids = list(app[keys.SHOP_IDS].values())
        await app[keys.REPLY_STATS].refresh(database, shop_ids, app[keys.CLOCK].now())

    async def warn_before_reply_target() -> None:
        shops = {app[keys.SHOP_IDS][s.slug]: s for s in settings.shops}
        texts = app[keys.SERVICES].texts
        await database.write(warn_owners(shops, texts, app[keys.CLOCK].now()))

    async def warn_before_complaint_deadline() -> None:
        shops = {app[keys.SHOP_IDS][s.slug]: s for s in settings.shops}
        texts = app[keys.SERVICES].texts
        await database.write(warn_before_complaint_deadlines(shops, texts, app[keys.CLOCK].now()))

    async def ask_about_deliveries() -> None:
        shops = {app[keys.SHOP_IDS][s.slug]: s for s in settings.shops}
        await check_deliveries(database, app[keys.PROVIDERS], shops, app[keys.CLOCK].now())

    async def send_journey_steps() -> None:
        shops = {app[keys.SHOP_IDS][s.slug]: s for s in settings.shops}
        texts = app[keys.SERVICES].texts
        now = app[keys.CLOCK].now()
        await send_due_steps(database, shops, texts, settings.server.public_url, now)

    await refresh_reply_stats()
    ticks = Ticks.for_app(
        outbox,
        settings.outbox,
        [
            ("reply_target", warn_before_reply_target, 30.0),
            ("journey", send_journey_steps, JOURNEY_SECONDS),
            ("complaint_deadline", warn_before_complaint_deadline, 60.0),
            ("delivery_check", ask_about_deliveries, 15.0),
        ],
    )
    assert ticks.housekeeping is not None
    ticks.housekeeping.add("reply_stats", refresh_reply_stats)
    # A commit that plans journey steps (a booking, 출발, 작업 완료) wakes the planner: a
    # confirmation or an on-my-way goes within moments, not at the next tick.
    stop_journey = database.listen(StepsPlanned, lambda _: ticks.wake("journey"))
    ticks.start()
    app[keys.TICKS] = ticks
    yield
    stop_journey()
    await ticks.shutdown()
    stop_waking()


# --------------------------------------------------------------------------- small routes


@web.middleware
async def _measure(request: web.Request, handler: Handler) -> web.StreamResponse:
    started = time.perf_counter()
    route = request.match_info.route.name or "unmatched"
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        elapsed = time.perf_counter() - started
        request.app[keys.METRICS].served(route, request.method, status, elapsed)


FAVICON = Path(__file__).parent / "console" / "static" / "favicon.ico"


async def favicon(request: web.Request) -> web.Response:
    """The icon every browser asks for at the root (a speech bubble, 16–48 px)."""
    return web.Response(
        body=FAVICON.read_bytes(),
        content_type="image/x-icon",
        headers={"Cache-Control": "public, max-age=86400"},
    )


async def healthz(request: web.Request) -> web.Response:
    database = request.app[keys.DATABASE]
    try:
        async with database.read() as conn:
            await conn.execute(sa.text("SELECT 1"))
    except (sa.exc.SQLAlchemyError, OSError, SchemaOutOfDate):
        return web.json_response({"status": "unavailable", "database": "unreachable"}, status=503)
    health = database.writer.health
    if health.failing_since is not None:
        # Readable but not writable (a full disk): messages are refused. Back to 200 once a
        # write commits again — the next message, delivery report or outbox change.
        return web.json_response(
            {
                "status": "unavailable",
                "database": "cannot write",
                "error": health.error,
                "failing_since": health.failing_since.isoformat(),
                "failed_commits": health.failed_commits,
                "writer_queue": database.writer.depth,
            },
            status=503,
        )
    return web.json_response(
        {"status": "ok", "database": "ok", "writer_queue": database.writer.depth}
    )


async def metrics(request: web.Request) -> web.Response:
    m = request.app[keys.METRICS]
    m.writer_queue.set(request.app[keys.DATABASE].writer.depth)
    stats = await request.app[keys.OUTBOX].stats()
    for status, count in stats.items():
        m.outbox.labels(status).set(count)
    m.dead_letters.set(stats.get("dead", 0))
    return web.Response(body=m.render(), headers={"Content-Type": CONTENT_TYPE})


async def index(request: web.Request) -> web.Response:
    if request.app[keys.SETTINGS].server.simulator:
        raise web.HTTPFound("/simulator")
    return web.Response(text="dangol is running. Kakao skill URL: /hooks/kakao/<shop>\n")
