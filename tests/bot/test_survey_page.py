"""The survey page behind the satisfaction check's link (the real app, SQLite and
PostgreSQL): the link is the only key, it expires, an unknown or expired one reveals
nothing, the form is safe from other sites without a session, and the page says nothing
about the customer beyond their given name."""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from conftest import Client, kst, shop_table
from sqlalchemy.engine import Connection
from support.jobs import add_customer
from support.kakao import rows
from support.survey import TOKEN, answers, done_job, survey_sent

from bot import keys
from bot.survey.links import first_name, form_token
from core.clock import FrozenClock
from core.models import Conversation, Customer, JourneyStep, Message, OutboxItem

MakeClient = Callable[..., Awaitable[Client]]

PUBLIC = "http://127.0.0.1:8080"  # server.public_url in the test settings
OURS = {"Origin": PUBLIC}
NAVER = "https://m.place.naver.com/place/123/review"
KAKAO = "https://place.map.kakao.com/456"
GONE = "이 링크는 더 이상 쓸 수 없어요"
DONE = kst(2026, 11, 16, 15, 0)  # a week before the clock's Monday 23 November


class Surveyed:
    def __init__(self, client: Client, customer: int, conversation: int, job: int) -> None:
        self.client, self.customer, self.conversation, self.job = (
            client,
            customer,
            conversation,
            job,
        )
        self.url = f"/s/{TOKEN}"

    async def get(self, url: str | None = None) -> tuple[int, str, Any]:
        resp = await self.client.get(url or self.url)
        return resp.status, await resp.text(), resp.headers

    async def post(
        self,
        data: dict[str, str],
        headers: dict[str, str] | None = None,
        *,
        token: str | None = None,
    ) -> tuple[int, str]:
        if token is None:
            _, html, _ = await self.get()
            found = re.search(r'name="form" value="([0-9a-f]+)"', html)
            assert found is not None
            token = found[1]
        form = {"form": token, **data}
        resp = await self.client.post(
            self.url, data=form, headers=OURS if headers is None else headers
        )
        return resp.status, await resp.text()


async def surveyed(make_client: MakeClient, *, name: str = "김민수", **sent: Any) -> Surveyed:
    client = await make_client(
        providers={"fake": {}},
        shops=[
            shop_table(
                delivery={"sms": "fake"},
                journey={"review_links": {"네이버 플레이스": NAVER, "카카오맵": KAKAO}},
            )
        ],
    )
    assert client.app is not None
    db = client.app[keys.DATABASE]
    shop = client.app[keys.SETTINGS].shops[0]
    shop_id = client.app[keys.SHOP_IDS]["hanbit"]
    customer, conversation = await add_customer(db, shop_id, DONE - timedelta(days=3), name=name)
    job = await done_job(db, shop, shop_id, customer, DONE)
    now = client.app[keys.CLOCK].now()
    await survey_sent(
        db, shop_id, job, customer, sent.pop("sent_at", now - timedelta(hours=1)), **sent
    )
    return Surveyed(client, customer, conversation, job)


# --------------------------------------------------------------------------- the question


async def test_the_page_asks_with_the_shop_service_date_and_given_name_only(
    make_client: MakeClient,
) -> None:
    s = await surveyed(make_client)
    status, html, headers = await s.get()
    assert status == 200
    assert "한빛설비" in html
    assert "11월 16일(월) · 에어컨 청소" in html
    assert "민수 고객님, 이번 서비스는 어떠셨나요?" in html
    assert "김민수" not in html
    for secret in ("5555", "6666", "+8210", "월드컵로", "마포구"):  # phone, address
        assert secret not in html
    assert html.count('type="radio" name="score"') == 5
    assert 'maxlength="500"' in html
    # Nothing from elsewhere, no script; the link stays out of Referer headers and caches.
    assert "<script" not in html
    assert "http" not in html.split("<body>")[1]
    assert headers["Referrer-Policy"] == "same-origin"
    assert headers["Cache-Control"] == "no-store"
    assert "noindex" in headers["X-Robots-Tag"]


async def test_the_inline_stylesheet_is_the_one_the_csp_allows(make_client: MakeClient) -> None:
    s = await surveyed(make_client)
    _, html, headers = await s.get()
    style = re.search(r"<style>(.*?)</style>", html, re.S)
    assert style is not None
    digest = base64.b64encode(hashlib.sha256(style[1].encode()).digest()).decode()
    csp = headers["Content-Security-Policy"]
    assert f"style-src 'sha256-{digest}'" in csp
    assert "default-src 'none'" in csp
    assert "script-src" not in csp  # none: default-src 'none' covers it


