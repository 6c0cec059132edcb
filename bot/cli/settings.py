"""What every command starts from: the config (read without the secrets the command does not
use), the secrets a command does need, the database it opens — and CliError, how a command
stops with one line that says what to fix.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from core import config as config_mod
from core.config import Settings
from core.db import Database, check_schema, upgrade

REPO_ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = REPO_ROOT / "config.example.toml"


class CliError(Exception):
    """Something the person at the terminal can fix; printed as one line."""


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


# --------------------------------------------------------------------------- the database


async def upgrade_database(settings: Settings) -> None:
    await upgrade(settings.database.url, search_path=settings.database.schema)


def new_database(settings: Settings) -> Database:
    cfg = settings.database
    return Database(cfg.url, sqlite_synchronous=cfg.sqlite_synchronous, search_path=cfg.schema)


async def open_database(settings: Settings) -> Database:
    """The database, refusing a schema this version does not expect (one line, no traceback)."""
    db = new_database(settings)
    try:
        await check_schema(db)
        await db.start()
    except BaseException:
        await db.close()
        raise
    return db
