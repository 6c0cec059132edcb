"""The journey planner's rules: each step sent once when due, on its path, or skipped, held
or dropped with the reason — on SQLite and PostgreSQL, with the clock injected."""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from datetime import datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from conftest import kst, make_settings, shop_table
from sqlalchemy.engine import Connection
from support.jobs import add_customer, book_job, steps
from support.outbox import add_shop

from core.clock import FrozenClock
from core.config import ShopConfig
from core.db import Database
from core.jobs import (
    PlannedStep,
    attach_photo,
    complete,
    depart,
    end_unfinished,
    plan_steps,
    reschedule,
    start,
)
from core.models import (
    Consent,
    Conversation,
    Customer,
    CustomerIdentity,
    Job,
    JourneyStep,
    Message,
    OutboxItem,
    Photo,
    SurveyAnswer,
)
from core.new_messages import MessageAdded
from core.texts import Texts
from scheduler.planners.journey import send_due_steps

PUBLIC = "https://hanbit.example"
REVIEW_LINKS = {
    "네이버 플레이스": "https://m.place.naver.com/place/1/review",
    "카카오맵": "https://place.map.kakao.com/1",
}
PROVIDERS: dict[str, Any] = {"fake": {}, "console": {}}


def shop_config(**overrides: Any) -> ShopConfig:
    table = shop_table(delivery={"sms": "fake"}, journey={"review_links": REVIEW_LINKS})
    table.update(overrides)
    return make_settings(shops=[table], providers=PROVIDERS).shops[0]


SHOP = shop_config()
TEXTS = Texts()
VISIT = kst(2026, 11, 26, 14)  # Thursday 14:00; the clock starts Monday 10:00


class Shop:
    """One shop in the database and the planner run as the app's tick runs it."""

    def __init__(self, database: Database, config: ShopConfig = SHOP) -> None:
        self.database, self.config = database, config
        self.id = 0

    async def start(self, now: datetime) -> Shop:
        self.id = await add_shop(self.database, now)
        return self

    async def run(self, now: datetime, **kwargs: Any) -> Counter[str]:
        shops = {self.id: self.config}
        return await send_due_steps(self.database, shops, TEXTS, PUBLIC, now, **kwargs)

    async def book(self, customer: int, now: datetime, starts_at: datetime = VISIT) -> int:
        return await book_job(
            self.database, self.config, self.id, customer, now, starts_at=starts_at
        )

    async def step(self, job: int, key: str) -> sa.RowMapping:
        return {r["key"]: r for r in await steps(self.database, job)}[key]

    async def rows(self, table: Any, *where: Any) -> list[sa.RowMapping]:
        async with self.database.read() as conn:
            result = await conn.execute(sa.select(table.__table__).where(*where).order_by(table.id))
            return list(result.mappings())

    async def write(self, statement: Any) -> None:
        await self.database.write(lambda conn: conn.execute(statement))


@pytest.fixture
async def shop(database: Database, clock: FrozenClock) -> Shop:
    return await Shop(database).start(clock.now())


async def customer_of(shop: Shop, now: datetime, **kwargs: Any) -> tuple[int, int]:
    return await add_customer(shop.database, shop.id, now, **kwargs)


# --------------------------------------------------------------------------- confirmation


async def test_the_confirmation_goes_at_once_on_sms_and_only_once(
    shop: Shop, clock: FrozenClock
) -> None:
    now = clock.now()
    customer, conversation = await customer_of(shop, now)
    job = await shop.book(customer, now)

    assert await shop.run(now) == Counter(sent=1)
    assert await shop.run(now) == Counter()  # nothing twice

    step = await shop.step(job, "confirmation:r1")
    (message,) = await shop.rows(Message)
    (row,) = await shop.rows(OutboxItem)
    assert (step["status"], step["sent_at"]) == ("sent", now)
    assert (step["message_id"], step["outbox_id"]) == (message["id"], row["id"])
    assert message["conversation_id"] == conversation
    assert (message["direction"], message["sender"], message["path"]) == ("out", "bot", "sms")
    assert message["status"] == "queued"
    assert message["body"].startswith(
        "[한빛설비] 김민수 고객님, 11월 26일(목) 14:00~16:00 에어컨 청소"
    )
    assert "실외기 주변을 비워 주세요." in message["body"]
    assert message["payload"]["journey"] == "confirmation"
    assert message["payload"]["job_id"] == job
    assert row["idempotency_key"] == f"journey:confirmation:r1:job:{job}"
    assert (row["purpose"], row["provider"], row["kind"]) == (
        "journey:confirmation",
        "fake",
        "info",
    )
    assert (row["customer_id"], row["message_id"]) == (customer, message["id"])
    assert row["recipient"]["phone"] == "+821055556666"
    assert row["payload"]["text"] == message["body"]
    assert row["payload"]["subject"] == "[한빛설비] 예약 확정 안내"
    assert row["not_before"] == now
    # The reminder waits for its evening.
    assert (await shop.step(job, "reminder:r1"))["status"] == "planned"


