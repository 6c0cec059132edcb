"""Issue 12 item 2: one status order, whichever vendor reports. The same states, reported by
SOLAPI (webhook items) and by Twilio (status callbacks) in the same order, land the two
messages in the same place — through the adapters' own parsers and the one `core.delivery`,
on SQLite and PostgreSQL."""

from __future__ import annotations

import itertools
import json
from datetime import timedelta

import pytest
import sqlalchemy as sa
from conftest import kst
from fakes.twilio import status_callback_form
from sqlalchemy.engine import Connection

from core.db import Database
from core.delivery import apply_reports
from core.models import Conversation, Customer, Message, Shop
from providers import twilio
from providers.base import DeliveryReport, DeliveryStatus, status_advances
from providers.solapi import reports as solapi_reports

NOW = kst(2026, 11, 23, 10, 0)

# One state, as each vendor says it.
SOLAPI_CODE = {"accepted": "2000", "sent": "3000", "delivered": "4000", "failed": "3059"}
TWILIO_STATUS = {"accepted": "queued", "sent": "sent", "delivered": "delivered"}
TWILIO_STATUS["failed"] = "undelivered"
STATES = tuple(SOLAPI_CODE)
SEQUENCES = [seq for n in (1, 2, 3) for seq in itertools.permutations(STATES, n)]


def solapi_report(mid: str, state: str, n: int) -> DeliveryReport:
    item = {
        "eventDataId": f"E-{mid}-{n}",
        "retryCount": 0,
        "data": {"messageId": mid, "type": "SMS", "statusCode": SOLAPI_CODE[state]},
    }
    (report,) = solapi_reports.parse_report(json.dumps([item]).encode())
    return report


def twilio_report(sid: str, state: str) -> DeliveryReport:
    code = "30007" if state == "failed" else None
    report = twilio.parse_status(status_callback_form(sid, TWILIO_STATUS[state], error_code=code))
    assert report is not None
    return report


def expected(sequence: tuple[str, ...]) -> str:
    """Where the order says a queued message ends after `sequence`, one report at a time."""
    status = "queued"
    for state in sequence:
        ours = DeliveryStatus(state).of_message
        if status_advances(status, ours):
            status = ours.value
    return status


def test_the_order_is_one_and_total() -> None:
    ranks = [DeliveryStatus(s).rank for s in ("queued", "accepted", "sent", "delivered")]
    assert ranks == sorted(set(ranks))
    assert DeliveryStatus.DELIVERED.rank == DeliveryStatus.FAILED.rank  # the first final wins
    assert solapi_reports.status_for_code("2000") is DeliveryStatus.ACCEPTED
    assert twilio.map_status("queued") is DeliveryStatus.SENT
    assert not status_advances("delivered", "failed")
    assert not status_advances("failed", "delivered")
    assert status_advances("cancelled", "delivered")  # outside the order: before all of it


@pytest.mark.parametrize("together", [False, True], ids=["one-by-one", "one-request"])
async def test_solapi_and_twilio_reports_of_the_same_states_land_identically(
    database: Database, together: bool
) -> None:
    def seed(conn: Connection) -> tuple[int, list[tuple[int, int]]]:
        shop = conn.execute(
            sa.insert(Shop)
            .values(slug="hanbit", name="한빛설비", owner_status="available", created_at=NOW)
            .returning(Shop.id)
        ).scalar_one()
        customer = conn.execute(
            sa.insert(Customer)
            .values(shop_id=shop, name="손님", created_at=NOW)
            .returning(Customer.id)
        ).scalar_one()
        conversation = conn.execute(
            sa.insert(Conversation)
            .values(
                shop_id=shop,
                customer_id=customer,
                channel="sms",
                last_message_at=NOW,
                created_at=NOW,
            )
            .returning(Conversation.id)
        ).scalar_one()

        def message(provider: str, provider_message_id: str) -> int:
            return int(
                conn.execute(
                    sa.insert(Message)
                    .values(
                        shop_id=shop,
                        conversation_id=conversation,
                        customer_id=customer,
                        direction="out",
                        sender="owner",
                        channel="sms",
                        body="내일 오전에 방문드릴게요.",
                        status="queued",
                        path="sms",
                        provider=provider,
                        provider_message_id=provider_message_id,
                        created_at=NOW,
                    )
                    .returning(Message.id)
                ).scalar_one()
            )

        pairs = [
            (message("solapi", f"M4V{n:029d}"), message("twilio", f"SM{n:032x}"))
            for n in range(len(SEQUENCES))
        ]
        return shop, pairs

    shop, pairs = await database.write(seed)
    for_solapi = [
        [solapi_report(f"M4V{n:029d}", state, i) for i, state in enumerate(seq)]
        for n, seq in enumerate(SEQUENCES)
    ]
    for_twilio = [
        [twilio_report(f"SM{n:032x}", state) for state in seq] for n, seq in enumerate(SEQUENCES)
    ]
    for provider, per_message in (("solapi", for_solapi), ("twilio", for_twilio)):
        if together:
            for reports in itertools.zip_longest(*per_message):
                batch = [r for r in reports if r is not None]
                await database.write(apply_reports(shop, provider, batch, NOW))
        else:
            for reports in per_message:
                for i, report in enumerate(reports):
                    at = NOW + timedelta(seconds=i)
                    await database.write(apply_reports(shop, provider, [report], at))

    async with database.read() as conn:
        rows = (await conn.execute(sa.select(Message.id, Message.status))).all()
    status = {row.id: row.status for row in rows}
    landed = [(status[s], status[t]) for s, t in pairs]
    assert landed == [(expected(seq), expected(seq)) for seq in SEQUENCES]
