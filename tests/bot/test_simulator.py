"""The customer simulator: the page, and the relay that speaks the real skill protocol to our
own /hooks/kakao endpoint over loopback (SQLite and PostgreSQL)."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import sqlalchemy as sa
from conftest import Client, make_settings, shop_table
from support.kakao_checks import assert_valid_skill_response

from bot import keys
from bot.kakao import parse_skill_request
from bot.simulator.views import skill_payload
from core.clock import FrozenClock
from core.models import CustomerIdentity, Message

USER = "0123456789abcdef0123456789abcdef"
XSS = '<script>alert("x")</script><img src=x onerror=alert(1)>'


async def say(client: Client, text: Any, *, extra: Any = None, **overrides: Any) -> Any:
    body = {"shop": "hanbit", "user": USER, "text": text, "extra": extra, **overrides}
    resp = await client.post("/simulator/api/say", json=body)
    return resp.status, await resp.json()


def texts_of(answer: dict[str, Any]) -> list[str]:
    return [out["simpleText"]["text"] for out in answer["response"]["template"]["outputs"]]


# --- the page -----------------------------------------------------------------------------


async def test_page_shows_the_shop_and_loads_nothing_from_elsewhere(client: Client) -> None:
    resp = await client.get("/simulator")
    assert resp.status == 200
    assert resp.content_type == "text/html"
    html = await resp.text()
    assert "한빛설비" in html
    assert 'value="hanbit"' in html
    assert "데모용 고객 시뮬레이터" in html
    assert "새 고객으로 시작" in html
    tags = re.findall(r"<(?:script|link)\b[^>]*>", html)
    assert tags, "the page should load its script and stylesheet"
    for tag in tags:
        assert not re.search(r"(?:src|href)\s*=\s*[\"']?(?:https?:)?//", tag), tag
    assert "<script>" not in html  # no inline script: the CSP forbids it anyway
    csp = resp.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp
    assert "default-src 'none'" in csp


async def test_static_files_are_served(client: Client) -> None:
    html = await (await client.get("/simulator")).text()
    for name, kind in (("simulator.js", "javascript"), ("simulator.css", "text/css")):
        match = re.search(rf'"(/simulator/static/{name}[^"]*)"', html)
        assert match, name
        resp = await client.get(match.group(1).replace("&amp;", "&"))
        assert resp.status == 200
        assert kind in resp.content_type
        body = await resp.text()
        assert "http://" not in body
        assert "https://" not in body
    js = await (await client.get("/simulator/static/simulator.js")).text()
    assert "innerHTML" not in js  # every text goes in with textContent


async def test_page_offers_a_selector_only_for_shops_with_kakao(
    make_client: Callable[..., Awaitable[Client]],
) -> None:
    client = await make_client(
        shops=[
            shop_table(),
            shop_table(slug="second", name="둘째가게"),
            {k: v for k, v in shop_table(slug="smsonly", name="문자전용").items() if k != "kakao"},
        ]
    )
    html = await (await client.get("/simulator")).text()
    assert '<select id="shop"' in html
    assert 'value="hanbit"' in html
    assert 'value="second"' in html
    assert "문자전용" not in html
    status, answer = await say(client, "안녕하세요", shop="smsonly")
    assert status == 404
    assert answer["error"] == "unknown_shop"


# --- talking through the relay ------------------------------------------------------------


async def test_a_customer_message_gets_the_honest_acknowledgement(client: Client) -> None:
    status, answer = await say(client, "에어컨에서 물이 새요")
    assert status == 200
    assert answer["status"] == 200
    assert isinstance(answer["elapsed_ms"], int | float)
    assert answer["elapsed_ms"] >= 0
    assert_valid_skill_response(answer["response"])
    assert "답변" in texts_of(answer)[0]

    database = client.app[keys.DATABASE]
    async with database.read() as conn:
        rows = (
            await conn.execute(
                sa.select(Message.channel, Message.sender, Message.direction).where(
                    Message.body == "에어컨에서 물이 새요"
                )
            )
        ).all()
        identities = (
            await conn.execute(sa.select(CustomerIdentity.kind, CustomerIdentity.value))
        ).all()
    assert [tuple(r) for r in rows] == [("simulator", "customer", "in")]
    found = {tuple(i) for i in identities}
    assert ("kakao_bot_user", USER) in found


async def test_a_quick_reply_carries_its_extra(client: Client) -> None:
    status, first = await say(client, "에어컨에서 물이 새요")
    assert status == 200
    chips = first["response"]["template"].get("quickReplies", [])
    hours = next(c for c in chips if c.get("extra") == {"faq": "hours"})
    status, answer = await say(client, hours["messageText"], extra=hours["extra"])
    assert status == 200
    assert answer["status"] == 200
    assert_valid_skill_response(answer["response"])
    assert "영업시간" in "\n".join(texts_of(answer))


async def test_an_owner_reply_waiting_in_the_mailbox_arrives_with_the_next_answer(
    client: Client, clock: FrozenClock
) -> None:
    status, _ = await say(client, "에어컨에서 물이 새요")
    assert status == 200
    database = client.app[keys.DATABASE]
    async with database.read() as conn:
        first = (
            await conn.execute(
                sa.select(Message.shop_id, Message.conversation_id, Message.customer_id).where(
                    Message.body == "에어컨에서 물이 새요"
                )
            )
        ).one()

    def hold(conn: sa.Connection) -> None:
        conn.execute(
            sa.insert(Message).values(
                shop_id=first.shop_id,
                conversation_id=first.conversation_id,
                customer_id=first.customer_id,
                direction="out",
                sender="owner",
                channel="simulator",
                body="오늘 오후 3시에 방문드릴게요.",
                payload={},
                status="held",
                path="mailbox",
                created_at=clock.now(),
            )
        )

    await database.write(hold)
    status, answer = await say(client, "네 감사합니다")
    assert status == 200
    texts = texts_of(answer)
    assert texts[0].startswith("[한빛설비 사장님 답장]")
    assert "오늘 오후 3시에 방문드릴게요." in texts[0]


async def test_customer_text_round_trips_as_data(client: Client) -> None:
    status, answer = await say(client, XSS)
    assert status == 200
    assert answer["status"] == 200
    database = client.app[keys.DATABASE]
    async with database.read() as conn:
        stored = (
            await conn.execute(sa.select(Message.body).where(Message.channel == "simulator"))
        ).scalars()
        assert XSS in list(stored)
    html = await (await client.get("/simulator")).text()
    assert "alert" not in html  # the page is the same for everyone; it never holds chat text


async def test_a_forged_host_header_cannot_redirect_the_relay(client: Client) -> None:
    """The relay carries the skill secret; it goes to our own socket, never to `Host`."""
    resp = await client.post(
        "/simulator/api/say",
        json={"shop": "hanbit", "user": USER, "text": "안녕하세요", "extra": None},
        headers={"Host": "attacker.invalid:9"},
    )
    assert resp.status == 200
    answer = await resp.json()
    assert answer["status"] == 200
    assert_valid_skill_response(answer["response"])


# --- bad input ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "status", "error"),
    [
        ({"shop": "nowhere"}, 404, "unknown_shop"),
        ({"shop": 7}, 404, "unknown_shop"),
        ({"user": "short"}, 400, "bad_user"),
        ({"user": "x" * 65}, 400, "bad_user"),
        ({"user": "has space in it"}, 400, "bad_user"),
        ({"user": USER + "\n"}, 400, "bad_user"),
        ({"user": None}, 400, "bad_user"),
        ({"text": ""}, 400, "empty_text"),
        ({"text": "   \n "}, 400, "empty_text"),
        ({"text": 42}, 400, "empty_text"),
        ({"text": "가" * 2001}, 400, "long_text"),
        ({"extra": ["faq"]}, 400, "bad_extra"),
        ({"extra": {"faq": 1}}, 400, "bad_extra"),
        ({"extra": "hours"}, 400, "bad_extra"),
    ],
)
async def test_bad_input_is_refused_in_korean(
    client: Client, overrides: dict[str, Any], status: int, error: str
) -> None:
    body = {"shop": "hanbit", "user": USER, "text": "안녕하세요", "extra": None, **overrides}
    resp = await client.post("/simulator/api/say", json=body)
    assert resp.status == status
    answer = await resp.json()
    assert answer["error"] == error
    assert re.search(r"[가-힣]", answer["message"])


async def test_the_longest_allowed_text_is_relayed(client: Client) -> None:
    status, answer = await say(client, "가" * 2000)
    assert status == 200
    assert_valid_skill_response(answer["response"])


async def test_a_body_that_is_not_a_json_object_is_refused(client: Client) -> None:
    resp = await client.post("/simulator/api/say", json=["hanbit"])
    assert resp.status == 400
    resp = await client.post(
        "/simulator/api/say", data=b"{oops", headers={"Content-Type": "application/json"}
    )
    assert resp.status == 400
    # a plain form post from another site cannot set a JSON content type
    resp = await client.post("/simulator/api/say", data={"shop": "hanbit", "text": "hi"})
    assert resp.status == 415


async def test_disabled_simulator_is_not_there(
    make_client: Callable[..., Awaitable[Client]],
) -> None:
    client = await make_client(server={"simulator": False})
    assert (await client.get("/simulator")).status == 404
    assert (await client.get("/simulator/static/simulator.js")).status == 404
    resp = await client.post(
        "/simulator/api/say",
        json={"shop": "hanbit", "user": USER, "text": "안녕하세요", "extra": None},
    )
    assert resp.status == 404


# --- the payload it builds ----------------------------------------------------------------


def test_the_payload_is_what_kakao_sends() -> None:
    shop = make_settings().shops[0]
    typed = skill_payload(shop, USER, "에어컨에서 물이 새요", None)
    req = parse_skill_request(typed)
    assert req.bot_id == "66a1e9d0e4b0a1b2c3d4e000"
    assert req.user.bot_user_key == USER
    assert req.user.is_friend is True
    assert req.utterance == "에어컨에서 물이 새요"
    assert (req.lang, req.timezone, req.trigger) == ("ko", "Asia/Seoul", "TEXT_INPUT")
    assert req.params == {}
    assert req.client_extra == {}
    assert typed["userRequest"]["params"] == {"surface": "Kakaotalk.plusfriend"}
    assert typed["userRequest"]["user"]["type"] == "botUserKey"
    assert typed["contexts"] == []
    assert set(typed) == {"intent", "userRequest", "bot", "action", "contexts", "flow"}

    tapped = parse_skill_request(skill_payload(shop, USER, "영업시간", {"faq": "hours"}))
    assert tapped.trigger == "QUICKREPLY_BUTTON_MESSAGE"
    assert tapped.client_extra == {"faq": "hours"}
    # the channel-level key is stable for one simulated customer and differs between them
    assert tapped.user.plusfriend_user_key == req.user.plusfriend_user_key
    assert req.user.plusfriend_user_key is not None
    assert req.user.plusfriend_user_key.startswith("sim-")
    other = parse_skill_request(skill_payload(shop, "another-customer-key", "안녕", None))
    assert other.user.plusfriend_user_key != req.user.plusfriend_user_key
