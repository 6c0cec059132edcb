"""A shop's API tokens: the secrets that let other software reach it — the jobs API (scope
"api") or the owner's calendar feed (scope "calendar").

A token is shown once, when made, and stored only as its SHA-256: whoever reads the
database cannot use it. It is looked up by that hash, so checking one compares no secret
byte by byte; a revoked token stays (revoked_at), for the audit log names it. Using a token
writes `last_used_at` at most once a minute: a calendar app polling every few minutes and a
booking page pushing jobs should not cost a write each.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection

from core.db import Database
from core.models import ApiToken, AuditEntry

TOKENS = cast(sa.Table, ApiToken.__table__)

PREFIX = "dgl_"  # tells a dangol token apart in a config file, a log or a leak scanner
SCOPES = ("api", "calendar")
NAME_MAX = 60
HINT_LENGTH = 4
TOUCH_EVERY = timedelta(minutes=1)
# What `new_secret` makes: the prefix and 43 URL-safe characters (32 random bytes).
_SHAPE = re.compile(r"dgl_[A-Za-z0-9_-]{43}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class TokenError(ValueError):
    """A token that cannot be made as asked; the message is for the owner (Korean)."""


class TokenNotFound(LookupError):
    """No such token in this shop."""


@dataclass(frozen=True, slots=True)
class NewToken:
    """A token just made: its `secret` is shown this once and never again."""

    id: int
    shop_id: int
    scope: str
    name: str
    secret: str
    hint: str


@dataclass(frozen=True, slots=True)
class TokenView:
    """A token as lists show it: never the secret, only its last characters."""

    id: int
    shop_id: int
    scope: str
    name: str
    hint: str
    created_by: int | None
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None

    @property
    def masked(self) -> str:
        return f"{PREFIX}…{self.hint}"

    @property
    def active(self) -> bool:
        return self.revoked_at is None


@dataclass(frozen=True, slots=True)
class Verified:
    """A token that holds: whose it is and what it may reach."""

    id: int
    shop_id: int
    scope: str
    name: str


def new_secret() -> str:
    return PREFIX + secrets.token_urlsafe(32)


def hash_token(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def check_name(name: str) -> str:
    """The name as stored (spaces collapsed), or TokenError saying what is wrong."""
    cleaned = " ".join(_CONTROL.sub(" ", name).split())
    if not cleaned:
        raise TokenError("토큰 이름을 적어 주세요 (예: 예약 페이지, 휴대폰 캘린더)")
    if len(cleaned) > NAME_MAX:
        raise TokenError(f"토큰 이름은 {NAME_MAX}자까지 적을 수 있어요")
    return cleaned


def _audit(
    conn: Connection,
    shop_id: int,
    actor: str,
    action: str,
    token_id: int,
    now: datetime,
    detail: dict[str, Any],
) -> None:
    conn.execute(
        sa.insert(AuditEntry).values(
            shop_id=shop_id,
            actor=actor[:60],
            action=action,
            subject=f"api_token:{token_id}",
            detail=detail,
            created_at=now,
        )
    )


def create(
    shop_id: int,
    scope: str,
    name: str,
    actor: str,
    now: datetime,
    *,
    created_by: int | None = None,
) -> Callable[[Connection], NewToken]:
    """A unit: make a token for the shop; its result carries the secret (show it once)."""
    if scope not in SCOPES:
        raise TokenError(f"토큰 범위는 {', '.join(SCOPES)} 중 하나예요")
    name = check_name(name)
    secret = new_secret()  # made here, so a unit run twice (a retried commit) stores one
    hint = secret[-HINT_LENGTH:]

    def unit(conn: Connection) -> NewToken:
        token_id = int(
            conn.execute(
                sa.insert(TOKENS)
                .values(
                    shop_id=shop_id,
                    scope=scope,
                    name=name,
                    token_hash=hash_token(secret),
                    hint=hint,
                    created_by=created_by,
                    created_at=now,
                )
                .returning(TOKENS.c.id)
            ).scalar_one()
        )
        detail = {"scope": scope, "name": name, "hint": hint}
        _audit(conn, shop_id, actor, "api_token_created", token_id, now, detail)
        return NewToken(token_id, shop_id, scope, name, secret, hint)

    return unit


def revoke(
    token_id: int, actor: str, now: datetime, *, shop_id: int | None = None
) -> Callable[[Connection], bool]:
    """A unit: the token stops working at once. True if it was revoked now, False if it
    was already; TokenNotFound for no such token (in `shop_id`, when given)."""

    def unit(conn: Connection) -> bool:
        where = [TOKENS.c.id == token_id]
        if shop_id is not None:
            where.append(TOKENS.c.shop_id == shop_id)
        row = conn.execute(
            sa.select(TOKENS.c.shop_id, TOKENS.c.scope, TOKENS.c.hint, TOKENS.c.revoked_at).where(
                *where
            )
        ).first()
        if row is None:
            raise TokenNotFound(token_id)
        if row.revoked_at is not None:
            return False
        conn.execute(
            sa.update(TOKENS)
            .where(TOKENS.c.id == token_id, TOKENS.c.revoked_at.is_(None))
            .values(revoked_at=now)
        )
        detail = {"scope": row.scope, "hint": row.hint}
        _audit(conn, row.shop_id, actor, "api_token_revoked", token_id, now, detail)
        return True

    return unit


async def list_tokens(conn: AsyncConnection, shop_id: int | None = None) -> list[TokenView]:
    """The shop's tokens (every shop's, without one), newest first, revoked ones too."""
    stmt = sa.select(
        TOKENS.c.id,
        TOKENS.c.shop_id,
        TOKENS.c.scope,
        TOKENS.c.name,
        TOKENS.c.hint,
        TOKENS.c.created_by,
        TOKENS.c.created_at,
        TOKENS.c.last_used_at,
        TOKENS.c.revoked_at,
    ).order_by(TOKENS.c.created_at.desc(), TOKENS.c.id.desc())
    if shop_id is not None:
        stmt = stmt.where(TOKENS.c.shop_id == shop_id)
    return [TokenView(*row) for row in await conn.execute(stmt)]


def looks_like_token(secret: str) -> bool:
    """Whether `secret` has a token's shape (checked before any hashing or query)."""
    return _SHAPE.fullmatch(secret) is not None


