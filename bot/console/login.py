"""Logging in to the console: the account a username names, login throttling, and the
unit that completes a successful login (a new session).

Login throttling counts attempts per typed username and per client address in the
`login_attempts` table, so the limits hold across restarts and across `dangol serve`
processes sharing one PostgreSQL database.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from bot.console.sessions import hash_token, idle_limit, new_token
from core.config import ConsoleConfig
from core.db import Database
from core.models import AuditEntry, ConsoleSession, LoginAttempt, User

USER_AGENT_MAX = 200
USERNAME_MAX = 80


def _prune(conn: Connection, now: datetime, cfg: ConsoleConfig) -> None:
    """Forget expired sessions and attempts older than the window (done at each login)."""
    conn.execute(
        sa.delete(ConsoleSession).where(
            (ConsoleSession.expires_at <= now)
            | (ConsoleSession.last_seen_at <= now - idle_limit(cfg))
        )
    )
    window = timedelta(minutes=cfg.login_window_minutes)
    conn.execute(sa.delete(LoginAttempt).where(LoginAttempt.created_at <= now - window))


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
