"""The console's jobs (issue 13): the 작업 tab by the shop's days, booking from a
conversation or for a customer who phoned, a job's page and its buttons, job photos, the
customer's job history — one shop's jobs only, CSRF-checked, escaped (SQLite and
PostgreSQL, with the injected clock)."""

from __future__ import annotations

import html as html_mod
import re
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest
import sqlalchemy as sa
from conftest import KST, kst, make_settings, shop_table
from sqlalchemy.engine import Connection
from support.console import (
    Client,
    add_account,
    app_of,
    insert_message,
    now_of,
    rows,
    shop_id,
    sign_in,
    thread,
    write,
)
from support.jobs import add_customer, steps
from support.photos import phone_photo
from support.settle import settled

from bot import keys
from bot.console.jobs_forms import default_eta, read_eta
from core.clock import FrozenClock
from core.config import ShopConfig
from core.jobs import Booking, book
from core.models import (
    AuditEntry,
    Consent,
    Conversation,
    Customer,
    CustomerIdentity,
    Job,
    JourneyStep,
    Photo,
    SurveyAnswer,
)
from core.outbox import OutboxRequest, enqueue

pytestmark = pytest.mark.usefixtures("cheap_hasher")

ADDRESS = "서울시 마포구 월드컵로 12 <b>2층</b>"
SECTION = re.compile(r'<section class="job-day[^"]*" id="day-([\w-]+)".*?</section>', re.DOTALL)
JOB = re.compile(r'<li class="job job-(\w+)" data-id="(\d+)">')


@pytest.fixture
def make_client(
    db_url: tuple[str, str | None], clock: FrozenClock, aiohttp_client: Any, tmp_path: Path
) -> Callable[..., Awaitable[Client]]:
    """The real app with two shops, photos stored in a temporary directory."""
    url, schema = db_url

    async def make(**sections: Any) -> Client:
        from bot.app import create_app

        database = {"url": url, **({"schema": schema} if schema else {})}
        sections.setdefault("storage", {"path": str(tmp_path / "photos")})
        shops = [shop_table(), shop_table(slug="other", name="다른설비")]
        settings = make_settings(url, database=database, shops=shops, **sections)
        client: Client = await aiohttp_client(create_app(settings, clock=clock))
        return client

    return make


def shop_of(client: Client, slug: str = "hanbit") -> ShopConfig:
    shop = app_of(client)[keys.SETTINGS].shop(slug)
    assert shop is not None
    return shop


async def book_job(
    client: Client,
    customer_id: int,
    starts_at: datetime,
    *,
    slug: str = "hanbit",
    service: str = "aircon",
    hours: int = 2,
    address: str = ADDRESS,
    **fields: Any,
) -> int:
    """A job booked straight through core.jobs, as the API or the demo would."""
    booking = Booking(
        shop_id=shop_id(client, slug),
        customer_id=customer_id,
        service=service,
        starts_at=starts_at,
        ends_at=starts_at + timedelta(hours=hours),
        address=address,
        **fields,
    )
    unit = book(shop_of(client, slug), booking, "user:1", now_of(client))
    job_id: int = await write(client, unit)
    return job_id


async def a_job(
    client: Client,
    starts_at: datetime,
    *,
    slug: str = "hanbit",
    name: str = "김민수",
    phone: str = "+821055556666",
    **fields: Any,
) -> tuple[int, int, int]:
    """A customer, their conversation and a job booked for them: (job, customer, conv)."""
    customer, conversation = await add_customer(
        app_of(client)[keys.DATABASE], shop_id(client, slug), now_of(client), name=name, phone=phone
    )
    job = await book_job(client, customer, starts_at, slug=slug, **fields)
    return job, customer, conversation


async def job_row(client: Client, job_id: int) -> Any:
    found = await rows(client, sa.select(Job.__table__).where(Job.id == job_id))
    return found[0]


async def post(client: Client, path: str, data: dict[str, str] | None = None, **kw: Any) -> Any:
    form = {"csrf": client.csrf, **(data or {})}  # type: ignore[attr-defined]
    return await client.post(path, data=form, allow_redirects=False, **kw)


async def page(client: Client, path: str, status: int = 200) -> str:
    resp = await client.get(path, allow_redirects=False)
    assert resp.status == status, await resp.text()
    return await resp.text()


def days_of(html: str) -> dict[str, list[int]]:
    """The tab's sections (a day's ISO date, or "later") and the jobs each lists."""
    return {
        m.group(1): [int(j.group(2)) for j in JOB.finditer(m.group(0))]
        for m in SECTION.finditer(html)
    }


def listed(html: str) -> list[int]:
    return [int(m.group(2)) for m in JOB.finditer(html)]


# --------------------------------------------------------------------------- the tab


