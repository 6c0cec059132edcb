"""The owner console: a sub-app mounted at /console/ with its own middlewares.

This is the foundation — accounts, sessions, CSRF, login throttling, login/logout and a
placeholder inbox page. Views added later get the signed-in user and shop with
`current(request)` and scope every query with `viewer.scope(Model.shop_id)`; forms carry
the `csrf` field (templates: `{{ viewer.csrf_token }}`), scripts the X-CSRF-Token header.
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from bot.console import views
from bot.console.auth import VIEWER, Viewer, current, require_owner
from bot.console.middleware import MIDDLEWARES
from bot.console.render import STATIC_ROUTE

__all__ = ["VIEWER", "Viewer", "console_app", "current", "require_owner"]

STATIC_DIR = Path(__file__).parent / "static"


def console_app() -> web.Application:
    """The console sub-app; mount it with `app.add_subapp("/console/", console_app())`.

    It reads the database, clock and settings from the parent app at request time
    (`request.config_dict`), so it holds no resources of its own.
    """
    app = web.Application(middlewares=MIDDLEWARES)
    app.router.add_get("", views.root, name="console_root")
    app.router.add_get("/", views.inbox, name="console_inbox")
    app.router.add_get("/login", views.login_page, name="console_login")
    app.router.add_post("/login", views.login_submit, name="console_login_submit")
    app.router.add_post("/logout", views.logout, name="console_logout")
    app.router.add_get("/api/me", views.me, name="console_api_me")
    app.router.add_static("/static/", STATIC_DIR, name=STATIC_ROUTE, append_version=True)
    return app
