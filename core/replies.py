"""The owner's reply, and the path it takes to the customer.

Kakao lets a self-hosted bot speak only in a few ways (DESIGN §2), so a reply to a Kakao
customer goes by the first path that can carry it: the Event API (the bot speaks first in
the chat room) → an AlimTalk reply-notice template → SMS/LMS → held in the customer's
mailbox and handed over in the skill response to their next message. An SMS customer gets
SMS/LMS/MMS; the simulator's customer gets it pushed live. The chain is data: a provider
configured for a path makes that path usable, nothing else changes.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from core.config import Delivery
from core.models import Conversation, CustomerIdentity, Message, OutboxItem
from core.outbox import OutboxRequest, cancel, enqueue


@dataclass(frozen=True)
class ReplyPath:
    name: str  # event_api | alimtalk | sms | mailbox | simulator
    label: str  # what the console shows
    instant: bool  # reaches the customer now, not at their next message
    needs: str | None  # the customer address it needs: kakao | phone | None
    # The key in the shop's delivery settings naming the provider for this path; None for
    # paths dangol carries itself (mailbox, simulator).
    provider_key: str | None


EVENT_API = ReplyPath("event_api", "카카오 채널", True, "kakao", "event_api")
ALIMTALK = ReplyPath("alimtalk", "알림톡", True, "phone", "alimtalk")
SMS = ReplyPath("sms", "문자", True, "phone", "sms")
MAILBOX = ReplyPath("mailbox", "다음 메시지 때 전달 예정", False, None, None)
SIMULATOR = ReplyPath("simulator", "시뮬레이터", True, None, None)

CHAINS: Mapping[str, tuple[ReplyPath, ...]] = {
    "kakao": (EVENT_API, ALIMTALK, SMS, MAILBOX),
    "sms": (SMS,),
    "simulator": (SIMULATOR,),
}


@dataclass(frozen=True)
class Addresses:
    """How the customer can be reached."""

    phone: str | None = None  # E.164
    kakao_key: str | None = None  # botUserKey
    kakao_key_type: str = "botUserKey"


class NoPath(Exception):
    """Nothing can carry a reply on this channel (e.g. an SMS customer and no SMS provider)."""


def usable(path: ReplyPath, delivery: Delivery, to: Addresses) -> bool:
    """Is `path`'s provider configured, and does the customer have the address it needs?"""
    if path.provider_key is not None and not delivery.provider_for(path.provider_key):
        return False
    if path.needs == "phone" and not to.phone:
        return False
    return not (path.needs == "kakao" and not to.kakao_key)


def choose_path(
    channel: str, delivery: Delivery, to: Addresses, *, passing_over: Collection[ReplyPath] = ()
) -> ReplyPath:
    """The first usable path in the channel's chain, `passing_over` some (a journey step
    with no AlimTalk template of its own cannot take AlimTalk)."""
    for path in CHAINS.get(channel, ()):
        if path not in passing_over and usable(path, delivery, to):
            return path
    raise NoPath(f"no way to reach a {channel} customer with the providers configured")


# --------------------------------------------------------------------------- the unit

_ADDRESSES = (
    sa.select(CustomerIdentity.customer_id, CustomerIdentity.kind, CustomerIdentity.value)
    .where(CustomerIdentity.customer_id.in_(sa.bindparam("customers", expanding=True)))
    .order_by(CustomerIdentity.id)
)


@dataclass(frozen=True)
class Sent:
    message_id: int
    path: ReplyPath
    outbox_id: int | None


def addresses_of(conn: Connection, customer_id: int) -> Addresses:
    return addresses_of_many(conn, [customer_id]).get(customer_id, Addresses())


def addresses_of_many(conn: Connection, customer_ids: Sequence[int]) -> dict[int, Addresses]:
    """How each of these customers can be reached (one statement); a customer with no
    identity is missing from the answer."""
    if not customer_ids:
        return {}
    found: dict[int, dict[str, str]] = {}
    for row in conn.execute(_ADDRESSES, {"customers": list(customer_ids)}):
        found.setdefault(row.customer_id, {})[row.kind] = row.value
    return {
        customer: Addresses(phone=kinds.get("phone"), kakao_key=kinds.get("kakao_bot_user"))
        for customer, kinds in found.items()
    }


# A photo sent alone goes without words, except where the channel cannot carry a picture
# without text: SOLAPI's MMS has a required `text` (providers/sms_text.size_mms_text refuses
# an empty one). There it gets the least that is true.
PHOTO_ONLY_TEXT = "사진"
_TEXT_REQUIRED_WITH_PHOTO = frozenset({"solapi"})