async def test_the_tab_lists_today_tomorrow_and_the_week_by_the_shops_days_around_midnight(
    owner: Client, clock: FrozenClock
) -> None:
    # Monday 23 November, a minute before midnight in Seoul (14:59 UTC).
    clock.set(kst(2026, 11, 23, 23, 59))
    await sign_in(owner)  # the morning's session has idled out
    late, _, _ = await a_job(owner, kst(2026, 11, 23, 23, 30), hours=1)
    # 00:30 on Tuesday in Seoul is still Monday in UTC: it is tomorrow's all the same.
    early, _, _ = await a_job(owner, kst(2026, 11, 24, 0, 30), phone="+821011112222")
    sunday, _, _ = await a_job(owner, kst(2026, 11, 29, 10, 0), phone="+821011113333")
    next_week, _, _ = await a_job(owner, kst(2026, 11, 30, 10, 0), phone="+821011114444")
    yesterday, _, _ = await a_job(owner, kst(2026, 11, 22, 23, 0), phone="+821011115555")

    html = await page(owner, "/console/jobs")
    assert '<a href="/console/jobs" aria-current="page">작업</a>' in html
    days = days_of(html)
    assert days["2026-11-23"] == [late]
    assert days["2026-11-24"] == [early]
    assert days["2026-11-29"] == [sunday]
    assert days["later"] == [next_week]
    assert "2026-11-25" not in days, "a later day of the week without jobs is not shown"
    assert yesterday not in listed(html)
    today_section = next(m.group(0) for m in SECTION.finditer(html) if m.group(1) == "2026-11-23")
    assert "오늘" in today_section
    assert "23:30–00:30 (다음 날)" in today_section
    assert "11월 23일 (월)" in today_section
    assert "예약" in today_section  # the status label (core.jobs.LABELS)
    assert "끝내지 않은 지난 작업 1건" in html  # yesterday's, never finished
    assert yesterday in listed(await page(owner, "/console/jobs/past"))

    # Two minutes later it is Tuesday in Seoul: Monday's job is an earlier one.
    clock.set(kst(2026, 11, 24, 0, 1))
    html = await page(owner, "/console/jobs")
    days = days_of(html)
    assert days["2026-11-24"] == [early]
    assert "오늘" in next(m.group(0) for m in SECTION.finditer(html) if m.group(1) == "2026-11-24")
    assert days["2026-11-25"] == []  # tomorrow is always shown, empty or not
    assert late not in listed(html)
    assert listed(await page(owner, "/console/jobs/past")) == [late, yesterday]

    # On Sunday the week is today and tomorrow (Monday), then what is booked after.
    clock.set(kst(2026, 11, 29, 9, 0))
    await sign_in(owner)
    days = days_of(await page(owner, "/console/jobs"))
    assert days["2026-11-29"] == [sunday]
    assert days["2026-11-30"] == [next_week]
    assert "later" not in days


async def test_a_job_row_has_its_window_customer_service_map_link_and_cancelled_is_struck(
    owner: Client,
) -> None:
    kept, _, _ = await a_job(owner, kst(2026, 11, 23, 14, 0), name="<i>이순신</i>")
    gone, _, _ = await a_job(owner, kst(2026, 11, 23, 16, 0), phone="+821011112222")
    assert (
        await post(owner, f"/console/jobs/{gone}/cancel", {"reason": "고객 사정"})
    ).status == 303

    html = await page(owner, "/console/jobs")
    assert listed(html) == [kept, gone]
    row = html[html.index(f'data-id="{kept}"') :]
    row = row[: row.index("</li>")]
    assert "14:00–16:00" in row
    assert "에어컨 청소" in row
    assert "&lt;i&gt;이순신&lt;/i&gt;" in row
    assert "<i>" not in row
    assert f'href="https://map.naver.com/p/search/{quote(ADDRESS, safe="")}"' in row
    assert "&lt;b&gt;2층&lt;/b&gt;" in row
    assert "<b>" not in row
    struck = html[html.index(f'data-id="{gone}"') :]
    struck = struck[: struck.index("</li>")]
    assert '<li class="job job-cancelled"' in html
    assert '<s class="window">16:00–18:00</s>' in struck
    assert "취소" in struck


async def test_jobs_of_another_shop_are_not_found(owner: Client) -> None:
    theirs, _, their_conv = await a_job(owner, kst(2026, 11, 23, 14, 0), slug="other")
    mine, _, _ = await a_job(owner, kst(2026, 11, 23, 15, 0))
    assert listed(await page(owner, "/console/jobs")) == [mine]
    await page(owner, f"/console/jobs/{theirs}", status=404)
    for move, data in (
        ("depart", {"eta": "10:30"}),
        ("start", {}),
        ("complete", {}),
        ("cancel", {"reason": "x"}),
        ("no-show", {}),
        ("reschedule", {"day": "2026-11-25", "start": "10:00", "end": "12:00"}),
    ):
        assert (await post(owner, f"/console/jobs/{theirs}/{move}", data)).status == 404, move
    assert (await job_row(owner, theirs)).status == "booked"
    await page(owner, f"/console/jobs/new?conversation={their_conv}", status=404)
    resp = await post(
        owner,
        f"/console/jobs/new?conversation={their_conv}",
        {"service": "aircon", "day": "2026-11-24", "start": "10:00"},
    )
    assert resp.status == 404
    assert len(await rows(owner, sa.select(Job.id))) == 2


