"""Jobs: a booked visit, and the journey of messages around it.

    lifecycle.py  the statuses and the moves between them (one status order)
    steps.py      the journey's steps, their kinds and when each is due (pure)
    booking.py    the units that book, reschedule, move and finish a job and plan its steps

The scheduler's journey planner (scheduler/planners/journey.py) sends each step when due.
"""

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

__all__ = [
    "FINAL",
    "LABELS",
    "OPEN",
    "STATUSES",
    "STEPS",
    "STEPS_PLANNED",
    "Booking",
    "JobChanged",
    "JobError",
    "JobNotFound",
    "PlannedStep",
    "StepKind",
    "StepsPlanned",
    "attach_photo",
    "book",
    "cancel_steps",
    "check_move",
    "complete",
    "depart",
    "end_unfinished",
    "note_reminder_answer",
    "outbox_key",
    "plan_steps",
    "reschedule",
    "start",
]
