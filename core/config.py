"""TOML configuration → frozen dataclasses.

Every error names the file, the key and what is wrong, so an installer can fix it without
reading a traceback. Secrets are never written in the file: the file names the environment
variable that holds them.
"""

from __future__ import annotations

import difflib
import functools
import os
import re
import tomllib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, time
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from core.phone import PhoneError, to_e164
from providers.masking import mask_in_text
from providers.registry import default_registry

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
SLUG_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,39}$")
# Kakao documents 14 chars for button labels and nothing for quick replies; we hold
# quick replies to the same limit so they never get cut off on a phone.
QUICK_REPLY_LABEL_MAX = 14


class ConfigError(Exception):
    """A configuration problem, phrased for the person editing the file."""

    def __init__(self, source: str, key: str, problem: str) -> None:
        self.source, self.key, self.problem = source, key, problem
        where = f"{source}: {key}" if key else source
        super().__init__(f"{where}: {problem}")

    @property
    def errors(self) -> tuple[ConfigError, ...]:
        """Every problem, one line each (`ConfigErrors` has several)."""
        return (self,)


class ConfigErrors(ConfigError):
    """All the problems found in one reading of the file, in file order, so an installer
    fixes them in one go. Its text is one line per problem; `source`, `key` and `problem`
    are the first one's."""

    def __init__(self, errors: Sequence[ConfigError]) -> None:
        first = errors[0]
        super().__init__(first.source, first.key, first.problem)
        self._errors = tuple(errors)
        self.args = ("\n".join(str(e) for e in self._errors),)

    @property
    def errors(self) -> tuple[ConfigError, ...]:
        return self._errors


class Secret:
    """A secret value that never shows itself in repr, str or logs."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


@dataclass(frozen=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 8080
    public_url: str = "http://127.0.0.1:8080"
    simulator: bool = False
    # The Kakao skill must answer within 5 s; we answer well before, whatever the database does.
    skill_budget_ms: int = 1500
    max_body_bytes: int = 256 * 1024
    # Behind a reverse proxy that sets X-Forwarded-Proto/-Host/-For: believe its right-most
    # values for the scheme, host and client address (bot.forwarded) — for Twilio's
    # signature URL, the console's origin check, HTTPS and login throttling. Never without
    # such a proxy: clients could choose them.
    trust_proxy: bool = False


@dataclass(frozen=True)
class DatabaseConfig:
    url: str = "sqlite+aiosqlite:///var/dangol.db"
    # FULL: a message is on disk before the customer is told we have it.
    sqlite_synchronous: Literal["FULL", "NORMAL"] = "FULL"
    group_commit_max: int = 200
    schema: str | None = None  # PostgreSQL: keep dangol's tables in their own schema


@dataclass(frozen=True)
class OutboxConfig:
    tick_seconds: float = 1.0
    batch_size: int = 50
    lease_seconds: int = 120
    max_attempts: int = 8
    backoff_base_seconds: float = 5.0
    backoff_max_seconds: float = 3600.0
    # A send whose outcome is unknown is looked up at the vendor before any resend; while
    # the lookup itself fails, it is asked again, and after this long the message is failed
    # as "cannot tell" for the owner to decide (console: 다시 보내기), never resent by itself.
    lookup_give_up_seconds: float = 3600.0


@dataclass(frozen=True)
class ConsoleConfig:
    """The owner console's sessions and login throttling (`[console]`, every key optional)."""

    # A session ends after this long without a request, and in any case this long after login.
    session_idle_minutes: int = 12 * 60
    session_absolute_days: int = 30
    # "auto": Secure cookies when the request came over HTTPS; true/false force it.
    secure_cookies: Literal["auto"] | bool = "auto"
    # Failed logins counted over this window; past either limit, logins are refused.
    login_window_minutes: int = 15
    login_failures_per_account: int = 5
    login_failures_per_ip: int = 20


