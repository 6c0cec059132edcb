"""Talking to the test app as Kakao's skill server does, and reading what it stored."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from aiohttp import web
from aiohttp.test_utils import TestClient

from bot import keys
from support.kakao_checks import assert_valid_skill_response

Client = TestClient[web.Request, web.Application]

PAYLOADS = Path(__file__).parents[1] / "payloads" / "kakao"
SECRET = "test-skill-secret"
HEADER = "X-Dangol-Skill-Secret"


def payload(name: str = "skill-fallback-text.json", **user_request: Any) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((PAYLOADS / name).read_text("utf-8"))
    data["userRequest"].update(user_request)
    return data


def said(text: str, user: str | None = None) -> dict[str, Any]:
    data = payload(utterance=text)
    if user:
        data["userRequest"]["user"]["id"] = user
        data["userRequest"]["user"]["properties"]["botUserKey"] = user
    return data


async def post(
    client: Client,
    body: Any,
    *,
    secret: str | None = SECRET,
    shop: str = "hanbit",
    raw: bytes | None = None,
) -> tuple[int, dict[str, Any]]:
    headers = {"Content-Type": "application/json"}
    if secret is not None:
        headers[HEADER] = secret
    data = raw if raw is not None else json.dumps(body, ensure_ascii=False).encode()
    resp = await client.post(f"/hooks/kakao/{shop}", data=io.BytesIO(data), headers=headers)
    answer = await resp.json()
    assert_valid_skill_response(answer)  # every answer, errors included, is a SkillResponse
    return resp.status, answer


def texts(answer: dict[str, Any]) -> list[str]:
    return [o["simpleText"]["text"] for o in answer["template"]["outputs"]]


async def rows(client: Client, model: Any) -> list[Any]:
    """Every row of `model`'s table in the test app's database, in id order."""
    assert client.app is not None
    async with client.app[keys.DATABASE].read() as conn:
        return list((await conn.execute(sa.select(model).order_by(model.id))).all())
