"""Booking a job and moving it along plans (and cancels) its journey's steps, once."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa
from conftest import kst, make_settings
from support.jobs import add_customer, book_job, steps
from support.outbox import add_shop

from core.clock import FrozenClock
from core.db import Database
from core.jobs import (
    JobError,
    JobNotFound,
    attach_photo,
    complete,
    depart,
    end_unfinished,
    reschedule,
    start,
)
from core.jobs.lifecycle import MOVES, STATUSES, check_move
from core.models import AuditEntry, Job, Photo

SHOP = make_settings().shops[0]


def by_key(rows: list[sa.RowMapping]) -> dict[str, sa.RowMapping]:
    return {r["key"]: r for r in rows}


async def test_booking_plans_a_confirmation_now_and_a_reminder_the_evening_before(
    database: Database, clock: FrozenClock
) -> None:
    now = clock.now()  # Monday 10:00
    shop_id = await add_shop(database, now)
    customer, conversation = await add_customer(database, shop_id, now)
    job = await book_job(database, SHOP, shop_id, customer, now, starts_at=kst(2026, 11, 26, 14))

    planned = by_key(await steps(database, job))
    assert set(planned) == {"confirmation:r1", "reminder:r1"}
    assert planned["confirmation:r1"]["due_at"] == now
    assert planned["reminder:r1"]["due_at"] == kst(2026, 11, 25, 18)
    assert {r["status"] for r in planned.values()} == {"planned"}
    assert {r["kind"] for r in planned.values()} == {"info"}
    async with database.read() as conn:
        row = (await conn.execute(sa.select(Job.__table__).where(Job.id == job))).mappings().one()
        audit = (await conn.execute(sa.select(AuditEntry.action))).scalars().all()
    assert row["conversation_id"] == conversation  # the customer's latest, when none is named
    assert row["service_name"] == "에어컨 청소"
    assert row["status"] == "booked"
    assert "job_booked" in audit


async def test_a_booking_after_the_reminder_time_records_the_reminder_as_skipped(
    database: Database, clock: FrozenClock
) -> None:
    now = kst(2026, 11, 25, 19)  # after 18:00 the day before
    shop_id = await add_shop(database, now)
    customer, _ = await add_customer(database, shop_id, now)
    job = await book_job(database, SHOP, shop_id, customer, now, starts_at=kst(2026, 11, 26, 9))
    reminder = by_key(await steps(database, job))["reminder:r1"]
    assert reminder["status"] == "skipped"
    assert "전날 알림" in reminder["reason"]


async def test_rescheduling_cancels_the_old_reminder_and_plans_new_ones(
    database: Database, clock: FrozenClock
) -> None:
    now = clock.now()
    shop_id = await add_shop(database, now)
    customer, _ = await add_customer(database, shop_id, now)
    job = await book_job(database, SHOP, shop_id, customer, now, starts_at=kst(2026, 11, 26, 14))
    new_start = kst(2026, 11, 28, 10)
    later = now + timedelta(hours=1)
    revision = await database.write(
        reschedule(SHOP, shop_id, job, new_start, new_start + timedelta(hours=2), "user:1", later)
    )
    assert revision == 2
    planned = by_key(await steps(database, job))
    assert planned["reminder:r1"]["status"] == "cancelled"
    assert planned["reminder:r2"]["due_at"] == kst(2026, 11, 27, 18)
    assert planned["confirmation:r2"]["due_at"] == later
    # The same time again is no change: no third confirmation.
    same = await database.write(
        reschedule(SHOP, shop_id, job, new_start, new_start + timedelta(hours=2), "user:1", later)
    )
    assert same == 2
    assert len(await steps(database, job)) == 4


@pytest.mark.parametrize("status", ["cancelled", "no_show"])
async def test_cancel_and_no_show_cancel_every_pending_step(
    database: Database, clock: FrozenClock, status: str
) -> None:
    now = clock.now()
    shop_id = await add_shop(database, now)
    customer, _ = await add_customer(database, shop_id, now)
    job = await book_job(database, SHOP, shop_id, customer, now, starts_at=kst(2026, 11, 26, 14))
    await database.write(end_unfinished(shop_id, job, status, "고객 요청", "user:1", now))
    assert {r["status"] for r in await steps(database, job)} == {"cancelled"}
    with pytest.raises(JobError):  # final
        await database.write(depart(shop_id, job, now + timedelta(minutes=20), "user:1", now))


async def test_the_day_of_the_job_departure_start_and_completion(
    database: Database, clock: FrozenClock
) -> None:
    now = kst(2026, 11, 26, 13, 40)
    shop_id = await add_shop(database, now)
    customer, _ = await add_customer(database, shop_id, now)
    job = await book_job(
        database, SHOP, shop_id, customer, kst(2026, 11, 23, 10), starts_at=kst(2026, 11, 26, 14)
    )
    await database.write(depart(shop_id, job, kst(2026, 11, 26, 14, 20), "user:1", now))
    await database.write(start(shop_id, job, "user:1", now + timedelta(minutes=40)))
    done = now + timedelta(hours=2)
    await database.write(complete(SHOP, shop_id, job, "user:1", done))

    planned = by_key(await steps(database, job))
    assert planned["on_my_way:r1"]["payload"] == {"eta": kst(2026, 11, 26, 14, 20).isoformat()}
    assert planned["completion"]["due_at"] == done
    assert planned["completion"]["payload"] == {
        "tips": ["처음 켤 때 냄새나 물샘이 없는지 봐 주세요."]
    }
    assert planned["aftercare:1"]["due_at"] == done + timedelta(days=14)
    assert planned["survey"]["due_at"] == done + timedelta(days=7)
    assert planned["survey_reminder"]["due_at"] == done + timedelta(days=9)
    async with database.read() as conn:
        row = (await conn.execute(sa.select(Job.__table__).where(Job.id == job))).mappings().one()
    assert row["status"] == "done"
    assert row["done_at"] == done
    assert row["started_at"] is not None


async def test_another_shops_job_is_not_found(database: Database, clock: FrozenClock) -> None:
    now = clock.now()
    shop_id = await add_shop(database, now)
    other = await add_shop(database, now, slug="other")
    customer, _ = await add_customer(database, shop_id, now)
    job = await book_job(database, SHOP, shop_id, customer, now, starts_at=kst(2026, 11, 26, 14))
    with pytest.raises(JobNotFound):
        await database.write(start(other, job, "user:1", now))
    with pytest.raises(JobError):  # booking another shop's customer
        await book_job(database, SHOP, other, customer, now, starts_at=kst(2026, 11, 26, 14))


async def test_a_retried_api_booking_books_once(database: Database, clock: FrozenClock) -> None:
    now = clock.now()
    shop_id = await add_shop(database, now)
    customer, _ = await add_customer(database, shop_id, now)
    first = await book_job(
        database, SHOP, shop_id, customer, now, starts_at=kst(2026, 11, 26, 14), external_ref="b-1"
    )
    again = await book_job(
        database, SHOP, shop_id, customer, now, starts_at=kst(2026, 11, 26, 14), external_ref="b-1"
    )
    assert first == again
    assert len(await steps(database, first)) == 2


async def test_a_photo_is_the_jobs_once_and_goes_to_the_customer(
    database: Database, clock: FrozenClock
) -> None:
    now = clock.now()
    shop_id = await add_shop(database, now)
    customer, conversation = await add_customer(database, shop_id, now)
    job = await book_job(database, SHOP, shop_id, customer, now, starts_at=kst(2026, 11, 26, 14))
    photo = await database.write(
        lambda conn: conn.execute(
            sa.insert(Photo)
            .values(
                shop_id=shop_id,
                conversation_id=conversation,
                stored_name="abc.jpg",
                original_name="before.jpg",
                content_type="image/jpeg",
                width=800,
                height=600,
                size_bytes=1000,
                created_at=now,
            )
            .returning(Photo.id)
        ).scalar_one()
    )
    await database.write(attach_photo(shop_id, job, photo, "before", "작업 전", "user:1", now))
    step = by_key(await steps(database, job))[f"photo:{photo}"]
    assert step["payload"] == {"photo_id": photo, "caption": "작업 전", "phase": "before"}
    with pytest.raises(JobError):
        await database.write(attach_photo(shop_id, job, photo, "after", "", "user:1", now))


def test_every_status_has_its_moves_and_final_ones_have_none() -> None:
    assert set(MOVES) == set(STATUSES)
    for final in ("done", "cancelled", "no_show"):
        assert not MOVES[final]
        with pytest.raises(JobError):
            check_move(final, "booked")
    check_move("booked", "in_progress")  # started without tapping 출발


def test_a_window_that_ends_before_it_starts_is_refused() -> None:
    from core.jobs.booking import check_window

    with pytest.raises(JobError):
        check_window(kst(2026, 11, 26, 14), kst(2026, 11, 26, 13))
