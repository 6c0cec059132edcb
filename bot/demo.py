"""What `dangol demo` changes in the example's settings, and the block its start-up ends with."""

from __future__ import annotations

import os
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from core.config import Settings


def demo_frame(settings: Settings, passwords: dict[str, str | None], config: str) -> str:
    """What the person who typed `make demo` needs, framed, as the last lines of start-up:
    where to go and how to log in. A restart knows no password (only its hash is kept):
    it gives the command that sets a new one."""
    url = f"http://{settings.server.host}:{settings.server.port}"
    lines = ["dangol demo is running (Ctrl-C stops it)", ""]
    if settings.server.simulator:
        lines.append(f"simulator  {url}/simulator   (talk to the shop as a customer)")
    lines.append(f"console    {url}/console/    (answer as the owner)")
    for shop in settings.shops:
        password = passwords.get(shop.slug)
        lines.append(f"username   {shop.slug}")
        if password:
            lines.append(f"password   {password}   (shown only now)")
        else:
            lines += [
                "password   set at the first start; for a new one:",
                f"  {_self_command()} user reset-password --config {config} --username {shop.slug}",
            ]
    width = max(len(line) for line in lines)
    rule = "+" + "-" * (width + 4) + "+"
    return "\n".join(["", rule, *(f"|  {line.ljust(width)}  |" for line in lines), rule])


def config_shown(path: Path) -> str:
    """The config's path as the person at the terminal would type it."""
    relative = os.path.relpath(path.resolve())
    return str(path) if relative.startswith("..") else relative


def _self_command() -> str:
    """How this terminal runs dangol: `.venv/bin/dangol` after `make demo`, else `dangol`."""
    launched = Path(sys.argv[0])
    if launched.name != "dangol":
        return "dangol"
    shown = os.path.relpath(launched.absolute())
    return "dangol" if shown.startswith("..") else shown


def demo_settings(settings: Settings, port: int | None = None) -> Settings:
    """The demo shows what the console provider would send, bodies included — a real
    install's console provider logs no body (`show_text` is false unless set)."""
    console: dict[str, Any] = {"show_text": True, **settings.providers.get("console", {})}
    if len(settings.shops) == 1:  # owner notices headed with the shop's name, not [단골]
        console.setdefault("heading", settings.shops[0].name)
    settings = replace(settings, providers={**settings.providers, "console": console})
    # The demo's customers booked by phone are reached by text: with no SMS provider set,
    # the console provider "sends" it to the terminal, so their journey can be watched.
    shops = tuple(
        s if s.delivery.sms else replace(s, delivery=replace(s.delivery, sms="console"))
        for s in settings.shops
    )
    settings = replace(settings, shops=shops)
    if port:
        settings = replace(settings, server=replace(settings.server, port=port))
    return settings
