"""A job's statuses and the moves between them: the one place they are written.

    booked ─출발→ on_the_way ─작업 시작→ in_progress ─작업 완료→ done
       │  └────────────작업 시작──────────────┘   │
       └─ cancelled / no_show (from booked or on_the_way)

A job may start without the owner tapping 출발 first (they were next door), and may be
completed from on_the_way (they forgot to tap 작업 시작). Done, cancelled and no-show are
final: a mistaken 완료 is fixed by booking again, never by moving a finished job back.
"""

from __future__ import annotations

from collections.abc import Mapping

STATUSES = ("booked", "on_the_way", "in_progress", "done", "cancelled", "no_show")
OPEN = ("booked", "on_the_way", "in_progress")  # still to happen or happening
FINAL = ("done", "cancelled", "no_show")

# What the console shows for each status.
LABELS: Mapping[str, str] = {
    "booked": "예약",
    "on_the_way": "이동 중",
    "in_progress": "작업 중",
    "done": "완료",
    "cancelled": "취소",
    "no_show": "노쇼",
}

# status → the statuses it may move to.
MOVES: Mapping[str, frozenset[str]] = {
    "booked": frozenset({"on_the_way", "in_progress", "done", "cancelled", "no_show"}),
    "on_the_way": frozenset({"in_progress", "done", "cancelled", "no_show"}),
    "in_progress": frozenset({"done", "cancelled"}),
    "done": frozenset(),
    "cancelled": frozenset(),
    "no_show": frozenset(),
}

# The column that records when a job reached a status.
STAMPS: Mapping[str, str] = {
    "on_the_way": "on_the_way_at",
    "in_progress": "started_at",
    "done": "done_at",
    "cancelled": "cancelled_at",
    "no_show": "no_show_at",
}


class JobError(ValueError):
    """A change the job cannot take; the message is for the owner (Korean)."""


def check_move(current: str, new: str) -> None:
    """Raise JobError unless a job in `current` may move to `new`."""
    if new not in MOVES.get(current, frozenset()):
        was, to = LABELS.get(current, current), LABELS.get(new, new)
        raise JobError(f"'{was}' 상태의 작업은 '{to}'(으)로 바꿀 수 없어요")


def may_reschedule(current: str) -> bool:
    """Only a job that has not begun may get a new time."""
    return current in ("booked", "on_the_way")