async def test_a_name_the_rule_cannot_read_is_not_shown(make_client: MakeClient) -> None:
    s = await surveyed(make_client, name="<b>2층</b> 김사장님 010-1234-5678")
    _, html, _ = await s.get()
    assert "고객님, 이번 서비스는 어떠셨나요?" in html
    assert "김사장" not in html
    assert "1234" not in html
    assert "&lt;b&gt;" not in html  # not even escaped: not shown at all


@pytest.mark.parametrize(
    ("name", "shown"),
    [
        ("김민수", "민수"),
        ("김 민수", "민수"),
        ("이훈", "훈"),
        ("남궁민수", "민수"),
        ("남궁 민수", "민수"),
        ("박서준호", "서준호"),
        ("John Smith", "John"),
        ("O'Brien", "O'Brien"),
        ("김", None),
        ("", None),
        (None, None),
        ("김민수(2층)", None),
        ("2층 아저씨", None),
        ("김민수 010-1234-5678", None),
        ("민수 김", None),
        ("김민수님께서", None),
        ("Kim 민수", None),
    ],
)
def test_the_given_name(name: str | None, shown: str | None) -> None:
    assert first_name(name) == shown


async def test_an_earlier_answer_is_shown_picked(make_client: MakeClient) -> None:
    s = await surveyed(make_client)
    await s.post({"score": "4"})
    _, html, _ = await s.get()
    assert 'value="4" required checked' in html
    assert "이미 4점을 남겨 주셨어요" in html


async def test_the_survey_reminders_link_works_too(make_client: MakeClient) -> None:
    s = await surveyed(make_client, step="survey_reminder", token="R" * 43)
    status, html, _ = await s.get("/s/" + "R" * 43)
    assert status == 200
    assert "민수 고객님" in html


# --------------------------------------------------------------------------- links that do not work


@pytest.mark.parametrize(
    "path",
    [
        "/s/" + "b" * 43,  # well shaped, unknown
        "/s/short",
        "/s/" + "a" * 43 + "%3Cscript%3E",
        "/s/" + TOKEN[:-1],
    ],
)
async def test_an_unknown_link_is_a_plain_404(make_client: MakeClient, path: str) -> None:
    s = await surveyed(make_client)
    status, html, _ = await s.get(path)
    assert status == 404
    assert GONE in html
    assert "한빛설비" not in html
    assert "민수" not in html
    resp = await s.client.post(path, data={"score": "5"}, headers=OURS)
    assert resp.status == 404


async def test_a_link_not_sent_is_unknown(make_client: MakeClient) -> None:
    s = await surveyed(make_client)

    def unsent(conn: Connection) -> None:
        conn.execute(sa.update(JourneyStep).values(status="planned", sent_at=None))

    assert s.client.app is not None
    await s.client.app[keys.DATABASE].write(unsent)
    assert (await s.get())[0] == 404


async def test_an_expired_link_is_a_plain_410(make_client: MakeClient, clock: FrozenClock) -> None:
    sent = clock.now() - timedelta(hours=1)
    s = await surveyed(make_client, sent_at=sent)
    clock.set(sent + timedelta(days=14) - timedelta(seconds=1))
    assert (await s.get())[0] == 200
    _, html, _ = await s.get()
    form = re.search(r'name="form" value="([0-9a-f]+)"', html)
    assert form is not None

    clock.set(sent + timedelta(days=14))  # shop.journey.survey_link_days
    status, html, _ = await s.get()
    assert status == 410
    assert GONE in html
    assert "한빛설비" not in html
    assert "민수" not in html
    status, _ = await s.post({"score": "5"}, token=form[1])
    assert status == 410
    assert await answers(s.client.app[keys.DATABASE]) == []  # type: ignore[index]


# --------------------------------------------------------------------------- answering


async def test_an_answer_is_recorded_and_thanked_with_the_review_links(
    make_client: MakeClient,
) -> None:
    s = await surveyed(make_client)
    status, html = await s.post({"score": "5", "comment": "친절하셨어요 👍"})
    assert status == 200
    assert "5점</strong> 잘 받았어요" in html
    assert f'href="{NAVER}" rel="noopener noreferrer">네이버 플레이스' in html
    assert f'href="{KAKAO}"' in html
    assert "죄송" not in html
    db = s.client.app[keys.DATABASE]  # type: ignore[index]
    (answer,) = await answers(db)
    assert (answer.job_id, answer.score, answer.channel) == (s.job, 5, "web")
    assert answer.comment == "친절하셨어요 👍"
    # The system note on the conversation (the journey planner may have sent the review
    # invitation after it: the newest row is not necessarily the note).
    note = [m for m in await rows(s.client, Message) if m.direction == "note"][-1]
    assert (note.direction, note.conversation_id) == ("note", s.conversation)
    assert note.body == "만족도 5점(설문 페이지) · 의견: 친절하셨어요 👍"


