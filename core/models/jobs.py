"""A job (a booked visit) and its journey: the steps planned around it, the customer's
score afterwards, and the tokens that let other software reach a shop's jobs.

Statuses and what moves them live in `core/jobs/`; these are the columns.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from core.models.base import Base, Id


class Job(Base):
    """One visit to a customer: a service, a place, a time window, a price."""

    __tablename__ = "jobs"
    __table_args__ = (
        # The 작업 tab's days and the ICS feed: a shop's jobs by start time.
        Index("ix_jobs_shop_start", "shop_id", "starts_at"),
        # A customer's job history, newest first.
        Index("ix_jobs_customer", "shop_id", "customer_id", "starts_at"),
        # A booking pushed twice through the API is one job (NULLs never collide).
        UniqueConstraint("shop_id", "external_ref"),
    )
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    shop_id: Mapped[int] = mapped_column(ForeignKey("shops.id"))
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"))
    conversation_id: Mapped[int | None] = mapped_column(ForeignKey("conversations.id"))
    service: Mapped[str] = mapped_column(String(40))  # the key in [[shops.services]]
    # The service's name when booked: the catalogue may change, the job's history may not.
    service_name: Mapped[str] = mapped_column(String(100))
    address: Mapped[str] = mapped_column(Text, default="")
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime]  # the arrival window's end ("14:00–16:00")
    # booked | on_the_way | in_progress | done | cancelled | no_show
    status: Mapped[str] = mapped_column(String(12), default="booked")
    price_krw: Mapped[int | None] = mapped_column(Integer)  # None: to be quoted on site
    notes: Mapped[str] = mapped_column(Text, default="")
    eta_at: Mapped[datetime | None]  # told the customer when the owner set out
    source: Mapped[str] = mapped_column(String(20), default="console")  # console | api | demo
    external_ref: Mapped[str | None] = mapped_column(String(100))  # the API caller's own id
    # 1 when booked, one more at each reschedule: the journey's steps for this schedule are
    # keyed by it ("reminder:r2"), and an API caller may send it back to update safely.
    revision: Mapped[int] = mapped_column(Integer, default=1)
    # What the customer answered to the reminder: confirmed | change_requested
    customer_reply: Mapped[str | None] = mapped_column(String(20))
    reason: Mapped[str | None] = mapped_column(Text)  # why it was cancelled
    booked_at: Mapped[datetime]
    on_the_way_at: Mapped[datetime | None]
    started_at: Mapped[datetime | None]
    done_at: Mapped[datetime | None]
    cancelled_at: Mapped[datetime | None]
    no_show_at: Mapped[datetime | None]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class JourneyStep(Base):
    """One message of a job's journey, planned for a moment; the planner sends it then.

    `key` names the step within its job ("reminder", "aftercare:2", "photo:41"); the outbox
    row it becomes is keyed `journey:<key>:job:<job_id>`, so planning or sending it twice,
    from any number of processes, writes it once.
    """

    __tablename__ = "journey_steps"
    __table_args__ = (
        UniqueConstraint("shop_id", "job_id", "key"),
        # The planner's one question: which planned steps are due?
        Index("ix_journey_steps_due", "status", "due_at"),
        Index("ix_journey_steps_job", "job_id"),
    )
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    shop_id: Mapped[int] = mapped_column(ForeignKey("shops.id"))
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id"))
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"))
    # confirmation | reminder | on_my_way | photo | completion | aftercare | survey |
    # survey_reminder | review
    step: Mapped[str] = mapped_column(String(30))
    key: Mapped[str] = mapped_column(String(60))
    kind: Mapped[str] = mapped_column(String(4), default="info")  # info | ad (PROTOCOLS §4.2)
    due_at: Mapped[datetime]
    # planned | sent | skipped | cancelled | dropped (the policy said no)
    status: Mapped[str] = mapped_column(String(12), default="planned")
    reason: Mapped[str | None] = mapped_column(Text)  # why skipped, cancelled or dropped
    # What the step's text needs that the job does not hold (an ETA, a photo, a tip).
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    outbox_id: Mapped[int | None] = mapped_column(ForeignKey("outbox.id"))
    message_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id"))
    # SHA-256 of the secret in the step's link (the survey page); the secret is never stored.
    token_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]


class SurveyAnswer(Base):
    """The customer's score for a job: one per job, a later answer replaces an earlier one."""

    __tablename__ = "survey_answers"
    __table_args__ = (
        UniqueConstraint("job_id"),
        Index("ix_survey_answers_shop_time", "shop_id", "answered_at"),
    )
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    shop_id: Mapped[int] = mapped_column(ForeignKey("shops.id"))
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id"))
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"))
    score: Mapped[int] = mapped_column(Integer)  # 1–5
    comment: Mapped[str | None] = mapped_column(Text)
    channel: Mapped[str] = mapped_column(String(20))  # kakao | sms | simulator | web | console
    answered_at: Mapped[datetime]
    created_at: Mapped[datetime]


class ApiToken(Base):
    """A secret that lets other software reach one shop: the jobs API or the calendar feed.

    Shown once when made, stored as its SHA-256; revoked, never deleted (the audit keeps it).
    """

    __tablename__ = "api_tokens"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    shop_id: Mapped[int] = mapped_column(ForeignKey("shops.id"), index=True)
    scope: Mapped[str] = mapped_column(String(12))  # api | calendar
    name: Mapped[str] = mapped_column(String(60), server_default=text("''"))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    hint: Mapped[str] = mapped_column(String(12))  # the token's last characters, to tell it apart
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime]
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]
