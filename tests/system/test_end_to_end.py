"""The demo, made real by configuration alone.

`config.example.toml` — the file `make demo` runs — is loaded as it ships, and only
configuration changes: the console provider gives way to SOLAPI and Twilio adapters
pointed at fake vendor servers on loopback, the owner is notified by SMS, replies go by
the vendors. Then one customer's whole conversation runs through the real app, on SQLite
and PostgreSQL: inbound SMS → owner notified → delayed acknowledgement → owner's reply from
the console → delivery reports from both vendors.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from aiohttp.test_utils import TestClient, TestServer
from conftest import Client
from fakes.kakao_event import BOT_ID, EVENT_NAME, REST_API_KEY, FakeKakaoEvent
from fakes.solapi import FakeSolapi
from fakes.twilio import (
    ACCOUNT_SID,
    AUTH_TOKEN,
    FakeTwilio,
    inbound_sms_form,
    signed_request,
    status_callback_form,
)
from support.console import add_account, sign_in
from support.settle import settled

from bot import keys
from bot.app import create_app
from core import config as config_mod
from core.clock import FrozenClock
from core.models import Conversation, CustomerIdentity, DeliveryEvent, Message, OutboxItem
from scheduler.planners.delivery_check import check_deliveries

EXAMPLE = Path(__file__).resolve().parents[2] / "config.example.toml"
SKILL_REQUEST = Path(__file__).parents[1] / "payloads" / "kakao" / "skill-fallback-text.json"
KAKAO_USER = json.loads(SKILL_REQUEST.read_text("utf-8"))["userRequest"]["user"]["properties"][
    "botUserKey"
]
PUBLIC = "http://127.0.0.1:8080"  # server.public_url as the example ships it
CUSTOMER = "+14155550123"  # texts the shop's Twilio number
SHOP_NUMBER = "+14155550199"
OWNER_NATIONAL = "01022223333"  # [shops.owner] phone in the example
WEBHOOK_TOKEN = "e2e-solapi-webhook-token-0123456789abcdef"
PF_ID = "KA01PF2611220000000000000000001"
ENV = {
    "DANGOL_DEMO_SKILL_SECRET": "e2e-skill-secret",
    "DANGOL_SOLAPI_API_KEY": "NCSFAKEKEY",
    "DANGOL_SOLAPI_API_SECRET": "fake-secret",
    "DANGOL_TWILIO_AUTH_TOKEN": AUTH_TOKEN,
    "DANGOL_DEMO_SOLAPI_WEBHOOK_TOKEN": WEBHOOK_TOKEN,
    "DANGOL_KAKAO_REST_API_KEY": REST_API_KEY,
}


@dataclass
class World:
    client: Client
    clock: FrozenClock
    solapi: FakeSolapi
    twilio: FakeTwilio
    kakao: FakeKakaoEvent
    csrf: str | None = None  # the owner's console session, once signed in

    @property
    def app(self) -> Any:
        return self.client.app

    async def drain(self) -> None:
        """Send what is due now, and wait for sends the app's own tick has under way."""
        await self.app[keys.OUTBOX].drain()
        await settled(self.app)

    async def owner_replies(self, conversation_id: int, text: str) -> dict[str, Any]:
        """The owner answers from the console (signed in on first use); the JSON answer."""
        if self.csrf is None:
            await add_account(self.client, "owner", shop="demo")
            self.csrf = await sign_in(self.client, "owner")
        resp = await self.client.post(
            f"/console/c/{conversation_id}/reply",
            data={"text": text, "csrf": self.csrf},
            headers={"Accept": "application/json"},
        )
        assert resp.status == 200, await resp.text()
        answer: dict[str, Any] = await resp.json()
        return answer

    async def kakao_says(self, text: str) -> list[str]:
        """The Kakao customer (KAKAO_USER) writes to the shop's skill; the bubbles shown."""
        data = json.loads(SKILL_REQUEST.read_text("utf-8"))
        data["userRequest"]["utterance"] = text
        resp = await self.client.post(
            "/hooks/kakao/demo",
            json=data,
            headers={"X-Dangol-Skill-Secret": ENV["DANGOL_DEMO_SKILL_SECRET"]},
        )
        assert resp.status == 200
        answer = await resp.json()
        return [o["simpleText"]["text"] for o in answer["template"]["outputs"]]

    async def rows(self, model: Any) -> list[Any]:
        async with self.app[keys.DATABASE].read() as conn:
            return list((await conn.execute(sa.select(model).order_by(model.id))).all())


