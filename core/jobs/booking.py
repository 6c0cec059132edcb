"""What happens to a job: units that book it, move it along and plan its journey.

Every change is one unit (`Database.write`): the job row, the journey steps it plans or
cancels, and an audit entry, together. After the commit `JobChanged` tells the consoles
and `STEPS_PLANNED` wakes the journey planner, which sends what is due at once
(a confirmation, an on-my-way) without waiting for its next tick.
Callers — the console, the jobs API, the demo — check their own input's shape; these
units check what only the data can tell (the customer is the shop's, the move is allowed).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection

from core import tiers
from core.config import ShopConfig
from core.jobs.lifecycle import STAMPS, JobError, check_move, may_reschedule
from core.jobs.steps import PlannedStep, booking_steps, completion_steps, outbox_key
from core.models import AuditEntry, Conversation, Customer, Job, JourneyStep, Photo
from core.outbox import cancel as cancel_outbox
from core.writer import after_commit

JOBS = cast(sa.Table, Job.__table__)
STEPS = cast(sa.Table, JourneyStep.__table__)

MAX_WINDOW = timedelta(hours=24)
PRICE_MAX = 1_000_000_000  # ₩1 billion: a typo, not a job
ADDRESS_MAX = 500
NOTES_MAX = 2000
ETA_MAX = timedelta(hours=12)
PHASES = ("before", "during", "after")


@dataclass(frozen=True, slots=True)
class JobChanged:
    """After commit: a job was booked or changed (the consoles refresh it)."""

    shop_id: int
    job_id: int
    change: str  # booked | rescheduled | on_the_way | in_progress | done | cancelled | …


@dataclass(frozen=True, slots=True)
class StepsPlanned:
    """After commit: journey steps were planned, some perhaps due now."""


STEPS_PLANNED = StepsPlanned()


@dataclass(frozen=True)
class Booking:
    """A job to book. Times are aware; `ends_at` closes the arrival window."""

    shop_id: int
    customer_id: int
    service: str
    starts_at: datetime
    ends_at: datetime
    address: str = ""
    price_krw: int | None = None
    notes: str = ""
    conversation_id: int | None = None  # None: the customer's latest conversation
    source: str = "console"
    external_ref: str | None = None


def check_window(starts_at: datetime, ends_at: datetime) -> None:
    if starts_at.tzinfo is None or ends_at.tzinfo is None:
        raise JobError("시간대가 없는 시각이에요")
    if ends_at <= starts_at:
        raise JobError("도착 시간대의 끝이 시작보다 늦어야 해요")
    if ends_at - starts_at > MAX_WINDOW:
        raise JobError("도착 시간대는 24시간을 넘을 수 없어요")


def _check_booking(booking: Booking, shop: ShopConfig) -> None:
    check_window(booking.starts_at, booking.ends_at)
    if shop.service(booking.service) is None:
        raise JobError(f"서비스 목록에 없는 서비스예요: {booking.service!r}")
    if booking.price_krw is not None and not 0 <= booking.price_krw <= PRICE_MAX:
        raise JobError("금액은 0원에서 10억 원 사이로 적어 주세요")
    if len(booking.address) > ADDRESS_MAX:
        raise JobError(f"주소는 {ADDRESS_MAX}자까지 적을 수 있어요")
    if len(booking.notes) > NOTES_MAX:
        raise JobError(f"메모는 {NOTES_MAX}자까지 적을 수 있어요")


def _audit(
    conn: Connection,
    shop_id: int,
    actor: str,
    action: str,
    job_id: int,
    now: datetime,
    detail: dict[str, Any] | None = None,
) -> None:
    conn.execute(
        sa.insert(AuditEntry).values(
            shop_id=shop_id,
            actor=actor,
            action=action,
            subject=f"job:{job_id}",
            detail=detail or {},
            created_at=now,
        )
    )


def plan_steps(
    conn: Connection,
    shop_id: int,
    job_id: int,
    customer_id: int,
    steps: Sequence[PlannedStep],
    now: datetime,
) -> None:
    """Write planned steps; a key the job has already is left as it is (planning twice is
    planning once)."""
    if not steps:
        return
    rows = [
        {
            "shop_id": shop_id,
            "job_id": job_id,
            "customer_id": customer_id,
            "step": s.step,
            "key": s.key,
            "kind": s.kind,
            "due_at": s.due_at,
            "status": s.status,
            "reason": s.reason,
            "payload": dict(s.payload),
            "created_at": now,
            "updated_at": now,
        }
        for s in steps
    ]
    insert = pg_insert(STEPS) if conn.dialect.name == "postgresql" else sqlite_insert(STEPS)
    conn.execute(insert.on_conflict_do_nothing(index_elements=["shop_id", "job_id", "key"]), rows)
    if any(s.status == "planned" for s in steps):
        after_commit(STEPS_PLANNED)


def cancel_steps(
    conn: Connection,
    shop_id: int,
    job_id: int,
    reason: str,
    now: datetime,
    *,
    steps: Sequence[str] | None = None,
) -> int:
    """Cancel the job's steps that have not gone (only those named in `steps`, if given),
    and withdraw any outbox row of theirs still waiting. Returns how many."""
    where = [STEPS.c.shop_id == shop_id, STEPS.c.job_id == job_id, STEPS.c.status == "planned"]
    if steps is not None:
        where.append(STEPS.c.step.in_(list(steps)))
    keys = (
        conn.execute(
            sa.update(STEPS)
            .where(*where)
            .values(status="cancelled", reason=reason, updated_at=now)
            .returning(STEPS.c.key)
        )
        .scalars()
        .all()
    )
    for key in keys:  # a planned step has no row yet, unless its send was held
        cancel_outbox(conn, shop_id=shop_id, idempotency_key=outbox_key(job_id, key), now=now)
    return len(keys)


def _latest_conversation(conn: Connection, shop_id: int, customer_id: int) -> int | None:
    return conn.execute(
        sa.select(Conversation.id)
        .where(Conversation.shop_id == shop_id, Conversation.customer_id == customer_id)
        .order_by(Conversation.last_message_at.desc(), Conversation.id.desc())
        .limit(1)
    ).scalar()


def book(
    shop: ShopConfig, booking: Booking, actor: str, now: datetime
) -> Callable[[Connection], int]:
    """A unit: book the job and plan its confirmation and reminder. Returns the job's id.

    With an `external_ref` the API caller already used, the existing job's id is returned
    and nothing changes (a retried push books once).
    """
    _check_booking(booking, shop)
    service = shop.service(booking.service)
    assert service is not None

    def unit(conn: Connection) -> int:
        if booking.external_ref is not None:
            found = conn.execute(
                sa.select(JOBS.c.id).where(
                    JOBS.c.shop_id == booking.shop_id, JOBS.c.external_ref == booking.external_ref
                )
            ).scalar()
            if found is not None:
                return int(found)
        owner = conn.execute(
            sa.select(Customer.shop_id).where(Customer.id == booking.customer_id)
        ).scalar()
        if owner != booking.shop_id:
            raise JobError("이 가게의 고객이 아니에요")
        conversation_id = booking.conversation_id
        if conversation_id is not None:
            belongs = conn.execute(
                sa.select(Conversation.customer_id).where(
                    Conversation.id == conversation_id, Conversation.shop_id == booking.shop_id
                )
            ).scalar()
            if belongs != booking.customer_id:
                raise JobError("이 고객의 대화가 아니에요")
        else:
            conversation_id = _latest_conversation(conn, booking.shop_id, booking.customer_id)
        job_id = int(
            conn.execute(
                sa.insert(JOBS)
                .values(
                    shop_id=booking.shop_id,
                    customer_id=booking.customer_id,
                    conversation_id=conversation_id,
                    service=service.key,
                    service_name=service.name,
                    address=booking.address.strip(),
                    starts_at=booking.starts_at,
                    ends_at=booking.ends_at,
                    status="booked",
                    price_krw=booking.price_krw,
                    notes=booking.notes.strip(),
                    source=booking.source,
                    external_ref=booking.external_ref,
                    revision=1,
                    booked_at=now,
                    created_at=now,
                    updated_at=now,
                )
                .returning(JOBS.c.id)
            ).scalar_one()
        )
        steps = booking_steps(
            starts_at=booking.starts_at,
            revision=1,
            journey=shop.journey,
            zone=shop.timezone,
            now=now,
        )
        plan_steps(conn, booking.shop_id, job_id, booking.customer_id, steps, now)
        _audit(conn, booking.shop_id, actor, "job_booked", job_id, now, {"service": service.key})
        after_commit(JobChanged(booking.shop_id, job_id, "booked"))
        return job_id

    return unit


def _job(conn: Connection, shop_id: int, job_id: int) -> Any:
    row = conn.execute(
        sa.select(JOBS).where(JOBS.c.id == job_id, JOBS.c.shop_id == shop_id)
    ).first()
    if row is None:
        raise JobNotFound(job_id)
    return row


class JobNotFound(LookupError):
    """No such job in this shop (another shop's job is not found either)."""


def reschedule(
    shop: ShopConfig,
    shop_id: int,
    job_id: int,
    starts_at: datetime,
    ends_at: datetime,
    actor: str,
    now: datetime,
) -> Callable[[Connection], int]:
    """A unit: a new time for a job that has not begun. The old reminder is cancelled, a
    new confirmation and reminder planned. The same time again changes nothing. Returns
    the job's revision."""
    check_window(starts_at, ends_at)

    def unit(conn: Connection) -> int:
        job = _job(conn, shop_id, job_id)
        if not may_reschedule(job.status):
            raise JobError("시작했거나 끝난 작업은 일정을 바꿀 수 없어요")
        if job.starts_at == starts_at and job.ends_at == ends_at:
            return int(job.revision)
        revision = job.revision + 1
        conn.execute(
            sa.update(JOBS)
            .where(JOBS.c.id == job_id)
            .values(
                starts_at=starts_at,
                ends_at=ends_at,
                revision=revision,
                status="booked",  # a new time: the owner has not set out for it yet
                on_the_way_at=None,
                eta_at=None,
                customer_reply=None,
                updated_at=now,
            )
        )
        cancel_steps(conn, shop_id, job_id, "일정이 바뀌었어요", now, steps=("reminder",))
        steps = booking_steps(
            starts_at=starts_at,
            revision=revision,
            journey=shop.journey,
            zone=shop.timezone,
            now=now,
        )
        plan_steps(conn, shop_id, job_id, job.customer_id, steps, now)
        _audit(
            conn,
            shop_id,
            actor,
            "job_rescheduled",
            job_id,
            now,
            {"from": job.starts_at.isoformat(), "to": starts_at.isoformat()},
        )
        after_commit(JobChanged(shop_id, job_id, "rescheduled"))
        return int(revision)

    return unit


def end_unfinished(
    shop_id: int, job_id: int, status: str, reason: str, actor: str, now: datetime
) -> Callable[[Connection], None]:
    """A unit: cancel the job (status "cancelled") or mark a no-show ("no_show"); every
    step that has not gone is cancelled with the reason."""
    if status not in ("cancelled", "no_show"):
        raise ValueError(status)

    def unit(conn: Connection) -> None:
        job = _job(conn, shop_id, job_id)
        check_move(job.status, status)
        conn.execute(
            sa.update(JOBS)
            .where(JOBS.c.id == job_id)
            .values(status=status, reason=reason or None, updated_at=now, **{STAMPS[status]: now})
        )
        label = "작업이 취소됐어요" if status == "cancelled" else "고객이 안 계셨어요(노쇼)"
        cancel_steps(conn, shop_id, job_id, label, now)
        _audit(conn, shop_id, actor, f"job_{status}", job_id, now, {"reason": reason})
        after_commit(JobChanged(shop_id, job_id, status))

    return unit


def depart(
    shop_id: int, job_id: int, eta_at: datetime, actor: str, now: datetime
) -> Callable[[Connection], None]:
    """A unit: 출발 — the owner set out; the customer is told the ETA at once."""
    if eta_at.tzinfo is None or not now - timedelta(minutes=5) <= eta_at <= now + ETA_MAX:
        raise JobError("도착 예정 시각은 지금부터 12시간 안으로 적어 주세요")

    def unit(conn: Connection) -> None:
        job = _job(conn, shop_id, job_id)
        check_move(job.status, "on_the_way")
        conn.execute(
            sa.update(JOBS)
            .where(JOBS.c.id == job_id)
            .values(status="on_the_way", on_the_way_at=now, eta_at=eta_at, updated_at=now)
        )
        step = PlannedStep(
            "on_my_way", f"on_my_way:r{job.revision}", now, {"eta": eta_at.isoformat()}
        )
        plan_steps(conn, shop_id, job_id, job.customer_id, [step], now)
        _audit(conn, shop_id, actor, "job_on_the_way", job_id, now, {"eta": eta_at.isoformat()})
        after_commit(JobChanged(shop_id, job_id, "on_the_way"))

    return unit


def start(shop_id: int, job_id: int, actor: str, now: datetime) -> Callable[[Connection], None]:
    """A unit: 작업 시작. Nothing goes to the customer (the owner is at the door)."""

    def unit(conn: Connection) -> None:
        job = _job(conn, shop_id, job_id)
        check_move(job.status, "in_progress")
        conn.execute(
            sa.update(JOBS)
            .where(JOBS.c.id == job_id)
            .values(status="in_progress", started_at=now, updated_at=now)
        )
        # A reminder not yet gone is late now: the visit has begun.
        cancel_steps(conn, shop_id, job_id, "작업이 이미 시작됐어요", now, steps=("reminder",))
        _audit(conn, shop_id, actor, "job_in_progress", job_id, now)
        after_commit(JobChanged(shop_id, job_id, "in_progress"))

    return unit


def complete(
    shop: ShopConfig, shop_id: int, job_id: int, actor: str, now: datetime
) -> Callable[[Connection], None]:
    """A unit: 작업 완료 — the completion summary at once; aftercare tips and the
    satisfaction check planned on their days."""

    def unit(conn: Connection) -> None:
        job = _job(conn, shop_id, job_id)
        check_move(job.status, "done")
        conn.execute(
            sa.update(JOBS)
            .where(JOBS.c.id == job_id)
            .values(
                status="done",
                done_at=now,
                started_at=job.started_at or now,
                updated_at=now,
            )
        )
        cancel_steps(conn, shop_id, job_id, "작업이 끝났어요", now, steps=("reminder",))
        steps = completion_steps(
            done_at=now, service=shop.service(job.service), journey=shop.journey
        )
        # The customer's tier follows their completed jobs; reaching gold plans a thanks.
        steps += tiers.after_completion(conn, shop, shop_id, job.customer_id, now)
        plan_steps(conn, shop_id, job_id, job.customer_id, steps, now)
        _audit(conn, shop_id, actor, "job_done", job_id, now)
        after_commit(JobChanged(shop_id, job_id, "done"))

    return unit


def attach_photo(
    shop_id: int,
    job_id: int,
    photo_id: int,
    phase: str,
    caption: str,
    actor: str,
    now: datetime,
    *,
    send: bool = True,
) -> Callable[[Connection], None]:
    """A unit: a stored photo becomes one of the job's (before / during / after) and, with
    `send`, goes to the customer at once with its caption."""
    if phase not in PHASES:
        raise JobError(f"사진 단계는 {', '.join(PHASES)} 중 하나예요")
    if len(caption) > 200:
        raise JobError("사진 설명은 200자까지 적을 수 있어요")

    def unit(conn: Connection) -> None:
        job = _job(conn, shop_id, job_id)
        if job.status in ("cancelled", "no_show"):
            raise JobError("취소된 작업에는 사진을 붙일 수 없어요")
        linked = conn.execute(
            sa.update(Photo)
            .where(Photo.id == photo_id, Photo.shop_id == shop_id, Photo.job_id.is_(None))
            .values(job_id=job_id, phase=phase)
        ).rowcount
        if linked != 1:
            raise JobError("사진을 찾을 수 없거나 이미 다른 작업에 붙어 있어요")
        if send:
            step = PlannedStep(
                "photo",
                f"photo:{photo_id}",
                now,
                {"photo_id": photo_id, "caption": caption, "phase": phase},
            )
            plan_steps(conn, shop_id, job_id, job.customer_id, [step], now)
        _audit(conn, shop_id, actor, "job_photo", job_id, now, {"photo": photo_id, "phase": phase})
        after_commit(JobChanged(shop_id, job_id, "photo"))

    return unit


def note_reminder_answer(
    shop_id: int, job_id: int, answer: str, now: datetime
) -> Callable[[Connection], bool]:
    """A unit: the customer answered the reminder (확인 → "confirmed", 일정 변경 →
    "change_requested"). True if recorded (only for a job still to happen)."""
    if answer not in ("confirmed", "change_requested"):
        raise ValueError(answer)

    def unit(conn: Connection) -> bool:
        done = conn.execute(
            sa.update(JOBS)
            .where(
                JOBS.c.id == job_id,
                JOBS.c.shop_id == shop_id,
                JOBS.c.status.in_(("booked", "on_the_way")),
            )
            .values(customer_reply=answer, updated_at=now)
        ).rowcount
        if done:
            _audit(conn, shop_id, "customer", f"job_{answer}", job_id, now)
            after_commit(JobChanged(shop_id, job_id, answer))
        return bool(done)

    return unit
