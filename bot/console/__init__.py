"""The owner console: a sub-app mounted at /console/ with its own middlewares.

The foundation — who is looking (`viewer`), sessions and their tokens (`sessions`),
logging in and its throttling (`login`), the cookies (`cookies`), what a request says about
the browser behind it (`client`), the middlewares (CSRF among them) — and the screens: the
inbox (`inbox`), a conversation (`conversation`), customers (`customers`), jobs (`jobs`:
the 작업 tab and a job's page; `jobs_booking`: booking one), saved replies
(`saved_replies`) and the live event stream (`stream`). Views get the signed-in user and
shop with `current(request)` and scope every query with `viewer.scope(Model.shop_id)`;
forms carry the `csrf` field (templates: `{{ viewer.csrf_token }}`), scripts the
X-CSRF-Token header. What the pages read is in `queries/`, what they change in `changes/`.
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from bot.console import (
    account,
    conversation,
    customers,
    imports,
    inbox,
    jobs,
    photos,
    saved_replies,
    stream,
    tokens,
    views,
)
from bot.console.middleware import MIDDLEWARES
from bot.console.render import STATIC_ROUTE
from bot.console.viewer import VIEWER, Viewer, current, require_owner

__all__ = ["VIEWER", "Viewer", "console_app", "current", "require_owner"]

STATIC_DIR = Path(__file__).parent / "static"


def console_app() -> web.Application:
    """The console sub-app; mount it with `app.add_subapp("/console/", console_app())`.

    It reads the database, clock and settings from the parent app at request time
    (`request.config_dict`), so it holds no resources of its own.
    """
    app = web.Application(middlewares=MIDDLEWARES)
    app.router.add_get("", views.root, name="console_root")
    app.router.add_get("/", inbox.inbox, name="console_inbox")
    app.router.add_get("/login", views.login_page, name="console_login")
    app.router.add_post("/login", views.login_submit, name="console_login_submit")
    app.router.add_post("/logout", views.logout, name="console_logout")
    app.router.add_get("/api/me", views.me, name="console_api_me")
    app.router.add_get("/me", account.show, name="console_me")
    app.router.add_post("/me", account.update, name="console_me_edit")
    app.router.add_get("/inbox/list", inbox.inbox_list, name="console_inbox_list")
    app.router.add_get(r"/c/{id:\d+}", conversation.conversation_page, name="console_conversation")
    app.router.add_get(r"/c/{id:\d+}/timeline", conversation.timeline, name="console_timeline")
    app.router.add_post(r"/c/{id:\d+}/read", conversation.read, name="console_read")
    app.router.add_post(r"/c/{id:\d+}/reply", conversation.reply, name="console_reply")
    app.router.add_post(r"/c/{id:\d+}/note", conversation.note, name="console_note")
    app.router.add_post(r"/c/{id:\d+}/resolve", conversation.resolve, name="console_resolve")
    app.router.add_post(r"/c/{id:\d+}/reopen", conversation.reopen, name="console_reopen")
    app.router.add_post(
        r"/c/{id:\d+}/m/{mid:\d+}/send-again", conversation.send_again, name="console_send_again"
    )
    app.router.add_post(r"/c/{id:\d+}/snooze", conversation.snooze, name="console_snooze")
    app.router.add_post("/owner-status", conversation.owner_status, name="console_owner_status")
    app.router.add_get("/customers", customers.index, name="console_customers")
    app.router.add_get(r"/customers/{id:\d+}", customers.customer_page, name="console_customer")
    app.router.add_post(r"/customers/{id:\d+}", customers.update, name="console_customer_edit")
    app.router.add_post(
        r"/customers/{id:\d+}/phone", customers.reveal_phone, name="console_customer_phone"
    )
    app.router.add_get("/saved-replies", saved_replies.index, name="console_saved_replies")
    app.router.add_post("/saved-replies", saved_replies.create, name="console_saved_reply_add")
    app.router.add_post(
        r"/saved-replies/{id:\d+}", saved_replies.update, name="console_saved_reply_edit"
    )
    app.router.add_post(
        r"/saved-replies/{id:\d+}/delete", saved_replies.delete, name="console_saved_reply_delete"
    )
    app.router.add_get("/api/events", stream.events, name="console_api_events")
    jobs.setup(app)
    photos.setup(app)
    imports.setup(app)
    tokens.setup(app)
    app.router.add_static("/static/", STATIC_DIR, name=STATIC_ROUTE, append_version=True)
    return app
