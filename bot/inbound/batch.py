"""What a batch carries from stage to stage: each customer's conversation as the batch
sees it (`Thread`), and each message on its way through (`Received`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.engine import Row

from bot.inbound.arrival import Arrival
from bot.kakao import QuickReply
from bot.routing import Effects, Reply

# Kakao sends no request id, so an identical payload from the same person this soon after
# the first is taken as a resend, not as a new message.
RESEND_WINDOW = timedelta(seconds=60)

IdentityKey = tuple[int, str, str]  # (shop id, kind, value)
StateRow = Row[*tuple[Any, ...]]  # a row of STATE


def first_identity(a: Arrival) -> IdentityKey:
    kind, value = a.identities[0]
    return (a.shop_id, kind, value)


@dataclass(frozen=True, slots=True)
class Answer:
    """An answer the shop awaited, as recorded: a score for a job, or a reply to its
    reminder (confirmed | change_requested), with what the reply's words need."""

    what: str  # survey | reminder
    job_id: int
    service: str
    score: int | None = None
    low: bool = False  # a score that opens a complaint
    reply: str | None = None
    starts_at: datetime | None = None
    ends_at: datetime | None = None


@dataclass(eq=False)
class Thread:
    """A customer's open conversation as this batch sees it, carried from message to message."""

    first: Arrival  # the batch's first message from this customer
    customer_id: int | None  # None until the new customer is stored
    conversation_id: int | None  # None until the new conversation is stored
    waiting_since: datetime | None = None
    complaint: bool = False
    last_digest: str | None = None
    last_at: datetime | None = None
    last_message: Received | int | None = None  # the latest stored inbound message
    mailbox: int = 0  # owner replies held for the customer
    # The answer the shop awaits from the customer ("survey:12"), until when; cleared once
    # a message of this batch answered it (core/jobs/awaiting.py).
    awaiting: str | None = None
    awaiting_until: datetime | None = None


@dataclass(eq=False)
class Received:
    """One arrival on its way through the batch."""

    arrival: Arrival
    thread: Thread
    key: str = field(init=False)  # idempotency: the same request within a minute
    resend: bool = False
    original: Received | int | None = None  # what a resend repeats, until `id` is known
    id: int | None = None  # the inbound row: its own, or for a resend the original's
    reply: Reply | None = None
    effects: Effects = field(default_factory=Effects)
    change: dict[str, Any] = field(default_factory=dict)  # the conversation's UPDATE
    notify: str | None = None  # the owner notification's key, when one is due
    mailbox: tuple[tuple[str, str], ...] = ()  # (sender, body) held for the customer
    mailbox_ids: tuple[int, ...] = ()
    mailbox_quick: tuple[QuickReply, ...] = ()  # a held question's buttons
    # SMS: the waiting period's acknowledgement key, when the reply is one (sent late)
    ack_key: str | None = None
    silent: bool = False  # SMS: nothing to send (a follow-up's ack, or the carrier answered)
    answer: Answer | None = None  # an awaited answer it gave (bot.inbound.awaited), recorded

    def __post_init__(self) -> None:
        a = self.arrival
        if a.channel == "sms":  # the digest is the provider's message id: a resend any time
            self.key = f"sms:{a.digest}"
            return
        bucket = int(a.received_at.timestamp() // RESEND_WINDOW.total_seconds())
        self.key = f"{a.channel}:{a.digest}:{bucket}"

    @property
    def customer_id(self) -> int:
        assert self.thread.customer_id is not None
        return self.thread.customer_id

    @property
    def conversation_id(self) -> int:
        assert self.thread.conversation_id is not None
        return self.thread.conversation_id
