"""Configuration errors: one line each, naming the file, the key and what is wrong.

The schema (`core.config.schema`) is checked by pydantic, which finds every problem in one
pass; `errors_of` turns its findings into our lines — in the order they are written in the
file, in the installer's words — and the checks of our own raise through `problem`/`fail`.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
import types
import typing
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, NoReturn

from pydantic import ValidationError
from pydantic_core import ErrorDetails, InitErrorDetails, PydanticCustomError


class ConfigError(Exception):
    """A configuration problem, phrased for the person editing the file."""

    def __init__(self, source: str, key: str, problem: str) -> None:
        self.source, self.key, self.problem = source, key, problem
        where = f"{source}: {key}" if key else source
        super().__init__(f"{where}: {problem}")

    @property
    def errors(self) -> tuple[ConfigError, ...]:
        """Every problem, one line each (`ConfigErrors` has several)."""
        return (self,)


class ConfigErrors(ConfigError):
    """All the problems found in one reading of the file, in file order, so an installer
    fixes them in one go. Its text is one line per problem; `source`, `key` and `problem`
    are the first one's."""

    def __init__(self, errors: Sequence[ConfigError]) -> None:
        first = errors[0]
        super().__init__(first.source, first.key, first.problem)
        self._errors = tuple(errors)
        self.args = ("\n".join(str(e) for e in self._errors),)

    @property
    def errors(self) -> tuple[ConfigError, ...]:
        return self._errors


# --------------------------------------------------------------------------- raising

Loc = tuple[str | int, ...]


def problem(text: str) -> PydanticCustomError:
    """A problem with the value being checked, in our words (raise it in a validator)."""
    return PydanticCustomError("config", "{problem}", {"problem": text})


def fail(*found: tuple[Loc, str, Any]) -> NoReturn:
    """Several problems at once, each at a key below the value being checked."""
    raise ValidationError.from_exception_data(
        "config",
        [InitErrorDetails(type=problem(text), loc=loc, input=value) for loc, text, value in found],
    )


def merged(error: ValidationError, extra: Sequence[tuple[Loc, str, Any]]) -> NoReturn:
    """pydantic's findings and ours as one error, so one run names them all."""
    lines: list[InitErrorDetails] = []
    for e in error.errors():
        if e["type"] == "config":
            lines.append(InitErrorDetails(type=problem(e["msg"]), loc=e["loc"], input=e["input"]))
        else:
            lines.append(
                InitErrorDetails(
                    type=e["type"], loc=e["loc"], input=e["input"], ctx=e.get("ctx", {})
                )
            )
    lines += [InitErrorDetails(type=problem(text), loc=loc, input=v) for loc, text, v in extra]
    raise ValidationError.from_exception_data("config", lines)


# --------------------------------------------------------------------------- reporting

_EXPECTED = {
    "int_type": "a whole number",
    "float_type": "a number",
    "bool_type": "true or false",
    "string_type": "a string",
    "date_type": "a date (YYYY-MM-DD)",
    "dataclass_type": "a table",
    "dict_type": "a table",
}


_UNKNOWN = ("unexpected_keyword_argument", "extra_forbidden")


def errors_of(failure: ValidationError, source: str, root: type) -> list[ConfigError]:
    """pydantic's findings as our lines. A misspelt key is one line ("unknown key (did
    you mean …?)"), not that and "required but missing" too."""
    found: dict[Loc, str] = {}
    misspelt: set[Loc] = set()
    for e in failure.errors():
        loc = e["loc"]
        if e["type"] in _UNKNOWN:
            hint = difflib.get_close_matches(str(loc[-1]), keys_at(root, loc[:-1]), n=1)
            found.setdefault(loc, "unknown key" + (f" (did you mean {hint[0]!r}?)" if hint else ""))
            misspelt.update((*loc[:-1], h) for h in hint)
        else:
            found.setdefault(loc, _problem(e))
    for loc in misspelt:
        if found.get(loc) == "is required but missing":
            del found[loc]
    return [ConfigError(source, key_of(loc), text) for loc, text in found.items()]


def _problem(e: ErrorDetails) -> str:
    kind, value = e["type"], e["input"]
    ctx = e.get("ctx") or {}
    if kind == "config":
        return str(ctx.get("problem", e["msg"]))
    if kind == "missing":
        return "is required but missing"
    if kind in _EXPECTED:
        return f"expected {_EXPECTED[kind]}, got {value!r}"
    if kind == "greater_than_equal":
        return f"must be at least {ctx['ge']}, got {value}"
    if kind == "greater_than":
        return f"must be greater than {ctx['gt']}, got {value}"
    if kind == "less_than_equal":
        return f"must be at most {ctx['le']}, got {value}"
    return str(e["msg"])


def key_of(loc: Loc) -> str:
    """("shops", 0, "hours", "mon") → "shops[0].hours.mon"."""
    key = ""
    for part in loc:
        key += f"[{part}]" if isinstance(part, int) else f".{part}" if key else part
    return key


@dataclasses.dataclass(frozen=True)
class WrittenAs:
    """Field metadata: in the file this field is a table of that shape (`hours`)."""

    table: type


def keys_at(root: type, loc: Loc) -> list[str]:
    """The keys the file may have in the table at `loc` (for "did you mean")."""
    kind: Any = root
    for part in loc:
        table = _table_type(kind)
        if isinstance(part, int) or table is None:
            continue
        kind = _file_keys(table).get(str(part))
    table = _table_type(kind)
    return list(_file_keys(table)) if table is not None else []


def _file_keys(table: type) -> dict[str, Any]:
    """A dataclass's keys in the file, each with its type: a field's alias (a secret's
    `<name>_env`) when it has one; a field read from another table has none here."""
    hints = typing.get_type_hints(table, include_extras=True)
    found: dict[str, Any] = {}
    for f in dataclasses.fields(table):
        if not f.metadata.get("in_file", True):
            continue
        hint = hints[f.name]
        metadata = typing.get_args(hint)[1:] if typing.get_origin(hint) is Annotated else ()
        aliases = [m.validation_alias for m in metadata if hasattr(m, "validation_alias")]
        alias = next((a for a in aliases if a is not None), f.name)
        if isinstance(alias, str):
            found[alias] = hint
    return found


def _table_type(kind: Any) -> type | None:
    """The dataclass behind Annotated[…], X | None and tuple[X, ...], if there is one."""
    while True:
        if dataclasses.is_dataclass(kind) and isinstance(kind, type):
            return kind
        origin = typing.get_origin(kind)
        if origin is Annotated:
            written = [m.table for m in typing.get_args(kind)[1:] if isinstance(m, WrittenAs)]
            kind = written[0] if written else typing.get_args(kind)[0]
        elif origin in (typing.Union, types.UnionType, tuple):
            args = [a for a in typing.get_args(kind) if a not in (type(None), Ellipsis)]
            kind = args[0] if len(args) == 1 else None
        else:
            return None


def place_in_file(data: Mapping[str, Any], key: str) -> tuple[int, ...]:
    """Where `key` ("shops[0].hours.mon") is written in the file, to sort problems by.
    TOML tables keep the file's order; a missing key sorts at the end of its table."""
    place: list[int] = []
    node: Any = data
    for part in re.findall(r"[^.\[\]]+|\[\d+\]", key):
        if part.startswith("[") and isinstance(node, list):
            index = int(part[1:-1])
            place.append(index)
            node = node[index] if index < len(node) else None
        elif isinstance(node, Mapping) and part in node:
            place.append(list(node).index(part))
            node = node[part]
        else:
            place.append(len(node) if isinstance(node, Mapping | list) else 0)
            break
    return tuple(place)
