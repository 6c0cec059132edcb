"""The data: SQLAlchemy 2 typed models. Every tenant row carries `shop_id`.

Storage keeps timezone-aware UTC datetimes only; local time (KST) appears at the edges.
Changing a model means writing an Alembic migration in `core/migrations/versions/`.
The column types and the declarative base are in `base.py`; a job and its journey in
`jobs.py`; referrals and coupons in `referrals.py`; shops, customers, conversations,
messages and the outbox here.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from core.models.base import NAMING, Base, Id, UTCDateTime
from core.models.jobs import ApiToken, Job, JourneyStep, SurveyAnswer
from core.models.referrals import Coupon, Referral

__all__ = [
    "NAMING",
    "ApiToken",
    "AuditEntry",
    "Base",
    "Consent",
    "ConsoleSession",
    "Conversation",
    "Coupon",
    "Customer",
    "CustomerIdentity",
    "DeliveryEvent",
    "Id",
    "Job",
    "JourneyStep",
    "LoginAttempt",
    "Message",
    "OutboxItem",
    "Photo",
    "Referral",
    "SavedReply",
    "Shop",
    "SurveyAnswer",
    "UTCDateTime",
    "User",
]


class Shop(Base):
    """A business. Its settings live in the config file; its changing state lives here."""

    __tablename__ = "shops"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    slug: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    # available | on_site | off — what the customer is told about the owner
    owner_status: Mapped[str] = mapped_column(String(20), default="available")
    owner_busy_until: Mapped[datetime | None]
    owner_status_changed_at: Mapped[datetime | None]
    created_at: Mapped[datetime]


class User(Base):
    """A person who logs in to the console: the owner or staff."""

    __tablename__ = "users"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    shop_id: Mapped[int] = mapped_column(ForeignKey("shops.id"), index=True)
    username: Mapped[str] = mapped_column(String(80), unique=True)
    password_hash: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(20), default="owner")  # owner | staff
    # How replies and notes are signed ("사장님", "김한빛"); empty: see accounts.shown_name.
    display_name: Mapped[str] = mapped_column(String(40), server_default=text("''"))
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime]


class Customer(Base):
    __tablename__ = "customers"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    shop_id: Mapped[int] = mapped_column(ForeignKey("shops.id"), index=True)
    name: Mapped[str | None] = mapped_column(String(100))
    # bronze | silver | gold, from the completed jobs (core/tiers.py); None before the first.
    tier: Mapped[str | None] = mapped_column(String(10))
    tags: Mapped[list[Any]] = mapped_column(default=list)
    notes: Mapped[str] = mapped_column(Text, default="")
    # An answer the shop awaits from this customer — "survey:<job id>" (a score) or
    # "reminder:<job id>" (확인 / 일정 변경) — until `awaiting_until`. Kept on the customer,
    # not a conversation: a week after the job the conversation is often resolved, and the
    # answer opens a new one. The inbound path reads it with the customer's address, so an
    # ordinary message costs no extra statement (core/jobs/awaiting.py).
    awaiting: Mapped[str | None] = mapped_column(String(40))
    awaiting_until: Mapped[datetime | None]
    # When the customer was thanked for reaching gold: once, however often they reach it.
    gold_thanked_at: Mapped[datetime | None]
    # The customer's own referral code ("K7Q2M"), given out in thanks and review messages;
    # set when first needed (core/referrals.py), unique within the shop.
    referral_code: Mapped[str | None] = mapped_column(String(12))
    created_at: Mapped[datetime]


Index("uq_customers_referral_code", Customer.shop_id, Customer.referral_code, unique=True)


class CustomerIdentity(Base):
    """One address of a customer on one channel; unique per shop."""

    __tablename__ = "customer_identities"
    __table_args__ = (UniqueConstraint("shop_id", "kind", "value"),)
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    shop_id: Mapped[int] = mapped_column(ForeignKey("shops.id"))
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    # kakao_bot_user | kakao_plusfriend | kakao_app_user | phone (E.164)
    kind: Mapped[str] = mapped_column(String(20))
    value: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime]


class Consent(Base):
    """A consent event (granted or withdrawn); the latest per scope wins."""

    __tablename__ = "consents"
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    shop_id: Mapped[int] = mapped_column(ForeignKey("shops.id"))
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    scope: Mapped[str] = mapped_column(String(20))  # marketing | night
    granted: Mapped[bool] = mapped_column(Boolean)
    source: Mapped[str] = mapped_column(String(40))  # keyword:수신거부, console, provider:1061…
    created_at: Mapped[datetime]


class Conversation(Base):
    __tablename__ = "conversations"
    __table_args__ = (
        # One conversation is open per customer at a time.
        Index(
            "uq_conversations_open_customer",
            "customer_id",
            unique=True,
            sqlite_where=text("status != 'resolved'"),
            postgresql_where=text("status != 'resolved'"),
        ),
        Index("ix_conversations_shop_waiting", "shop_id", "status", "waiting_since"),
        # A customer's latest activity, read from the index alone (the 고객 tab's order).
        Index("ix_conversations_customer_activity", "shop_id", "customer_id", "last_message_at"),
        # The complaint-deadline planner's question: which complaints fall due soon?
        Index("ix_conversations_complaint_due", "complaint_due_at"),
    )
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    shop_id: Mapped[int] = mapped_column(ForeignKey("shops.id"))
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"))
    channel: Mapped[str] = mapped_column(String(20))  # kakao | sms | simulator
    status: Mapped[str] = mapped_column(String(20), default="open")  # open | snoozed | resolved
    # Set by the first customer message nobody has answered yet; cleared by the owner's reply.
    waiting_since: Mapped[datetime | None]
    sla_due_at: Mapped[datetime | None]
    first_response_at: Mapped[datetime | None]
    first_response_seconds: Mapped[int | None] = mapped_column(Integer)
    complaint: Mapped[bool] = mapped_column(Boolean, default=False)
    complaint_due_at: Mapped[datetime | None]
    handoff_requested_at: Mapped[datetime | None]
    snoozed_until: Mapped[datetime | None]  # status "snoozed" wakes up at this time
    unread_count: Mapped[int] = mapped_column(Integer, default=0)
    last_message_at: Mapped[datetime]
    # Kakao sends no request id: an identical payload within a short window is a resend.
    last_inbound_digest: Mapped[str | None] = mapped_column(String(64))
    last_inbound_at: Mapped[datetime | None]
    last_inbound_message_id: Mapped[int | None] = mapped_column(Id)
    created_at: Mapped[datetime]
    resolved_at: Mapped[datetime | None]


class Message(Base):
    __tablename__ = "messages"
    __table_args__ = (
        UniqueConstraint("shop_id", "idempotency_key"),
        Index("ix_messages_conversation", "conversation_id", "id"),
        Index("ix_messages_mailbox", "customer_id", "status"),
    )
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    shop_id: Mapped[int] = mapped_column(ForeignKey("shops.id"))
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id"))
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"))
    # in | out | note (an internal note: shown in the console, never sent)
    direction: Mapped[str] = mapped_column(String(4))
    sender: Mapped[str] = mapped_column(String(10))  # customer | bot | owner | system
    channel: Mapped[str] = mapped_column(String(20))  # kakao | sms | simulator
    body: Mapped[str] = mapped_column(Text)
    # quick replies offered, attachments, the handler that answered…
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # received | queued | held (mailbox) | sent | delivered | failed
    status: Mapped[str] = mapped_column(String(12))
    # how it travelled: skill_response | mailbox | event_api | alimtalk | sms | lms | mms …
    path: Mapped[str | None] = mapped_column(String(20))
    provider: Mapped[str | None] = mapped_column(String(40))
    provider_message_id: Mapped[str | None] = mapped_column(String(100))
    idempotency_key: Mapped[str | None] = mapped_column(String(120))
    in_reply_to_id: Mapped[int | None] = mapped_column(Id)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    delivered_at: Mapped[datetime | None]


class OutboxItem(Base):
    """One message to send, written in the same transaction as whatever caused it."""

    __tablename__ = "outbox"
    __table_args__ = (
        UniqueConstraint("shop_id", "idempotency_key"),
        Index("ix_outbox_due", "status", "not_before"),
    )
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    shop_id: Mapped[int] = mapped_column(ForeignKey("shops.id"))
    message_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id"))
    purpose: Mapped[str] = mapped_column(String(40))  # owner_notification | reply | journey:…
    provider: Mapped[str] = mapped_column(String(40))
    recipient: Mapped[dict[str, Any]] = mapped_column()
    payload: Mapped[dict[str, Any]] = mapped_column()
    # info | ad: what the send-time policy (scheduler/policy.py) holds it to (PROTOCOLS §4.2)
    kind: Mapped[str] = mapped_column(String(4), server_default=text("'info'"))
    # Whom it goes to, when that is a customer: their consents and complaints decide.
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id"))
    # pending | sending | sent | dead | unknown | cancelled | dropped (the policy said no)
    status: Mapped[str] = mapped_column(String(12), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    not_before: Mapped[datetime]
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_until: Mapped[datetime | None]
    idempotency_key: Mapped[str] = mapped_column(String(160))
    provider_ref: Mapped[str | None] = mapped_column(String(100))
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]


class AuditEntry(Base):
    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_shop_time", "shop_id", "created_at"),)
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    shop_id: Mapped[int | None] = mapped_column(ForeignKey("shops.id"))
    actor: Mapped[str] = mapped_column(String(60))  # system | user:<id> | customer:<id>
    action: Mapped[str] = mapped_column(String(60))
    subject: Mapped[str | None] = mapped_column(String(60))  # conversation:12, customer:7…
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime]


# --------------------------------------------------------------------------- the console

# Usernames are unique whatever their case: "Hanbit" and "hanbit" are one account. The
# application stores them lowercased; this index makes the database hold it to that.
Index("uq_users_username_lower", func.lower(User.username), unique=True)


class ConsoleSession(Base):
    """A login to the owner console. The cookie holds a random token; we keep its hash only."""

    __tablename__ = "console_sessions"
    __table_args__ = (Index("ix_console_sessions_expires", "expires_at"),)
    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # SHA-256 hex of the token
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    shop_id: Mapped[int] = mapped_column(ForeignKey("shops.id"))
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]
    last_seen_at: Mapped[datetime]  # written at most once a minute
    expires_at: Mapped[datetime]  # the absolute limit, fixed at login
    user_agent: Mapped[str | None] = mapped_column(String(200))
    ip: Mapped[str | None] = mapped_column(String(64))


class LoginAttempt(Base):
    """A console login attempt not (yet) known to have succeeded; counted for throttling.

    The row is written before the password is checked and deleted when it turns out right,
    so whatever remains within the window is a failure. `username` is what was typed
    (lowercased), whether or not such an account exists; `ip` is the client address (an
    IPv6 client counts as its /64).
    """

    __tablename__ = "login_attempts"
    __table_args__ = (
        Index("ix_login_attempts_username", "username", "created_at"),
        Index("ix_login_attempts_ip", "ip", "created_at"),
        Index("ix_login_attempts_created", "created_at"),
    )
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    username: Mapped[str] = mapped_column(String(80))
    ip: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]


class SavedReply(Base):
    """A canned response the owner sends often; Jinja variables such as {{ customer.name }}."""

    __tablename__ = "saved_replies"
    __table_args__ = (Index("ix_saved_replies_shop", "shop_id", "title"),)
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    shop_id: Mapped[int] = mapped_column(ForeignKey("shops.id"))
    title: Mapped[str] = mapped_column(String(60))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class Photo(Base):
    """An uploaded image, re-encoded and stored outside any static root under a random name."""

    __tablename__ = "photos"
    __table_args__ = (Index("ix_photos_conversation", "conversation_id"),)
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    shop_id: Mapped[int] = mapped_column(ForeignKey("shops.id"))
    conversation_id: Mapped[int | None] = mapped_column(ForeignKey("conversations.id"))
    message_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id"))
    # random, never derived from the upload's own name
    stored_name: Mapped[str] = mapped_column(String(80), unique=True)
    original_name: Mapped[str] = mapped_column(String(200))  # shown escaped, never used as a path
    content_type: Mapped[str] = mapped_column(String(40))
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    size_bytes: Mapped[int] = mapped_column(Integer)
    uploaded_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    # A photo of a job's work, and when in it: before | during | after
    job_id: Mapped[int | None] = mapped_column(ForeignKey("jobs.id"), index=True)
    phase: Mapped[str | None] = mapped_column(String(10))
    created_at: Mapped[datetime]


# --------------------------------------------------------------------------- delivery reports

# Delivery reports name a message by the provider's id: found within the shop.
Index("ix_messages_provider_message", Message.shop_id, Message.provider_message_id)


class DeliveryEvent(Base):
    """One delivery report as the provider sent it; the unique key makes a redelivery a no-op."""

    __tablename__ = "delivery_events"
    __table_args__ = (UniqueConstraint("shop_id", "provider", "event_id"),)
    id: Mapped[int] = mapped_column(Id, primary_key=True)
    shop_id: Mapped[int] = mapped_column(ForeignKey("shops.id"))
    provider: Mapped[str] = mapped_column(String(40))  # solapi
    event_id: Mapped[str] = mapped_column(String(100))  # SOLAPI eventDataId
    provider_message_id: Mapped[str | None] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(12))  # accepted | sent | delivered | failed
    code: Mapped[str | None] = mapped_column(String(20))  # the vendor's status code
    detail: Mapped[str | None] = mapped_column(Text)  # the vendor's status message
    received_at: Mapped[datetime]
