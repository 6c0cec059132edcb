"""SOLAPI delivery reports end to end: real app, real database (SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from conftest import Client, shop_table
from sqlalchemy.engine import Connection
from support.solapi import FIXTURE_MID, TOKEN, fixture_body, post, report, solapi_client

from bot import keys
from bot.live import status_event
from core.models import (
    AuditEntry,
    Consent,
    Conversation,
    Customer,
    DeliveryEvent,
    Message,
    OutboxItem,
)

MakeClient = Callable[..., Awaitable[Client]]


async def sent_message(
    client: Client,
    *,
    provider_message_id: str | None = FIXTURE_MID,
    status: str = "sent",
    outbox_status: str = "sent",
    path: str = "sms",
) -> tuple[int, int, int]:
    """An outbound SMS already handed to SOLAPI: (message id, outbox id, customer id)."""
    app = client.app
    shop_id = app[keys.SHOP_IDS]["hanbit"]
    now = app[keys.CLOCK].now()

    def unit(conn: Connection) -> tuple[int, int, int]:
        customer_id = conn.execute(
            sa.insert(Customer).values(shop_id=shop_id, name="이손님", created_at=now)
        ).inserted_primary_key[0]
        conversation_id = conn.execute(
            sa.insert(Conversation).values(
                shop_id=shop_id,
                customer_id=customer_id,
                channel="sms",
                last_message_at=now,
                created_at=now,
            )
        ).inserted_primary_key[0]
        message_id = conn.execute(
            sa.insert(Message).values(
                shop_id=shop_id,
                conversation_id=conversation_id,
                customer_id=customer_id,
                direction="out",
                sender="owner",
                channel="sms",
                body="내일 오전 10시에 방문드릴게요.",
                status=status,
                path=path,
                provider="solapi",
                provider_message_id=provider_message_id,
                created_at=now,
            )
        ).inserted_primary_key[0]
        outbox_id = conn.execute(
            sa.insert(OutboxItem).values(
                shop_id=shop_id,
                message_id=message_id,
                purpose="reply",
                provider="solapi",
                recipient={"phone": "+821012345678"},
                payload={"text": "내일 오전 10시에 방문드릴게요."},
                status=outbox_status,
                # an unsettled row belongs to another process's send for now (no tick here
                # may take it: this app has no SOLAPI provider)
                not_before=now if outbox_status == "sent" else now + timedelta(hours=1),
                lease_owner=None if outbox_status == "sent" else "another-process",
                lease_until=None if outbox_status == "sent" else now + timedelta(hours=1),
                idempotency_key=f"reply:{message_id}",
                provider_ref=provider_message_id,
                created_at=now,
                updated_at=now,
            )
        ).inserted_primary_key[0]
        return message_id, outbox_id, customer_id

    result: tuple[int, int, int] = await app[keys.DATABASE].write(unit)
    return result


async def rows(client: Client, model: Any) -> list[Any]:
    async with client.app[keys.DATABASE].read() as conn:
        return list((await conn.execute(sa.select(model).order_by(model.id))).all())


async def message(client: Client, message_id: int) -> Any:
    async with client.app[keys.DATABASE].read() as conn:
        return (await conn.execute(sa.select(Message).where(Message.id == message_id))).one()


# --------------------------------------------------------------------------- tests


async def test_the_fixture_report_marks_the_message_delivered(make_client: MakeClient) -> None:
    client = await solapi_client(make_client)
    message_id, _, _ = await sent_message(client)
    shop_id = client.app[keys.SHOP_IDS]["hanbit"]

    with client.app[keys.LIVE].subscribe(shop_id) as console:
        status, answer = await post(client, fixture_body())
        heard = await console.next(within=5.0)

    assert (status, answer) == (200, {"ok": True})
    row = await message(client, message_id)
    assert row.status == "delivered"
    assert row.delivered_at is not None
    assert row.error is None
    events = await rows(client, DeliveryEvent)
    assert [(e.provider, e.event_id, e.provider_message_id, e.status, e.code) for e in events] == [
        ("solapi", "EV261122101512ABCDEF", FIXTURE_MID, "delivered", "4000")
    ]
    assert heard == status_event(message_id, "delivered")


async def test_the_same_body_twice_is_stored_once(make_client: MakeClient) -> None:
    client = await solapi_client(make_client)
    message_id, _, _ = await sent_message(client)
    body = [report("EV-fail-1", "3059", "스팸 차단")]
    assert (await post(client, body))[0] == 200
    first = await message(client, message_id)
    assert first.status == "failed"

    assert await post(client, body) == (200, {"ok": True})

    assert len(await rows(client, DeliveryEvent)) == 1
    assert await message(client, message_id) == first


async def test_a_late_accepted_never_downgrades_delivered(make_client: MakeClient) -> None:
    client = await solapi_client(make_client)
    message_id, _, _ = await sent_message(client)
    assert (await post(client, [report("EV-1", "4000", "발송 처리 완료")]))[0] == 200
    assert (await post(client, [report("EV-0", "2000", "정상 접수")]))[0] == 200
    assert (await post(client, [report("EV-00", "3000", "이통사 전송")]))[0] == 200
    assert (await message(client, message_id)).status == "delivered"
    assert len(await rows(client, DeliveryEvent)) == 3


async def test_statuses_in_one_body_apply_in_order(make_client: MakeClient) -> None:
    client = await solapi_client(make_client)
    message_id, _, _ = await sent_message(client, status="queued")
    body = [report("EV-a", "2000"), report("EV-b", "4000"), report("EV-c", "3059", "스팸")]
    assert (await post(client, body))[0] == 200
    row = await message(client, message_id)
    assert (row.status, row.error) == ("delivered", None)  # the first final status wins


async def test_a_failure_code_sets_failed_and_the_reason(make_client: MakeClient) -> None:
    client = await solapi_client(make_client)
    message_id, _, _ = await sent_message(client)
    assert (await post(client, [report("EV-2", "1062", "발신번호 미등록")]))[0] == 200
    row = await message(client, message_id)
    assert row.status == "failed"
    assert "발신번호 미등록" in row.error
    assert "1062" in row.error
    assert await rows(client, Consent) == []


async def test_an_080_opt_out_records_withdrawn_marketing_consent(make_client: MakeClient) -> None:
    client = await solapi_client(make_client)
    message_id, _, customer_id = await sent_message(client)
    assert (await post(client, [report("EV-3", "1061", "수신거부")]))[0] == 200

    row = await message(client, message_id)
    assert row.status == "failed"
    assert "수신거부" in row.error
    consents = await rows(client, Consent)
    assert [(c.customer_id, c.scope, c.granted, c.source) for c in consents] == [
        (customer_id, "marketing", False, "provider:solapi:1061")
    ]
    assert [a.action for a in await rows(client, AuditEntry)] == ["consent_withdrawn"]
    # another 080 report for the same customer adds nothing
    assert (await post(client, [report("EV-4", "2061")]))[0] == 200
    assert len(await rows(client, Consent)) == 1


async def test_a_message_without_provider_id_is_found_by_our_outbox_id(
    make_client: MakeClient,
) -> None:
    client = await solapi_client(make_client)
    message_id, outbox_id, _ = await sent_message(client, provider_message_id=None)
    body = [report("EV-5", "4000", mid="M4V-learnt", ref=str(outbox_id))]
    assert (await post(client, body))[0] == 200
    row = await message(client, message_id)
    assert (row.status, row.provider_message_id) == ("delivered", "M4V-learnt")


async def test_solapis_own_fallback_to_sms_is_shown(make_client: MakeClient) -> None:
    """An AlimTalk the customer could not get went as SMS (SOLAPI's 대체 발송): the report
    is of an SMS; the message says it went by text and why."""
    client = await solapi_client(make_client)
    message_id, _, _ = await sent_message(client, path="alimtalk")
    item = report("EV-FB", "4000")
    item["data"]["type"] = "LMS"
    assert (await post(client, [item]))[0] == 200
    row = await message(client, message_id)
    assert (row.status, row.path) == ("delivered", "lms")
    (why,) = row.payload["fell_back"]
    assert why["path"] == "alimtalk"
    assert "대체 발송" in why["reason"]


@pytest.mark.parametrize("was", ["unknown", "pending", "sending"])
async def test_a_report_settles_an_outbox_row_that_never_heard_back(
    make_client: MakeClient, was: str
) -> None:
    """The send's answer was lost (or a retry is scheduled), but SOLAPI reports the message:
    the row is sent with SOLAPI's id and is never sent again."""
    client = await solapi_client(make_client)
    message_id, outbox_id, _ = await sent_message(
        client, provider_message_id=None, status="queued", outbox_status=was
    )
    body = [report("EV-6", "4000", mid="M4V-found", ref=str(outbox_id))]
    assert (await post(client, body))[0] == 200
    (item,) = await rows(client, OutboxItem)
    assert (item.status, item.provider_ref, item.lease_owner) == ("sent", "M4V-found", None)
    row = await message(client, message_id)
    assert (row.status, row.provider_message_id) == ("delivered", "M4V-found")


async def test_a_report_does_not_revive_a_cancelled_row(make_client: MakeClient) -> None:
    client = await solapi_client(make_client)
    _, outbox_id, _ = await sent_message(
        client, provider_message_id=None, status="cancelled", outbox_status="cancelled"
    )
    assert (await post(client, [report("EV-7", "4000", mid="M", ref=str(outbox_id))]))[0] == 200
    (item,) = await rows(client, OutboxItem)
    assert item.status == "cancelled"


@pytest.mark.parametrize(
    ("shop", "token"),
    [("hanbit", "wrong-token-wrong-token-wrong"), ("nobody", TOKEN), ("hanbit", "")],
)
async def test_a_wrong_token_or_shop_is_404_and_nothing_is_stored(
    make_client: MakeClient, shop: str, token: str
) -> None:
    client = await solapi_client(make_client)
    message_id, _, _ = await sent_message(client)
    resp = await client.post(f"/hooks/solapi/{shop}/{token}", json=fixture_body())
    assert resp.status == 404
    assert await rows(client, DeliveryEvent) == []
    assert (await message(client, message_id)).status == "sent"


async def test_a_shop_without_the_setting_is_404(make_client: MakeClient) -> None:
    client = await make_client()  # the default shop has no [shops.solapi]
    status, _ = await post(client, fixture_body())
    assert status == 404
    assert await rows(client, DeliveryEvent) == []


@pytest.mark.parametrize("raw", [b"{not json", b'{"eventDataId": "x"}', b"[1, 2]", b"[\xc3\x28]"])
async def test_a_malformed_body_is_400_and_nothing_is_stored(
    make_client: MakeClient, raw: bytes
) -> None:
    client = await solapi_client(make_client)
    status, answer = await post(client, raw=raw)
    assert status == 400
    assert answer["ok"] is False
    assert await rows(client, DeliveryEvent) == []


async def test_an_unknown_message_is_stored_and_answered_200(make_client: MakeClient) -> None:
    client = await solapi_client(make_client)
    message_id, _, _ = await sent_message(client)
    body = [report("EV-6", "4000", mid="M4V-nobody-knows", ref="999999")]
    assert await post(client, body) == (200, {"ok": True})
    events = await rows(client, DeliveryEvent)
    assert [e.provider_message_id for e in events] == ["M4V-nobody-knows"]
    assert (await message(client, message_id)).status == "sent"


async def test_another_shops_message_is_not_touched(make_client: MakeClient) -> None:
    other = shop_table(slug="other")
    other.pop("kakao")
    hanbit = shop_table(solapi={"webhook_token_env": "DANGOL_TEST_SOLAPI_TOKEN"})
    client = await make_client(shops=[hanbit, other])
    message_id, outbox_id, _ = await sent_message(client)
    # reported to hanbit's URL but about a message id and outbox id hanbit does not own
    app = client.app

    def move(conn: Connection) -> None:
        other_id = app[keys.SHOP_IDS]["other"]
        conn.execute(sa.update(Message).values(shop_id=other_id))
        conn.execute(sa.update(OutboxItem).values(shop_id=other_id))
        conn.execute(sa.update(Conversation).values(shop_id=other_id))
        conn.execute(sa.update(Customer).values(shop_id=other_id))

    await app[keys.DATABASE].write(move)
    body = [report("EV-7", "4000", ref=str(outbox_id))]
    assert (await post(client, body))[0] == 200
    assert (await message(client, message_id)).status == "sent"
