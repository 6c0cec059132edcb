"""What the owner does with a conversation: read it, reply, add a note, send a failed
message again, resolve, reopen and snooze.

Conversation events the owner causes — resolved, reopened, snoozed — are also written into
the timeline as system messages (direction "note", sender "system": never sent, never
counted as unread, left out of the inbox preview).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from bot.console.changes import NotFound, Refused, audit
from bot.console.viewer import Viewer
from bot.live import announce, conversation_event, message_event
from bot.photos.records import link_to_message
from core.config import Delivery
from core.db import Unit
from core.models import Conversation, Message, OutboxItem
from core.outbox import requeue
from core.replies import Sent, owner_reply

C = Conversation
NONCE_PREFIX = "console:"


@dataclass(frozen=True)
class _Conv:
    id: int
    customer_id: int
    channel: str
    status: str
    unread_count: int


def _conversation(conn: Connection, viewer: Viewer, conversation_id: int) -> _Conv:
    row = conn.execute(
        sa.select(C.id, C.customer_id, C.channel, C.status, C.unread_count).where(
            viewer.scope(C.shop_id), C.id == conversation_id
        )
    ).first()
    if row is None:
        raise NotFound(f"conversation {conversation_id}")
    return _Conv(row.id, row.customer_id, row.channel, row.status, row.unread_count)


def _already_sent(conn: Connection, viewer: Viewer, nonce: str | None) -> int | None:
    """The message a resubmitted form (double tap, retried request) already created."""
    if not nonce:
        return None
    found: int | None = conn.execute(
        sa.select(Message.id).where(
            viewer.scope(Message.shop_id), Message.idempotency_key == NONCE_PREFIX + nonce
        )
    ).scalar()
    return found


def _system_event(
    conn: Connection, viewer: Viewer, conv: _Conv, event: str, now: datetime, **detail: Any
) -> int:
    message_id: int = conn.execute(
        sa.insert(Message)
        .values(
            shop_id=viewer.shop_id,
            conversation_id=conv.id,
            customer_id=conv.customer_id,
            direction="note",
            sender="system",
            channel=conv.channel,
            body=f"[{event}]",
            payload={"event": event, "by": viewer.name, **detail},
            status="delivered",
            path=None,
            created_at=now,
            delivered_at=now,
        )
        .returning(Message.id)
    ).scalar_one()
    return message_id


def mark_read(viewer: Viewer, conversation_id: int) -> Unit[bool]:
    """Unread back to 0 (the page's script posts this when the owner has seen it)."""

    def unit(conn: Connection) -> bool:
        conv = _conversation(conn, viewer, conversation_id)
        if not conv.unread_count:
            return False
        conn.execute(sa.update(C).where(C.id == conv.id).values(unread_count=0))
        announce(viewer.shop_id, conversation_event(conv.id, "read"))
        return True

    return unit


@dataclass(frozen=True)
class Posted:
    message_id: int
    sent: Sent | None  # None for a note, or when the nonce showed it was posted before
    repeated: bool = False


def reply(
    viewer: Viewer,
    conversation_id: int,
    text: str,
    delivery: Delivery,
    now: datetime,
    *,
    nonce: str | None = None,
    attachments: list[dict[str, Any]] | None = None,
) -> Unit[Posted]:
    """The owner's reply, by the path `owner_reply` chooses (raises `NoPath` if none), with
    the photos in `attachments` (from `bot.photos.records.find_attachment`) marked as sent
    with it."""

    def unit(conn: Connection) -> Posted:
        conv = _conversation(conn, viewer, conversation_id)
        if conv.status == "resolved":
            raise Refused("resolved")
        earlier = _already_sent(conn, viewer, nonce)
        if earlier is not None:
            return Posted(earlier, None, repeated=True)
        sent = owner_reply(
            viewer.shop_id,
            conv.id,
            text,
            delivery,
            now,
            author=viewer.name,
            attachments=attachments,
        )(conn)
        for attachment in attachments or ():
            link_to_message(conn, viewer.shop_id, int(attachment["photo_id"]), sent.message_id)
        if nonce:
            conn.execute(
                sa.update(Message)
                .where(Message.id == sent.message_id)
                .values(idempotency_key=NONCE_PREFIX + nonce)
            )
        # Answering is handling it: a snoozed conversation is back in view.
        conn.execute(
            sa.update(C)
            .where(C.id == conv.id)
            .values(last_message_at=now, status="open", snoozed_until=None)
        )
        audit(
            conn,
            viewer,
            "reply",
            f"conversation:{conv.id}",
            now,
            {"message_id": sent.message_id, "path": sent.path.name},
        )
        announce(
            viewer.shop_id,
            message_event(conv.id, sent.message_id, direction="out", sender="owner"),
        )
        return Posted(sent.message_id, sent)

    return unit


def send_again(viewer: Viewer, conversation_id: int, message_id: int, now: datetime) -> Unit[bool]:
    """The owner's "다시 보내기" on a failed message: its outbox row gets a fresh attempt
    budget. Refused unless the message failed (a message that may have arrived — "cannot
    tell" — is failed too: sending it again is the owner's call, made here)."""

    def unit(conn: Connection) -> bool:
        conv = _conversation(conn, viewer, conversation_id)
        message = conn.execute(
            sa.select(Message.status).where(
                viewer.scope(Message.shop_id),
                Message.id == message_id,
                Message.conversation_id == conv.id,
                Message.direction == "out",
            )
        ).first()
        if message is None:
            raise NotFound(f"message {message_id}")
        outbox_id = conn.execute(
            sa.select(OutboxItem.id).where(
                viewer.scope(OutboxItem.shop_id), OutboxItem.message_id == message_id
            )
        ).scalar()
        if message.status != "failed" or outbox_id is None:
            raise Refused("not_failed")
        if not requeue(conn, shop_id=viewer.shop_id, outbox_id=outbox_id, now=now):
            raise Refused("not_failed")
        conn.execute(
            sa.update(Message).where(Message.id == message_id).values(status="queued", error=None)
        )
        audit(conn, viewer, "send_again", f"message:{message_id}", now)
        announce(
            viewer.shop_id, message_event(conv.id, message_id, direction="out", sender="owner")
        )
        return True

    return unit


def add_note(
    viewer: Viewer, conversation_id: int, text: str, now: datetime, *, nonce: str | None = None
) -> Unit[Posted]:
    """An internal note: shown in the console only; never queued, never in the mailbox."""

    def unit(conn: Connection) -> Posted:
        conv = _conversation(conn, viewer, conversation_id)
        earlier = _already_sent(conn, viewer, nonce)
        if earlier is not None:
            return Posted(earlier, None, repeated=True)
        message_id: int = conn.execute(
            sa.insert(Message)
            .values(
                shop_id=viewer.shop_id,
                conversation_id=conv.id,
                customer_id=conv.customer_id,
                direction="note",
                sender="owner",
                channel=conv.channel,
                body=text,
                payload={"author": viewer.name},
                status="delivered",
                path=None,
                idempotency_key=NONCE_PREFIX + nonce if nonce else None,
                created_at=now,
                delivered_at=now,
            )
            .returning(Message.id)
        ).scalar_one()
        audit(conn, viewer, "note", f"conversation:{conv.id}", now, {"message_id": message_id})
        announce(
            viewer.shop_id, message_event(conv.id, message_id, direction="note", sender="owner")
        )
        return Posted(message_id, None)

    return unit


def resolve(viewer: Viewer, conversation_id: int, now: datetime) -> Unit[bool]:
    """Done: nobody is waiting any more. False if it was resolved already."""

    def unit(conn: Connection) -> bool:
        conv = _conversation(conn, viewer, conversation_id)
        if conv.status == "resolved":
            return False
        conn.execute(
            sa.update(C)
            .where(C.id == conv.id)
            .values(
                status="resolved",
                resolved_at=now,
                waiting_since=None,
                sla_due_at=None,
                snoozed_until=None,
                unread_count=0,
            )
        )
        _system_event(conn, viewer, conv, "resolved", now)
        audit(conn, viewer, "resolve", f"conversation:{conv.id}", now)
        announce(viewer.shop_id, conversation_event(conv.id, "resolved"))
        return True

    return unit


def reopen(viewer: Viewer, conversation_id: int, now: datetime) -> Unit[bool]:
    """Back to open. Refused while the customer has another open conversation (a customer
    has one open conversation at a time; that one is where to carry on)."""

    def unit(conn: Connection) -> bool:
        conv = _conversation(conn, viewer, conversation_id)
        if conv.status != "resolved":
            return False
        other = conn.execute(
            sa.select(C.id).where(
                viewer.scope(C.shop_id),
                C.customer_id == conv.customer_id,
                C.status != "resolved",
                C.id != conv.id,
            )
        ).scalar()
        if other is not None:
            raise Refused("other_open", other=other)
        conn.execute(sa.update(C).where(C.id == conv.id).values(status="open", resolved_at=None))
        _system_event(conn, viewer, conv, "reopened", now)
        audit(conn, viewer, "reopen", f"conversation:{conv.id}", now)
        announce(viewer.shop_id, conversation_event(conv.id, "reopened"))
        return True

    return unit


def snooze(viewer: Viewer, conversation_id: int, until: datetime, now: datetime) -> Unit[bool]:
    """Out of the waiting list until `until` (a new customer message wakes it at once)."""

    def unit(conn: Connection) -> bool:
        conv = _conversation(conn, viewer, conversation_id)
        if conv.status == "resolved":
            raise Refused("resolved")
        conn.execute(
            sa.update(C).where(C.id == conv.id).values(status="snoozed", snoozed_until=until)
        )
        _system_event(conn, viewer, conv, "snoozed", now, until=until.isoformat())
        audit(conn, viewer, "snooze", f"conversation:{conv.id}", now, {"until": until.isoformat()})
        announce(viewer.shop_id, conversation_event(conv.id, "snoozed"))
        return True

    return unit
