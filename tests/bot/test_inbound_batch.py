"""Receiving a whole group commit at once (SQLite and PostgreSQL).

The writer hands `receive_many` every message waiting for the same commit. These tests
check that a batch behaves exactly as its messages would one after another, and that it
costs a fixed number of statements however many messages it holds.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from conftest import kst, make_settings
from sqlalchemy import event
from sqlalchemy.engine import Connection

from bot.handlers import build_switchboard
from bot.inbound import (
    Arrival,
    Outcome,
    Services,
    digest_of,
    receive,
    receive_batched,
    receive_many,
)
from core.config import Settings
from core.db import Batched, Database
from core.models import (
    Consent,
    Conversation,
    Customer,
    CustomerIdentity,
    Message,
    OutboxItem,
    Shop,
)
from core.texts import Texts

NOW = kst(2026, 11, 23, 10, 0)  # Monday morning: the shop is open

ACK = "사장님이 확인하고 바로 답변드릴게요"
FOLLOWUP = "메시지 잘 받았어요"


class TheShop:
    """The configured shop, its row id, and how to write to it as a customer."""

    def __init__(self, settings: Settings, shop_id: int) -> None:
        self.config = settings.shops[0]
        self.id = shop_id
        self.services = Services(
            switchboard=build_switchboard(), texts=Texts(), median_reply=lambda _shop: None
        )

    def says(self, user: str, text: str, *, at: Any = NOW, plusfriend: str = "") -> Arrival:
        identities = [("kakao_bot_user", user)]
        if plusfriend:
            identities.append(("kakao_plusfriend", plusfriend))
        # the same user saying the same words is the same request: the same digest
        digest = digest_of(self.id, {"user": user, "text": text})
        return Arrival(self.config, self.id, "kakao", tuple(identities), text, digest, at)


@pytest.fixture
async def shop(database: Database) -> TheShop:
    settings = make_settings()
    created = kst(2026, 1, 1, 9, 0)

    def add(conn: Connection) -> int:
        return int(
            conn.execute(
                sa.insert(Shop)
                .values(
                    slug="hanbit", name="한빛설비", owner_status="available", created_at=created
                )
                .returning(Shop.id)
            ).scalar_one()
        )

    return TheShop(settings, await database.write(add))


async def batch(database: Database, shop: TheShop, arrivals: list[Arrival]) -> list[Outcome]:
    """As production forms batches: concurrent writes, handed to the writer together."""
    before = database.writer.batches
    outcomes = await asyncio.gather(
        *(database.write(receive_batched(a, shop.services)) for a in arrivals)
    )
    assert database.writer.batches == before + 1  # they shared one commit
    return list(outcomes)


async def owner_notices(database: Database, conversation_id: int) -> list[str]:
    """The idempotency keys of the owner's "new inquiry" notices about a conversation."""
    keys = [str(row.idempotency_key) for row in await rows(database, OutboxItem)]
    return [key for key in keys if key.startswith("notify:") and f":wait:{conversation_id}:" in key]


async def rows(database: Database, model: Any) -> list[Any]:
    async with database.read() as conn:
        return list((await conn.execute(sa.select(model).order_by(model.id))).all())


def texts_of(outcome: Outcome) -> str:
    return "\n".join(outcome.reply.texts)


# --------------------------------------------------------------------------- behaviour


