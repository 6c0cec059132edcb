"""One job as its page shows it: the job, every step of its journey with the delivery
state and path of the message each became, its photos by phase, and the survey answer.

Read by the job's id, scoped by shop: the steps by ix_journey_steps_job, the photos by
their job_id index, the answer by its unique job_id.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.console.queries import local
from bot.console.queries.jobs import map_url
from bot.console.viewer import Viewer
from core.jobs import LABELS, STEPS
from core.models import Customer, Job, JourneyStep, Message, OutboxItem, Photo, SurveyAnswer

J = Job


@dataclass(frozen=True)
class Delivery:
    """A sent step's message as the conversation's timeline shows it (the `delivery` and
    `path_label` macros read `status` and `path`)."""

    message_id: int
    conversation_id: int
    status: str
    path: str | None
    error: str | None


@dataclass(frozen=True)
class StepView:
    step: str
    key: str
    due_at: datetime  # local
    status: str  # planned | sent | skipped | cancelled | dropped
    reason: str | None
    sent_at: datetime | None  # local
    delivery: Delivery | None
    outbox_status: str | None  # the row's, while it has no message: pending (held) …
    outbox_error: str | None
    payload: dict[str, Any]

    @property
    def label(self) -> str:
        kind = STEPS.get(self.step)
        return kind.label if kind else self.step


@dataclass(frozen=True)
class PhotoView:
    id: int
    phase: str | None
    caption: str
    at: datetime  # local


@dataclass(frozen=True)
class SurveyView:
    score: int
    comment: str | None
    channel: str
    answered_at: datetime  # local


@dataclass(frozen=True)
class JobView:
    id: int
    customer_id: int
    customer_name: str | None
    conversation_id: int | None
    service: str
    service_name: str
    address: str
    starts_at: datetime  # local
    ends_at: datetime  # local
    status: str
    price_krw: int | None
    notes: str
    eta_at: datetime | None  # local
    customer_reply: str | None  # confirmed | change_requested
    reason: str | None  # why it was cancelled
    revision: int
    source: str
    booked_at: datetime
    done_at: datetime | None
    steps: list[StepView] = field(default_factory=list)
    photos: list[PhotoView] = field(default_factory=list)
    survey: SurveyView | None = None

    @property
    def label(self) -> str:
        return LABELS.get(self.status, self.status)

    @property
    def map_url(self) -> str | None:
        return map_url(self.address)

    def photos_of(self, phase: str) -> list[PhotoView]:
        return [p for p in self.photos if p.phase == phase]


async def read_job(
    conn: AsyncConnection, viewer: Viewer, job_id: int, tz: ZoneInfo
) -> JobView | None:
    j = (
        await conn.execute(
            sa.select(J.__table__, Customer.name.label("customer_name"))
            .select_from(J)
            .join(Customer, Customer.id == J.customer_id)
            .where(viewer.scope(J.shop_id), J.id == job_id)
        )
    ).first()
    if j is None:
        return None
    steps = await _steps(conn, viewer, job_id, tz)
    captions = {
        s.payload.get("photo_id"): str(s.payload.get("caption") or "")
        for s in steps
        if s.step == "photo"
    }
    photos = [
        PhotoView(p.id, p.phase, captions.get(p.id, ""), p.created_at.astimezone(tz))
        for p in await conn.execute(
            sa.select(Photo.id, Photo.phase, Photo.created_at)
            .where(viewer.scope(Photo.shop_id), Photo.job_id == job_id)
            .order_by(Photo.created_at, Photo.id)
        )
    ]
    s = (
        await conn.execute(
            sa.select(
                SurveyAnswer.score,
                SurveyAnswer.comment,
                SurveyAnswer.channel,
                SurveyAnswer.answered_at,
            ).where(viewer.scope(SurveyAnswer.shop_id), SurveyAnswer.job_id == job_id)
        )
    ).first()
    survey = SurveyView(s.score, s.comment, s.channel, s.answered_at.astimezone(tz)) if s else None
    return JobView(
        id=j.id,
        customer_id=j.customer_id,
        customer_name=j.customer_name,
        conversation_id=j.conversation_id,
        service=j.service,
        service_name=j.service_name,
        address=j.address or "",
        starts_at=j.starts_at.astimezone(tz),
        ends_at=j.ends_at.astimezone(tz),
        status=j.status,
        price_krw=j.price_krw,
        notes=j.notes or "",
        eta_at=local(j.eta_at, tz),
        customer_reply=j.customer_reply,
        reason=j.reason,
        revision=j.revision,
        source=j.source,
        booked_at=j.booked_at.astimezone(tz),
        done_at=local(j.done_at, tz),
        steps=steps,
        photos=photos,
        survey=survey,
    )


async def _steps(
    conn: AsyncConnection, viewer: Viewer, job_id: int, tz: ZoneInfo
) -> list[StepView]:
    """The job's journey, in the order the steps are due; a sent step with its message's
    delivery state and path (or its outbox row's, before a message exists)."""
    s, o, m = JourneyStep, OutboxItem, Message
    stmt = (
        sa.select(
            s.step,
            s.key,
            s.due_at,
            s.status,
            s.reason,
            s.payload,
            s.sent_at,
            o.status.label("outbox_status"),
            o.last_error,
            m.id.label("message_id"),
            m.conversation_id,
            m.status.label("message_status"),
            m.path,
            m.error,
        )
        .select_from(s)
        .outerjoin(o, sa.and_(o.id == s.outbox_id, viewer.scope(o.shop_id)))
        .outerjoin(
            m,
            sa.and_(m.id == sa.func.coalesce(s.message_id, o.message_id), viewer.scope(m.shop_id)),
        )
        .where(viewer.scope(s.shop_id), s.job_id == job_id)
        .order_by(s.due_at, s.id)
    )
    return [
        StepView(
            step=r.step,
            key=r.key,
            due_at=r.due_at.astimezone(tz),
            status=r.status,
            reason=r.reason,
            sent_at=local(r.sent_at, tz),
            delivery=Delivery(r.message_id, r.conversation_id, r.message_status, r.path, r.error)
            if r.message_id is not None
            else None,
            outbox_status=r.outbox_status,
            outbox_error=r.last_error,
            payload=r.payload if isinstance(r.payload, dict) else {},
        )
        for r in await conn.execute(stmt)
    ]