async def test_a_committed_journey_message_is_announced_to_the_consoles(
    shop: Shop, clock: FrozenClock
) -> None:
    heard: list[MessageAdded] = []
    stop = shop.database.listen(MessageAdded, heard.extend)
    now = clock.now()
    customer, conversation = await customer_of(shop, now)
    await shop.book(customer, now)
    await shop.run(now)
    stop()
    (message,) = await shop.rows(Message)
    assert [(m.conversation_id, m.message_id, m.sender, m.direction) for m in heard] == [
        (conversation, message["id"], "bot", "out")
    ]
    assert (heard[0].preview or "").startswith("[한빛설비]")


async def test_a_confirmation_hours_late_after_downtime_is_skipped_with_the_reason(
    shop: Shop, clock: FrozenClock
) -> None:
    now = clock.now()
    customer, _ = await customer_of(shop, now)
    job = await shop.book(customer, now)
    assert await shop.run(now + timedelta(hours=4)) == Counter(skipped=1)
    step = await shop.step(job, "confirmation:r1")
    assert step["status"] == "skipped"
    assert "넘겨" in step["reason"]
    assert await shop.rows(OutboxItem) == []


# --------------------------------------------------------------------------- reminder


async def test_the_reminder_goes_the_evening_before_and_asks_for_1_or_2_by_sms(
    shop: Shop, clock: FrozenClock
) -> None:
    now = clock.now()
    customer, _ = await customer_of(shop, now)
    job = await shop.book(customer, now)
    await shop.run(now)
    assert await shop.run(kst(2026, 11, 25, 17, 59)) == Counter()
    assert await shop.run(kst(2026, 11, 25, 18)) == Counter(sent=1)
    reminder = await shop.step(job, "reminder:r1")
    (message,) = await shop.rows(Message, Message.id == reminder["message_id"])
    assert "내일 11월 26일(목) 14:00~16:00" in message["body"]
    assert "확인은 1, 일정 변경은 2로 답해 주세요." in message["body"]
    assert message["payload"]["quick_replies"] == []  # SMS carries no buttons


async def test_a_reminder_late_after_downtime_still_goes_before_the_visit_but_not_near_it(
    shop: Shop, clock: FrozenClock
) -> None:
    now = clock.now()
    customer, _ = await customer_of(shop, now)
    early = await shop.book(customer, now)  # Thursday 14:00
    near = await shop.book(customer, now, starts_at=kst(2026, 11, 26, 10, 30))
    # The server was down from Wednesday afternoon until Thursday 10:00.
    outcome = await shop.run(kst(2026, 11, 26, 10))
    assert (await shop.step(early, "reminder:r1"))["status"] == "sent"
    skipped = await shop.step(near, "reminder:r1")
    assert skipped["status"] == "skipped"
    assert "방문 시각이 다가와" in skipped["reason"]
    assert outcome == Counter(sent=1, skipped=3)  # the two confirmations too


async def test_a_reminder_held_past_the_visit_is_skipped(shop: Shop, clock: FrozenClock) -> None:
    now = clock.now()
    customer, _ = await customer_of(shop, now)
    job = await shop.book(customer, now, starts_at=kst(2026, 11, 26, 8, 30))
    await shop.run(now)
    # Down until 06:00 on the day: courtesy hours open at 09:00, after the visit.
    assert await shop.run(kst(2026, 11, 26, 6)) == Counter(skipped=1)
    assert "전날 알림은 건너뛰었어요" in (await shop.step(job, "reminder:r1"))["reason"]


