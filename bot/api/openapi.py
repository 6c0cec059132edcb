"""The jobs API described as OpenAPI 3.1, served at /api/openapi.json.

Every schema in it is the JSON Schema of the pydantic model the handler validates with
or answers from (`models.py`), so the document cannot drift from the code; a test checks
that it names every route the app registers under /api, and schemathesis checks the
answers against it.
"""

from __future__ import annotations

import functools
from typing import Any

from aiohttp import web
from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from bot import keys
from bot.api.models import (
    MAX_PAGE,
    Cancel,
    ErrorOut,
    JobCreate,
    JobOut,
    JobPage,
    JobPatch,
    Reschedule,
    ServiceList,
    Status,
)

_MODELS: list[tuple[type[BaseModel], JsonSchemaMode]] = [
    (JobCreate, "validation"),
    (JobPatch, "validation"),
    (Reschedule, "validation"),
    (Cancel, "validation"),
    (JobOut, "serialization"),
    (JobPage, "serialization"),
    (ServiceList, "serialization"),
    (ErrorOut, "serialization"),
]

_ERRORS = {
    400: "the body is not JSON",
    401: "no token, or one that is unknown, revoked or not for the API",
    404: "no such job in the token's shop",
    409: "the job's state does not allow it (e.g. cancelling a finished job)",
    413: "the body is too large",
    422: "the request does not fit the schema, or the job's rules refuse it",
}


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def _json(model: type[BaseModel]) -> dict[str, Any]:
    return {"application/json": {"schema": _ref(model)}}


def _answers(ok: int, model: type[BaseModel], errors: tuple[int, ...], **ok_extra: Any) -> Any:
    responses: dict[str, Any] = {
        str(ok): {"description": "OK", "content": _json(model), **ok_extra}
    }
    for status in (401, *errors):
        entry: dict[str, Any] = {"description": _ERRORS[status], "content": _json(ErrorOut)}
        if status == 401:
            entry["headers"] = {
                "WWW-Authenticate": {"schema": {"type": "string"}, "required": True}
            }
        responses[str(status)] = entry
    return responses


def _body(model: type[BaseModel], *, required: bool = True) -> dict[str, Any]:
    return {"required": required, "content": _json(model)}


_JOB_ID = {
    "name": "id",
    "in": "path",
    "required": True,
    "schema": {"type": "integer", "minimum": 1},
}
_CHANGES = (400, 404, 409, 413, 422)


def _paths() -> dict[str, Any]:
    statuses = list(Status.__args__)  # type: ignore[attr-defined]
    return {
        "/api/jobs": {
            "get": {
                "operationId": "listJobs",
                "summary": "The shop's jobs by start time, a page at a time",
                "parameters": [
                    {
                        "name": "from",
                        "in": "query",
                        "description": "jobs starting at or after this moment",
                        "schema": {"type": "string", "format": "date-time"},
                    },
                    {
                        "name": "to",
                        "in": "query",
                        "description": "jobs starting before this moment",
                        "schema": {"type": "string", "format": "date-time"},
                    },
                    {
                        "name": "status",
                        "in": "query",
                        "description": "only jobs in these statuses (repeat the parameter)",
                        "style": "form",
                        "explode": True,
                        "schema": {"type": "array", "items": {"type": "string", "enum": statuses}},
                    },
                    {
                        "name": "limit",
                        "in": "query",
                        "schema": {"type": "integer", "minimum": 1, "maximum": MAX_PAGE},
                    },
                    {
                        "name": "cursor",
                        "in": "query",
                        "description": "the next_cursor of the page before",
                        "schema": {"type": "string", "maxLength": 200},
                    },
                ],
                "responses": _answers(200, JobPage, (422,)),
            },
            "post": {
                "operationId": "createJob",
                "summary": "Book a job (the customer gets a confirmation at once)",
                "description": "201 with the new job; 200 with the same job when its "
                "external_ref was booked before (a retry books once).",
                "requestBody": _body(JobCreate),
                "responses": {
                    **_answers(
                        201,
                        JobOut,
                        (400, 409, 413, 422),
                        headers={"Location": {"schema": {"type": "string"}, "required": True}},
                    ),
                    "200": {
                        "description": "booked before (same external_ref)",
                        "content": _json(JobOut),
                    },
                },
            },
        },
        "/api/jobs/{id}": {
            "parameters": [_JOB_ID],
            "get": {
                "operationId": "getJob",
                "summary": "One job with its journey",
                "responses": _answers(200, JobOut, (404,)),
            },
            "patch": {
                "operationId": "changeJob",
                "summary": "Change the address, price or notes (nothing is sent)",
                "requestBody": _body(JobPatch),
                "responses": _answers(200, JobOut, _CHANGES),
            },
        },
        "/api/jobs/{id}/reschedule": {
            "parameters": [_JOB_ID],
            "post": {
                "operationId": "rescheduleJob",
                "summary": "A new arrival window (the customer is told)",
                "requestBody": _body(Reschedule),
                "responses": _answers(200, JobOut, _CHANGES),
            },
        },
        "/api/jobs/{id}/cancel": {
            "parameters": [_JOB_ID],
            "post": {
                "operationId": "cancelJob",
                "summary": "Cancel the job or mark a no-show (every message not sent is cancelled)",
                "requestBody": _body(Cancel, required=False),
                "responses": _answers(200, JobOut, _CHANGES),
            },
        },
        "/api/services": {
            "get": {
                "operationId": "listServices",
                "summary": "The shop's service catalogue (the keys a job is booked with)",
                "responses": _answers(200, ServiceList, ()),
            },
        },
        "/api/openapi.json": {
            "get": {
                "operationId": "openapi",
                "summary": "This document",
                "security": [],
                "responses": {
                    "200": {
                        "description": "OpenAPI 3.1",
                        "content": {"application/json": {"schema": {"type": "object"}}},
                    }
                },
            },
        },
    }


@functools.cache
def _document() -> dict[str, Any]:
    _, top = models_json_schema(_MODELS, ref_template="#/components/schemas/{model}")
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "dangol jobs API",
            "version": "1",
            "description": "Book and follow a shop's jobs from other software (a booking "
            "page, a calendar tool). Each shop's owner makes tokens in the console "
            "(/console/tokens) or with `dangol token create`; a token reaches its own "
            "shop's jobs only. Times are ISO 8601 with their offset; answers give them "
            "in the shop's time zone.",
        },
        "paths": _paths(),
        "components": {
            "schemas": top.get("$defs", {}),
            "securitySchemes": {"token": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"token": []}],
    }


def document(public_url: str) -> dict[str, Any]:
    """The document, its server this install's public address."""
    return {**_document(), "servers": [{"url": public_url.rstrip("/") or "/"}]}


async def serve(request: web.Request) -> web.Response:
    settings = request.config_dict[keys.SETTINGS]
    return web.json_response(
        document(settings.server.public_url),
        headers={"Cache-Control": "public, max-age=300"},
    )
