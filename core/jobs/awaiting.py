"""Answers the shop awaits: a satisfaction score, a reply to the day-before reminder.

Whoever sends the survey or the reminder (the journey planner) marks the customer with
`await_answer` — what is awaited, for which job, until when. The inbound path reads that
mark together with the customer's address, so an ordinary message costs nothing more; a
message from a marked customer is read with `parse_score` or `parse_reminder_answer`,
and one that is not an answer is an ordinary message (the mark stays until it expires).
One mark per customer: the latest thing sent is what the customer is answering.

The readers are strict on purpose: "5", "５", "5점", "5점이요" or a quick reply "5점" is a
score; "10", "5분 뒤에 전화주세요" or "3시에 와주세요" is a message for the owner.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import cast

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from core.models import Customer

CUSTOMERS = cast(sa.Table, Customer.__table__)

WHAT = ("survey", "reminder")  # a score for the job; 확인 / 일정 변경 for the visit
CONFIRMED, CHANGE_REQUESTED = "confirmed", "change_requested"

_SPACES = re.compile(r"\s+")
# Polite endings and marks around a bare answer: "5점이요", "5점 드려요!", "확인했어요~".
_TRAILING = re.compile(r"[.!~♡♥]+$")
_SCORE = re.compile(r"([1-5])점?(?:이요|요|이에요|예요|입니다|드려요|드릴게요|줄게요|드립니다)?")
_LONGEST_ANSWER = 20  # characters, once folded: anything longer is a message

_CONFIRM = frozenset(
    {
        "1",
        "1번",
        "확인",
        "확인요",
        "확인이요",
        "확인했어요",
        "확인했습니다",
        "확인합니다",
        "네확인",
        "네확인했어요",
        "넵확인",
    }
)
_CHANGE = frozenset(
    {
        "2",
        "2번",
        "변경",
        "변경요",
        "일정변경",
        "일정변경요",
        "변경할게요",
        "변경해주세요",
        "변경원해요",
        "일정변경할게요",
        "일정변경해주세요",
        "일정변경원해요",
    }
)


def _fold(text: str) -> str:
    """Width-folded (NFKC: "５" and "⑤" are "5"), lower-cased, without spaces or the marks
    that end a short answer."""
    if len(text) > 4 * _LONGEST_ANSWER:  # not an answer; no need to fold it all
        return ""
    folded = _SPACES.sub("", unicodedata.normalize("NFKC", text).casefold())
    return _TRAILING.sub("", folded)


def parse_score(text: str) -> int | None:
    """The score 1–5 that `text` is, or None when it is anything else."""
    folded = _fold(text)
    if len(folded) > _LONGEST_ANSWER:
        return None
    m = _SCORE.fullmatch(folded)
    return int(m[1]) if m else None


def parse_reminder_answer(text: str) -> str | None:
    """ "confirmed" (확인, 1), "change_requested" (일정 변경, 변경, 2), or None."""
    folded = _fold(text)
    if folded in _CONFIRM:
        return CONFIRMED
    if folded in _CHANGE:
        return CHANGE_REQUESTED
    return None


# --------------------------------------------------------------------------- the mark


@dataclass(frozen=True, slots=True)
class Awaited:
    """What a customer's answer is awaited for: "survey" or "reminder", and the job."""

    customer_id: int
    what: str
    job_id: int
    until: datetime

    def __post_init__(self) -> None:
        if self.what not in WHAT:
            raise ValueError(f"what must be one of {WHAT}, got {self.what!r}")
        if self.until.tzinfo is None:
            raise ValueError("until must be an aware datetime")


def mark(what: str, job_id: int) -> str:
    """The stored mark: "survey:12"."""
    return f"{what}:{job_id}"


def read_mark(value: str | None, until: datetime | None, now: datetime) -> tuple[str, int] | None:
    """(what, job id) of a stored mark still awaited at `now`; None if none, or expired."""
    if value is None or until is None or until <= now:
        return None
    what, _, job = value.partition(":")
    if what not in WHAT or not job.isdigit():
        return None
    return what, int(job)


_MARK = (
    sa.update(CUSTOMERS)
    .where(CUSTOMERS.c.id == sa.bindparam("p_customer"))
    .values(awaiting=sa.bindparam("p_mark"), awaiting_until=sa.bindparam("p_until"))
)


def await_answers(conn: Connection, awaited: Sequence[Awaited]) -> None:
    """Mark customers as owing an answer (one statement for them all); each replaces
    whatever the customer was marked with before. Call it in the unit that sends the
    survey or reminder."""
    if awaited:
        conn.execute(
            _MARK,
            [
                {"p_customer": a.customer_id, "p_mark": mark(a.what, a.job_id), "p_until": a.until}
                for a in awaited
            ],
        )


def await_answer(
    conn: Connection, customer_id: int, what: str, job_id: int, until: datetime
) -> None:
    """`await_answers` for one customer."""
    await_answers(conn, [Awaited(customer_id, what, job_id, until)])


def stop_awaiting(conn: Connection, customer_id: int, what: str, job_id: int) -> None:
    """The answer came: the customer's next message is a message again. Only this mark is
    cleared (a later survey or reminder may have replaced it)."""
    conn.execute(
        sa.update(CUSTOMERS)
        .where(CUSTOMERS.c.id == customer_id, CUSTOMERS.c.awaiting == mark(what, job_id))
        .values(awaiting=None, awaiting_until=None)
    )