async def test_a_reminder_whose_visit_has_begun_is_skipped(shop: Shop, clock: FrozenClock) -> None:
    now = clock.now()
    customer, _ = await customer_of(shop, now)
    job = await shop.book(customer, now)
    await shop.run(now)
    # The job began without the unit that cancels the reminder (an older release, a tool).
    await shop.write(sa.update(Job).where(Job.id == job).values(status="in_progress"))
    assert await shop.run(kst(2026, 11, 25, 18)) == Counter(skipped=1)
    assert (await shop.step(job, "reminder:r1"))["reason"] == "방문이 이미 시작됐어요"


async def test_a_reminder_outside_courtesy_hours_is_held_until_they_open(
    database: Database, clock: FrozenClock
) -> None:
    late = shop_config(journey={"reminder_at": "21:00"})
    shop = await Shop(database, late).start(clock.now())
    now = clock.now()
    customer, _ = await customer_of(shop, now)
    job = await shop.book(customer, now)
    await shop.run(now)
    assert await shop.run(kst(2026, 11, 25, 21)) == Counter(held=1)
    held = await shop.step(job, "reminder:r1")
    assert (held["status"], held["due_at"]) == ("planned", kst(2026, 11, 26, 9))
    assert "09:00에 보낼게요" in held["reason"]
    assert await shop.run(kst(2026, 11, 26, 9)) == Counter(sent=1)


# --------------------------------------------------------------------------- reschedule, cancel


async def test_a_reschedule_confirms_the_new_time_and_reminds_on_its_evening(
    shop: Shop, clock: FrozenClock
) -> None:
    now = clock.now()
    customer, _ = await customer_of(shop, now)
    job = await shop.book(customer, now)
    await shop.run(now)
    later = now + timedelta(hours=1)
    new_start = kst(2026, 11, 28, 10)
    await shop.database.write(
        reschedule(shop.config, shop.id, job, new_start, new_start + timedelta(hours=2), "u", later)
    )
    assert await shop.run(later) == Counter(sent=1)
    confirmation = await shop.step(job, "confirmation:r2")
    (message,) = await shop.rows(Message, Message.id == confirmation["message_id"])
    assert "11월 28일(토) 10:00~12:00 에어컨 청소 예약이 변경됐어요." in message["body"]
    assert await shop.run(kst(2026, 11, 25, 18)) == Counter()  # the old evening: cancelled
    assert (await shop.step(job, "reminder:r1"))["status"] == "cancelled"
    assert await shop.run(kst(2026, 11, 27, 18)) == Counter(sent=1)


async def test_a_confirmation_of_an_older_schedule_not_yet_sent_is_skipped(
    shop: Shop, clock: FrozenClock
) -> None:
    now = clock.now()
    customer, _ = await customer_of(shop, now)
    job = await shop.book(customer, now)
    new_start = kst(2026, 11, 27, 10)
    await shop.database.write(
        reschedule(shop.config, shop.id, job, new_start, new_start + timedelta(hours=2), "u", now)
    )
    assert await shop.run(now) == Counter(sent=1, skipped=1)
    assert (await shop.step(job, "confirmation:r1"))["status"] == "skipped"
    assert (await shop.step(job, "confirmation:r2"))["status"] == "sent"


@pytest.mark.parametrize("status", ["cancelled", "no_show"])
async def test_nothing_goes_for_a_cancelled_job_or_a_no_show(
    shop: Shop, clock: FrozenClock, status: str
) -> None:
    now = clock.now()
    customer, _ = await customer_of(shop, now)
    ended = await shop.book(customer, now)
    await shop.database.write(end_unfinished(shop.id, ended, status, "고객 요청", "u", now))
    # A job ended by a path that left its steps planned (a bulk import, an older release):
    # the planner cancels them itself.
    raw = await shop.book(customer, now)
    await shop.write(sa.update(Job).where(Job.id == raw).values(status=status))

    assert await shop.run(kst(2026, 11, 25, 18)) == Counter(cancelled=2)
    assert {r["status"] for r in await steps(shop.database, ended)} == {"cancelled"}
    left = await steps(shop.database, raw)
    assert {r["status"] for r in left} == {"cancelled"}
    assert {r["reason"] for r in left} == {
        "작업이 취소됐어요" if status == "cancelled" else "고객이 안 계셨어요(노쇼)"
    }
    assert await shop.rows(OutboxItem) == []