async def test_a_mixed_batch_behaves_as_one_message_after_another(
    database: Database, shop: TheShop
) -> None:
    # A regular customer who already wrote, with an owner reply held for them.
    (regular,) = await batch(database, shop, [shop.says("regular", "보일러 점검 문의")])
    await database.write(_hold(shop.id, regular, "내일 오전에 방문드릴게요."))

    outcomes = await batch(
        database,
        shop,
        [
            shop.says("new-a", "에어컨에서 물이 새요", plusfriend="pf-a"),
            shop.says("regular", "네 알겠습니다"),
            shop.says("new-b", "세면대가 막혔어요"),
            shop.says("new-a", "사진도 보내드릴까요?"),
            shop.says("new-b", "세면대가 막혔어요"),  # Kakao's resend: byte-identical
            shop.says("angry", "지난주에 고친 에어컨이 또 고장났어요. 환불해 주세요"),
            shop.says("leaving", "수신거부"),
        ],
    )
    first_a, regular_again, first_b, second_a, resent_b, complaint, opt_out = outcomes

    # Two messages from one new customer: one customer, an ack then a follow-up.
    assert ACK in texts_of(first_a)
    assert texts_of(second_a).startswith(FOLLOWUP)
    assert (first_a.customer_id, first_a.conversation_id) == (
        second_a.customer_id,
        second_a.conversation_id,
    )
    # The owner hears once, of the first: the follow-up is in the same waiting period.
    notices = await owner_notices(database, first_a.conversation_id)
    assert notices
    assert len(notices) == len(set(notices))
    assert all(key.endswith(f":{int(NOW.timestamp())}") for key in notices)

    # The resend inside the batch: stored once, answered like the first.
    assert resent_b.duplicate
    assert resent_b.message_id == first_b.message_id
    assert resent_b.reply.texts == first_b.reply.texts
    assert resent_b.reply.quick_replies == first_b.reply.quick_replies

    # The regular customer gets the held owner reply with this answer, once.
    assert regular_again.customer_id == regular.customer_id
    assert regular_again.mailbox == (("owner", "내일 오전에 방문드릴게요."),)
    assert texts_of(regular_again).startswith(FOLLOWUP)

    assert "죄송" in texts_of(complaint)
    assert "수신을 거부" in texts_of(opt_out)

    # And the database says the same.
    customers = await rows(database, Customer)
    assert len(customers) == 5  # regular, new-a, new-b, angry, leaving
    inbound = [m for m in await rows(database, Message) if m.direction == "in"]
    assert len(inbound) == 1 + 6  # the earlier message, and all but the resend
    bot = [m for m in await rows(database, Message) if m.sender == "bot"]
    assert {m.in_reply_to_id for m in bot} == {m.id for m in inbound}
    held = [m for m in await rows(database, Message) if m.sender == "owner"]
    assert [(m.status, m.delivered_at) for m in held] == [("delivered", NOW)]

    conversations = {c.id: c for c in await rows(database, Conversation)}
    a = conversations[first_a.conversation_id]
    assert (a.unread_count, a.waiting_since, a.last_inbound_message_id) == (
        2,
        NOW,
        second_a.message_id,
    )
    assert a.sla_due_at == NOW + timedelta(minutes=30)
    assert conversations[first_b.conversation_id].unread_count == 1
    angry = conversations[complaint.conversation_id]
    assert (angry.complaint, angry.complaint_due_at) == (True, NOW + timedelta(hours=24))

    (consent,) = await rows(database, Consent)
    assert (consent.customer_id, consent.scope, consent.granted) == (
        opt_out.customer_id,
        "marketing",
        False,
    )
    notices = await rows(database, OutboxItem)
    notified = sorted(n.payload["conversation_id"] for n in notices)
    assert notified == sorted(
        [
            regular.conversation_id,  # from the earlier batch
            first_a.conversation_id,
            first_b.conversation_id,
            complaint.conversation_id,
        ]
    )  # once per waiting period: not for the follow-up, nor for the resend

    # Every address of the new customer was recorded, for their one customer row.
    addresses = {(i.kind, i.value): i.customer_id for i in await rows(database, CustomerIdentity)}
    assert addresses[("kakao_plusfriend", "pf-a")] == first_a.customer_id


async def test_a_resend_in_a_later_batch_is_answered_like_the_first(
    database: Database, shop: TheShop
) -> None:
    (first,) = await batch(database, shop, [shop.says("kim", "에어컨 점검 문의")])
    (again,) = await batch(database, shop, [shop.says("kim", "에어컨 점검 문의")])
    assert again.duplicate
    assert (again.message_id, again.reply.texts) == (first.message_id, first.reply.texts)
    assert again.reply.handler == "duplicate"


async def test_a_resend_after_another_message_is_found_by_its_key(
    database: Database, shop: TheShop
) -> None:
    """A, B, then A again within the minute: the conversation's last message is B, so the
    resend is only recognised when storing it collides with A's idempotency key."""
    a, _b = await batch(
        database, shop, [shop.says("kim", "에어컨 점검 문의"), shop.says("kim", "언제 오세요?")]
    )
    (again,) = await batch(database, shop, [shop.says("kim", "에어컨 점검 문의")])
    assert again.duplicate
    assert (again.message_id, again.reply.texts) == (a.message_id, a.reply.texts)
    inbound = [m for m in await rows(database, Message) if m.direction == "in"]
    assert len(inbound) == 2


async def test_the_same_words_after_the_resend_window_are_a_new_message(
    database: Database, shop: TheShop
) -> None:
    later = NOW + timedelta(minutes=5)
    first, second = await batch(
        database,
        shop,
        [shop.says("kim", "에어컨 점검 문의"), shop.says("kim", "에어컨 점검 문의", at=later)],
    )
    assert not second.duplicate
    assert second.message_id != first.message_id


async def test_receive_is_the_same_work_for_one_message(database: Database, shop: TheShop) -> None:
    outcome = await database.write(receive(shop.says("kim", "에어컨 점검 문의"), shop.services))
    assert ACK in texts_of(outcome)
    assert await owner_notices(database, outcome.conversation_id)


