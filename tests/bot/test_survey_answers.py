"""A customer's answer to what the shop asked — a score for the satisfaction check, a
reply to the day-before reminder — through the real webhooks (Kakao skill, Twilio SMS) on
SQLite and PostgreSQL: recorded as such and still a message in the conversation; anything
else, or anything after the question expired, is an ordinary message.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from conftest import Client, kst, make_settings
from fakes.twilio import inbound_sms_form
from sqlalchemy.engine import Connection
from support.jobs import book_job, steps
from support.kakao import payload, post, rows, said, texts
from support.settle import settled
from support.survey import answers, awaiting, done_job, reminder_sent, survey_sent
from support.twilio import post_signed, twilio_client

from bot import keys
from bot.handlers import build_switchboard
from bot.inbound import Arrival, Services, digest_of, receive_many
from core.clock import FrozenClock
from core.db import Database
from core.jobs import end_unfinished
from core.models import Conversation, Customer, CustomerIdentity, Job, Message, OutboxItem, Shop
from core.texts import Texts
from scheduler.planners.journey import send_due_steps

MakeClient = Callable[..., Awaitable[Client]]

APOLOGY = "[한빛설비] 불편을 드려 죄송해요. 사장님이 24시간 안에 직접 연락드릴게요."


class Shop_:
    """The test app's shop and database, and a customer who has written once."""

    def __init__(self, client: Client) -> None:
        assert client.app is not None
        self.client = client
        self.app = client.app
        self.db: Database = client.app[keys.DATABASE]
        self.config = client.app[keys.SETTINGS].shops[0]
        self.id = client.app[keys.SHOP_IDS]["hanbit"]
        self.clock: FrozenClock = client.app[keys.CLOCK]  # type: ignore[assignment]

    @property
    def now(self) -> Any:
        return self.clock.now()

    async def customer(self) -> tuple[int, int]:
        (conv,) = await rows(self.client, Conversation)
        return conv.customer_id, conv.id

    async def surveyed(self, customer: int, **sent: Any) -> int:
        """A job done a week ago whose satisfaction check went an hour ago."""
        job = await done_job(self.db, self.config, self.id, customer, self.now - timedelta(days=7))
        await survey_sent(self.db, self.id, job, customer, self.now - timedelta(hours=1), **sent)
        return job

    async def reminded(self, customer: int) -> int:
        """A job tomorrow 14:00–16:00 whose reminder went: the answer awaited until then."""
        starts = kst(2026, 11, 24, 14)
        job = await book_job(self.db, self.config, self.id, customer, self.now, starts_at=starts)
        await reminder_sent(self.db, customer, job, starts)
        return job


async def kakao_shop(make_client: MakeClient) -> Shop_:
    client = await make_client()
    await post(client, said("에어컨 청소 예약했던 사람이에요"))
    return Shop_(client)


def quick_reply(label: str) -> dict[str, Any]:
    """What Kakao sends when the customer taps a quick reply: its text as the utterance."""
    data = payload("skill-quickreply-nonfriend.json", utterance=label)
    data["action"]["clientExtra"] = {}
    return data


async def outbox(shop: Shop_, purpose: str) -> list[Any]:
    return [o for o in await rows(shop.client, OutboxItem) if o.purpose == purpose]


# --------------------------------------------------------------------------- scores


async def test_a_kakao_quick_reply_2_is_a_low_score(make_client: MakeClient) -> None:
    shop = await kakao_shop(make_client)
    customer, conversation = await shop.customer()
    job = await shop.surveyed(customer)
    notices_before = len(await outbox(shop, "owner_notification"))

    status, answer = await post(shop.client, quick_reply("2점"))
    assert status == 200
    # What the journey held in the mailbox (no other path here) comes first; the answer last.
    assert texts(answer)[-1:] == [APOLOGY]

    (recorded,) = await answers(shop.db)
    assert (recorded.job_id, recorded.score, recorded.channel) == (job, 2, "kakao")
    # Still a message of the conversation, with the apology as its answer.
    inbound, reply = (await rows(shop.client, Message))[-2:]
    assert (inbound.direction, inbound.body) == ("in", "2점")
    assert (reply.sender, reply.body, reply.in_reply_to_id) == ("bot", APOLOGY, inbound.id)
    assert reply.payload["handler"] == "survey"
    # A complaint, with the deadline the console shows; the owner told once, of the score.
    (conv,) = await rows(shop.client, Conversation)
    assert conv.id == conversation
    assert conv.complaint
    assert conv.complaint_due_at == shop.now + timedelta(hours=24)
    notices = (await outbox(shop, "owner_notification"))[notices_before:]
    assert [n.payload["text"] for n in notices] == [
        f"[단골] 만족도 2점 · 불만 접수(24시간 내 연락) · 고객 #{customer} 에어컨 청소"
    ]
    assert notices[0].idempotency_key == f"survey-low:console:{job}:2"
    review = {s["key"]: s for s in await steps(shop.db, job)}["review"]
    assert review["status"] == "planned"
    assert await awaiting(shop.db, customer) == (None, None)

    # Taken once: the next message is a message (the owner is waited for, as ever).
    await post(shop.client, said("2점"))
    assert (await rows(shop.client, Message))[-1].payload["handler"] == "fallback"
    assert len(await answers(shop.db)) == 1


