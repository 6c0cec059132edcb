"""Owner replies: the path chain of DESIGN §2 and what a reply does to the conversation."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa
from conftest import kst
from sqlalchemy.engine import Connection

from core.config import Delivery
from core.db import Database
from core.models import Conversation, Customer, CustomerIdentity, Message, OutboxItem, Shop
from core.replies import (
    ALIMTALK,
    EVENT_API,
    MAILBOX,
    SIMULATOR,
    SMS,
    Addresses,
    NoPath,
    choose_path,
    owner_reply,
)

NOW = kst(2026, 11, 23, 10, 0)
EVERYTHING = Delivery(event_api="fake", alimtalk="fake", alimtalk_template="TPL", sms="fake")
KAKAO_AND_PHONE = Addresses(phone="+821012345678", kakao_key="bot-user-1")


@pytest.mark.parametrize(
    ("channel", "delivery", "to", "expected"),
    [
        ("kakao", EVERYTHING, KAKAO_AND_PHONE, EVENT_API),
        (
            "kakao",
            Delivery(alimtalk="fake", alimtalk_template="T", sms="fake"),
            KAKAO_AND_PHONE,
            ALIMTALK,
        ),
        ("kakao", Delivery(sms="fake"), KAKAO_AND_PHONE, SMS),
        (
            "kakao",
            Delivery(alimtalk="fake", alimtalk_template="T", sms="fake"),
            Addresses(kakao_key="k"),
            MAILBOX,
        ),
        ("kakao", Delivery(), KAKAO_AND_PHONE, MAILBOX),
        ("sms", Delivery(sms="fake"), Addresses(phone="+14155550123"), SMS),
        ("simulator", EVERYTHING, Addresses(kakao_key="k"), SIMULATOR),
    ],
)
def test_first_usable_path_wins(
    channel: str, delivery: Delivery, to: Addresses, expected: object
) -> None:
    assert choose_path(channel, delivery, to) is expected


def test_an_sms_customer_without_an_sms_provider_cannot_be_reached() -> None:
    with pytest.raises(NoPath):
        choose_path("sms", Delivery(), Addresses(phone="+14155550123"))


async def _conversation(database: Database, channel: str, phone: str | None) -> tuple[int, int]:
    def unit(conn: Connection) -> tuple[int, int]:
        shop = conn.execute(
            sa.insert(Shop)
            .values(slug="s", name="s", owner_status="available", created_at=NOW)
            .returning(Shop.id)
        ).scalar_one()
        customer = conn.execute(
            sa.insert(Customer)
            .values(shop_id=shop, tier="bronze", tags=[], notes="", created_at=NOW)
            .returning(Customer.id)
        ).scalar_one()
        conn.execute(
            sa.insert(CustomerIdentity).values(
                shop_id=shop,
                customer_id=customer,
                kind="kakao_bot_user",
                value="bot-user-1",
                created_at=NOW,
            )
        )
        if phone:
            conn.execute(
                sa.insert(CustomerIdentity).values(
                    shop_id=shop, customer_id=customer, kind="phone", value=phone, created_at=NOW
                )
            )
        conv = conn.execute(
            sa.insert(Conversation)
            .values(
                shop_id=shop,
                customer_id=customer,
                channel=channel,
                status="open",
                complaint=False,
                unread_count=3,
                waiting_since=NOW - timedelta(minutes=12),
                sla_due_at=NOW + timedelta(minutes=18),
                last_message_at=NOW,
                created_at=NOW - timedelta(minutes=12),
            )
            .returning(Conversation.id)
        ).scalar_one()
        return shop, conv

    return await database.write(unit)


async def test_reply_without_a_path_is_held_in_the_mailbox(database: Database) -> None:
    shop, conv = await _conversation(database, "kakao", phone=None)
    sent = await database.write(
        owner_reply(shop, conv, "내일 10시에 갈게요", Delivery(sms="fake"), NOW)
    )
    assert sent.path is MAILBOX
    assert sent.outbox_id is None
    async with database.read() as c:
        msg = (await c.execute(sa.select(Message))).one()
        state = (await c.execute(sa.select(Conversation))).one()
    assert (msg.status, msg.path, msg.sender) == ("held", "mailbox", "owner")
    assert state.waiting_since is None
    assert state.first_response_seconds == 12 * 60
    assert state.unread_count == 0


async def test_reply_by_sms_goes_through_the_outbox(database: Database) -> None:
    shop, conv = await _conversation(database, "kakao", phone="+821012345678")
    sent = await database.write(owner_reply(shop, conv, "네 확인했어요", Delivery(sms="fake"), NOW))
    assert sent.path is SMS
    async with database.read() as c:
        item = (await c.execute(sa.select(OutboxItem))).one()
        msg = (await c.execute(sa.select(Message))).one()
    assert (item.provider, item.purpose, item.message_id) == ("fake", "reply", sent.message_id)
    assert item.recipient["phone"] == "+821012345678"
    assert msg.status == "queued"


async def test_a_second_reply_keeps_the_first_response_time(database: Database) -> None:
    shop, conv = await _conversation(database, "simulator", phone=None)
    await database.write(owner_reply(shop, conv, "첫 답", Delivery(), NOW))
    await database.write(owner_reply(shop, conv, "둘째 답", Delivery(), NOW + timedelta(hours=2)))
    async with database.read() as c:
        state = (await c.execute(sa.select(Conversation))).one()
        statuses = (await c.execute(sa.select(Message.status))).scalars().all()
    assert state.first_response_seconds == 12 * 60
    assert state.first_response_at == NOW
    assert list(statuses) == ["delivered", "delivered"]
