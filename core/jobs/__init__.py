"""Jobs: a booked visit, and the journey of messages around it.

    lifecycle.py  the statuses and the moves between them (one status order)
    steps.py      the journey's steps, their kinds and when each is due (pure)
    booking.py    the units that book, reschedule, move and finish a job and plan its steps
    awaiting.py   answers awaited from a customer (a score, a reminder reply), and reading them
    survey.py     the customer's score: recorded once per job, and what a low one sets going

The scheduler's journey planner (scheduler/planners/journey.py) sends each step when due.
"""

from core.jobs.awaiting import (
    Awaited,
    await_answer,
    await_answers,
    parse_reminder_answer,
    parse_score,
    stop_awaiting,
)
from core.jobs.booking import (
    STEPS_PLANNED,
    Booking,
    JobChanged,
    JobNotFound,
    StepsPlanned,
    attach_photo,
    book,
    cancel_steps,
    complete,
    depart,
    end_unfinished,
    note_reminder_answer,
    plan_steps,
    reschedule,
    start,
)
from core.jobs.lifecycle import FINAL, LABELS, OPEN, STATUSES, JobError, check_move
from core.jobs.steps import STEPS, PlannedStep, StepKind, outbox_key
from core.jobs.survey import (
    Recorded,
    ScoreAnswer,
    is_low,
    low_score_notices,
    new_link_token,
    record_answer,
    record_score,
    survey_url,
    token_hash,
)

__all__ = [
    "FINAL",
    "LABELS",
    "OPEN",
    "STATUSES",
    "STEPS",
    "STEPS_PLANNED",
    "Awaited",
    "Booking",
    "JobChanged",
    "JobError",
    "JobNotFound",
    "PlannedStep",
    "Recorded",
    "ScoreAnswer",
    "StepKind",
    "StepsPlanned",
    "attach_photo",
    "await_answer",
    "await_answers",
    "book",
    "cancel_steps",
    "check_move",
    "complete",
    "depart",
    "end_unfinished",
    "is_low",
    "low_score_notices",
    "new_link_token",
    "note_reminder_answer",
    "outbox_key",
    "parse_reminder_answer",
    "parse_score",
    "plan_steps",
    "record_answer",
    "record_score",
    "reschedule",
    "start",
    "stop_awaiting",
    "survey_url",
    "token_hash",
]
