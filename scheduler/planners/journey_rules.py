"""When a due journey step is pointless, late past use, or must wait: pure rules, one place.

`judge` is asked for each due step before anything is rendered or sent. It answers
`Settle` (the step will not go: status skipped or cancelled, with the reason the job page
shows), `Postpone` (it stays planned, due later, with the reason) or None (it may go, if
the send-time policy agrees). `after_policy` adds what the policy cannot know: a reminder
held past the visit is pointless.

Late after downtime: a step whose moment passed while the server was down goes late only
while it still makes sense — `LATE_LIMITS` says how late each may be. A confirmation or an
on-my-way hours late reads as a mistake (the reminder or the owner at the door says it
better); aftercare and the satisfaction check are still welcome days late.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from core.config import ShopConfig
from scheduler.planners.journey_reads import Due, Known
from scheduler.policy import Decision, Drop, Hold

LATE_LIMITS: dict[str, timedelta] = {
    "confirmation": timedelta(hours=3),
    "reminder": timedelta(days=1),  # and never within REMINDER_LEAD of the visit
    "on_my_way": timedelta(hours=1),
    "photo": timedelta(hours=6),
    "completion": timedelta(days=2),
    "aftercare": timedelta(days=14),
    "survey": timedelta(days=14),
    "survey_reminder": timedelta(days=7),
    "review": timedelta(days=7),
    "gold_thanks": timedelta(days=7),
}
# A reminder this close to the visit is no reminder: the owner is about to ring the bell.
REMINDER_LEAD = timedelta(hours=1)
# Waiting out an open complaint, the step is looked at again this often …
COMPLAINT_RECHECK = timedelta(hours=1)
# … and given up once it has waited this long since it was planned.
COMPLAINT_PATIENCE = timedelta(days=30)
# A survey reminder whose survey has not gone yet looks again this much later.
SURVEY_PENDING_RECHECK = timedelta(days=1)

# Steps keyed by the job's schedule ("reminder:r2"): an older revision's is stale.
_REVISION = re.compile(r":r(\d+)$")
BEFORE_VISIT = ("confirmation", "reminder", "on_my_way")


@dataclass(frozen=True, slots=True)
class Settle:
    """The step will not go: `status` skipped, cancelled or dropped, and why."""

    status: str
    reason: str


@dataclass(frozen=True, slots=True)
class Postpone:
    """The step stays planned, due at `until`; `reason` says why it waits."""

    until: datetime
    reason: str


Verdict = Settle | Postpone | None


def skipped(reason: str) -> Settle:
    return Settle("skipped", reason)


def judge(due: Due, known: Known, shop: ShopConfig, now: datetime) -> Verdict:
    """Whether a due step still makes sense now, and if so whether it must wait."""
    if due.job_status in ("cancelled", "no_show"):
        label = "작업이 취소됐어요" if due.job_status == "cancelled" else "고객이 안 계셨어요(노쇼)"
        return Settle("cancelled", label)
    stale = _stale_revision(due)
    if stale is not None:
        return stale
    rule = _RULES.get(due.step)
    verdict = rule(due, known, shop, now) if rule is not None else None
    if verdict is not None:
        return verdict
    limit = LATE_LIMITS.get(due.step)
    if limit is not None and now - due.due_at > limit:
        return skipped(f"보낼 때를 {_late(now - due.due_at)} 넘겨 보내지 않았어요")
    return None


def after_policy(due: Due, decision: Decision, now: datetime) -> Verdict:
    """What the policy's answer means for the step: held → postponed (unless a reminder
    would then come too close to the visit), dropped → dropped with the policy's reason."""
    if isinstance(decision, Drop):
        return Settle("dropped", decision.reason)
    if isinstance(decision, Hold):
        if due.step == "reminder" and decision.until > due.starts_at - REMINDER_LEAD:
            return skipped("안내 시간이 되기 전에 방문 시각이 다가와 전날 알림은 건너뛰었어요")
        return Postpone(decision.until, decision.reason)
    return None


def _stale_revision(due: Due) -> Verdict:
    found = _REVISION.search(due.key)
    if found is None or int(found[1]) == due.revision:
        return None
    return skipped("일정이 바뀌어 새 일정의 안내로 대신했어요")


def _late(span: timedelta) -> str:
    if span >= timedelta(days=1):
        return f"{span.days}일 넘게"
    return f"{max(1, int(span.total_seconds() // 3600))}시간 넘게"


