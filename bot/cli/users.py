"""Console accounts from the terminal: `dangol user add` and `dangol user reset-password`,
each printing the new password once.
"""

from __future__ import annotations

import argparse
import asyncio

from bot.accounts import (
    AccountError,
    add_user,
    check_display_name,
    check_username,
    new_password,
    normalize_username,
    reset_password,
)
from bot.cli.settings import CliError, load_settings, open_database
from core.shops import sync_shops


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
        db = await open_database(settings)
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
        db = await open_database(settings)
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
