"""A shop's commands from the terminal: `dangol owner-status` (what customers are told about
the owner) and `dangol send-test` (one text through a provider now, to check its settings).
"""

from __future__ import annotations

import argparse
import asyncio
import uuid
from typing import Any

import aiohttp
import sqlalchemy as sa

from bot.cli.notify_via import NOT_A_CHANNEL, owner_channel
from bot.cli.settings import CliError, load_settings, open_database, require_secrets
from core.availability import busy_until
from core.models import OutboxItem
from core.outbox import OutboxRequest, enqueue
from core.phone import to_e164
from core.shops import OWNER_STATUSES, set_owner_status, sync_shops
from providers.base import mask_phone
from providers.registry import Providers
from scheduler.dispatch import Dispatcher


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
        db = await open_database(settings)
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
        db = await open_database(settings)
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
