"""The 고객 tab: every customer newest activity first, the search (name, a phone number in
any spelling, tag), keyset pages, one shop's customers only, and names escaped (SQLite and
PostgreSQL)."""

from __future__ import annotations

import html as html_mod
import re
from collections.abc import Awaitable, Callable
from datetime import timedelta
from urllib.parse import urlencode

import pytest
from conftest import shop_table
from sqlalchemy.engine import Connection
from support.console import (
    Client,
    add_account,
    insert_conversation,
    insert_customer,
    now_of,
    shop_id,
    sign_in,
    write,
)

from bot import logs
from bot.console.customer_list import Cursor, Search

pytestmark = pytest.mark.usefixtures("cheap_hasher")

ROW = re.compile(r'<li class="conv customer-row" data-id="(\d+)">(.*?)</li>', re.DOTALL)


def row_ids(html: str) -> list[int]:
    return [int(m.group(1)) for m in ROW.finditer(html)]


def row_of(html: str, customer_id: int) -> str:
    found = {int(m.group(1)): m.group(2) for m in ROW.finditer(html)}
    return found[customer_id]


async def listing(client: Client, q: str | None = None, after: str | None = None) -> str:
    params = {k: v for k, v in (("q", q), ("after", after)) if v is not None}
    resp = await client.get("/console/customers" + (f"?{urlencode(params)}" if params else ""))
    assert resp.status == 200
    return await resp.text()


async def regulars(client: Client) -> dict[str, int]:
    """Four customers with a conversation each, and one who never wrote (the oldest)."""
    at = now_of(client)
    sid = shop_id(client)

    def unit(conn: Connection) -> dict[str, int]:
        made = {}
        for minutes, name, phone, tags in (
            (50, "김단골", "+821012345678", ["단골", "에어컨"]),
            (40, "이보일러", "+821098765678", ["보일러"]),
            (30, None, "+82212345678", []),
            (20, "박카톡", None, ["단골"]),
        ):
            customer = insert_customer(
                conn, sid, at - timedelta(days=30), name=name, phone=phone, tags=tags
            )
            insert_conversation(conn, sid, customer, at - timedelta(minutes=minutes))
            made[name or "이름없음"] = customer
        made["새고객"] = insert_customer(conn, sid, at - timedelta(days=60), name="새고객")
        return made

    made: dict[str, int] = await write(client, unit)
    return made


# --------------------------------------------------------------------------- the tab


async def test_the_nav_has_a_customers_tab_listing_newest_activity_first(owner: Client) -> None:
    made = await regulars(owner)
    html = await listing(owner)
    assert '<a href="/console/customers" aria-current="page">고객</a>' in html
    assert row_ids(html) == [
        made["박카톡"],
        made["이름없음"],
        made["이보일러"],
        made["김단골"],
        made["새고객"],
    ]
    assert f'href="/console/customers/{made["김단골"]}"' in row_of(html, made["김단골"])
    inbox = await (await owner.get("/console/")).text()
    assert '<a href="/console/customers">고객</a>' in inbox


async def test_rows_mask_the_phone_as_the_customer_panel_does(owner: Client) -> None:
    made = await regulars(owner)
    html = await listing(owner)
    assert "010-****-5678" in row_of(html, made["김단골"])
    assert "02-****-5678" in row_of(html, made["이름없음"])
    assert "고객 #" in row_of(html, made["이름없음"])
    assert "전화번호 없음" in row_of(html, made["박카톡"])
    assert "1234" not in html.replace("02-1234-5678", "")  # the shop's own number may show
    panel = await (await owner.get(f"/console/customers/{made['김단골']}")).text()
    assert "010-****-5678" in panel


async def test_a_new_message_moves_the_customer_to_the_top(owner: Client) -> None:
    made = await regulars(owner)
    sid = shop_id(owner)
    await write(
        owner,
        lambda conn: insert_conversation(conn, sid, made["새고객"], now_of(owner), status="open"),
    )
    assert row_ids(await listing(owner))[0] == made["새고객"]


# --------------------------------------------------------------------------- search


@pytest.mark.parametrize(
    "typed",
    ["010-1234-5678", "01012345678", "+82 10 1234 5678", "+82 010-1234-5678", "10-1234-5678"],
)
async def test_a_phone_number_in_any_spelling_finds_the_customer(owner: Client, typed: str) -> None:
    made = await regulars(owner)
    assert row_ids(await listing(owner, typed)) == [made["김단골"]]


async def test_the_last_four_digits_find_everyone_whose_number_ends_so(owner: Client) -> None:
    made = await regulars(owner)
    # Newest activity first; a Seoul number (02) is found the same way.
    html = await listing(owner, "5678")
    assert row_ids(html) == [made["이름없음"], made["이보일러"], made["김단골"]]
    assert "전화번호 검색: 5678" in html
    assert row_ids(await listing(owner, "02-1234-5678")) == [made["이름없음"]]
    assert row_ids(await listing(owner, "9999")) == []


async def test_a_name_or_a_part_of_it_finds_the_customer(owner: Client) -> None:
    made = await regulars(owner)
    assert row_ids(await listing(owner, "김단골")) == [made["김단골"]]
    assert row_ids(await listing(owner, "보일")) == [made["이보일러"]]
    html = await listing(owner, "없는사람")
    assert row_ids(html) == []
    assert "찾는 고객이 없어요" in html


async def test_a_tag_finds_its_customers_whole_tags_only(owner: Client) -> None:
    made = await regulars(owner)
    html = await listing(owner, "#단골")
    assert row_ids(html) == [made["박카톡"], made["김단골"]]
    assert "태그 검색: #단골" in html
    # Without "#": names and tags; "보일러" is a tag and part of a name.
    assert row_ids(await listing(owner, "에어컨")) == [made["김단골"]]
    assert row_ids(await listing(owner, "#에어")) == []


