"""The Kakao skill webhook end to end: real app factory, real database (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from conftest import Client, kst, shop_table
from sqlalchemy.engine import Connection
from support.kakao import payload, post, rows, said, texts
from support.settle import settled
from support.slow_database import HeldWrites

from bot import keys
from core.clock import FrozenClock
from core.models import (
    AuditEntry,
    Consent,
    Conversation,
    Customer,
    CustomerIdentity,
    Message,
    OutboxItem,
)
from core.shops import set_owner_status


async def set_owner(client: Client, status: str, until: Any = None) -> None:
    app = client.app
    shop_id = app[keys.SHOP_IDS]["hanbit"]
    await app[keys.DATABASE].write(set_owner_status(shop_id, status, until, app[keys.CLOCK].now()))


# --------------------------------------------------------------------------- the conversation


async def test_first_message_gets_the_honest_acknowledgement(client: Client) -> None:
    status, answer = await post(client, payload())
    assert status == 200
    (text,) = texts(answer)
    assert "사장님이 확인하고 바로 답변드릴게요" in text
    labels = [q["label"] for q in answer["template"]["quickReplies"]]
    assert {"영업시간", "상담원 연결", "출장비 안내"} <= set(labels)

    messages = await rows(client, Message)
    assert [(m.direction, m.sender, m.status) for m in messages] == [
        ("in", "customer", "received"),
        ("out", "bot", "delivered"),
    ]
    assert messages[0].body == "에어컨에서 물이 새요. 내일 오전에 방문 가능하세요?"
    (conv,) = await rows(client, Conversation)
    assert conv.waiting_since == kst(2026, 11, 23, 10, 0)
    assert conv.sla_due_at == kst(2026, 11, 23, 10, 30)
    identities = {(i.kind, i.value[:6]) for i in await rows(client, CustomerIdentity)}
    assert identities == {("kakao_bot_user", "7d1c0b"), ("kakao_plusfriend", "Hx3Lq9")}


async def test_follow_up_in_the_same_waiting_period_gets_the_short_form(client: Client) -> None:
    await post(client, payload())
    _, answer = await post(client, said("사진도 보내드릴까요?"))
    (text,) = texts(answer)
    assert text.startswith("메시지 잘 받았어요")
    notifications = [o for o in await rows(client, OutboxItem) if o.purpose == "owner_notification"]
    assert len(notifications) == 1  # one notice per waiting period, not per message


async def test_owner_on_site_is_told_honestly(client: Client) -> None:
    await set_owner(client, "on_site", kst(2026, 11, 23, 15, 30))
    _, answer = await post(client, payload())
    assert "사장님이 현장 작업 중이라 15:30 이후 답변드릴게요" in texts(answer)[0]


async def test_outside_hours_names_the_next_opening(client: Client, clock: FrozenClock) -> None:
    clock.set(kst(2026, 11, 23, 20, 0))
    _, answer = await post(client, payload())
    assert "지금은 영업시간이 아니에요. 내일 09:00부터 순서대로 답변드려요" in texts(answer)[0]


async def test_chuseok_names_the_holiday(client: Client, clock: FrozenClock) -> None:
    clock.set(kst(2026, 9, 24, 11, 0))
    _, answer = await post(client, payload())
    assert "추석 연휴(9/24~9/26)로 쉬고 있어요. 9월 28일(월) 09:00부터" in texts(answer)[0]


async def test_pending_owner_reply_is_delivered_on_the_next_utterance(client: Client) -> None:
    await post(client, payload())
    (customer,) = await rows(client, Customer)
    (conv,) = await rows(client, Conversation)
    now = client.app[keys.CLOCK].now()

    def hold(conn: Connection) -> None:
        conn.execute(
            sa.insert(Message).values(
                shop_id=conv.shop_id,
                conversation_id=conv.id,
                customer_id=customer.id,
                direction="out",
                sender="owner",
                channel="kakao",
                body="내일 오전 10시에 방문드릴게요.",
                payload={},
                status="held",
                path="mailbox",
                created_at=now,
            )
        )

    await client.app[keys.DATABASE].write(hold)
    _, answer = await post(client, said("네 알겠습니다"))
    first, *rest = texts(answer)
    assert first == "[한빛설비 사장님 답장]\n내일 오전 10시에 방문드릴게요."
    assert rest  # the bot still answers the new message
    held = [m for m in await rows(client, Message) if m.sender == "owner"]
    assert [m.status for m in held] == ["delivered"]

    _, again = await post(client, said("감사합니다"))
    assert not any("사장님 답장" in t for t in texts(again))  # handed over once


async def test_same_payload_twice_is_stored_once_and_answered_the_same(client: Client) -> None:
    first = await post(client, payload())
    second = await post(client, payload())
    assert first == second
    inbound = [m for m in await rows(client, Message) if m.direction == "in"]
    assert len(inbound) == 1


async def test_same_words_after_the_resend_window_are_a_new_message(
    client: Client, clock: FrozenClock
) -> None:
    await post(client, payload())
    clock.advance(minutes=5)
    await post(client, payload())
    inbound = [m for m in await rows(client, Message) if m.direction == "in"]
    assert len(inbound) == 2


async def test_faq_quick_reply_answers_without_waiting_for_the_owner(client: Client) -> None:
    _, answer = await post(client, payload("skill-quickreply-nonfriend.json"))
    assert "영업시간" in texts(answer)[0]
    (conv,) = await rows(client, Conversation)
    assert conv.waiting_since is None
    assert await rows(client, OutboxItem) == []


async def test_opt_out_keyword_records_the_withdrawal(client: Client) -> None:
    _, answer = await post(client, said("수신거부"))
    assert "수신을 거부" in texts(answer)[0]
    (consent,) = await rows(client, Consent)
    assert (consent.scope, consent.granted) == ("marketing", False)
    # Recorded by the one consent recorder, as a vendor's opt-out is: with its audit entry.
    (audit,) = await rows(client, AuditEntry)
    assert (audit.action, audit.subject) == ("consent_withdrawn", f"customer:{consent.customer_id}")
    assert audit.actor == "customer"
    assert audit.detail == {"scope": "marketing", "source": consent.source}


async def test_complaint_opens_a_24_hour_deadline_and_tells_the_owner(client: Client) -> None:
    _, answer = await post(client, said("지난주에 고친 에어컨이 또 고장났어요. 환불해 주세요"))
    assert "죄송" in texts(answer)[0]
    (conv,) = await rows(client, Conversation)
    assert conv.complaint is True
    assert conv.complaint_due_at == kst(2026, 11, 24, 10, 0)
    (notice,) = await rows(client, OutboxItem)
    assert "불만" in notice.payload["text"]


async def test_handoff_request_notifies_the_owner(client: Client) -> None:
    await post(client, payload())
    _, answer = await post(client, said("상담원 연결"))
    assert "연결" in texts(answer)[0]
    (conv,) = await rows(client, Conversation)
    assert conv.handoff_requested_at is not None
    assert len(await rows(client, OutboxItem)) == 2


async def test_owner_notification_goes_out_through_the_outbox_at_once(client: Client) -> None:
    await post(client, payload())
    # No manual tick: storing the message wakes the dispatch tick, which sends it.
    await settled(client.app)
    (notice,) = await rows(client, OutboxItem)
    assert (notice.status, notice.provider) == ("sent", "console")
    console = client.app[keys.PROVIDERS]["console"]
    assert any("에어컨에서 물이 새요" in item.text for item in console.sent)  # type: ignore[attr-defined]


async def test_slow_database_still_answers_in_time_and_loses_nothing(
    make_client: Callable[..., Awaitable[Client]],
) -> None:
    client = await make_client(server={"skill_budget_ms": 100})
    async with HeldWrites(client.app):  # the commit waits for as long as this is held
        started = asyncio.get_running_loop().time()
        status, answer = await post(client, payload())
        elapsed = asyncio.get_running_loop().time() - started
    assert status == 200
    assert elapsed < 0.4
    assert texts(answer) == ["메시지를 받았어요. 사장님이 확인하고 답변드릴게요."]
    await settled(client.app)  # the unit commits once the database catches up
    inbound = [m for m in await rows(client, Message) if m.direction == "in"]
    assert len(inbound) == 1


# --------------------------------------------------------------------------- bad input


async def test_wrong_secret_is_refused_and_nothing_stored(client: Client) -> None:
    status, _ = await post(client, payload(), secret="guess")
    assert status == 401
    status, _ = await post(client, payload(), secret=None)
    assert status == 401
    assert await rows(client, Message) == []


async def test_unknown_shop_is_404(client: Client) -> None:
    status, _ = await post(client, payload(), shop="nope")
    assert status == 404


async def test_wrong_bot_id_is_refused(client: Client) -> None:
    data = payload()
    data["bot"]["id"] = "someone-elses-bot"
    status, _ = await post(client, data)
    assert status == 403
    assert await rows(client, Message) == []


@pytest.mark.parametrize(
    "raw",
    [
        b"{not json",
        b"\xff\xfe",
        b"",
        b"[]",
        b'"text"',
        b"null",
        b'{"bot": {"id": "x"}}',
        b'{"userRequest": 5}',
    ],
)
async def test_malformed_bodies_get_400_with_a_skill_response(client: Client, raw: bytes) -> None:
    status, answer = await post(client, None, raw=raw)
    assert status == 400
    assert texts(answer)
    assert await rows(client, Message) == []


async def test_one_megabyte_utterance_is_refused_politely(client: Client) -> None:
    status, answer = await post(client, said("가" * 1_000_000))
    assert status == 413
    assert "나눠서" in texts(answer)[0]
    assert await rows(client, Message) == []


async def test_unicode_edge_cases_are_stored_clean(client: Client) -> None:
    text = "👨‍👩‍👧 에어컨\u202e 고장\x00났어요 \u200d"
    status, _ = await post(client, said(text))
    assert status == 200
    (inbound, _) = await rows(client, Message)
    assert "\x00" not in inbound.body
    assert "\u202e" not in inbound.body
    assert "👨‍👩‍👧" in inbound.body


async def test_html_is_kept_as_text(client: Client) -> None:
    text = '<script>alert(1)</script><img src=x onerror="alert(2)">'
    status, _ = await post(client, said(text))
    assert status == 200
    (inbound, _) = await rows(client, Message)
    assert inbound.body == text  # stored verbatim; escaping is the renderer's job


async def test_lang_kr_and_unknown_keys_are_accepted(client: Client) -> None:
    data = copy.deepcopy(payload(lang="kr"))
    data["userRequest"]["user"]["properties"]["talkUserId"] = "x"
    data["somethingNew"] = {"nested": [1, 2]}
    status, _ = await post(client, data)
    assert status == 200


# --------------------------------------------------------------------------- operations


async def test_healthz_and_metrics(client: Client) -> None:
    await post(client, payload())
    health = await client.get("/healthz")
    assert health.status == 200
    assert (await health.json())["database"] == "ok"
    metrics = await (await client.get("/metrics")).text()
    assert (
        'dangol_http_requests_total{method="POST",route="kakao_skill",status="200"} 1.0' in metrics
    )
    assert "dangol_http_request_seconds_bucket" in metrics
    assert "dangol_outbox_dead_letters" in metrics


async def test_a_shop_without_kakao_is_404(make_client: Callable[..., Awaitable[Client]]) -> None:
    client = await make_client(shops=[_without_kakao()])
    status, _ = await post(client, payload())
    assert status == 404


def _without_kakao() -> dict[str, Any]:
    shop = shop_table()
    del shop["kakao"]
    return shop


async def test_median_reply_time_is_quoted_when_known(client: Client) -> None:
    app = client.app
    shop_id, now = app[keys.SHOP_IDS]["hanbit"], app[keys.CLOCK].now()

    def answered(conn: Connection) -> None:
        for n, minutes in enumerate((8, 12, 30)):
            customer = conn.execute(
                sa.insert(Customer)
                .values(shop_id=shop_id, tier="bronze", tags=[], notes="", created_at=now)
                .returning(Customer.id)
            ).scalar_one()
            conn.execute(
                sa.insert(Conversation).values(
                    shop_id=shop_id,
                    customer_id=customer,
                    channel="kakao",
                    status="resolved",
                    complaint=False,
                    unread_count=0,
                    last_message_at=now,
                    created_at=now,
                    first_response_at=now - timedelta(days=n + 1),
                    first_response_seconds=minutes * 60,
                )
            )

    await app[keys.DATABASE].write(answered)
    await app[keys.REPLY_STATS].refresh(app[keys.DATABASE], [shop_id], now)
    _, answer = await post(client, payload())
    assert "보통 12분 안에" in texts(answer)[0]


async def test_a_new_message_reaches_the_owners_console_live(client: Client) -> None:
    hub, shop_id = client.app[keys.LIVE], client.app[keys.SHOP_IDS]["hanbit"]
    with hub.subscribe(shop_id) as consoles:
        await post(client, payload())
        event = await consoles.next(within=5)
        assert event is not None
        assert event["type"] == "message"
        await post(client, payload())  # a resend is not news
        hub.publish(shop_id, {"type": "marker"})  # events come in order: this one is next
        assert await consoles.next(within=5) == {"type": "marker"}
