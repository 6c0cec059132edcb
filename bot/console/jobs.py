"""The 작업 tab and a job's page, with the buttons that move a job along.

- `GET /console/jobs` — today, tomorrow and the rest of the week by day, what is booked
  after that, and a link to earlier jobs (`/console/jobs/past`).
- `GET /console/jobs/<id>` — the job, every step of its journey with each message's
  delivery state and path, its photos, the customer's score; and the buttons 출발,
  작업 시작, 사진 추가, 작업 완료, 일정 변경, 취소, 노쇼 — each shown only when the job's
  status allows that move (`core.jobs.lifecycle.MOVES`).
- `POST /console/jobs/<id>/<move>` — one move each. CSRF-checked by the middleware, scoped
  to the viewer's shop (another shop's job is 404), audited by the `core.jobs` unit. A
  move the job cannot take comes back as the page with `core.jobs`' own message, and what
  was typed kept.

Booking (`/console/jobs/new`) and the phone customer are `jobs_booking.py`.

Staff may do everything here: they are the ones at the door. The one thing they may not
do is set a job's price (the booking form has no price field for them, and a price they
post is refused) — money is the owner's word to the customer.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from aiohttp import web

from bot import keys
from bot.console import jobs_booking
from bot.console.changes import jobs as job_changes
from bot.console.jobs_forms import (
    Window,
    default_eta,
    field_of,
    read_eta,
    read_photo,
    read_reason,
    read_window,
)
from bot.console.layout import now, object_id, page, shop_of, wants_json
from bot.console.middleware import see_other
from bot.console.photos import UPLOAD_ROUTE
from bot.console.queries.header import read_header
from bot.console.queries.job import JobView, read_job
from bot.console.queries.jobs import PastCursor, read_past, read_week
from bot.console.viewer import current
from core.db import Unit
from core.jobs import JobError, JobNotFound
from core.jobs.booking import PHASES
from core.jobs.lifecycle import MOVES, may_reschedule

DEFAULT_DURATION = timedelta(hours=2)


def job_url(job_id: int) -> str:
    return f"/console/jobs/{job_id}"


def setup(app: web.Application) -> None:
    """Register the jobs' routes on the console sub-app (call in `console_app()`)."""
    add = app.router
    add.add_get("/jobs", week, name="console_jobs")
    add.add_get("/jobs/past", past, name="console_jobs_past")
    add.add_get("/jobs/new", jobs_booking.new, name="console_job_new")
    add.add_post("/jobs/new", jobs_booking.create, name="console_job_create")
    add.add_post("/customers/new", jobs_booking.add_customer, name="console_customer_add")
    add.add_get(r"/jobs/{id:\d+}", job_page, name="console_job")
    add.add_post(r"/jobs/{id:\d+}/depart", depart, name="console_job_depart")
    add.add_post(r"/jobs/{id:\d+}/start", start, name="console_job_start")
    add.add_post(r"/jobs/{id:\d+}/complete", complete, name="console_job_complete")
    add.add_post(r"/jobs/{id:\d+}/reschedule", reschedule, name="console_job_reschedule")
    add.add_post(r"/jobs/{id:\d+}/cancel", cancel, name="console_job_cancel")
    add.add_post(r"/jobs/{id:\d+}/no-show", no_show, name="console_job_no_show")
    add.add_post(r"/jobs/{id:\d+}/photos", add_photo, name="console_job_photo")


# --------------------------------------------------------------------------- lists


async def week(request: web.Request) -> web.Response:
    viewer = current(request)
    shop = shop_of(request, viewer)
    at = now(request)
    async with request.config_dict[keys.DATABASE].read() as conn:
        listing = await read_week(conn, viewer, at, shop.timezone)
        header = await read_header(conn, viewer, at, shop.timezone)
    return page(request, "jobs.html", viewer=viewer, header=header, week=listing, nav="jobs")


async def past(request: web.Request) -> web.Response:
    viewer = current(request)
    shop = shop_of(request, viewer)
    at = now(request)
    cursor = PastCursor.decode(request.query["before"]) if "before" in request.query else None
    async with request.config_dict[keys.DATABASE].read() as conn:
        listing = await read_past(conn, viewer, at, shop.timezone, cursor=cursor)
        header = await read_header(conn, viewer, at, shop.timezone)
    return page(request, "jobs_past.html", viewer=viewer, header=header, past=listing, nav="jobs")


# --------------------------------------------------------------------------- a job


@dataclass(frozen=True)
class Allowed:
    """Which buttons the job's page shows: the moves its status allows."""

    depart: bool
    start: bool
    complete: bool
    cancel: bool
    no_show: bool
    reschedule: bool
    photo: bool

    @classmethod
    def of(cls, job: JobView) -> Allowed:
        moves = MOVES.get(job.status, frozenset())
        return cls(
            depart="on_the_way" in moves,
            start="in_progress" in moves,
            complete="done" in moves,
            cancel="cancelled" in moves,
            no_show="no_show" in moves,
            reschedule=may_reschedule(job.status),
            # core.jobs.attach_photo's rule; the upload goes into the job's conversation.
            photo=job.status not in ("cancelled", "no_show") and job.conversation_id is not None,
        )

    @property
    def any(self) -> bool:
        return any(vars(self).values())


