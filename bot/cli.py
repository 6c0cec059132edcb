"""The `dangol` command: serve, demo, init, db upgrade, backup, check-config, owner-status,
user.

Mistakes an installer can make (a bad config, a missing secret, an unreachable database)
end in one line per mistake that says what to fix, never in a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import os
import re
import secrets
import sys
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import aiohttp
import sqlalchemy as sa
from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.web_log import AccessLogger

from bot import logs
from bot.accounts import (
    AccountError,
    add_user,
    check_display_name,
    check_username,
    ensure_owner,
    new_password,
    normalize_username,
    reset_password,
)
from bot.backup import BackupError, make_backup
from bot.console.saved_replies import seed_demo_replies
from bot.demo import config_shown, demo_frame, demo_settings
from core import config as config_mod
from core.availability import busy_until
from core.clock import Clock, SystemClock
from core.config import ConfigError, Settings, ShopConfig
from core.db import Database, SchemaOutOfDate, check_schema, upgrade
from core.models import OutboxItem
from core.outbox import OutboxRequest, enqueue
from core.phone import to_e164
from core.shops import OWNER_STATUSES, set_owner_status, sync_shops
from providers.base import mask_phone
from providers.registry import Providers
from scheduler.dispatch import Dispatcher

REPO_ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = REPO_ROOT / "config.example.toml"


class CliError(Exception):
    """Something the person at the terminal can fix; printed as one line."""


def main(argv: Sequence[str] | None = None, clock: Clock | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    args.clock = clock or SystemClock()
    try:
        result: int = args.run(args)
        return result
    except ConfigError as exc:
        for error in exc.errors:  # every mistake in the file, one line each
            print(f"dangol: config error: {error}", file=sys.stderr)
        return 2
    except (CliError, SchemaOutOfDate) as exc:
        print(f"dangol: {exc}", file=sys.stderr)
        return 1
    except (OSError, sa.exc.OperationalError, sa.exc.InterfaceError) as exc:
        print(f"dangol: cannot reach the database or a file: {_one_line(exc)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def _one_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc)
    return text.splitlines()[0] if text else type(exc).__name__


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="dangol", description="단골 — KakaoTalk/SMS bot for small shops"
    )
    sub = p.add_subparsers(required=True, metavar="COMMAND")

    serve = sub.add_parser("serve", help="run the server")
    serve.add_argument("--config", required=True, help="path to config.toml")
    serve.set_defaults(run=cmd_serve)

    demo = sub.add_parser(
        "demo", help="run with the example config, SQLite and the console provider"
    )
    demo.add_argument("--config", default=str(EXAMPLE), help="default: config.example.toml")
    demo.add_argument("--port", type=int, help="override server.port")
    demo.set_defaults(run=cmd_demo)

    init = sub.add_parser(
        "init", help="write a config from the example, migrate, create the owner account"
    )
    init.add_argument(
        "--config", default="config.toml", help="where to write it (default: config.toml)"
    )
    init.set_defaults(run=cmd_init)

    db = sub.add_parser("db", help="database commands")
    db_sub = db.add_subparsers(required=True, metavar="ACTION")
    up = db_sub.add_parser("upgrade", help="migrate the database to this version's schema")
    up.add_argument("--config", required=True)
    up.set_defaults(run=cmd_db_upgrade)

    backup = sub.add_parser(
        "backup", help="write the database, photos and config to one .tar.gz (SQLite)"
    )
    backup.add_argument("--config", required=True)
    backup.add_argument("--to", default="backups", help="directory (default: backups)")
    backup.set_defaults(run=cmd_backup)

    check = sub.add_parser("check-config", help="validate a config file")
    check.add_argument("--config", required=True)
    check.set_defaults(run=cmd_check_config)

    status = sub.add_parser("owner-status", help="set what customers are told about the owner")
    status.add_argument("--config", required=True)
    status.add_argument("--shop", required=True, help="shop slug")
    status.add_argument("status", choices=["available", "on-site", "off"])
    status.add_argument("--until", help="HH:MM, local time (with on-site)")
    status.set_defaults(run=cmd_owner_status)

    test = sub.add_parser(
        "send-test", help="send one text through a provider now, to check its settings"
    )
    test.add_argument("--config", required=True)
    test.add_argument("--shop", required=True, help="shop slug")
    test.add_argument(
        "--provider", help="default: the provider that notifies the owner (notify_via)"
    )
    test.add_argument("--to", help="phone number; default: the owner's phone")
    test.add_argument("--text", default="[dangol] 발송 시험 문자입니다.")
    test.set_defaults(run=cmd_send_test)

    user = sub.add_parser("user", help="console accounts")
    user_sub = user.add_subparsers(required=True, metavar="ACTION")
    add = user_sub.add_parser("add", help="create a console account (prints its password once)")
    add.add_argument("--config", required=True)
    add.add_argument("--shop", required=True, help="shop slug")
    add.add_argument("--username", required=True)
    add.add_argument("--role", choices=["owner", "staff"], default="staff")
    add.add_argument(
        "--display-name",
        default="",
        help="how their replies are signed (e.g. 김한빛); default: 사장님 for an owner, "
        "the username for staff",
    )
    add.set_defaults(run=cmd_user_add)
    reset = user_sub.add_parser(
        "reset-password", help="give an account a new password and sign it out everywhere"
    )
    reset.add_argument("--config", required=True)
    reset.add_argument("--username", required=True)
    reset.set_defaults(run=cmd_user_reset_password)
    return p


# --------------------------------------------------------------------------- commands


def cmd_check_config(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    shops = ", ".join(s.slug for s in settings.shops)
    engine = "SQLite" if settings.database.url.startswith("sqlite") else "PostgreSQL"
    print(
        f"{args.config}: OK — {len(settings.shops)} shop(s): {shops}; database: {engine}; "
        f"providers: {', '.join(settings.providers)}"
    )
    for warning in unheard_owners(settings):
        print(f"warning: {warning}")
    for name in unset_secrets(args.config):
        print(f"warning: {name} is not set here; `dangol serve` needs it ({HOW_TO_SET})")
    return 0


# --------------------------------------------------------------------------- secrets

# Most commands use no secret: they read the config for the database and the shops. A
# secret whose environment variable is not set stands in as this while they read it, so
# they run in any shell — as `dangol demo` invents the ones it lacks.
UNUSED_SECRET = "not-used-by-this-command"  # noqa: S105 (a placeholder, not a secret)
HOW_TO_SET = "`dangol init` prints new ones; keep them in the environment dangol runs in"


def unset_secrets(path: str | os.PathLike[str]) -> list[str]:
    """The environment variables the config names for secrets that are not set here."""
    try:
        names = list(config_mod.iter_secret_env_names(path))
    except (OSError, ValueError):  # unreadable or not TOML: load() says so
        return []
    return [name for name in dict.fromkeys(names) if not os.environ.get(name)]


def load_settings(path: str | os.PathLike[str]) -> Settings:
    """The config, for a command that uses none of its secrets."""
    missing = unset_secrets(path)
    for name in missing:
        os.environ[name] = UNUSED_SECRET
    try:
        return config_mod.load(path)
    finally:
        for name in missing:
            del os.environ[name]


def require_secrets(command: str, names: Sequence[str]) -> None:
    """Stop, naming each variable and how to set it, when `command` needs one not set."""
    missing = [name for name in names if not os.environ.get(name)]
    if missing:
        exports = " ".join(f"{name}=…" for name in missing)
        raise CliError(
            f"{command} needs the secret in {', '.join(missing)}, not set here: "
            f"`export {exports}` first ({HOW_TO_SET})"
        )


# Providers that reach nobody: "console" writes a log line, "fake" is for tests.
NOT_A_CHANNEL = frozenset({"console", "fake"})
# The example's line and the comment lines that continue it (indented past the `#`).
NOTIFY_VIA_LINE = re.compile(r"(?m)^notify_via = \[\"console\"\].*(?:\n#   .*)*")
NOTIFY_VIA_INIT = """\
# NOT A NOTIFICATION YET: "console" only writes a line in dangol's log, and the owner hears
# of no customer. Configure SOLAPI or Twilio above, then set notify_via = ["solapi"] (or
# ["twilio"]) to text `phone`; `dangol check-config` warns until then.
notify_via = ["console"]"""


def unheard_owners(settings: Settings) -> list[str]:
    """One line per shop whose owner is told of new customers by no real channel."""
    return [
        f"shop {shop.slug}: owner notices go only to the log (notify_via = "
        f'{list(shop.owner.notify_via)}) — set [shops.owner] notify_via to "solapi" or '
        f'"twilio" so the owner hears of new customers'
        for shop in settings.shops
        if not set(shop.owner.notify_via) - NOT_A_CHANNEL
    ]


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    asyncio.run(_upgrade(settings))
    print("database is up to date")
    return 0


def cmd_backup(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    now = args.clock.now().astimezone(settings.shops[0].timezone)  # the shop's clock
    try:
        made = make_backup(settings, Path(args.config), Path(args.to), now)
    except BackupError as exc:
        raise CliError(f"backup: {exc}") from None
    print(
        f"backup: {made.path} (database {made.database_bytes / 1_000_000:.1f} MB, "
        f"{made.photos} photo(s), config) — copy it off this machine"
    )
    return 0


async def _upgrade(settings: Settings) -> None:
    await upgrade(settings.database.url, search_path=settings.database.schema)


def cmd_serve(args: argparse.Namespace) -> int:
    require_secrets("serve", unset_secrets(args.config))
    settings = config_mod.load(args.config)
    _serve(settings, warnings=unheard_owners(settings))
    return 0


def _serve(
    settings: Settings,
    warnings: Sequence[str] = (),
    ready: str | None = None,
    access_log: type[AbstractAccessLogger] = AccessLogger,
) -> None:
    """Run until stopped; `ready` is printed once the server listens (the last line of
    start-up), by default "serving on …"."""
    from bot.app import create_app  # imported late: check-config should not pay for it

    logs.setup(settings.logging)
    for warning in warnings:
        logging.getLogger("dangol").warning(warning)
    app = create_app(settings)
    app.on_startup.append(_settle_garbage_collector)
    url = f"http://{settings.server.host}:{settings.server.port}"
    message = ready or f"dangol: serving on {url}"
    web.run_app(
        app,
        host=settings.server.host,
        port=settings.server.port,
        print=lambda _aiohttp_banner: print(message, flush=True),
        access_log_class=access_log,
    )


async def _settle_garbage_collector(_app: web.Application) -> None:
    """Move everything built at start-up out of the collector's sight. A full collection
    otherwise walks those long-lived objects again and again, pausing the server for tens
    of milliseconds — the largest cause of slow Kakao answers under load."""
    gc.collect()
    gc.freeze()


def cmd_demo(args: argparse.Namespace) -> int:
    path = Path(args.config)
    if not path.exists():
        raise CliError(f"{path} not found; run `make demo` from the repository root")
    for name in sorted(set(config_mod.iter_secret_env_names(path))):
        # The demo needs no real secrets: invent any that are not set, for this process only.
        os.environ.setdefault(name, secrets.token_urlsafe(24))
    settings = demo_settings(config_mod.load(path), args.port)
    passwords = asyncio.run(_prepare(settings, args.clock, demo=True))
    frame = demo_frame(settings, passwords, config_shown(path))
    _serve(settings, ready=frame, access_log=logs.ShortAccessLogger)
    return 0


def cmd_init(args: argparse.Namespace) -> int:
    target = Path(args.config)
    if target.exists():
        print(f"{target} exists; leaving it as it is")
    else:
        if not EXAMPLE.exists():
            raise CliError(f"example config not found at {EXAMPLE}")
        text = EXAMPLE.read_text("utf-8")
        text = re.sub(r"(?m)^simulator = true", "simulator = false", text)
        text = NOTIFY_VIA_LINE.sub(lambda _: NOTIFY_VIA_INIT, text)
        target.write_text(text, "utf-8")
        print(f"wrote {target} — edit the shop's name, hours, FAQ and Kakao settings")
    missing = [
        n for n in dict.fromkeys(config_mod.iter_secret_env_names(target)) if not os.environ.get(n)
    ]
    if missing:
        print("Put these secrets in the service's environment (generated now, shown once):")
        for name in missing:
            value = secrets.token_urlsafe(24)
            os.environ[name] = value
            print(f"  export {name}={value}")
    settings = config_mod.load(target)
    passwords = asyncio.run(_prepare(settings, args.clock))
    for shop in settings.shops:
        if password := passwords[shop.slug]:
            print(f"owner account for {shop.name}: username {shop.slug}  password {password}")
    for warning in unheard_owners(settings):
        print(f"warning: {warning}")
    print(f"ready: dangol serve --config {target}")
    return 0


async def _prepare(
    settings: Settings, clock: Clock, *, demo: bool = False
) -> dict[str, str | None]:
    """Migrate, create shop rows and an owner account per shop; the demo's shops also get a
    few saved replies to pick from. Returns each shop's new owner password, None where the
    account existed (its password is not known)."""
    await _upgrade(settings)
    db = _database(settings)
    await db.start()
    passwords: dict[str, str | None] = {}
    try:
        now = clock.now()
        ids = await db.write(sync_shops(settings, now))
        for shop in settings.shops:
            password = new_password()
            created = await db.write(ensure_owner(ids[shop.slug], shop.slug, password, now))
            passwords[shop.slug] = password if created else None
            if demo:
                await db.write(seed_demo_replies(ids[shop.slug], now))
    finally:
        await db.close()
    return passwords


def _database(settings: Settings) -> Database:
    cfg = settings.database
    return Database(cfg.url, sqlite_synchronous=cfg.sqlite_synchronous, search_path=cfg.schema)


def cmd_owner_status(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    shop = settings.shop(args.shop)
    if shop is None:
        raise CliError(f"no shop {args.shop!r} in {args.config}")
    status = args.status.replace("-", "_")
    assert status in OWNER_STATUSES
    now = args.clock.now()
    until = None
    said = ""
    if status == "on_site":
        if not args.until:
            raise CliError("on-site needs --until HH:MM")
        try:
            # The console's header form reads its time by the same rule.
            until = busy_until(args.until, now, shop.timezone)
        except ValueError as exc:
            raise CliError(f"--until: {exc}") from None
        local = until.astimezone(shop.timezone)
        if local.date() == now.astimezone(shop.timezone).date():
            said = f" until {local:%H:%M}"
        else:
            said = (
                f" until tomorrow ({local:%a %d %b}) {local:%H:%M} — {local:%H:%M} had already "
                f"passed today; customers are told so"
            )

    async def run() -> None:
        db = await _open_database(settings)
        try:
            ids = await db.write(sync_shops(settings, now))
            await db.write(set_owner_status(ids[shop.slug], status, until, now, actor="cli"))
        finally:
            await db.close()

    asyncio.run(run())
    print(f"{shop.name}: owner is now {args.status}{said}")
    return 0


def cmd_send_test(args: argparse.Namespace) -> int:
    """The installer's check: the same outbox and adapter as every message, run once here."""
    settings = load_settings(args.config)
    shop = settings.shop(args.shop)
    if shop is None:
        raise CliError(f"no shop {args.shop!r} in {args.config}")
    provider = args.provider or owner_channel(shop)
    if provider is None or provider not in settings.providers:
        raise CliError(
            f"no provider {provider!r} configured (providers: {', '.join(settings.providers)})"
        )
    if not args.provider:
        print(f"send-test: through {provider}, the provider that notifies {shop.name}'s owner")
    options = settings.providers[provider]
    require_secrets(
        f"send-test through {provider}",
        [v for k, v in options.items() if k.endswith("_env") and isinstance(v, str)],
    )
    try:
        phone = to_e164(args.to) if args.to else shop.owner.phone
    except ValueError as exc:
        raise CliError(f"--to: {exc}") from None
    if phone is None:
        raise CliError("no --to and no [shops.owner] phone to send to")

    async def run() -> Any:
        db = await _open_database(settings)
        clock = args.clock
        try:
            async with aiohttp.ClientSession() as http:
                # Only the one tested: another's secret may not be set in this shell.
                providers = Providers.from_config({provider: options}, http)
                await providers.start_all()
                try:
                    ids = await db.write(sync_shops(settings, clock.now()))
                    outbox_id = await db.write(
                        lambda conn: enqueue(
                            conn,
                            OutboxRequest(
                                shop_id=ids[shop.slug],
                                purpose="test",
                                provider=provider,
                                recipient={"phone": phone, "owner": phone == shop.owner.phone},
                                payload={"text": args.text},
                                idempotency_key=f"send-test:{uuid.uuid4().hex}",
                                now=clock.now(),
                            ),
                        )
                    )
                    dispatcher = Dispatcher(
                        db, providers, clock, settings.outbox, owner_id="cli-send-test"
                    )
                    await dispatcher.drain(max_rounds=1)
                    async with db.read() as conn:
                        stmt = sa.select(OutboxItem).where(OutboxItem.id == outbox_id)
                        return (await conn.execute(stmt)).one()
                finally:
                    await providers.close_all()
        finally:
            await db.close()

    row = asyncio.run(run())
    where = f"{provider} → {mask_phone(phone)}"
    if row.status == "sent":
        print(f"sent: {where} (vendor id {row.provider_ref or '-'})")
        if provider in NOT_A_CHANNEL:
            print(f"note: {provider} texts nobody, it only writes a log line")
        return 0
    raise CliError(f"{row.status}: {where}: {row.last_error or 'no answer'}")