async def verify(database: Database, secret: str, scope: str, now: datetime) -> Verified | None:
    """The token `secret` names, if it exists, has `scope` and is not revoked; None
    otherwise (the caller answers 401 or 404 without saying which)."""
    if not looks_like_token(secret):
        return None
    digest = hash_token(secret)
    async with database.read() as conn:
        row = (
            await conn.execute(
                sa.select(
                    TOKENS.c.id,
                    TOKENS.c.shop_id,
                    TOKENS.c.scope,
                    TOKENS.c.name,
                    TOKENS.c.token_hash,
                    TOKENS.c.last_used_at,
                    TOKENS.c.revoked_at,
                ).where(TOKENS.c.token_hash == digest)
            )
        ).first()
    # The lookup already matched the hash; comparing it again in constant time costs
    # nothing and does not lean on how the database compares strings.
    if row is None or not secrets.compare_digest(row.token_hash, digest):
        return None
    if row.revoked_at is not None or row.scope != scope:
        return None
    if row.last_used_at is None or now - row.last_used_at >= TOUCH_EVERY:
        await database.write(_touch(row.id, now))
    return Verified(row.id, row.shop_id, row.scope, row.name)


def _touch(token_id: int, now: datetime) -> Callable[[Connection], None]:
    def unit(conn: Connection) -> None:
        # Only once a minute, and only forwards (requests racing must not move it back).
        conn.execute(
            sa.update(TOKENS)
            .where(
                TOKENS.c.id == token_id,
                sa.or_(TOKENS.c.last_used_at.is_(None), TOKENS.c.last_used_at <= now - TOUCH_EVERY),
            )
            .values(last_used_at=now)
        )

    return unit