async def test_every_post_needs_the_csrf_token(owner: Client) -> None:
    job, _, conversation = await a_job(owner, kst(2026, 11, 23, 14, 0))
    for path, data in (
        (f"/console/jobs/{job}/start", {}),
        (f"/console/jobs/{job}/cancel", {"reason": "x"}),
        (
            f"/console/jobs/new?conversation={conversation}",
            {"service": "aircon", "day": "2026-11-24", "start": "10:00"},
        ),
        ("/console/customers/new", {"name": "홍길동", "phone": "010-9999-8888"}),
    ):
        resp = await owner.post(path, data=data, allow_redirects=False)
        assert resp.status == 403, path
    assert (await job_row(owner, job)).status == "booked"
    assert len(await rows(owner, sa.select(Job.id))) == 1
    assert len(await rows(owner, sa.select(Customer.id))) == 1


# --------------------------------------------------------------------------- booking


async def test_booking_from_a_conversation_plans_the_confirmation_and_opens_the_job(
    owner: Client,
) -> None:
    customer, conversation = await thread(owner, name="김민수")
    # An earlier job of theirs: the form suggests its address and service.
    database = app_of(owner)[keys.DATABASE]
    await book_job(
        owner, customer, kst(2026, 10, 2, 10, 0), service="lawn", address="경기도 고양시 일산로 7"
    )
    html = await page(owner, f"/console/c/{conversation}")
    assert f'href="/console/jobs/new?conversation={conversation}"' in html

    form = await page(owner, f"/console/jobs/new?conversation={conversation}")
    assert 'value="경기도 고양시 일산로 7"' in form
    assert '<option value="lawn" data-minutes="240" selected>' in form
    assert 'name="day" type="date" value="2026-11-24"' in form  # tomorrow
    assert 'id="b-price"' in form

    resp = await post(
        owner,
        f"/console/jobs/new?conversation={conversation}",
        {
            "service": "aircon",
            "day": "2026-11-24",
            "start": "14:00",
            "end": "",
            "address": "서울시 마포구 월드컵로 12",
            "price": "80,000원",
            "notes": "실외기 베란다",
        },
    )
    assert resp.status == 303
    job_id = int(resp.headers["Location"].rsplit("/", 1)[-1])
    assert resp.headers["Location"] == f"/console/jobs/{job_id}"
    job = await job_row(owner, job_id)
    assert (job.customer_id, job.conversation_id) == (customer, conversation)
    assert job.starts_at.astimezone(KST) == kst(2026, 11, 24, 14, 0)
    assert job.ends_at.astimezone(KST) == kst(2026, 11, 24, 16, 0)  # aircon: 120 minutes
    assert (job.service, job.price_krw, job.notes, job.source) == (
        "aircon",
        80000,
        "실외기 베란다",
        "console",
    )
    # The journey planner, woken by the booking, sends the confirmation (a Kakao customer
    # with no provider set: to their mailbox); the reminder waits for the evening before.
    await settled(app_of(owner))
    planned = await steps(database, job_id)
    assert [(s["step"], s["status"]) for s in planned] == [
        ("confirmation", "sent"),
        ("reminder", "planned"),
    ]
    assert planned[0]["due_at"] == now_of(owner)
    assert planned[1]["due_at"].astimezone(KST) == kst(2026, 11, 23, 18, 0)
    audit = await rows(owner, sa.select(AuditEntry).where(AuditEntry.subject == f"job:{job_id}"))
    assert [(a.action, a.actor) for a in audit] == [("job_booked", "user:1")]

    html = await page(owner, f"/console/jobs/{job_id}")
    assert "80,000원" in html
    assert "11월 24일 (화) 14:00–16:00" in html
    assert f'href="/console/c/{conversation}"' in html
    assert "예약 확정" in html
    assert "전날 알림" in html
    assert html.count('class="step-state state-planned">예정<') == 1  # the reminder
    assert html.count('class="step-state state-sent">') == 1  # the confirmation
    assert f'action="/console/jobs/{job_id}/depart"' in html


async def test_an_empty_price_is_a_quote_and_an_end_given_is_the_window(owner: Client) -> None:
    _, conversation = await thread(owner)
    resp = await post(
        owner,
        f"/console/jobs/new?conversation={conversation}",
        {"service": "lawn", "day": "2026-11-25", "start": "09:00", "end": "13:30", "price": ""},
    )
    assert resp.status == 303
    job = (await rows(owner, sa.select(Job.__table__)))[0]
    assert job.price_krw is None
    assert job.ends_at.astimezone(KST) == kst(2026, 11, 25, 13, 30)
    assert "견적 후 안내" in await page(owner, resp.headers["Location"])


