"""What each message is answered: owner replies held in the mailbox handed over, the bot's
answer stored (or, for SMS, queued in the outbox), and a resend given its original's answer."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from bot.inbound.batch import Received
from bot.inbound.statements import (
    INSERT_REPLIES,
    MAILBOX,
    MAILBOX_DELIVERED,
    REPLIES_TO,
    msg_t,
)
from bot.kakao import QuickReply
from bot.routing import Reply
from core.outbox import OutboxRequest, enqueue


@dataclass(frozen=True)
class Outcome:
    """What a message is answered, as its webhook needs it; a resend's is its original's."""

    customer_id: int
    conversation_id: int
    message_id: int
    reply: Reply
    # What was held for the customer, handed over in this answer: (sender, body) — the
    # owner's replies, and the bot's own messages (a journey step with no other path).
    mailbox: tuple[tuple[str, str], ...]
    duplicate: bool = False
    mailbox_ids: tuple[int, ...] = ()  # their message rows
    mailbox_quick: tuple[QuickReply, ...] = ()  # the buttons a held question brings


def hand_over_mailbox(conn: Connection, new: list[Received]) -> None:
    """Owner replies held for a customer go out with their next message's answer."""
    takers: dict[int, Received] = {}
    for m in new:
        if m.thread.mailbox:
            takers[m.customer_id] = m
            m.thread.mailbox = 0  # handed over once: to the customer's first message here
    if not takers:
        return
    held = conn.execute(MAILBOX, {"customer_ids": list(takers)}).all()
    if not held:
        return
    for row in held:
        taker = takers[row.customer_id]
        taker.mailbox += ((row.sender, row.body),)
        # A held journey message that asks something (a survey's 1–5, the reminder's
        # 확인 / 일정 변경) brings its buttons: the customer's next tap answers it.
        asked = stored_quick_replies(row.payload)
        if asked:
            taker.mailbox_quick = asked
        taker.mailbox_ids += (row.id,)
    conn.execute(
        MAILBOX_DELIVERED,
        [{"held_id": row.id, "now": takers[row.customer_id].arrival.received_at} for row in held],
    )


def store_replies(conn: Connection, new: list[Received]) -> None:
    """The bot's answers, stored as delivered: they go back in the webhook's response.
    An SMS customer's answer is a text of its own, sent through the outbox."""
    answered = [m for m in new if m.arrival.channel != "sms"]
    if answered:
        conn.execute(INSERT_REPLIES, [_reply_row(m) for m in answered])
    for m in new:
        if m.arrival.channel == "sms" and not m.silent:
            _queue_sms_reply(conn, m)


def _queue_sms_reply(conn: Connection, m: Received) -> None:
    """Store the bot's SMS answer as queued and put it in the outbox to the customer's
    phone, by the shop's SMS provider: an acknowledgement after the shop's delay, anything
    else (an FAQ answer, an opt-out confirmation) now."""
    a = m.arrival
    row = _reply_row(m) | {"status": "queued", "path": "sms", "delivered_at": None}
    provider = a.shop.delivery.sms
    phone = next((value for kind, value in a.identities if kind == "phone"), None)
    if provider is None or phone is None:
        row |= {"status": "failed", "error": "no SMS provider or phone number to answer by"}
        conn.execute(INSERT_REPLIES, [row])
        return
    if not row["body"]:
        return
    reply_id = conn.execute(sa.insert(msg_t).returning(msg_t.c.id), row).scalar_one()
    delay = timedelta(seconds=a.shop.sms_ack_delay_seconds) if m.ack_key else timedelta(0)
    queued = enqueue(
        conn,
        OutboxRequest(
            shop_id=a.shop_id,
            purpose="reply",
            provider=provider,
            recipient={"phone": phone},
            payload={"text": row["body"], "path": "sms"},
            idempotency_key=m.ack_key or f"sms-reply:{reply_id}",
            now=a.received_at,
            message_id=reply_id,
            not_before=a.received_at + delay,
        ),
    )
    if queued is None:  # this wait's acknowledgement is queued already: no second one
        conn.execute(sa.update(msg_t).where(msg_t.c.id == reply_id).values(status="cancelled"))


def _reply_row(m: Received) -> dict[str, Any]:
    a, reply = m.arrival, m.reply
    assert reply is not None
    return {
        "shop_id": a.shop_id,
        "conversation_id": m.conversation_id,
        "customer_id": m.customer_id,
        "direction": "out",
        "sender": "bot",
        "channel": a.channel,
        "body": "\n\n".join(reply.texts),
        "payload": _reply_payload(reply),
        "status": "delivered",
        "path": "skill_response" if a.channel != "sms" else None,
        "in_reply_to_id": m.id,
        "created_at": a.received_at,
        "delivered_at": a.received_at,
    }


def stored_quick_replies(payload: dict[str, Any] | None) -> tuple[QuickReply, ...]:
    """The quick replies a stored message carries (the bot's answers and journey steps
    store them alike)."""
    return tuple(
        QuickReply(q["label"], q["message_text"], q.get("extra"))
        for q in (payload or {}).get("quick_replies", [])
    )


def _reply_payload(reply: Reply) -> dict[str, Any]:
    return {
        "handler": reply.handler,
        "texts": list(reply.texts),
        "quick_replies": [
            {"label": q.label, "message_text": q.message_text, "extra": q.extra}
            for q in reply.quick_replies
        ],
    }


def outcomes(conn: Connection, messages: list[Received]) -> list[Outcome]:
    """What each arrival is answered; a resend gets the answer its original got."""
    resends = [m for m in messages if m.resend]
    for m in resends:
        if isinstance(m.original, Received):  # repeats a message of this batch
            m.id = m.original.id
        elif m.original is not None:
            m.id = m.original
    replies = _stored_replies(conn, {m.id for m in resends if m.id is not None})
    return [_outcome(m, replies) for m in messages]


def _outcome(m: Received, replies: dict[int, Reply]) -> Outcome:
    if m.resend:
        reply = replies.get(m.id or 0, Reply((), (), "duplicate"))
        return Outcome(m.customer_id, m.conversation_id, m.id or 0, reply, (), duplicate=True)
    assert m.reply is not None
    assert m.id is not None
    return Outcome(
        m.customer_id,
        m.conversation_id,
        m.id,
        m.reply,
        m.mailbox,
        mailbox_ids=m.mailbox_ids,
        mailbox_quick=m.mailbox_quick,
    )


def _stored_replies(conn: Connection, inbound_ids: set[int]) -> dict[int, Reply]:
    """The answers stored for these inbound messages, as replayed to a resend."""
    if not inbound_ids:
        return {}
    replies: dict[int, Reply] = {}
    ids = sorted(inbound_ids)
    for row in conn.execute(REPLIES_TO, {"ids": ids, "first_id": ids[0]}):
        p = row.payload or {}
        quick = stored_quick_replies(p)
        replies.setdefault(
            row.in_reply_to_id, Reply(tuple(p.get("texts") or [row.body]), quick, "duplicate")
        )
    return replies
