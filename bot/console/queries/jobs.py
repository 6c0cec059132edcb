"""Jobs in lists, as the console shows them: the 작업 tab's days, earlier jobs, a
customer's job history, and what the booking form starts from. (One job's page: `job.py`.)

Set-based and scoped by shop: the tab and the earlier jobs read a range of
ix_jobs_shop_start (shop, starts_at); a customer's history and last job read
ix_jobs_customer (shop, customer, starts_at). Days are the shop's days: "today" starts at
local midnight, not UTC's.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.console.viewer import Viewer
from core.jobs import LABELS, OPEN
from core.models import Conversation, Customer, Job, SurveyAnswer

MAP_SEARCH = "https://map.naver.com/p/search/"
WEEK_MAX = 300  # jobs shown on the tab's days; a shop with more sees a note, not a slow page
LATER_MAX = 20  # booked beyond this week, shown under the days
PAST_PAGE = 50
HISTORY_MAX = 20
OPEN_LOOKBACK = timedelta(days=30)  # earlier jobs left unfinished: how far back to count
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)

J = Job


def map_url(address: str) -> str | None:
    """Naver Map's search for the address (every character escaped, "/" included)."""
    address = address.strip()
    return MAP_SEARCH + quote(address, safe="") if address else None


@dataclass(frozen=True)
class JobRow:
    """A job in a list: the tab's days, earlier jobs."""

    id: int
    customer_id: int
    customer_name: str | None
    customer_tier: str | None  # bronze | silver | gold; None before a completed job
    service_name: str
    address: str
    starts_at: datetime  # local
    ends_at: datetime  # local
    status: str
    price_krw: int | None

    @property
    def label(self) -> str:
        return LABELS.get(self.status, self.status)

    @property
    def map_url(self) -> str | None:
        return map_url(self.address)


@dataclass(frozen=True)
class JobDay:
    day: date
    jobs: list[JobRow]


@dataclass(frozen=True)
class Week:
    """The 작업 tab: today, tomorrow and the rest of the week (to Sunday) by day; what is
    booked after that; and how many earlier jobs were never finished."""

    today: date
    days: list[JobDay]
    later: list[JobRow]
    unfinished_earlier: int
    truncated: bool  # more than WEEK_MAX jobs this week: the rest are not shown


def _start_of(day: date, tz: ZoneInfo) -> datetime:
    return datetime.combine(day, time(0), tzinfo=tz)


def week_days(today: date) -> list[date]:
    """Today, tomorrow, and the days after it up to Sunday (a Korean week ends on Sunday)."""
    last = max(today + timedelta(days=1), today + timedelta(days=6 - today.weekday()))
    return [today + timedelta(days=n) for n in range((last - today).days + 1)]


_ROW_COLUMNS = (
    J.id,
    J.customer_id,
    Customer.name.label("customer_name"),
    Customer.tier.label("customer_tier"),
    J.service_name,
    J.address,
    J.starts_at,
    J.ends_at,
    J.status,
    J.price_krw,
)


def _rows(viewer: Viewer) -> sa.Select[*tuple[Any, ...]]:
    stmt: sa.Select[*tuple[Any, ...]] = (
        sa.select(*_ROW_COLUMNS)
        .select_from(J)
        .join(Customer, Customer.id == J.customer_id)
        .where(viewer.scope(J.shop_id))
    )
    return stmt


def _row(r: Any, tz: ZoneInfo) -> JobRow:
    return JobRow(
        id=r.id,
        customer_id=r.customer_id,
        customer_name=r.customer_name,
        customer_tier=r.customer_tier,
        service_name=r.service_name,
        address=r.address or "",
        starts_at=r.starts_at.astimezone(tz),
        ends_at=r.ends_at.astimezone(tz),
        status=r.status,
        price_krw=r.price_krw,
    )


async def read_week(conn: AsyncConnection, viewer: Viewer, now: datetime, tz: ZoneInfo) -> Week:
    today = now.astimezone(tz).date()
    days = week_days(today)
    start = _start_of(today, tz)
    end = _start_of(days[-1] + timedelta(days=1), tz)
    found = (
        await conn.execute(
            _rows(viewer)
            .where(J.starts_at >= start, J.starts_at < end)
            .order_by(J.starts_at, J.id)
            .limit(WEEK_MAX + 1)
        )
    ).all()
    truncated = len(found) > WEEK_MAX
    by_day: dict[date, list[JobRow]] = {d: [] for d in days}
    for r in found[:WEEK_MAX]:
        row = _row(r, tz)
        by_day[row.starts_at.date()].append(row)
    later = (
        await conn.execute(
            _rows(viewer).where(J.starts_at >= end).order_by(J.starts_at, J.id).limit(LATER_MAX)
        )
    ).all()
    unfinished = (
        await conn.execute(
            sa.select(sa.func.count())
            .select_from(J)
            .where(
                viewer.scope(J.shop_id),
                J.starts_at >= start - OPEN_LOOKBACK,
                J.starts_at < start,
                J.status.in_(OPEN),
            )
        )
    ).scalar_one()
    return Week(
        today=today,
        days=[JobDay(d, by_day[d]) for d in days],
        later=[_row(r, tz) for r in later],
        unfinished_earlier=int(unfinished),
        truncated=truncated,
    )


# --------------------------------------------------------------------------- earlier jobs