def _confirmation(due: Due, known: Known, shop: ShopConfig, now: datetime) -> Verdict:
    if due.job_status == "done":
        return skipped("작업이 이미 끝났어요")
    if due.job_status != "booked":
        return skipped("기사님이 이미 출발했어요")
    if now >= due.ends_at:
        return skipped("방문 시간이 이미 지났어요")
    return None


def _reminder(due: Due, known: Known, shop: ShopConfig, now: datetime) -> Verdict:
    if due.job_status not in ("booked", "on_the_way"):
        return skipped("방문이 이미 시작됐어요")
    if now > due.starts_at - REMINDER_LEAD:
        return skipped("방문 시각이 다가와 전날 알림은 건너뛰었어요")
    return None


def _on_my_way(due: Due, known: Known, shop: ShopConfig, now: datetime) -> Verdict:
    if due.job_status != "on_the_way":
        return skipped("이미 도착했거나 작업이 끝났어요")
    return None


def _photo(due: Due, known: Known, shop: ShopConfig, now: datetime) -> Verdict:
    photo_id = due.payload.get("photo_id")
    photo = known.photos.get(photo_id) if isinstance(photo_id, int) else None
    if photo is None or photo.job_id != due.job_id:
        return skipped("사진을 찾을 수 없어요")
    return None


def _waits_for_complaint(due: Due, what: str, now: datetime) -> Verdict:
    if now - due.created_at > COMPLAINT_PATIENCE:
        return skipped(f"불만이 한 달 넘게 처리 중이라 {what} 보내지 않았어요")
    return Postpone(now + COMPLAINT_RECHECK, f"불만 처리 중이라 {what} 해결된 뒤에 보낼게요")


def _aftercare(due: Due, known: Known, shop: ShopConfig, now: datetime) -> Verdict:
    if due.customer_id in known.complaints:
        return _waits_for_complaint(due, "관리 안내는", now)
    return None


def _survey(due: Due, known: Known, shop: ShopConfig, now: datetime) -> Verdict:
    if due.job_status != "done":
        return skipped("끝나지 않은 작업이에요")
    if due.job_id in known.answered:
        return skipped("고객이 이미 만족도를 알려주셨어요")
    if due.customer_id in known.complaints:
        return skipped("불만이 접수돼 있어 만족도 조사는 보내지 않았어요")
    return None


def _survey_reminder(due: Due, known: Known, shop: ShopConfig, now: datetime) -> Verdict:
    answered = _survey(due, known, shop, now)
    if answered is not None:
        return answered
    survey = known.surveys.get(due.job_id)
    wait = timedelta(days=shop.journey.survey_reminder_days)
    if survey is not None and survey.status == "planned":
        # Not gone yet (held, or due in this very batch): ask again once it has had its days.
        until = max(survey.due_at, now) + wait
        return Postpone(until, "만족도 조사가 아직 나가지 않아 그 뒤에 다시 물을게요")
    if survey is None or survey.status != "sent" or survey.sent_at is None:
        return skipped("만족도 조사를 보내지 않아 다시 묻지 않아요")
    if now < survey.sent_at + wait:
        # It went late (after downtime): the customer still gets their days to answer.
        return Postpone(survey.sent_at + wait, "만족도 조사를 늦게 보내 답할 시간을 드려요")
    return None


def _review(due: Due, known: Known, shop: ShopConfig, now: datetime) -> Verdict:
    if not shop.journey.review_links:
        return skipped("리뷰 링크가 설정되지 않았어요 ([shops.journey] review_links)")
    if due.customer_id in known.complaints:
        # Held, not skipped: a low score opens the complaint, and skipping would send the
        # review link only to the happy customers (review gating).
        return _waits_for_complaint(due, "리뷰 부탁은", now)
    return None


def _gold_thanks(due: Due, known: Known, shop: ShopConfig, now: datetime) -> Verdict:
    if due.customer_id in known.complaints:
        return _waits_for_complaint(due, "골드 감사 인사는", now)
    return None


_RULES = {
    "confirmation": _confirmation,
    "reminder": _reminder,
    "on_my_way": _on_my_way,
    "photo": _photo,
    "aftercare": _aftercare,
    "survey": _survey,
    "survey_reminder": _survey_reminder,
    "review": _review,
    "gold_thanks": _gold_thanks,
}
