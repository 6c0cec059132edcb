"""Delivery reports a whole group commit at a time (SQLite and PostgreSQL).

The writer hands `core.delivery.apply_many` the reports of every webhook request waiting for
the same commit. These tests check that a batch ends exactly where its reports would one
after another — duplicates, reports out of order, the same message twice, unknown
messages, opt-outs — and that it costs a fixed number of statements however many reports
it holds.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from conftest import kst
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import event
from sqlalchemy.engine import Connection

from core.db import Database
from core.delivery import (
    ReportBatch,
    apply_many,
    apply_reports,
    apply_reports_batched,
)
from core.models import (
    AuditEntry,
    Consent,
    Conversation,
    Customer,
    DeliveryEvent,
    Message,
    OutboxItem,
    Shop,
)
from providers.base import DeliveryReport as Report
from providers.solapi import parse_report

NOW = kst(2026, 11, 23, 10, 0)
CUSTOMERS = 3

# accepted, sent, delivered; failed (blocked), and the two 080 opt-outs
CODES = ("2000", "3000", "4000", "3059", "1061", "2061")
TYPES = {"sms": "SMS", "alimtalk": "ATA"}


def solapi_report(
    event: str, mid: str, code: str, *, kind: str = "SMS", ref: int | None = None, second: int = 0
) -> Report:
    when = (NOW + timedelta(seconds=second)).isoformat()
    item = {
        "eventDataId": event,
        "retryCount": 0,
        "data": {
            "messageId": mid,
            "type": kind,
            "statusCode": code,
            "statusMessage": f"상태 {code}",
            "dateReported": when,
            "customFields": {"ourId": str(ref)} if ref is not None else {},
        },
    }
    (parsed,) = parse_report(json.dumps([item]).encode())
    return parsed


class World:
    """A shop and its customers, stored once; messages are seeded by each test."""

    def __init__(self, shop_id: int, customers: list[int], conversations: list[int]) -> None:
        self.shop_id = shop_id
        self.customers = customers
        self.conversations = conversations

    def seed_message(
        self,
        conn: Connection,
        n: int,
        *,
        status: str = "sent",
        path: str = "sms",
        known_id: bool = True,
        outbox: str | None = "sent",
    ) -> tuple[int, int | None]:
        """Message `n` of customer n % CUSTOMERS: (message id, outbox id)."""
        who = n % CUSTOMERS
        message_id = conn.execute(
            sa.insert(Message)
            .values(
                shop_id=self.shop_id,
                conversation_id=self.conversations[who],
                customer_id=self.customers[who],
                direction="out",
                sender="owner",
                channel="sms",
                body="내일 오전에 방문드릴게요.",
                status=status,
                path=path,
                provider="solapi",
                provider_message_id=mid(n) if known_id else None,
                created_at=NOW,
            )
            .returning(Message.id)
        ).scalar_one()
        if outbox is None:
            return message_id, None
        outbox_id = conn.execute(
            sa.insert(OutboxItem)
            .values(
                shop_id=self.shop_id,
                message_id=message_id,
                purpose="reply",
                provider="solapi",
                recipient={"phone": "+821012345678"},
                payload={"text": "내일 오전에 방문드릴게요."},
                status=outbox,
                not_before=NOW,
                idempotency_key=f"reply:{message_id}",
                created_at=NOW,
                updated_at=NOW,
            )
            .returning(OutboxItem.id)
        ).scalar_one()
        return message_id, outbox_id


def mid(n: int) -> str:
    return f"M4V{n:029d}"


@pytest.fixture
async def world(database: Database) -> World:
    def add(conn: Connection) -> World:
        shop_id = conn.execute(
            sa.insert(Shop)
            .values(slug="hanbit", name="한빛설비", owner_status="available", created_at=NOW)
            .returning(Shop.id)
        ).scalar_one()
        customers, conversations = [], []
        for n in range(CUSTOMERS):
            customer_id = conn.execute(
                sa.insert(Customer)
                .values(shop_id=shop_id, name=f"손님{n}", created_at=NOW)
                .returning(Customer.id)
            ).scalar_one()
            customers.append(customer_id)
            conversations.append(
                conn.execute(
                    sa.insert(Conversation)
                    .values(
                        shop_id=shop_id,
                        customer_id=customer_id,
                        channel="sms",
                        last_message_at=NOW,
                        created_at=NOW,
                    )
                    .returning(Conversation.id)
                ).scalar_one()
            )
        return World(shop_id, customers, conversations)

    return await database.write(add)


def state(conn: Connection) -> dict[str, list[tuple[Any, ...]]]:
    """Everything a report may change, in the order it was stored, without the ids the
    database hands out (PostgreSQL does not take back the ids of a rolled-back savepoint)."""

    def of(table: Any, *columns: Any, order_by: Any = None) -> list[tuple[Any, ...]]:
        rows = conn.execute(sa.select(*columns).order_by(order_by or table.id)).all()
        return [tuple(row) for row in rows]

    return {
        "messages": of(
            Message,
            Message.status,
            Message.path,
            Message.payload,
            Message.provider_message_id,
            Message.delivered_at,
            Message.error,
        ),
        "outbox": of(OutboxItem, OutboxItem.status, OutboxItem.provider_ref, OutboxItem.sent_at),
        "events": of(
            DeliveryEvent,
            DeliveryEvent.event_id,
            DeliveryEvent.provider_message_id,
            DeliveryEvent.status,
            DeliveryEvent.received_at,
            order_by=DeliveryEvent.event_id,  # a batch stores them in the order of their keys
        ),
        "consents": of(
            Consent, Consent.customer_id, Consent.granted, Consent.source, Consent.created_at
        ),
        "audit": of(
            AuditEntry,
            AuditEntry.subject,
            AuditEntry.action,
            AuditEntry.detail,
            AuditEntry.created_at,
        ),
    }


# --------------------------------------------------------------------------- behaviour


async def test_concurrent_requests_share_one_commit_and_end_as_one_after_another(
    database: Database, world: World
) -> None:
    def seed(conn: Connection) -> list[tuple[int, int | None]]:
        return [
            world.seed_message(conn, 0),
            world.seed_message(conn, 1, path="alimtalk"),  # SOLAPI will fall back to SMS
            world.seed_message(conn, 2, status="sending", known_id=False, outbox="unknown"),
            world.seed_message(conn, 3),
            world.seed_message(conn, 4, status="delivered"),
        ]

    (m0, _), (m1, _), (m2, ref2), (m3, _), (m4, _) = await database.write(seed)
    assert ref2 is not None
    requests = [
        [
            solapi_report("E0-4000", mid(0), "4000", second=3),  # the final one first
            solapi_report("E2-2000", mid(2), "2000", ref=ref2),  # found by our outbox id
        ],
        [
            solapi_report("E0-2000", mid(0), "2000", second=1),  # late: changes nothing
            solapi_report("E1-4000", mid(1), "4000", second=2),
            solapi_report("E3-1061", mid(3), "1061"),  # an 080 opt-out
        ],
        [
            solapi_report("E0-4000", mid(0), "4000", second=3),  # SOLAPI's retry
            solapi_report("E2-4000", mid(2), "4000", second=4),  # by the id learnt just now
            solapi_report("E9-4000", mid(9), "4000"),  # a message we do not know
            solapi_report("E4-3059", mid(4), "3059"),  # delivered stays delivered
        ],
    ]
    before = database.writer.batches
    changed = await asyncio.gather(
        *(
            database.write(apply_reports_batched(world.shop_id, "solapi", reports, NOW))
            for reports in requests
        )
    )
    assert database.writer.batches == before + 1  # they shared one commit

    assert changed == [
        [(m0, "delivered"), (m2, "sent")],
        [(m1, "delivered"), (m3, "failed")],
        [(m2, "delivered")],
    ]

    async with database.read() as conn:
        messages = {
            m.id: m for m in (await conn.execute(sa.select(Message).order_by(Message.id))).all()
        }
        events = (await conn.execute(sa.select(DeliveryEvent.event_id))).scalars().all()
        outbox = (await conn.execute(sa.select(OutboxItem).where(OutboxItem.id == ref2))).one()
        consents = (await conn.execute(sa.select(Consent))).all()
        audit = (await conn.execute(sa.select(AuditEntry))).all()
    assert sorted(events) == sorted({r.event_id for reports in requests for r in reports})
    assert (messages[m0].status, messages[m0].delivered_at) == (
        "delivered",
        NOW + timedelta(seconds=3),
    )
    assert (messages[m1].status, messages[m1].path) == ("delivered", "sms")
    assert [f["path"] for f in messages[m1].payload["fell_back"]] == ["alimtalk"]
    assert (messages[m2].status, messages[m2].provider_message_id) == ("delivered", mid(2))
    assert (outbox.status, outbox.provider_ref) == ("sent", mid(2))
    assert messages[m3].status == "failed"
    assert (messages[m4].status, messages[m4].error) == ("delivered", None)
    assert [(c.customer_id, c.granted, c.source) for c in consents] == [
        (world.customers[3 % CUSTOMERS], False, "provider:solapi:1061")
    ]
    assert [(a.action, a.subject) for a in audit] == [
        ("consent_withdrawn", f"customer:{world.customers[3 % CUSTOMERS]}")
    ]


async def test_the_later_status_wins_within_one_request_whatever_the_order(
    database: Database, world: World
) -> None:
    (m0, _) = await database.write(lambda conn: world.seed_message(conn, 0, status="sending"))
    reports = [
        solapi_report("E-3000", mid(0), "3000"),
        solapi_report("E-4000", mid(0), "4000", second=2),
        solapi_report("E-2000", mid(0), "2000"),
        solapi_report("E-3059", mid(0), "3059"),  # the first final status won
    ]
    changed = await database.write(apply_reports(world.shop_id, "solapi", reports, NOW))
    assert changed == [(m0, "sent"), (m0, "delivered")]
    async with database.read() as conn:
        row = (await conn.execute(sa.select(Message).where(Message.id == m0))).one()
    assert (row.status, row.error, row.delivered_at) == (
        "delivered",
        None,
        NOW + timedelta(seconds=2),
    )


# --------------------------------------------------------------------------- the property


class Rollback(Exception):
    """Leaves a savepoint with nothing of the example kept."""


MESSAGE = st.fixed_dictionaries(
    {
        "status": st.sampled_from(["queued", "sending", "sent", "delivered", "failed"]),
        "path": st.sampled_from(["sms", "alimtalk"]),
        "known_id": st.booleans(),
        "outbox": st.sampled_from([None, "pending", "sending", "unknown", "sent", "dead"]),
    }
)
REPORT = st.tuples(
    st.integers(0, 4),  # the message: 0–3 are seeded at most, so some are unknown
    st.sampled_from(CODES),
    st.sampled_from(sorted(TYPES)),
    st.booleans(),  # our outbox id echoed back
    st.integers(0, 3),  # the request it comes in
)
SCENARIO = st.tuples(
    st.lists(MESSAGE, min_size=1, max_size=4),
    st.lists(REPORT, min_size=1, max_size=14),
    st.lists(st.sampled_from([None, True, False]), min_size=CUSTOMERS, max_size=CUSTOMERS),
)


async def test_a_batch_ends_where_its_reports_one_at_a_time_would(
    database: Database, world: World
) -> None:
    def seed(
        conn: Connection, messages: list[dict[str, Any]], consents: list[bool | None]
    ) -> list[tuple[int, int | None]]:
        for who, granted in enumerate(consents):
            if granted is not None:
                conn.execute(
                    sa.insert(Consent).values(
                        shop_id=world.shop_id,
                        customer_id=world.customers[who],
                        scope="marketing",
                        granted=granted,
                        source="test",
                        created_at=NOW - timedelta(days=1),
                    )
                )
        return [world.seed_message(conn, n, **m) for n, m in enumerate(messages)]

    def run(conn: Connection, scenario: Any, batched: bool) -> tuple[Any, Any]:
        messages, plan, consents = scenario
        savepoint = conn.begin_nested()
        try:
            seeded = seed(conn, messages, consents)
            refs = [ref for _, ref in seeded]
            which = {message_id: n for n, (message_id, _) in enumerate(seeded)}
            requests: list[list[Report]] = [[] for _ in range(4)]
            for k, (n, code, path, echoed, request) in enumerate(plan):
                ref = refs[n] if echoed and n < len(refs) else None
                event = f"E-{n}-{code}-{path}-{echoed}"  # the same report: a redelivery
                requests[request].append(
                    solapi_report(event, mid(n), code, kind=TYPES[path], ref=ref, second=k)
                )
            batches = [
                ReportBatch(world.shop_id, "solapi", reports, NOW + timedelta(minutes=i))
                for i, reports in enumerate(requests)
            ]
            if batched:
                changed = apply_many(conn, batches)
            else:
                changed = [
                    [
                        c
                        for r in b.reports
                        for c in apply_many(conn, [ReportBatch(b.shop_id, b.provider, [r], b.now)])[
                            0
                        ]
                    ]
                    for b in batches
                ]
            return [[(which[m], status) for m, status in c] for c in changed], state(conn)
        finally:
            savepoint.rollback()

    @settings(
        max_examples=100,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(SCENARIO)
    def check(conn: Connection, scenario: Any) -> None:
        assert run(conn, scenario, batched=True) == run(conn, scenario, batched=False)

    def unit(conn: Connection) -> None:
        check(conn)

    await database.write(unit)


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


async def test_statements_per_batch_do_not_grow_with_its_size(
    database: Database, world: World
) -> None:
    def seeded(first: int, size: int) -> Any:
        return lambda conn: [world.seed_message(conn, first + n) for n in range(size)]

    def statements(first: int, size: int) -> Any:
        reports = [solapi_report(f"E{first + n}", mid(first + n), "4000") for n in range(size)]

        def unit(conn: Connection) -> int:
            with counting(conn) as sent:
                changed = apply_reports(world.shop_id, "solapi", reports, NOW)(conn)
            assert len(changed) == size
            return len(sent)

        return unit

    await database.write(seeded(0, 1))
    await database.write(seeded(1000, 60))
    one = await database.write(statements(0, 1))
    many = await database.write(statements(1000, 60))
    # the events, the messages, their update (and on PostgreSQL, which cannot count the
    # rows an executemany updated, the check of their statuses)
    assert many == one <= 4
