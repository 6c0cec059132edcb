"""The jobs API against its own OpenAPI document: the document names every /api route the
app registers, and schemathesis, driven by the document, finds no 500 and no answer that
breaks it — on the real app, over loopback, with a valid token.

The fuzzing is bounded (a few dozen cases per operation, positive and negative) and
deterministic (derandomized, no example database), so it runs the same every time.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiohttp import web
from aiohttp.web_urldispatcher import PrefixedSubAppResource
from conftest import Client
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import APIOperation, Case, GenerationMode, openapi
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    ignored_auth,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from support.api import bearer, booking, make_token
from support.console import app_of

from bot.api.openapi import document

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    ignored_auth,  # a success re-sent without the token, and with a wrong one, must be 401
]
EXAMPLES = {GenerationMode.POSITIVE: 50, GenerationMode.NEGATIVE: 25}


def _api_routes(app: web.Application) -> set[tuple[str, str]]:
    """(method, path) of every route the app serves under /api/ — the sub-app's, and any
    added to the app itself — as OpenAPI writes paths ("/api/jobs/{id}")."""
    routes: list[web.AbstractRoute] = []
    for resource in app.router.resources():
        info = resource.get_info()
        if isinstance(resource, PrefixedSubAppResource) and info["prefix"] == "/api":
            routes += info["app"].router.routes()
        elif resource.canonical.startswith("/api/"):
            routes += list(resource)
    return {
        (route.method.lower(), route.resource.canonical)
        for route in routes
        if route.method != "HEAD" and route.resource is not None  # HEAD: aiohttp's, per GET
    }


async def test_the_document_describes_every_api_route_and_nothing_else(client: Client) -> None:
    routes = _api_routes(app_of(client))
    assert len(routes) >= 8  # the sub-app was found
    resp = await client.get("/api/openapi.json")
    assert resp.status == 200
    doc = await resp.json()
    assert doc["openapi"].startswith("3.1")
    described = {
        (method, path)
        for path, item in doc["paths"].items()
        for method in item
        if method in ("get", "post", "patch", "put", "delete")
    }
    assert described == routes
    assert doc["servers"] == [{"url": "http://127.0.0.1:8080"}]
    # Every schema it refers to is in it.
    for ref in _refs(doc):
        assert ref.removeprefix("#/components/schemas/") in doc["components"]["schemas"], ref


def _refs(value: Any) -> list[str]:
    if isinstance(value, dict):
        found = [value["$ref"]] if isinstance(value.get("$ref"), str) else []
        return found + [r for v in value.values() for r in _refs(v)]
    if isinstance(value, list):
        return [r for v in value for r in _refs(v)]
    return []


def _fuzz(doc: dict[str, Any], base_url: str, token: str) -> list[tuple[str, int]]:
    """Every operation, positive then negative cases; returns each case's operation and
    answer (for the test to check the run reached real jobs). Runs in a thread: the app
    answers on the test's event loop meanwhile."""
    schema = openapi.from_dict(doc)
    ran: list[tuple[str, int]] = []
    for result in schema.get_all_operations():
        operation = result.ok()
        inputs = len(operation.path_parameters) + len(operation.query) + len(operation.body)
        for mode, count in EXAMPLES.items():
            if mode.is_negative and not inputs:  # nothing to send wrong
                continue
            ran += _cases(operation, mode, count, base_url, bearer(token))
    return ran


def _cases(
    operation: APIOperation,
    mode: GenerationMode,
    count: int,
    base_url: str,
    headers: dict[str, str],
) -> list[tuple[str, int]]:
    checks = [*CHECKS, negative_data_rejection] if mode.is_negative else CHECKS
    ran: list[tuple[str, int]] = []

    @settings(
        max_examples=count,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case: Case) -> None:
        response = case.call_and_validate(base_url=base_url, headers=headers, checks=checks)
        ran.append((operation.label, response.status_code))

    run()
    return ran


@pytest.mark.timeout(300)
async def test_schemathesis_finds_no_server_error_and_no_answer_off_the_schema(
    client: Client,
) -> None:
    token = await make_token(client)
    # A few jobs, so the operations on /api/jobs/{id} meet real ones (ids 1, 2, 3…).
    for day in (24, 25, 26):
        resp = await client.post(
            "/api/jobs",
            json=booking(
                starts_at=f"2026-11-{day}T14:00:00+09:00",
                ends_at=f"2026-11-{day}T16:00:00+09:00",
            ),
            headers=bearer(token),
        )
        assert resp.status == 201
    base_url = str(client.make_url("")).rstrip("/")
    doc = document(base_url)
    ran = await asyncio.to_thread(_fuzz, doc, base_url, token)
    assert len(ran) > 300
    succeeded = {label for label, status in ran if status < 300}
    # Not only refusals: jobs were booked, read, changed and cancelled.
    assert {
        "POST /api/jobs",
        "GET /api/jobs",
        "GET /api/jobs/{id}",
        "PATCH /api/jobs/{id}",
    } <= succeeded
    assert {label for label, _ in ran} == {
        f"{method.upper()} {path}"
        for path, item in doc["paths"].items()
        for method in item
        if method != "parameters"
    }
