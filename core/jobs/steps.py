"""The journey's steps and when each is due: pure functions, no database.

Each step is a message the customer gets (../shared/JOURNEY.md): its kind under the law
(informational or advertising, PROTOCOLS §4.2), whether it goes at once or waits for
courtesy hours, and the key that makes it one row per job however often it is planned.
The planner (scheduler/planners/journey.py) sends a step when it is due; the units in
`booking.py` plan and cancel them as the job moves.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from core.config import JourneyConfig, ServiceConfig


@dataclass(frozen=True)
class StepKind:
    name: str
    label: str  # what the job page shows
    kind: str  # info | ad
    urgent: bool  # goes at once, any hour; else waits for courtesy hours


STEPS: Mapping[str, StepKind] = {
    s.name: s
    for s in (
        StepKind("confirmation", "예약 확정", "info", urgent=True),
        StepKind("reminder", "전날 알림", "info", urgent=False),
        StepKind("on_my_way", "출발 알림", "info", urgent=True),
        StepKind("photo", "작업 사진", "info", urgent=True),
        StepKind("completion", "완료 안내", "info", urgent=True),
        StepKind("aftercare", "관리 안내", "info", urgent=False),
        StepKind("survey", "만족도 조사", "info", urgent=False),
        StepKind("survey_reminder", "만족도 다시 묻기", "info", urgent=False),
        # Without a coupon a review invitation is information (PROTOCOLS §4.2).
        StepKind("review", "리뷰 부탁", "info", urgent=False),
        # Reaching gold (core/tiers.py): a thank-you, once per customer. No coupon in it,
        # so information; it waits for courtesy hours like the other non-urgent steps.
        StepKind("gold_thanks", "골드 감사", "info", urgent=False),
    )
}

# Steps a cancelled job or a no-show no longer needs (all that have not gone).
# Steps a finished job keeps: a rescheduled job drops only its old reminder.
RESCHEDULE_CANCELS = ("reminder",)


@dataclass(frozen=True)
class PlannedStep:
    step: str
    key: str  # unique within the job: "reminder:r2", "aftercare:1", "photo:41"
    due_at: datetime
    payload: Mapping[str, Any] = field(default_factory=dict)
    status: str = "planned"  # or "skipped", planned only to show why it will not go
    reason: str | None = None

    @property
    def kind(self) -> str:
        return STEPS[self.step].kind


def outbox_key(job_id: int, key: str) -> str:
    """The idempotency key of the outbox row a step becomes."""
    return f"journey:{key}:job:{job_id}"


def at_local(day: date, clock: time, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, clock, tzinfo=zone)


def booking_steps(
    *,
    starts_at: datetime,
    revision: int,
    journey: JourneyConfig,
    zone: ZoneInfo,
    now: datetime,
) -> list[PlannedStep]:
    """A booking (revision 1) or a reschedule (2, 3 …): the confirmation at once and the
    reminder the day before at `journey.reminder_at` — unless that moment has passed, when
    the confirmation just sent says it all (recorded as skipped, with the reason)."""
    steps = [PlannedStep("confirmation", f"confirmation:r{revision}", now)]
    local_day = starts_at.astimezone(zone).date()
    reminder_at = at_local(local_day - timedelta(days=1), journey.reminder_at, zone)
    if reminder_at > now:
        steps.append(PlannedStep("reminder", f"reminder:r{revision}", reminder_at))
    else:
        steps.append(
            PlannedStep(
                "reminder",
                f"reminder:r{revision}",
                now,
                status="skipped",
                reason="예약이 전날 알림 시각 이후에 잡혀 확정 메시지로 대신했어요",
            )
        )
    return steps


def completion_steps(
    *, done_at: datetime, service: ServiceConfig | None, journey: JourneyConfig
) -> list[PlannedStep]:
    """작업 완료: the summary at once (with the day's tips), later tips on their days, the
    satisfaction check after the service's delay and one reminder if it is not answered."""
    tips_today = [t.text for t in service.aftercare if t.after_days == 0] if service else []
    steps = [PlannedStep("completion", "completion", done_at, {"tips": tips_today})]
    later = [t for t in service.aftercare if t.after_days > 0] if service else []
    for n, tip in enumerate(later, start=1):
        steps.append(
            PlannedStep(
                "aftercare",
                f"aftercare:{n}",
                done_at + timedelta(days=tip.after_days),
                {"tip": tip.text, "after_days": tip.after_days},
            )
        )
    survey_at = done_at + timedelta(days=service.survey_after_days if service else 7)
    steps.append(PlannedStep("survey", "survey", survey_at))
    steps.append(
        PlannedStep(
            "survey_reminder",
            "survey_reminder",
            survey_at + timedelta(days=journey.survey_reminder_days),
        )
    )
    return steps
