"""Posting SOLAPI delivery reports to the test app, as SOLAPI's webhook does."""

from __future__ import annotations

import copy
import io
import json
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient
from conftest import shop_table

Client = TestClient[web.Request, web.Application]
MakeClient = Callable[..., Awaitable[Client]]

PAYLOAD = Path(__file__).parents[1] / "payloads" / "solapi" / "webhook-single-report.json"
TOKEN = "test-solapi-webhook-token-0123456789"
os.environ.setdefault("DANGOL_TEST_SOLAPI_TOKEN", TOKEN)

FIXTURE_MID = "M4V20261122101500ABCDEFGHIJKLMN1"


async def solapi_client(make_client: MakeClient) -> Client:
    shop = shop_table(solapi={"webhook_token_env": "DANGOL_TEST_SOLAPI_TOKEN"})
    return await make_client(shops=[shop])


def fixture_body() -> list[dict[str, Any]]:
    data: list[dict[str, Any]] = json.loads(PAYLOAD.read_text("utf-8"))
    return data


def report(
    event: str, code: str, message: str = "", *, mid: str = FIXTURE_MID, ref: str | None = None
) -> dict[str, Any]:
    item = copy.deepcopy(fixture_body()[0])
    item["eventDataId"] = event
    item["data"].update(messageId=mid, statusCode=code, statusMessage=message)
    item["data"]["customFields"] = {"ourId": ref} if ref else {}
    return item


async def post(
    client: Client,
    body: Any = None,
    *,
    raw: bytes | None = None,
    token: str = TOKEN,
    shop: str = "hanbit",
) -> tuple[int, Any]:
    data = raw if raw is not None else json.dumps(body, ensure_ascii=False).encode()
    resp = await client.post(
        f"/hooks/solapi/{shop}/{token}",
        data=io.BytesIO(data),
        headers={"Content-Type": "application/json"},
    )
    return resp.status, await resp.json()