@dataclass(frozen=True)
class StorageConfig:
    """Where uploaded photos are kept, and how big an upload may be (`[storage]`)."""

    # Never inside a directory the web server serves as static files: photos are served
    # only by handlers that check who is asking. A relative path is relative to the file.
    path: str = "var/uploads"
    max_upload_bytes: int = 15 * 1024 * 1024
    # Decoded size limit, checked against the image header before decoding (a 12-megapixel
    # phone photo is 12 000 000; 40 000 000 is a 48-megapixel camera with room to spare).
    max_pixels: int = 40_000_000


# Pillow's own decompression-bomb threshold (PIL.Image.MAX_IMAGE_PIXELS): larger images
# are refused there whatever we say, so the setting may not promise more.
PILLOW_MAX_PIXELS = 89_478_485


@dataclass(frozen=True)
class LoggingConfig:
    level: str = "INFO"
    format: Literal["text", "json"] = "text"


@dataclass(frozen=True)
class OpeningHours:
    """One day's opening, from `opens` on that day. A `closes` at or before `opens` is on
    the next day: "22:00-02:00" runs past midnight, "00:00-24:00" (closes 00:00) all day."""

    opens: time
    closes: time

    @property
    def overnight(self) -> bool:
        """Whether it closes on the next day (at midnight included)."""
        return self.closes <= self.opens

    @property
    def around_the_clock(self) -> bool:
        return self.opens == self.closes == time(0)

    def label(self) -> str:
        """As a customer reads it: "09:00~18:00", "22:00~02:00", "24시간"."""
        if self.around_the_clock:
            return "24시간"
        closes = "24:00" if self.closes == time(0) else f"{self.closes:%H:%M}"
        return f"{self.opens:%H:%M}~{closes}"


@dataclass(frozen=True)
class Closure:
    start: date
    end: date
    reason: str


@dataclass(frozen=True)
class FaqEntry:
    id: str
    label: str
    keywords: tuple[str, ...]
    answer: str


@dataclass(frozen=True)
class KakaoConfig:
    bot_id: str
    skill_secret: Secret
    secret_header: str = "X-Dangol-Skill-Secret"  # noqa: S105 (a header name, not a secret)


@dataclass(frozen=True)
class SolapiHookConfig:
    """`[shops.solapi]`: the secret token in this shop's SOLAPI delivery-report webhook URL."""

    webhook_token: Secret


@dataclass(frozen=True)
class OwnerConfig:
    name: str
    phone: str | None  # E.164
    notify_via: tuple[str, ...] = ("console",)
    # An approved AlimTalk template for owner notices (core/notices.py lists its variables).
    alimtalk_template: str | None = None


@dataclass(frozen=True)
class Delivery:
    """Which provider carries each reply path (DESIGN §2); an unset path is skipped."""

    event_api: str | None = None  # Kakao Event API: the bot speaks first in the chat room
    alimtalk: str | None = None  # AlimTalk reply-notice template, to the customer's phone
    alimtalk_template: str | None = None
    sms: str | None = None  # SMS/LMS/MMS

    def provider_for(self, path_key: str) -> str | None:
        value = getattr(self, path_key, None)
        return value if isinstance(value, str) else None


@dataclass(frozen=True)
class ShopConfig:
    slug: str
    name: str
    phone: str
    address: str
    timezone: ZoneInfo
    hours: tuple[OpeningHours | None, ...]  # Monday first, None = closed
    closed_on_public_holidays: bool
    closures: tuple[Closure, ...]
    faq: tuple[FaqEntry, ...]
    kakao: KakaoConfig | None
    owner: OwnerConfig
    reply_target_minutes: int = 30
    complaint_fix_hours: int = 24
    delivery: Delivery = Delivery()
    solapi: SolapiHookConfig | None = None  # delivery reports at /hooks/solapi/{slug}/{token}
    # An SMS customer's "the owner will answer" acknowledgement waits this long, and does
    # not go at all when the owner answers first.
    sms_ack_delay_seconds: int = 90


