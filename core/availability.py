"""The honest wait: when will the owner answer?

Pure functions of the shop's configuration, the owner's status and `now` (an aware
datetime the caller takes from the injected clock). Opening hours, closures and public
holidays are read in the shop's local time; every datetime handed back is aware UTC.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from functools import lru_cache
from typing import Literal

import holidays

from core.config import ShopConfig

# Long enough for any real run of closed days (a month-long closure, 설날 + a weekend),
# short enough that a shop configured as never open fails fast instead of looping.
SEARCH_DAYS = 400
# A run of consecutive public holidays is never anywhere near this long; the bound only
# keeps the walk finite whatever the holiday data says.
_MAX_HOLIDAY_RUN = 31

_SUBSTITUTE = " 대체 휴일"
# Names the holidays package uses that read oddly to a customer.
_DISPLAY_NAMES = {"신정연휴": "신정"}
# Every day of these runs is shown under one name ("추석 전날", "추석", "추석 대체 휴일"…).
_SEASONS = ("설날", "추석")


@dataclass(frozen=True)
class OwnerState:
    status: Literal["available", "on_site", "off"]
    busy_until: datetime | None = None  # aware UTC; meaningful for on_site


@dataclass(frozen=True)
class Availability:
    kind: Literal["open", "owner_busy", "owner_off", "closed", "holiday", "closure"]
    reply_from: datetime  # aware UTC: the earliest time the owner is expected to answer
    reason: str | None  # holiday/closure display name, e.g. "추석 연휴", "연말 휴무"
    period: tuple[date, date] | None  # first/last local day of that holiday/closure run
    median_reply: timedelta | None  # recent median first-response time, passed through
    target: timedelta  # the shop's reply target


def assess(
    shop: ShopConfig,
    owner: OwnerState,
    now: datetime,
    median_reply: timedelta | None = None,
) -> Availability:
    """What to tell a customer who writes at `now`: why the owner may not answer, and when."""
    _require_aware(now, "now")
    now = now.astimezone(UTC)
    target = timedelta(minutes=shop.reply_target_minutes)
    today = now.astimezone(shop.timezone).date()

    def result(
        kind: Literal["open", "owner_busy", "owner_off", "closed", "holiday", "closure"],
        reply_from: datetime,
        reason: str | None = None,
        period: tuple[date, date] | None = None,
    ) -> Availability:
        return Availability(kind, reply_from, reason, period, median_reply, target)

    if not is_open_at(shop, now):
        # Open includes the small hours after an evening opening, even on a holiday.
        special = _special_closure(shop, today)
        if special is not None:
            kind, reason, period = special
            return result(kind, next_opening(shop, now), reason, period)
        return result("closed", next_opening(shop, now))

    if owner.status == "off":
        # The owner took today off: the first answer comes on a later day, not this evening
        # (nor after midnight in tonight's opening of a shop open late).
        tomorrow = datetime.combine(today + timedelta(days=1), time(0), tzinfo=shop.timezone)
        opening = _opening_at(shop, now.astimezone(shop.timezone))
        assert opening is not None  # open: checked above
        return result("owner_off", next_opening(shop, max(tomorrow, opening[1])))
    if owner.status == "on_site" and owner.busy_until is not None:
        _require_aware(owner.busy_until, "busy_until")
        busy_until = owner.busy_until.astimezone(UTC)
        if busy_until > now:
            if is_open_at(shop, busy_until):
                return result("owner_busy", busy_until)
            return result("owner_busy", next_opening(shop, busy_until))
    return result("open", now)


def is_open_at(shop: ShopConfig, moment: datetime) -> bool:
    """Whether the shop is open at `moment` (aware): opening hours, closures and holidays."""
    _require_aware(moment, "moment")
    return _opening_at(shop, moment.astimezone(shop.timezone)) is not None


def next_opening(shop: ShopConfig, after: datetime) -> datetime:
    """The first moment at or after `after` (aware) when the shop is open, as aware UTC.

    Raises ValueError when the shop does not open within SEARCH_DAYS days.
    """
    _require_aware(after, "after")
    local = after.astimezone(shop.timezone)
    # From yesterday: its opening may run past midnight into today.
    for offset in range(-1, SEARCH_DAYS):
        span = _opening(shop, local.date() + timedelta(days=offset))
        if span is not None and local < span[1]:
            return max(local, span[0]).astimezone(UTC)
    raise ValueError(
        f"shop {shop.slug!r} does not open within {SEARCH_DAYS} days after {after.isoformat()}"
    )


def open_until(shop: ShopConfig, moment: datetime) -> datetime | None:
    """When the shop, open at `moment` (aware), next closes (aware UTC); None when it is
    closed at `moment` or open around the clock for the whole week ahead. Openings that
    follow on without a break ("00:00-24:00" day after day) count as one."""
    _require_aware(moment, "moment")
    local = moment.astimezone(shop.timezone)
    span = _opening_at(shop, local)
    if span is None:
        return None
    closes = span[1]
    for _ in range(7):
        following = _opening(shop, closes.date())
        if following is None or following[0] != closes:
            return closes.astimezone(UTC)
        closes = following[1]
    return None


def busy_until(hhmm: str, now: datetime, tz: tzinfo) -> datetime:
    """The owner's "on site until HH:MM" (local) as an aware datetime: the next time the
    clock shows HH:MM — today, or tomorrow when it has already passed today (an owner at a
    night job sets 01:00 at 23:00). Callers say which day it became. ValueError if it is
    not a time."""
    match = re.fullmatch(r"\s*(\d{1,2}):(\d{2})\s*", hhmm)
    try:
        wanted = time(int(match[1]), int(match[2])) if match else None
    except ValueError:  # 24:00, 15:60
        wanted = None
    if wanted is None:
        raise ValueError(f"expected a time HH:MM (00:00-23:59), got {hhmm!r}")
    local_now = now.astimezone(tz)
    candidate = datetime.combine(local_now.date(), wanted, tzinfo=tz)
    if candidate <= local_now:
        candidate = datetime.combine(local_now.date() + timedelta(days=1), wanted, tzinfo=tz)
    return candidate.astimezone(UTC)


def closed_reason(shop: ShopConfig, day: date) -> tuple[str, tuple[date, date]] | None:
    """The closure or public holiday that closes the shop on `day` (local), with its run."""
    special = _special_closure(shop, day)
    return None if special is None else (special[1], special[2])


def upcoming_closures(
    shop: ShopConfig, today: date, days: int = 14
) -> list[tuple[str, tuple[date, date]]]:
    """Closures and holidays touching today … today+days, first first.

    Runs that fall only on weekdays the shop is closed anyway are left out: they tell the
    customer nothing.
    """
    found: list[tuple[str, tuple[date, date]]] = []
    for offset in range(days + 1):
        reason = closed_reason(shop, today + timedelta(days=offset))
        if reason is None or reason in found:
            continue
        first, last = reason[1]
        span = (first + timedelta(days=i) for i in range((last - first).days + 1))
        if any(shop.hours[d.weekday()] is not None for d in span):
            found.append(reason)
    return found


# --------------------------------------------------------------------------- internals


def _require_aware(moment: datetime, name: str) -> None:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{name} must be a timezone-aware datetime, got {moment!r}")


def _opening(shop: ShopConfig, day: date) -> tuple[datetime, datetime] | None:
    """The opening that starts on `day` (local), as aware local datetimes, if there is one.
    A closure or holiday on `day` cancels it — all of it, past midnight too; an opening
    that starts the evening before a holiday runs to its end."""
    hours = shop.hours[day.weekday()]
    if hours is None or _special_closure(shop, day) is not None:
        return None
    tz = shop.timezone
    closing_day = day + timedelta(days=1) if hours.overnight else day
    return (
        datetime.combine(day, hours.opens, tzinfo=tz),
        datetime.combine(closing_day, hours.closes, tzinfo=tz),
    )


def _opening_at(shop: ShopConfig, local: datetime) -> tuple[datetime, datetime] | None:
    """The opening `local` falls in: today's, or yesterday's running past midnight."""
    for day in (local.date(), local.date() - timedelta(days=1)):
        span = _opening(shop, day)
        if span is not None and span[0] <= local < span[1]:
            return span
    return None


def _special_closure(
    shop: ShopConfig, day: date
) -> tuple[Literal["closure", "holiday"], str, tuple[date, date]] | None:
    # A shop's own closure wins: the owner's words ("연말 휴무") beat the calendar's.
    for closure in shop.closures:
        if closure.start <= day <= closure.end:
            return "closure", closure.reason, (closure.start, closure.end)
    if shop.closed_on_public_holidays and _holiday_names(day):
        name, run = _holiday_run(day)
        return "holiday", name, run
    return None


@lru_cache(maxsize=32)
def _holiday_calendar(year: int) -> dict[date, tuple[str, ...]]:
    calendar = holidays.country_holidays("KR", years=year, language="ko")
    return {day: tuple(calendar.get_list(day)) for day in calendar}


def _holiday_names(day: date) -> tuple[str, ...]:
    return _holiday_calendar(day.year).get(day, ())


@lru_cache(maxsize=1024)
def _holiday_run(day: date) -> tuple[str, tuple[date, date]]:
    """The display name and first/last day of the run of public holidays containing `day`."""
    one = timedelta(days=1)
    first = last = day
    while _holiday_names(first - one) and (day - first).days < _MAX_HOLIDAY_RUN:
        first -= one
    while _holiday_names(last + one) and (last - day).days < _MAX_HOLIDAY_RUN:
        last += one

    names: list[str] = []
    current = first
    while current <= last:
        names.extend(n for n in _holiday_names(current) if n not in names)
        current += one
    return _run_name(names, single_day=first == last), (first, last)


def _run_name(names: list[str], *, single_day: bool) -> str:
    for season in _SEASONS:
        if any(n.startswith(season) for n in names):
            return f"{season} 연휴"
    if single_day:
        return "·".join(_display_name(n) for n in names)
    # 삼일절 (Sunday) + 삼일절 대체 휴일 (Monday) → "삼일절 연휴"
    bases: list[str] = []
    for n in names:
        base = _DISPLAY_NAMES.get(n, n).removesuffix(_SUBSTITUTE)
        if base not in bases:
            bases.append(base)
    return "·".join(bases) + " 연휴"


def _display_name(name: str) -> str:
    name = _DISPLAY_NAMES.get(name, name)
    if name.endswith(_SUBSTITUTE):
        return name.removesuffix(_SUBSTITUTE) + " 대체공휴일"
    return name
