"""The settings' types: every key of the file, its default and its rules, written once.

The file is decoded into these frozen dataclasses by pydantic (`core.config.loading`);
code that builds them by hand (tests) gets the same defaults and no checking.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    AfterValidator,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    ValidatorFunctionWrapHandler,
    WrapValidator,
)

from core.config.errors import Loc, fail, merged, problem
from core.config.shop import ShopConfig
from core.config.templates import TemplatesDir
from core.config.templates import base_dir as config_dir
from core.config.values import (
    Flag,
    LogFormat,
    LogLevel,
    Positive,
    Sync,
    Tables,
    Text,
    check,
    one_of,
    whole,
)

# Pillow's own decompression-bomb threshold (PIL.Image.MAX_IMAGE_PIXELS): larger images
# are refused there whatever we say, so the setting may not promise more.
PILLOW_MAX_PIXELS = 89_478_485
# Kakao gives the skill 5 s; the budget must leave room for the answer to travel.
SKILL_BUDGET_MAX_MS = 4000


@dataclass(frozen=True)
class ServerConfig:
    host: Text = "127.0.0.1"
    port: Annotated[int, whole(1)] = 8080
    public_url: Annotated[Text, AfterValidator(lambda url: url.rstrip("/"))] = (
        "http://127.0.0.1:8080"
    )
    simulator: Flag = False
    # The Kakao skill must answer within 5 s; we answer well before, whatever the database does.
    skill_budget_ms: Annotated[
        int,
        whole(50),
        check(
            lambda ms: (
                f"must stay below Kakao's 5 s limit (at most {SKILL_BUDGET_MAX_MS})"
                if ms > SKILL_BUDGET_MAX_MS
                else None
            )
        ),
    ] = 1500
    max_body_bytes: Annotated[int, whole(1024)] = 256 * 1024
    # Behind a reverse proxy that sets X-Forwarded-Proto/-Host/-For: believe its right-most
    # values for the scheme, host and client address (bot.forwarded) — for Twilio's
    # signature URL, the console's origin check, HTTPS and login throttling. Never without
    # such a proxy: clients could choose them.
    trust_proxy: Flag = False
    # A directory of message templates that shadow dangol's own by path
    # (journey/confirmation.j2, ack.j2 …): the shop's wording without touching code.
    # Relative to this file; checked when loaded (core/texts.py).
    templates_dir: TemplatesDir = None


def _sqlite_url(url: str, info: ValidationInfo) -> str:
    """Relative SQLite paths are relative to the config file, not to wherever we were
    started."""
    if not url.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
        raise problem("use sqlite+aiosqlite:///path.db or postgresql+asyncpg://…")
    prefix, base_dir = "sqlite+aiosqlite:///", config_dir(info)
    if base_dir is None or not url.startswith(prefix):
        return url
    path = url[len(prefix) :]
    if path.startswith("/") or path == ":memory:" or not path:
        return url
    return prefix + str((base_dir / path).resolve())


@dataclass(frozen=True)
class DatabaseConfig:
    url: Annotated[Text, AfterValidator(_sqlite_url)] = "sqlite+aiosqlite:///var/dangol.db"
    # FULL: a message is on disk before the customer is told we have it.
    sqlite_synchronous: Annotated[Sync, one_of(Sync)] = "FULL"
    group_commit_max: Annotated[int, whole(1)] = 200
    # PostgreSQL: keep dangol's tables in their own schema
    schema: Annotated[
        Text | None,
        check(
            lambda s: (
                None
                if s is None or re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", s)
                else "use lowercase letters, digits and _"
            )
        ),
    ] = None


@dataclass(frozen=True)
class OutboxConfig:
    tick_seconds: Positive = 1.0
    batch_size: Annotated[int, whole(1)] = 50
    lease_seconds: Annotated[int, whole(5)] = 120
    max_attempts: Annotated[int, whole(1)] = 8
    backoff_base_seconds: Positive = 5.0
    backoff_max_seconds: Positive = 3600.0
    # A send whose outcome is unknown is looked up at the vendor before any resend; while
    # the lookup itself fails, it is asked again, and after this long the message is failed
    # as "cannot tell" for the owner to decide (console: 다시 보내기), never resent by itself.
    lookup_give_up_seconds: Positive = 3600.0


def _auto_or_flag(value: Any) -> Any:
    if value != "auto" and not isinstance(value, bool):
        raise problem(f'expected "auto", true or false, got {value!r}')
    return value


def _idle_within_absolute(console: ConsoleConfig) -> ConsoleConfig:
    if console.session_idle_minutes > console.session_absolute_days * 24 * 60:
        fail(
            (
                ("session_idle_minutes",),
                "must not be longer than session_absolute_days",
                console.session_idle_minutes,
            )
        )
    return console


@dataclass(frozen=True)
class ConsoleConfig:
    """The owner console's sessions and login throttling (`[console]`, every key optional)."""

    # A session ends after this long without a request, and in any case this long after login.
    session_idle_minutes: Annotated[int, whole(1)] = 12 * 60
    session_absolute_days: Annotated[int, whole(1)] = 30
    # "auto": Secure cookies when the request came over HTTPS; true/false force it.
    secure_cookies: Annotated[Literal["auto"] | bool, BeforeValidator(_auto_or_flag)] = "auto"
    # Failed logins counted over this window; past either limit, logins are refused.
    login_window_minutes: Annotated[int, whole(1)] = 15
    login_failures_per_account: Annotated[int, whole(1)] = 5
    login_failures_per_ip: Annotated[int, whole(1)] = 20


