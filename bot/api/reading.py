"""What the jobs API reads: one job or a page of them, each with its journey, always
within the token's shop (another shop's job is not found).

A page is ordered by start time then id; its cursor is the last job's pair, so a job
booked or moved meanwhile neither repeats nor hides the rest of the list.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from datetime import UTC, datetime, tzinfo
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.api.models import CustomerOut, JobOut, JobQuery, StepOut
from core.jobs.lifecycle import LABELS
from core.models import Customer, Job, JourneyStep

JOBS = cast(sa.Table, Job.__table__)
STEPS = cast(sa.Table, JourneyStep.__table__)
CUSTOMERS = cast(sa.Table, Customer.__table__)

_SELECT = sa.select(JOBS, CUSTOMERS.c.name.label("customer_name")).join(
    CUSTOMERS, CUSTOMERS.c.id == JOBS.c.customer_id
)


class BadCursor(ValueError):
    """A cursor this API did not hand out."""


def encode_cursor(starts_at: datetime, job_id: int) -> str:
    raw = json.dumps([starts_at.astimezone(UTC).isoformat(), job_id], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, int]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        at, job_id = json.loads(raw)
        moment = datetime.fromisoformat(at)
    except (binascii.Error, ValueError, TypeError) as exc:
        raise BadCursor(cursor) from exc
    if moment.tzinfo is None or not isinstance(job_id, int) or isinstance(job_id, bool):
        raise BadCursor(cursor)
    return moment, job_id


async def read_job(
    conn: AsyncConnection, shop_id: int, job_id: int, zone: tzinfo, public_url: str
) -> JobOut | None:
    row = (
        await conn.execute(_SELECT.where(JOBS.c.shop_id == shop_id, JOBS.c.id == job_id))
    ).first()
    if row is None:
        return None
    steps = await _steps(conn, shop_id, [job_id], zone)
    return _job(row, steps.get(job_id, []), zone, public_url)


async def read_jobs(
    conn: AsyncConnection, shop_id: int, query: JobQuery, zone: tzinfo, public_url: str
) -> tuple[list[JobOut], str | None]:
    """A page of the shop's jobs and the cursor to the next (None on the last page)."""
    stmt = _SELECT.where(JOBS.c.shop_id == shop_id)
    if query.start is not None:
        stmt = stmt.where(JOBS.c.starts_at >= query.start)
    if query.end is not None:
        stmt = stmt.where(JOBS.c.starts_at < query.end)
    if query.status:
        stmt = stmt.where(JOBS.c.status.in_(sorted(set(query.status))))
    if query.cursor is not None:
        at, last_id = decode_cursor(query.cursor)
        stmt = stmt.where(
            sa.or_(JOBS.c.starts_at > at, sa.and_(JOBS.c.starts_at == at, JOBS.c.id > last_id))
        )
    stmt = stmt.order_by(JOBS.c.starts_at, JOBS.c.id).limit(query.limit + 1)
    rows = (await conn.execute(stmt)).all()
    more = len(rows) > query.limit
    rows = rows[: query.limit]
    steps = await _steps(conn, shop_id, [r.id for r in rows], zone)
    jobs = [_job(r, steps.get(r.id, []), zone, public_url) for r in rows]
    cursor = encode_cursor(rows[-1].starts_at, rows[-1].id) if more else None
    return jobs, cursor


async def _steps(
    conn: AsyncConnection, shop_id: int, job_ids: Sequence[int], zone: tzinfo
) -> dict[int, list[StepOut]]:
    """Every listed job's steps, in one statement, in the order they were planned."""
    if not job_ids:
        return {}
    rows = await conn.execute(
        sa.select(
            STEPS.c.job_id,
            STEPS.c.step,
            STEPS.c.key,
            STEPS.c.due_at,
            STEPS.c.status,
            STEPS.c.reason,
            STEPS.c.sent_at,
        )
        .where(STEPS.c.shop_id == shop_id, STEPS.c.job_id.in_(list(job_ids)))
        .order_by(STEPS.c.job_id, STEPS.c.id)
    )
    found: dict[int, list[StepOut]] = {}
    for r in rows:
        found.setdefault(r.job_id, []).append(
            StepOut(
                step=r.step,
                key=r.key,
                due_at=r.due_at.astimezone(zone),
                status=r.status,
                reason=r.reason,
                sent_at=_maybe(r.sent_at, zone),
            )
        )
    return found


def _maybe(value: datetime | None, zone: tzinfo) -> datetime | None:
    return None if value is None else value.astimezone(zone)


def _job(row: Any, steps: list[StepOut], zone: tzinfo, public_url: str) -> JobOut:
    return JobOut(
        id=row.id,
        status=row.status,
        status_label=LABELS.get(row.status, row.status),
        service=row.service,
        service_name=row.service_name,
        customer=CustomerOut(id=row.customer_id, name=row.customer_name),
        starts_at=row.starts_at.astimezone(zone),
        ends_at=row.ends_at.astimezone(zone),
        address=row.address,
        price_krw=row.price_krw,
        notes=row.notes,
        source=row.source,
        external_ref=row.external_ref,
        revision=row.revision,
        customer_reply=row.customer_reply,
        reason=row.reason,
        eta_at=_maybe(row.eta_at, zone),
        booked_at=row.booked_at.astimezone(zone),
        on_the_way_at=_maybe(row.on_the_way_at, zone),
        started_at=_maybe(row.started_at, zone),
        done_at=_maybe(row.done_at, zone),
        cancelled_at=_maybe(row.cancelled_at, zone),
        no_show_at=_maybe(row.no_show_at, zone),
        updated_at=row.updated_at.astimezone(zone),
        console_url=f"{public_url.rstrip('/')}/console/jobs/{row.id}",
        journey=steps,
    )