@dataclass(frozen=True)
class Settings:
    source: str
    server: ServerConfig
    database: DatabaseConfig
    outbox: OutboxConfig
    logging: LoggingConfig
    shops: tuple[ShopConfig, ...]
    providers: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    console: ConsoleConfig = field(default_factory=ConsoleConfig)
    storage: StorageConfig = field(default_factory=StorageConfig)

    def shop(self, slug: str) -> ShopConfig | None:
        return self._shops_by_slug.get(slug)

    @functools.cached_property
    def _shops_by_slug(self) -> dict[str, ShopConfig]:  # every webhook call looks one up
        return {s.slug: s for s in reversed(self.shops)}  # the first of a slug, as before


# --------------------------------------------------------------------------- reading


class _Table:
    """A TOML table that remembers where it came from, for error messages.

    A wrong value is recorded in `problems` (shared by every table of the file) and
    reading goes on with the default, or None for a required key, so one run finds every
    mistake. Checks that build on a value first ask `ok()`, so one mistake is one line.
    """

    def __init__(
        self, source: str, path: str, data: Mapping[str, Any], problems: list[ConfigError]
    ) -> None:
        self.source, self.path, self.data, self.problems = source, path, data, problems
        self.seen: set[str] = set()
        self.failed: set[str] = set()
        self.missing: dict[str, ConfigError] = {}

    def key(self, name: str) -> str:
        return f"{self.path}.{name}" if self.path else name

    def problem(self, name: str, problem: str) -> None:
        self.failed.add(name)
        self.problems.append(ConfigError(self.source, self.key(name), problem))

    def ok(self, *names: str) -> bool:
        """Whether these keys were read without a problem."""
        return not self.failed.intersection(names)

    def sub(self, name: str, data: Mapping[str, Any]) -> _Table:
        return _Table(self.source, self.key(name), data, self.problems)

    def _get(self, name: str, kind: type | tuple[type, ...], label: str, default: Any) -> Any:
        self.seen.add(name)
        fallback = None if default is _REQUIRED else default
        if name not in self.data:
            if default is _REQUIRED:
                self.problem(name, "is required but missing")
                self.missing[name] = self.problems[-1]
            return fallback
        value = self.data[name]
        if (isinstance(value, bool) and bool not in _as_tuple(kind)) or not isinstance(value, kind):
            self.problem(name, f"expected {label}, got {value!r}")
            return fallback
        return value

    def string(self, name: str, default: Any = None) -> Any:
        value = self._get(name, str, "a string", default)
        if isinstance(value, str) and default is _REQUIRED and not value.strip():
            self.problem(name, "must not be empty")
            return None
        return value

    def integer(self, name: str, default: Any = None, *, minimum: int = 0) -> Any:
        value = self._get(name, int, "a whole number", default)
        if isinstance(value, int) and value < minimum:
            self.problem(name, f"must be at least {minimum}, got {value}")
            return default
        return value

    def number(self, name: str, default: Any = None) -> Any:
        value = self._get(name, (int, float), "a number", default)
        if isinstance(value, int | float) and value <= 0:
            self.problem(name, f"must be greater than 0, got {value}")
            return default
        return None if value is None else float(value)

    def flag(self, name: str, default: Any = None) -> Any:
        return self._get(name, bool, "true or false", default)

    def choice(self, name: str, options: tuple[str, ...], default: str) -> str:
        value: str = self.string(name, default)
        if value not in options:
            self.problem(name, f"must be one of {', '.join(options)}; got {value!r}")
            return default
        return value

    def strings(self, name: str, default: Any = ()) -> tuple[str, ...]:
        value = self._get(name, list, "a list of strings", default)
        if not all(isinstance(v, str) for v in value):
            self.problem(name, "expected a list of strings")
            return tuple(default)
        return tuple(value)

    def table(self, name: str, *, required: bool = False) -> _Table | None:
        """None when absent or not a table (then the problem is recorded)."""
        value = self._get(name, dict, "a table", _REQUIRED if required else None)
        return None if value is None else self.sub(name, value)

    def tables(self, name: str) -> list[_Table] | None:
        """None when it is not an array of tables (the problem is recorded)."""
        value = self._get(name, list, "an array of tables ([[...]])", [])
        if not self.ok(name):
            return None
        bad = [i for i, item in enumerate(value) if not isinstance(item, dict)]
        for i in bad:
            self.problems.append(
                ConfigError(self.source, f"{self.key(name)}[{i}]", "expected a table")
            )
        if bad:
            self.failed.add(name)
            return None
        return [self.sub(f"{name}[{i}]", item) for i, item in enumerate(value)]

    def secret(self, name: str) -> Any:
        """`<name>_env` names the environment variable holding the secret; None if unset."""
        env_key = f"{name}_env"
        var = self.string(env_key, _REQUIRED)
        if var is None:
            return None
        value = os.environ.get(var)
        if not value:
            self.problem(env_key, f"environment variable {var} is not set")
            return None
        return Secret(value)

    def finish(self) -> None:
        """Reject keys we do not know: a typo should not silently fall back to a default."""
        for name in self.data:
            if name not in self.seen:
                hint = difflib.get_close_matches(name, sorted(self.seen), n=1)
                tip = f" (did you mean {hint[0]!r}?)" if hint else ""
                if hint and hint[0] in self.missing:  # one misspelt key, one line
                    self.problems.remove(self.missing.pop(hint[0]))
                self.problem(name, f"unknown key{tip}")