@pytest.mark.parametrize(
    ("changes", "shown"),
    [
        ({"day": "2026-11-21"}, "지난 날짜예요"),  # two days ago
        ({"day": "2026-13-01"}, "날짜를 골라 주세요"),
        ({"start": "25:00"}, "시작 시각을 14:00처럼"),
        ({"end": "13:00"}, "끝이 시작보다 늦어야 해요"),
        ({"end": "14:00"}, "끝이 시작보다 늦어야 해요"),
        ({"price": "8만원"}, "금액은 숫자로만"),
        ({"price": "2000000000"}, "10억 원까지"),
        ({"service": "boiler"}, "서비스 목록에서 골라 주세요"),
        ({"notes": "가" * 2001}, "2000자까지"),
    ],
)
async def test_bad_booking_input_keeps_the_form_and_stores_nothing(
    owner: Client, changes: dict[str, str], shown: str
) -> None:
    _, conversation = await thread(owner)
    typed = {
        "service": "aircon",
        "day": "2026-11-24",
        "start": "14:00",
        "end": "",
        "address": "서울시 <마포구> 월드컵로 12",
        "price": "80000",
        "notes": "주차는 <지하 2층>",
        **changes,
    }
    resp = await post(owner, f"/console/jobs/new?conversation={conversation}", typed)
    assert resp.status == 400
    html = await resp.text()
    assert shown in html
    assert "아무것도 저장하지 않았어요" in html
    assert 'value="서울시 &lt;마포구&gt; 월드컵로 12"' in html  # kept, escaped
    if "notes" not in changes:
        assert "주차는 &lt;지하 2층&gt;</textarea>" in html
    if "price" in changes:
        assert f'value="{changes["price"]}"' in html
    assert await rows(owner, sa.select(Job.id)) == []
    assert (
        await rows(owner, sa.select(AuditEntry.id).where(AuditEntry.action == "job_booked")) == []
    )


async def test_yesterday_may_be_booked_to_write_a_job_up(owner: Client) -> None:
    _, conversation = await thread(owner)
    resp = await post(
        owner,
        f"/console/jobs/new?conversation={conversation}",
        {"service": "aircon", "day": "2026-11-22", "start": "10:00"},
    )
    assert resp.status == 303
    job_id = int(resp.headers["Location"].rsplit("/", 1)[-1])
    # The reminder's moment has passed: planned as skipped, with the reason shown.
    html = await page(owner, f"/console/jobs/{job_id}")
    assert '<span class="step-state state-skipped">건너뜀</span>' in html
    assert "확정 메시지로 대신했어요" in html


async def test_booking_without_a_customer_starts_from_the_customers_tab(owner: Client) -> None:
    resp = await owner.get("/console/jobs/new", allow_redirects=False)
    assert (resp.status, resp.headers["Location"]) == (303, "/console/customers")
    await page(owner, "/console/jobs/new?customer=99999", status=404)


# --------------------------------------------------------------------------- a customer who phoned


async def test_a_customer_who_phoned_is_added_with_their_consent_and_booked(
    owner: Client,
) -> None:
    html = await page(owner, "/console/customers")
    assert 'action="/console/customers/new"' in html
    resp = await post(
        owner,
        "/console/customers/new",
        {"name": "  박 영희 ", "phone": "010-7777-8888", "marketing": "yes"},
    )
    assert resp.status == 303
    customer_id = int(resp.headers["Location"].rsplit("=", 1)[-1])
    assert resp.headers["Location"] == f"/console/jobs/new?customer={customer_id}"
    customer = (await rows(owner, sa.select(Customer).where(Customer.id == customer_id)))[0]
    assert customer.name == "박 영희"
    phones = await rows(
        owner,
        sa.select(CustomerIdentity.kind, CustomerIdentity.value).where(
            CustomerIdentity.customer_id == customer_id
        ),
    )
    assert [tuple(p) for p in phones] == [("phone", "+821077778888")]
    consents = await rows(owner, sa.select(Consent).where(Consent.customer_id == customer_id))
    assert [(c.scope, c.granted, c.source) for c in consents] == [
        ("marketing", True, "console:phone-booking")
    ]
    actions = await rows(
        owner,
        sa.select(AuditEntry.action, AuditEntry.actor)
        .where(AuditEntry.subject == f"customer:{customer_id}")
        .order_by(AuditEntry.id),
    )
    assert [tuple(a) for a in actions] == [
        ("customer_created", "user:1"),
        ("consent_granted", "user:1"),
    ]
    conversation = (
        await rows(owner, sa.select(Conversation).where(Conversation.customer_id == customer_id))
    )[0]
    assert (conversation.channel, conversation.status) == ("sms", "resolved")
    # Nobody is waiting: the inbox's waiting list stays as it was; the thread opens empty.
    assert f'data-id="{conversation.id}"' not in await page(owner, "/console/?filter=waiting")
    assert "박 영희" in await page(owner, f"/console/c/{conversation.id}")

    form = await page(owner, resp.headers["Location"])
    assert "박 영희" in form
    booked = await post(
        owner,
        resp.headers["Location"],
        {"service": "aircon", "day": "2026-11-24", "start": "10:00"},
    )
    assert booked.status == 303
    job = (await rows(owner, sa.select(Job.__table__)))[0]
    assert (job.customer_id, job.conversation_id) == (customer_id, conversation.id)
    # Their page offers the next booking and shows this one.
    html = await page(owner, f"/console/customers/{customer_id}")
    assert f'href="/console/jobs/new?customer={customer_id}"' in html
    assert f'href="/console/jobs/{job.id}"' in html


async def test_no_consent_is_recorded_unless_ticked_and_a_known_number_is_refused(
    owner: Client,
) -> None:
    resp = await post(owner, "/console/customers/new", {"name": "최철수", "phone": "01066665555"})
    assert resp.status == 303
    first = int(resp.headers["Location"].rsplit("=", 1)[-1])
    assert await rows(owner, sa.select(Consent.id)) == []

    again = await post(
        owner, "/console/customers/new", {"name": "최철수2", "phone": "+82 10-6666-5555"}
    )
    assert again.status == 409
    html = await again.text()
    assert "이미 등록된 번호예요" in html
    assert f'href="/console/jobs/new?customer={first}"' in html
    assert 'value="최철수2"' in html

    bad = await post(owner, "/console/customers/new", {"name": "<b>김</b>", "phone": "12345"})
    assert bad.status == 400
    html = await bad.text()
    assert "번호를 010-0000-0000처럼" in html
    assert 'value="&lt;b&gt;김&lt;/b&gt;"' in html
    assert len(await rows(owner, sa.select(Customer.id))) == 1