async def test_a_good_kakao_score_is_thanked_in_the_answer(make_client: MakeClient) -> None:
    shop = await kakao_shop(make_client)
    customer, _ = await shop.customer()
    job = await shop.surveyed(customer)
    _, answer = await post(shop.client, said("5점이요"))
    assert texts(answer)[-1:] == ["[한빛설비] 5점 잘 받았어요. 답해 주셔서 고마워요."]
    (recorded,) = await answers(shop.db)
    assert (recorded.job_id, recorded.score) == (job, 5)
    (conv,) = await rows(shop.client, Conversation)
    assert not conv.complaint


async def test_an_sms_full_width_5_is_a_score(make_client: MakeClient) -> None:
    client = await twilio_client(make_client)
    await post_signed(client, "/hooks/twilio/hanbit/sms", inbound_sms_form("안녕하세요"))
    shop = Shop_(client)
    customer, _ = await shop.customer()
    job = await shop.surveyed(customer)
    replies_before = len(await outbox(shop, "reply"))

    form = inbound_sms_form("５")
    resp = await post_signed(client, "/hooks/twilio/hanbit/sms", form)
    assert resp.status == 200

    (recorded,) = await answers(shop.db)
    assert (recorded.job_id, recorded.score, recorded.channel) == (job, 5, "sms")
    inbound = [m for m in await rows(client, Message) if m.direction == "in"]
    assert inbound[-1].body == "５"
    # No text of its own: the thanks with the review links is the next one.
    assert len(await outbox(shop, "reply")) == replies_before
    # Planned at once; the journey planner (woken by the commit) may have sent it already.
    review = {s["key"]: s for s in await steps(shop.db, job)}["review"]
    assert review["status"] in ("planned", "sent")


async def test_an_sms_low_score_is_apologised_for_by_text(make_client: MakeClient) -> None:
    client = await twilio_client(make_client)
    await post_signed(client, "/hooks/twilio/hanbit/sms", inbound_sms_form("안녕하세요"))
    shop = Shop_(client)
    customer, _ = await shop.customer()
    await shop.surveyed(customer)
    form = inbound_sms_form("1점")
    await post_signed(client, "/hooks/twilio/hanbit/sms", form)
    apology = (await outbox(shop, "reply"))[-1]
    assert apology.payload["text"] == APOLOGY
    assert apology.not_before == shop.now  # at once, not the acknowledgement's delay


async def test_a_time_is_not_a_score(make_client: MakeClient) -> None:
    shop = await kakao_shop(make_client)
    customer, _ = await shop.customer()
    job = await shop.surveyed(customer)
    for words in ("3시에 와주세요", "5분 뒤에 전화주세요", "10"):
        _, answer = await post(shop.client, said(words))
        assert "점 잘 받았어요" not in texts(answer)[0]
    assert await answers(shop.db) == []
    # Still awaited: the score may come yet.
    assert (await awaiting(shop.db, customer))[0] == f"survey:{job}"
    _, answer = await post(shop.client, said("4"))
    assert [a.score for a in await answers(shop.db)] == [4]


async def test_a_score_after_the_question_expired_is_an_ordinary_message(
    make_client: MakeClient,
) -> None:
    shop = await kakao_shop(make_client)
    customer, _ = await shop.customer()
    await shop.surveyed(customer, awaiting_until=shop.now + timedelta(hours=1))
    shop.clock.advance(hours=2)
    _, answer = await post(shop.client, said("5"))
    assert await answers(shop.db) == []
    assert "점 잘 받았어요" not in texts(answer)[0]
    inbound = [m for m in await rows(shop.client, Message) if m.direction == "in"]
    assert inbound[-1].body == "5"


