"""The console's two cookies — the session's and the login form's CSRF token — and how
they are set: path /console, HttpOnly, SameSite, Secure over HTTPS."""

from __future__ import annotations

from aiohttp import web

from core.config import ConsoleConfig

SESSION_COOKIE = "dangol_session"
LOGIN_CSRF_COOKIE = "dangol_login_csrf"
COOKIE_PATH = "/console"


def secure_cookies(request: web.Request, cfg: ConsoleConfig) -> bool:
    if isinstance(cfg.secure_cookies, bool):
        return cfg.secure_cookies
    return request.secure  # behind a trusted proxy: the proxy's scheme (bot.forwarded)


# SameSite=Lax for the session: a link to the console tapped in KakaoTalk, an SMS or a
# browser notification is a cross-site top-level navigation, and with Strict the owner
# would land on the login page every time. Lax costs nothing here because GET never
# changes state and every state-changing request needs the session's CSRF token.
# The login CSRF cookie is only ever needed on the login form's own same-site POST, so
# it can be Strict.


def set_session_cookie(
    response: web.StreamResponse, request: web.Request, cfg: ConsoleConfig, token: str
) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        token,
        path=COOKIE_PATH,
        max_age=cfg.session_absolute_days * 86400,
        httponly=True,
        samesite="Lax",
        secure=secure_cookies(request, cfg),
    )


def clear_session_cookie(
    response: web.StreamResponse, request: web.Request, cfg: ConsoleConfig
) -> None:
    response.del_cookie(
        SESSION_COOKIE,
        path=COOKIE_PATH,
        httponly=True,
        samesite="Lax",
        secure=secure_cookies(request, cfg),
    )


def set_login_csrf_cookie(
    response: web.StreamResponse, request: web.Request, cfg: ConsoleConfig, token: str
) -> None:
    response.set_cookie(
        LOGIN_CSRF_COOKIE,
        token,
        path=COOKIE_PATH,
        httponly=True,
        samesite="Strict",
        secure=secure_cookies(request, cfg),
    )