# --------------------------------------------------------------------------- the buttons


async def test_each_button_moves_the_job_and_one_moves_forbid_is_refused(owner: Client) -> None:
    job_id, _, _ = await a_job(owner, kst(2026, 11, 23, 14, 0))
    database = app_of(owner)[keys.DATABASE]
    html = await page(owner, f"/console/jobs/{job_id}")
    for move in ("depart", "start", "complete", "reschedule", "cancel", "no-show", "photos"):
        assert f'action="/console/jobs/{job_id}/{move}"' in html, move
    assert 'value="10:30"' in html  # 출발's ETA: half an hour from 10:00

    resp = await post(owner, f"/console/jobs/{job_id}/depart", {"eta": "10:40"})
    assert (resp.status, resp.headers["Location"]) == (303, f"/console/jobs/{job_id}")
    job = await job_row(owner, job_id)
    assert job.status == "on_the_way"
    assert job.eta_at.astimezone(KST) == kst(2026, 11, 23, 10, 40)
    await settled(app_of(owner))
    # Planned at once; this SMS customer's shop has no SMS provider, so the planner skips
    # it with that reason (the console shows it).
    on_my_way = next(s for s in await steps(database, job_id) if s["step"] == "on_my_way")
    assert (on_my_way["status"], on_my_way["reason"]) == (
        "skipped",
        "이 고객에게 보낼 경로가 설정되지 않았어요 (sms)",
    )
    html = await page(owner, f"/console/jobs/{job_id}")
    assert "10:40쯤" in html
    assert f'/console/jobs/{job_id}/depart"' not in html  # 이동 중: no second 출발
    assert f'/console/jobs/{job_id}/start"' in html

    # A second 출발 (another phone still showing the button) is refused in Korean.
    resp = await post(owner, f"/console/jobs/{job_id}/depart", {"eta": "10:50"})
    assert resp.status == 409
    refused = await resp.text()
    assert "'이동 중' 상태의 작업은 '이동 중'(으)로 바꿀 수 없어요" in html_mod.unescape(refused)

    assert (await post(owner, f"/console/jobs/{job_id}/start")).status == 303
    assert (await job_row(owner, job_id)).status == "in_progress"
    # A job under way cannot be a no-show (MOVES), nor moved to another day.
    resp = await post(owner, f"/console/jobs/{job_id}/no-show")
    assert resp.status == 409
    assert "노쇼" in html_mod.unescape(await resp.text())
    resp = await post(
        owner,
        f"/console/jobs/{job_id}/reschedule",
        {"day": "2026-11-25", "start": "10:00", "end": "12:00"},
    )
    assert resp.status == 409
    assert "일정을 바꿀 수 없어요" in await resp.text()
    assert (await job_row(owner, job_id)).status == "in_progress"
    html = await page(owner, f"/console/jobs/{job_id}")
    assert f'/console/jobs/{job_id}/no-show"' not in html
    assert f'/console/jobs/{job_id}/reschedule"' not in html
    assert f'/console/jobs/{job_id}/complete"' in html

    assert (await post(owner, f"/console/jobs/{job_id}/complete")).status == 303
    job = await job_row(owner, job_id)
    assert job.status == "done"
    await settled(app_of(owner))
    assert [s["step"] for s in await steps(database, job_id)][-4:] == [
        "completion",
        "aftercare",
        "survey",
        "survey_reminder",
    ]
    # What is due later waits for its day.
    assert [s["step"] for s in await steps(database, job_id) if s["status"] == "planned"] == [
        "aftercare",
        "survey",
        "survey_reminder",
    ]
    html = await page(owner, f"/console/jobs/{job_id}")
    for move in ("depart", "start", "complete", "reschedule", "cancel", "no-show"):
        assert f'action="/console/jobs/{job_id}/{move}"' not in html, move
    assert f'action="/console/jobs/{job_id}/photos"' in html  # after photos still go
    assert "완료 안내" in html
    assert "만족도 조사" in html
    actions = await rows(
        owner,
        sa.select(AuditEntry.action)
        .where(AuditEntry.subject == f"job:{job_id}")
        .order_by(AuditEntry.id),
    )
    assert [a.action for a in actions] == [
        "job_booked",
        "job_on_the_way",
        "job_in_progress",
        "job_done",
    ]


async def test_an_eta_must_read_and_be_within_twelve_hours(owner: Client) -> None:
    job_id, _, _ = await a_job(owner, kst(2026, 11, 23, 14, 0))
    resp = await post(owner, f"/console/jobs/{job_id}/depart", {"eta": "곧"})
    assert resp.status == 400
    assert "14:20처럼" in await resp.text()
    # 09:00 has passed at 10:00: tomorrow's 09:00 is 23 hours away.
    resp = await post(owner, f"/console/jobs/{job_id}/depart", {"eta": "09:00"})
    assert resp.status == 409
    refused = await resp.text()
    assert "12시간 안으로" in refused
    assert 'name="eta" type="time" value="09:00"' in refused  # as typed, to correct
    assert (await job_row(owner, job_id)).status == "booked"


