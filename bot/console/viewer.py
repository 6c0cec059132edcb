"""Who is looking at the console: the signed-in user, the one shop they act for, and the
scope every console query is held to. Views get it with `current(request)`."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web
from sqlalchemy.orm import InstrumentedAttribute
from sqlalchemy.sql.elements import ColumnElement

from bot import accounts


@dataclass(frozen=True)
class Viewer:
    """Who is looking at the console: the signed-in user and the one shop they act for.

    Every console query must be scoped by `shop_id` (see `scope`): a session belongs to
    exactly one shop, and nothing outside it exists as far as its pages are concerned.
    """

    user_id: int
    username: str
    role: str  # owner | staff
    shop_id: int
    shop_slug: str
    shop_name: str
    session_id: str = ""  # the token's hash (a row id, not the cookie value)
    csrf_token: str = ""
    display_name: str = ""  # as the user set it; `name` is what the console shows

    @property
    def name(self) -> str:
        """How this user signs replies and notes (사장님, 김한빛, …)."""
        return accounts.shown_name(self.display_name, self.role, self.username)

    @property
    def is_owner(self) -> bool:
        return self.role == "owner"

    @property
    def actor(self) -> str:
        """How this user appears in the audit log."""
        return f"user:{self.user_id}"

    def scope(
        self, shop_id: ColumnElement[int] | InstrumentedAttribute[int]
    ) -> ColumnElement[bool]:
        """`.where(viewer.scope(Conversation.shop_id), Conversation.id == id)`: a row of
        another shop is simply not found (404), never forbidden (which would confirm it)."""
        return shop_id == self.shop_id


VIEWER = web.RequestKey("console_viewer", Viewer)


def current(request: web.Request) -> Viewer:
    """The signed-in viewer. Console views call this; `login_required` has already run."""
    viewer = request.get(VIEWER)
    if not isinstance(viewer, Viewer):
        raise web.HTTPUnauthorized
    return viewer


def require_owner(request: web.Request) -> Viewer:
    """The viewer, who must be the shop's owner (staff get 403)."""
    viewer = current(request)
    if not viewer.is_owner:
        raise web.HTTPForbidden
    return viewer