def owner_reply(
    shop_id: int,
    conversation_id: int,
    text: str,
    delivery: Delivery,
    now: datetime,
    *,
    author: str = "owner",
    attachments: list[dict[str, Any]] | None = None,
) -> Callable[[Connection], Sent]:
    """A unit: store the owner's reply, send it by the chosen path, stop the waiting clock."""

    def unit(conn: Connection) -> Sent:
        conv = conn.execute(
            sa.select(Conversation).where(
                Conversation.id == conversation_id, Conversation.shop_id == shop_id
            )
        ).one()
        to = addresses_of(conn, conv.customer_id)
        path = choose_path(conv.channel, delivery, to)
        status = {"mailbox": "held", "simulator": "delivered"}.get(path.name, "queued")
        message_id = conn.execute(
            sa.insert(Message)
            .values(
                shop_id=shop_id,
                conversation_id=conv.id,
                customer_id=conv.customer_id,
                direction="out",
                sender="owner",
                channel=conv.channel,
                body=text,
                payload={"author": author, "attachments": attachments or []},
                status=status,
                path=path.name,
                created_at=now,
                delivered_at=now if status == "delivered" else None,
            )
            .returning(Message.id)
        ).scalar_one()

        outbox_id = None
        if path.provider_key is not None:
            provider = delivery.provider_for(path.provider_key) or ""
            sent_text = text
            if not text and attachments and provider in _TEXT_REQUIRED_WITH_PHOTO:
                sent_text = PHOTO_ONLY_TEXT
            outbox_id = enqueue(
                conn,
                OutboxRequest(
                    shop_id=shop_id,
                    purpose="reply",
                    provider=provider,
                    recipient={
                        "phone": to.phone,
                        "kakao_user_key": to.kakao_key if path.needs == "kakao" else None,
                        "kakao_key_type": to.kakao_key_type if path.needs == "kakao" else None,
                    },
                    payload={
                        "text": sent_text,
                        "path": path.name,
                        "attachments": attachments or [],
                        **({"template": delivery.alimtalk_template} if path is ALIMTALK else {}),
                    },
                    idempotency_key=f"reply:{message_id}",
                    now=now,
                    message_id=message_id,
                ),
            )

        if conv.channel == "sms" and conv.waiting_since is not None:
            cancel_sms_ack(conn, shop_id, conv.id, conv.waiting_since, now)
        answered: dict[str, Any] = {"waiting_since": None, "sla_due_at": None, "unread_count": 0}
        if conv.first_response_at is None:
            answered["first_response_at"] = now
            started = conv.waiting_since or conv.created_at
            answered["first_response_seconds"] = max(0, int((now - started).total_seconds()))
        conn.execute(sa.update(Conversation).where(Conversation.id == conv.id).values(**answered))
        return Sent(message_id, path, outbox_id)

    return unit


def sms_ack_key(conversation_id: int, waiting_since: datetime) -> str:
    """The outbox key of an SMS customer's acknowledgement: one per waiting period."""
    return f"sms-ack:{conversation_id}:{int(waiting_since.timestamp())}"


def cancel_sms_ack(
    conn: Connection, shop_id: int, conversation_id: int, waiting_since: datetime, now: datetime
) -> bool:
    """The owner answered first: the delayed acknowledgement is not sent (if it has not
    gone yet), and its message says so. True if one was withdrawn."""
    key = sms_ack_key(conversation_id, waiting_since)
    message_id = conn.execute(
        sa.select(OutboxItem.message_id).where(
            OutboxItem.shop_id == shop_id, OutboxItem.idempotency_key == key
        )
    ).scalar_one_or_none()
    if not cancel(conn, shop_id=shop_id, idempotency_key=key, now=now):
        return False
    if message_id is not None:
        conn.execute(
            sa.update(Message)
            .where(Message.id == message_id, Message.status == "queued")
            .values(status="cancelled")
        )
    return True


# --------------------------------------------------------------------------- falling back


def fall_back(
    shop_id: int, message_id: int, reason: str, delivery: Delivery, now: datetime
) -> Callable[[Connection], ReplyPath | None]:
    """A unit: the reply could not be delivered by its path (the Event API said the
    customer is not a friend of the channel, say): send it by the next usable path of its
    channel's chain, the mailbox last. The message keeps why (`payload.fell_back`), so the
    console can say "카카오 채널로 못 보내 문자로 보냈어요". Returns the new path, or None
    when no path is left (the message is failed with `reason`)."""

    def unit(conn: Connection) -> ReplyPath | None:
        m = conn.execute(
            sa.select(
                Message.id,
                Message.customer_id,
                Message.channel,
                Message.path,
                Message.body,
                Message.payload,
            ).where(Message.id == message_id, Message.shop_id == shop_id)
        ).one()
        chain = CHAINS.get(m.channel, ())
        tried = next((i for i, p in enumerate(chain) if p.name == m.path), len(chain))
        to = addresses_of(conn, m.customer_id)
        payload = dict(m.payload or {})
        payload["fell_back"] = [*payload.get("fell_back", []), {"path": m.path, "reason": reason}]
        for path in chain[tried + 1 :]:
            if not usable(path, delivery, to):
                continue
            values: dict[str, Any] = {"path": path.name, "payload": payload, "error": None}
            if path is MAILBOX:
                conn.execute(
                    sa.update(Message).where(Message.id == m.id).values(status="held", **values)
                )
                return path
            conn.execute(
                sa.update(Message).where(Message.id == m.id).values(status="queued", **values)
            )
            enqueue(
                conn,
                OutboxRequest(
                    shop_id=shop_id,
                    purpose="reply",
                    provider=delivery.provider_for(path.provider_key or "") or "",
                    recipient={"phone": to.phone},
                    payload={
                        "text": m.body,
                        "path": path.name,
                        "attachments": payload.get("attachments", []),
                        **({"template": delivery.alimtalk_template} if path is ALIMTALK else {}),
                    },
                    idempotency_key=f"reply:{m.id}:{path.name}",
                    now=now,
                    message_id=m.id,
                ),
            )
            return path
        conn.execute(
            sa.update(Message)
            .where(Message.id == m.id)
            .values(status="failed", error=reason, payload=payload)
        )
        return None

    return unit
