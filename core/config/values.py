"""The kinds of value the file holds, each checked the same way wherever it is used.

TOML already has types, so nothing is converted: "8080" is not a port, `1` is not `true`.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Annotated, Any, Literal, TypeVar, get_args

from pydantic import AfterValidator, BeforeValidator, Field, PlainValidator, Strict

from core.config.errors import problem

T = TypeVar("T")


class Secret:
    """A secret value that never shows itself in repr, str or logs."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


def _not_blank(value: str) -> str:
    if not value.strip():
        raise problem("must not be empty")
    return value


Flag = Annotated[bool, Strict()]
Text = Annotated[str, Strict()]
# A required name, label or text: an empty one is as good as missing.
Name = Annotated[str, Strict(), AfterValidator(_not_blank)]


def whole(minimum: int) -> Any:
    """A whole number of at least `minimum` (written `Annotated[int, whole(1)]`)."""
    return Field(ge=minimum, strict=True)


# Durations, rates and sizes: any number above zero (an int is a float here).
Positive = Annotated[float, Strict(), Field(gt=0)]


def _list_of_strings(value: Any) -> Any:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise problem(f"expected a list of strings, got {value!r}")
    return value


Names = Annotated[tuple[str, ...], BeforeValidator(_list_of_strings)]


def _array_of_tables(value: Any) -> Any:
    if not isinstance(value, list | tuple):
        raise problem(f"expected an array of tables ([[...]]), got {value!r}")
    return value


# `[[shops]]`, `[[shops.faq]]`: a TOML array of tables.
Tables = Annotated[tuple[T, ...], BeforeValidator(_array_of_tables)]


def one_of(choices: Any) -> BeforeValidator:
    """The value must be one of a Literal's choices, said as the file would write them."""
    options: tuple[str, ...] = get_args(choices)

    def check(value: Any) -> Any:
        if value not in options or not isinstance(value, str):
            raise problem(f"must be one of {', '.join(options)}; got {value!r}")
        return value

    return BeforeValidator(check)


def _secret_from_env(value: Any) -> Secret:
    if not isinstance(value, str):
        raise problem(f"expected a string, got {value!r}")
    _not_blank(value)
    secret = os.environ.get(value)
    if not secret:
        raise problem(f"environment variable {value} is not set")
    return Secret(secret)


def from_env(name: str) -> Any:
    """The file names the environment variable that holds the secret: `<name>_env`."""
    return Field(validation_alias=f"{name}_env")


# Written `Annotated[SecretFromEnv, from_env("skill_secret")]`.
SecretFromEnv = Annotated[Secret, PlainValidator(_secret_from_env)]


def check(rule: Callable[[T], str | None]) -> AfterValidator:
    """A rule of our own on a value that passed its type: the problem, or None if fine."""

    def apply(value: T) -> T:
        if (found := rule(value)) is not None:
            raise problem(found)
        return value

    return AfterValidator(apply)


Sync = Literal["FULL", "NORMAL"]
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR"]
LogFormat = Literal["text", "json"]