# --------------------------------------------------------------------------- the day of the job


async def test_on_my_way_tells_the_eta_and_is_skipped_once_the_work_has_begun(
    shop: Shop, clock: FrozenClock
) -> None:
    booked = clock.now()
    customer, _ = await customer_of(shop, booked)
    job = await shop.book(customer, booked)
    other = await shop.book(customer, booked)
    await shop.run(booked)
    await shop.run(kst(2026, 11, 25, 18))  # the reminders
    now = kst(2026, 11, 26, 13, 40)
    await shop.database.write(depart(shop.id, job, kst(2026, 11, 26, 14, 20), "u", now))
    await shop.database.write(depart(shop.id, other, kst(2026, 11, 26, 14, 20), "u", now))
    await shop.database.write(start(shop.id, other, "u", now))  # before the planner ran
    assert await shop.run(now) == Counter(sent=1, skipped=1)
    sent = await shop.step(job, "on_my_way:r1")
    (message,) = await shop.rows(Message, Message.id == sent["message_id"])
    assert "지금 출발했어요.\n14:20쯤 도착 예정이에요." in message["body"]
    (row,) = await shop.rows(OutboxItem, OutboxItem.id == sent["outbox_id"])
    assert row["payload"]["urgent"] is True
    skipped = await shop.step(other, "on_my_way:r1")
    assert skipped["reason"] == "이미 도착했거나 작업이 끝났어요"


async def add_photo(shop: Shop, conversation: int, now: datetime, name: str) -> int:
    def unit(conn: Connection) -> int:
        return int(
            conn.execute(
                sa.insert(Photo)
                .values(
                    shop_id=shop.id,
                    conversation_id=conversation,
                    stored_name=name,
                    original_name="phone.jpg",
                    content_type="image/jpeg",
                    width=800,
                    height=600,
                    size_bytes=1000,
                    created_at=now,
                )
                .returning(Photo.id)
            ).scalar_one()
        )

    return await shop.database.write(unit)


async def test_a_progress_photo_goes_with_its_caption_as_the_owners_photos_do(
    shop: Shop, clock: FrozenClock
) -> None:
    now = clock.now()
    customer, conversation = await customer_of(shop, now)
    job = await shop.book(customer, now)
    photo = await add_photo(shop, conversation, now, "a" * 32 + ".jpg")
    await shop.database.write(
        attach_photo(shop.id, job, photo, "during", "배관 상태예요", "u", now)
    )
    assert await shop.run(now) == Counter(sent=2)
    step = await shop.step(job, f"photo:{photo}")
    (message,) = await shop.rows(Message, Message.id == step["message_id"])
    assert message["body"] == "[한빛설비] 에어컨 청소 작업 중 사진이에요.\n배관 상태예요"
    attachment = {
        "photo_id": photo,
        "url": "/p/" + "a" * 32 + ".jpg",
        "width": 800,
        "height": 600,
        "content_type": "image/jpeg",
    }
    assert message["payload"]["attachments"] == [attachment]
    (row,) = await shop.rows(OutboxItem, OutboxItem.id == step["outbox_id"])
    assert row["payload"]["attachments"] == [attachment]
    (stored,) = await shop.rows(Photo)
    assert stored["message_id"] == message["id"]


async def test_completion_carries_the_days_tips_the_warranty_and_the_after_photo_first(
    shop: Shop, clock: FrozenClock
) -> None:
    now = clock.now()
    customer, conversation = await customer_of(shop, now)
    job = await shop.book(customer, now)
    before = await add_photo(shop, conversation, now, "b" * 32 + ".jpg")
    after = await add_photo(shop, conversation, now, "c" * 32 + ".jpg")
    for photo, phase in ((before, "before"), (after, "after")):
        await shop.database.write(
            attach_photo(shop.id, job, photo, phase, "", "u", now, send=False)
        )
    done = kst(2026, 11, 26, 16)
    await shop.database.write(complete(shop.config, shop.id, job, "u", done))
    await shop.run(done)
    step = await shop.step(job, "completion")
    (message,) = await shop.rows(Message, Message.id == step["message_id"])
    assert "작업 전후 사진을 함께 보내드려요." in message["body"]
    assert "- 처음 켤 때 냄새나 물샘이 없는지 봐 주세요." in message["body"]
    assert "보증: 무상 A/S 6개월" in message["body"]
    assert [a["photo_id"] for a in message["payload"]["attachments"]] == [after, before]