async def test_rescheduling_replans_and_cancelling_or_a_no_show_ends_the_journey(
    owner: Client,
) -> None:
    database = app_of(owner)[keys.DATABASE]
    job_id, _, _ = await a_job(owner, kst(2026, 11, 25, 14, 0))
    resp = await post(
        owner,
        f"/console/jobs/{job_id}/reschedule",
        {"service": "aircon", "day": "2026-11-26", "start": "10:00", "end": ""},
    )
    assert resp.status == 303
    job = await job_row(owner, job_id)
    assert job.revision == 2
    assert job.starts_at.astimezone(KST) == kst(2026, 11, 26, 10, 0)
    assert job.ends_at.astimezone(KST) == kst(2026, 11, 26, 12, 0)
    await settled(app_of(owner))
    states = {s["key"]: s["status"] for s in await steps(database, job_id)}
    assert states["reminder:r1"] == "cancelled"
    assert states["reminder:r2"] == "planned"
    assert states["confirmation:r2"] == "skipped"  # planned at once; no SMS provider here
    html = await page(owner, f"/console/jobs/{job_id}")
    assert "일정이 바뀌었어요" in html  # the old reminder's reason

    bad = await post(
        owner,
        f"/console/jobs/{job_id}/reschedule",
        {"day": "2026-11-27", "start": "15:00", "end": "14:00"},
    )
    assert bad.status == 400
    text = await bad.text()
    assert "끝이 시작보다 늦어야 해요" in text
    assert 'value="2026-11-27"' in text
    assert 'value="15:00"' in text

    resp = await post(owner, f"/console/jobs/{job_id}/cancel", {"reason": "고객 <사정>"})
    assert resp.status == 303
    job = await job_row(owner, job_id)
    assert (job.status, job.reason) == ("cancelled", "고객 <사정>")
    # What had not gone is cancelled; the new confirmation was settled before (skipped).
    r2 = {s["key"]: s["status"] for s in await steps(database, job_id) if s["key"].endswith("r2")}
    assert r2 == {"confirmation:r2": "skipped", "reminder:r2": "cancelled"}
    html = await page(owner, f"/console/jobs/{job_id}")
    assert "고객 &lt;사정&gt;" in html
    assert "작업이 취소됐어요" in html

    other, _, _ = await a_job(owner, kst(2026, 11, 23, 11, 0), phone="+821011112222")
    assert (await post(owner, f"/console/jobs/{other}/no-show")).status == 303
    assert (await job_row(owner, other)).status == "no_show"
    assert f'/console/jobs/{other}/photos"' not in await page(owner, f"/console/jobs/{other}")


async def test_each_step_shows_its_messages_delivery_state_and_path(owner: Client) -> None:
    """What the journey planner leaves behind, written here by hand: a confirmation sent and
    delivered by AlimTalk, a reminder held for courtesy hours, a step the policy dropped."""
    job_id, customer, conversation = await a_job(owner, kst(2026, 11, 24, 14, 0))
    sid, at = shop_id(owner), now_of(owner)
    await post(owner, f"/console/jobs/{job_id}/depart", {"eta": "10:40"})

    def planner(conn: Connection) -> int:
        message = insert_message(
            conn,
            sid,
            conversation,
            customer,
            at,
            "[한빛설비] 예약이 확정됐어요",
            direction="out",
            sender="bot",
            status="delivered",
            path="alimtalk",
        )
        failed = insert_message(
            conn,
            sid,
            conversation,
            customer,
            at,
            "[한빛설비] 지금 출발했어요",
            direction="out",
            sender="bot",
            status="failed",
            path="sms",
            error="번호 없음",
        )
        held = enqueue(
            conn,
            OutboxRequest(
                shop_id=sid,
                purpose="journey:reminder",
                provider="console",
                recipient={"customer_id": customer},
                payload={"text": "내일 뵐게요"},
                idempotency_key=f"journey:reminder:r1:job:{job_id}",
                now=at,
                not_before=kst(2026, 11, 23, 18, 0),
                customer_id=customer,
            ),
        )
        where = (JourneyStep.job_id == job_id,)
        conn.execute(
            sa.update(JourneyStep)
            .where(*where, JourneyStep.key == "confirmation:r1")
            .values(status="sent", message_id=message, sent_at=at)
        )
        conn.execute(
            sa.update(JourneyStep)
            .where(*where, JourneyStep.key == "on_my_way:r1")
            .values(status="sent", message_id=failed, sent_at=at)
        )
        conn.execute(
            sa.update(JourneyStep)
            .where(*where, JourneyStep.key == "reminder:r1")
            .values(outbox_id=held)
        )
        return message

    message = await write(owner, planner)
    html = await page(owner, f"/console/jobs/{job_id}")
    steps_html = html[html.index('id="job-steps"') :]
    steps_html = steps_html[: steps_html.index("</ol>")]
    confirmation = steps_html[steps_html.index('data-key="confirmation:r1"') :]
    confirmation = confirmation[: confirmation.index("</li>")]
    assert "보냄" in confirmation
    assert (
        f'href="/console/c/{conversation}#m-{message}" class="delivery">전달됨</a>' in confirmation
    )
    assert '<span class="path">알림톡</span>' in confirmation  # the timeline's own labels
    on_my_way = steps_html[steps_html.index('data-key="on_my_way:r1"') :]
    on_my_way = on_my_way[: on_my_way.index("</li>")]
    assert "보내지 못함" in on_my_way
    assert "문자(SMS)" in on_my_way
    assert "실패 이유: 번호 없음" in on_my_way
    reminder = steps_html[steps_html.index('data-key="reminder:r1"') :]
    reminder = reminder[: reminder.index("</li>")]
    assert "보낼 시각을 기다리는 중" in reminder

    # The policy said no: dropped, with its reason.
    def drop(conn: Connection) -> None:
        conn.execute(
            sa.update(JourneyStep)
            .where(JourneyStep.job_id == job_id, JourneyStep.key == "reminder:r1")
            .values(status="dropped", reason="수신 거부한 고객이에요")
        )

    await write(owner, drop)
    html = await page(owner, f"/console/jobs/{job_id}")
    assert '<span class="step-state state-dropped">보내지 않음</span>' in html
    assert "수신 거부한 고객이에요" in html


