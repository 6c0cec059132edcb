"""Twilio's inbound-SMS and status-callback webhooks end to end: the real app, SQLite and
PostgreSQL, requests signed by the `twilio` package's own RequestValidator."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from conftest import Client
from fakes.twilio import (
    inbound_sms_form,
    status_callback_form,
)
from support.twilio import PUBLIC, post_signed, twilio_client

from bot import keys
from core.clock import FrozenClock
from core.models import AuditEntry, Consent, Conversation, CustomerIdentity, Message, OutboxItem
from core.replies import owner_reply

CUSTOMER = "+14155550123"

MakeClient = Callable[..., Awaitable[Client]]


async def text(client: Client, body: str, **form_args: Any) -> tuple[Any, dict[str, str]]:
    form = inbound_sms_form(body, **form_args)
    resp = await post_signed(client, "/hooks/twilio/hanbit/sms", form)
    return resp, form


async def rows(client: Client, model: Any) -> list[Any]:
    async with client.app[keys.DATABASE].read() as conn:
        return list((await conn.execute(sa.select(model).order_by(model.id))).all())


async def sms_out(client: Client) -> list[Any]:
    """The outbox rows to the customer (the owner's notifications left out)."""
    return [r for r in await rows(client, OutboxItem) if r.purpose == "reply"]


async def test_inbound_sms_starts_a_conversation_and_queues_a_delayed_ack(
    make_client: MakeClient,
) -> None:
    client = await twilio_client(make_client)
    resp, _ = await text(client, "보일러가 안 켜져요")
    assert resp.status == 200
    assert resp.content_type == "text/xml"
    assert "<Response/>" in await resp.text()

    (ident,) = await rows(client, CustomerIdentity)
    assert (ident.kind, ident.value) == ("phone", CUSTOMER)
    (conv,) = await rows(client, Conversation)
    assert conv.channel == "sms"
    assert conv.waiting_since is not None
    inbound, reply = await rows(client, Message)
    assert (inbound.direction, inbound.channel, inbound.body) == ("in", "sms", "보일러가 안 켜져요")
    assert (reply.sender, reply.status, reply.path) == ("bot", "queued", "sms")

    (item,) = await sms_out(client)
    now = client.app[keys.CLOCK].now()
    assert (item.provider, item.purpose, item.message_id) == ("twilio", "reply", reply.id)
    assert item.recipient["phone"] == CUSTOMER
    assert item.payload["text"] == reply.body
    assert item.not_before == now + timedelta(seconds=90)
    assert item.idempotency_key.startswith(f"sms-ack:{conv.id}:")

    # A follow-up in the same wait queues no second acknowledgement.
    await text(client, "언제 오세요?")
    assert len(await sms_out(client)) == 1
    assert len([m for m in await rows(client, Message) if m.direction == "in"]) == 2


async def test_owner_answering_first_cancels_the_ack(make_client: MakeClient) -> None:
    client = await twilio_client(make_client)
    await text(client, "보일러가 안 켜져요")
    (conv,) = await rows(client, Conversation)
    app = client.app
    shop = app[keys.SETTINGS].shop("hanbit")
    assert shop is not None
    await app[keys.DATABASE].write(
        owner_reply(
            app[keys.SHOP_IDS]["hanbit"],
            conv.id,
            "30분 뒤에 갈게요",
            shop.delivery,
            app[keys.CLOCK].now() + timedelta(seconds=30),
        )
    )
    ack, answer = await sms_out(client)
    assert ack.idempotency_key.startswith("sms-ack:")
    assert ack.status == "cancelled"
    assert answer.status == "pending"
    assert answer.payload["text"] == "30분 뒤에 갈게요"
    ack_message = next(m for m in await rows(client, Message) if m.id == ack.message_id)
    assert ack_message.status == "cancelled"


async def test_faq_answer_by_sms_goes_without_delay(make_client: MakeClient) -> None:
    client = await twilio_client(make_client)
    await text(client, "출장비 얼마예요?")
    (item,) = await sms_out(client)
    assert item.not_before == client.app[keys.CLOCK].now()
    assert "2만원" in item.payload["text"]


async def test_same_message_sid_twice_is_stored_once(
    make_client: MakeClient, clock: FrozenClock
) -> None:
    client = await twilio_client(make_client)
    form = inbound_sms_form("보일러가 안 켜져요")
    for _ in range(2):
        resp = await post_signed(client, "/hooks/twilio/hanbit/sms", form)
        assert resp.status == 200
    # And again after the Kakao resend window: Twilio's id, not the time, decides.
    clock.advance(minutes=5)
    assert (await post_signed(client, "/hooks/twilio/hanbit/sms", form)).status == 200
    assert len([m for m in await rows(client, Message) if m.direction == "in"]) == 1
    assert len(await sms_out(client)) == 1


async def test_wrong_or_missing_signature_is_refused(make_client: MakeClient) -> None:
    client = await twilio_client(make_client)
    form = inbound_sms_form("안녕하세요")
    path = "/hooks/twilio/hanbit/sms"
    assert (await post_signed(client, path, form, token="not-the-token")).status == 403
    assert (await post_signed(client, path, form, drop_signature=True)).status == 403
    tampered = await post_signed(client, path, form, url=PUBLIC + "/hooks/twilio/other/sms")
    assert tampered.status == 403
    assert await rows(client, Message) == []
    assert await rows(client, CustomerIdentity) == []


async def test_unknown_shop_or_no_twilio_is_404(make_client: MakeClient) -> None:
    client = await twilio_client(make_client)
    form = inbound_sms_form("안녕하세요")
    assert (await post_signed(client, "/hooks/twilio/nobody/sms", form)).status == 404
    plain = await make_client()
    assert (await post_signed(plain, "/hooks/twilio/hanbit/sms", form)).status == 404


async def test_forwarded_url_is_used_only_when_trusted(make_client: MakeClient) -> None:
    client = await twilio_client(make_client, trust_proxy=True)
    form = inbound_sms_form("안녕하세요")
    path = "/hooks/twilio/hanbit/sms"
    proxied = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "shop.example.com"}
    url = "https://shop.example.com" + path
    assert (await post_signed(client, path, form, url=url, headers=proxied)).status == 200

    untrusting = await twilio_client(make_client)
    other = inbound_sms_form("안녕하세요")
    assert (await post_signed(untrusting, path, other, url=url, headers=proxied)).status == 403