_REQUIRED: Any = object()


def _as_tuple(kind: type | tuple[type, ...]) -> tuple[type, ...]:
    return kind if isinstance(kind, tuple) else (kind,)


def _parse_hours(t: _Table, name: str, value: str) -> OpeningHours | None:
    if value.strip().lower() == "closed":
        return None
    m = re.fullmatch(r"\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*", value)
    if not m:
        t.problem(name, f'expected "HH:MM-HH:MM" or "closed", got {value!r}')
        return None
    h1, m1, h2, m2 = (int(x) for x in m.groups())
    if (h2, m2) == (24, 0):  # the end of the day, as shop signs write it
        h2 = 0
    try:
        opens, closes = time(h1, m1), time(h2, m2)
    except ValueError:
        t.problem(name, f"not a valid time range: {value!r}")
        return None
    if opens == closes and opens != time(0):
        t.problem(
            name, f'opens and closes at the same time: {value!r} (open all day is "00:00-24:00")'
        )
        return None
    # A closing time at or before the opening time is on the next day (a night shop).
    return OpeningHours(opens, closes)


def _shop(t: _Table, known_providers: set[str]) -> ShopConfig:
    """The shop's settings; after a recorded problem they are only good for reading on."""
    slug = t.string("slug", _REQUIRED)
    if slug is not None and not SLUG_RE.match(slug):
        t.problem("slug", f"use lowercase letters, digits and '-' (max 40), got {slug!r}")
    tz_name = t.string("timezone", "Asia/Seoul")
    try:
        tz = ZoneInfo(tz_name)
    except (ZoneInfoNotFoundError, ValueError):
        t.problem("timezone", f"unknown time zone {tz_name!r}")
        tz = ZoneInfo("Asia/Seoul")

    hours: tuple[OpeningHours | None, ...] = ()
    closed_on_holidays = True
    if (hours_t := t.table("hours", required=True)) is not None:
        written = [(day, hours_t.string(day, _REQUIRED)) for day in WEEKDAYS]
        hours = tuple(_parse_hours(hours_t, d, v) if v is not None else None for d, v in written)
        closed_on_holidays = hours_t.flag("closed_on_public_holidays", True)
        hours_t.finish()

    closures = []
    for c in t.tables("closures") or ():
        start = c._get("start", date, "a date (YYYY-MM-DD)", _REQUIRED)
        end = c._get("end", date, "a date (YYYY-MM-DD)", start)
        if start is not None and c.ok("end") and end < start:
            c.problem("end", "must not be before start")
        closures.append(Closure(start, end, c.string("reason", "휴무")))
        c.finish()

    faq = []
    for f in t.tables("faq") or ():
        label = f.string("label", _REQUIRED)
        if label is not None and len(label) > QUICK_REPLY_LABEL_MAX:
            f.problem("label", f"must be at most {QUICK_REPLY_LABEL_MAX} characters")
        answer = f.string("answer", _REQUIRED)
        if answer is not None and len(answer) > 1000:
            f.problem("answer", "must be at most 1000 characters (Kakao's limit)")
        faq.append(FaqEntry(f.string("id", _REQUIRED), label, f.strings("keywords"), answer))
        f.finish()
    if len(faq) > 7:
        t.problem("faq", "at most 7 entries fit in Kakao's 10 quick replies")
    ids = [e.id for e in faq if e.id is not None]
    if len(set(ids)) != len(ids):
        t.problem("faq", "every entry needs its own id")

    kakao = None
    if (k := t.table("kakao")) is not None:
        kakao = KakaoConfig(
            bot_id=k.string("bot_id", _REQUIRED),
            skill_secret=k.secret("skill_secret"),
            secret_header=k.string("secret_header", "X-Dangol-Skill-Secret"),
        )
        k.finish()

    solapi = None
    if (sp := t.table("solapi")) is not None:
        token = sp.secret("webhook_token")
        if token is not None and len(token.reveal()) < 16:
            sp.problem("webhook_token_env", "the token must be at least 16 characters long")
        solapi = SolapiHookConfig(webhook_token=token)
        sp.finish()

    delivery = Delivery()
    if (dv := t.table("delivery")) is not None:
        chosen = {}
        for key in ("event_api", "alimtalk", "sms"):
            name = dv.string(key)
            if name is not None and name not in known_providers:
                dv.problem(key, f"unknown provider {name!r} (add a [providers.{name}] table)")
            chosen[key] = name
        template = dv.string("alimtalk_template")
        if chosen["alimtalk"] and dv.ok("alimtalk_template") and not template:
            dv.problem("alimtalk_template", "is required when alimtalk is set")
        delivery = Delivery(alimtalk_template=template, **chosen)
        dv.finish()

    owner = OwnerConfig("", None)
    if (o := t.table("owner", required=True)) is not None:
        raw_phone = o.string("phone")
        owner_phone = None
        try:
            owner_phone = to_e164(raw_phone) if raw_phone else None
        except PhoneError:
            # Echoed as written, so the installer finds it in the file; a part that is a
            # real number is still masked (this line reaches logs).
            o.problem("phone", f"not a valid phone number: {mask_in_text(raw_phone)!r}")
        notify_via = o.strings("notify_via", ("console",))
        for name in notify_via:
            if name not in known_providers:
                o.problem("notify_via", f"unknown provider {name!r}")
        owner = OwnerConfig(
            o.string("name", _REQUIRED), owner_phone, notify_via, o.string("alimtalk_template")
        )
        o.finish()

    shop = ShopConfig(
        slug=slug,
        name=t.string("name", _REQUIRED),
        phone=t.string("phone", ""),
        address=t.string("address", ""),
        timezone=tz,
        hours=hours,
        closed_on_public_holidays=closed_on_holidays,
        closures=tuple(closures),
        faq=tuple(faq),
        kakao=kakao,
        owner=owner,
        reply_target_minutes=t.integer("reply_target_minutes", 30, minimum=1),
        complaint_fix_hours=t.integer("complaint_fix_hours", 24, minimum=1),
        delivery=delivery,
        solapi=solapi,
        sms_ack_delay_seconds=t.integer("sms_ack_delay_seconds", 90, minimum=0),
    )
    t.finish()
    return shop