def real_installation(
    db_url: tuple[str, str | None],
    tmp_path: Path,
    solapi_url: str,
    twilio_url: str,
    kakao_url: str,
) -> dict[str, Any]:
    """The example config with the changes an installer makes for a real shop."""
    data = tomllib.loads(EXAMPLE.read_text("utf-8"))
    url, schema = db_url
    data["database"] = {"url": url, **({"schema": schema} if schema else {})}
    data["storage"]["path"] = str(tmp_path / "uploads")
    data["providers"] = {
        "solapi": {
            "api_key_env": "DANGOL_SOLAPI_API_KEY",
            "api_secret_env": "DANGOL_SOLAPI_API_SECRET",
            "sender": "0212345678",
            "base_url": solapi_url,
        },
        "twilio": {
            "account_sid": ACCOUNT_SID,
            "auth_token_env": "DANGOL_TWILIO_AUTH_TOKEN",
            "from_number": SHOP_NUMBER,
            "status_callback_url": f"{PUBLIC}/hooks/twilio/demo/status",
            "base_url": twilio_url,
        },
        "kakao_event": {
            "rest_api_key_env": "DANGOL_KAKAO_REST_API_KEY",
            "bot_id": BOT_ID,
            "event_name": EVENT_NAME,
            "base_url": kakao_url,
        },
    }
    (shop,) = data["shops"]
    shop["owner"]["notify_via"] = ["solapi"]
    shop["solapi"] = {"webhook_token_env": "DANGOL_DEMO_SOLAPI_WEBHOOK_TOKEN"}
    shop["delivery"] = {"sms": "twilio", "event_api": "kakao_event"}
    return data


@pytest.fixture
async def world(
    request: pytest.FixtureRequest,
    db_url: tuple[str, str | None],
    tmp_path: Path,
    clock: FrozenClock,
    monkeypatch: pytest.MonkeyPatch,
    cheap_hasher: None,
) -> AsyncIterator[World]:
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    # SOLAPI signs each request with the real time (the adapter's own clock), so the fake
    # checks that against its own real time, not the app's frozen clock.
    solapi, twilio, kakao = FakeSolapi(), FakeTwilio(), FakeKakaoEvent()
    servers = [TestServer(fake.app, host="127.0.0.1") for fake in (solapi, twilio, kakao)]
    for server in servers:
        await server.start_server()
    urls = [str(s.make_url("")).rstrip("/") for s in servers]
    data = real_installation(db_url, tmp_path, *urls)
    data["shops"][0]["owner"].update(getattr(request, "param", {}))  # a test's own changes
    data["providers"]["solapi"]["pf_id"] = PF_ID
    settings = config_mod.parse(data, str(EXAMPLE), EXAMPLE.parent)
    client: Client = TestClient(TestServer(create_app(settings, clock=clock)))
    await client.start_server()
    try:
        yield World(client, clock, solapi, twilio, kakao)
    finally:
        for fake in (solapi, twilio, kakao):
            fake.release()
        await client.close()
        for server in servers:
            await server.close()


async def text_the_shop(world: World, body: str) -> None:
    path = "/hooks/twilio/demo/sms"
    headers, form = signed_request(PUBLIC + path, inbound_sms_form(body, to=SHOP_NUMBER))
    resp = await world.client.post(path, data=form, headers=headers)
    assert resp.status == 200
    assert "<Response/>" in await resp.text()


async def twilio_reports(world: World, sid: str, status: str) -> None:
    path = "/hooks/twilio/demo/status"
    form = status_callback_form(sid, status, to=CUSTOMER, sender=SHOP_NUMBER)
    headers, body = signed_request(PUBLIC + path, form)
    resp = await world.client.post(path, data=body, headers=headers)
    assert resp.status == 204


async def solapi_reports(world: World, message_id: str, ref: str, code: str) -> None:
    report = {
        "eventDataId": f"EV-{message_id}-{code}",
        "retryCount": 0,
        "data": {
            "messageId": message_id,
            "type": "SMS",
            "to": OWNER_NATIONAL,
            "from": "0212345678",
            "statusCode": code,
            "statusMessage": "정상 수신" if code == "4000" else "실패",
            "customFields": {"ourId": ref},
        },
    }
    resp = await world.client.post(
        f"/hooks/solapi/demo/{WEBHOOK_TOKEN}",
        data=json.dumps([report], ensure_ascii=False).encode(),
        headers={"Content-Type": "application/json"},
    )
    assert resp.status == 200