# --------------------------------------------------------------------------- after the job


async def finished(shop: Shop, customer: int, done: datetime) -> int:
    job = await shop.book(customer, done - timedelta(days=3), starts_at=done - timedelta(hours=2))
    await shop.database.write(complete(shop.config, shop.id, job, "u", done))
    return job


def link_in(text: str) -> str:
    found = re.search(r"https://hanbit\.example/s/([A-Za-z0-9_-]+)", text)
    assert found, text
    return found[1]


async def test_the_survey_goes_a_week_later_with_its_own_link_and_is_reminded_once(
    shop: Shop, clock: FrozenClock
) -> None:
    done = kst(2026, 11, 23, 11)
    customer, _ = await customer_of(shop, done)
    job = await finished(shop, customer, done)
    await shop.run(done)
    assert await shop.run(done + timedelta(days=7) - timedelta(minutes=1)) == Counter()
    assert await shop.run(done + timedelta(days=7)) == Counter(sent=1)

    survey = await shop.step(job, "survey")
    (message,) = await shop.rows(Message, Message.id == survey["message_id"])
    assert "지난주에 받으신 에어컨 청소는 어떠셨나요?" in message["body"]
    assert "1~5 숫자로 답해 주세요." in message["body"]
    token = link_in(message["body"])
    assert survey["token_hash"] == hashlib.sha256(token.encode()).hexdigest()
    assert token not in str(survey["payload"])  # only its hash is kept

    assert await shop.run(done + timedelta(days=9)) == Counter(sent=1)
    reminder = await shop.step(job, "survey_reminder")
    (again,) = await shop.rows(Message, Message.id == reminder["message_id"])
    assert link_in(again["body"]) != token
    assert await shop.run(done + timedelta(days=13)) == Counter()  # then silence


async def test_an_answered_survey_is_not_reminded(shop: Shop, clock: FrozenClock) -> None:
    done = kst(2026, 11, 23, 11)
    customer, _ = await customer_of(shop, done)
    job = await finished(shop, customer, done)
    await shop.run(done + timedelta(days=7))

    def answer(conn: Connection) -> None:
        conn.execute(
            sa.insert(SurveyAnswer).values(
                shop_id=shop.id,
                job_id=job,
                customer_id=customer,
                score=5,
                channel="sms",
                answered_at=done + timedelta(days=8),
                created_at=done + timedelta(days=8),
            )
        )

    await shop.database.write(answer)
    assert await shop.run(done + timedelta(days=9)) == Counter(skipped=1)
    assert (await shop.step(job, "survey_reminder"))[
        "reason"
    ] == "고객이 이미 만족도를 알려주셨어요"


async def test_no_survey_while_a_complaint_is_open_and_so_no_reminder(
    shop: Shop, clock: FrozenClock
) -> None:
    done = kst(2026, 11, 23, 11)
    customer, conversation = await customer_of(shop, done)
    job = await finished(shop, customer, done)
    await shop.run(done)
    await shop.write(
        sa.update(Conversation).where(Conversation.id == conversation).values(complaint=True)
    )
    assert await shop.run(done + timedelta(days=7)) == Counter(skipped=1)
    assert "불만이 접수돼 있어" in (await shop.step(job, "survey"))["reason"]
    assert await shop.run(done + timedelta(days=9)) == Counter(skipped=1)
    assert (await shop.step(job, "survey_reminder"))["status"] == "skipped"


async def test_a_survey_due_at_night_waits_for_courtesy_hours(
    shop: Shop, clock: FrozenClock
) -> None:
    done = kst(2026, 11, 23, 21, 30)
    customer, _ = await customer_of(shop, done)
    job = await finished(shop, customer, done)
    await shop.run(done)
    assert await shop.run(done + timedelta(days=7)) == Counter(held=1)
    held = await shop.step(job, "survey")
    assert (held["status"], held["due_at"]) == ("planned", kst(2026, 12, 1, 9))
    assert held["token_hash"] is None
    assert await shop.run(kst(2026, 12, 1, 9)) == Counter(sent=1)


