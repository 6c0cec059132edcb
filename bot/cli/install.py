"""An installer's first steps: `dangol init` (a config from the example, the secrets, the
migrated database, an owner account per shop) and `dangol check-config`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import secrets
from pathlib import Path

from bot.accounts import ensure_owner, new_password
from bot.cli.notify_via import unheard_owners
from bot.cli.settings import (
    EXAMPLE,
    HOW_TO_SET,
    CliError,
    load_settings,
    new_database,
    unset_secrets,
    upgrade_database,
)
from bot.console.saved_replies import seed_demo_replies
from bot.demo_jobs import seed_demo_jobs
from core import config as config_mod
from core.clock import Clock
from core.config import Settings
from core.shops import sync_shops

# The example's line and the comment lines that continue it (indented past the `#`).
NOTIFY_VIA_LINE = re.compile(r"(?m)^notify_via = \[\"console\"\].*(?:\n#   .*)*")
NOTIFY_VIA_INIT = """\
# NOT A NOTIFICATION YET: "console" only writes a line in dangol's log, and the owner hears
# of no customer. Configure SOLAPI or Twilio above, then set notify_via = ["solapi"] (or
# ["twilio"]) to text `phone`; `dangol check-config` warns until then.
notify_via = ["console"]"""


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
    passwords = asyncio.run(prepare(settings, args.clock))
    for shop in settings.shops:
        if password := passwords[shop.slug]:
            print(f"owner account for {shop.name}: username {shop.slug}  password {password}")
    for warning in unheard_owners(settings):
        print(f"warning: {warning}")
    print(f"ready: dangol serve --config {target}")
    return 0


async def prepare(settings: Settings, clock: Clock, *, demo: bool = False) -> dict[str, str | None]:
    """Migrate, create shop rows and an owner account per shop; the demo's shops also get a
    few saved replies to pick from. Returns each shop's new owner password, None where the
    account existed (its password is not known)."""
    await upgrade_database(settings)
    db = new_database(settings)
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
                await db.write(seed_demo_jobs(shop, ids[shop.slug], now))
    finally:
        await db.close()
    return passwords
