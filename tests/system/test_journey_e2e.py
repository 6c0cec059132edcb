"""A job's whole journey through the real app (create_app: its ticks, its writer, its
dispatcher) and the real SOLAPI adapter at the fake SOLAPI on loopback, on SQLite and
PostgreSQL, with the clock moved by hand: each step lands once, at its time, on its path.

The owner's taps (book, 출발, a photo, 작업 완료) are the units the console and the API
call (core/jobs); everything after them is the app's own: the commit wakes the journey
tick, the tick writes the outbox row, the outbox wakes the dispatcher, SOLAPI gets it.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from aiohttp.test_utils import TestServer
from conftest import Client, kst, shop_table
from fakes.solapi import FakeSolapi
from sqlalchemy.engine import Connection
from support.jobs import add_customer
from support.photos import phone_photo
from support.settle import settled

from bot import keys
from bot.photos.cleaning import prepare
from bot.photos.records import record_photo
from bot.photos.store import PhotoStore
from core.clock import FrozenClock
from core.jobs import Booking, attach_photo, book, complete, depart, end_unfinished, reschedule
from core.models import JourneyStep, Message, OutboxItem

PHONE = "+821055556666"  # support.jobs.add_customer's
NATIONAL = "01055556666"
REVIEW = {"네이버 플레이스": "https://m.place.naver.com/place/1/review"}
ENV = {"DANGOL_SOLAPI_API_KEY": "NCSFAKEKEY", "DANGOL_SOLAPI_API_SECRET": "fake-secret"}

MakeClient = Callable[..., Awaitable[Client]]


@dataclass
class Shop:
    """The app as a shop runs it, and the fake SOLAPI its texts go to."""

    client: Client
    clock: FrozenClock
    solapi: FakeSolapi
    storage: Path

    @property
    def app(self) -> Any:
        return self.client.app

    @property
    def id(self) -> int:
        return int(self.app[keys.SHOP_IDS]["hanbit"])

    async def write(self, unit: Any) -> Any:
        result = await self.app[keys.DATABASE].write(unit)
        await settled(self.app)
        return result

    async def at(self, moment: datetime) -> None:
        """Time passes to `moment`; the journey tick's next run comes (as its interval would)."""
        self.clock.set(moment)
        self.app[keys.TICKS].wake("journey")
        await settled(self.app)

    async def steps(self, job: int) -> dict[str, sa.RowMapping]:
        async with self.app[keys.DATABASE].read() as conn:
            rows = await conn.execute(
                sa.select(JourneyStep.__table__).where(JourneyStep.job_id == job)
            )
            return {r["key"]: r for r in rows.mappings()}

    async def outbox(self) -> dict[int, sa.RowMapping]:
        async with self.app[keys.DATABASE].read() as conn:
            rows = await conn.execute(sa.select(OutboxItem.__table__))
            return {r["id"]: r for r in rows.mappings()}

    async def sent(self) -> list[tuple[str, dict[str, Any]]]:
        """Every message SOLAPI accepted, in order, with the journey key of its outbox row."""
        rows = await self.outbox()
        return [
            (rows[int(m["customFields"]["ourId"])]["idempotency_key"], m)
            for m in self.solapi.messages.values()
        ]


def settings(solapi_url: str, storage: Path, **journey: Any) -> dict[str, Any]:
    return {
        "providers": {
            "solapi": {
                "api_key_env": "DANGOL_SOLAPI_API_KEY",
                "api_secret_env": "DANGOL_SOLAPI_API_SECRET",
                "sender": "0212345678",
                "base_url": solapi_url,
            }
        },
        "storage": {"path": str(storage)},
        "shops": [
            shop_table(delivery={"sms": "solapi"}, journey={"review_links": REVIEW, **journey})
        ],
    }