# --------------------------------------------------------------------------- photos


async def upload(client: Client, conversation_id: int) -> int:
    form = aiohttp.FormData()
    form.add_field("photo", phone_photo(), filename="IMG_0001.jpg", content_type="image/jpeg")
    resp = await client.post(
        f"/console/c/{conversation_id}/photos",
        data=form,
        headers={"X-CSRF-Token": client.csrf},  # type: ignore[attr-defined]
    )
    assert resp.status == 201, await resp.text()
    photo_id: int = (await resp.json())["id"]
    return photo_id


async def test_a_photo_from_the_phone_is_attached_to_the_job_with_its_phase(
    owner: Client,
) -> None:
    database = app_of(owner)[keys.DATABASE]
    job_id, _, conversation = await a_job(owner, kst(2026, 11, 23, 14, 0))
    html = await page(owner, f"/console/jobs/{job_id}")
    assert f'data-upload-url="/console/c/{conversation}/photos"' in html
    assert 'accept="image/*" capture="environment"' in html

    photo_id = await upload(owner, conversation)
    resp = await post(
        owner,
        f"/console/jobs/{job_id}/photos",
        {"photo": str(photo_id), "phase": "before", "caption": "실외기 <먼지>"},
        headers={"Accept": "application/json"},
    )
    assert resp.status == 200
    assert await resp.json() == {"ok": True}
    photo = (await rows(owner, sa.select(Photo).where(Photo.id == photo_id)))[0]
    assert (photo.job_id, photo.phase) == (job_id, "before")
    await settled(app_of(owner))
    step = next(s for s in await steps(database, job_id) if s["step"] == "photo")
    # Planned at once; with no SMS provider in this shop the planner skips it.
    assert (step["key"], step["status"]) == (f"photo:{photo_id}", "skipped")
    assert step["payload"]["caption"] == "실외기 <먼지>"

    html = await page(owner, f"/console/jobs/{job_id}")
    photos = html[html.index('id="job-photos"') :]
    assert "<h3>작업 전</h3>" in photos
    assert f'<img src="/console/photos/{photo_id}"' in photos
    assert "실외기 &lt;먼지&gt;" in photos

    # The same photo twice, a photo that is not one the console uploaded, a bad phase.
    again = await post(
        owner, f"/console/jobs/{job_id}/photos", {"photo": str(photo_id), "phase": "after"}
    )
    assert again.status == 409
    assert "이미 다른 작업에 붙어 있어요" in await again.text()
    sid = shop_id(owner)

    def theirs(conn: Connection) -> int:
        found: int = conn.execute(
            sa.insert(Photo)
            .values(
                shop_id=sid,
                conversation_id=conversation,
                stored_name="x" * 32,
                original_name="",
                content_type="image/jpeg",
                width=1,
                height=1,
                size_bytes=1,
                uploaded_by=None,
                created_at=now_of(owner),
            )
            .returning(Photo.id)
        ).scalar_one()
        return found

    customer_photo = await write(owner, theirs)
    refused = await post(
        owner,
        f"/console/jobs/{job_id}/photos",
        {"photo": str(customer_photo), "phase": "during"},
        headers={"Accept": "application/json"},
    )
    assert refused.status == 409
    assert (await refused.json())["ok"] is False
    bad = await post(
        owner, f"/console/jobs/{job_id}/photos", {"photo": str(photo_id), "phase": "someday"}
    )
    assert bad.status == 400
    assert len([s for s in await steps(database, job_id) if s["step"] == "photo"]) == 1


# --------------------------------------------------------------------------- staff