async def test_a_whole_sms_conversation_through_the_vendors(world: World) -> None:
    # 1. The customer texts the shop's Twilio number.
    await text_the_shop(world, "에어컨에서 물이 새요")
    (conv,) = await world.rows(Conversation)
    assert (conv.channel, conv.status) == ("sms", "open")
    await world.drain()

    # 2. The owner hears of it by SMS through SOLAPI, at once; the customer hears nothing yet.
    (notice,) = world.solapi.messages.values()
    assert notice["to"] == OWNER_NATIONAL
    assert notice["type"] in ("SMS", "LMS")
    assert "에어컨에서 물이 새요" in notice["text"]
    assert world.twilio.sent_to(CUSTOMER) == []

    # 3. Nobody answered within the delay: the acknowledgement goes by Twilio SMS.
    world.clock.advance(seconds=91)
    await world.drain()
    (ack,) = world.twilio.sent_to(CUSTOMER)
    assert ack["from"] == SHOP_NUMBER
    assert "사장님" in ack["body"] or "답변" in ack["body"]

    # 4. The owner answers from the console on their phone.
    answer = await world.owner_replies(conv.id, "내일 오전 10시에 방문드릴게요")
    assert answer["path"] == "sms"
    await world.drain()
    ack_again, reply_sent = world.twilio.sent_to(CUSTOMER)
    assert ack_again["sid"] == ack["sid"]
    assert reply_sent["body"] == "내일 오전 10시에 방문드릴게요"
    assert dict(world.twilio.requests[-1])["StatusCallback"] == f"{PUBLIC}/hooks/twilio/demo/status"

    # 5. Twilio reports the reply delivered; the console shows it.
    await twilio_reports(world, reply_sent["sid"], "sent")
    await twilio_reports(world, reply_sent["sid"], "delivered")
    await twilio_reports(world, reply_sent["sid"], "sent")  # late and out of order: ignored
    reply = next(m for m in await world.rows(Message) if m.id == answer["message_id"])
    assert (reply.status, reply.provider, reply.provider_message_id) == (
        "delivered",
        "twilio",
        reply_sent["sid"],
    )
    page = await world.client.get(f"/console/c/{conv.id}")
    assert "전달됨" in await page.text()

    # 6. SOLAPI reports the owner's notification delivered: stored once, redelivery ignored.
    notice_row = next(r for r in await world.rows(OutboxItem) if r.purpose == "owner_notification")
    assert notice_row.status == "sent"
    for _ in range(2):
        await solapi_reports(world, notice["messageId"], str(notice_row.id), "4000")
    events = [(e.provider, e.status) for e in await world.rows(DeliveryEvent)]
    assert events == [("twilio", "sent"), ("twilio", "delivered"), ("solapi", "delivered")]

    # Every outbox row ended sent; nothing went twice.
    assert {r.status for r in await world.rows(OutboxItem)} == {"sent"}
    assert len(world.solapi.messages) == 1
    assert len(world.twilio.sent_to(CUSTOMER)) == 2
    conv_after = next(c for c in await world.rows(Conversation) if c.id == conv.id)
    assert conv_after.waiting_since is None
    assert conv_after.first_response_at is not None


async def test_the_owner_answering_within_the_delay_means_no_acknowledgement(
    world: World,
) -> None:
    await text_the_shop(world, "보일러가 안 켜져요")
    (conv,) = await world.rows(Conversation)
    world.clock.advance(seconds=30)
    await world.owner_replies(conv.id, "지금 바로 전화드릴게요")
    world.clock.advance(seconds=120)
    await world.drain()
    (only,) = world.twilio.sent_to(CUSTOMER)
    assert only["body"] == "지금 바로 전화드릴게요"
    statuses = {r.idempotency_key.split(":")[0]: r.status for r in await world.rows(OutboxItem)}
    assert statuses["sms-ack"] == "cancelled"


async def test_a_kakao_customer_gets_the_owners_reply_in_the_chat_room(world: World) -> None:
    """Skill request → acknowledgement → owner notified by SMS → the owner's reply goes by
    the Event API into the customer's chat room."""
    shown = await world.kakao_says("세탁기에서 소리가 나요")
    assert "사장님" in shown[0]
    await world.drain()
    (notice,) = world.solapi.messages.values()
    assert notice["to"] == OWNER_NATIONAL

    (conv,) = await world.rows(Conversation)
    answer = await world.owner_replies(conv.id, "오늘 오후 3시에 방문드릴게요")
    assert answer["path"] == "event_api"
    await world.drain()
    (talk,) = world.kakao.sent_to(KAKAO_USER)
    assert talk["event"] == {"name": EVENT_NAME, "data": {"text": "오늘 오후 3시에 방문드릴게요"}}
    reply = next(m for m in await world.rows(Message) if m.sender == "owner")
    assert (reply.status, reply.path, reply.provider) == ("sent", "event_api", "kakao_event")
    assert reply.provider_message_id == talk["taskId"]


async def test_a_report_that_beats_the_record_of_the_send_still_counts(world: World) -> None:
    """Twilio can report "delivered" before the outbox has committed the MessageSid it got:
    the report is kept and applied when the send is recorded."""
    await text_the_shop(world, "수도가 얼었어요")
    (conv,) = await world.rows(Conversation)
    twilio = world.app[keys.PROVIDERS]["twilio"]
    send = twilio.send

    async def send_then_report_at_once(batch: Any) -> Any:
        outcomes = await send(batch)
        for outcome in outcomes:
            await twilio_reports(world, outcome.provider_message_id, "delivered")
        return outcomes

    twilio.send = send_then_report_at_once
    message_id = (await world.owner_replies(conv.id, "지금 출발합니다"))["message_id"]
    await world.drain()
    reply = next(m for m in await world.rows(Message) if m.id == message_id)
    assert (reply.status, reply.delivered_at is not None) == ("delivered", True)