async def test_a_server_down_across_the_survey_and_its_reminder_sends_the_survey_first(
    shop: Shop, clock: FrozenClock
) -> None:
    done = kst(2026, 11, 23, 11)
    customer, _ = await customer_of(shop, done)
    job = await finished(shop, customer, done)
    await shop.run(done)
    back = done + timedelta(days=10)  # both were due while the server was down
    assert await shop.run(back) == Counter(sent=1, held=1)
    assert (await shop.step(job, "survey"))["sent_at"] == back
    reminder = await shop.step(job, "survey_reminder")
    assert (reminder["status"], reminder["due_at"]) == ("planned", back + timedelta(days=2))
    assert await shop.run(back + timedelta(days=2)) == Counter(sent=1)


async def test_aftercare_days_late_still_goes(shop: Shop, clock: FrozenClock) -> None:
    done = kst(2026, 11, 23, 11)
    customer, _ = await customer_of(shop, done)
    job = await finished(shop, customer, done)
    await shop.run(done)
    outcome = await shop.run(done + timedelta(days=17))  # 3 days late
    assert outcome["sent"] == 2  # the survey and the tip
    tip = await shop.step(job, "aftercare:1")
    (message,) = await shop.rows(Message, Message.id == tip["message_id"])
    assert "11월 23일(월)에 받으신 에어컨 청소 관리 안내예요.\n필터는 2주마다" in message["body"]


async def plan_review(shop: Shop, job: int, customer: int, now: datetime) -> None:
    step = PlannedStep("review", "review", now)
    await shop.database.write(lambda conn: plan_steps(conn, shop.id, job, customer, [step], now))


async def test_the_review_invitation_thanks_and_lists_every_link_after_any_complaint(
    shop: Shop, clock: FrozenClock
) -> None:
    done = kst(2026, 11, 23, 11)
    customer, conversation = await customer_of(shop, done)
    job = await finished(shop, customer, done)
    await shop.run(done)
    answered = done + timedelta(days=7, hours=1)
    await shop.write(
        sa.update(Conversation).where(Conversation.id == conversation).values(complaint=True)
    )
    await plan_review(shop, job, customer, answered)
    # A low score opened the complaint: the review waits (not skipped — that would be
    # review gating), and goes once it is resolved.
    assert (await shop.run(answered))["held"] == 1
    held = await shop.step(job, "review")
    assert (held["status"], held["due_at"]) == ("planned", answered + timedelta(hours=1))
    await shop.write(
        sa.update(Conversation).where(Conversation.id == conversation).values(complaint=False)
    )
    assert (await shop.run(answered + timedelta(hours=1)))["sent"] == 1
    review = await shop.step(job, "review")
    (message,) = await shop.rows(Message, Message.id == review["message_id"])
    assert "소중한 의견 감사해요" in message["body"]
    for label, url in REVIEW_LINKS.items():
        assert f"{label}: {url}" in message["body"]


# --------------------------------------------------------------------------- paths


async def test_customers_booked_without_a_conversation_get_one_on_sms(
    shop: Shop, clock: FrozenClock
) -> None:
    """Two in one round, as the demo's regulars are: one statement opens both."""
    now = clock.now()

    def phoned(name: str, phone: str) -> Any:
        def unit(conn: Connection) -> int:
            customer = conn.execute(
                sa.insert(Customer)
                .values(
                    shop_id=shop.id, name=name, tier="bronze", tags=[], notes="", created_at=now
                )
                .returning(Customer.id)
            ).scalar_one()
            conn.execute(
                sa.insert(CustomerIdentity).values(
                    shop_id=shop.id, customer_id=customer, kind="phone", value=phone, created_at=now
                )
            )
            return int(customer)

        return unit

    customers = [
        await shop.database.write(phoned("이영희", "+821077778888")),
        await shop.database.write(phoned("박철수", "+821077779999")),
    ]
    jobs = [await shop.book(customer, now) for customer in customers]
    assert await shop.run(now) == Counter(sent=2)
    conversations = await shop.rows(Conversation)
    assert [(c["customer_id"], c["channel"], c["status"]) for c in conversations] == [
        (customer, "sms", "open") for customer in customers
    ]
    messages = await shop.rows(Message)
    assert sorted(m["conversation_id"] for m in messages) == sorted(c["id"] for c in conversations)
    for job in jobs:
        assert (await shop.step(job, "confirmation:r1"))["status"] == "sent"