def parse(data: Mapping[str, Any], source: str, base_dir: Path | None = None) -> Settings:
    """The settings, or `ConfigErrors` naming every mistake in the file, in file order."""
    problems: list[ConfigError] = []
    root = _Table(source, "", data, problems)

    def section(name: str) -> _Table:
        # Absent or not a table (recorded): its keys take their defaults.
        return root.table(name) or root.sub(name, {})

    s = section("server")
    server = ServerConfig(
        host=s.string("host", "127.0.0.1"),
        port=s.integer("port", 8080, minimum=1),
        public_url=s.string("public_url", "http://127.0.0.1:8080").rstrip("/"),
        simulator=s.flag("simulator", False),
        skill_budget_ms=s.integer("skill_budget_ms", 1500, minimum=50),
        max_body_bytes=s.integer("max_body_bytes", 256 * 1024, minimum=1024),
        trust_proxy=s.flag("trust_proxy", False),
    )
    _moved(s, "trust_forwarded", "[server] trust_proxy")
    if server.skill_budget_ms > 4000:
        s.problem("skill_budget_ms", "must stay below Kakao's 5 s limit (at most 4000)")
    s.finish()

    d = section("database")
    url = _resolve_sqlite_path(d.string("url", "sqlite+aiosqlite:///var/dangol.db"), base_dir)
    if not url.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
        d.problem("url", "use sqlite+aiosqlite:///path.db or postgresql+asyncpg://…")
    database = DatabaseConfig(
        url=url,
        sqlite_synchronous=d.choice("sqlite_synchronous", ("FULL", "NORMAL"), "FULL"),  # type: ignore[arg-type]
        group_commit_max=d.integer("group_commit_max", 200, minimum=1),
        schema=d.string("schema"),
    )
    if database.schema and not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", database.schema):
        d.problem("schema", "use lowercase letters, digits and _")
    d.finish()

    ob = section("outbox")
    outbox = OutboxConfig(
        tick_seconds=ob.number("tick_seconds", 1.0),
        batch_size=ob.integer("batch_size", 50, minimum=1),
        lease_seconds=ob.integer("lease_seconds", 120, minimum=5),
        max_attempts=ob.integer("max_attempts", 8, minimum=1),
        backoff_base_seconds=ob.number("backoff_base_seconds", 5.0),
        backoff_max_seconds=ob.number("backoff_max_seconds", 3600.0),
        lookup_give_up_seconds=ob.number("lookup_give_up_seconds", 3600.0),
    )
    ob.finish()

    lg = section("logging")
    logging_cfg = LoggingConfig(
        level=lg.choice("level", ("DEBUG", "INFO", "WARNING", "ERROR"), "INFO"),
        format=lg.choice("format", ("text", "json"), "text"),  # type: ignore[arg-type]
    )
    lg.finish()

    console = _console(section("console"))
    storage = _storage(section("storage"), base_dir)

    p = section("providers")
    providers: dict[str, Mapping[str, Any]] = {"console": {}}
    for name in list(p.data):
        sub = p.table(name)
        providers[name] = dict(sub.data) if sub else {}
    # Built once here, thrown away: a wrong option or a missing secret is a config error
    # now (check-config, serve's first second), not a failure at the first send. One that
    # is not a table at all is already recorded: its options are not checked.
    checked = {name: options for name, options in providers.items() if p.ok(name)}
    for line in default_registry.problems(checked):  # "providers.<name>.<key>: <problem>"
        key, _, problem = line.partition(": ")
        problems.append(ConfigError(source, key, problem))

    shop_tables = root.tables("shops")
    shops = tuple(_shop(t, set(providers)) for t in shop_tables or ())
    if shop_tables == []:
        root.problem("shops", "add at least one [[shops]] table")
    slugs = [x.slug for x in shops if x.slug is not None]
    if len(set(slugs)) != len(slugs):
        root.problem("shops", "every shop needs its own slug")
    root.finish()
    if problems:
        raise ConfigErrors(sorted(problems, key=lambda e: _place_in_file(data, e.key)))
    return Settings(
        source,
        server,
        database,
        outbox,
        logging_cfg,
        shops,
        providers,
        console=console,
        storage=storage,
    )


