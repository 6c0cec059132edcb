"""The job forms as typed, read into what `core.jobs` takes: pure functions, no database.

A form that does not read comes back whole, with a problem code per field; the templates
say each problem in Korean (booking.html, job.html), so nothing typed is ever lost.
Times are the shop's: "14:00" on 5 December is 14:00 in Seoul, stored as UTC.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from bot.console.layout import clean_text
from core.config import ShopConfig
from core.jobs.booking import ADDRESS_MAX, NOTES_MAX, PHASES, PRICE_MAX
from core.phone import PhoneError, to_e164

PAST_DAYS = 1  # a job may be booked for yesterday (written up afterwards), not earlier
AHEAD_DAYS = 366
REASON_MAX = 500
CAPTION_MAX = 200
NAME_MAX = 100
ETA_DEFAULT = timedelta(minutes=30)
ETA_GRACE = timedelta(minutes=5)  # "14:20" typed at 14:22 is still today's 14:20
_CLOCK = re.compile(r"(\d{1,2}):(\d{2})(?::\d{2})?")
_PRICE_NOISE = re.compile(r"[\s,원₩]")


def parse_clock(value: str) -> time | None:
    """ "14:00" (a time field's value; seconds, when a browser adds them, ignored)."""
    m = _CLOCK.fullmatch(value.strip())
    if m is None:
        return None
    hour, minute = int(m[1]), int(m[2])
    if hour > 23 or minute > 59:
        return None
    return time(hour, minute)


def parse_day(value: str) -> date | None:
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        return None


def field_of(form: Mapping[str, Any], name: str) -> str:
    value = form.get(name)
    return value if isinstance(value, str) else ""


# --------------------------------------------------------------------------- the window


@dataclass(frozen=True)
class Window:
    """An arrival window as typed: a day, a start and (perhaps empty) an end."""

    day: str
    start: str
    end: str = ""


def read_window(
    typed: Window, *, duration: timedelta, today: date, tz: ZoneInfo, problems: dict[str, str]
) -> tuple[datetime, datetime] | None:
    """The window's aware start and end; an empty end is the start plus the service's
    usual duration. Problems go in `problems` (field → code)."""
    day = parse_day(typed.day)
    if day is None:
        problems["day"] = "bad"
    elif day < today - timedelta(days=PAST_DAYS):
        problems["day"] = "past"
    elif day > today + timedelta(days=AHEAD_DAYS):
        problems["day"] = "far"
    start = parse_clock(typed.start)
    if start is None:
        problems["start"] = "bad"
    end = parse_clock(typed.end) if typed.end.strip() else None
    if typed.end.strip() and end is None:
        problems["end"] = "bad"
    elif end is not None and start is not None and end <= start:
        problems["end"] = "before_start"
    if day is None or start is None or "end" in problems or "day" in problems:
        return None
    starts_at = datetime.combine(day, start, tzinfo=tz)
    ends_at = datetime.combine(day, end, tzinfo=tz) if end is not None else starts_at + duration
    return starts_at, ends_at


# --------------------------------------------------------------------------- booking


@dataclass(frozen=True)
class BookingForm:
    """The booking form as typed (shown again as it was when something is wrong)."""

    service: str = ""
    day: str = ""
    start: str = ""
    end: str = ""
    address: str = ""
    price: str = ""
    notes: str = ""
    problems: dict[str, str] = field(default_factory=dict)
    error: str | None = None  # what core.jobs refused, in its words (Korean)

    @classmethod
    def posted(cls, form: Mapping[str, Any]) -> BookingForm:
        return cls(
            service=field_of(form, "service"),
            day=field_of(form, "day"),
            start=field_of(form, "start"),
            end=field_of(form, "end"),
            address=field_of(form, "address"),
            price=field_of(form, "price"),
            notes=field_of(form, "notes"),
        )


@dataclass(frozen=True)
class BookingInput:
    """What a booking form says, read: ready for `core.jobs.Booking`."""

    service: str
    starts_at: datetime
    ends_at: datetime
    address: str
    price_krw: int | None
    notes: str


def read_price(value: str, problems: dict[str, str]) -> int | None:
    """Won as typed ("150,000", "15000원"); empty is "to be quoted" (None)."""
    digits = _PRICE_NOISE.sub("", value)
    if not digits:
        return None
    if not digits.isdigit() or len(digits) > 12:
        problems["price"] = "bad"
        return None
    price = int(digits)
    if price > PRICE_MAX:
        problems["price"] = "too_much"
        return None
    return price


def read_booking(
    form: BookingForm, shop: ShopConfig, *, today: date, may_price: bool
) -> tuple[BookingInput | None, BookingForm]:
    """Check the booking form; returns what it says, or None and the form with its problems.
    `may_price`: whether this user may set a price (staff may not)."""
    problems: dict[str, str] = {}
    service = shop.service(form.service)
    if service is None:
        problems["service"] = "unknown"
    duration = timedelta(minutes=service.duration_minutes if service else 120)
    window = read_window(
        Window(form.day, form.start, form.end),
        duration=duration,
        today=today,
        tz=shop.timezone,
        problems=problems,
    )
    price = None
    if form.price.strip() and not may_price:
        problems["price"] = "owner_only"
    else:
        price = read_price(form.price, problems)
    address = " ".join(clean_text(form.address).split())
    if len(address) > ADDRESS_MAX:
        problems["address"] = "too_long"
    notes = clean_text(form.notes).strip()
    if len(notes) > NOTES_MAX:
        problems["notes"] = "too_long"
    cleaned = replace(form, address=address, notes=notes, problems=problems)
    if problems or window is None or service is None:
        return None, cleaned
    return BookingInput(service.key, window[0], window[1], address, price, notes), cleaned


def booking_defaults(
    shop: ShopConfig, *, today: date, address: str, service: str | None
) -> BookingForm:
    """A fresh form: tomorrow at 10:00, the customer's last address and service."""
    known = service if service and shop.service(service) else None
    first = shop.services[0].key if shop.services else ""
    return BookingForm(
        service=known or first,
        day=(today + timedelta(days=1)).isoformat(),
        start="10:00",
        address=address,
    )


# --------------------------------------------------------------------------- a job's moves


def default_eta(now: datetime, tz: ZoneInfo) -> str:
    """What 출발's field suggests: half an hour from now, on the next five minutes."""
    later = (now + ETA_DEFAULT).astimezone(tz)
    rounded = later.replace(second=0, microsecond=0) + timedelta(minutes=-later.minute % 5)
    return rounded.strftime("%H:%M")


def read_eta(value: str, now: datetime, tz: ZoneInfo) -> datetime | None:
    """The ETA typed as "14:20": today's, or tomorrow's when today's has passed (a drive
    that crosses midnight). core.jobs.depart checks it is within twelve hours."""
    clock = parse_clock(value)
    if clock is None:
        return None
    local_now = now.astimezone(tz)
    eta = datetime.combine(local_now.date(), clock, tzinfo=tz)
    if eta < local_now - ETA_GRACE:
        eta += timedelta(days=1)
    return eta


def read_reason(value: str) -> str:
    return " ".join(clean_text(value).split())[:REASON_MAX]


@dataclass(frozen=True)
class PhotoInput:
    photo_id: int
    phase: str
    caption: str


def read_photo(form: Mapping[str, Any]) -> PhotoInput | None:
    raw = field_of(form, "photo")
    phase = field_of(form, "phase")
    caption = " ".join(clean_text(field_of(form, "caption")).split())
    if not raw.isdigit() or len(raw) > 18 or phase not in PHASES or len(caption) > CAPTION_MAX:
        return None
    return PhotoInput(int(raw), phase, caption)


# --------------------------------------------------------------------------- a new customer


@dataclass(frozen=True)
class CustomerForm:
    """The 고객 tab's "new customer" form (a customer who phoned), as typed."""

    name: str = ""
    phone: str = ""
    marketing: bool = False
    problems: dict[str, str] = field(default_factory=dict)
    other: int | None = None  # the customer who has that number already


@dataclass(frozen=True)
class NewCustomer:
    name: str
    phone: str  # E.164
    marketing: bool  # consent given on the phone, recorded with its source


def read_customer(form: Mapping[str, Any]) -> tuple[NewCustomer | None, CustomerForm]:
    name = " ".join(clean_text(field_of(form, "name")).split())
    phone = field_of(form, "phone").strip()[:40]
    marketing = field_of(form, "marketing") == "yes"
    problems: dict[str, str] = {}
    if not name:
        problems["name"] = "empty"
    elif len(name) > NAME_MAX:
        problems["name"] = "too_long"
    e164 = ""
    if not phone:
        problems["phone"] = "empty"
    else:
        try:
            e164 = to_e164(phone)
        except PhoneError:
            problems["phone"] = "bad"
    typed = CustomerForm(name, phone, marketing, problems)
    if problems:
        return None, typed
    return NewCustomer(name, e164, marketing), typed
