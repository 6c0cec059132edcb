"""A job done and its survey (or reminder) "sent", written straight to the database: the
state the journey planner leaves behind, without the planner."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from core.config import ShopConfig
from core.db import Database
from core.jobs import complete, token_hash
from core.jobs.awaiting import mark
from core.models import Customer, JourneyStep, SurveyAnswer
from support.jobs import book_job

TOKEN = "Tk3n_" + "a" * 38  # shaped as core.jobs.new_link_token makes them (43 characters)


async def done_job(
    database: Database,
    shop: ShopConfig,
    shop_id: int,
    customer_id: int,
    done_at: datetime,
    **fields: Any,
) -> int:
    """A job booked the day before `done_at` and completed at `done_at`."""
    starts = done_at - timedelta(hours=2)
    job = await book_job(
        database, shop, shop_id, customer_id, starts - timedelta(days=1), starts_at=starts, **fields
    )
    await database.write(complete(shop, shop_id, job, "user:1", done_at))
    return job


async def survey_sent(
    database: Database,
    shop_id: int,
    job_id: int,
    customer_id: int,
    sent_at: datetime,
    *,
    token: str = TOKEN,
    step: str = "survey",
    awaiting_until: datetime | None = None,
) -> str:
    """The job's `step` (survey or survey_reminder) marked sent at `sent_at` with the link
    secret `token`, and the customer marked as owing a score until `awaiting_until`
    (default: two days on). Returns the token."""

    def unit(conn: Connection) -> str:
        values = {
            "status": "sent",
            "sent_at": sent_at,
            "token_hash": token_hash(token),
            "updated_at": sent_at,
        }
        found = conn.execute(
            sa.update(JourneyStep)
            .where(JourneyStep.job_id == job_id, JourneyStep.key == step)
            .values(**values)
        ).rowcount
        if not found:
            conn.execute(
                sa.insert(JourneyStep).values(
                    shop_id=shop_id,
                    job_id=job_id,
                    customer_id=customer_id,
                    step=step,
                    key=step,
                    kind="info",
                    due_at=sent_at,
                    payload={},
                    created_at=sent_at,
                    **values,
                )
            )
        _mark(conn, customer_id, "survey", job_id, awaiting_until or sent_at + timedelta(days=2))
        return token

    return await database.write(unit)


async def reminder_sent(database: Database, customer_id: int, job_id: int, until: datetime) -> None:
    """The customer marked as owing an answer to the job's reminder until `until`."""

    def unit(conn: Connection) -> None:
        _mark(conn, customer_id, "reminder", job_id, until)

    await database.write(unit)


def _mark(conn: Connection, customer_id: int, what: str, job_id: int, until: datetime) -> None:
    conn.execute(
        sa.update(Customer)
        .where(Customer.id == customer_id)
        .values(awaiting=mark(what, job_id), awaiting_until=until)
    )


async def answers(database: Database) -> list[sa.Row[Any]]:
    async with database.read() as conn:
        result = await conn.execute(sa.select(SurveyAnswer).order_by(SurveyAnswer.id))
        return list(result.all())


async def awaiting(database: Database, customer_id: int) -> tuple[str | None, datetime | None]:
    async with database.read() as conn:
        row = (
            await conn.execute(
                sa.select(Customer.awaiting, Customer.awaiting_until).where(
                    Customer.id == customer_id
                )
            )
        ).one()
        return row.awaiting, row.awaiting_until
