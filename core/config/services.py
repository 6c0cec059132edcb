"""What a shop does and how it keeps in touch: `[[shops.services]]` and `[shops.journey]`.

The service catalogue feeds the booking form (its list), the messages of a job's journey
(what to prepare, aftercare tips, warranty) and their timing (tips' offsets, when the
satisfaction check goes, the inspection interval the next visit is reminded by).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import time
from typing import Annotated, Any

from pydantic import PlainValidator

from core.config.errors import problem
from core.config.values import Name, Tables, Text, check, whole

KEY_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")
# The steps a shop may give an AlimTalk template (core/jobs/steps.py names them all).
ALIMTALK_STEPS = (
    "confirmation",
    "reminder",
    "on_my_way",
    "photo",
    "completion",
    "aftercare",
    "survey",
    "survey_reminder",
    "review",
    "gold_thanks",
)


def _key(value: str) -> str | None:
    if KEY_RE.match(value):
        return None
    return f"use lowercase letters, digits, '-' and '_' (max 40), got {value!r}"


@dataclass(frozen=True)
class AftercareTip:
    """A tip sent `after_days` after the job is done (0: with the completion message)."""

    text: Name
    after_days: Annotated[int, whole(0)] = 0


@dataclass(frozen=True)
class ServiceConfig:
    key: Annotated[Name, check(_key)]  # stays with every job booked: never rename it
    name: Name  # "에어컨 청소·수리": what the owner picks and the customer reads
    duration_minutes: Annotated[int, whole(10)] = 120  # typical; the booking window's default
    prepare: Text = ""  # "실외기 주변을 비워 주세요."
    aftercare: Tables[AftercareTip] = ()
    survey_after_days: Annotated[int, whole(1)] = 7
    warranty: Text = ""  # "무상 A/S 6개월"
    inspection_months: Annotated[int, whole(1)] | None = None  # the next issue's reminders
    inspection_note: Text = ""  # "연 2회 안전점검"


def _services_apart(services: tuple[ServiceConfig, ...]) -> str | None:
    keys = [s.key for s in services]
    return "every service needs its own key" if len(set(keys)) != len(keys) else None


Services = Annotated[Tables[ServiceConfig], check(_services_apart)]


def _clock(value: Any) -> time:
    if isinstance(value, time):  # the default
        return value
    if not isinstance(value, str):
        raise problem(f'expected "HH:MM", got {value!r}')
    m = re.fullmatch(r"\s*(\d{1,2}):(\d{2})\s*", value)
    try:
        if m is None:
            raise ValueError
        return time(int(m[1]), int(m[2]))
    except ValueError:
        raise problem(f'expected "HH:MM", got {value!r}') from None


Clock = Annotated[time, PlainValidator(_clock)]


@dataclass(frozen=True)
class AlimTalkStep:
    """An approved AlimTalk template for one step, and what fills its #{변수}.

    `variables` maps the template's variable (as approved: "#{고객명}") to one of the
    step's values (core/jobs/texts.py lists them: customer_name, when, service, …).
    """

    template: Name
    variables: dict[str, str] = field(default_factory=dict)


def _steps_known(value: dict[str, AlimTalkStep]) -> str | None:
    unknown = sorted(set(value) - set(ALIMTALK_STEPS))
    if unknown:
        return f"unknown step {unknown[0]!r}; steps are {', '.join(ALIMTALK_STEPS)}"
    return None


def _score(value: int) -> str | None:
    return None if 1 <= value <= 4 else "must be 1–4 (a score of 5 is never a complaint)"


@dataclass(frozen=True)
class JourneyConfig:
    """`[shops.journey]`: when the journey's messages go and what they link to."""

    # Non-urgent information waits for these hours (KST); confirmations, on-my-way and
    # replies go at once.
    courtesy_opens: Clock = time(9)
    courtesy_closes: Clock = time(20)
    reminder_at: Clock = time(18)  # the day before the visit
    survey_reminder_days: Annotated[int, whole(1)] = 2  # one reminder, then silence
    low_score: Annotated[int, check(_score)] = 3  # this or less opens a complaint
    survey_link_days: Annotated[int, whole(1)] = 14  # the survey page's link expires
    # Where customers may review the shop: label → URL ("네이버 플레이스" → https://…).
    review_links: dict[str, str] = field(default_factory=dict)
    alimtalk: Annotated[dict[str, AlimTalkStep], check(_steps_known)] = field(default_factory=dict)
