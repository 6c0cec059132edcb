"""Behind a reverse proxy: the request's scheme, host and client address as the proxy saw them.

With `[server] trust_proxy = true` this middleware, on the main app (so on every sub-app
too), rewrites each request once from X-Forwarded-Proto / -Host / -For; everything after it
(the Twilio signature URL, the console's origin check, HTTPS detection and login throttling)
reads only `request.scheme`, `request.host` and `request.remote`. Without the setting the
headers are ignored: a client can send them too.

Of each header only the right-most value counts — the one our proxy appended or set. Values
to its left came with the client's request and could be anything. aiohttp-remotes'
`XForwardedRelaxed` was not used: its source takes X-Forwarded-Host whole (a "client,
proxy" list becomes the host) and answers 400 when a proxy adds a header as a second line.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def from_trusted_proxy(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The request as the proxy received it (install only when the proxy is trusted)."""
    seen: dict[str, Any] = {}
    if (proto := _last_hop(request, "X-Forwarded-Proto").lower()) in ("http", "https"):
        seen["scheme"] = proto
    if host := _last_hop(request, "X-Forwarded-Host"):
        seen["host"] = host
    if remote := _last_hop(request, "X-Forwarded-For"):
        seen["remote"] = remote
    return await handler(request.clone(**seen) if seen else request)


def _last_hop(request: web.Request, header: str) -> str:
    """The right-most value of a comma-separated header, over all its lines."""
    values = [v.strip() for line in request.headers.getall(header, ()) for v in line.split(",")]
    return next((v for v in reversed(values) if v), "")