@pytest.fixture
async def solapi(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[tuple[FakeSolapi, str]]:
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    fake = FakeSolapi()
    server = TestServer(fake.app, host="127.0.0.1")
    await server.start_server()
    try:
        yield fake, str(server.make_url("")).rstrip("/")
    finally:
        fake.release()
        await server.close()


@pytest.fixture
async def shop(
    make_client: MakeClient,
    solapi: tuple[FakeSolapi, str],
    clock: FrozenClock,
    tmp_path: Path,
) -> Shop:
    fake, url = solapi
    client = await make_client(**settings(url, tmp_path / "uploads"))
    await settled(client.app)
    return Shop(client, clock, fake, tmp_path / "uploads")


async def book_visit(shop: Shop, customer: int, starts_at: datetime) -> int:
    booking = Booking(
        shop_id=shop.id,
        customer_id=customer,
        service="aircon",
        starts_at=starts_at,
        ends_at=starts_at + timedelta(hours=2),
        address="서울시 마포구 월드컵로 12",
    )
    config = shop.app[keys.SETTINGS].shops[0]
    job: int = await shop.write(book(config, booking, "user:1", shop.clock.now()))
    return job


async def add_job_photo(shop: Shop, conversation: int, job: int, phase: str) -> int:
    """The owner takes a photo on the phone and adds it to the job: stored, then attached."""
    prepared = prepare(phone_photo(), max_bytes=15_000_000, max_pixels=40_000_000)
    name = PhotoStore(shop.storage).save(prepared.jpeg)
    now = shop.clock.now()
    photo: int = await shop.write(
        record_photo(
            shop_id=shop.id,
            conversation_id=conversation,
            stored_name=name,
            original_name="camera.jpg",
            prepared=prepared,
            uploaded_by=None,
            now=now,
        )
    )
    await shop.write(attach_photo(shop.id, job, photo, phase, "배관 상태예요", "user:1", now))
    return photo


async def test_the_whole_journey_of_an_sms_customer_step_by_step(shop: Shop) -> None:
    monday = kst(2026, 11, 23, 10)
    customer, conversation = await add_customer(shop.app[keys.DATABASE], shop.id, monday)

    # Booked from the conversation: the confirmation goes at once, by LMS.
    job = await book_visit(shop, customer, kst(2026, 11, 26, 14))
    (first,) = await shop.sent()
    assert first[0] == f"journey:confirmation:r1:job:{job}"
    assert first[1]["to"] == NATIONAL
    assert first[1]["type"] == "LMS"
    assert first[1]["subject"] == "[한빛설비] 예약 확정 안내"
    assert "11월 26일(목) 14:00~16:00 에어컨 청소 예약이 확정됐어요" in first[1]["text"]

    # Wednesday: nothing before 18:00, the reminder at 18:00.
    await shop.at(kst(2026, 11, 25, 17, 59))
    assert len(shop.solapi.messages) == 1
    await shop.at(kst(2026, 11, 25, 18))
    reminder = (await shop.sent())[-1]
    assert reminder[0] == f"journey:reminder:r1:job:{job}"
    assert "확인은 1, 일정 변경은 2로 답해 주세요." in reminder[1]["text"]

    # Thursday: 출발 with an ETA, at once.
    shop.clock.set(kst(2026, 11, 26, 13, 40))
    await shop.write(depart(shop.id, job, kst(2026, 11, 26, 14, 20), "user:1", shop.clock.now()))
    on_my_way = (await shop.sent())[-1]
    assert on_my_way[0] == f"journey:on_my_way:r1:job:{job}"
    assert "14:20쯤 도착 예정이에요." in on_my_way[1]["text"]

    # A progress photo: an MMS with the picture.
    shop.clock.set(kst(2026, 11, 26, 14, 30))
    photo = await add_job_photo(shop, conversation, job, "after")
    mms = (await shop.sent())[-1]
    assert mms[0] == f"journey:photo:{photo}:job:{job}"
    assert mms[1]["type"] == "MMS"
    assert mms[1]["imageId"] in shop.solapi.files
    assert "배관 상태예요" in mms[1]["text"]

    # 작업 완료 at 21:30: the summary at once, with the after photo.
    done = kst(2026, 11, 26, 21, 30)
    shop.clock.set(done)
    config = shop.app[keys.SETTINGS].shops[0]
    await shop.write(complete(config, shop.id, job, "user:1", done))
    completion = (await shop.sent())[-1]
    assert completion[0] == f"journey:completion:job:{job}"
    assert completion[1]["type"] == "MMS"
    assert "보증: 무상 A/S 6개월" in completion[1]["text"]

    # The survey falls due a week later at 21:30: held to 09:00 the next morning.
    await shop.at(done + timedelta(days=7))
    assert (await shop.steps(job))["survey"]["due_at"] == kst(2026, 12, 4, 9)
    assert (await shop.sent())[-1][0] == completion[0]
    await shop.at(kst(2026, 12, 4, 9))
    survey = (await shop.sent())[-1]
    assert survey[0] == f"journey:survey:job:{job}"
    assert "1~5 숫자로 답해 주세요." in survey[1]["text"]
    assert "http://127.0.0.1:8080/s/" in survey[1]["text"]

    # Unanswered: one reminder, two days after the survey went (it went late), not before.
    await shop.at(done + timedelta(days=9))
    assert (await shop.sent())[-1][0] == survey[0]
    await shop.at(kst(2026, 12, 6, 9))
    assert (await shop.sent())[-1][0] == f"journey:survey_reminder:job:{job}"

    # The filter tip two weeks after, in courtesy hours; then silence.
    await shop.at(done + timedelta(days=14))
    await shop.at(kst(2026, 12, 11, 9))
    assert (await shop.sent())[-1][0] == f"journey:aftercare:1:job:{job}"
    await shop.at(kst(2027, 1, 30, 12))

    keys_sent = [key for key, _ in await shop.sent()]
    assert keys_sent == [
        f"journey:{key}:job:{job}"
        for key in (
            "confirmation:r1",
            "reminder:r1",
            "on_my_way:r1",
            f"photo:{photo}",
            "completion",
            "survey",
            "survey_reminder",
            "aftercare:1",
        )
    ]
    steps = await shop.steps(job)
    assert {k: s["status"] for k, s in steps.items()} == dict.fromkeys(steps, "sent")
    assert len(shop.solapi.requests) == len(keys_sent)  # every step once


async def test_reschedule_cancel_and_no_show_change_what_the_customer_gets(shop: Shop) -> None:
    monday = kst(2026, 11, 23, 10)
    database = shop.app[keys.DATABASE]
    customer, _ = await add_customer(database, shop.id, monday)
    moved = await book_visit(shop, customer, kst(2026, 11, 26, 14))
    cancelled = await book_visit(shop, customer, kst(2026, 11, 26, 16))
    absent = await book_visit(shop, customer, kst(2026, 11, 27, 10))
    assert len(shop.solapi.messages) == 3  # three confirmations

    config = shop.app[keys.SETTINGS].shops[0]
    shop.clock.set(kst(2026, 11, 24, 9))
    friday = kst(2026, 11, 28, 10)
    await shop.write(
        reschedule(
            config, shop.id, moved, friday, friday + timedelta(hours=2), "user:1", shop.clock.now()
        )
    )
    changed = (await shop.sent())[-1]
    assert changed[0] == f"journey:confirmation:r2:job:{moved}"
    assert "11월 28일(토) 10:00~12:00 에어컨 청소 예약이 변경됐어요." in changed[1]["text"]
    await shop.write(
        end_unfinished(shop.id, cancelled, "cancelled", "고객 요청", "user:1", shop.clock.now())
    )

    # Wednesday evening: the old reminder of the moved job and the cancelled job's are gone.
    await shop.at(kst(2026, 11, 25, 18))
    assert len(shop.solapi.messages) == 4
    # Thursday evening: the absent customer's reminder; Friday the no-show.
    await shop.at(kst(2026, 11, 26, 18))
    assert (await shop.sent())[-1][0] == f"journey:reminder:r1:job:{absent}"
    shop.clock.set(kst(2026, 11, 27, 11))
    await shop.write(end_unfinished(shop.id, absent, "no_show", "", "user:1", shop.clock.now()))
    # Friday evening: the moved job's new reminder, and nothing else.
    await shop.at(kst(2026, 11, 27, 18))
    assert (await shop.sent())[-1][0] == f"journey:reminder:r2:job:{moved}"
    assert len(shop.solapi.messages) == 6
    statuses = {k: s["status"] for k, s in (await shop.steps(cancelled)).items()}
    assert statuses == {"confirmation:r1": "sent", "reminder:r1": "cancelled"}
    assert (await shop.steps(moved))["reminder:r1"]["status"] == "cancelled"


async def test_a_server_stopped_across_the_reminder_sends_it_late_when_it_still_helps(
    make_client: MakeClient,
    solapi: tuple[FakeSolapi, str],
    clock: FrozenClock,
    tmp_path: Path,
) -> None:
    fake, url = solapi
    first = await make_client(**settings(url, tmp_path / "uploads"))
    shop = Shop(first, clock, fake, tmp_path / "uploads")
    customer, _ = await add_customer(shop.app[keys.DATABASE], shop.id, clock.now())
    soon = await book_visit(shop, customer, kst(2026, 11, 26, 8, 30))
    later = await book_visit(shop, customer, kst(2026, 11, 26, 14))
    assert len(fake.messages) == 2  # the confirmations
    await first.close()  # stopped Wednesday 17:00 …

    clock.set(kst(2026, 11, 26, 8, 45))  # … started again Thursday 08:45
    second = await make_client(**settings(url, tmp_path / "uploads"))
    await settled(second.app)  # the ticks run once at start
    shop = Shop(second, clock, fake, tmp_path / "uploads")
    skipped = (await shop.steps(soon))["reminder:r1"]
    assert skipped["status"] == "skipped"  # its visit began a quarter of an hour ago
    held = (await shop.steps(later))["reminder:r1"]
    assert (held["status"], held["due_at"]) == ("planned", kst(2026, 11, 26, 9))
    await shop.at(kst(2026, 11, 26, 9))
    assert (await shop.sent())[-1][0] == f"journey:reminder:r1:job:{later}"
    assert len(fake.messages) == 3


async def test_two_app_instances_on_one_database_send_every_step_once(
    make_client: MakeClient,
    solapi: tuple[FakeSolapi, str],
    clock: FrozenClock,
    tmp_path: Path,
) -> None:
    fake, url = solapi
    apps = [await make_client(**settings(url, tmp_path / "uploads")) for _ in range(2)]
    shops = [Shop(app, clock, fake, tmp_path / "uploads") for app in apps]
    database = shops[0].app[keys.DATABASE]
    monday = clock.now()
    jobs = []
    for n in range(12):
        customer, _ = await add_customer(
            database, shops[0].id, monday, phone=f"+82105555{n:04d}", name=f"고객{n}"
        )
        jobs.append(await book_visit(shops[0], customer, kst(2026, 11, 26, 14)))
    assert len(fake.messages) == 12

    # Both planners wake at the same moment for the same reminders.
    clock.set(kst(2026, 11, 25, 18))
    for s in shops:
        s.app[keys.TICKS].wake("journey")
    await asyncio.gather(*(settled(s.app) for s in shops))
    for s in shops:  # and whatever the other's commits woke
        await settled(s.app)

    keys_sent = Counter(key for key, _ in await shops[0].sent())
    assert len(keys_sent) == 24
    assert set(keys_sent.values()) == {1}
    outbox = await shops[0].outbox()
    assert len(outbox) == 24
    async with database.read() as conn:
        messages = (await conn.execute(sa.select(sa.func.count()).select_from(Message))).scalar()
    assert messages == 24


async def test_a_simulator_customer_gets_the_confirmation_live(
    make_client: MakeClient, clock: FrozenClock, tmp_path: Path
) -> None:
    client = await make_client(storage={"path": str(tmp_path / "uploads")})
    shop = Shop(client, clock, FakeSolapi(), tmp_path / "uploads")
    user = "sim-user-0001"
    customer, _ = await add_customer(
        shop.app[keys.DATABASE], shop.id, clock.now(), channel="simulator", phone=None
    )

    def simulated(conn: Connection) -> None:
        from core.models import CustomerIdentity

        conn.execute(
            sa.insert(CustomerIdentity).values(
                shop_id=shop.id,
                customer_id=customer,
                kind="kakao_bot_user",
                value=user,
                created_at=clock.now(),
            )
        )

    await shop.write(simulated)
    start = await client.get(f"/simulator/api/updates?shop=hanbit&user={user}")
    last = (await start.json())["last"]

    # The customer's page is waiting (a long poll) when the owner books the job.
    waiting = asyncio.ensure_future(
        client.get(f"/simulator/api/updates?shop=hanbit&user={user}&after={last}&wait=1")
    )
    hub = shop.app[keys.LIVE]
    # Yield until the long poll has subscribed: turns of the loop, not time.
    while not hub.subscribers(shop.id, kind="simulator"):  # noqa: ASYNC110
        await asyncio.sleep(0)
    job = await book_visit(shop, customer, kst(2026, 11, 26, 14))
    answer = await (await asyncio.wait_for(waiting, 10)).json()
    (message,) = answer["messages"]
    assert message["from"] == "bot"
    assert "11월 26일(목) 14:00~16:00 에어컨 청소 예약이 확정됐어요" in message["text"]
    step = (await shop.steps(job))["confirmation:r1"]
    assert (step["status"], step["outbox_id"]) == ("sent", None)


async def test_a_simulator_customer_taps_the_surveys_buttons(
    make_client: MakeClient, clock: FrozenClock, tmp_path: Path
) -> None:
    client = await make_client(storage={"path": str(tmp_path / "uploads")})
    shop = Shop(client, clock, FakeSolapi(), tmp_path / "uploads")
    user = "sim-user-0002"
    customer, _ = await add_customer(
        shop.app[keys.DATABASE], shop.id, clock.now(), channel="simulator", phone=None
    )

    def simulated(conn: Connection) -> None:
        from core.models import CustomerIdentity

        conn.execute(
            sa.insert(CustomerIdentity).values(
                shop_id=shop.id,
                customer_id=customer,
                kind="kakao_bot_user",
                value=user,
                created_at=clock.now(),
            )
        )

    await shop.write(simulated)
    job = await book_visit(shop, customer, kst(2026, 11, 23, 14))
    done = kst(2026, 11, 23, 16)
    shop.clock.set(done)
    await shop.write(complete(shop.app[keys.SETTINGS].shops[0], shop.id, job, "user:1", done))
    await shop.at(done + timedelta(days=7))
    answer = await (
        await client.get(f"/simulator/api/updates?shop=hanbit&user={user}&after=0")
    ).json()
    survey = answer["messages"][-1]
    assert "어떠셨나요?" in survey["text"]
    assert [q["label"] for q in survey["quick_replies"]] == ["1점", "2점", "3점", "4점", "5점"]
    assert survey["quick_replies"][1]["messageText"] == "2점"
