"""The journey planner's questions, asked once per batch of due steps, never once per job.

`take_due` takes the batch: planned steps whose moment has come, with their job and
customer, locked against other processes (``FOR UPDATE … SKIP LOCKED`` on PostgreSQL: two
planners take disjoint batches; SQLite has one writer). `load_known` then asks, for the
whole batch, one statement per question: the customers' addresses, their conversations
(with their open complaints), the jobs' survey answers and survey steps, the photos to
attach, and — only when an advertising step is among them — consents and past purchases.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from core.models import (
    Conversation,
    Customer,
    Job,
    JourneyStep,
    Photo,
    SurveyAnswer,
)
from core.replies import Addresses, addresses_of_many
from scheduler.policy import Recipient
from scheduler.recipients import load_recipients

STEPS = cast(sa.Table, JourneyStep.__table__)
JOBS = cast(sa.Table, Job.__table__)
CUSTOMERS = cast(sa.Table, Customer.__table__)
CONVERSATIONS = cast(sa.Table, Conversation.__table__)
PHOTOS = cast(sa.Table, Photo.__table__)
ANSWERS = cast(sa.Table, SurveyAnswer.__table__)

ACTIVE = ("open", "snoozed")  # a conversation not resolved: where a complaint is open


@dataclass(frozen=True, slots=True)
class Due:
    """A planned step whose moment has come, with what its job and customer say."""

    id: int
    shop_id: int
    job_id: int
    customer_id: int
    step: str
    key: str
    kind: str
    due_at: datetime
    payload: Mapping[str, Any]
    created_at: datetime
    job_status: str
    service: str
    service_name: str
    address: str
    starts_at: datetime
    ends_at: datetime
    revision: int
    conversation_id: int | None
    done_at: datetime | None
    customer_name: str | None
    customer_tier: str | None  # core/tiers.py: None before the first completed job


_DUE = (
    sa.select(
        STEPS.c.id,
        STEPS.c.shop_id,
        STEPS.c.job_id,
        STEPS.c.customer_id,
        STEPS.c.step,
        STEPS.c.key,
        STEPS.c.kind,
        STEPS.c.due_at,
        STEPS.c.payload,
        STEPS.c.created_at,
        JOBS.c.status.label("job_status"),
        JOBS.c.service,
        JOBS.c.service_name,
        JOBS.c.address,
        JOBS.c.starts_at,
        JOBS.c.ends_at,
        JOBS.c.revision,
        JOBS.c.conversation_id,
        JOBS.c.done_at,
        CUSTOMERS.c.name.label("customer_name"),
        CUSTOMERS.c.tier.label("customer_tier"),
    )
    .select_from(
        STEPS.join(JOBS, JOBS.c.id == STEPS.c.job_id).join(
            CUSTOMERS, CUSTOMERS.c.id == STEPS.c.customer_id
        )
    )
    .where(
        STEPS.c.status == "planned",
        STEPS.c.due_at <= sa.bindparam("now"),
        STEPS.c.shop_id.in_(sa.bindparam("shop_ids", expanding=True)),
    )
    .order_by(STEPS.c.due_at, STEPS.c.id)
    .limit(sa.bindparam("batch"))
    # PostgreSQL: another planner skips what this one holds. SQLite renders nothing: its
    # one writer runs one batch at a time.
    .with_for_update(of=STEPS, skip_locked=True)
)


def take_due(conn: Connection, shop_ids: Iterable[int], now: datetime, batch: int) -> list[Due]:
    """Up to `batch` due steps of these shops, oldest first, locked until the commit."""
    rows = conn.execute(_DUE, {"now": now, "shop_ids": list(shop_ids), "batch": batch})
    return [Due(**dict(row._mapping)) for row in rows]


# --------------------------------------------------------------------------- what is known


@dataclass(frozen=True, slots=True)
class Thread:
    """A conversation a step's message may go into."""

    id: int
    customer_id: int
    channel: str
    status: str
    complaint: bool


@dataclass(frozen=True, slots=True)
class JobPhoto:
    id: int
    job_id: int | None
    stored_name: str
    width: int
    height: int
    content_type: str
    phase: str | None

    def attachment(self) -> dict[str, Any]:
        """What a message's `attachments` holds for it — the shape of the owner's photo
        replies (bot/photos/records.py `attachment`), which the dispatcher's photo
        resolver and the simulator read."""
        return {
            "photo_id": self.id,
            "url": f"/p/{self.stored_name}",
            "width": self.width,
            "height": self.height,
            "content_type": self.content_type,
        }


@dataclass(frozen=True, slots=True)
class SurveyStep:
    status: str
    due_at: datetime
    sent_at: datetime | None


