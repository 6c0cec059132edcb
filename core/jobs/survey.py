"""The customer's score for a job: recorded once per job, and what a score sets going.

However it comes — a chat answer (bot/inbound/awaited.py), the survey page (bot/survey/)
or the owner typing it in — a score is recorded by `record_answer`: one row per job (a
later answer replaces an earlier one, and the audit says from → to), the survey's
reminder cancelled, and the thanks with the shop's review links planned at once. The
review step goes to everyone, whatever the score: no review gating.

A score of `shop.journey.low_score` or less is a complaint (`is_low`): the customer's
conversation is flagged with its deadline (core/complaints.py), the customer is told the
owner will call (`survey_low_score`) and the owner is told at once (`low_score_notices`)
and again before the deadline (scheduler/planners/complaint_deadline.py). A chat answer
gets those through the inbound path's own stages (the apology is its in-band reply);
`record_score` is the whole of it as a unit, for the page and the console.

The survey page's link carries a secret whose SHA-256 is the step's `token_hash`
(`new_link_token`, `survey_url`): the link is the customer's only key to the page.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import cast

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection

from core.complaints import open_complaint
from core.config import ShopConfig
from core.jobs.awaiting import stop_awaiting
from core.jobs.booking import JobChanged, JobNotFound, cancel_steps, plan_steps
from core.jobs.lifecycle import JobError
from core.jobs.steps import PlannedStep
from core.models import AuditEntry, Conversation, Job, Message, SurveyAnswer
from core.notices import owner_notices
from core.outbox import OutboxRequest, enqueue, enqueue_many
from core.replies import ALIMTALK, NoPath, addresses_of, choose_path
from core.texts import Texts
from core.writer import after_commit

ANSWERS = cast(sa.Table, SurveyAnswer.__table__)
JOBS = cast(sa.Table, Job.__table__)

SCORES = range(1, 6)
COMMENT_MAX = 500
CHANNELS = ("kakao", "sms", "simulator", "web", "console")
LINK_PATH = "/s/"


@dataclass(frozen=True)
class ScoreAnswer:
    """A score for a job, as it came. `customer_id`, when given, must be the job's (a chat
    answer names who wrote); `actor` defaults to that customer."""

    shop_id: int
    job_id: int
    score: int
    channel: str  # kakao | sms | simulator | web | console
    comment: str | None = None
    customer_id: int | None = None
    actor: str | None = None

    def __post_init__(self) -> None:
        if self.score not in SCORES:
            raise JobError("점수는 1점에서 5점 사이로 골라 주세요")
        if self.channel not in CHANNELS:
            raise ValueError(f"channel must be one of {CHANNELS}, got {self.channel!r}")
        if self.comment is not None and len(self.comment) > COMMENT_MAX:
            raise JobError(f"의견은 {COMMENT_MAX}자까지 적을 수 있어요")


@dataclass(frozen=True)
class Recorded:
    """What `record_answer` wrote, and what the caller needs for the rest."""

    job_id: int
    customer_id: int
    conversation_id: int | None  # the job's
    service_name: str
    score: int
    previous: int | None  # the score it replaced
    low: bool  # a complaint (score ≤ shop.journey.low_score)
    changed: bool = True  # False: the same score and words again (a double tap), not news


def is_low(shop: ShopConfig, score: int) -> bool:
    return score <= shop.journey.low_score


def record_answer(
    conn: Connection, shop: ShopConfig, answer: ScoreAnswer, now: datetime
) -> Recorded:
    """Record the score (inside the caller's unit). Raises JobNotFound (no such job in the
    shop, or not this customer's) or JobError (the job is not done) before writing."""
    job = conn.execute(
        sa.select(
            JOBS.c.customer_id, JOBS.c.conversation_id, JOBS.c.status, JOBS.c.service_name
        ).where(JOBS.c.id == answer.job_id, JOBS.c.shop_id == answer.shop_id)
    ).first()
    if job is None or answer.customer_id not in (None, job.customer_id):
        raise JobNotFound(answer.job_id)
    if job.status != "done":
        raise JobError("끝난 작업에만 만족도를 남길 수 있어요")
    before = conn.execute(
        sa.select(ANSWERS.c.score, ANSWERS.c.comment).where(ANSWERS.c.job_id == answer.job_id)
    ).first()
    comment = (answer.comment or "").strip() or None
    recorded = Recorded(
        job_id=answer.job_id,
        customer_id=int(job.customer_id),
        conversation_id=job.conversation_id,
        service_name=job.service_name,
        score=answer.score,
        previous=before.score if before is not None else None,
        low=is_low(shop, answer.score),
    )
    if before is not None and (before.score, before.comment) == (answer.score, comment):
        return replace(recorded, changed=False)
    values = {
        "score": answer.score,
        "comment": comment,
        "channel": answer.channel,
        "answered_at": now,
    }
    insert = (pg_insert if conn.dialect.name == "postgresql" else sqlite_insert)(ANSWERS).values(
        shop_id=answer.shop_id,
        job_id=answer.job_id,
        customer_id=job.customer_id,
        created_at=now,
        **values,
    )
    # Two answers at once (two processes) are still one row: the later one wins.
    conn.execute(insert.on_conflict_do_update(index_elements=["job_id"], set_=values))

    detail: dict[str, object] = {"to": answer.score, "channel": answer.channel}
    if before is not None:
        detail["from"] = before.score
        if before.comment:
            detail["previous_comment"] = before.comment
    conn.execute(
        sa.insert(AuditEntry).values(
            shop_id=answer.shop_id,
            actor=answer.actor or f"customer:{job.customer_id}",
            action="survey_answer_changed" if before is not None else "survey_answered",
            subject=f"job:{answer.job_id}",
            detail=detail,
            created_at=now,
        )
    )
    # Answered: no survey still to send (the owner may type a score in before it goes),
    # no reminder; the thanks and review links at once.
    cancel_steps(
        conn,
        answer.shop_id,
        answer.job_id,
        "고객이 만족도에 답했어요",
        now,
        steps=("survey", "survey_reminder"),
    )
    review = PlannedStep("review", "review", now, {"score": answer.score})
    plan_steps(conn, answer.shop_id, answer.job_id, job.customer_id, [review], now)
    stop_awaiting(conn, job.customer_id, "survey", answer.job_id)
    after_commit(JobChanged(answer.shop_id, answer.job_id, "survey_answered"))
    return recorded


def low_score_notices(
    shop: ShopConfig,
    texts: Texts,
    shop_id: int,
    *,
    job_id: int,
    customer_id: int,
    service: str,
    score: int,
    conversation_id: int | None,
    comment: str | None,
    now: datetime,
) -> list[OutboxRequest]:
    """The owner's notice of a low score, once per job and score (a double submit is one
    notice; a changed low score is news)."""
    label = f"고객 #{customer_id}"
    text = texts.render(
        "owner_low_score",
        shop=shop,
        customer_label=label,
        score=score,
        service=service,
        comment=comment or "",
    )
    return owner_notices(
        shop,
        shop_id,
        conversation_id,
        text=text,
        kind=f"만족도 {score}점",
        customer_label=label,
        content=f"{service} {comment or ''}".strip(),
        key=lambda provider: f"survey-low:{provider}:{job_id}:{score}",
        now=now,
    )


def record_score(
    shop: ShopConfig, texts: Texts, answer: ScoreAnswer, now: datetime
) -> Callable[[Connection], Recorded]:
    """A unit: record a score that did not come as a chat message (the survey page, the
    console) and do what it sets going — for a low score the complaint, the apology by
    the customer's channel and the owner's notice. The answer is noted in the
    conversation, so the owner reads it where they talk to the customer."""

    def unit(conn: Connection) -> Recorded:
        recorded = record_answer(conn, shop, answer, now)
        if not recorded.changed:
            return recorded
        conversation_id = recorded.conversation_id
        if recorded.low:
            conversation_id = open_complaint(
                conn,
                shop,
                answer.shop_id,
                recorded.customer_id,
                now,
                prefer=recorded.conversation_id,
            )
            if conversation_id is not None:
                apology = texts.render("survey_low_score", shop=shop)
                _tell_customer(
                    conn,
                    shop,
                    answer.shop_id,
                    conversation_id,
                    apology,
                    f"survey-apology:{recorded.job_id}",
                    now,
                )
            enqueue_many(
                conn,
                low_score_notices(
                    shop,
                    texts,
                    answer.shop_id,
                    job_id=recorded.job_id,
                    customer_id=recorded.customer_id,
                    service=recorded.service_name,
                    score=recorded.score,
                    conversation_id=conversation_id,
                    comment=answer.comment,
                    now=now,
                ),
            )
        if conversation_id is not None:
            _note_answer(conn, answer, recorded, conversation_id, now)
        return recorded

    return unit


def _note_answer(
    conn: Connection, answer: ScoreAnswer, recorded: Recorded, conversation_id: int, now: datetime
) -> None:
    """A system line in the conversation: "만족도 2점(설문 페이지) · 의견: …"."""
    where = {"web": "설문 페이지", "console": "사장님 입력"}.get(answer.channel, answer.channel)
    body = f"만족도 {recorded.score}점({where})"
    if recorded.previous is not None:
        body += f" · 이전 {recorded.previous}점에서 바뀜"
    comment = (answer.comment or "").strip()
    if comment:
        body += f" · 의견: {comment}"
    channel = conn.execute(
        sa.select(Conversation.channel).where(Conversation.id == conversation_id)
    ).scalar_one()
    conn.execute(
        sa.insert(Message).values(
            shop_id=answer.shop_id,
            conversation_id=conversation_id,
            customer_id=recorded.customer_id,
            direction="note",
            sender="system",
            channel=channel,
            body=body,
            payload={"event": "survey_answer", "job_id": recorded.job_id, "score": recorded.score},
            status="delivered",
            created_at=now,
            delivered_at=now,
        )
    )


def _tell_customer(
    conn: Connection,
    shop: ShopConfig,
    shop_id: int,
    conversation_id: int,
    text: str,
    key: str,
    now: datetime,
) -> None:
    """A bot message to the customer by their channel's reply path (core/replies.py),
    stored in the conversation; `key` makes it once however often asked."""
    taken = conn.execute(
        sa.select(Message.id).where(Message.shop_id == shop_id, Message.idempotency_key == key)
    ).first()
    if taken is not None:
        return
    conv = conn.execute(
        sa.select(Conversation.channel, Conversation.customer_id).where(
            Conversation.id == conversation_id
        )
    ).one()
    to = addresses_of(conn, conv.customer_id)
    row = {
        "shop_id": shop_id,
        "conversation_id": conversation_id,
        "customer_id": conv.customer_id,
        "direction": "out",
        "sender": "bot",
        "channel": conv.channel,
        "body": text,
        "payload": {"handler": "survey_low_score"},
        "idempotency_key": key,
        "created_at": now,
    }
    try:
        path = choose_path(conv.channel, shop.delivery, to)
    except NoPath as exc:
        conn.execute(sa.insert(Message).values(**row, status="failed", error=str(exc)))
        return
    status = {"mailbox": "held", "simulator": "delivered"}.get(path.name, "queued")
    message_id = conn.execute(
        sa.insert(Message)
        .values(
            **row,
            status=status,
            path=path.name,
            delivered_at=now if status == "delivered" else None,
        )
        .returning(Message.id)
    ).scalar_one()
    if path.provider_key is None:  # the mailbox or the simulator: nothing to send
        return
    enqueue(
        conn,
        OutboxRequest(
            shop_id=shop_id,
            purpose="reply",
            provider=shop.delivery.provider_for(path.provider_key) or "",
            recipient={
                "phone": to.phone,
                "kakao_user_key": to.kakao_key if path.needs == "kakao" else None,
                "kakao_key_type": to.kakao_key_type if path.needs == "kakao" else None,
            },
            payload={
                "text": text,
                "path": path.name,
                **({"template": shop.delivery.alimtalk_template} if path is ALIMTALK else {}),
            },
            idempotency_key=key,
            now=now,
            message_id=message_id,
            customer_id=conv.customer_id,
        ),
    )


# --------------------------------------------------------------------------- the link


def token_hash(token: str) -> str:
    """What is stored of a link's secret (journey_steps.token_hash)."""
    return hashlib.sha256(token.encode()).hexdigest()


def new_link_token() -> tuple[str, str]:
    """A new survey link's secret (256 random bits) and its hash, for the step's row."""
    token = secrets.token_urlsafe(32)
    return token, token_hash(token)


def survey_url(public_url: str, token: str) -> str:
    """The survey page's address for a link secret: "https://shop.example/s/<token>"."""
    return f"{public_url.rstrip('/')}{LINK_PATH}{token}"