async def test_a_score_for_an_answered_survey_is_an_ordinary_message(
    make_client: MakeClient,
) -> None:
    shop = await kakao_shop(make_client)
    customer, _ = await shop.customer()
    job = await shop.surveyed(customer)

    def answered_on_the_page(conn: Connection) -> None:
        from core.jobs import ScoreAnswer, record_answer

        record_answer(conn, shop.config, ScoreAnswer(shop.id, job, 4, "web"), shop.now)

    await shop.db.write(answered_on_the_page)
    await post(shop.client, said("1"))
    assert [a.score for a in await answers(shop.db)] == [4]


async def test_a_mark_for_a_job_that_cannot_be_answered_is_forgotten(
    make_client: MakeClient,
) -> None:
    shop = await kakao_shop(make_client)
    customer, _ = await shop.customer()
    not_done = await book_job(
        shop.db, shop.config, shop.id, customer, shop.now, starts_at=kst(2026, 11, 30, 10)
    )
    await survey_sent(shop.db, shop.id, not_done, customer, shop.now - timedelta(hours=1))
    await post(shop.client, said("5"))
    assert await answers(shop.db) == []
    assert await awaiting(shop.db, customer) == (None, None)


# --------------------------------------------------------------------------- reminders


async def test_kakao_confirm_answers_the_reminder(make_client: MakeClient) -> None:
    shop = await kakao_shop(make_client)
    customer, _ = await shop.customer()
    job = await shop.reminded(customer)
    notices_before = len(await outbox(shop, "owner_notification"))

    _, answer = await post(shop.client, quick_reply("확인"))
    assert texts(answer)[-1:] == [
        "[한빛설비] 확인해 주셔서 고마워요. 11월 24일(화) 14:00~16:00에 뵐게요."
    ]
    (row,) = [j for j in await rows(shop.client, Job) if j.id == job]
    assert row.customer_reply == "confirmed"
    assert await awaiting(shop.db, customer) == (None, None)
    assert len(await outbox(shop, "owner_notification")) == notices_before


async def test_a_change_request_reaches_the_owner(make_client: MakeClient) -> None:
    shop = await kakao_shop(make_client)
    customer, _ = await shop.customer()

    def answered(conn: Connection) -> None:  # the first message's wait is over
        conn.execute(sa.update(Conversation).values(waiting_since=None, sla_due_at=None))

    await shop.db.write(answered)
    job = await shop.reminded(customer)
    notices_before = len(await outbox(shop, "owner_notification"))

    _, answer = await post(shop.client, said("일정 변경"))
    assert texts(answer)[-1:] == [
        "[한빛설비] 일정 변경 요청을 사장님께 전했어요. 사장님이 곧 연락드려 새 일정을 잡아 드릴게요."
    ]
    (row,) = [j for j in await rows(shop.client, Job) if j.id == job]
    assert row.customer_reply == "change_requested"
    notices = (await outbox(shop, "owner_notification"))[notices_before:]
    assert [n.payload["text"] for n in notices] == [
        f"[단골] 일정 변경 요청 · 고객 #{customer} 11월 24일(화) 14:00 에어컨 청소"
    ]
    (conv,) = await rows(shop.client, Conversation)
    assert conv.waiting_since == shop.now  # the owner has a new time to find


async def test_an_sms_2_answers_the_reminder(make_client: MakeClient) -> None:
    client = await twilio_client(make_client)
    await post_signed(client, "/hooks/twilio/hanbit/sms", inbound_sms_form("안녕하세요"))
    shop = Shop_(client)
    customer, _ = await shop.customer()
    job = await shop.reminded(customer)
    await post_signed(client, "/hooks/twilio/hanbit/sms", inbound_sms_form("1"))
    (row,) = [j for j in await rows(client, Job) if j.id == job]
    assert row.customer_reply == "confirmed"


async def test_a_reply_to_the_reminder_of_a_cancelled_job_is_an_ordinary_message(
    make_client: MakeClient,
) -> None:
    shop = await kakao_shop(make_client)
    customer, _ = await shop.customer()
    job = await shop.reminded(customer)
    await shop.db.write(end_unfinished(shop.id, job, "cancelled", "고객 사정", "user:1", shop.now))
    _, answer = await post(shop.client, said("확인"))
    assert "뵐게요" not in texts(answer)[0]
    (row,) = [j for j in await rows(shop.client, Job) if j.id == job]
    assert row.customer_reply is None
    assert await awaiting(shop.db, customer) == (None, None)  # nothing to await any more


