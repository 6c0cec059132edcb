"""Posting to the test app's Twilio webhooks, signed as Twilio signs them."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient
from conftest import shop_table
from fakes.twilio import ACCOUNT_SID, AUTH_TOKEN, signed_request

Client = TestClient[web.Request, web.Application]
MakeClient = Callable[..., Awaitable[Client]]

PUBLIC = "http://127.0.0.1:8080"  # server.public_url in the test settings
TWILIO = {
    "account_sid": ACCOUNT_SID,
    "auth_token": AUTH_TOKEN,
    "from_number": "+14155550199",
    "base_url": "http://127.0.0.1:9",  # nothing listens: nothing is due in these tests anyway
}


async def twilio_client(make_client: MakeClient, **server: Any) -> Client:
    return await make_client(
        server={"simulator": True, "public_url": PUBLIC, **server},
        providers={"twilio": dict(TWILIO)},
        shops=[shop_table(delivery={"sms": "twilio"}, sms_ack_delay_seconds=90)],
    )


async def post_signed(
    client: Client,
    path: str,
    form: dict[str, str],
    *,
    url: str | None = None,
    token: str = AUTH_TOKEN,
    headers: dict[str, str] | None = None,
    drop_signature: bool = False,
) -> Any:
    signed_headers, body = signed_request(url or PUBLIC + path, form, token)
    if drop_signature:
        del signed_headers["X-Twilio-Signature"]
    return await client.post(path, data=body, headers={**signed_headers, **(headers or {})})
