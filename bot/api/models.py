"""The jobs API's shapes: what a caller may send and what it gets back.

The handlers validate with these models and the OpenAPI document (`openapi.py`) is made
from the same models' JSON Schema, so the two cannot disagree. Requests are strict (no
"5" for 5, no field the API does not know); text is kept as typed, minus control
characters, which no address or note needs and PostgreSQL refuses (NUL).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field

from core.jobs.booking import ADDRESS_MAX, NOTES_MAX, PRICE_MAX
from core.jobs.lifecycle import STATUSES
from core.phone import to_e164

MAX_PAGE = 200
DEFAULT_PAGE = 50
# No booking is this far off, and a year 1 or 9999 would overflow on the way to UTC.
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
LATEST = datetime(2100, 1, 1, tzinfo=UTC)

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")

Status = Literal["booked", "on_the_way", "in_progress", "done", "cancelled", "no_show"]
assert set(Status.__args__) == set(STATUSES)  # type: ignore[attr-defined]
StepStatus = Literal["planned", "sent", "skipped", "cancelled", "dropped"]


def _clean(value: str) -> str:
    return _CONTROL.sub("", value.replace("\r\n", "\n").replace("\r", "\n"))


def _one_line(value: str) -> str:
    cleaned = " ".join(_clean(value).split())
    if not cleaned:
        raise ValueError("must not be blank")
    return cleaned


def _phone(value: str) -> str:
    return to_e164(value)  # PhoneError is a ValueError: a 422 naming the field


def _in_range(value: datetime) -> datetime:
    if not EARLIEST <= value < LATEST:
        raise ValueError("must be between 2000 and 2100")
    return value


def _no_default(schema: dict[str, Any]) -> None:
    schema.pop("default", None)  # left out: stays as it is (the document must not say "")


Moment = Annotated[AwareDatetime, AfterValidator(_in_range)]
Address = Annotated[str, Field(max_length=ADDRESS_MAX), AfterValidator(_clean)]
Notes = Annotated[str, Field(max_length=NOTES_MAX), AfterValidator(_clean)]
Price = Annotated[int, Field(ge=0, le=PRICE_MAX)]
OneLine = Annotated[str, AfterValidator(_one_line)]


class _Request(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)


class MarketingConsent(_Request):
    """The customer agreed to receive advertising (PROTOCOLS §4): say where and how, for
    the record a shop must be able to show. Leave it out when they did not."""

    source: Annotated[OneLine, Field(min_length=1, max_length=36)] = Field(
        description="where the customer agreed, e.g. 'booking-page checkbox'"
    )
    night: bool = Field(
        default=False, description="also agreed to advertising between 21:00 and 08:00"
    )


class CustomerIn(_Request):
    """Who the job is for: found by phone number within the shop, or added."""

    phone: Annotated[str, Field(min_length=1, max_length=30), AfterValidator(_phone)] = Field(
        description="Korean or international number"
    )
    name: Annotated[OneLine, Field(min_length=1, max_length=100)]
    marketing_consent: MarketingConsent | None = None


class JobCreate(_Request):
    """A job to book. Booking it sends the customer a confirmation at once and plans the
    reminder for the evening before."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "customer": {"phone": "010-5555-6666", "name": "김민수"},
                    "service": "aircon",
                    "starts_at": "2026-11-26T14:00:00+09:00",
                    "ends_at": "2026-11-26T16:00:00+09:00",
                    "address": "서울시 마포구 월드컵로 12",
                    "price_krw": 80000,
                    "notes": "실외기 베란다",
                    "external_ref": "booking-1042",
                }
            ]
        }
    )

    customer: CustomerIn
    service: str = Field(min_length=1, max_length=40, description="a key from GET /api/services")
    starts_at: Moment = Field(description="the arrival window's start, with its UTC offset")
    ends_at: Moment = Field(description="the arrival window's end (at most 24 hours later)")
    address: Address = ""
    price_krw: Price | None = Field(default=None, description="null: quoted on site")
    notes: Notes = ""
    external_ref: Annotated[OneLine, Field(min_length=1, max_length=100)] | None = Field(
        default=None,
        description="your own id for this booking: sending it again returns the same job",
    )


