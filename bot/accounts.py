"""Console accounts: owner and staff, Argon2id password hashes."""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable
from datetime import datetime

import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy.engine import Connection

from core.models import AuditEntry, ConsoleSession, LoginAttempt, User

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


# --------------------------------------------------------------------------- users

USERNAME_RE = re.compile(r"[a-z0-9][a-z0-9._@-]{1,79}")
ROLES = ("owner", "staff")
DISPLAY_NAME_MAX = 40
OWNER_TITLE = "사장님"


class AccountError(Exception):
    """A request about accounts that cannot be done as asked (shown to the operator)."""


def normalize_username(username: str) -> str:
    """Usernames are compared without regard to case or surrounding spaces."""
    return username.strip().lower()


def check_username(username: str) -> str:
    """The normalised username, or AccountError saying what is wrong with it."""
    name = normalize_username(username)
    if not USERNAME_RE.fullmatch(name):
        raise AccountError(
            "a username is 2–80 characters: letters, digits and . _ @ - "
            "(starting with a letter or digit)"
        )
    return name


def check_display_name(value: str) -> str:
    """The display name as it will be shown (spaces tidied; empty means "not set"), or
    AccountError saying what is wrong with it."""
    name = " ".join(value.split())
    if len(name) > DISPLAY_NAME_MAX:
        raise AccountError(f"a display name is at most {DISPLAY_NAME_MAX} characters")
    if not name.isprintable():
        raise AccountError("a display name cannot contain control characters")
    return name


def shown_name(display_name: str, role: str, username: str) -> str:
    """How a user signs replies and notes: the display name they chose, else 사장님 for an
    owner (what customers call them) and the login name for staff."""
    if display_name:
        return display_name
    return OWNER_TITLE if role == "owner" else username


def set_display_name(
    user_id: int, display_name: str, now: datetime, actor: str
) -> Callable[[Connection], None]:
    name = check_display_name(display_name)

    def unit(conn: Connection) -> None:
        shop_id = conn.execute(
            sa.update(User)
            .where(User.id == user_id)
            .values(display_name=name)
            .returning(User.shop_id)
        ).scalar_one()
        conn.execute(
            sa.insert(AuditEntry).values(
                shop_id=shop_id,
                actor=actor,
                action="display_name",
                subject=f"user:{user_id}",
                detail={"display_name": name},
                created_at=now,
            )
        )

    return unit


def hash_password(password: str) -> str:
    return hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> tuple[bool, bool]:
    """(matches, needs_rehash). CPU-heavy on purpose: call it off the event loop.

    Without an account (`password_hash` None) the password is still checked, against a
    dummy hash made with the same parameters, so "no such user" takes as long as "wrong
    password" and the two cannot be told apart by timing.
    """
    target = password_hash if password_hash is not None else _dummy_hash()
    try:
        hasher.verify(target, password)
    except (VerificationError, InvalidHashError):
        return False, False
    if password_hash is None:
        return False, False
    return True, hasher.check_needs_rehash(password_hash)


_dummy: tuple[PasswordHasher, str] | None = None


def _dummy_hash() -> str:
    global _dummy
    if _dummy is None or _dummy[0] is not hasher:  # tests may swap in a cheaper hasher
        _dummy = (hasher, hasher.hash(secrets.token_urlsafe(16)))
    return _dummy[1]


def add_user(
    shop_id: int,
    username: str,
    password: str,
    role: str,
    now: datetime,
    actor: str = "cli",
    display_name: str = "",
) -> Callable[[Connection], int]:
    """Create a console account; its id. AccountError when the username is taken."""
    name = check_username(username)
    shown = check_display_name(display_name)
    if role not in ROLES:
        raise AccountError(f"role must be one of {', '.join(ROLES)}")
    password_hash = hash_password(password)

    def unit(conn: Connection) -> int:
        taken = conn.execute(sa.select(User.id).where(sa.func.lower(User.username) == name)).first()
        if taken:
            raise AccountError(f"the username {name!r} is already taken")
        user_id: int = conn.execute(
            sa.insert(User)
            .values(
                shop_id=shop_id,
                username=name,
                password_hash=password_hash,
                role=role,
                display_name=shown,
                disabled=False,
                created_at=now,
            )
            .returning(User.id)
        ).scalar_one()
        conn.execute(
            sa.insert(AuditEntry).values(
                shop_id=shop_id,
                actor=actor,
                action="user_created",
                subject=f"user:{user_id}",
                detail={"username": name, "role": role, "display_name": shown},
                created_at=now,
            )
        )
        return user_id

    return unit


def reset_password(
    username: str, password: str, now: datetime, actor: str = "cli"
) -> Callable[[Connection], int]:
    """Set a new password, end every session of the account and forget its failed logins.

    Returns the user's id; AccountError when there is no such user. Clearing the failures
    is what lets an owner locked out by someone guessing at the account back in at once.
    """
    name = normalize_username(username)
    password_hash = hash_password(password)

    def unit(conn: Connection) -> int:
        row = conn.execute(
            sa.select(User.id, User.shop_id).where(sa.func.lower(User.username) == name)
        ).first()
        if row is None:
            raise AccountError(f"no user named {name!r}")
        conn.execute(sa.update(User).where(User.id == row.id).values(password_hash=password_hash))
        ended = conn.execute(
            sa.delete(ConsoleSession).where(ConsoleSession.user_id == row.id)
        ).rowcount
        conn.execute(sa.delete(LoginAttempt).where(LoginAttempt.username == name))
        conn.execute(
            sa.insert(AuditEntry).values(
                shop_id=row.shop_id,
                actor=actor,
                action="password_reset",
                subject=f"user:{row.id}",
                detail={"sessions_ended": ended},
                created_at=now,
            )
        )
        user_id: int = row.id
        return user_id

    return unit
