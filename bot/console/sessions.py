"""Console sessions and their tokens, kept in the database.

A session is a random 32-byte token in the `dangol_session` cookie; the database keeps
only its SHA-256, so a leaked backup or a read-only SQL injection yields no usable cookie.
Each session carries its own CSRF token, shown in the pages' forms and `<meta>` tag.
A session ends when it expires, sits idle too long, or its user logs out.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from bot.console.viewer import Viewer
from core.config import ConsoleConfig
from core.db import Database
from core.models import AuditEntry, ConsoleSession, Shop, User

# last_seen_at is written at most this often: reading a page must not cost a write each time.
TOUCH_EVERY = timedelta(minutes=1)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return secrets.token_urlsafe(32)


def tokens_match(given: str | None, expected: str | None) -> bool:
    """Constant-time comparison that treats a missing value as a mismatch."""
    if not given or not expected:
        return False
    return secrets.compare_digest(given.encode(), expected.encode())


def idle_limit(cfg: ConsoleConfig) -> timedelta:
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
    if now >= row.expires_at or now - row.last_seen_at >= idle_limit(cfg):
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
