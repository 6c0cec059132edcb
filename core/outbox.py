"""The outbox queue: what the rest of dangol calls to send a message later.

Rows are added in the caller's transaction (`enqueue`), withdrawn before they go
(`cancel`), or given a fresh start by the owner (`requeue`); sending them is the
scheduler's job (scheduler/dispatch/). Adding or requeueing registers `ROWS_ADDED` to
follow the commit, which the app wires to waking the dispatcher: no caller has to
remember. The photo types are here because the app supplies the resolver the dispatcher
calls to turn an attachment into something a vendor takes.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection

from core.models import Message, OutboxItem
from core.writer import after_commit

OUTBOX = cast(sa.Table, OutboxItem.__table__)
MESSAGES = cast(sa.Table, Message.__table__)

STATUSES = ("pending", "sending", "sent", "unknown", "dead", "cancelled", "dropped")
KINDS = ("info", "ad")  # informational or advertising (PROTOCOLS §4.2)
WATCHED = ("pending", "sending", "unknown", "dead")  # what stats() counts

IDEMPOTENCY_KEY_MAX = 160
PURPOSE_MAX = 40

# --------------------------------------------------------------------------- enqueue


@dataclass(frozen=True, slots=True)
class RowsAdded:
    """After commit: the outbox has rows that may be due now (the dispatcher should look)."""


ROWS_ADDED = RowsAdded()


def _enqueue_statement(insert: Callable[[sa.Table], Any]) -> Any:
    return (
        insert(OUTBOX)
        .on_conflict_do_nothing(index_elements=[OUTBOX.c.shop_id, OUTBOX.c.idempotency_key])
        .returning(OUTBOX.c.id)
    )


# Built once: this runs inside the Kakao webhook's transaction.
_ENQUEUE = {
    "sqlite": _enqueue_statement(sqlite_insert),
    "postgresql": _enqueue_statement(pg_insert),
}
_ENQUEUE_MANY = {
    "sqlite": sqlite_insert(OUTBOX).on_conflict_do_nothing(
        index_elements=[OUTBOX.c.shop_id, OUTBOX.c.idempotency_key]
    ),
    "postgresql": pg_insert(OUTBOX).on_conflict_do_nothing(
        index_elements=[OUTBOX.c.shop_id, OUTBOX.c.idempotency_key]
    ),
}


@dataclass(frozen=True, slots=True)
class OutboxRequest:
    """A message to send later, checked when made: what `enqueue` and `enqueue_many` take.

    `recipient` and `payload` are what the dispatcher hands the provider (see
    `scheduler/dispatch/outgoing.py build_outgoing`): `payload["text"]` is required; `not_before`
    holds the row until then (a day-before reminder); `now` is when it was asked for.
    """

    shop_id: int
    purpose: str
    provider: str
    recipient: Mapping[str, Any]
    payload: Mapping[str, Any]
    idempotency_key: str
    now: datetime
    message_id: int | None = None
    not_before: datetime | None = None
    # What the send-time policy holds the row to: "info" or "ad" (PROTOCOLS §4.2), and the
    # customer whose consents and complaints it checks (None: the owner, or no one's).
    kind: str = "info"
    customer_id: int | None = None

    def __post_init__(self) -> None:
        if not self.idempotency_key or len(self.idempotency_key) > IDEMPOTENCY_KEY_MAX:
            raise ValueError(f"idempotency_key must be 1–{IDEMPOTENCY_KEY_MAX} characters")
        if not self.purpose or len(self.purpose) > PURPOSE_MAX:
            raise ValueError(f"purpose must be 1–{PURPOSE_MAX} characters")
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}")
        text = self.payload.get("text")
        if not isinstance(text, str) or not text:
            raise ValueError("an outbox payload needs a non-empty 'text'")

    def row(self) -> dict[str, Any]:
        """The new outbox row's columns."""
        return {
            "shop_id": self.shop_id,
            "message_id": self.message_id,
            "purpose": self.purpose,
            "provider": self.provider,
            "recipient": dict(self.recipient),
            "payload": dict(self.payload),
            "status": "pending",
            "attempts": 0,
            "not_before": self.not_before or self.now,
            "idempotency_key": self.idempotency_key,
            "kind": self.kind,
            "customer_id": self.customer_id,
            "created_at": self.now,
            "updated_at": self.now,
        }


def enqueue(conn: Connection, request: OutboxRequest) -> int | None:
    """Add a message to send, in the caller's transaction (call it inside a unit).

    Returns the new row's id, or None when a row with this idempotency key exists already
    for the shop (nothing is inserted then). Once the unit commits the dispatcher is woken
    (`ROWS_ADDED`), so urgent rows go out before the next tick.
    """
    found = conn.execute(_ENQUEUE[conn.dialect.name], request.row()).first()
    if found is None:
        return None
    after_commit(ROWS_ADDED)
    return int(found[0])


def enqueue_many(conn: Connection, requests: Iterable[OutboxRequest]) -> None:
    """`enqueue` for many requests in one statement (keys already taken are skipped)."""
    rows = [request.row() for request in requests]
    if rows:
        conn.execute(_ENQUEUE_MANY[conn.dialect.name], rows)
        after_commit(ROWS_ADDED)


_CANCEL = (
    sa.update(OUTBOX)
    .where(
        OUTBOX.c.shop_id == sa.bindparam("p_shop"),
        OUTBOX.c.idempotency_key == sa.bindparam("p_key"),
        OUTBOX.c.status.in_(("pending", "unknown")),
    )
    .values(
        status="cancelled", lease_owner=None, lease_until=None, updated_at=sa.bindparam("p_now")
    )
)


def cancel(conn: Connection, *, shop_id: int, idempotency_key: str, now: datetime) -> bool:
    """Withdraw a row that has not gone out (a cancelled booking's reminder). True if done.

    A row being sent right now is not touched: it may already be with the provider.
    """
    params = {"p_shop": shop_id, "p_key": idempotency_key, "p_now": now}
    return conn.execute(_CANCEL, params).rowcount == 1


_REQUEUE = (
    sa.update(OUTBOX)
    .where(
        OUTBOX.c.shop_id == sa.bindparam("p_shop"),
        OUTBOX.c.id == sa.bindparam("p_id"),
        OUTBOX.c.status == "dead",
    )
    .values(
        status="pending",
        attempts=0,
        not_before=sa.bindparam("p_now"),
        updated_at=sa.bindparam("p_now"),
    )
)


def requeue(conn: Connection, *, shop_id: int, outbox_id: int, now: datetime) -> bool:
    """Give a dead row a fresh attempt budget (the owner pressed "retry"). True if done."""
    params = {"p_shop": shop_id, "p_id": outbox_id, "p_now": now}
    if conn.execute(_REQUEUE, params).rowcount != 1:
        return False
    after_commit(ROWS_ADDED)
    return True


# --------------------------------------------------------------------------- photos


@dataclass(frozen=True, slots=True)
class AttachedPhoto:
    """A photo attachment made ready for vendors (by the app's `PhotoResolver`)."""

    path: str | None  # a JPEG file within MMS limits; only when asked for
    url: str | None  # absolute http(s) URL anyone may fetch; None without a public address


class PhotoUnavailable(Exception):
    """The attachment's photo cannot be had any more (its file is gone)."""


# (attachment, with_file) → the photo; `with_file` asks for the MMS-ready file as well as
# the URL. Raises PhotoUnavailable when the photo is gone for good, OSError for trouble
# that may pass. Async: making the MMS copy is file and CPU work.
PhotoResolver = Callable[[Mapping[str, Any], bool], Awaitable[AttachedPhoto]]
