"""What a batch of due steps writes, one statement per kind of write however many steps.

The sends are claimed first: ``UPDATE … SET status = 'sent' WHERE id IN (…) AND status =
'planned'``. The batch's rows are already locked (PostgreSQL) or the writer is alone
(SQLite), so the claim takes them all; it stays conditional so that a step settled by
anyone else in between is never sent. Then, in the same transaction: a conversation for
a customer who has none, the messages, their outbox rows (keyed `journey:<key>:job:<id>`,
unique per shop, so a second writer of the same step could insert nothing), the steps'
message, outbox and token, and the photos sent. Steps that do not go are settled or
postponed by one executemany, again only while still planned.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection

from core.jobs import STEPS as STEP_KINDS
from core.jobs import Awaited, await_answers, outbox_key
from core.models import Message, Photo
from core.new_messages import message_added
from core.outbox import OUTBOX, ROWS_ADDED, OutboxRequest
from core.replies import ALIMTALK, Addresses, ReplyPath
from core.writer import after_commit
from scheduler.planners.journey_reads import CONVERSATIONS, STEPS, Due
from scheduler.planners.journey_rules import Postpone, Settle
from scheduler.planners.journey_texts import Composed

MESSAGES = cast(sa.Table, Message.__table__)
PHOTOS = cast(sa.Table, Photo.__table__)


@dataclass(frozen=True, slots=True)
class Sending:
    """A step about to go: where, by which path, saying what."""

    due: Due
    conversation_id: int | None  # None: the customer has none; one is opened on `channel`
    channel: str
    path: ReplyPath
    provider: str | None  # the path's provider; None for the mailbox and the simulator
    to: Addresses
    composed: Composed
    alimtalk: tuple[str, dict[str, str]] | None  # (template, variables) on that path
    token_hash: str | None  # the survey link's secret, hashed
    # The answer the customer now owes (a score, 확인/일정 변경): their next message is read
    # as one until then (core.jobs.awaiting).
    awaited: Awaited | None = None


_CLAIM = (
    sa.update(STEPS)
    .where(STEPS.c.id.in_(sa.bindparam("ids", expanding=True)), STEPS.c.status == "planned")
    .values(
        status="sent",
        reason=None,
        sent_at=sa.bindparam("now"),
        updated_at=sa.bindparam("now"),
    )
    .returning(STEPS.c.id)
)

_SENT = (
    sa.update(STEPS)
    .where(STEPS.c.id == sa.bindparam("b_id"))
    .values(
        message_id=sa.bindparam("b_message"),
        outbox_id=sa.bindparam("b_outbox"),
        token_hash=sa.bindparam("b_token"),
    )
)

_SETTLE = (
    sa.update(STEPS)
    .where(STEPS.c.id == sa.bindparam("b_id"), STEPS.c.status == "planned")
    .values(
        status=sa.bindparam("b_status"),
        reason=sa.bindparam("b_reason"),
        due_at=sa.bindparam("b_due"),
        updated_at=sa.bindparam("b_now"),
    )
)

_PHOTO_SENT = (
    sa.update(PHOTOS)
    .where(PHOTOS.c.id == sa.bindparam("b_photo"), PHOTOS.c.message_id.is_(None))
    .values(message_id=sa.bindparam("b_message"))
)

_CURRENT = sa.select(CONVERSATIONS.c.id, CONVERSATIONS.c.customer_id).where(
    CONVERSATIONS.c.customer_id.in_(sa.bindparam("customers", expanding=True)),
    CONVERSATIONS.c.status != "resolved",
)


def _per_dialect(insert: Any, table: sa.Table, conflict: dict[str, Any], *returning: Any) -> Any:
    return insert(table).on_conflict_do_nothing(**conflict).returning(*returning)


# A customer has one conversation not resolved at a time (a partial unique index): opening
# one that another process has just opened inserts nothing, and theirs is used.
_OPEN_CONVERSATION = {
    name: _per_dialect(
        insert,
        CONVERSATIONS,
        {
            "index_elements": [CONVERSATIONS.c.customer_id],
            # Written out: a bound literal here could not run as one statement for many rows.
            "index_where": sa.text("status != 'resolved'"),
        },
        CONVERSATIONS.c.id,
        CONVERSATIONS.c.customer_id,
    )
    for name, insert in (("sqlite", sqlite_insert), ("postgresql", pg_insert))
}
_ENQUEUE = {
    name: _per_dialect(
        insert,
        OUTBOX,
        {"index_elements": [OUTBOX.c.shop_id, OUTBOX.c.idempotency_key]},
        OUTBOX.c.id,
        OUTBOX.c.idempotency_key,
    )
    for name, insert in (("sqlite", sqlite_insert), ("postgresql", pg_insert))
}
_INSERT_MESSAGES = sa.insert(MESSAGES).returning(MESSAGES.c.id, MESSAGES.c.idempotency_key)


def settle(
    conn: Connection, verdicts: Sequence[tuple[Due, Settle | Postpone]], now: datetime
) -> None:
    """Record why steps do not go (skipped, cancelled, dropped) or wait (postponed)."""
    if not verdicts:
        return
    rows = [
        {
            "b_id": due.id,
            "b_status": verdict.status if isinstance(verdict, Settle) else "planned",
            "b_reason": verdict.reason,
            "b_due": verdict.until if isinstance(verdict, Postpone) else due.due_at,
            "b_now": now,
        }
        for due, verdict in verdicts
    ]
    conn.execute(_SETTLE, rows)


def send(conn: Connection, sendings: Sequence[Sending], now: datetime) -> list[Sending]:
    """Claim the steps, store their messages and queue their outbox rows. Returns the
    steps sent (a step someone else settled meanwhile is not)."""
    if not sendings:
        return []
    claimed = set(conn.execute(_CLAIM, {"ids": [s.due.id for s in sendings], "now": now}).scalars())
    sendings = [s for s in sendings if s.due.id in claimed]
    if not sendings:
        return []
    conversations = _open_conversations(conn, sendings, now)
    messages = _store_messages(conn, sendings, conversations, now)
    outbox = _enqueue(conn, sendings, messages, now)
    conn.execute(
        _SENT,
        [
            {
                "b_id": s.due.id,
                "b_message": messages[_key(s)],
                "b_outbox": outbox.get(_key(s)),
                "b_token": s.token_hash,
            }
            for s in sendings
        ],
    )
    await_answers(conn, [s.awaited for s in sendings if s.awaited is not None])
    photos = [
        {"b_photo": a["photo_id"], "b_message": messages[_key(s)]}
        for s in sendings
        if s.due.step == "photo"
        for a in s.composed.attachments
    ]
    if photos:
        conn.execute(_PHOTO_SENT, photos)
    for s in sendings:
        message_added(
            s.due.shop_id,
            conversations[s.due.customer_id] if s.conversation_id is None else s.conversation_id,
            messages[_key(s)],
            direction="out",
            sender="bot",
            customer_id=s.due.customer_id,
            preview=s.composed.text,
        )
    return sendings


def _key(s: Sending) -> str:
    return outbox_key(s.due.job_id, s.due.key)


def _open_conversations(
    conn: Connection, sendings: Sequence[Sending], now: datetime
) -> dict[int, int]:
    """A conversation for each customer who has none (booked from the 고객 tab), on the
    channel they can be reached by: customer → conversation id."""
    needed = {s.due.customer_id: s for s in sendings if s.conversation_id is None}
    if not needed:
        return {}
    rows = [
        {
            "shop_id": s.due.shop_id,
            "customer_id": customer_id,
            "channel": s.channel,
            "status": "open",
            "complaint": False,
            "unread_count": 0,
            "last_message_at": now,
            "created_at": now,
        }
        for customer_id, s in sorted(needed.items())
    ]
    opened = {
        row.customer_id: row.id for row in conn.execute(_OPEN_CONVERSATION[conn.dialect.name], rows)
    }
    missing = sorted(set(needed) - set(opened))
    if missing:  # another process opened theirs first
        for row in conn.execute(_CURRENT, {"customers": missing}):
            opened[row.customer_id] = row.id
    return opened


def _store_messages(
    conn: Connection, sendings: Sequence[Sending], conversations: dict[int, int], now: datetime
) -> dict[str, int]:
    rows = []
    for s in sendings:
        status = {"mailbox": "held", "simulator": "delivered"}.get(s.path.name, "queued")
        conversation = s.conversation_id or conversations[s.due.customer_id]
        rows.append(
            {
                "shop_id": s.due.shop_id,
                "conversation_id": conversation,
                "customer_id": s.due.customer_id,
                "direction": "out",
                "sender": "bot",
                "channel": s.channel,
                "body": s.composed.text,
                "payload": {
                    "journey": s.due.step,
                    "job_id": s.due.job_id,
                    "step_key": s.due.key,
                    "attachments": s.composed.attachments,
                    "quick_replies": s.composed.quick_replies,
                },
                "status": status,
                "path": s.path.name,
                "idempotency_key": _key(s),
                "created_at": now,
                "delivered_at": now if status == "delivered" else None,
            }
        )
    stored = conn.execute(_INSERT_MESSAGES, rows)
    return {row.idempotency_key: row.id for row in stored}


def _enqueue(
    conn: Connection, sendings: Sequence[Sending], messages: dict[str, int], now: datetime
) -> dict[str, int]:
    rows = []
    for s in sendings:
        if s.provider is None:
            continue
        d, composed = s.due, s.composed
        payload: dict[str, Any] = {
            "text": composed.text,
            "path": s.path.name,
            "attachments": composed.attachments,
            "informational": d.kind == "info",
            "urgent": STEP_KINDS[d.step].urgent,
            "journey": d.step,
            "job_id": d.job_id,
        }
        if composed.subject:
            payload["subject"] = composed.subject
        if s.path is ALIMTALK and s.alimtalk is not None:
            payload["template"], payload["variables"] = s.alimtalk
        kakao = s.path.needs == "kakao"
        request = OutboxRequest(
            shop_id=d.shop_id,
            purpose=f"journey:{d.step}",
            provider=s.provider,
            recipient={
                "phone": s.to.phone,
                "kakao_user_key": s.to.kakao_key if kakao else None,
                "kakao_key_type": s.to.kakao_key_type if kakao else None,
            },
            payload=payload,
            idempotency_key=_key(s),
            now=now,
            message_id=messages[_key(s)],
            kind=d.kind,
            customer_id=d.customer_id,
        )
        rows.append(request.row())
    if not rows:
        return {}
    stored = conn.execute(_ENQUEUE[conn.dialect.name], rows)
    after_commit(ROWS_ADDED)
    return {row.idempotency_key: row.id for row in stored}
