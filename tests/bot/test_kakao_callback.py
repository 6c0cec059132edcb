"""Kakao's AI-chatbot callback, and what a late answer does to the mailbox.

When the database is slower than the skill's budget the customer gets a holding reply; a
block with Callback enabled then gets the real answer POSTed to its one-time URL through
the outbox. Either way owner replies taken from the mailbox for the late answer go back to
it, so nothing is lost. Real app, SQLite and PostgreSQL; Kakao is a fake on loopback.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from conftest import Client
from support.kakao import post, rows, said, texts
from support.settle import settled
from support.slow_database import HeldWrites

from bot import keys
from core.models import Conversation, Message, OutboxItem
from core.replies import owner_reply
from providers.base import (
    Outgoing,
    PermanentError,
    Recipient,
    SendResult,
    TransientError,
    UnknownOutcome,
)
from providers.kakao_callback import KakaoCallbackProvider, bubbles, callback_body

MakeClient = Callable[..., Awaitable[Client]]
CALLBACK = "https://bot-api.kakao.com/v1/bots/66a1e9d0e4b0a1b2c3d4e000/callback/{token}"


@dataclass
class FakeCallbacks:
    """Kakao's callback endpoint: each token works once (PROTOCOLS §1.4)."""

    received: dict[str, dict[str, Any]] = field(default_factory=dict)
    hang: bool = False  # answer nothing until `release` (past the adapter's timeout)

    def __post_init__(self) -> None:
        self.app = web.Application()
        self.app.router.add_post("/v1/bots/{bot}/callback/{token}", self._callback)
        self._tasks = itertools.count(1)
        self.release = asyncio.Event()

    async def _callback(self, request: web.Request) -> web.Response:
        if self.hang:
            await self.release.wait()
        token = request.match_info["token"]
        task = f"task-{next(self._tasks)}"
        if token in self.received:
            return web.json_response(
                {"taskId": task, "status": "FAIL", "message": "Invalid callback token"}
            )
        self.received[token] = await request.json()
        return web.json_response({"taskId": task, "status": "SUCCESS", "message": ""})


@pytest.fixture
async def kakao() -> AsyncIterator[tuple[FakeCallbacks, str]]:
    fake = FakeCallbacks()
    server = TestServer(fake.app, host="127.0.0.1")
    await server.start_server()
    yield fake, str(server.make_url("")).rstrip("/")
    fake.release.set()
    await server.close()


async def callback_client(make_client: MakeClient, base_url: str) -> Client:
    """The app with a 100 ms skill budget, calling Kakao's callback at `base_url`."""
    return await make_client(
        server={"skill_budget_ms": 100},
        providers={"console": {}, "kakao_callback": {"base_url": base_url}},
    )


def with_callback(text: str, token: str, url: str = CALLBACK) -> dict[str, Any]:
    data = said(text)
    data["userRequest"]["callbackUrl"] = url.format(token=token)
    return data


async def test_a_late_answer_goes_to_the_callback_url(
    make_client: MakeClient, kakao: tuple[FakeCallbacks, str]
) -> None:
    fake, url = kakao
    client = await callback_client(make_client, url)
    async with HeldWrites(client.app):  # the database is slower than the budget
        status, answer = await post(client, with_callback("에어컨에서 물이 새요", "tok1"))
    assert status == 200
    assert answer == {
        "version": "2.0",
        "useCallback": True,
        "data": {"text": "메시지를 받았어요. 잠시만 기다려 주세요."},
    }

    await settled(client.app)
    body = fake.received["tok1"]
    assert body["version"] == "2.0"
    sent = " ".join(o["simpleText"]["text"] for o in body["template"]["outputs"])
    assert "사장님" in sent  # the honest acknowledgement itself, not the holding text
    (reply,) = [m for m in await rows(client, Message) if m.sender == "bot"]
    assert (reply.status, reply.path, reply.provider) == ("delivered", "callback", "kakao_callback")
    item = next(r for r in await rows(client, OutboxItem) if r.provider == "kakao_callback")
    assert (item.status, item.message_id) == ("sent", reply.id)


async def test_a_forged_callback_url_is_never_called(
    make_client: MakeClient, kakao: tuple[FakeCallbacks, str]
) -> None:
    fake, url = kakao
    client = await callback_client(make_client, url)
    forged = with_callback(
        "안녕하세요", "tok2", url="http://127.0.0.1:9/v1/bots/x/callback/{token}"
    )
    async with HeldWrites(client.app):
        status, answer = await post(client, forged)
    assert status == 200
    assert "useCallback" not in answer
    assert texts(answer) == ["메시지를 받았어요. 사장님이 확인하고 답변드릴게요."]
    await settled(client.app)
    assert any(m.direction == "in" for m in await rows(client, Message))
    assert not any(r.provider == "kakao_callback" for r in await rows(client, OutboxItem))
    assert fake.received == {}


