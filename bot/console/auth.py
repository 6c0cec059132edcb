"""Console sessions, CSRF tokens and login throttling — all kept in the database.

A session is a random 32-byte token in the `dangol_session` cookie; the database keeps
only its SHA-256, so a leaked backup or a read-only SQL injection yields no usable cookie.
Each session carries its own CSRF token, shown in the pages' forms and `<meta>` tag.

Login throttling counts attempts per typed username and per client address in the
`login_attempts` table, so the limits hold across restarts and across `dangol serve`
processes sharing one PostgreSQL database.
"""

from __future__ import annotations

import hashlib
import ipaddress
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from aiohttp import web
from sqlalchemy.engine import Connection
from sqlalchemy.orm import InstrumentedAttribute
from sqlalchemy.sql.elements import ColumnElement

from bot import accounts
from core.config import ConsoleConfig
from core.db import Database
from core.models import AuditEntry, ConsoleSession, LoginAttempt, Shop, User

SESSION_COOKIE = "dangol_session"
LOGIN_CSRF_COOKIE = "dangol_login_csrf"
COOKIE_PATH = "/console"
# last_seen_at is written at most this often: reading a page must not cost a write each time.
TOUCH_EVERY = timedelta(minutes=1)
USER_AGENT_MAX = 200
USERNAME_MAX = 80


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


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return secrets.token_urlsafe(32)


def tokens_match(given: str | None, expected: str | None) -> bool:
    """Constant-time comparison that treats a missing value as a mismatch."""
    if not given or not expected:
        return False
    return secrets.compare_digest(given.encode(), expected.encode())


# --------------------------------------------------------------------------- requests


def client_ip(request: web.Request) -> str:
    """The address login throttling counts against.

    Behind a trusted proxy it is the address the proxy saw (`bot.forwarded`). An IPv6
    client counts as its /64, since one household or phone usually holds a whole /64.
    """
    raw = request.remote or ""
    try:
        address = ipaddress.ip_address(raw)
    except ValueError:
        return raw[:64] or "unknown"
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is None:
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(address)


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


# --------------------------------------------------------------------------- sessions


def _idle_limit(cfg: ConsoleConfig) -> timedelta:
    return timedelta(minutes=cfg.session_idle_minutes)


async def load_viewer(
    database: Database, token: str, now: datetime, cfg: ConsoleConfig
) -> tuple[Viewer | None, bool]:
    """The session's viewer (None when the token is unknown, expired or its user disabled)
    and whether last_seen_at is due to be written."""
    if not token or len(token) > 128:
        return None, False
    session_id = hash_token(token)
    stmt = (
        sa.select(
            ConsoleSession.csrf_token,
            ConsoleSession.last_seen_at,
            ConsoleSession.expires_at,
            User.id.label("user_id"),
            User.username,
            User.role,
            User.display_name,
            Shop.id.label("shop_id"),
            Shop.slug,
            Shop.name,
        )
        .join(User, User.id == ConsoleSession.user_id)
        # The session's shop must still be the user's shop: moving a user to another shop
        # (by hand, in SQL) must not leave a door open into the old one.
        .join(Shop, (Shop.id == ConsoleSession.shop_id) & (Shop.id == User.shop_id))
        .where(ConsoleSession.id == session_id, User.disabled.is_(False))
    )
    async with database.read() as conn:
        row = (await conn.execute(stmt)).first()
    if row is None:
        return None, False
    if now >= row.expires_at or now - row.last_seen_at >= _idle_limit(cfg):
        return None, False
    viewer = Viewer(
        user_id=row.user_id,
        username=row.username,
        role=row.role,
        shop_id=row.shop_id,
        shop_slug=row.slug,
        shop_name=row.name,
        session_id=session_id,
        csrf_token=row.csrf_token,
        display_name=row.display_name,
    )
    return viewer, now - row.last_seen_at >= TOUCH_EVERY


def touch_session(session_id: str, now: datetime) -> Callable[[Connection], None]:
    def unit(conn: Connection) -> None:
        # Only forwards: two requests racing must not move last_seen_at back.
        conn.execute(
            sa.update(ConsoleSession)
            .where(ConsoleSession.id == session_id, ConsoleSession.last_seen_at < now)
            .values(last_seen_at=now)
        )

    return unit


def end_session(session_id: str, now: datetime) -> Callable[[Connection], None]:
    def unit(conn: Connection) -> None:
        row = conn.execute(
            sa.delete(ConsoleSession)
            .where(ConsoleSession.id == session_id)
            .returning(ConsoleSession.user_id, ConsoleSession.shop_id)
        ).first()
        if row is not None:
            conn.execute(
                sa.insert(AuditEntry).values(
                    shop_id=row.shop_id,
                    actor=f"user:{row.user_id}",
                    action="logout",
                    subject=f"user:{row.user_id}",
                    detail={},
                    created_at=now,
                )
            )

    return unit


