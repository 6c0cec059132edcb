"""Console accounts: owner and staff, Argon2id password hashes."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from datetime import datetime

import sqlalchemy as sa
from argon2 import PasswordHasher
from sqlalchemy.engine import Connection

from bot.models import AuditEntry, User

hasher = PasswordHasher()  # argon2-cffi's defaults are Argon2id with RFC 9106 parameters


def new_password() -> str:
    """Readable enough to type from a printout: 4 groups of 4 letters/digits."""
    alphabet = "abcdefghjkmnpqrstuvwxyz23456789"
    return "-".join("".join(secrets.choice(alphabet) for _ in range(4)) for _ in range(4))


def ensure_owner(
    shop_id: int, username: str, password: str, now: datetime
) -> Callable[[Connection], bool]:
    """Create the shop's owner account unless one exists; True when created."""
    password_hash = hasher.hash(password)

    def unit(conn: Connection) -> bool:
        exists = conn.execute(
            sa.select(User.id).where(User.shop_id == shop_id, User.role == "owner").limit(1)
        ).first()
        if exists:
            return False
        user_id = conn.execute(
            sa.insert(User)
            .values(
                shop_id=shop_id,
                username=username,
                password_hash=password_hash,
                role="owner",
                disabled=False,
                created_at=now,
            )
            .returning(User.id)
        ).scalar_one()
        conn.execute(
            sa.insert(AuditEntry).values(
                shop_id=shop_id,
                actor="system",
                action="user_created",
                subject=f"user:{user_id}",
                detail={"username": username, "role": "owner"},
                created_at=now,
            )
        )
        return True

    return unit
