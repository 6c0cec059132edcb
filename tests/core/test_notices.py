"""The owner's notices always go out — and one that fails all the same shows in the console.

The real app on SQLite and PostgreSQL, the owner notified by SMS through the real SOLAPI
adapter talking to the fake SOLAPI on loopback.
"""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from aiohttp.test_utils import TestServer
from conftest import Client, shop_table
from fakes.solapi import FakeSolapi
from support.console import add_account, sign_in
from support.settle import settled

from bot import keys
from core.models import Conversation, OutboxItem
from providers.base import Outgoing, PermanentError, Recipient
from providers.solapi import SolapiProvider

SKILL_REQUEST = Path(__file__).parents[1] / "payloads" / "kakao" / "skill-fallback-text.json"
OWNER = "01022223333"
WORDS = "에어컨에서 물이 새요 😊👍 빨리 와주세요"


@pytest.fixture
async def solapi() -> AsyncIterator[tuple[FakeSolapi, str]]:
    fake = FakeSolapi()  # SOLAPI's signature carries the real time, checked against it
    server = TestServer(fake.app, host="127.0.0.1")
    await server.start_server()
    try:
        yield fake, str(server.make_url("")).rstrip("/")
    finally:
        fake.release()
        await server.close()


@pytest.fixture
async def app(
    make_client: Callable[..., Awaitable[Client]],
    solapi: tuple[FakeSolapi, str],
    cheap_hasher: None,
) -> Client:
    fake, url = solapi
    owner = {"name": "김사장", "phone": "010-2222-3333", "notify_via": ["solapi"]}
    return await make_client(
        providers={
            "solapi": {
                "api_key": fake.api_key,
                "api_secret": fake.api_secret,
                "sender": "0212345678",
                "base_url": url,
            }
        },
        shops=[shop_table(owner=owner)],
    )


async def customer_says(client: Client, text: str) -> None:
    data = json.loads(SKILL_REQUEST.read_text("utf-8"))
    data["userRequest"]["utterance"] = text
    resp = await client.post(
        "/hooks/kakao/hanbit",
        data=io.BytesIO(json.dumps(data, ensure_ascii=False).encode()),
        headers={"Content-Type": "application/json", "X-Dangol-Skill-Secret": "test-skill-secret"},
    )
    assert resp.status == 200


async def settled_notices(client: Client) -> list[Any]:
    """Send what is due; wait for sends the app's own tick has under way."""
    assert client.app is not None
    await client.app[keys.OUTBOX].drain()
    await settled(client.app)
    async with client.app[keys.DATABASE].read() as conn:
        stmt = sa.select(OutboxItem).where(OutboxItem.purpose == "owner_notification")
        return list((await conn.execute(stmt)).all())


async def test_an_emoji_in_the_customers_words_does_not_cost_the_owner_the_notice(
    app: Client, solapi: tuple[FakeSolapi, str]
) -> None:
    fake, _ = solapi
    await customer_says(app, WORDS)
    (notice,) = await settled_notices(app)
    assert notice.status == "sent", notice.last_error
    (sms,) = fake.messages.values()
    assert sms["to"] == OWNER
    assert "에어컨에서 물이 새요 □ 빨리 와주세요" in sms["text"]  # two emoji, one stand-in
    assert "😊" not in sms["text"]


def test_a_customer_is_still_never_sent_a_stand_in() -> None:
    """The stand-in is for the owner's quote only: to a customer the same text is refused
    (a "?" or □ in what the shop says would be worse than a failed send the owner sees)."""
    solapi = SolapiProvider({"api_key": "k", "api_secret": "s", "sender": "0212345678"})
    to_customer = Outgoing("1", Recipient(phone="+821055556666"), "감사합니다 😊")
    with pytest.raises(PermanentError, match="문자로 보낼 수 없는 글자"):
        solapi.build_message(to_customer)
    to_owner = Outgoing("2", Recipient(phone="+821022223333", owner=True), "고객: 감사합니다 😊")
    body, path = solapi.build_message(to_owner)
    assert (body["text"], path) == ("고객: 감사합니다 □", "sms")


async def test_a_failed_notice_shows_in_the_console_while_its_customer_waits(
    app: Client, solapi: tuple[FakeSolapi, str]
) -> None:
    fake, _ = solapi
    fake.fail_recipient(OWNER, "3059", "수신 거부된 번호")
    await add_account(app)
    csrf = await sign_in(app)

    home = await (await app.get("/console/")).text()
    assert 'id="failed-notices"' not in home

    await customer_says(app, "보일러가 안 켜져요")
    (notice,) = await settled_notices(app)
    assert notice.status == "dead"
    async with app.app[keys.DATABASE].read() as conn:  # type: ignore[union-attr]
        (conv,) = (await conn.execute(sa.select(Conversation))).all()

    for page in ("/console/", f"/console/c/{conv.id}", "/console/saved-replies"):
        html = await (await app.get(page)).text()
        assert 'id="failed-notices"' in html, page
        assert "사장님께 보내는 알림을 보내지 못했어요" in html
        assert f'href="/console/c/{conv.id}">고객 #{conv.customer_id}</a>' in html
        assert "solapi: " in html
        assert "3059" in html  # the vendor's reason, as the outbox recorded it

    # Once someone answers the customer, the banner has done its work.
    resp = await app.post(
        f"/console/c/{conv.id}/reply",
        data={"text": "지금 확인했어요", "csrf": csrf},
        headers={"Accept": "application/json"},
    )
    assert resp.status == 200, await resp.text()
    home = await (await app.get("/console/")).text()
    assert 'id="failed-notices"' not in home