class JobPatch(_Request):
    """Details to change; a field left out stays as it is (the handler reads which were
    given from `model_fields_set`, so the defaults here are never applied)."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"price_krw": 120000, "notes": "부품 교체 포함"}]}
    )

    address: Address = Field(default="", json_schema_extra=_no_default)
    price_krw: Price | None = Field(
        default=None, json_schema_extra=_no_default, description="null: to be quoted on site"
    )
    notes: Notes = Field(default="", json_schema_extra=_no_default)


class Reschedule(_Request):
    """A new arrival window. The old reminder is cancelled; the customer is told the new
    time and reminded the evening before it."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"starts_at": "2026-11-28T10:00:00+09:00", "ends_at": "2026-11-28T12:00:00+09:00"}
            ]
        }
    )

    starts_at: Moment
    ends_at: Moment


class Cancel(_Request):
    """End a job that has not been done: cancelled, or the customer was not there."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"status": "cancelled", "reason": "고객 요청"}]}
    )

    status: Literal["cancelled", "no_show"] = "cancelled"
    reason: Annotated[str, Field(max_length=500), AfterValidator(_clean)] = ""


class JobQuery(BaseModel):
    """GET /api/jobs: jobs by start time, oldest first, a page at a time."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    start: Moment | None = Field(default=None, alias="from")
    end: Moment | None = Field(default=None, alias="to")
    status: tuple[Status, ...] = ()
    limit: int = Field(default=DEFAULT_PAGE, ge=1, le=MAX_PAGE)
    cursor: str | None = Field(default=None, max_length=200)


# --------------------------------------------------------------------------- answers


class StepOut(BaseModel):
    """One message of the job's journey and what became of it."""

    step: str = Field(description="confirmation, reminder, on_my_way, photo, completion, …")
    key: str
    due_at: datetime
    status: StepStatus
    reason: str | None = Field(description="why it was skipped, cancelled or dropped")
    sent_at: datetime | None


class CustomerOut(BaseModel):
    id: int
    name: str | None


class JobOut(BaseModel):
    """A job as it is now, with its journey. Times are in the shop's time zone."""

    id: int
    status: Status
    status_label: str = Field(description="as the console shows it: 예약, 이동 중, …")
    service: str
    service_name: str
    customer: CustomerOut
    starts_at: datetime
    ends_at: datetime
    address: str
    price_krw: int | None
    notes: str
    source: str = Field(description="console, api or demo")
    external_ref: str | None
    revision: int = Field(description="1 when booked, one more at each reschedule")
    customer_reply: Literal["confirmed", "change_requested"] | None
    reason: str | None = Field(description="why it was cancelled")
    eta_at: datetime | None
    booked_at: datetime
    on_the_way_at: datetime | None
    started_at: datetime | None
    done_at: datetime | None
    cancelled_at: datetime | None
    no_show_at: datetime | None
    updated_at: datetime
    console_url: str
    journey: list[StepOut]


class JobPage(BaseModel):
    jobs: list[JobOut]
    next_cursor: str | None = Field(description="pass it as `cursor` for the next page")


class ServiceOut(BaseModel):
    key: str
    name: str
    duration_minutes: int
    prepare: str
    warranty: str


class ServiceList(BaseModel):
    services: list[ServiceOut]


class Problem(BaseModel):
    loc: list[str | int]
    msg: str
    type: str


class ErrorOut(BaseModel):
    error: str = Field(description="a code: unauthorized, not_found, invalid_json, invalid, …")
    message: str = Field(description="what went wrong, for a person (Korean)")
    details: list[Problem] | None = None
