"""The console's middlewares, outermost first: headers → session → login required → CSRF.

Only requests under /console pass through them (they belong to the sub-app), including
404s and 405s there, so an unknown /console/api/… path still answers 401 to a stranger.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web
from yarl import URL

from bot import keys
from bot.console import cookies, sessions
from bot.console.render import SECURITY_HEADERS, render
from bot.console.viewer import VIEWER, Viewer

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

PREFIX = "/console"
LOGIN_PATH = f"{PREFIX}/login"
API_PREFIX = f"{PREFIX}/api/"
STATIC_PREFIX = f"{PREFIX}/static/"
# Reachable without a session. Everything else under /console needs one.
PUBLIC_PATHS = frozenset({PREFIX, LOGIN_PATH})
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
FORM_TYPES = frozenset({"application/x-www-form-urlencoded", "multipart/form-data"})


def is_api(request: web.Request) -> bool:
    return request.path.startswith(API_PREFIX)


def _is_static(request: web.Request) -> bool:
    return request.path.startswith(STATIC_PREFIX)


@web.middleware
async def security_headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    """CSP and friends on every console response, errors and redirects included."""
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        _apply_headers(request, exc)
        raise
    _apply_headers(request, response)
    return response


def _apply_headers(request: web.Request, response: web.StreamResponse) -> None:
    response.headers.update(SECURITY_HEADERS)
    if not _is_static(request):
        # Pages show customers' names and messages: no copies in shared caches or history.
        response.headers["Cache-Control"] = "no-store"


@web.middleware
async def session(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Load the viewer from the session cookie; expire a cookie that no longer works."""
    if _is_static(request):
        return await handler(request)
    token = request.cookies.get(cookies.SESSION_COOKIE)
    stale = False
    if token is not None:
        database = request.config_dict[keys.DATABASE]
        now = request.config_dict[keys.CLOCK].now()
        cfg = request.config_dict[keys.SETTINGS].console
        viewer, touch = await sessions.load_viewer(database, token, now, cfg)
        if viewer is None:
            stale = True
        else:
            request[VIEWER] = viewer
            if touch:
                await database.write(sessions.touch_session(viewer.session_id, now))
    if not stale:
        return await handler(request)
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        _forget_cookie(request, exc)
        raise
    _forget_cookie(request, response)
    return response


def _forget_cookie(request: web.Request, response: web.StreamResponse) -> None:
    if cookies.SESSION_COOKIE not in response.cookies:  # a login may have just set a new one
        cookies.clear_session_cookie(response, request, request.config_dict[keys.SETTINGS].console)


@web.middleware
async def login_required(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Pages send strangers to the login form (and back afterwards); the API says 401."""
    if VIEWER in request or request.path in PUBLIC_PATHS or _is_static(request):
        return await handler(request)
    if is_api(request):
        return web.json_response({"error": "login_required"}, status=401)
    target = URL(LOGIN_PATH)
    if request.method in SAFE_METHODS:
        target = target.with_query(next=request.path_qs)
    return see_other(str(target))


def see_other(location: str) -> web.Response:
    """303: after a POST the browser follows with a GET."""
    return web.Response(status=303, headers={"Location": location})


@web.middleware
async def csrf(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every POST/PUT/PATCH/DELETE carries the CSRF token, or it is refused with 403.

    Signed in, the token is the session's. The login form, which has no session yet, uses
    a double-submit token: a random value in a Strict cookie, repeated in the form. A
    browser's Origin header, when it sends one, must be our own as well.
    """
    if request.method in SAFE_METHODS:
        return await handler(request)
    if not _same_origin(request):
        return _forbidden(request, "origin")
    viewer = request.get(VIEWER)
    if request.path == LOGIN_PATH:
        expected = request.cookies.get(cookies.LOGIN_CSRF_COOKIE)
    elif isinstance(viewer, Viewer):
        expected = viewer.csrf_token
    else:  # login_required let it through without a session: nothing to compare against
        expected = None
    given = request.headers.get("X-CSRF-Token")
    # Forms send the token as a field; scripts send the header. A streaming upload that
    # must not be read here into memory has to use the header.
    if given is None and request.content_type in FORM_TYPES:
        field = (await request.post()).get("csrf")
        given = field if isinstance(field, str) else None
    if not sessions.tokens_match(given, expected):
        log.warning("console: CSRF token missing or wrong on %s %s", request.method, request.path)
        return _forbidden(request, "csrf")
    return await handler(request)


def _same_origin(request: web.Request) -> bool:
    origin = request.headers.get("Origin")
    if origin is None:  # not every client sends it; the token still has to match
        return True
    try:
        url = URL(origin)
        if url.scheme not in ("http", "https") or not url.host:
            return False
        theirs = (url.host.lower(), url.port)
        settings = request.config_dict[keys.SETTINGS]
        # The Host header (behind a trusted proxy, the proxy's: `bot.forwarded`) read with
        # the Origin's scheme, so default ports compare equal.
        hosts = [request.host, URL(settings.server.public_url).raw_authority]
        for host in hosts:
            ours = URL.build(scheme=url.scheme, authority=host)
            if ours.host is not None and (ours.host.lower(), ours.port) == theirs:
                return True
    except ValueError:
        return False
    return False


def _forbidden(request: web.Request, reason: str) -> web.Response:
    if is_api(request):
        return web.json_response({"error": reason}, status=403)
    return render(request, "forbidden.html", status=403, reason=reason)


@web.middleware
async def api_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The API answers in JSON, its errors too."""
    if not is_api(request):
        return await handler(request)
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        reason = exc.reason.lower().replace(" ", "_")
        return web.json_response({"error": reason}, status=exc.status, headers=_allow(exc))


def _allow(exc: web.HTTPException) -> dict[str, str]:
    allow = exc.headers.get("Allow")
    return {"Allow": allow} if allow else {}


MIDDLEWARES = [security_headers, session, login_required, csrf, api_errors]
