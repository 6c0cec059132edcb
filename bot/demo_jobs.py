"""The demo shop's customers and jobs, so a newcomer sees the 작업 tab and a customer's
history populated at the first start: a few past jobs with their scores, one job booked for
today and one for tomorrow. The history makes tiers visible (core/tiers.py): 박철수 is gold
(five completed jobs), 김민수 silver — four, so completing today's job makes them gold and
plans their one thank-you — and 이영희 bronze.

Past jobs are history from before dangol (rows, no journey); today's and tomorrow's are
booked through `core.jobs.book`, so their confirmations go out like any booking's — in the
demo, through the console provider, which writes them to the terminal.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, time, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from core.config import ShopConfig
from core.jobs import Booking, book
from core.models import Customer, CustomerIdentity, Job, SurveyAnswer
from core.tiers import recompute


@dataclass(frozen=True)
class _Past:
    service: str
    days_ago: int
    price_krw: int
    score: int | None


@dataclass(frozen=True)
class _Regular:
    name: str
    phone: str  # E.164; 010-5555-01xx numbers, made up
    address: str
    past: tuple[_Past, ...]
    upcoming: tuple[str, int, int] | None  # service, days ahead, arrival hour


_REGULARS = (
    _Regular(
        "김민수",
        "+821055550101",
        "서울시 마포구 성산로 45, 302호",
        (
            _Past("aircon", 740, 80_000, 5),
            _Past("aircon", 380, 80_000, 5),
            _Past("aircon", 200, 120_000, 4),
            _Past("aircon", 30, 90_000, 5),
        ),
        ("aircon", 0, 15),
    ),
    _Regular(
        "이영희",
        "+821055550102",
        "서울시 서대문구 연희로 12",
        (_Past("electric", 120, 150_000, 4),),
        ("electric", 1, 10),
    ),
    _Regular(
        "박철수",
        "+821055550103",
        "경기도 고양시 덕양구 화정로 8",
        (
            _Past("landscape", 420, 400_000, 5),
            _Past("landscape", 330, 250_000, 5),
            _Past("landscape", 240, 250_000, 4),
            _Past("landscape", 150, 250_000, 5),
            _Past("landscape", 60, 250_000, None),
        ),
        None,
    ),
)


def seed_demo_jobs(shop: ShopConfig, shop_id: int, now: datetime) -> Callable[[Connection], int]:
    """A unit: the demo's regulars and their jobs, for a shop that has no jobs yet (a
    restart adds nothing). Returns how many jobs were added."""

    def unit(conn: Connection) -> int:
        if conn.execute(sa.select(Job.id).where(Job.shop_id == shop_id).limit(1)).first():
            return 0
        added = 0
        seeded: list[int] = []
        for regular in _REGULARS:
            if not all(shop.service(p.service) for p in regular.past):
                continue  # the example's catalogue was edited: seed only what it still has
            customer_id = _customer(conn, shop_id, regular, now)
            seeded.append(customer_id)
            for past in regular.past:
                _past_job(conn, shop, shop_id, customer_id, regular.address, past, now)
                added += 1
            if regular.upcoming and shop.service(regular.upcoming[0]):
                service_key, days, hour = regular.upcoming
                day = now.astimezone(shop.timezone).date() + timedelta(days=days)
                starts = datetime.combine(day, time(hour), tzinfo=shop.timezone)
                booking = Booking(
                    shop_id=shop_id,
                    customer_id=customer_id,
                    service=service_key,
                    starts_at=starts,
                    ends_at=starts + timedelta(hours=2),
                    address=regular.address,
                    price_krw=None,
                    notes="데모 예약",
                    source="demo",
                )
                book(shop, booking, "system:demo", now)(conn)
                added += 1
        # Their history is rows, not completions: their tiers are derived from it here
        # (seeded, not reached, so no one is thanked for gold).
        recompute(conn, shop_id, shop.tiers, seeded)
        return added

    return unit


def _customer(conn: Connection, shop_id: int, regular: _Regular, now: datetime) -> int:
    customer_id = int(
        conn.execute(
            sa.insert(Customer)
            .values(shop_id=shop_id, name=regular.name, tags=[], notes="", created_at=now)
            .returning(Customer.id)
        ).scalar_one()
    )
    conn.execute(
        sa.insert(CustomerIdentity).values(
            shop_id=shop_id,
            customer_id=customer_id,
            kind="phone",
            value=regular.phone,
            created_at=now,
        )
    )
    return customer_id


def _past_job(
    conn: Connection,
    shop: ShopConfig,
    shop_id: int,
    customer_id: int,
    address: str,
    past: _Past,
    now: datetime,
) -> None:
    service = shop.service(past.service)
    assert service is not None
    day = now.astimezone(shop.timezone).date() - timedelta(days=past.days_ago)
    starts = datetime.combine(day, time(10), tzinfo=shop.timezone)
    done = starts + timedelta(minutes=service.duration_minutes)
    job_id = conn.execute(
        sa.insert(Job)
        .values(
            shop_id=shop_id,
            customer_id=customer_id,
            service=service.key,
            service_name=service.name,
            address=address,
            starts_at=starts,
            ends_at=starts + timedelta(hours=2),
            status="done",
            price_krw=past.price_krw,
            notes="",
            source="demo",
            revision=1,
            booked_at=starts - timedelta(days=3),
            started_at=starts,
            done_at=done,
            created_at=now,
            updated_at=now,
        )
        .returning(Job.id)
    ).scalar_one()
    if past.score is not None:
        answered = done + timedelta(days=service.survey_after_days)
        conn.execute(
            sa.insert(SurveyAnswer).values(
                shop_id=shop_id,
                job_id=job_id,
                customer_id=customer_id,
                score=past.score,
                channel="sms",
                answered_at=answered,
                created_at=answered,
            )
        )