async def test_a_reply_the_chat_room_refuses_falls_back_to_the_mailbox(world: World) -> None:
    """The Event API accepts the talk but the customer is not a friend of the channel: the
    delivery check learns it from the task result and the reply waits in the mailbox for
    the customer's next message; the console says why."""
    world.kakao.not_friend.add(KAKAO_USER)
    await world.kakao_says("에어컨 청소 예약하고 싶어요")
    (conv,) = await world.rows(Conversation)
    message_id = (await world.owner_replies(conv.id, "목요일 오전 어떠세요?"))["message_id"]
    await world.drain()
    assert len(world.kakao.sent_to(KAKAO_USER)) == 1  # Kakao took it ...

    app = world.app
    shops = {app[keys.SHOP_IDS][s.slug]: s for s in app[keys.SETTINGS].shops}
    changed = await check_deliveries(
        app[keys.DATABASE], app[keys.PROVIDERS], shops, world.clock.now()
    )
    assert changed == [(app[keys.SHOP_IDS]["demo"], message_id, "held")]  # ... but could not
    reply = next(m for m in await world.rows(Message) if m.id == message_id)
    assert (reply.status, reply.path) == ("held", "mailbox")
    (why,) = reply.payload["fell_back"]
    assert why["path"] == "event_api"
    assert "친구" in why["reason"]
    page = await (await world.client.get(f"/console/c/{conv.id}")).text()
    assert "카카오 채널(으)로 보내지 못함" in page
    # Asking again changes nothing: the reply is no longer waiting on Kakao.
    assert (
        await check_deliveries(app[keys.DATABASE], app[keys.PROVIDERS], shops, world.clock.now())
        == []
    )

    shown = await world.kakao_says("네 확인했어요")
    assert any("목요일 오전 어떠세요?" in t for t in shown)
    reply = next(m for m in await world.rows(Message) if m.id == message_id)
    assert reply.status == "delivered"


async def test_with_the_customers_phone_the_refused_reply_goes_by_sms(world: World) -> None:
    world.kakao.blocked.add(KAKAO_USER)
    await world.kakao_says("보일러 점검 문의요")
    (conv,) = await world.rows(Conversation)
    app = world.app
    shop_id = app[keys.SHOP_IDS]["demo"]
    now = world.clock.now()
    await app[keys.DATABASE].write(  # the owner noted the customer's phone number
        lambda conn: conn.execute(
            sa.insert(CustomerIdentity).values(
                shop_id=shop_id,
                customer_id=conv.customer_id,
                kind="phone",
                value=CUSTOMER,
                created_at=now,
            )
        )
    )
    answer = await world.owner_replies(conv.id, "내일 9시에 갑니다")
    assert answer["path"] == "event_api"  # the chat room first
    await world.drain()
    shops = {shop_id: app[keys.SETTINGS].shop("demo")}
    changed = await check_deliveries(app[keys.DATABASE], app[keys.PROVIDERS], shops, now)
    assert changed == [(shop_id, answer["message_id"], "queued")]
    await world.drain()
    (sms,) = world.twilio.sent_to(CUSTOMER)
    assert sms["body"] == "내일 9시에 갑니다"
    reply = next(m for m in await world.rows(Message) if m.id == answer["message_id"])
    assert (reply.status, reply.path, reply.provider) == ("sent", "sms", "twilio")
    assert reply.provider_message_id == sms["sid"]


@pytest.mark.parametrize("world", [{"alimtalk_template": "KA01TP-OWNER-NOTICE"}], indirect=True)
async def test_owner_notices_by_alimtalk_with_an_sms_fallback(world: World) -> None:
    await text_the_shop(world, "에어컨 실외기에서\n소리가 심하게 나요")
    await world.drain()
    (notice,) = world.solapi.messages.values()
    assert notice["type"] == "ATA"
    assert notice["to"] == OWNER_NATIONAL
    options = notice["kakaoOptions"]
    assert (options["pfId"], options["templateId"]) == (PF_ID, "KA01TP-OWNER-NOTICE")
    assert options["variables"] == {
        "#{가게}": "한빛설비",
        "#{종류}": "새 문의",
        "#{고객}": "고객 #1",
        "#{내용}": "에어컨 실외기에서 소리가 심하게 나요",
    }
    assert options["disableSms"] is False  # SMS if the owner cannot get AlimTalk