async def test_other_words_leave_the_reminder_awaited(make_client: MakeClient) -> None:
    shop = await kakao_shop(make_client)
    customer, _ = await shop.customer()
    job = await shop.reminded(customer)
    await post(shop.client, said("내일 주차는 어디에 하면 될까요?"))
    assert (await awaiting(shop.db, customer))[0] == f"reminder:{job}"
    (row,) = [j for j in await rows(shop.client, Job) if j.id == job]
    assert row.customer_reply is None


# --------------------------------------------------------------------------- cost


async def test_an_ordinary_message_costs_no_statement_more(database: Database) -> None:
    """The hot path: a customer owing an answer who writes something else costs what any
    customer costs — the mark came with their address."""
    now = kst(2026, 11, 23, 10)
    settings = make_settings()
    services = Services(
        switchboard=build_switchboard(), texts=Texts(), median_reply=lambda _shop: None
    )

    def setup(conn: Connection) -> int:
        shop_id = conn.execute(
            sa.insert(Shop)
            .values(slug="hanbit", name="한빛설비", owner_status="available", created_at=now)
            .returning(Shop.id)
        ).scalar_one()
        for user, mark in (("plain", None), ("owing", "survey:1")):
            customer = conn.execute(
                sa.insert(Customer)
                .values(
                    shop_id=shop_id,
                    tier="bronze",
                    tags=[],
                    notes="",
                    created_at=now,
                    awaiting=mark,
                    awaiting_until=now + timedelta(days=1) if mark else None,
                )
                .returning(Customer.id)
            ).scalar_one()
            conn.execute(
                sa.insert(CustomerIdentity).values(
                    shop_id=shop_id,
                    customer_id=customer,
                    kind="kakao_bot_user",
                    value=user,
                    created_at=now,
                )
            )
        return int(shop_id)

    shop_id = await database.write(setup)

    def says(user: str, text: str) -> Arrival:
        digest = digest_of(shop_id, {"user": user, "text": text})
        return Arrival(
            settings.shops[0], shop_id, "kakao", (("kakao_bot_user", user),), text, digest, now
        )

    async def statements(arrival: Arrival) -> int:
        sent: list[str] = []

        def unit(conn: Connection) -> None:
            def count(*args: Any) -> None:
                sent.append(args[2])

            sa.event.listen(conn, "before_cursor_execute", count)
            try:
                receive_many(conn, [arrival], services)
            finally:
                sa.event.remove(conn, "before_cursor_execute", count)

        await database.write(unit)
        return len(sent)

    # Each writes twice: the first opens a conversation, the second is the hot path.
    for user in ("plain", "owing"):
        await statements(says(user, "안녕하세요"))
    plain = await statements(says("plain", "내일 몇 시에 오세요?"))
    owing = await statements(says("owing", "내일 몇 시에 오세요?"))
    assert owing == plain


async def test_a_survey_held_in_the_mailbox_brings_its_buttons_with_it(
    make_client: MakeClient,
) -> None:
    """A Kakao customer the shop can reach no other way gets the survey in the answer to
    their next message — with 1점…5점 to tap, which then records the score."""
    shop = await kakao_shop(make_client)
    customer, _ = await shop.customer()
    job = await done_job(shop.db, shop.config, shop.id, customer, shop.now)
    await settled(shop.app)
    shop.clock.advance(days=7)
    texts_ = shop.app[keys.SERVICES].texts
    sent = await send_due_steps(shop.db, {shop.id: shop.config}, texts_, "http://x", shop.now)
    assert sent["sent"] == 1
    (survey,) = [
        m for m in await rows(shop.client, Message) if m.payload.get("journey") == "survey"
    ]
    assert (survey.path, survey.status) == ("mailbox", "held")

    _, answer = await post(shop.client, said("안녕하세요"))
    outputs = texts(answer)  # the completion summary held before it, then the survey
    assert any("어떠셨나요?" in text for text in outputs), outputs
    labels = [q["label"] for q in answer["template"]["quickReplies"]]
    assert labels == ["1점", "2점", "3점", "4점", "5점"]

    _, answer = await post(shop.client, quick_reply("4점"))
    (recorded,) = await answers(shop.db)
    assert (recorded.job_id, recorded.score) == (job, 4)