def _place_in_file(data: Mapping[str, Any], key: str) -> tuple[int, ...]:
    """Where `key` ("shops[0].hours.mon") is written in the file, to sort problems by.
    TOML tables keep the file's order; a missing key sorts at the end of its table."""
    place: list[int] = []
    node: Any = data
    for part in re.findall(r"[^.\[\]]+|\[\d+\]", key):
        if part.startswith("[") and isinstance(node, list):
            index = int(part[1:-1])
            place.append(index)
            node = node[index] if index < len(node) else None
        elif isinstance(node, Mapping) and part in node:
            place.append(list(node).index(part))
            node = node[part]
        else:
            place.append(len(node) if isinstance(node, Mapping | list) else 0)
            break
    return tuple(place)


def _console(c: _Table) -> ConsoleConfig:
    secure = c._get("secure_cookies", (str, bool), '"auto", true or false', "auto")
    if isinstance(secure, str) and secure != "auto":
        c.problem("secure_cookies", f'expected "auto", true or false, got {secure!r}')
    console = ConsoleConfig(
        session_idle_minutes=c.integer("session_idle_minutes", 12 * 60, minimum=1),
        session_absolute_days=c.integer("session_absolute_days", 30, minimum=1),
        secure_cookies=secure,
        login_window_minutes=c.integer("login_window_minutes", 15, minimum=1),
        login_failures_per_account=c.integer("login_failures_per_account", 5, minimum=1),
        login_failures_per_ip=c.integer("login_failures_per_ip", 20, minimum=1),
    )
    _moved(c, "trust_proxy", "[server] trust_proxy")
    if (
        c.ok("session_idle_minutes", "session_absolute_days")
        and console.session_idle_minutes > console.session_absolute_days * 24 * 60
    ):
        c.problem("session_idle_minutes", "must not be longer than session_absolute_days")
    c.finish()
    return console


