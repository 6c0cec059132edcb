"""`templates_dir` — `[server]`'s for the whole installation, a shop's own for that shop: a
directory of message templates that shadow dangol's by path (journey/confirmation.j2,
ack.j2 …), so a shop's wording changes without touching code (core/texts.py)."""

from __future__ import annotations

import importlib.resources
from pathlib import Path
from typing import Annotated

import jinja2
import jinja2.sandbox
from pydantic import AfterValidator, ValidationInfo

from core.config.errors import problem
from core.config.values import Text


def base_dir(info: ValidationInfo) -> Path | None:
    """The config file's directory, handed in by `parse`: relative paths start there."""
    base = (info.context or {}).get("base_dir")
    return base if isinstance(base, Path) else None


def _templates_dir(path: str | None, info: ValidationInfo) -> str | None:
    """The overrides' directory, relative to the config file: it must exist, and each
    `.j2` in it must shadow one of dangol's message templates and parse — a misspelt
    name would otherwise be ignored in silence, a syntax error found only when sent."""
    if path is None:
        return None
    if not path.strip():
        raise problem("must not be empty (leave the key out to use dangol's own texts)")
    base = base_dir(info)
    folder = Path(path) if base is None or Path(path).is_absolute() else base / path
    if not folder.is_dir():
        raise problem(f"no such directory: {folder}")
    packaged = importlib.resources.files("core").joinpath("templates", "messages")
    environment = jinja2.sandbox.SandboxedEnvironment()
    for found in sorted(folder.rglob("*.j2")):
        name = found.relative_to(folder).as_posix()
        if not packaged.joinpath(*name.split("/")).is_file():
            raise problem(
                f"{name} is not one of dangol's message templates (see core/templates/messages)"
            )
        try:
            environment.parse(found.read_text("utf-8"))
        except jinja2.TemplateSyntaxError as exc:
            raise problem(f"{name}, line {exc.lineno}: {exc.message}") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise problem(f"{name}: cannot read it ({exc})") from None
    return str(folder.resolve())


TemplatesDir = Annotated[Text | None, AfterValidator(_templates_dir)]
