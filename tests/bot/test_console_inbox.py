"""The inbox: who waits longest comes first, coloured against the reply target; filters,
keyset pagination, and the list fragment the live page swaps in (SQLite and PostgreSQL)."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from datetime import timedelta

import pytest
import sqlalchemy as sa
from conftest import shop_table
from sqlalchemy.engine import Connection
from support.console import (
    Client,
    add_account,
    insert_conversation,
    insert_customer,
    insert_message,
    now_of,
    rows,
    shop_id,
    sign_in,
    thread,
    write,
)

from bot.console.queries.inbox import Cursor
from bot.console.queries.waiting import level_of
from core.models import Conversation as C

pytestmark = pytest.mark.usefixtures("cheap_hasher")


def row_ids(html: str) -> list[int]:
    return [int(i) for i in re.findall(r'<li class="conv [^"]*" data-id="(\d+)"', html)]


def row_html(html: str, conversation_id: int) -> str:
    match = re.search(
        rf'<li class="conv [^"]*" data-id="{conversation_id}">(.*?)</li>', html, re.DOTALL
    )
    assert match, f"row {conversation_id} not on the page"
    return match.group(0)


async def inbox_html(client: Client, query: str = "") -> str:
    resp = await client.get(f"/console/{query}")
    assert resp.status == 200
    return await resp.text()


# --------------------------------------------------------------------------- order and rows


async def test_longest_waiting_first_then_most_recent(owner: Client) -> None:
    at = now_of(owner)
    sid = shop_id(owner)

    def unit(conn: Connection) -> dict[str, int]:
        ids = {}
        for key, waited, last in (
            ("answered_recently", None, 1),
            ("waits_10", 10, 10),
            ("answered_long_ago", None, 300),
            ("waits_40", 40, 40),
        ):
            customer = insert_customer(conn, sid, at, name=key)
            ids[key] = insert_conversation(
                conn,
                sid,
                customer,
                at - timedelta(minutes=last),
                waiting_since=at - timedelta(minutes=waited) if waited else None,
            )
        return ids

    ids = await write(owner, unit)
    html = await inbox_html(owner)
    assert row_ids(html) == [
        ids["waits_40"],
        ids["waits_10"],
        ids["answered_recently"],
        ids["answered_long_ago"],
    ]


@pytest.mark.parametrize(
    ("waited", "target", "level"),
    [
        (0, 30, "green"),
        (14, 30, "green"),
        (15, 30, "amber"),
        (29, 30, "amber"),
        (30, 30, "red"),
        (45, 60, "amber"),
        (None, 30, "none"),
    ],
)
def test_levels_against_the_reply_target(waited: int | None, target: int, level: str) -> None:
    assert level_of(waited, target) == level


async def test_rows_are_coloured_by_the_shops_target(
    make_client: Callable[..., Awaitable[Client]],
) -> None:
    client = await make_client(shops=[shop_table(reply_target_minutes=60)])
    await add_account(client)
    await sign_in(client)
    _, green = await thread(client, waited_minutes=20, kakao="k-green")
    _, amber = await thread(client, waited_minutes=45, kakao="k-amber")
    _, red = await thread(client, waited_minutes=61, kakao="k-red")
    html = await inbox_html(client)
    assert 'class="conv level-green' in row_html(html, green)
    assert 'class="conv level-amber' in row_html(html, amber)
    assert 'class="conv level-red' in row_html(html, red)
    assert "답변 목표 60분" in html


async def test_a_row_shows_name_preview_wait_unread_complaint_and_channel(owner: Client) -> None:
    at = now_of(owner)
    long_body = "보일러 " * 100
    _, named = await thread(
        owner,
        name="이영희",
        waited_minutes=12,
        unread=3,
        body=long_body,
        complaint=True,
        complaint_due_at=at + timedelta(hours=24),
    )
    customer_id, nameless = await thread(
        owner, name=None, kakao="k-2", channel="sms", waited_minutes=None, unread=0, body="감사"
    )
    html = await inbox_html(owner)
    row = row_html(html, named)
    assert "이영희" in row
    assert "12분째 기다리는 중" in row
    assert '<span class="badge unread" title="읽지 않은 메시지">3</span>' in row
    assert "불만 · 내일 10:00까지" in row
    assert "카카오" in row
    preview = re.search(r'<span class="preview">(.*?)</span>', row, re.DOTALL)
    assert preview
    assert len(preview.group(1)) <= 130  # one line: the body is cut, not sent whole
    other = row_html(html, nameless)
    assert f"고객 #{customer_id}" in other
    assert "문자" in other
    assert "badge unread" not in other
    assert "답변함" in other


async def test_hours_and_days_of_waiting_read_naturally(owner: Client) -> None:
    _, hours = await thread(owner, waited_minutes=125, kakao="k-1")
    _, days = await thread(owner, waited_minutes=60 * 24 * 3 + 5, kakao="k-2")
    html = await inbox_html(owner)
    assert "2시간 5분째 기다리는 중" in row_html(html, hours)
    assert "3일째 기다리는 중" in row_html(html, days)


async def test_the_preview_is_the_latest_said_not_the_bots_ack_or_an_event(owner: Client) -> None:
    at = now_of(owner)
    customer_id, conv = await thread(owner, body="처음 메시지")
    _, acked = await thread(owner, body="물이 새요", kakao="k-2")

    def unit(conn: Connection) -> None:
        sid = shop_id(owner)
        insert_message(
            conn,
            sid,
            acked,
            customer_id + 1,
            at,
            "접수했어요",
            direction="out",
            sender="bot",
            status="delivered",
        )
        insert_message(
            conn,
            sid,
            conv,
            customer_id,
            at,
            "사장님 답장입니다",
            direction="out",
            sender="owner",
            status="delivered",
            path="simulator",
        )
        insert_message(
            conn,
            sid,
            conv,
            customer_id,
            at,
            "[snoozed]",
            direction="note",
            sender="system",
            status="delivered",
        )

    await write(owner, unit)
    row = row_html(await inbox_html(owner), conv)
    assert '<span class="from">나</span> 사장님 답장입니다' in row
    assert "처음 메시지" not in row
    assert "snoozed" not in row
    row = row_html(await inbox_html(owner), acked)
    assert "물이 새요" in row
    assert "접수했어요" not in row


# --------------------------------------------------------------------------- filters


async def test_filters(owner: Client) -> None:
    at = now_of(owner)
    _, waiting = await thread(owner, kakao="k-1", waited_minutes=5)
    _, answered = await thread(owner, kakao="k-2", waited_minutes=None)
    _, complaint = await thread(
        owner, kakao="k-3", waited_minutes=None, complaint=True, complaint_due_at=at
    )
    _, resolved = await thread(owner, kakao="k-4", waited_minutes=None, status="resolved")
    _, snoozed = await thread(
        owner,
        kakao="k-5",
        waited_minutes=50,
        status="snoozed",
        snoozed_until=at + timedelta(hours=1),
    )
    _, snooze_over = await thread(
        owner,
        kakao="k-6",
        waited_minutes=50,
        status="snoozed",
        snoozed_until=at - timedelta(minutes=1),
    )

    everything = await inbox_html(owner)
    assert set(row_ids(everything)) == {waiting, answered, complaint, snoozed, snooze_over}
    assert "오늘 11:00까지 미룸" in row_html(everything, snoozed)
    assert "미룸" not in row_html(everything, snooze_over)
    assert set(row_ids(await inbox_html(owner, "?filter=waiting"))) == {waiting, snooze_over}
    assert row_ids(await inbox_html(owner, "?filter=complaint")) == [complaint]
    assert row_ids(await inbox_html(owner, "?filter=resolved")) == [resolved]
    # An unknown filter is the default one, not an error.
    assert set(row_ids(await inbox_html(owner, "?filter=<script>"))) == set(row_ids(everything))
    tabs = re.findall(
        r'<a class="filter[^"]*"[^>]*>([^<]+)(?:<span class="count">(\d+)</span>)?', everything
    )
    assert [(label.strip(), count) for label, count in tabs] == [
        ("전체", "5"),
        ("답변 대기", "2"),
        ("불만", "1"),
        ("해결됨", ""),
    ]


async def test_empty_inbox_says_so(owner: Client) -> None:
    html = await inbox_html(owner)
    assert "아직 문의가 없어요" in html
    assert "기다리는 고객이 없어요" in await inbox_html(owner, "?filter=waiting")


async def test_another_shops_conversations_never_show(
    make_client: Callable[..., Awaitable[Client]],
) -> None:
    client = await make_client(shops=[shop_table(), shop_table(slug="other", name="다른설비")])
    await add_account(client)
    await sign_in(client)
    _, mine = await thread(client, name="우리고객", kakao="k-1")
    _, theirs = await thread(client, shop="other", name="남의고객", kakao="k-1")
    html = await inbox_html(client)
    assert row_ids(html) == [mine]
    assert "남의고객" not in html
    fragment = await (await client.get("/console/inbox/list")).text()
    assert row_ids(fragment) == [mine]
    assert theirs != mine


# --------------------------------------------------------------------------- pages


async def test_keyset_pages_walk_every_conversation_once_in_order(owner: Client) -> None:
    at = now_of(owner)
    sid = shop_id(owner)

    def unit(conn: Connection) -> list[int]:
        ids = []
        for i in range(130):
            customer = insert_customer(conn, sid, at, name=f"고객{i}")
            waited = None if i % 3 else timedelta(minutes=i % 7)  # ties on purpose
            last = at - timedelta(minutes=i % 11)  # ties on purpose
            ids.append(
                insert_conversation(
                    conn, sid, customer, last, waiting_since=at - waited if waited else None
                )
            )
        return ids

    created = await write(owner, unit)
    seen: list[int] = []
    query = ""
    pages = 0
    while True:
        html = await inbox_html(owner, query)
        ids = row_ids(html)
        assert len(ids) <= 50
        seen += ids
        pages += 1
        more = re.search(r'href="/console/\?filter=all&amp;after=([^"]+)">더 보기', html)
        if not more:
            break
        assert "처음으로" in html or pages == 1
        query = f"?filter=all&after={more.group(1)}"
    assert pages == 3
    assert sorted(seen) == sorted(created)
    assert len(seen) == len(set(seen))
    # The order is the inbox's: waiting (longest first), then by last message, newest first.
    rows = await _sort_keys(owner)
    assert seen == [r[2] for r in sorted(rows, key=_inbox_key)]


async def _sort_keys(client: Client) -> list[tuple[object, object, int]]:
    found = await rows(client, sa.select(C.waiting_since, C.last_message_at, C.id))
    return [(r.waiting_since, r.last_message_at, r.id) for r in found]


def _inbox_key(row: tuple[object, object, int]) -> tuple[object, ...]:
    waiting, last, id_ = row
    return (waiting is None, waiting or 0, -last.timestamp(), -id_)  # type: ignore[attr-defined]


async def test_a_malformed_cursor_starts_from_the_top(owner: Client) -> None:
    _, conv = await thread(owner)
    for bad in ("x", "1.2", "n.abc.3", "9" * 90, "-1.-1.-1"):
        assert row_ids(await inbox_html(owner, f"?after={bad}")) == [conv]


def test_cursors_round_trip() -> None:
    from datetime import UTC, datetime

    for waited in (None, datetime(2026, 11, 23, 1, 2, 3, 456789, tzinfo=UTC)):
        cursor = Cursor(waited, datetime(2026, 11, 22, tzinfo=UTC), 42)
        assert Cursor.decode(cursor.encode()) == cursor


# --------------------------------------------------------------------------- the fragment


async def test_the_list_fragment_is_the_list_alone(owner: Client) -> None:
    _, conv = await thread(owner, name="조각고객")
    resp = await owner.get("/console/inbox/list?filter=waiting")
    assert resp.status == 200
    html = await resp.text()
    assert "<html" not in html
    assert "조각고객" in html
    assert row_ids(html) == [conv]
    assert 'data-waiting="1"' in html
    assert resp.headers["Cache-Control"] == "no-store"


async def test_the_inbox_needs_a_session(client: Client) -> None:
    for path in ("/console/", "/console/inbox/list"):
        resp = await client.get(path, allow_redirects=False)
        assert resp.status == 303
        assert resp.headers["Location"].startswith("/console/login")


async def test_staff_see_the_inbox_too(owner: Client) -> None:
    await add_account(owner, "staff-a", role="staff")
    await sign_in(owner, "staff-a")
    _, conv = await thread(owner)
    html = await inbox_html(owner)
    assert row_ids(html) == [conv]
    assert "직원" in html