def _prune(conn: Connection, now: datetime, cfg: ConsoleConfig) -> None:
    """Forget expired sessions and attempts older than the window (done at each login)."""
    conn.execute(
        sa.delete(ConsoleSession).where(
            (ConsoleSession.expires_at <= now)
            | (ConsoleSession.last_seen_at <= now - _idle_limit(cfg))
        )
    )
    window = timedelta(minutes=cfg.login_window_minutes)
    conn.execute(sa.delete(LoginAttempt).where(LoginAttempt.created_at <= now - window))


# --------------------------------------------------------------------------- logging in


@dataclass(frozen=True)
class Account:
    """What login needs to know about the account a username names."""

    id: int
    shop_id: int
    password_hash: str
    disabled: bool


async def find_account(database: Database, username: str) -> Account | None:
    stmt = sa.select(User.id, User.shop_id, User.password_hash, User.disabled).where(
        sa.func.lower(User.username) == username
    )
    async with database.read() as conn:
        row = (await conn.execute(stmt)).first()
    if row is None:
        return None
    return Account(row.id, row.shop_id, row.password_hash, row.disabled)


def begin_attempt(
    username: str, ip: str, now: datetime, cfg: ConsoleConfig
) -> Callable[[Connection], int | None]:
    """Count recent attempts; refuse (None) past either limit, else record this one (its id).

    The attempt is recorded *before* the password is checked, so a burst of parallel
    guesses is counted as it arrives rather than after every guess has been verified.
    """

    def unit(conn: Connection) -> int | None:
        since = now - timedelta(minutes=cfg.login_window_minutes)
        by_account = conn.execute(
            sa.select(sa.func.count())
            .select_from(LoginAttempt)
            .where(LoginAttempt.username == username, LoginAttempt.created_at > since)
        ).scalar_one()
        by_ip = conn.execute(
            sa.select(sa.func.count())
            .select_from(LoginAttempt)
            .where(LoginAttempt.ip == ip, LoginAttempt.created_at > since)
        ).scalar_one()
        if by_account >= cfg.login_failures_per_account or by_ip >= cfg.login_failures_per_ip:
            return None
        attempt_id: int = conn.execute(
            sa.insert(LoginAttempt)
            .values(username=username, ip=ip, created_at=now)
            .returning(LoginAttempt.id)
        ).scalar_one()
        return attempt_id

    return unit


@dataclass(frozen=True)
class NewSession:
    token: str  # for the cookie; never stored
    session_id: str


def start_session(
    account: Account,
    username: str,
    now: datetime,
    cfg: ConsoleConfig,
    *,
    user_agent: str,
    ip: str,
    replaces: str | None,
    new_password_hash: str | None,
) -> tuple[NewSession, Callable[[Connection], None]]:
    """The unit that completes a successful login.

    It forgets the account's failed attempts, upgrades the password hash when Argon2's
    parameters have changed, ends the session the browser came with (a login always starts
    a new session id; the old cookie is worthless afterwards) and creates the new one.
    """
    token = new_token()
    session_id = hash_token(token)

    def unit(conn: Connection) -> None:
        _prune(conn, now, cfg)
        conn.execute(sa.delete(LoginAttempt).where(LoginAttempt.username == username))
        if new_password_hash is not None:
            conn.execute(
                sa.update(User)
                .where(User.id == account.id, User.password_hash == account.password_hash)
                .values(password_hash=new_password_hash)
            )
        if replaces is not None:
            conn.execute(sa.delete(ConsoleSession).where(ConsoleSession.id == replaces))
        conn.execute(
            sa.insert(ConsoleSession).values(
                id=session_id,
                user_id=account.id,
                shop_id=account.shop_id,
                csrf_token=new_token(),
                created_at=now,
                last_seen_at=now,
                expires_at=now + timedelta(days=cfg.session_absolute_days),
                user_agent=user_agent[:USER_AGENT_MAX] or None,
                ip=ip,
            )
        )
        conn.execute(
            sa.insert(AuditEntry).values(
                shop_id=account.shop_id,
                actor=f"user:{account.id}",
                action="login",
                subject=f"user:{account.id}",
                detail={"ip": ip, "rehashed": new_password_hash is not None},
                created_at=now,
            )
        )

    return NewSession(token, session_id), unit


# --------------------------------------------------------------------------- for views


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