async def test_staff_run_jobs_but_do_not_set_prices(owner: Client) -> None:
    _, conversation = await thread(owner)
    await add_account(owner, "park", role="staff")
    owner.csrf = await sign_in(owner, "park")  # type: ignore[attr-defined]
    form = await page(owner, f"/console/jobs/new?conversation={conversation}")
    assert 'id="b-price"' not in form
    assert "금액은 사장님이 정해요" in form

    typed = {"service": "aircon", "day": "2026-11-23", "start": "15:00"}
    priced = await post(
        owner, f"/console/jobs/new?conversation={conversation}", {**typed, "price": "50000"}
    )
    assert priced.status == 400
    assert "금액은 사장님만 정할 수 있어요" in await priced.text()
    assert await rows(owner, sa.select(Job.id)) == []

    resp = await post(owner, f"/console/jobs/new?conversation={conversation}", typed)
    assert resp.status == 303
    job_id = int(resp.headers["Location"].rsplit("/", 1)[-1])
    assert (await job_row(owner, job_id)).price_krw is None
    for move, data in (("depart", {"eta": "14:40"}), ("start", {}), ("complete", {})):
        assert (await post(owner, f"/console/jobs/{job_id}/{move}", data)).status == 303, move
    assert (await job_row(owner, job_id)).status == "done"
    actors = await rows(
        owner, sa.select(AuditEntry.actor).where(AuditEntry.subject == f"job:{job_id}")
    )
    assert {a.actor for a in actors} == {"user:2"}


# --------------------------------------------------------------------------- the customer panel


async def test_the_customer_panel_shows_their_jobs_with_price_and_score(owner: Client) -> None:
    customer, conversation = await thread(owner, name="김민수")
    sid, at = shop_id(owner), now_of(owner)
    done = await book_job(
        owner, customer, kst(2026, 11, 2, 10, 0), price_krw=80000, conversation_id=conversation
    )
    upcoming = await book_job(owner, customer, kst(2026, 11, 30, 10, 0), service="lawn")
    assert (await post(owner, f"/console/jobs/{done}/complete")).status == 303

    def answer(conn: Connection) -> None:
        conn.execute(
            sa.insert(SurveyAnswer).values(
                shop_id=sid,
                job_id=done,
                customer_id=customer,
                score=4,
                comment="친절해요 <최고>",
                channel="kakao",
                answered_at=at,
                created_at=at,
            )
        )

    await write(owner, answer)
    for path in (f"/console/c/{conversation}", f"/console/customers/{customer}"):
        html = await page(owner, path)
        history = html[html.index('id="job-history"') :]
        history = history[: history.index("</ul>")]
        assert "완료 1건" in html, path
        links = re.findall(r'href="/console/jobs/(\d+)"', history)
        assert links == [str(upcoming), str(done)], path  # newest first
        assert "2026. 11. 2. · 에어컨 청소" in history
        assert "80,000원" in history
        assert "★ 4점" in history
        assert "견적 후 안내 · 예약" in " ".join(history.split())

    html = await page(owner, f"/console/jobs/{done}")
    assert "4점" in html
    assert "친절해요 &lt;최고&gt;" in html
    assert "카카오" in html


# --------------------------------------------------------------------------- live


async def job_events(sub: Any, count: int) -> list[dict[str, Any]]:
    """The next `count` job events the subscription hears (others are skipped, and so are
    the journey planner's: it tells the consoles when it settles a job's steps)."""
    found: list[dict[str, Any]] = []
    while len(found) < count:
        event = await sub.next(within=5)
        assert event is not None, f"heard only {found}"
        if event.get("type") == "job" and event.get("change") != "journey":
            found.append(event)
    return found


async def test_a_job_change_reaches_the_shops_consoles_after_it_commits(owner: Client) -> None:
    app = app_of(owner)
    hub = app[keys.LIVE]
    await hub.wait_listening()
    with hub.subscribe(shop_id(owner)) as mine, hub.subscribe(shop_id(owner, "other")) as theirs:
        job_id, _, _ = await a_job(owner, kst(2026, 11, 23, 14, 0))
        assert (await post(owner, f"/console/jobs/{job_id}/start")).status == 303
        assert await job_events(mine, 2) == [
            {"type": "job", "job_id": job_id, "change": "booked"},
            {"type": "job", "job_id": job_id, "change": "in_progress"},
        ]
        # A refused move commits nothing and publishes nothing; another shop hears nothing.
        assert (await post(owner, f"/console/jobs/{job_id}/no-show")).status == 409
        assert (await post(owner, f"/console/jobs/{job_id}/complete")).status == 303
        assert await job_events(mine, 1) == [{"type": "job", "job_id": job_id, "change": "done"}]
        await settled(app)
        assert await theirs.next(within=0.2) is None


# --------------------------------------------------------------------------- the forms


def test_the_eta_is_read_as_the_next_such_time_and_defaults_to_half_an_hour() -> None:
    evening = kst(2026, 11, 23, 23, 50)
    assert default_eta(evening, KST) == "00:20"
    assert default_eta(kst(2026, 11, 23, 10, 2), KST) == "10:35"
    assert read_eta("00:20", evening, KST) == kst(2026, 11, 24, 0, 20)
    assert read_eta("23:47", evening, KST) == kst(2026, 11, 23, 23, 47)  # just now
    assert read_eta("14:20:00", kst(2026, 11, 23, 13, 0), KST) == kst(2026, 11, 23, 14, 20)
    assert read_eta("24:00", evening, KST) is None
    assert read_eta("", evening, KST) is None