def _storage(st: _Table, base_dir: Path | None) -> StorageConfig:
    path = st.string("path", "var/uploads")
    if not path.strip():
        st.problem("path", "must not be empty")
    if base_dir is not None and not Path(path).is_absolute():
        path = str((base_dir / path).resolve())
    storage = StorageConfig(
        path=path,
        max_upload_bytes=st.integer("max_upload_bytes", 15 * 1024 * 1024, minimum=1024),
        max_pixels=st.integer("max_pixels", 40_000_000, minimum=10_000),
    )
    if storage.max_pixels > PILLOW_MAX_PIXELS:
        st.problem(
            "max_pixels",
            f"must be at most {PILLOW_MAX_PIXELS} (Pillow refuses larger images as "
            "decompression bombs)",
        )
    st.finish()
    return storage


def _moved(t: _Table, name: str, new_key: str) -> None:
    """A key of an earlier release that another one replaced: named, not silently ignored."""
    if name in t.data:
        t.seen.add(name)
        t.problem(name, f"replaced by {new_key} (one setting for everything behind the proxy)")


def _resolve_sqlite_path(url: str, base_dir: Path | None) -> str:
    """Relative SQLite paths are relative to the config file, not to wherever we were started."""
    prefix = "sqlite+aiosqlite:///"
    if base_dir is None or not url.startswith(prefix):
        return url
    path = url[len(prefix) :]
    if path.startswith("/") or path == ":memory:" or not path:
        return url
    return prefix + str((base_dir / path).resolve())


def load(path: str | os.PathLike[str]) -> Settings:
    p = Path(path)
    source = str(path)
    try:
        raw = p.read_bytes()
    except FileNotFoundError:
        raise ConfigError(source, "", "file not found") from None
    except OSError as exc:
        raise ConfigError(source, "", f"cannot read: {exc.strerror}") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(source, "", "is not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(source, "", f"TOML syntax error: {exc}") from None
    return parse(data, source, p.resolve().parent)


def iter_secret_env_names(path: str | os.PathLike[str]) -> Iterator[str]:
    """Every environment variable the file refers to (used by `dangol demo`)."""
    data = tomllib.loads(Path(path).read_text("utf-8"))

    def walk(node: Any) -> Iterator[str]:
        if isinstance(node, dict):
            for k, v in node.items():
                if k.endswith("_env") and isinstance(v, str):
                    yield v
                else:
                    yield from walk(v)
        elif isinstance(node, list):
            for item in node:
                yield from walk(item)

    yield from walk(data)