@dataclass
class Known:
    """What the batch's rules and messages need, found for the whole batch at once."""

    addresses: dict[int, Addresses] = field(default_factory=dict)  # by customer
    conversations: dict[int, Thread] = field(default_factory=dict)  # by id
    current: dict[int, Thread] = field(default_factory=dict)  # customer → not resolved
    complaints: set[int] = field(default_factory=set)  # customers with one open
    answered: set[int] = field(default_factory=set)  # jobs with a survey answer
    surveys: dict[int, SurveyStep] = field(default_factory=dict)  # job → its survey step
    photos: dict[int, JobPhoto] = field(default_factory=dict)  # by id
    job_photos: dict[int, list[JobPhoto]] = field(default_factory=dict)  # before/after, by job
    recipients: dict[int, Recipient] = field(default_factory=dict)  # advertising's customers

    def recipient(self, customer_id: int) -> Recipient:
        found = self.recipients.get(customer_id)
        if found is not None:
            return found
        return Recipient(complaint_open=customer_id in self.complaints)


# The jobs' own conversations, and every conversation of these customers not resolved
# (where they talk now, and where a complaint may be open).
_CONVERSATIONS = sa.select(
    CONVERSATIONS.c.id,
    CONVERSATIONS.c.customer_id,
    CONVERSATIONS.c.channel,
    CONVERSATIONS.c.status,
    CONVERSATIONS.c.complaint,
).where(
    sa.or_(
        CONVERSATIONS.c.id.in_(sa.bindparam("ids", expanding=True)),
        sa.and_(
            CONVERSATIONS.c.customer_id.in_(sa.bindparam("customers", expanding=True)),
            CONVERSATIONS.c.status != "resolved",
        ),
    )
)

_ANSWERED = sa.select(ANSWERS.c.job_id).where(
    ANSWERS.c.job_id.in_(sa.bindparam("jobs", expanding=True))
)

_SURVEYS = sa.select(STEPS.c.job_id, STEPS.c.status, STEPS.c.due_at, STEPS.c.sent_at).where(
    STEPS.c.job_id.in_(sa.bindparam("jobs", expanding=True)), STEPS.c.step == "survey"
)

_PHOTOS = (
    sa.select(
        PHOTOS.c.id,
        PHOTOS.c.job_id,
        PHOTOS.c.stored_name,
        PHOTOS.c.width,
        PHOTOS.c.height,
        PHOTOS.c.content_type,
        PHOTOS.c.phase,
    )
    .where(
        PHOTOS.c.shop_id.in_(sa.bindparam("shops", expanding=True)),
        sa.or_(
            PHOTOS.c.id.in_(sa.bindparam("ids", expanding=True)),
            sa.and_(
                PHOTOS.c.job_id.in_(sa.bindparam("jobs", expanding=True)),
                PHOTOS.c.phase.in_(("before", "after")),
            ),
        ),
    )
    .order_by(PHOTOS.c.id)
)

# The latest word on each consent (the newest row per customer and scope wins).
# When each customer last had each service done: the existing-customer exception.


def load_known(conn: Connection, due: list[Due]) -> Known:
    """Everything the batch needs, one statement per question (a question nobody in the
    batch asks is not asked)."""
    known = Known()
    customers = sorted({d.customer_id for d in due})
    known.addresses.update(addresses_of_many(conn, customers))
    _conversations(conn, known, due, customers)
    survey_jobs = sorted({d.job_id for d in due if d.step in ("survey", "survey_reminder")})
    if survey_jobs:
        known.answered = set(conn.execute(_ANSWERED, {"jobs": survey_jobs}).scalars())
    reminder_jobs = sorted({d.job_id for d in due if d.step == "survey_reminder"})
    if reminder_jobs:
        for row in conn.execute(_SURVEYS, {"jobs": reminder_jobs}):
            known.surveys[row.job_id] = SurveyStep(row.status, row.due_at, row.sent_at)
    _photos(conn, known, due)
    # Consents and purchases matter only to advertising: asked for those customers alone,
    # by the loader the dispatcher uses for the rows it claims.
    advertised = {(d.shop_id, d.customer_id) for d in due if d.kind == "ad"}
    known.recipients.update(load_recipients(conn, advertised))
    return known


def _conversations(conn: Connection, known: Known, due: list[Due], customers: list[int]) -> None:
    ids = sorted({d.conversation_id for d in due if d.conversation_id is not None})
    for row in conn.execute(_CONVERSATIONS, {"ids": ids, "customers": customers}):
        thread = Thread(row.id, row.customer_id, row.channel, row.status, bool(row.complaint))
        known.conversations[thread.id] = thread
        if thread.status != "resolved":
            known.current[thread.customer_id] = thread
        if thread.complaint and thread.status in ACTIVE:
            known.complaints.add(thread.customer_id)


def _photos(conn: Connection, known: Known, due: list[Due]) -> None:
    ids = sorted({int(d.payload["photo_id"]) for d in due if d.step == "photo" and _has_photo(d)})
    jobs = sorted({d.job_id for d in due if d.step == "completion"})
    if not ids and not jobs:
        return
    shops = sorted({d.shop_id for d in due})
    for row in conn.execute(_PHOTOS, {"shops": shops, "ids": ids, "jobs": jobs}):
        photo = JobPhoto(**dict(row._mapping))
        known.photos[photo.id] = photo
        if photo.job_id is not None and photo.phase in ("before", "after"):
            known.job_photos.setdefault(photo.job_id, []).append(photo)


def _has_photo(d: Due) -> bool:
    value = d.payload.get("photo_id")
    return isinstance(value, int) and not isinstance(value, bool)