@dataclass(frozen=True)
class PastCursor:
    """Where a page of earlier jobs ends: the last row's start and id."""

    starts_at: datetime
    id: int

    def encode(self) -> str:
        return f"{(self.starts_at - _EPOCH) // _MICROSECOND}.{self.id}"

    @classmethod
    def decode(cls, raw: str) -> PastCursor | None:
        """None for anything malformed: the list then starts from the newest."""
        micros, _, job_id = raw.partition(".")
        if not (micros.isdigit() and job_id.isdigit()) or len(raw) > 40:
            return None
        try:
            return cls(_EPOCH + int(micros) * _MICROSECOND, int(job_id))
        except OverflowError:
            return None


@dataclass(frozen=True)
class PastJobs:
    rows: list[JobRow]
    next_cursor: str | None
    first_page: bool


async def read_past(
    conn: AsyncConnection,
    viewer: Viewer,
    now: datetime,
    tz: ZoneInfo,
    *,
    cursor: PastCursor | None = None,
    page_size: int = PAST_PAGE,
) -> PastJobs:
    """Jobs that started before today, newest first, a page at a time."""
    before = _start_of(now.astimezone(tz).date(), tz)
    stmt = _rows(viewer).where(J.starts_at < before)
    if cursor is not None:
        stmt = stmt.where(
            sa.or_(
                J.starts_at < cursor.starts_at,
                sa.and_(J.starts_at == cursor.starts_at, J.id < cursor.id),
            )
        )
    found = (
        await conn.execute(stmt.order_by(J.starts_at.desc(), J.id.desc()).limit(page_size + 1))
    ).all()
    more = len(found) > page_size
    found = found[:page_size]
    next_cursor = PastCursor(found[-1].starts_at, found[-1].id).encode() if more else None
    return PastJobs([_row(r, tz) for r in found], next_cursor, first_page=cursor is None)


# --------------------------------------------------------------------------- a customer's


@dataclass(frozen=True)
class HistoryRow:
    id: int
    service_name: str
    starts_at: datetime  # local
    status: str
    price_krw: int | None
    score: int | None

    @property
    def label(self) -> str:
        return LABELS.get(self.status, self.status)


@dataclass(frozen=True)
class History:
    """A customer's jobs, newest first, and how many were done (what tiers count)."""

    jobs: list[HistoryRow]
    done: int
    more: bool  # older jobs than those shown


async def read_history(
    conn: AsyncConnection, viewer: Viewer, customer_id: int, tz: ZoneInfo
) -> History:
    found = (
        await conn.execute(
            sa.select(J.id, J.service_name, J.starts_at, J.status, J.price_krw, SurveyAnswer.score)
            .select_from(J)
            .outerjoin(
                SurveyAnswer,
                sa.and_(SurveyAnswer.job_id == J.id, viewer.scope(SurveyAnswer.shop_id)),
            )
            .where(viewer.scope(J.shop_id), J.customer_id == customer_id)
            .order_by(J.starts_at.desc(), J.id.desc())
            .limit(HISTORY_MAX + 1)
        )
    ).all()
    done = (
        await conn.execute(
            sa.select(sa.func.count())
            .select_from(J)
            .where(viewer.scope(J.shop_id), J.customer_id == customer_id, J.status == "done")
        )
    ).scalar_one()
    rows = [
        HistoryRow(r.id, r.service_name, r.starts_at.astimezone(tz), r.status, r.price_krw, r.score)
        for r in found[:HISTORY_MAX]
    ]
    return History(rows, int(done), more=len(found) > HISTORY_MAX)


@dataclass(frozen=True)
class LastJob:
    """What the booking form suggests from the customer's latest job."""

    address: str
    service: str | None


async def read_last_job(conn: AsyncConnection, viewer: Viewer, customer_id: int) -> LastJob:
    address = (
        await conn.execute(
            sa.select(J.address)
            .where(viewer.scope(J.shop_id), J.customer_id == customer_id, J.address != "")
            .order_by(J.starts_at.desc(), J.id.desc())
            .limit(1)
        )
    ).scalar()
    service = (
        await conn.execute(
            sa.select(J.service)
            .where(viewer.scope(J.shop_id), J.customer_id == customer_id)
            .order_by(J.starts_at.desc(), J.id.desc())
            .limit(1)
        )
    ).scalar()
    return LastJob(address or "", service)


@dataclass(frozen=True)
class BookingFor:
    """Whom the booking form books: a conversation's customer, or a customer of the tab."""

    customer_id: int
    customer_name: str | None
    conversation_id: int | None  # None: the job joins the customer's latest conversation


async def read_booking_for(
    conn: AsyncConnection,
    viewer: Viewer,
    *,
    conversation_id: int | None = None,
    customer_id: int | None = None,
) -> BookingFor | None:
    """The customer (and conversation) of the shop a booking is for; None if not the shop's."""
    if conversation_id is not None:
        found = (
            await conn.execute(
                sa.select(Conversation.customer_id, Customer.name)
                .select_from(Conversation)
                .join(Customer, Customer.id == Conversation.customer_id)
                .where(viewer.scope(Conversation.shop_id), Conversation.id == conversation_id)
            )
        ).first()
        return BookingFor(found.customer_id, found.name, conversation_id) if found else None
    if customer_id is not None:
        name = (
            await conn.execute(
                sa.select(Customer.id, Customer.name).where(
                    viewer.scope(Customer.shop_id), Customer.id == customer_id
                )
            )
        ).first()
        return BookingFor(customer_id, name.name, None) if name else None
    return None
