"""API tokens for the tests of the jobs API and the calendar feed: made through the same
unit the console and CLI use, on the test app's database."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from aiohttp import web
from aiohttp.test_utils import TestClient

from bot import keys
from core.api_tokens import create, hash_token, revoke
from core.models import ApiToken

Client = TestClient[web.Request, web.Application]


def _app(client: Client) -> web.Application:
    assert client.app is not None
    return client.app


async def make_token(
    client: Client, scope: str = "api", *, shop: str = "hanbit", name: str = "예약 페이지"
) -> str:
    """A new token's secret."""
    app = _app(client)
    unit = create(app[keys.SHOP_IDS][shop], scope, name, "cli", app[keys.CLOCK].now())
    made = await app[keys.DATABASE].write(unit)
    return made.secret


async def revoke_token(client: Client, secret: str) -> None:
    app = _app(client)
    async with app[keys.DATABASE].read() as conn:
        token_id = (
            await conn.execute(
                sa.select(ApiToken.id).where(ApiToken.token_hash == hash_token(secret))
            )
        ).scalar_one()
    await app[keys.DATABASE].write(revoke(token_id, "cli", app[keys.CLOCK].now()))


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def booking(**overrides: Any) -> dict[str, Any]:
    """A valid POST /api/jobs body: 26 Nov 2026 (a Thursday) 14:00–16:00 in Seoul."""
    body: dict[str, Any] = {
        "customer": {"phone": "010-5555-6666", "name": "김민수"},
        "service": "aircon",
        "starts_at": "2026-11-26T14:00:00+09:00",
        "ends_at": "2026-11-26T16:00:00+09:00",
        "address": "서울시 마포구 월드컵로 12",
        "price_krw": 80000,
        "notes": "실외기 베란다",
    }
    body.update(overrides)
    return body
