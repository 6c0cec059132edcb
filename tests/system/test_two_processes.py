"""Two dangol processes on one database receive the same customer at once (issue 10, defect
6): a Kakao burst from a new customer, delivered to both, must leave one customer with their
addresses and one conversation holding the messages — no customer without an address and no
empty conversation ("고객 #3 · 메시지 없음" in the inbox). Two app instances share the test
database; on PostgreSQL their transactions really interleave."""

from __future__ import annotations

import asyncio
import io
import json
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from conftest import Client, kst, make_settings
from sqlalchemy.engine import Connection

from bot import keys
from bot.app import create_app
from bot.handlers import build_switchboard
from bot.inbound import Arrival, Services, digest_of, receive, receiving
from core.clock import FrozenClock
from core.db import Database
from core.models import Conversation, Customer, CustomerIdentity, Message, Shop
from core.texts import Texts

PAYLOAD = Path(__file__).parents[1] / "payloads" / "kakao" / "skill-fallback-text.json"
SECRET = "test-skill-secret"
BURSTS = 10
MESSAGES = 3  # per burst


def said(user: str, text: str) -> bytes:
    data = json.loads(PAYLOAD.read_text("utf-8"))
    data["userRequest"]["utterance"] = text
    data["userRequest"]["user"]["id"] = user
    data["userRequest"]["user"]["properties"]["botUserKey"] = user
    data["userRequest"]["user"]["properties"]["plusfriendUserKey"] = f"pf-{user}"
    return json.dumps(data, ensure_ascii=False).encode()


async def post(client: Client, body: bytes) -> int:
    resp = await client.post(
        "/hooks/kakao/hanbit",
        data=io.BytesIO(body),
        headers={"Content-Type": "application/json", "X-Dangol-Skill-Secret": SECRET},
    )
    await resp.read()
    return resp.status


async def test_one_new_customer_sent_to_two_processes_leaves_no_orphans(
    db_url: tuple[str, str | None], clock: FrozenClock, aiohttp_client: Any
) -> None:
    url, schema = db_url
    database = {"url": url, **({"schema": schema} if schema else {})}
    apps: list[Client] = [
        await aiohttp_client(create_app(make_settings(url, database=database), clock=clock))
        for _ in range(2)
    ]

    for burst in range(BURSTS):
        user = f"burst-{burst:02d}-user"
        bodies = [said(user, f"보일러 점검 문의 {n}") for n in range(MESSAGES)]
        # the same requests to both processes, all at once
        statuses = await asyncio.gather(*(post(app, b) for b in bodies for app in apps))
        assert statuses == [200] * (2 * MESSAGES)

    async with apps[0].app[keys.DATABASE].read() as conn:
        customers = (await conn.execute(sa.select(sa.func.count()).select_from(Customer))).scalar()
        orphans = (
            await conn.execute(
                sa.select(Customer.id).where(
                    ~sa.exists().where(CustomerIdentity.customer_id == Customer.id)
                )
            )
        ).all()
        empty = (
            await conn.execute(
                sa.select(Conversation.id).where(
                    ~sa.exists().where(Message.conversation_id == Conversation.id)
                )
            )
        ).all()
        stored = (
            await conn.execute(
                sa.select(sa.func.count()).select_from(Message).where(Message.direction == "in")
            )
        ).scalar()
    assert orphans == []
    assert empty == []
    assert customers == BURSTS
    assert stored == BURSTS * MESSAGES  # each message once, whichever process stored it


# --------------------------------------------------------------------------- the interleaving


async def test_an_address_stored_after_our_look_up_joins_its_customer(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The interleaving above, step by step: process A stores a new customer while B, whose
    look-up found no one, is about to create the same person again."""
    now = kst(2026, 11, 23, 10, 0)
    config = make_settings().shops[0]

    def add_shop(conn: Connection) -> int:
        row = sa.insert(Shop).values(slug="hanbit", name="한빛설비", created_at=now)
        return int(conn.execute(row.returning(Shop.id)).scalar_one())

    shop_id = await database.write(add_shop)
    services = Services(build_switchboard(), Texts(), median_reply=lambda _shop: None)

    def says(text: str, *identities: tuple[str, str]) -> Arrival:
        digest = digest_of(shop_id, {"text": text})
        return Arrival(config, shop_id, "kakao", identities, text, digest, now)

    first = await database.write(receive(says("안녕하세요", ("kakao_bot_user", "u1")), services))

    real_look_up = receiving.look_up
    monkeypatch.setattr(
        receiving, "look_up", lambda conn, arrivals: ({}, real_look_up(conn, arrivals)[1])
    )
    second = await database.write(
        receive(
            says("사진 보낼게요", ("kakao_bot_user", "u1"), ("kakao_plusfriend", "pf1")), services
        )
    )

    assert (second.customer_id, second.conversation_id) == (
        first.customer_id,
        first.conversation_id,
    )
    async with database.read() as conn:
        customers = (await conn.execute(sa.select(Customer.id))).scalars().all()
        addresses = (
            await conn.execute(
                sa.select(CustomerIdentity.kind, CustomerIdentity.customer_id).order_by(
                    CustomerIdentity.kind
                )
            )
        ).all()
        conversations = (await conn.execute(sa.select(Conversation.id))).scalars().all()
        inbound_messages = (
            await conn.execute(
                sa.select(Message.conversation_id, Message.body)
                .where(Message.direction == "in")
                .order_by(Message.id)
            )
        ).all()
    assert customers == [first.customer_id]
    # the address B alone brought is kept, with the customer A stored
    assert addresses == [
        ("kakao_bot_user", first.customer_id),
        ("kakao_plusfriend", first.customer_id),
    ]
    assert conversations == [first.conversation_id]
    assert inbound_messages == [
        (first.conversation_id, "안녕하세요"),
        (first.conversation_id, "사진 보낼게요"),
    ]
