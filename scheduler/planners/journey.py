"""The journey planner: each planned step of a job's journey goes when it is due, once.

A static tick (every 30 s, and woken after any commit that plans steps, so a confirmation
or an on-my-way goes within moments) runs `send_due_steps`. Each round is one unit on
the writer, set-based — a bounded batch of due steps and a fixed number of statements for
it (journey_reads.py, journey_writes.py), never one per job; rounds repeat while a batch
comes back full. For each due step, in order:

1. Is it pointless or too late (journey_rules.py)? A reminder once the visit has begun,
   any step of a cancelled job, a survey already answered or while a complaint is open …
   → skipped or cancelled with the reason, which the job page shows.
2. The send-time policy (scheduler/policy.py `decide`), with the customer's facts and the
   shop's courtesy hours and time zone → held (stays planned, due when it may go, with the
   reason) or dropped (with the reason).
3. Sent: its text rendered (journey_texts.py), its path chosen as the owner's reply's is
   (core/replies.py: Kakao Event API → AlimTalk, if the shop has a template for the step →
   SMS → mailbox; SMS; the simulator, delivered live), its message stored, its outbox row
   queued and the step marked sent — one transaction (journey_writes.py).

Any number of processes may run it at once: the batch is locked (PostgreSQL's SKIP
LOCKED), the claim is conditional on the step still being planned, and the outbox key
`journey:<key>:job:<id>` is unique per shop — every step is sent once.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from jinja2 import TemplateError
from sqlalchemy.engine import Connection

from core.config import ShopConfig
from core.db import Database
from core.jobs import STEPS, Awaited, JobChanged, new_link_token, survey_url
from core.replies import ALIMTALK, Addresses, NoPath, ReplyPath, choose_path
from core.texts import Texts
from core.writer import after_commit
from scheduler.planners.journey_reads import Due, Known, load_known, take_due
from scheduler.planners.journey_rules import (
    Postpone,
    Settle,
    Verdict,
    after_policy,
    judge,
    skipped,
)
from scheduler.planners.journey_texts import alimtalk_variables, compose
from scheduler.planners.journey_writes import Sending, send, settle
from scheduler.policy import Outgoing, decide, rules_for

log = logging.getLogger("dangol.journey")

BATCH = 200
MAX_ROUNDS = 50  # 10,000 steps a run; the next run takes the rest
TICK_SECONDS = 30.0
# A step whose text cannot be made (a broken override template) is tried again this much
# later, so the rest of its batch still goes and fixing the template sends it.
RENDER_RETRY = timedelta(hours=1)
_NOWHERE = Addresses()
SURVEY_STEPS = ("survey", "survey_reminder")
# Paths on which the customer answers by typing: no buttons reach them.
TYPED_PATHS = ("sms", "alimtalk")


@dataclass(frozen=True, slots=True)
class Round:
    taken: int
    outcomes: Counter[str]  # sent | skipped | cancelled | dropped | held


async def send_due_steps(
    database: Database,
    shops: Mapping[int, ShopConfig],
    texts: Texts,
    public_url: str,
    now: datetime,
    *,
    batch: int = BATCH,
) -> Counter[str]:
    """One run: every due step of these shops, a batch per round. Returns what became of
    them ("sent", "skipped", "cancelled", "dropped", "held")."""
    total: Counter[str] = Counter()
    if not shops:
        return total
    for _ in range(MAX_ROUNDS):
        found = await database.write(journey_round(shops, texts, public_url, now, batch))
        total.update(found.outcomes)
        if found.taken < batch:
            break
    if total:
        log.info("journey: %s", ", ".join(f"{k} {v}" for k, v in sorted(total.items())))
    return total


def journey_round(
    shops: Mapping[int, ShopConfig], texts: Texts, public_url: str, now: datetime, batch: int
) -> Callable[[Connection], Round]:
    """A unit: take a batch of due steps and settle, postpone or send each."""

    def unit(conn: Connection) -> Round:
        due = take_due(conn, shops, now, batch)
        if not due:
            return Round(0, Counter())
        known = load_known(conn, due)
        waiting: list[tuple[Due, Settle | Postpone]] = []
        sendings: list[Sending] = []
        for d in due:
            planned = plan(d, known, shops[d.shop_id], texts, public_url, now)
            if isinstance(planned, Sending):
                sendings.append(planned)
            else:
                waiting.append((d, planned))
        settle(conn, waiting, now)
        sent = send(conn, sendings, now)
        for job in sorted({(d.shop_id, d.job_id) for d in due}):
            after_commit(JobChanged(job[0], job[1], "journey"))
        outcomes: Counter[str] = Counter(
            v.status if isinstance(v, Settle) else "held" for _, v in waiting
        )
        outcomes["sent"] += len(sent)
        return Round(len(due), +outcomes)

    return unit


def plan(
    due: Due, known: Known, shop: ShopConfig, texts: Texts, public_url: str, now: datetime
) -> Sending | Settle | Postpone:
    """What becomes of one due step: (a) its own rules, (b) the policy, (c) its message."""
    if due.step not in STEPS:
        return skipped(f"알 수 없는 단계예요: {due.step}")
    verdict: Verdict = judge(due, known, shop, now)
    if verdict is not None:
        return verdict
    reach = where_to(due, known, shop)
    if isinstance(reach, Settle):
        return reach
    conversation_id, channel, path = reach
    token, token_hash = new_link_token() if due.step in SURVEY_STEPS else (None, None)
    link = survey_url(public_url, token) if token else ""
    try:
        composed = compose(
            texts, due, shop, known, link=link, digits=path.name in TYPED_PATHS, now=now
        )
    except TemplateError as exc:
        log.exception("journey: step %d (%s) could not be rendered", due.id, due.step)
        return Postpone(now + RENDER_RETRY, f"문구를 만들지 못했어요 ({exc})")
    message = Outgoing(
        kind="ad" if due.kind == "ad" else "info",
        urgent=STEPS[due.step].urgent,
        text=composed.text,
        service=due.service,
    )
    decision = decide(message, known.recipient(due.customer_id), rules_for(shop), now)
    verdict = after_policy(due, decision, now)
    if verdict is not None:
        return verdict
    to = known.addresses.get(due.customer_id) or _NOWHERE
    return Sending(
        due=due,
        conversation_id=conversation_id,
        channel=channel,
        path=path,
        provider=shop.delivery.provider_for(path.provider_key) if path.provider_key else None,
        to=to,
        composed=composed,
        alimtalk=alimtalk_variables(shop, due.step, composed.plain) if path is ALIMTALK else None,
        token_hash=token_hash,
        awaited=awaited(due, shop, now),
    )


def awaited(due: Due, shop: ShopConfig, now: datetime) -> Awaited | None:
    """What the customer owes once this step goes: a score for the survey (until the
    reminder would go, or as long again after the reminder), an answer to the day-before
    reminder (until the visit)."""
    if due.step in SURVEY_STEPS:
        return Awaited(
            due.customer_id,
            "survey",
            due.job_id,
            now + timedelta(days=shop.journey.survey_reminder_days),
        )
    if due.step == "reminder" and due.starts_at > now:
        return Awaited(due.customer_id, "reminder", due.job_id, due.starts_at)
    return None


def where_to(
    due: Due, known: Known, shop: ShopConfig
) -> tuple[int | None, str, ReplyPath] | Settle:
    """The conversation (None: open one), its channel and the path the step takes.

    The customer's conversation not resolved, where they talk now; else the job's own;
    else — a customer booked from the 고객 tab, who never wrote — a new SMS conversation
    when we have their phone."""
    to = known.addresses.get(due.customer_id) or _NOWHERE
    thread = known.current.get(due.customer_id)
    if thread is None and due.conversation_id is not None:
        thread = known.conversations.get(due.conversation_id)
    conversation_id, channel = (thread.id, thread.channel) if thread else (None, "sms")
    if thread is None and not to.phone:
        return skipped("고객에게 연락할 방법이 없어요 (대화도 전화번호도 없음)")
    path = journey_path(channel, shop, due.step, to)
    if path is None:
        return skipped(f"이 고객에게 보낼 경로가 설정되지 않았어요 ({channel})")
    return conversation_id, channel, path


def journey_path(channel: str, shop: ShopConfig, step: str, to: Addresses) -> ReplyPath | None:
    """The owner's reply's path (core/replies.py `choose_path`), where AlimTalk counts only
    with an approved template for this step; None when nothing can carry it."""
    skip = () if step in shop.journey.alimtalk else (ALIMTALK,)
    try:
        return choose_path(channel, shop.delivery, to, passing_over=skip)
    except NoPath:
        return None
