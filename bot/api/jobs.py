"""The jobs API's handlers: book, list, read, change, reschedule and cancel a job, and the
service catalogue — each change through the `core.jobs` unit that plans its journey.

Status codes: a shape the models refuse is 422 (400 when the body is not JSON); a value
only the job's rules refuse (a window backwards, a service not in the catalogue) is 422
with the rule's message; a change the job's state refuses (cancelling a finished job) is
409. Another shop's job is 404, exactly like a job that does not exist.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import cast

import sqlalchemy as sa
from aiohttp import web
from pydantic import ValidationError
from sqlalchemy.engine import Connection

from bot import keys
from bot.api.customers import customer_for
from bot.api.guard import ApiError, Caller, answer, body_of, caller_of, invalid
from bot.api.models import (
    Cancel,
    JobCreate,
    JobOut,
    JobPage,
    JobPatch,
    JobQuery,
    Reschedule,
    ServiceList,
    ServiceOut,
)
from bot.api.reading import BadCursor, read_job, read_jobs
from core.jobs import Booking, JobError, JobNotFound, book, end_unfinished, reschedule
from core.jobs.details import KEEP, Details, change_details
from core.models import Job

JOBS = cast(sa.Table, Job.__table__)
MAX_ID = 2**62  # larger ids cannot exist (and would overflow BIGINT)


def _now(request: web.Request) -> datetime:
    return request.config_dict[keys.CLOCK].now()


def _job_id(request: web.Request) -> int:
    value = int(request.match_info["id"])  # the route matches digits only
    if not 0 < value < MAX_ID:
        raise _not_found()
    return value


def _not_found() -> ApiError:
    return ApiError(404, "not_found", "이 가게에 그런 작업이 없어요")


def _rejected(exc: JobError) -> ApiError:
    return ApiError(422, "rejected", str(exc))


def _conflict(exc: JobError) -> ApiError:
    return ApiError(409, "conflict", str(exc))


async def _current(request: web.Request, caller: Caller, job_id: int) -> JobOut:
    settings = request.config_dict[keys.SETTINGS]
    async with request.config_dict[keys.DATABASE].read() as conn:
        job = await read_job(
            conn, caller.shop_id, job_id, caller.shop.timezone, settings.server.public_url
        )
    if job is None:
        raise _not_found()
    return job


# --------------------------------------------------------------------------- booking


def _booking(caller: Caller, body: JobCreate, customer_id: int) -> Booking:
    return Booking(
        shop_id=caller.shop_id,
        customer_id=customer_id,
        service=body.service,
        starts_at=body.starts_at,
        ends_at=body.ends_at,
        address=body.address,
        price_krw=body.price_krw,
        notes=body.notes,
        source="api",
        external_ref=body.external_ref,
    )


def _book(
    caller: Caller, body: JobCreate, now: datetime
) -> Callable[[Connection], tuple[int, bool]]:
    """A unit: the customer found or added, then the job booked; (job id, booked now?).
    A retry with an `external_ref` already used returns that job and changes nothing."""
    # The booking's own checks, before anything is written (a customer id is not needed
    # for them): a bad window or service is a 422 and adds no customer.
    book(caller.shop, _booking(caller, body, 0), caller.actor, now)

    def unit(conn: Connection) -> tuple[int, bool]:
        if body.external_ref is not None:
            found = _by_ref(conn, caller.shop_id, body.external_ref)
            if found is not None:
                return found, False
        customer_id = customer_for(conn, caller.shop_id, body.customer, caller.actor, now)
        booking = _booking(caller, body, customer_id)
        return book(caller.shop, booking, caller.actor, now)(conn), True

    return unit


def _by_ref(conn: Connection, shop_id: int, ref: str) -> int | None:
    found = conn.execute(
        sa.select(JOBS.c.id).where(JOBS.c.shop_id == shop_id, JOBS.c.external_ref == ref)
    ).scalar()
    return None if found is None else int(found)


async def create_job(request: web.Request) -> web.Response:
    caller = caller_of(request)
    body = await body_of(request, JobCreate)
    database = request.config_dict[keys.DATABASE]
    try:
        unit = _book(caller, body, _now(request))
    except JobError as exc:
        raise _rejected(exc) from None
    try:
        job_id, booked = await database.write(unit)
    except JobError as exc:
        raise _conflict(exc) from None
    except sa.exc.IntegrityError:
        # Two pushes of one booking at once, from two processes: the other one won.
        found = None
        if body.external_ref is not None:
            async with database.read() as conn:
                found = await conn.run_sync(_by_ref, caller.shop_id, body.external_ref)
        if found is None:
            raise
        job_id, booked = found, False
    job = await _current(request, caller, job_id)
    headers = {"Location": f"/api/jobs/{job_id}"}
    return answer(job, 201 if booked else 200, headers)


# --------------------------------------------------------------------------- reading


def _query(request: web.Request) -> JobQuery:
    raw: dict[str, object] = {}
    for name in ("from", "to", "limit", "cursor"):
        value = request.query.get(name)
        if value is not None:
            # A '+' left unencoded in an offset ("…T09:00:00+09:00") arrives as a space.
            raw[name] = value.replace(" ", "+") if name in ("from", "to") else value
    statuses = request.query.getall("status", [])
    if statuses:
        raw["status"] = statuses
    try:
        return JobQuery.model_validate(raw)
    except ValidationError as exc:
        raise invalid(exc) from None


async def list_jobs(request: web.Request) -> web.Response:
    caller = caller_of(request)
    query = _query(request)
    public_url = request.config_dict[keys.SETTINGS].server.public_url
    try:
        async with request.config_dict[keys.DATABASE].read() as conn:
            jobs, cursor = await read_jobs(
                conn, caller.shop_id, query, caller.shop.timezone, public_url
            )
    except BadCursor:
        raise ApiError(
            422, "invalid", "cursor가 맞지 않아요: 받은 next_cursor를 그대로 보내 주세요"
        ) from None
    return answer(JobPage(jobs=jobs, next_cursor=cursor))


async def get_job(request: web.Request) -> web.Response:
    return answer(await _current(request, caller_of(request), _job_id(request)))


async def list_services(request: web.Request) -> web.Response:
    shop = caller_of(request).shop
    services = [
        ServiceOut(
            key=s.key,
            name=s.name,
            duration_minutes=s.duration_minutes,
            prepare=s.prepare,
            warranty=s.warranty,
        )
        for s in shop.services
    ]
    return answer(ServiceList(services=services))


# --------------------------------------------------------------------------- changes


async def _change(
    request: web.Request, caller: Caller, job_id: int, unit: Callable[[Connection], object]
) -> web.Response:
    try:
        await request.config_dict[keys.DATABASE].write(unit)
    except JobNotFound:
        raise _not_found() from None
    except JobError as exc:
        raise _conflict(exc) from None
    return answer(await _current(request, caller, job_id))


async def patch_job(request: web.Request) -> web.Response:
    caller, job_id = caller_of(request), _job_id(request)
    body = await body_of(request, JobPatch)
    given = body.model_fields_set
    details = Details(
        address=body.address if "address" in given else KEEP,
        price_krw=body.price_krw if "price_krw" in given else KEEP,
        notes=body.notes if "notes" in given else KEEP,
    )
    try:
        unit = change_details(caller.shop_id, job_id, details, caller.actor, _now(request))
    except JobError as exc:
        raise _rejected(exc) from None
    return await _change(request, caller, job_id, unit)


async def reschedule_job(request: web.Request) -> web.Response:
    caller, job_id = caller_of(request), _job_id(request)
    body = await body_of(request, Reschedule)
    try:
        unit = reschedule(
            caller.shop,
            caller.shop_id,
            job_id,
            body.starts_at,
            body.ends_at,
            caller.actor,
            _now(request),
        )
    except JobError as exc:
        raise _rejected(exc) from None
    return await _change(request, caller, job_id, unit)


async def cancel_job(request: web.Request) -> web.Response:
    caller, job_id = caller_of(request), _job_id(request)
    body = await body_of(request, Cancel, optional=True)
    job = await _current(request, caller, job_id)
    if job.status == body.status:  # a retried cancel: already done, nothing to change
        return answer(job)
    unit = end_unfinished(
        caller.shop_id, job_id, body.status, body.reason, caller.actor, _now(request)
    )
    return await _change(request, caller, job_id, unit)
