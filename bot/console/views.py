"""Console pages: login, logout and `api/me` (the inbox and the rest live in their own modules)."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Mapping

from aiohttp import web

from bot import accounts, keys
from bot.console import client, cookies, login, sessions
from bot.console.middleware import LOGIN_PATH, PREFIX, see_other
from bot.console.render import render
from bot.console.viewer import VIEWER, current

log = logging.getLogger(__name__)

HOME = f"{PREFIX}/"
_LOGIN_CSRF_RE = re.compile(r"[A-Za-z0-9_-]{43}")  # what secrets.token_urlsafe(32) gives
_NEXT_MAX = 500


def safe_next(value: str) -> str:
    """Where to go after login: a path inside the console, never another site."""
    if (
        value.startswith(HOME)
        and len(value) <= _NEXT_MAX
        and "//" not in value
        and "\\" not in value
        and value.isprintable()
    ):
        return value
    return HOME


def _field(form: Mapping[str, object], name: str) -> str:
    value = form.get(name)
    return value if isinstance(value, str) else ""


async def root(request: web.Request) -> web.Response:
    return see_other(HOME)


async def login_page(request: web.Request) -> web.Response:
    next_url = safe_next(request.query.get("next", ""))
    if VIEWER in request:
        return see_other(next_url)
    return _login_form(request, next_url, failed=False)


def _login_form(request: web.Request, next_url: str, *, failed: bool) -> web.Response:
    cfg = request.config_dict[keys.SETTINGS].console
    token = request.cookies.get(cookies.LOGIN_CSRF_COOKIE, "")
    fresh = not _LOGIN_CSRF_RE.fullmatch(token)
    if fresh:
        token = sessions.new_token()
    response = render(
        request,
        "login.html",
        csrf=token,
        next_url=next_url,
        failed=failed,
        window_minutes=cfg.login_window_minutes,
    )
    if fresh:
        cookies.set_login_csrf_cookie(response, request, cfg, token)
    return response


async def login_submit(request: web.Request) -> web.Response:
    """Check the password; on success start a new session and go where the owner was going.

    Every refusal — unknown user, wrong password, disabled account, too many attempts —
    gets the same response: the form again with one message that covers all of them
    ("아이디 또는 비밀번호가 맞지 않아요" plus a line saying that repeated failures lock
    logins for a while). A distinct "try later" message would tell a guesser when to
    switch to another address or account and would confirm that a username is being
    watched; the combined wording still tells an owner who cannot get in what may be
    going on. Unknown users are checked against a dummy hash so the timing matches a
    wrong password. A throttled attempt skips Argon2 altogether: that is faster, but it
    reveals only what the guesser already knows (that they have been failing), and it
    keeps a flood of guesses from costing us a CPU-heavy hash each.
    """
    database = request.config_dict[keys.DATABASE]
    clock = request.config_dict[keys.CLOCK]
    cfg = request.config_dict[keys.SETTINGS].console
    form = await request.post()
    username = accounts.normalize_username(_field(form, "username"))[: login.USERNAME_MAX]
    password = _field(form, "password")
    next_url = safe_next(_field(form, "next"))
    ip = client.client_ip(request)

    attempt = await database.write(login.begin_attempt(username, ip, clock.now(), cfg))
    if attempt is None:
        log.warning("console login refused: too many failed attempts (ip %s)", ip)
        return _login_form(request, next_url, failed=True)

    account = await login.find_account(database, username) if username else None
    loop = asyncio.get_running_loop()
    matches, rehash = await loop.run_in_executor(
        None, accounts.verify_password, account.password_hash if account else None, password
    )
    if account is None or not matches or account.disabled:
        log.info("console login refused (ip %s)", ip)
        return _login_form(request, next_url, failed=True)

    new_hash = (
        await loop.run_in_executor(None, accounts.hash_password, password) if rehash else None
    )
    old_token = request.cookies.get(cookies.SESSION_COOKIE)
    session, unit = login.start_session(
        account,
        username,
        clock.now(),
        cfg,
        user_agent=request.headers.get("User-Agent", ""),
        ip=ip,
        replaces=sessions.hash_token(old_token) if old_token else None,
        new_password_hash=new_hash,
    )
    await database.write(unit)
    log.info("console login: user %d (ip %s)", account.id, ip)
    response = see_other(next_url)
    cookies.set_session_cookie(response, request, cfg, session.token)
    return response


async def logout(request: web.Request) -> web.Response:
    viewer = current(request)
    clock = request.config_dict[keys.CLOCK]
    await request.config_dict[keys.DATABASE].write(
        sessions.end_session(viewer.session_id, clock.now())
    )
    response = see_other(LOGIN_PATH)
    cookies.clear_session_cookie(response, request, request.config_dict[keys.SETTINGS].console)
    return response


async def me(request: web.Request) -> web.Response:
    """The signed-in user and shop, and the CSRF token scripts send as X-CSRF-Token."""
    viewer = current(request)
    return web.json_response(
        {
            "user": {"id": viewer.user_id, "username": viewer.username, "role": viewer.role},
            "shop": {"id": viewer.shop_id, "slug": viewer.shop_slug, "name": viewer.shop_name},
            "csrf_token": viewer.csrf_token,
        }
    )
