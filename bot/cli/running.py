"""The commands that run dangol or keep its data: `dangol serve`, `dangol demo`,
`dangol db upgrade` and `dangol backup`.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import os
import secrets
from collections.abc import Sequence
from pathlib import Path

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.web_log import AccessLogger

from bot import logs
from bot.backup import BackupError, make_backup
from bot.cli.install import prepare
from bot.cli.notify_via import unheard_owners
from bot.cli.settings import (
    CliError,
    load_settings,
    require_secrets,
    unset_secrets,
    upgrade_database,
)
from bot.demo import config_shown, demo_frame, demo_settings
from core import config as config_mod
from core.config import Settings


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    asyncio.run(upgrade_database(settings))
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
    passwords = asyncio.run(prepare(settings, args.clock, demo=True))
    frame = demo_frame(settings, passwords, config_shown(path))
    _serve(settings, ready=frame, access_log=logs.ShortAccessLogger)
    return 0