async def test_a_customer_who_cannot_be_reached_is_skipped_with_the_reason(
    shop: Shop, clock: FrozenClock
) -> None:
    now = clock.now()

    def nameless(conn: Connection) -> int:
        return int(
            conn.execute(
                sa.insert(Customer)
                .values(shop_id=shop.id, name="", tier="bronze", tags=[], notes="", created_at=now)
                .returning(Customer.id)
            ).scalar_one()
        )

    job = await shop.book(await shop.database.write(nameless), now)
    assert await shop.run(now) == Counter(skipped=1)
    assert "연락할 방법이 없어요" in (await shop.step(job, "confirmation:r1"))["reason"]


async def kakao_customer(shop: Shop, now: datetime) -> int:
    customer, _ = await customer_of(shop, now, channel="kakao")

    def with_key(conn: Connection) -> None:
        conn.execute(
            sa.insert(CustomerIdentity).values(
                shop_id=shop.id,
                customer_id=customer,
                kind="kakao_bot_user",
                value="bk-1",
                created_at=now,
            )
        )

    await shop.database.write(with_key)
    return customer


@pytest.mark.parametrize(
    ("delivery", "alimtalk", "path", "provider"),
    [
        ({"event_api": "console", "sms": "fake"}, False, "event_api", "console"),
        (
            {"alimtalk": "fake", "alimtalk_template": "T-REPLY", "sms": "fake"},
            True,
            "alimtalk",
            "fake",
        ),
        ({"alimtalk": "fake", "alimtalk_template": "T-REPLY", "sms": "fake"}, False, "sms", "fake"),
        ({}, False, "mailbox", None),
    ],
)
async def test_a_kakao_customer_gets_the_reminder_by_the_first_usable_path(
    database: Database,
    clock: FrozenClock,
    delivery: dict[str, str],
    alimtalk: bool,
    path: str,
    provider: str | None,
) -> None:
    journey: dict[str, Any] = {"review_links": REVIEW_LINKS}
    if alimtalk:
        journey["alimtalk"] = {
            "reminder": {
                "template": "T-REMIND",
                "variables": {"#{고객명}": "customer_name", "#{일시}": "when", "#{엉뚱}": "nope"},
            }
        }
    shop = await Shop(database, shop_config(delivery=delivery, journey=journey)).start(clock.now())
    now = clock.now()
    customer = await kakao_customer(shop, now)
    job = await shop.book(customer, now)
    await shop.run(kst(2026, 11, 25, 18))
    step = await shop.step(job, "reminder:r1")
    (message,) = await shop.rows(Message, Message.id == step["message_id"])
    assert message["path"] == path
    buttons = [q["label"] for q in message["payload"]["quick_replies"]]
    if path in ("sms", "alimtalk"):
        assert buttons == []
        assert "확인은 1, 일정 변경은 2" in message["body"]
    else:
        assert buttons == ["확인", "일정 변경"]
        assert "'확인' 또는 '일정 변경'" in message["body"]
    if provider is None:
        assert (message["status"], step["outbox_id"]) == ("held", None)
        return
    (row,) = await shop.rows(OutboxItem, OutboxItem.id == step["outbox_id"])
    assert row["provider"] == provider
    if path == "event_api":
        assert row["recipient"]["kakao_user_key"] == "bk-1"
    if path == "alimtalk":
        assert row["payload"]["template"] == "T-REMIND"
        assert row["payload"]["variables"] == {
            "#{고객명}": "김민수",
            "#{일시}": "11월 26일(목) 14:00~16:00",
            "#{엉뚱}": "",  # a value the planner does not know (logged)
        }
    else:
        assert "template" not in row["payload"]


async def test_a_simulator_customer_gets_the_confirmation_delivered_live(
    shop: Shop, clock: FrozenClock
) -> None:
    now = clock.now()
    customer, _ = await customer_of(shop, now, channel="simulator", phone=None)
    job = await shop.book(customer, now)
    await shop.run(now)
    step = await shop.step(job, "confirmation:r1")
    (message,) = await shop.rows(Message)
    assert (message["path"], message["status"], message["delivered_at"]) == (
        "simulator",
        "delivered",
        now,
    )
    assert (step["status"], step["outbox_id"]) == ("sent", None)
    assert await shop.rows(OutboxItem) == []


