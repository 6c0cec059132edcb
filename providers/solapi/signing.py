"""SOLAPI's request signature (PROTOCOLS.md §2.3, API-key mode): ``HMAC-SHA256`` over date +
salt, with a fresh date and salt on every request so a retry never trips
``DuplicatedSignature``."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import UTC, datetime


def signature(api_secret: str, date: str, salt: str) -> str:
    """hex(HMAC_SHA256(key=secret, msg=date + salt))."""
    return hmac.new(api_secret.encode(), (date + salt).encode(), hashlib.sha256).hexdigest()


def auth_header(api_key: str, api_secret: str, date: str, salt: str) -> str:
    sig = signature(api_secret, date, salt)
    return f"HMAC-SHA256 apiKey={api_key}, date={date}, salt={salt}, signature={sig}"


def parse_auth_header(value: str) -> dict[str, str] | None:
    """{'apikey','date','salt','signature'} (names lower-cased) or None if not HMAC-SHA256."""
    scheme, _, rest = value.strip().partition(" ")
    if scheme.upper() != "HMAC-SHA256":
        return None
    out: dict[str, str] = {}
    for part in rest.split(","):
        name, sep, val = part.strip().partition("=")
        if sep:
            out[name.strip().lower()] = val.strip()
    return out


def default_salt() -> str:
    return secrets.token_hex(16)  # 32 characters, like the Node SDK


def utc_now() -> datetime:
    return datetime.now(UTC)


def iso(when: datetime) -> str:
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.isoformat(timespec="seconds")
