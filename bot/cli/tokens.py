"""A shop's API tokens from the terminal: `dangol token create` (the secret printed once,
with the calendar's address for a calendar token), `dangol token list` and
`dangol token revoke`.
"""

from __future__ import annotations

import argparse
import asyncio
from datetime import datetime

from bot.calendar_feed import calendar_url
from bot.cli.settings import CliError, load_settings, open_database
from core.api_tokens import (
    NewToken,
    TokenError,
    TokenNotFound,
    TokenView,
    create,
    list_tokens,
    revoke,
)
from core.config import Settings
from core.shops import sync_shops

ACTOR = "cli"
ROW = "{:>4}  {:<12} {:<8} {:<10} {:<16}  {:<16}  {}  {}"  # `token list`, one token a line


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """`dangol token create | list | revoke`."""
    token = sub.add_parser("token", help="API and calendar tokens")
    token_sub = token.add_subparsers(required=True, metavar="ACTION")
    make = token_sub.add_parser(
        "create", help="make a token for the jobs API (or --calendar); prints it once"
    )
    make.add_argument("--config", required=True)
    make.add_argument("--shop", required=True, help="shop slug")
    make.add_argument("--name", required=True, help="what it is for, e.g. 예약 페이지")
    make.add_argument(
        "--calendar", action="store_true", help="a calendar feed token (ICS) instead of an API one"
    )
    make.set_defaults(run=cmd_token_create)
    listing = token_sub.add_parser("list", help="every token, revoked ones too (never the secret)")
    listing.add_argument("--config", required=True)
    listing.add_argument("--shop", help="only this shop's")
    listing.set_defaults(run=cmd_token_list)
    drop = token_sub.add_parser("revoke", help="stop a token working, at once")
    drop.add_argument("--config", required=True)
    drop.add_argument("id", type=int, help="the token's id (dangol token list)")
    drop.set_defaults(run=cmd_token_revoke)


def cmd_token_create(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    shop = settings.shop(args.shop)
    if shop is None:
        raise CliError(f"no shop {args.shop!r} in {args.config}")
    scope = "calendar" if args.calendar else "api"

    async def run() -> NewToken:
        db = await open_database(settings)
        try:
            now = args.clock.now()
            ids = await db.write(sync_shops(settings, now))
            made: NewToken = await db.write(create(ids[shop.slug], scope, args.name, ACTOR, now))
            return made
        finally:
            await db.close()

    try:
        made = asyncio.run(run())
    except TokenError as exc:
        raise CliError(str(exc)) from None
    print(f"{scope} token {made.id} for {shop.name} ({made.name}): {made.secret}")
    if scope == "calendar":
        print(
            f"subscribe your calendar to: {calendar_url(settings.server.public_url, made.secret)}"
        )
    else:
        print("send it as the header  Authorization: Bearer <token>")
    stop = f"dangol token revoke --config {args.config} {made.id}"
    print(f"the token is shown only this once; `{stop}` stops it")
    return 0


def _when(at: datetime | None, settings: Settings, slug: str) -> str:
    if at is None:
        return "-"
    shop = settings.shop(slug)
    zone = shop.timezone if shop is not None else None
    return at.astimezone(zone).strftime("%Y-%m-%d %H:%M")


def cmd_token_list(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    only = None
    if args.shop is not None:
        only = settings.shop(args.shop)
        if only is None:
            raise CliError(f"no shop {args.shop!r} in {args.config}")

    async def run() -> tuple[dict[str, int], list[TokenView]]:
        db = await open_database(settings)
        try:
            ids = await db.write(sync_shops(settings, args.clock.now()))
            async with db.read() as conn:
                tokens = await list_tokens(conn, None if only is None else ids[only.slug])
            return ids, tokens
        finally:
            await db.close()

    ids, tokens = asyncio.run(run())
    slugs = {shop_id: slug for slug, shop_id in ids.items()}
    if not tokens:
        print("no tokens yet: `dangol token create --config … --shop … --name …` makes one")
        return 0
    print(ROW.format("id", "shop", "scope", "token", "created", "last used", "state", "name"))
    for t in tokens:
        slug = slugs.get(t.shop_id, "?")
        state = "active" if t.active else f"revoked {_when(t.revoked_at, settings, slug)}"
        print(
            ROW.format(
                t.id,
                slug,
                t.scope,
                t.masked,
                _when(t.created_at, settings, slug),
                _when(t.last_used_at, settings, slug),
                state,
                t.name,
            )
        )
    return 0


def cmd_token_revoke(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)

    async def run() -> bool:
        db = await open_database(settings)
        try:
            done: bool = await db.write(revoke(args.id, ACTOR, args.clock.now()))
            return done
        finally:
            await db.close()

    try:
        revoked = asyncio.run(run())
    except TokenNotFound:
        raise CliError(f"no token {args.id} (`dangol token list` shows them)") from None
    print(
        f"token {args.id} {'revoked: it stops working now' if revoked else 'was already revoked'}"
    )
    return 0
