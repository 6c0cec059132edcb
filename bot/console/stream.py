"""`GET /console/api/events`: the shop's live events as Server-Sent Events.

SSE rather than a WebSocket: the traffic is one-way, EventSource reconnects by itself
(the `retry:` hint says how soon), it passes through proxies as plain HTTP, and it needs
no second protocol for sessions or CSRF. The session is required (the middleware answers
401 without one), a browser's Origin — when it sends one — must be our own, and the
session is checked again at every heartbeat, so a logout or an expired session ends the
stream within one heartbeat instead of leaving it open.

After connecting, the stream says `hello`; a console that was disconnected refetches what
it shows then, since it may have missed events meanwhile.
"""

from __future__ import annotations

import json
import logging

from aiohttp import web

from bot import keys
from bot.console import cookies, sessions
from bot.console.middleware import _same_origin  # the CSRF check's Origin rule, reused
from bot.console.render import SECURITY_HEADERS
from bot.console.viewer import current
from bot.live import Closed, Event, TooManySubscribers

log = logging.getLogger(__name__)

RETRY_MS = 3000


def _frame(event: Event) -> bytes:
    return f"data: {json.dumps(event, ensure_ascii=False)}\n\n".encode()


async def events(request: web.Request) -> web.StreamResponse:
    viewer = current(request)
    if not _same_origin(request):
        return web.json_response({"error": "origin"}, status=403)
    hub = request.config_dict[keys.LIVE]
    try:
        subscription = hub.subscribe(viewer.shop_id)
    except TooManySubscribers:
        log.warning("live: too many consoles open for shop %d", viewer.shop_id)
        return web.json_response(
            {"error": "too_many_streams"}, status=503, headers={"Retry-After": "30"}
        )
    response = web.StreamResponse(
        headers={
            **SECURITY_HEADERS,
            "Content-Type": "text/event-stream; charset=utf-8",
            "Cache-Control": "no-store",
            "X-Accel-Buffering": "no",  # nginx: pass each event on at once
        }
    )
    with subscription:
        try:
            await response.prepare(request)
            await response.write(f"retry: {RETRY_MS}\n\n".encode() + _frame({"type": "hello"}))
            while True:
                try:
                    event = await subscription.next(within=hub.heartbeat)
                except Closed:
                    break
                if event is not None:
                    await response.write(_frame(event))
                    continue
                if not await _still_signed_in(request):
                    await response.write(_frame({"type": "signed_out"}))
                    break
                await response.write(b": ping\n\n")
            await response.write_eof()
        except ConnectionResetError:
            pass  # the browser went away; nothing left to tell it
    return response


async def _still_signed_in(request: web.Request) -> bool:
    """The session is still there and fresh (the stream itself does not count as activity,
    so an idle timeout still ends it)."""
    token = request.cookies.get(cookies.SESSION_COOKIE, "")
    database = request.config_dict[keys.DATABASE]
    cfg = request.config_dict[keys.SETTINGS].console
    now = request.config_dict[keys.CLOCK].now()
    viewer, _ = await sessions.load_viewer(database, token, now, cfg)
    return viewer is not None
