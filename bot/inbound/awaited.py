"""Answers the shop awaited: a score for the satisfaction check the customer was sent, or
a reply (확인 / 일정 변경) to the reminder of a visit still to happen.

The sender of the survey or reminder marked the customer (core/jobs/awaiting.py); the mark
came with the customer's address in the batch's first look-up, so a message from anyone
unmarked — nearly every message — costs nothing here. A marked customer's message that
reads as the awaited answer is recorded before the handlers run (`take_answers`): the
score through `core.jobs.record_answer`, the reply through `core.jobs.note_reminder_answer`,
the owner told of a low score or a change request. It is still stored and shown as every
message is; `answer_reply` is what the customer is answered instead of the handlers' words.
A message that is not the answer is an ordinary message, and the mark stays until it
expires. An answer is taken once: the customer's next message is a message again.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from bot.inbound.batch import Answer, Received
from bot.routing import Context, Reply
from core.jobs import (
    JobError,
    JobNotFound,
    ScoreAnswer,
    low_score_notices,
    note_reminder_answer,
    parse_reminder_answer,
    parse_score,
    record_answer,
    stop_awaiting,
)
from core.jobs.awaiting import CHANGE_REQUESTED, read_mark
from core.models import Job
from core.notices import owner_notices
from core.outbox import OutboxRequest, enqueue_many
from core.texts import Texts

STILL_TO_HAPPEN = ("booked", "on_the_way")


def take_answers(conn: Connection, new: list[Received], texts: Texts) -> None:
    """Record the awaited answers among `new`, in order; set each one's `answer`."""
    notices: list[OutboxRequest] = []
    for m in new:
        t = m.thread
        if t.awaiting is None:
            continue
        awaited = read_mark(t.awaiting, t.awaiting_until, m.arrival.received_at)
        if awaited is None:
            continue
        what, job_id = awaited
        record = _score if what == "survey" else _reminder_reply
        answer = record(conn, m, job_id)
        if answer is None:
            continue
        t.awaiting = None  # taken: the customer's next message here is a message again
        m.answer = answer
        notices += _owner_notices(m, answer, texts)
    enqueue_many(conn, notices)


def _score(conn: Connection, m: Received, job_id: int) -> Answer | None:
    a = m.arrival
    score = parse_score(a.text)
    if score is None:
        return None
    answer = ScoreAnswer(a.shop_id, job_id, score, a.channel, customer_id=m.customer_id)
    try:
        recorded = record_answer(conn, a.shop, answer, a.received_at)
    except (JobNotFound, JobError):  # refused before writing: then it is just a message,
        _forget(conn, m, "survey", job_id)  # and the mark a stale one
        return None
    return Answer("survey", job_id, recorded.service_name, score=score, low=recorded.low)


def _reminder_reply(conn: Connection, m: Received, job_id: int) -> Answer | None:
    a = m.arrival
    reply = parse_reminder_answer(a.text)
    if reply is None:
        return None
    job = conn.execute(
        sa.select(Job.customer_id, Job.status, Job.service_name, Job.starts_at, Job.ends_at).where(
            Job.id == job_id, Job.shop_id == a.shop_id
        )
    ).first()
    if job is None or job.customer_id != m.customer_id or job.status not in STILL_TO_HAPPEN:
        # The visit is over or off: nothing awaits an answer any more.
        _forget(conn, m, "reminder", job_id)
        return None
    note_reminder_answer(a.shop_id, job_id, reply, a.received_at)(conn)
    stop_awaiting(conn, m.customer_id, "reminder", job_id)
    return Answer(
        "reminder",
        job_id,
        job.service_name,
        reply=reply,
        starts_at=job.starts_at,
        ends_at=job.ends_at,
    )


def _forget(conn: Connection, m: Received, what: str, job_id: int) -> None:
    """A mark for a job that cannot be answered for (gone, off, not the customer's)."""
    stop_awaiting(conn, m.customer_id, what, job_id)
    m.thread.awaiting = None


def _owner_notices(m: Received, answer: Answer, texts: Texts) -> list[OutboxRequest]:
    """A low score and a change request reach the owner at once; the rest is news only in
    the conversation."""
    a = m.arrival
    if answer.what == "survey" and answer.low:
        assert answer.score is not None
        return low_score_notices(
            a.shop,
            texts,
            a.shop_id,
            job_id=answer.job_id,
            customer_id=m.customer_id,
            service=answer.service,
            score=answer.score,
            conversation_id=m.conversation_id,
            comment=None,
            now=a.received_at,
        )
    if answer.reply == CHANGE_REQUESTED:
        assert answer.starts_at is not None
        label = f"고객 #{m.customer_id}"
        text = texts.render(
            "owner_change_request",
            shop=a.shop,
            customer_label=label,
            service=answer.service,
            starts_local=answer.starts_at.astimezone(a.shop.timezone),
        )
        return owner_notices(
            a.shop,
            a.shop_id,
            m.conversation_id,
            text=text,
            kind="일정 변경 요청",
            customer_label=label,
            content=a.text,
            key=lambda provider: f"reminder-answer:{provider}:{m.id}",
            now=a.received_at,
        )
    return []


def answer_reply(m: Received, ctx: Context) -> Reply:
    """What the customer is answered, and what the answer does to the conversation: a low
    score opens a complaint (the deadline and the inbox badge, as a complaint keyword
    does); a change request waits for the owner. Set on `ctx.effects`."""
    answer = m.answer
    assert answer is not None
    values: dict[str, Any]
    if answer.what == "survey":
        if answer.low:
            ctx.effects.complaint = True
            return _reply(ctx, "survey_low_score", "survey")
        if m.arrival.channel == "sms":
            m.silent = True  # the thanks with the review links is the next text: one is enough
        return _reply(ctx, "survey_received", "survey", score=answer.score)
    assert answer.starts_at is not None
    assert answer.ends_at is not None
    zone = ctx.shop.timezone
    values = {
        "answer": answer.reply,
        "service": answer.service,
        "starts_local": answer.starts_at.astimezone(zone),
        "ends_local": answer.ends_at.astimezone(zone),
    }
    if answer.reply == CHANGE_REQUESTED:
        ctx.effects.wait_for_owner = True
    return _reply(ctx, "reminder_answer", "reminder", **values)


def _reply(ctx: Context, template: str, handler: str, **values: Any) -> Reply:
    reply = ctx.reply(template, **values)
    return Reply(reply.texts, reply.quick_replies, handler)