async def test_in_time_the_answer_is_immediate_even_with_a_callback_url(
    make_client: MakeClient, kakao: tuple[FakeCallbacks, str]
) -> None:
    fake, url = kakao
    client = await make_client(providers={"console": {}, "kakao_callback": {"base_url": url}})
    status, answer = await post(client, with_callback("에어컨에서 물이 새요", "tok3"))
    assert status == 200
    assert "useCallback" not in answer
    assert any("사장님" in t for t in texts(answer))
    assert fake.received == {}


async def test_owner_replies_are_not_lost_when_the_answer_was_late(
    make_client: MakeClient,
) -> None:
    """A held owner reply taken for an answer the customer never saw goes back to the
    mailbox and is handed over with the next message."""
    # A budget no loaded machine misses: the held database alone makes the answer late.
    client = await make_client(server={"skill_budget_ms": 1000})
    app = client.app
    await post(client, said("보일러 점검 받고 싶어요"))
    await settled(app)
    (conv,) = await rows(client, Conversation)
    shop = app[keys.SETTINGS].shop("hanbit")
    assert shop is not None
    await app[keys.DATABASE].write(
        owner_reply(
            app[keys.SHOP_IDS]["hanbit"],
            conv.id,
            "내일 오전에 갈게요",
            shop.delivery,
            conv.created_at,
        )
    )

    async with HeldWrites(app):
        _, late = await post(client, said("언제 오세요?"))
    assert "내일 오전에 갈게요" not in " ".join(texts(late))
    await settled(app)
    bot = [m for m in await rows(client, Message) if m.sender == "bot"]
    assert len(bot) == 2
    assert bot[-1].status == "cancelled"  # the customer saw the holding text, not this reply
    (owner,) = [m for m in await rows(client, Message) if m.sender == "owner"]
    assert owner.status == "held"  # back in the mailbox

    _, next_answer = await post(client, said("네 알겠습니다"))
    assert any("내일 오전에 갈게요" in t for t in texts(next_answer))
    (owner,) = [m for m in await rows(client, Message) if m.sender == "owner"]
    assert owner.status == "delivered"


# --------------------------------------------------------------------------- the adapter


def out(url: str | None, text: str = "안녕하세요") -> Outgoing:
    return Outgoing(ref="1", recipient=Recipient(kakao_callback_url=url), text=text)


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


async def test_adapter_outcomes(
    kakao: tuple[FakeCallbacks, str], session: aiohttp.ClientSession
) -> None:
    fake, url = kakao
    provider = KakaoCallbackProvider({"base_url": url, "timeout": 0.3}, session)
    (ok,) = await provider.send([out(CALLBACK.format(token="a"))])
    assert isinstance(ok, SendResult)
    assert (ok.status, ok.path, ok.provider_message_id) == ("delivered", "callback", "task-1")
    (again,) = await provider.send([out(CALLBACK.format(token="a"))])
    assert isinstance(again, PermanentError)  # single use: Kakao says FAIL
    assert "Invalid callback token" in again.reason
    (elsewhere,) = await provider.send([out("https://evil.example/v1/bots/x/callback/t")])
    assert isinstance(elsewhere, PermanentError)
    assert elsewhere.code == "not_kakao"
    (nowhere,) = await provider.send([out(None)])
    assert isinstance(nowhere, PermanentError)
    fake.hang = True
    (hung,) = await provider.send([out(CALLBACK.format(token="b"))])
    assert isinstance(hung, UnknownOutcome)  # it may have been shown: never resend blindly
    assert len(fake.received) == 1


async def test_adapter_connection_refused_is_transient(session: aiohttp.ClientSession) -> None:
    provider = KakaoCallbackProvider({"base_url": "http://127.0.0.1:9", "timeout": 0.3}, session)
    (outcome,) = await provider.send([out(CALLBACK.format(token="c"))])
    assert isinstance(outcome, TransientError)


def test_bubbles_respect_kakao_limits() -> None:
    assert bubbles("하나\n\n둘") == ["하나\n\n둘"]
    long = ["가" * 900, "나" * 900, "다" * 900, "라" * 50]
    split = bubbles("\n\n".join(long))
    assert len(split) == 3
    assert all(len(b) <= 1000 for b in split)
    assert callback_body("x") == {
        "version": "2.0",
        "template": {"outputs": [{"simpleText": {"text": "x"}}]},
    }