# --------------------------------------------------------------------------- cost


@contextmanager
def counting(conn: Connection) -> Iterator[list[str]]:
    """The statements sent to the database driver on `conn` while inside."""
    sent: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_rest: Any) -> None:
        sent.append(statement)

    event.listen(conn, "before_cursor_execute", count)
    try:
        yield sent
    finally:
        event.remove(conn, "before_cursor_execute", count)


async def statements_for(database: Database, shop: TheShop, arrivals: list[Arrival]) -> int:
    def unit(conn: Connection) -> int:
        with counting(conn) as sent:
            outcomes = receive_many(conn, arrivals, shop.services)
        assert len(outcomes) == len(arrivals)
        return len(sent)

    return await database.write(unit)


@pytest.mark.parametrize("size", [2, 40])
async def test_statements_per_batch_do_not_grow_with_its_size(
    database: Database, shop: TheShop, size: int
) -> None:
    def newcomers(tag: str, n: int) -> list[Arrival]:
        return [
            shop.says(f"{tag}-{i}", "에어컨 점검 문의", plusfriend=f"pf-{tag}-{i}")
            for i in range(n)
        ]

    def regulars(tag: str, n: int) -> list[Arrival]:
        return [shop.says(f"{tag}-{i}", f"사진 보내드릴게요 {i}") for i in range(n)]

    # New customers: look-ups, customers, addresses, conversations, messages, notices…
    one_new = await statements_for(database, shop, newcomers("solo", 1))
    many_new = await statements_for(database, shop, newcomers("crowd", size))
    assert many_new == one_new <= 9

    # The same customers again: nothing to create, nobody to notify.
    one_back = await statements_for(database, shop, regulars("solo", 1))
    many_back = await statements_for(database, shop, regulars("crowd", size))
    assert many_back == one_back <= 5


# --------------------------------------------------------------------------- the writer


def _hold(shop_id: int, to: Outcome, body: str) -> Any:
    def unit(conn: Connection) -> None:
        conn.execute(
            sa.insert(Message).values(
                shop_id=shop_id,
                conversation_id=to.conversation_id,
                customer_id=to.customer_id,
                direction="out",
                sender="owner",
                channel="kakao",
                body=body,
                payload={},
                status="held",
                path="mailbox",
                created_at=NOW,
            )
        )

    return unit


class ShopMaker:
    """A `run_many` that records how it was called: one shop row per item."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def __call__(self, conn: Connection, slugs: list[str]) -> list[int]:
        self.calls.append(list(slugs))
        return [
            int(
                conn.execute(
                    sa.insert(Shop)
                    .values(slug=slug, name=slug, owner_status="available", created_at=NOW)
                    .returning(Shop.id)
                ).scalar_one()
            )
            for slug in slugs
        ]


async def test_consecutive_batched_jobs_are_handed_over_together(database: Database) -> None:
    make = ShopMaker()
    plain_ran: list[str] = []

    def plain(conn: Connection) -> str:
        plain_ran.append("plain")
        return "plain"

    results = await asyncio.gather(
        database.write(Batched(make, "a")),
        database.write(Batched(make, "b")),
        database.write(plain),
        database.write(Batched(make, "c")),
    )
    assert results[2] == "plain"
    assert len(set(results)) == 4
    # in queue order; a plain unit in between splits the run
    assert make.calls == [["a", "b"], ["c"]]
    assert plain_ran == ["plain"]


async def test_one_failing_batched_item_does_not_fail_its_neighbours(database: Database) -> None:
    make = ShopMaker()
    await database.write(Batched(make, "taken"))
    results = await asyncio.gather(
        database.write(Batched(make, "a")),
        database.write(Batched(make, "taken")),  # unique slug violated: the batch fails
        database.write(Batched(make, "b")),
        return_exceptions=True,
    )
    assert isinstance(results[0], int)
    assert isinstance(results[1], sa.exc.IntegrityError)
    assert isinstance(results[2], int)
    # the whole batch was tried, then each item alone
    assert make.calls[1:] == [["a", "taken", "b"], ["a"], ["taken"], ["b"]]
    async with database.read() as conn:
        slugs = set((await conn.execute(sa.select(Shop.slug))).scalars())
    assert slugs == {"taken", "a", "b"}


async def test_a_run_many_must_answer_every_item(database: Database) -> None:
    def forgetful(conn: Connection, items: list[str]) -> list[str]:
        return items[:-1]

    with pytest.raises(RuntimeError, match="1 items"):
        await database.write(Batched(forgetful, "x"))
