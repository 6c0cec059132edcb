"""A score for a job: recorded once per job (a later one replaces it, audit-logged), the
survey's reminder cancelled, the thanks with the review links planned for every score, and
a low score opening a complaint with an apology to the customer and a notice to the owner.
Also the readers of a chat answer: what is a score, what is a reply to the reminder."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from conftest import kst, make_settings, shop_table
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy.engine import Connection
from support.jobs import add_customer, book_job, steps
from support.outbox import add_shop
from support.survey import answers, awaiting, done_job, survey_sent

from core.config import ShopConfig
from core.db import Database
from core.jobs import (
    JobError,
    JobNotFound,
    ScoreAnswer,
    await_answer,
    new_link_token,
    parse_reminder_answer,
    parse_score,
    record_score,
    survey_url,
    token_hash,
)
from core.jobs.awaiting import read_mark
from core.models import AuditEntry, Conversation, Message, OutboxItem
from core.texts import Texts

# SMS customers answered by the fake provider; the owner hears by the console.
SHOP = make_settings(shops=[shop_table(delivery={"sms": "fake"})], providers={"fake": {}}).shops[0]
TEXTS = Texts()
DONE = kst(2026, 11, 23, 16, 0)
LATER = DONE + timedelta(days=8)


async def _setup(
    database: Database, shop: ShopConfig = SHOP, **customer: Any
) -> tuple[int, int, int, int]:
    """(shop id, customer id, conversation id, job id): a job done at DONE."""
    shop_id = await add_shop(database, DONE - timedelta(days=2))
    customer_id, conversation_id = await add_customer(
        database, shop_id, DONE - timedelta(days=2), **customer
    )
    job = await done_job(database, shop, shop_id, customer_id, DONE)
    return shop_id, customer_id, conversation_id, job


async def _score(
    database: Database,
    shop_id: int,
    job: int,
    score: int,
    *,
    comment: str | None = None,
    at: Any = LATER,
    channel: str = "web",
    shop: ShopConfig = SHOP,
) -> Any:
    answer = ScoreAnswer(shop_id, job, score, channel, comment=comment)
    return await database.write(record_score(shop, TEXTS, answer, at))


async def _all(database: Database, model: Any) -> list[Any]:
    async with database.read() as conn:
        return list((await conn.execute(sa.select(model).order_by(model.id))).all())


def _by_key(rows: list[sa.RowMapping]) -> dict[str, sa.RowMapping]:
    return {r["key"]: r for r in rows}


async def test_a_score_is_recorded_with_an_audit_entry_and_the_review_planned_at_once(
    database: Database,
) -> None:
    shop_id, customer, conversation, job = await _setup(database)
    recorded = await _score(database, shop_id, job, 5, comment="  깔끔하게 해주셨어요  ")
    assert (recorded.score, recorded.previous, recorded.low) == (5, None, False)

    (row,) = await answers(database)
    assert (row.job_id, row.customer_id, row.score, row.channel) == (job, customer, 5, "web")
    assert row.comment == "깔끔하게 해주셨어요"
    assert row.answered_at == LATER

    planned = _by_key(await steps(database, job))
    assert planned["survey"]["status"] == "cancelled"
    assert planned["survey_reminder"]["status"] == "cancelled"
    assert planned["survey_reminder"]["reason"] == "고객이 만족도에 답했어요"
    review = planned["review"]
    assert (review["status"], review["due_at"], review["kind"]) == ("planned", LATER, "info")
    assert review["payload"] == {"score": 5}

    audit = [a for a in await _all(database, AuditEntry) if a.action.startswith("survey")]
    assert [(a.action, a.subject, a.actor) for a in audit] == [
        ("survey_answered", f"job:{job}", f"customer:{customer}")
    ]
    assert audit[0].detail == {"to": 5, "channel": "web"}

    # The owner reads it in the conversation; a good score is no complaint and no notice.
    notes = [m for m in await _all(database, Message) if m.direction == "note"]
    assert [n.body for n in notes] == ["만족도 5점(설문 페이지) · 의견: 깔끔하게 해주셨어요"]
    assert notes[0].conversation_id == conversation
    assert notes[0].channel == "sms"
    (conv,) = await _all(database, Conversation)
    assert not conv.complaint
    assert await _all(database, OutboxItem) == []


async def test_a_later_answer_replaces_the_earlier_one_and_the_audit_says_from_to(
    database: Database,
) -> None:
    shop_id, _, _, job = await _setup(database)
    await _score(database, shop_id, job, 2, comment="늦게 오셨어요")
    recorded = await _score(database, shop_id, job, 4, at=LATER + timedelta(hours=1))
    assert (recorded.score, recorded.previous) == (4, 2)

    (row,) = await answers(database)
    assert (row.score, row.comment, row.answered_at) == (4, None, LATER + timedelta(hours=1))
    assert row.created_at == LATER  # when it was first answered
    changed = [a for a in await _all(database, AuditEntry) if a.action == "survey_answer_changed"]
    assert [a.detail for a in changed] == [
        {"from": 2, "to": 4, "channel": "web", "previous_comment": "늦게 오셨어요"}
    ]
    # The thanks went (is planned) once, however often the customer answers.
    assert [s["key"] for s in await steps(database, job)].count("review") == 1


@pytest.mark.parametrize("score", [1, 2, 3, 4, 5])
async def test_every_score_gets_the_thanks_and_review_links(database: Database, score: int) -> None:
    shop_id, _, _, job = await _setup(database)
    await _score(database, shop_id, job, score)
    review = _by_key(await steps(database, job))["review"]
    assert review["status"] == "planned"  # no review gating: the unhappy ones too


async def test_a_low_score_opens_a_complaint_apologises_and_tells_the_owner(
    database: Database,
) -> None:
    shop_id, customer, conversation, job = await _setup(database)
    recorded = await _score(database, shop_id, job, 2, comment="물이 또 새요")
    assert recorded.low

    (conv,) = await _all(database, Conversation)
    assert conv.complaint
    assert conv.complaint_due_at == LATER + timedelta(hours=24)

    outbox = await _all(database, OutboxItem)
    apology = [o for o in outbox if o.purpose == "reply"]
    notice = [o for o in outbox if o.purpose == "owner_notification"]
    assert [o.payload["text"] for o in apology] == [
        "[한빛설비] 불편을 드려 죄송해요. 사장님이 24시간 안에 직접 연락드릴게요."
    ]
    assert (apology[0].provider, apology[0].recipient["phone"]) == ("fake", "+821055556666")
    assert apology[0].customer_id == customer
    assert apology[0].not_before == LATER  # at once
    (sent,) = [m for m in await _all(database, Message) if m.direction == "out"]
    assert (sent.sender, sent.status, sent.path, sent.conversation_id) == (
        "bot",
        "queued",
        "sms",
        conversation,
    )
    assert apology[0].message_id == sent.id

    assert [o.provider for o in notice] == ["console"]
    assert notice[0].payload["text"] == (
        f'[단골] 만족도 2점 · 불만 접수(24시간 내 연락) · 고객 #{customer} 에어컨 청소: "물이 또 새요"'
    )
    assert notice[0].payload["conversation_id"] == conversation


async def test_the_same_low_score_twice_apologises_and_notifies_once(database: Database) -> None:
    shop_id, _, _, job = await _setup(database)
    await _score(database, shop_id, job, 1)
    again = await _score(database, shop_id, job, 1, at=LATER + timedelta(minutes=1))  # a double tap
    assert not again.changed
    outbox = await _all(database, OutboxItem)
    assert sorted(o.purpose for o in outbox) == ["owner_notification", "reply"]
    audit = [a.action for a in await _all(database, AuditEntry) if a.action.startswith("survey")]
    assert audit == ["survey_answered"]  # the same answer again is not news
    assert len([m for m in await _all(database, Message) if m.direction == "note"]) == 1
    (row,) = await answers(database)
    assert row.answered_at == LATER
    # A low score changed to another low score is news for the owner, not a second apology.
    await _score(database, shop_id, job, 3, at=LATER + timedelta(minutes=2))
    outbox = await _all(database, OutboxItem)
    assert sorted(o.purpose for o in outbox) == ["owner_notification"] * 2 + ["reply"]


async def test_an_open_complaint_keeps_its_deadline(database: Database) -> None:
    shop_id, _, conversation, job = await _setup(database)
    earlier = LATER - timedelta(hours=5)

    def complain(conn: Connection) -> None:
        conn.execute(
            sa.update(Conversation)
            .where(Conversation.id == conversation)
            .values(complaint=True, complaint_due_at=earlier + timedelta(hours=24))
        )

    await database.write(complain)
    await _score(database, shop_id, job, 1)
    (conv,) = await _all(database, Conversation)
    assert conv.complaint_due_at == earlier + timedelta(hours=24)


async def test_a_low_score_opens_the_resolved_conversation_again(database: Database) -> None:
    shop_id, _, conversation, job = await _setup(database)

    def resolve(conn: Connection) -> None:
        conn.execute(
            sa.update(Conversation)
            .where(Conversation.id == conversation)
            .values(
                status="resolved",
                resolved_at=DONE,
                complaint=True,  # an old complaint, long settled
                complaint_due_at=DONE - timedelta(days=30),
            )
        )

    await database.write(resolve)
    await _score(database, shop_id, job, 2)
    (conv,) = await _all(database, Conversation)
    assert (conv.status, conv.resolved_at, conv.complaint) == ("open", None, True)
    assert conv.complaint_due_at == LATER + timedelta(hours=24)  # a new deadline


async def test_a_customer_without_a_conversation_still_reaches_the_owner(
    database: Database,
) -> None:
    shop_id, _, conversation, job = await _setup(database)

    def forget(conn: Connection) -> None:  # booked by phone: never wrote
        from core.models import Job

        conn.execute(sa.update(Job).where(Job.id == job).values(conversation_id=None))
        conn.execute(sa.delete(Conversation).where(Conversation.id == conversation))

    await database.write(forget)
    await _score(database, shop_id, job, 1)
    outbox = await _all(database, OutboxItem)
    assert [o.purpose for o in outbox] == ["owner_notification"]
    assert outbox[0].payload["conversation_id"] is None


async def test_the_shops_low_score_setting_decides(database: Database) -> None:
    strict = make_settings(
        shops=[shop_table(delivery={"sms": "fake"}, journey={"low_score": 4})],
        providers={"fake": {}},
    ).shops[0]
    shop_id, _, _, job = await _setup(database, strict)
    recorded = await _score(database, shop_id, job, 4, shop=strict)
    assert recorded.low
    recorded = await _score(database, shop_id, job, 5, shop=strict, at=LATER + timedelta(hours=1))
    assert not recorded.low


async def test_answering_clears_the_customers_awaited_survey(database: Database) -> None:
    shop_id, customer, _, job = await _setup(database)
    await survey_sent(database, shop_id, job, customer, LATER - timedelta(days=1))
    assert read_mark(*await awaiting(database, customer), LATER) == ("survey", job)
    await _score(database, shop_id, job, 5)
    assert await awaiting(database, customer) == (None, None)


async def test_answering_leaves_another_awaited_answer_alone(database: Database) -> None:
    shop_id, customer, _, job = await _setup(database)
    other = await book_job(
        database, SHOP, shop_id, customer, LATER - timedelta(days=1), starts_at=LATER + timedelta(1)
    )

    def reminded(conn: Connection) -> None:
        await_answer(conn, customer, "reminder", other, LATER + timedelta(days=1))

    await database.write(reminded)
    await _score(database, shop_id, job, 5)
    assert (await awaiting(database, customer))[0] == f"reminder:{other}"


async def test_refused_scores_change_nothing(database: Database) -> None:
    shop_id, customer, _, job = await _setup(database)
    not_done = await book_job(database, SHOP, shop_id, customer, DONE, starts_at=LATER)
    with pytest.raises(JobError, match="끝난 작업"):
        await _score(database, shop_id, not_done, 5)
    with pytest.raises(JobNotFound):
        await _score(database, shop_id + 1, job, 5)  # another shop's job is not found
    stranger = ScoreAnswer(shop_id, job, 5, "kakao", customer_id=customer + 1)
    with pytest.raises(JobNotFound):  # a chat answer names who wrote: must be the job's
        await database.write(record_score(SHOP, TEXTS, stranger, LATER))
    with pytest.raises(JobError, match="1점에서 5점"):
        ScoreAnswer(shop_id, job, 6, "web")
    with pytest.raises(JobError, match="500자"):
        ScoreAnswer(shop_id, job, 5, "web", comment="가" * 501)
    assert await answers(database) == []


# --------------------------------------------------------------------------- the link


def test_a_link_secret_is_stored_only_as_its_hash() -> None:
    token, hashed = new_link_token()
    assert len(token) == 43
    assert hashed == token_hash(token) != token
    assert len(hashed) == 64
    assert new_link_token()[0] != token
    assert survey_url("https://shop.example/", token) == f"https://shop.example/s/{token}"


# --------------------------------------------------------------------------- reading answers


@pytest.mark.parametrize(
    ("text", "score"),
    [
        ("5", 5),
        ("１", 1),
        ("５", 5),  # full width
        ("5점", 5),
        (" 5 ", 5),
        ("5점이요", 5),
        ("5 점이요!", 5),
        ("4점요", 4),
        ("3점 드려요~", 3),
        ("⑤", 5),  # a circled digit is a digit once folded
        ("2점", 2),  # the Kakao quick reply
        ("1.", 1),
        ("10", None),
        ("0", None),
        ("6", None),
        ("0점", None),
        ("-1", None),
        ("5분 뒤에 전화주세요", None),
        ("3시에 와주세요", None),
        ("5점 만점에 5점", None),
        ("5점?", None),
        ("55", None),
        ("5 5", None),
        ("5점이요 근데 물이 새요", None),
        ("", None),
        ("점", None),
        ("오점", None),
        ("확인", None),
    ],
)
def test_what_is_a_score(text: str, score: int | None) -> None:
    assert parse_score(text) == score


FULL_WIDTH = {str(d): chr(0xFF10 + d) for d in range(10)}
CIRCLED = {str(d): chr(0x2460 + d - 1) for d in range(1, 10)}


@given(
    score=st.integers(1, 5),
    digit=st.sampled_from(["plain", "full", "circled"]),
    unit=st.sampled_from(["", "점", " 점"]),
    ending=st.sampled_from(["", "이요", "요", "입니다", "드려요"]),
    marks=st.sampled_from(["", "!", ".", "~~", "!!"]),
    pad=st.sampled_from(["", " ", "  ", "\t", "\n"]),
)
def test_every_spelling_of_a_score_reads_as_that_score(
    score: int, digit: str, unit: str, ending: str, marks: str, pad: str
) -> None:
    d = str(score)
    d = {"plain": d, "full": FULL_WIDTH[d], "circled": CIRCLED[d]}[digit]
    assert parse_score(f"{pad}{d}{unit}{ending}{marks}{pad}") == score


@given(st.integers().filter(lambda n: not 1 <= n <= 5), st.sampled_from(["", "점"]))
def test_no_other_number_is_a_score(n: int, unit: str) -> None:
    assert parse_score(f"{n}{unit}") is None


@given(st.text(max_size=40))
def test_anything_reads_as_one_score_at_most_and_only_with_that_digit(text: str) -> None:
    import unicodedata

    score = parse_score(text)
    if score is not None:
        digits = [c for c in unicodedata.normalize("NFKC", text) if c.isdigit()]
        assert digits == [str(score)]


@given(st.text(alphabet=st.characters(codec="utf-8"), min_size=1, max_size=8), st.integers(1, 5))
def test_words_around_a_digit_make_it_a_message(words: str, score: int) -> None:
    # Whatever else is said with the digit, unless it is the polite ending itself.
    text = f"{score}점 {words} 와주세요"
    assert parse_score(text) is None


@pytest.mark.parametrize(
    ("text", "answer"),
    [
        ("확인", "confirmed"),
        ("1", "confirmed"),
        ("１", "confirmed"),
        ("확인했어요!", "confirmed"),
        ("네 확인", "confirmed"),
        ("일정 변경", "change_requested"),
        ("일정변경", "change_requested"),
        ("변경", "change_requested"),
        ("2", "change_requested"),
        ("변경해 주세요", "change_requested"),
        ("3", None),
        ("내일 확인하고 연락드릴게요", None),
        ("일정 변경은 어떻게 하나요?", None),
        ("12", None),
        ("", None),
    ],
)
def test_what_is_a_reply_to_the_reminder(text: str, answer: str | None) -> None:
    assert parse_reminder_answer(text) == answer


def test_a_mark_is_read_until_it_expires() -> None:
    now = kst(2026, 12, 1, 10)
    assert read_mark("survey:12", now + timedelta(seconds=1), now) == ("survey", 12)
    assert read_mark("reminder:7", now + timedelta(days=1), now) == ("reminder", 7)
    assert read_mark("survey:12", now, now) is None  # expired
    assert read_mark(None, None, now) is None
    assert read_mark("survey:x", now + timedelta(days=1), now) is None
    assert read_mark("other:12", now + timedelta(days=1), now) is None