async def test_behind_the_proxy_only_its_own_hop_is_the_signed_url(make_client: MakeClient) -> None:
    """Issue 12: the left-most X-Forwarded-Proto/-Host was believed — the client's own,
    since a proxy appends its value to what the client sent."""
    client = await twilio_client(make_client, trust_proxy=True)
    path = "/hooks/twilio/hanbit/sms"
    proxied = {
        "X-Forwarded-Proto": "http, https",
        "X-Forwarded-Host": "attacker.example, shop.example.com",
    }
    for chosen_by_client in ("http://attacker.example", "https://attacker.example"):
        form = inbound_sms_form("안녕하세요")
        resp = await post_signed(client, path, form, url=chosen_by_client + path, headers=proxied)
        assert resp.status == 403
    form = inbound_sms_form("안녕하세요")
    url = "https://shop.example.com" + path
    assert (await post_signed(client, path, form, url=url, headers=proxied)).status == 200


async def test_stop_withdraws_consent_without_a_second_text(make_client: MakeClient) -> None:
    client = await twilio_client(make_client)
    await text(client, "STOP")
    (consent,) = await rows(client, Consent)
    assert (consent.scope, consent.granted) == ("marketing", False)
    assert consent.source == "keyword:STOP"
    assert await sms_out(client) == []  # Twilio itself answers STOP


async def test_advanced_opt_out_type_is_recorded(make_client: MakeClient) -> None:
    client = await twilio_client(make_client)
    await text(client, "그만 보내세요", opt_out_type="STOP")
    (consent,) = await rows(client, Consent)
    assert (consent.granted, consent.source) == (False, "twilio:OptOutType")


async def test_korean_opt_out_is_confirmed_by_sms(make_client: MakeClient) -> None:
    client = await twilio_client(make_client)
    await text(client, "수신거부")
    (consent,) = await rows(client, Consent)
    assert consent.granted is False
    (item,) = await sms_out(client)
    assert item.not_before == client.app[keys.CLOCK].now()


async def _mark_sent(client: Client, message_id: int, sid: str) -> None:
    def unit(conn: Any) -> None:
        conn.execute(
            sa.update(Message)
            .where(Message.id == message_id)
            .values(status="sent", provider="twilio", provider_message_id=sid)
        )

    await client.app[keys.DATABASE].write(unit)


async def _status(client: Client, sid: str, status: str, **kw: Any) -> int:
    form = status_callback_form(sid, status, **kw)
    resp = await post_signed(client, "/hooks/twilio/hanbit/status", form)
    return int(resp.status)


async def test_status_callback_advances_and_never_goes_back(make_client: MakeClient) -> None:
    client = await twilio_client(make_client)
    await text(client, "출장비 얼마예요?")
    (reply,) = [m for m in await rows(client, Message) if m.direction == "out"]
    sid = "SM" + "ab" * 16
    await _mark_sent(client, reply.id, sid)

    assert await _status(client, sid, "delivered") == 204
    assert await _status(client, sid, "delivered") == 204  # the same callback twice
    assert await _status(client, sid, "sent") == 204  # late, out of order
    (after,) = [m for m in await rows(client, Message) if m.direction == "out"]
    assert after.status == "delivered"
    assert after.delivered_at is not None

    form = status_callback_form(sid, "failed")
    bad = await post_signed(client, "/hooks/twilio/hanbit/status", form, token="nope")
    assert bad.status == 403


async def test_error_21610_records_an_opt_out_once(make_client: MakeClient) -> None:
    client = await twilio_client(make_client)
    await text(client, "출장비 얼마예요?")
    (reply,) = [m for m in await rows(client, Message) if m.direction == "out"]
    sid = "SM" + "cd" * 16
    await _mark_sent(client, reply.id, sid)

    for _ in range(2):
        assert await _status(client, sid, "undelivered", to=CUSTOMER, error_code="21610") == 204
    (consent,) = await rows(client, Consent)
    assert (consent.granted, consent.source) == (False, "provider:twilio:21610")
    (audit,) = await rows(client, AuditEntry)  # as for SOLAPI's 080 opt-out
    assert (audit.action, audit.subject) == ("consent_withdrawn", f"customer:{consent.customer_id}")
    (after,) = [m for m in await rows(client, Message) if m.direction == "out"]
    assert after.status == "failed"
    assert after.error
