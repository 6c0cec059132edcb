"""Reading the file: TOML → `Settings`, or `ConfigErrors` naming every mistake in it."""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter, ValidationError

from core.config.errors import ConfigError, ConfigErrors, errors_of, place_in_file
from core.config.schema import Settings
from providers.registry import default_registry

_SETTINGS = TypeAdapter(Settings)


def load(path: str | os.PathLike[str]) -> Settings:
    p = Path(path)
    source = str(path)
    try:
        raw = p.read_bytes()
    except FileNotFoundError:
        raise ConfigError(source, "", "file not found") from None
    except OSError as exc:
        raise ConfigError(source, "", f"cannot read: {exc.strerror}") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(source, "", "is not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(source, "", f"TOML syntax error: {exc}") from None
    return parse(data, source, p.resolve().parent)


# Keys of earlier releases that another key replaced: named, not silently ignored.
MOVED = {
    ("server", "trust_forwarded"): "[server] trust_proxy",
    ("console", "trust_proxy"): "[server] trust_proxy",
}


def parse(data: Mapping[str, Any], source: str, base_dir: Path | None = None) -> Settings:
    """The settings, or `ConfigErrors` naming every mistake in the file, in file order."""
    problems: list[ConfigError] = []
    fields = dict(data)
    if "source" in fields:  # ours, not the file's
        problems.append(ConfigError(source, "source", "unknown key"))
        del fields["source"]
    for (section, key), new_key in MOVED.items():
        table = fields.get(section)
        if isinstance(table, dict) and key in table:
            why = f"replaced by {new_key} (one setting for everything behind the proxy)"
            problems.append(ConfigError(source, f"{section}.{key}", why))
            fields[section] = {k: v for k, v in table.items() if k != key}
    fields["providers"], found = _providers(fields.get("providers", {}), source)
    problems += found
    context = {"providers": set(fields["providers"]), "base_dir": base_dir}
    settings = None
    try:
        settings = _SETTINGS.validate_python(fields, context=context)
    except ValidationError as exc:
        problems += errors_of(exc, source, Settings)
    if problems or settings is None:
        raise ConfigErrors(sorted(problems, key=lambda e: place_in_file(data, e.key)))
    return dataclasses.replace(settings, source=source)


def _providers(raw: Any, source: str) -> tuple[dict[str, Mapping[str, Any]], list[ConfigError]]:
    """`[providers.*]`: each table's options. Built once here by the registry, thrown
    away: a wrong option or a missing secret is a config error now (check-config, serve's
    first second), not a failure at the first send."""
    if not isinstance(raw, dict):
        return {"console": {}}, [ConfigError(source, "providers", f"expected a table, got {raw!r}")]
    problems = [
        ConfigError(source, f"providers.{name}", f"expected a table, got {options!r}")
        for name, options in raw.items()
        if not isinstance(options, dict)
    ]
    # One that is not a table is named above; a shop may still name it.
    options = {name: dict(o) if isinstance(o, dict) else {} for name, o in raw.items()}
    providers: dict[str, Mapping[str, Any]] = {"console": {}, **options}
    checked = {n: o for n, o in providers.items() if n not in raw or isinstance(raw[n], dict)}
    for line in default_registry.problems(checked):  # "providers.<name>.<key>: <problem>"
        key, _, problem = line.partition(": ")
        problems.append(ConfigError(source, key, problem))
    return providers, problems


def iter_secret_env_names(path: str | os.PathLike[str]) -> Iterator[str]:
    """Every environment variable the file refers to (used by `dangol demo`)."""
    data = tomllib.loads(Path(path).read_text("utf-8"))

    def walk(node: Any) -> Iterator[str]:
        if isinstance(node, dict):
            for k, v in node.items():
                if k.endswith("_env") and isinstance(v, str):
                    yield v
                else:
                    yield from walk(v)
        elif isinstance(node, list):
            for item in node:
                yield from walk(item)

    yield from walk(data)
