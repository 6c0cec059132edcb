"""Opening hours and closures: `[shops.hours]` and `[[shops.closures]]`."""

from __future__ import annotations

import re
from dataclasses import dataclass, fields
from datetime import date, time
from typing import Annotated, Any, ClassVar

from pydantic import (
    AfterValidator,
    BeforeValidator,
    ConfigDict,
    PlainValidator,
    Strict,
    TypeAdapter,
)

from core.config.errors import fail, problem
from core.config.values import Text

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True)
class OpeningHours:
    """One day's opening, from `opens` on that day. A `closes` at or before `opens` is on
    the next day: "22:00-02:00" runs past midnight, "00:00-24:00" (closes 00:00) all day."""

    opens: time
    closes: time

    @property
    def overnight(self) -> bool:
        """Whether it closes on the next day (at midnight included)."""
        return self.closes <= self.opens

    @property
    def around_the_clock(self) -> bool:
        return self.opens == self.closes == time(0)

    def label(self) -> str:
        """As a customer reads it: "09:00~18:00", "22:00~02:00", "24시간"."""
        if self.around_the_clock:
            return "24시간"
        closes = "24:00" if self.closes == time(0) else f"{self.closes:%H:%M}"
        return f"{self.opens:%H:%M}~{closes}"


def opening(value: Any) -> OpeningHours | None:
    """ "09:00-18:00" → its opening; "closed" → None."""
    if not isinstance(value, str):
        raise problem(f"expected a string, got {value!r}")
    if value.strip().lower() == "closed":
        return None
    m = re.fullmatch(r"\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*", value)
    if not m:
        raise problem(f'expected "HH:MM-HH:MM" or "closed", got {value!r}')
    h1, m1, h2, m2 = (int(x) for x in m.groups())
    if (h2, m2) == (24, 0):  # the end of the day, as shop signs write it
        h2 = 0
    try:
        opens, closes = time(h1, m1), time(h2, m2)
    except ValueError:
        raise problem(f"not a valid time range: {value!r}") from None
    if opens == closes and opens != time(0):
        raise problem(
            f'opens and closes at the same time: {value!r} (open all day is "00:00-24:00")'
        )
    # A closing time at or before the opening time is on the next day (a night shop).
    return OpeningHours(opens, closes)


Opening = Annotated[OpeningHours | None, PlainValidator(opening)]


@dataclass(frozen=True)
class WeekTable:
    """`[shops.hours]` as written; `closed_on_public_holidays` is read into the shop."""

    __pydantic_config__: ClassVar[ConfigDict] = ConfigDict(extra="forbid")

    mon: Opening
    tue: Opening
    wed: Opening
    thu: Opening
    fri: Opening
    sat: Opening
    sun: Opening
    closed_on_public_holidays: Any = None


_WEEK = TypeAdapter(WeekTable)


def week(value: Any) -> tuple[OpeningHours | None, ...]:
    """The table's openings, Monday first (None: closed)."""
    if not isinstance(value, dict):
        raise problem(f"expected a table, got {value!r}")
    table = _WEEK.validate_python(value)
    return tuple(getattr(table, f.name) for f in fields(WeekTable)[: len(WEEKDAYS)])


def _end_is_start(value: Any) -> Any:
    """A closure of one day need not write its end (a wrong start is one line, not two)."""
    if isinstance(value, dict) and "end" not in value:
        start = value.get("start")
        return {**value, "end": start if isinstance(start, date) else date.min}
    return value


def _not_backwards(closure: Closure) -> Closure:
    if closure.end < closure.start:
        fail((("end",), "must not be before start", closure.end))
    return closure


Day = Annotated[date, Strict()]


@dataclass(frozen=True)
class Closure:
    start: Day
    end: Day
    reason: Text = "휴무"


ClosureEntry = Annotated[Closure, BeforeValidator(_end_is_start), AfterValidator(_not_backwards)]