async def test_a_low_score_is_apologised_for_and_opens_a_complaint(
    make_client: MakeClient, clock: FrozenClock
) -> None:
    s = await surveyed(make_client)
    status, html = await s.post({"score": "2", "comment": "물이 또 새요"})
    assert status == 200
    assert "불편을 드려 죄송해요. 사장님이 24시간 안에 직접 연락드릴게요." in html
    assert f'href="{NAVER}"' in html  # no review gating
    (conv,) = await rows(s.client, Conversation)
    assert conv.complaint
    assert conv.complaint_due_at == clock.now() + timedelta(hours=24)
    outbox = await rows(s.client, OutboxItem)
    assert any(o.purpose == "reply" and "죄송" in o.payload["text"] for o in outbox)
    assert any(
        o.purpose == "owner_notification" and "만족도 2점" in o.payload["text"] for o in outbox
    )


async def test_a_comment_is_escaped_when_shown_again(make_client: MakeClient) -> None:
    s = await surveyed(make_client)
    attack = "<script>alert(1)</script>" + "가" * 500
    status, html = await s.post({"score": "3", "comment": attack})
    assert status == 400
    assert "500자까지" in html
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert 'value="3" required checked' in html  # the pick is kept with the words
    assert await answers(s.client.app[keys.DATABASE]) == []  # type: ignore[index]


async def test_a_newline_counts_once(make_client: MakeClient) -> None:
    s = await surveyed(make_client)
    comment = "\r\n".join(["가" * 99] * 5) + "\r\n"  # 495 characters and 4 newlines
    status, _ = await s.post({"score": "4", "comment": comment})
    assert status == 200


@pytest.mark.parametrize("score", ["", "0", "6", "5점", "abc"])
async def test_a_score_must_be_picked(make_client: MakeClient, score: str) -> None:
    s = await surveyed(make_client)
    status, html = await s.post({"score": score} if score else {})
    assert status == 400
    assert "1점부터 5점까지 하나를 골라 주세요" in html


# --------------------------------------------------------------------------- other sites


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "https://evil.example"},
        {"Origin": "null"},
        {"Origin": "http://127.0.0.1:1"},  # another port is another site
        {"Referer": "https://evil.example/page"},
        {"Origin": "https://evil.example", "Referer": PUBLIC + "/s/x"},
    ],
)
async def test_a_form_sent_from_another_site_is_refused(
    make_client: MakeClient, headers: dict[str, str]
) -> None:
    s = await surveyed(make_client)
    status, html = await s.post({"score": "1"}, headers=headers)
    assert status == 403
    assert "한빛설비" not in html
    assert await answers(s.client.app[keys.DATABASE]) == []  # type: ignore[index]


async def test_our_own_referer_is_enough_without_an_origin(make_client: MakeClient) -> None:
    s = await surveyed(make_client)
    status, _ = await s.post({"score": "5"}, headers={"Referer": PUBLIC + s.url})
    assert status == 200


async def test_the_address_the_page_was_opened_at_is_ours_too(make_client: MakeClient) -> None:
    """`dangol demo --port 9000` with public_url on 8080: the browser's Origin is the
    server it talks to."""
    s = await surveyed(make_client)
    here = str(s.client.make_url("/")).rstrip("/")
    assert here != PUBLIC
    status, _ = await s.post({"score": "5"}, headers={"Origin": here})
    assert status == 200


@pytest.mark.parametrize(
    "token",
    ["", "0" * 64, "not-hex"],
)
async def test_a_wrong_form_token_is_refused(make_client: MakeClient, token: str) -> None:
    s = await surveyed(make_client)
    status, _ = await s.post({"score": "5"}, token=token)
    assert status == 403
    assert await answers(s.client.app[keys.DATABASE]) == []  # type: ignore[index]


async def test_another_links_form_token_is_refused(make_client: MakeClient) -> None:
    s = await surveyed(make_client)
    other = form_token("c" * 43, 1)
    status, _ = await s.post({"score": "5"}, token=other)
    assert status == 403


async def test_without_origin_or_referer_the_form_token_decides(make_client: MakeClient) -> None:
    s = await surveyed(make_client)
    status, _ = await s.post({"score": "5"}, headers={})
    assert status == 200
    status, _ = await s.post({"score": "5"}, headers={}, token="0" * 64)
    assert status == 403


async def test_the_page_knows_no_customer_but_the_links(make_client: MakeClient) -> None:
    """Another customer's name never shows: the page reads only the link's job's customer."""
    s = await surveyed(make_client)

    def another(conn: Connection) -> None:
        conn.execute(
            sa.insert(Customer).values(
                shop_id=s.client.app[keys.SHOP_IDS]["hanbit"],  # type: ignore[index]
                name="최지우",
                tier="bronze",
                tags=[],
                notes="",
                created_at=DONE,
            )
        )

    await s.client.app[keys.DATABASE].write(another)  # type: ignore[index]
    _, html, _ = await s.get()
    assert "지우" not in html