async def test_like_wildcards_in_a_search_are_plain_characters(owner: Client) -> None:
    sid = shop_id(owner)
    at = now_of(owner)
    percent = await write(owner, lambda c: insert_customer(c, sid, at, name="100%만족"))
    await write(owner, lambda c: insert_customer(c, sid, at, name="100점"))
    await write(owner, lambda c: insert_customer(c, sid, at, name="a_b"))
    await write(owner, lambda c: insert_customer(c, sid, at, name="axb"))
    assert row_ids(await listing(owner, "%")) == [percent]
    assert len(row_ids(await listing(owner, "_"))) == 1


def test_what_the_box_reads_a_search_as() -> None:
    assert Search.parse("  010-1234-5678 ") == Search("010-1234-5678", "phone", "01012345678")
    assert Search.parse("+82 (10) 1234.5678").term == "821012345678"
    assert Search.parse("+82 010 1234 5678").term == "821012345678"
    assert Search.parse("#VIP") == Search("#VIP", "tag", "VIP")
    assert Search.parse("#").kind == "all"
    assert Search.parse("고객12") == Search("고객12", "name", "고객12")
    assert Search.parse("").kind == "all"
    assert len(Search.parse("가" * 500).text) == 100


# --------------------------------------------------------------------------- pages


async def test_keyset_pages_walk_every_customer_once_in_order(owner: Client) -> None:
    at = now_of(owner)
    sid = shop_id(owner)

    def unit(conn: Connection) -> list[int]:
        ids = []
        for i in range(120):
            customer = insert_customer(
                conn, sid, at - timedelta(days=400), name=f"단골{i}", phone=f"+82105555{i:04d}"
            )
            # ties on purpose: several customers share a last message time
            insert_conversation(conn, sid, customer, at - timedelta(minutes=i // 3))
            ids.append(customer)
        return ids

    created = await write(owner, unit)
    # Newest activity first, ties newest id first.
    expected = sorted(created, key=lambda c: (created.index(c) // 3, -c))
    for q in (None, "단골", "5555"):
        seen: list[int] = []
        after = None
        pages = 0
        while True:
            html = await listing(owner, q, after)
            seen += row_ids(html)
            pages += 1
            found = re.search(r'href="/console/customers\?([^"]*after=[^"]+)">더 보기', html)
            if not found:
                break
            params = dict(p.split("=", 1) for p in html_mod.unescape(found.group(1)).split("&"))
            after = params["after"]
            if q:
                assert "q=" in found.group(1), "the next page keeps the search"
            assert "‹ 처음으로" in await listing(owner, q, after)
        assert seen == expected, q
        assert pages == 3


async def test_a_malformed_cursor_starts_from_the_top(owner: Client) -> None:
    made = await regulars(owner)
    for after in ("x", "1.2.3", "-5.1", "9" * 30 + ".1", ""):
        assert row_ids(await listing(owner, after=after))[0] == made["박카톡"]
    assert Cursor.decode(Cursor(now_of(owner), 7).encode()) == Cursor(now_of(owner), 7)


# --------------------------------------------------------------------------- safety


async def test_another_shops_customers_never_show(
    make_client: Callable[..., Awaitable[Client]],
) -> None:
    client = await make_client(shops=[shop_table(), shop_table(slug="other", name="다른설비")])
    await add_account(client)
    await sign_in(client)
    at = now_of(client)
    mine_sid, theirs_sid = shop_id(client), shop_id(client, "other")
    same = {"phone": "+821012345678", "tags": ["단골"]}
    mine = await write(client, lambda c: insert_customer(c, mine_sid, at, name="우리고객", **same))
    theirs = await write(
        client, lambda c: insert_customer(c, theirs_sid, at, name="남의고객", **same)
    )
    for q in (None, "5678", "010-1234-5678", "#단골", "고객", "남의고객"):
        html = await listing(client, q)
        assert theirs not in row_ids(html)
        assert "남의고객" not in html.replace(html_mod.escape("남의고객"), "") or q == "남의고객"
    assert row_ids(await listing(client, "5678")) == [mine]
    assert row_ids(await listing(client, "남의고객")) == []
    assert (await client.get(f"/console/customers/{theirs}")).status == 404


async def test_customer_names_and_tags_are_escaped(owner: Client) -> None:
    sid = shop_id(owner)
    at = now_of(owner)
    evil = '<script>alert("x")</script>'
    await write(owner, lambda c: insert_customer(c, sid, at, name=evil, tags=["<b>굵게</b>"]))
    html = await listing(owner)
    assert "<script>alert" not in html
    assert "&lt;script&gt;" in html
    assert "<b>굵게</b>" not in html
    searched = await listing(owner, '"><img src=x>')
    assert '"><img src=x>' not in searched
    assert "&#34;&gt;&lt;img src=x&gt;" in searched


def test_what_was_searched_stays_out_of_the_access_log() -> None:
    # URL-encoded, a number is no longer a phone number to the masker: the search is hidden.
    for typed in ("+82 10 1234 5678", "010-1234-5678", "김단골"):
        line = (
            f'127.0.0.1 "GET /console/customers?{urlencode({"q": typed})}&after=1.2 HTTP/1.1" 200'
        )
        assert (
            logs.redact(line)
            == '127.0.0.1 "GET /console/customers?q=********&after=1.2 HTTP/1.1" 200'
        )
    line = "GET /console/customers?after=1.2&q=%2B821012345678 200"
    assert logs.redact(line) == "GET /console/customers?after=1.2&q=******** 200"