# --------------------------------------------------------------------------- the policy


async def test_an_advertising_step_without_consent_is_dropped_with_the_policys_reason(
    shop: Shop, clock: FrozenClock
) -> None:
    now = clock.now()
    customer, _ = await customer_of(shop, now)
    job = await shop.book(customer, now)

    def coupon(conn: Connection) -> None:  # a review invitation with a coupon is an ad
        conn.execute(
            sa.insert(JourneyStep).values(
                shop_id=shop.id,
                job_id=job,
                customer_id=customer,
                step="review",
                key="review",
                kind="ad",
                due_at=now,
                status="planned",
                payload={},
                created_at=now,
                updated_at=now,
            )
        )

    await shop.database.write(coupon)
    assert await shop.run(now) == Counter(sent=1, dropped=1)
    dropped = await shop.step(job, "review")
    assert dropped["status"] == "dropped"
    assert "광고 수신 동의가 없어요" in dropped["reason"]


async def test_an_advertising_step_with_consent_but_no_marking_is_dropped_too(
    shop: Shop, clock: FrozenClock
) -> None:
    now = clock.now()
    customer, _ = await customer_of(shop, now)
    job = await shop.book(customer, now)

    def consented_coupon(conn: Connection) -> None:
        conn.execute(
            sa.insert(Consent).values(
                shop_id=shop.id,
                customer_id=customer,
                scope="marketing",
                granted=True,
                source="console",
                created_at=now,
            )
        )
        conn.execute(
            sa.insert(JourneyStep).values(
                shop_id=shop.id,
                job_id=job,
                customer_id=customer,
                step="review",
                key="review",
                kind="ad",
                due_at=now,
                status="planned",
                payload={},
                created_at=now,
                updated_at=now,
            )
        )

    await shop.database.write(consented_coupon)
    await shop.run(now)
    dropped = await shop.step(job, "review")
    assert dropped["status"] == "dropped"
    assert "(광고)" in dropped["reason"]  # the consent was found: only the marking is missing


async def test_a_template_that_fails_postpones_its_step_and_the_rest_still_go(
    shop: Shop, clock: FrozenClock, tmp_path: Any
) -> None:
    broken = tmp_path / "journey"
    broken.mkdir()
    (broken / "reminder.j2").write_text("{{ no_such_value }}", "utf-8")
    now = clock.now()
    customer, _ = await customer_of(shop, now)
    job = await shop.book(customer, now)
    other = await shop.book(customer, now, starts_at=kst(2026, 11, 27, 14))
    texts = Texts(tmp_path)
    evening = kst(2026, 11, 25, 18)
    shops = {shop.id: shop.config}
    outcome = await send_due_steps(shop.database, shops, texts, PUBLIC, evening)
    assert outcome == Counter(held=1, skipped=2)  # the confirmations are long late
    held = await shop.step(job, "reminder:r1")
    assert held["due_at"] == evening + timedelta(hours=1)
    assert "문구를 만들지 못했어요" in held["reason"]
    assert (await shop.step(other, "reminder:r1"))["status"] == "planned"


# --------------------------------------------------------------------------- many at once


async def test_many_jobs_take_a_bounded_number_of_statements(
    shop: Shop, clock: FrozenClock
) -> None:
    now = clock.now()
    for n in range(30):
        customer, _ = await customer_of(shop, now, phone=f"+8210555{n:05d}", name=f"고객{n}")
        await shop.book(customer, now)
    engine = shop.database._sync_engine or shop.database.engine.sync_engine
    statements: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    sa.event.listen(engine, "before_cursor_execute", count)
    try:
        assert await shop.run(now, batch=12) == Counter(sent=30)
    finally:
        sa.event.remove(engine, "before_cursor_execute", count)
    queries = [
        s for s in statements if s.lstrip().upper().startswith(("SELECT", "INSERT", "UPDATE"))
    ]
    # Three rounds (12 + 12 + 6): each takes the batch and asks and writes a fixed number
    # of statements, however many jobs it holds.
    assert len(queries) <= 3 * 8, queries
    assert len(await shop.rows(OutboxItem)) == 30