def _upload_dir(path: str, info: ValidationInfo) -> str:
    """A relative path is relative to the config file."""
    if not path.strip():
        raise problem("must not be empty")
    base_dir = config_dir(info)
    if base_dir is not None and not Path(path).is_absolute():
        return str((base_dir / path).resolve())
    return path


@dataclass(frozen=True)
class StorageConfig:
    """Where uploaded photos are kept, and how big an upload may be (`[storage]`)."""

    # Never inside a directory the web server serves as static files: photos are served
    # only by handlers that check who is asking. A relative path is relative to the file.
    path: Annotated[Text, AfterValidator(_upload_dir)] = "var/uploads"
    max_upload_bytes: Annotated[int, whole(1024)] = 15 * 1024 * 1024
    # Decoded size limit, checked against the image header before decoding (a 12-megapixel
    # phone photo is 12 000 000; 40 000 000 is a 48-megapixel camera with room to spare).
    max_pixels: Annotated[
        int,
        whole(10_000),
        check(
            lambda n: (
                f"must be at most {PILLOW_MAX_PIXELS} (Pillow refuses larger images as "
                "decompression bombs)"
                if n > PILLOW_MAX_PIXELS
                else None
            )
        ),
    ] = 40_000_000


@dataclass(frozen=True)
class LoggingConfig:
    level: Annotated[LogLevel, one_of(LogLevel)] = "INFO"
    format: Annotated[LogFormat, one_of(LogFormat)] = "text"


def _shops_apart(value: Any, handler: ValidatorFunctionWrapHandler) -> tuple[ShopConfig, ...]:
    """At least one shop, each with its own slug — said along with any mistake inside one."""
    found: list[tuple[Loc, str, Any]] = []
    if isinstance(value, list | tuple):
        if not value:
            found.append(((), "add at least one [[shops]] table", value))
        slugs = [s.get("slug") for s in value if isinstance(s, dict)]
        slugs = [slug for slug in slugs if isinstance(slug, str)]
        if len(set(slugs)) != len(slugs):
            found.append(((), "every shop needs its own slug", slugs))
    try:
        shops: tuple[ShopConfig, ...] = handler(value)
    except ValidationError as exc:
        merged(exc, extra=found)
    if found:
        fail(*found)
    return shops


@dataclass(frozen=True, kw_only=True)
class Settings:
    # Unknown keys are mistakes: a typo must not silently fall back to a default.
    __pydantic_config__: ClassVar[ConfigDict] = ConfigDict(extra="forbid")

    # The file's name, set by `parse`: not a key of the file.
    source: str = field(default="", metadata={"in_file": False})
    server: ServerConfig = field(default_factory=ServerConfig)
    database: DatabaseConfig = field(default_factory=DatabaseConfig)
    outbox: OutboxConfig = field(default_factory=OutboxConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    console: Annotated[ConsoleConfig, AfterValidator(_idle_within_absolute)] = field(
        default_factory=ConsoleConfig
    )
    storage: StorageConfig = field(default_factory=StorageConfig)
    # Each provider's options, checked by its adapter (`providers.registry`), not here.
    providers: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    shops: Annotated[
        Tables[ShopConfig], WrapValidator(_shops_apart), Field(validate_default=True)
    ] = ()

    def shop(self, slug: str) -> ShopConfig | None:
        return self._shops_by_slug.get(slug)

    @functools.cached_property
    def _shops_by_slug(self) -> dict[str, ShopConfig]:  # every webhook call looks one up
        return {s.slug: s for s in reversed(self.shops)}  # the first of a slug, as before
