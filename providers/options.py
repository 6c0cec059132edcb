"""A provider's options: what its `[providers.<name>]` table may hold, checked once with
every wrong key named; and secrets kept out of what is printed."""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

_SECRET_WORDS = ("secret", "token", "key", "password")


def is_secret_option(key: str) -> bool:
    k = key.lower()
    return any(word in k for word in _SECRET_WORDS)


def masked_options(
    options: Mapping[str, Any], secret_keys: frozenset[str] = frozenset()
) -> dict[str, Any]:
    """A copy of `options` safe to print: secret-looking values become '********'."""
    return {
        k: "********" if (k in secret_keys or is_secret_option(k)) else v
        for k, v in options.items()
    }


class ProviderConfigError(ValueError):
    """A provider's options are wrong; the message names the key."""


@dataclass(frozen=True)
class Option:
    """One key a provider accepts in its `[providers.<name>]` table.

    A `secret` option may instead be given as `<key>_env`, naming the environment variable
    that holds it — the config file never has to contain the secret itself.
    """

    kind: type | tuple[type, ...] = str
    required: bool = False
    default: Any = None
    secret: bool = False
    choices: tuple[Any, ...] | None = None
    minimum: float | None = None
    help: str = ""


def validate_options(
    provider: str,
    spec: Mapping[str, Option],
    options: Mapping[str, Any],
    environ: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Check `options` against `spec`; return them complete (defaults filled, env resolved).

    Every wrong option is named, one line each in the ProviderConfigError, so check-config
    shows them all at once.
    """
    env = os.environ if environ is None else environ
    problems: list[str] = []

    def error(key: str, problem: str) -> None:
        problems.append(f"providers.{provider}.{key}: {problem}")

    out: dict[str, Any] = {}
    given = dict(options)
    misspelt: set[str] = set()  # "did you mean" keys: their "is required" would repeat it
    for key in given:
        base = key.removesuffix("_env")
        if key in spec or (key != base and base in spec and spec[base].secret):
            continue
        hint = difflib.get_close_matches(key, sorted(spec), n=1)
        tip = f" (did you mean {hint[0]!r}?)" if hint else ""
        misspelt.update(hint)
        error(key, f"unknown option{tip}")

    for key, opt in spec.items():
        env_key = f"{key}_env"
        if opt.secret and env_key in given:
            if key in given:
                error(key, f"give either {key} or {env_key}, not both")
                continue
            var = given[env_key]
            if not isinstance(var, str) or not var:
                error(env_key, "expected the name of an environment variable")
            elif not env.get(var):
                error(env_key, f"environment variable {var} is not set")
            else:
                out[key] = env[var]
            continue
        if key not in given:
            if opt.required and key not in misspelt:
                error(key, "is required but missing")
            out[key] = opt.default
            continue
        value = given[key]
        kinds = opt.kind if isinstance(opt.kind, tuple) else (opt.kind,)
        if float in kinds and int not in kinds:
            kinds = (*kinds, int)
        if (isinstance(value, bool) and bool not in kinds) or not isinstance(value, kinds):
            names = " or ".join(k.__name__ for k in kinds)
            shown = "********" if opt.secret or is_secret_option(key) else repr(value)
            error(key, f"expected {names}, got {shown}")
        elif opt.choices is not None and value not in opt.choices:
            error(key, f"must be one of {', '.join(map(repr, opt.choices))}")
        elif opt.minimum is not None and isinstance(value, int | float) and value < opt.minimum:
            error(key, f"must be at least {opt.minimum}")
        out[key] = value
    if problems:
        raise ProviderConfigError("\n".join(problems))
    return out