async def show(
    request: web.Request,
    *,
    status: int = 200,
    problem: str | None = None,
    refused: str | None = None,
    typed: dict[str, str] | None = None,
) -> web.Response:
    """The job's page; `problem` names what was wrong with a form (job.html says it),
    `refused` is what core.jobs said, `typed` what the owner had typed."""
    viewer = current(request)
    shop = shop_of(request, viewer)
    at = now(request)
    async with request.config_dict[keys.DATABASE].read() as conn:
        job = await read_job(conn, viewer, object_id(request), shop.timezone)
        if job is None:
            raise web.HTTPNotFound
        header = await read_header(conn, viewer, at, shop.timezone)
    router = request.app.router
    upload_url = (
        str(router[UPLOAD_ROUTE].url_for(conversation_id=str(job.conversation_id)))
        if job.conversation_id is not None and UPLOAD_ROUTE in router
        else None
    )
    return page(
        request,
        "job.html",
        viewer=viewer,
        header=header,
        status=status,
        job=job,
        allowed=Allowed.of(job),
        eta_default=default_eta(at, shop.timezone),
        phases=PHASES,
        upload_url=upload_url,
        problem=problem,
        refused=refused,
        typed=typed or {},
        nav="jobs",
    )


async def job_page(request: web.Request) -> web.Response:
    return await show(request)


async def _run(request: web.Request, unit: Unit[Any], typed: dict[str, str]) -> web.Response:
    """Write a move; the job's page again (303), or with core.jobs' refusal (409)."""
    job_id = object_id(request)
    try:
        await request.config_dict[keys.DATABASE].write(unit)
    except JobNotFound:
        raise web.HTTPNotFound from None
    except JobError as exc:
        return await _refused(request, typed, refused=str(exc), status=409)
    if wants_json(request):
        return web.json_response({"ok": True})
    return see_other(job_url(job_id))


async def _refused(
    request: web.Request,
    typed: dict[str, str],
    *,
    problem: str | None = None,
    refused: str | None = None,
    status: int = 400,
) -> web.Response:
    if wants_json(request):
        return web.json_response(
            {"ok": False, "problem": problem, "message": refused}, status=status
        )
    return await show(request, status=status, problem=problem, refused=refused, typed=typed)


def _unit(build: Any, *args: Any) -> tuple[Unit[Any] | None, str | None]:
    """Some core units check their input when made (an ETA, a window): that refusal is the
    owner's to read too."""
    try:
        return build(*args), None
    except JobError as exc:
        return None, str(exc)


async def _move(request: web.Request, build: Any, *args: Any, typed: dict[str, str]) -> Any:
    unit, refusal = _unit(build, *args)
    if unit is None:
        return await _refused(request, typed, refused=refusal, status=409)
    return await _run(request, unit, typed)


async def depart(request: web.Request) -> web.Response:
    viewer = current(request)
    shop = shop_of(request, viewer)
    at = now(request)
    form = await request.post()
    typed = {"eta": field_of(form, "eta")[:10]}
    eta = read_eta(typed["eta"], at, shop.timezone)
    if eta is None:
        return await _refused(request, typed, problem="eta")
    result: web.Response = await _move(
        request, job_changes.depart, viewer, object_id(request), eta, at, typed=typed
    )
    return result


async def start(request: web.Request) -> web.Response:
    viewer = current(request)
    return await _run(request, job_changes.start(viewer, object_id(request), now(request)), {})


async def complete(request: web.Request) -> web.Response:
    viewer = current(request)
    shop = shop_of(request, viewer)
    unit = job_changes.complete(viewer, shop, object_id(request), now(request))
    return await _run(request, unit, {})


async def reschedule(request: web.Request) -> web.Response:
    viewer = current(request)
    shop = shop_of(request, viewer)
    at = now(request)
    form = await request.post()
    typed = {name: field_of(form, name)[:20] for name in ("day", "start", "end")}
    service = shop.service(field_of(form, "service"))
    duration = timedelta(minutes=service.duration_minutes) if service else DEFAULT_DURATION
    problems: dict[str, str] = {}
    window = read_window(
        Window(typed["day"], typed["start"], typed["end"]),
        duration=duration,
        today=at.astimezone(shop.timezone).date(),
        tz=shop.timezone,
        problems=problems,
    )
    if window is None:
        field_name, code = next(iter(problems.items()))
        return await _refused(request, typed, problem=f"reschedule_{field_name}_{code}")
    result: web.Response = await _move(
        request,
        job_changes.reschedule,
        viewer,
        shop,
        object_id(request),
        window[0],
        window[1],
        at,
        typed=typed,
    )
    return result


async def _end(request: web.Request, status: str) -> web.Response:
    viewer = current(request)
    form = await request.post()
    reason = read_reason(field_of(form, "reason"))
    unit = job_changes.end_unfinished(viewer, object_id(request), status, reason, now(request))
    return await _run(request, unit, {"reason": reason})


async def cancel(request: web.Request) -> web.Response:
    return await _end(request, "cancelled")


async def no_show(request: web.Request) -> web.Response:
    return await _end(request, "no_show")


async def add_photo(request: web.Request) -> web.Response:
    """사진 추가, second step: a photo uploaded into the job's conversation (console.js posts
    it to bot/console/photos.py first) becomes the job's, with its phase and caption."""
    viewer = current(request)
    form = await request.post()
    photo = read_photo(form)
    typed = {"caption": field_of(form, "caption")[:200], "phase": field_of(form, "phase")[:10]}
    if photo is None:
        return await _refused(request, typed, problem="photo")
    result: web.Response = await _move(
        request,
        job_changes.attach_photo,
        viewer,
        object_id(request),
        photo.photo_id,
        photo.phase,
        photo.caption,
        now(request),
        typed=typed,
    )
    return result
