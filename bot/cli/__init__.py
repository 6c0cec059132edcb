"""The `dangol` command: serve, demo, init, db upgrade, backup, check-config, owner-status,
send-test, user, token — its arguments, and how a failure ends.

Mistakes an installer can make (a bad config, a missing secret, an unreachable database)
end in one line per mistake that says what to fix, never in a traceback. The commands
themselves are in this package's modules: `running` (serve, demo, db upgrade, backup),
`install` (init, check-config), `shop` (owner-status, send-test), `users` (user add,
reset-password), `tokens` (token create, list, revoke: it declares its own arguments), on
what `settings` and `notify_via` share.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import sqlalchemy as sa

from bot.cli.install import cmd_check_config, cmd_init
from bot.cli.running import cmd_backup, cmd_db_upgrade, cmd_demo, cmd_serve
from bot.cli.settings import EXAMPLE, REPO_ROOT, CliError, load_settings
from bot.cli.shop import cmd_owner_status, cmd_send_test
from bot.cli.tokens import add_commands as add_token_commands
from bot.cli.users import cmd_user_add, cmd_user_reset_password
from core.clock import Clock, SystemClock
from core.config import ConfigError
from core.db import SchemaOutOfDate

__all__ = ["EXAMPLE", "REPO_ROOT", "CliError", "load_settings", "main"]


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
    add_token_commands(sub)
    return p
