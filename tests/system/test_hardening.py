"""Bodies the JSON webhooks must refuse without a server error and without storing anything
(issue 10, defect 6): nesting deeper than the decoder goes, an integer past Python's
4,300-digit limit, and — on the Kakao skill — a body that is not `application/json`.
Real app, real database (SQLite and PostgreSQL)."""

from __future__ import annotations

import io
import json
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from conftest import Client, shop_table
from support.kakao_checks import assert_valid_skill_response

from bot import keys
from core.models import Conversation, Customer, DeliveryEvent, Message

PAYLOADS = Path(__file__).parents[1] / "payloads"
SECRET = "test-skill-secret"
SOLAPI_TOKEN = "test-solapi-webhook-token-0123456789"
os.environ.setdefault("DANGOL_TEST_SOLAPI_TOKEN", SOLAPI_TOKEN)

MakeClient = Callable[..., Awaitable[Client]]

DEEP = b"[" * 50_000 + b"]" * 50_000
HUGE_INTEGER = b"1" * 4_301


def skill_body(**user_request: Any) -> bytes:
    data = json.loads((PAYLOADS / "kakao" / "skill-fallback-text.json").read_text("utf-8"))
    data["userRequest"].update(user_request)
    return json.dumps(data, ensure_ascii=False).encode()


def with_huge_integer(body: bytes) -> bytes:
    """A real payload whose `action.params` carries a 4,301-digit integer."""
    data = json.loads(body)
    data["action"]["params"] = {"amount": "__N__"}
    return json.dumps(data, ensure_ascii=False).encode().replace(b'"__N__"', HUGE_INTEGER)


async def post_skill(
    client: Client, raw: bytes, content_type: str | None = "application/json"
) -> tuple[int, dict[str, Any]]:
    headers = {"X-Dangol-Skill-Secret": SECRET}
    if content_type is not None:
        headers["Content-Type"] = content_type
    resp = await client.post("/hooks/kakao/hanbit", data=io.BytesIO(raw), headers=headers)
    assert resp.content_type == "application/json", await resp.text()
    answer = await resp.json()
    assert_valid_skill_response(answer)  # errors too: the admin center's tester shows them
    return resp.status, answer


async def count(client: Client, model: Any) -> int:
    async with client.app[keys.DATABASE].read() as conn:
        return int((await conn.execute(sa.select(sa.func.count()).select_from(model))).scalar_one())


async def nothing_stored(client: Client) -> bool:
    return all([await count(client, m) == 0 for m in (Customer, Conversation, Message)])


# --------------------------------------------------------------------------- the Kakao skill


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(DEEP, id="50000-brackets"),
        pytest.param(b'{"userRequest": ' + b"[" * 50_000, id="deep-inside-an-object"),
        pytest.param(HUGE_INTEGER, id="4301-digit-integer"),
        pytest.param(with_huge_integer(skill_body()), id="4301-digit-integer-in-a-payload"),
    ],
)
async def test_kakao_answers_an_undecodable_body_400_and_stores_nothing(
    client: Client, raw: bytes
) -> None:
    status, _ = await post_skill(client, raw)
    assert status == 400
    assert await nothing_stored(client)


@pytest.mark.parametrize(
    "content_type",
    [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/jsonp",
        None,
    ],
)
async def test_kakao_refuses_a_body_that_is_not_json_with_415(
    client: Client, content_type: str | None
) -> None:
    status, _ = await post_skill(client, skill_body(), content_type)
    assert status == 415
    assert await nothing_stored(client)


@pytest.mark.parametrize(
    "content_type",
    ["application/json", "application/json;charset=UTF-8", "Application/JSON; charset=utf-8"],
)
async def test_kakao_accepts_json_as_kakao_labels_it(client: Client, content_type: str) -> None:
    # PROTOCOLS §1.1: Kakao sends `application/json;charset=UTF-8`.
    status, _ = await post_skill(client, skill_body(), content_type)
    assert status == 200
    assert await count(client, Message) == 2  # the customer's message and the bot's answer


# --------------------------------------------------------------------------- SOLAPI reports


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(DEEP, id="50000-brackets"),
        pytest.param(b"[" + HUGE_INTEGER + b"]", id="4301-digit-integer"),
    ],
)
async def test_solapi_report_answers_an_undecodable_body_400(
    make_client: MakeClient, raw: bytes
) -> None:
    shop = shop_table(solapi={"webhook_token_env": "DANGOL_TEST_SOLAPI_TOKEN"})
    client = await make_client(shops=[shop])
    resp = await client.post(
        f"/hooks/solapi/hanbit/{SOLAPI_TOKEN}",
        data=io.BytesIO(raw),
        headers={"Content-Type": "application/json"},
    )
    assert resp.status == 400
    assert await resp.json() == {"ok": False, "error": "malformed report"}
    assert await count(client, DeliveryEvent) == 0


# --------------------------------------------------------------------------- the simulator


@pytest.mark.parametrize(
    "raw",
    [pytest.param(DEEP, id="50000-brackets"), pytest.param(HUGE_INTEGER, id="4301-digit-integer")],
)
async def test_simulator_answers_an_undecodable_body_400(client: Client, raw: bytes) -> None:
    resp = await client.post(
        "/simulator/api/say", data=io.BytesIO(raw), headers={"Content-Type": "application/json"}
    )
    assert resp.status == 400
    assert (await resp.json())["error"] == "not_json"
    assert await nothing_stored(client)