def owner_channel(shop: ShopConfig) -> str | None:
    """The provider that notifies the owner: the first real one in notify_via, else its
    first ("console" in the demo), else the shop's SMS provider."""
    via = shop.owner.notify_via
    return next((p for p in via if p not in NOT_A_CHANNEL), via[0] if via else shop.delivery.sms)


def cmd_user_add(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    shop = settings.shop(args.shop)
    if shop is None:
        raise CliError(f"no shop {args.shop!r} in {args.config}")
    try:
        username = check_username(args.username)
        check_display_name(args.display_name)
    except AccountError as exc:
        raise CliError(str(exc)) from None
    password = new_password()

    async def run() -> None:
        db = await _open_database(settings)
        try:
            now = args.clock.now()
            ids = await db.write(sync_shops(settings, now))
            await db.write(
                add_user(
                    ids[shop.slug],
                    username,
                    password,
                    args.role,
                    now,
                    display_name=args.display_name,
                )
            )
        finally:
            await db.close()

    try:
        asyncio.run(run())
    except AccountError as exc:
        raise CliError(str(exc)) from None
    print(f"{args.role} account for {shop.name}: username {username}  password {password}")
    print("the password is shown only this once")
    return 0


def cmd_user_reset_password(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    password = new_password()

    async def run() -> None:
        db = await _open_database(settings)
        try:
            await db.write(reset_password(args.username, password, args.clock.now()))
        finally:
            await db.close()

    try:
        asyncio.run(run())
    except AccountError as exc:
        raise CliError(str(exc)) from None
    print(f"new password for {normalize_username(args.username)}: {password}")
    print("the password is shown only this once; every session of this account has ended")
    return 0


async def _open_database(settings: Settings) -> Database:
    """The database, refusing a schema this version does not expect (one line, no traceback)."""
    db = _database(settings)
    try:
        await check_schema(db)
        await db.start()
    except BaseException:
        await db.close()
        raise
    return db


if __name__ == "__main__":  # pragma: no cover
    logging.basicConfig()
    sys.exit(main())
