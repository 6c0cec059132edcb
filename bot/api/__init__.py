"""The jobs API: a sub-app at /api/ that lets a shop's booking page or calendar tool push
and follow jobs, with a per-shop token (`core.api_tokens`).

    guard.py      the bearer token → the shop it reaches; every refusal as JSON
    models.py     what a caller sends and gets back (pydantic: validation and the schema)
    jobs.py       the handlers, each change through a `core.jobs` unit
    reading.py    a job or a page of them, with their journeys
    customers.py  the customer a pushed job is for, found by phone or added
    openapi.py    /api/openapi.json, made from the same models
"""

from __future__ import annotations

from aiohttp import web

from bot.api import jobs, openapi
from bot.api.guard import guard

__all__ = ["api_app"]


def api_app() -> web.Application:
    """Mount with `app.add_subapp("/api/", api_app())`. It holds no resources: the
    database, clock and settings are the parent app's (`request.config_dict`)."""
    app = web.Application(middlewares=[guard])
    app.router.add_get("/openapi.json", openapi.serve, name="api_openapi")
    app.router.add_get("/jobs", jobs.list_jobs, name="api_jobs")
    app.router.add_post("/jobs", jobs.create_job, name="api_job_create")
    app.router.add_get(r"/jobs/{id:\d+}", jobs.get_job, name="api_job")
    app.router.add_patch(r"/jobs/{id:\d+}", jobs.patch_job, name="api_job_change")
    app.router.add_post(
        r"/jobs/{id:\d+}/reschedule", jobs.reschedule_job, name="api_job_reschedule"
    )
    app.router.add_post(r"/jobs/{id:\d+}/cancel", jobs.cancel_job, name="api_job_cancel")
    app.router.add_get("/services", jobs.list_services, name="api_services")
    return app
