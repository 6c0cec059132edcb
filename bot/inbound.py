"""A customer message, from arrival to answer, as one database unit.

`receive()` builds the unit the webhooks hand to the writer: find or create the customer
and their open conversation, drop resends, store the message, let the handlers decide the
reply, apply what they asked for (wait for the owner, complaint deadline, consent, owner
notification through the outbox), hand over owner replies waiting in the mailbox, and store
the bot's answer — all committed together before the customer sees anything.

The statements are built once at import: this is the Kakao webhook's hot path.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from bot.availability import OwnerState
from bot.config import ShopConfig
from bot.kakao import QuickReply
from bot.models import Consent, Conversation, Customer, CustomerIdentity, Message, Shop
from bot.routing import Context, Dispatcher, Incoming, Memo, Reply
from bot.texts import Texts
from scheduler.outbox import enqueue

# Kakao sends no request id, so an identical payload from the same person this soon after
# the first is taken as a resend, not as a new message.
RESEND_WINDOW = timedelta(seconds=60)
MAILBOX_OUTPUTS = 2  # Kakao allows 3 outputs: up to 2 for owner replies, 1 for the bot


@dataclass(frozen=True)
class Arrival:
    """An inbound message as the webhook understood it."""

    shop: ShopConfig
    shop_id: int
    channel: str  # kakao | simulator | sms
    identities: tuple[tuple[str, str], ...]  # (kind, value); the first one is looked up
    text: str
    digest: str  # fingerprint of the request, for resend detection
    received_at: datetime
    extra: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Outcome:
    customer_id: int
    conversation_id: int
    message_id: int
    reply: Reply
    mailbox: tuple[str, ...]  # owner replies handed over in this answer
    duplicate: bool = False
    notified_owner: bool = False


@dataclass(frozen=True)
class Services:
    """What the unit needs besides the connection; built once per app."""

    dispatcher: Dispatcher
    texts: Texts
    median_reply: Callable[[int], timedelta | None]  # shop id → recent median first response
    memo: Memo = field(default_factory=Memo)


def digest_of(shop_id: int, payload: Any) -> str:
    canonical = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(f"{shop_id}\n{canonical}".encode()).hexdigest()


# --------------------------------------------------------------------------- statements

conv = cast(sa.Table, Conversation.__table__)
ident = cast(sa.Table, CustomerIdentity.__table__)
msg_t = cast(sa.Table, Message.__table__)
shops = cast(sa.Table, Shop.__table__)
customers = cast(sa.Table, Customer.__table__)

_mailbox_count = (
    sa.select(sa.func.count())
    .where(msg_t.c.customer_id == ident.c.customer_id, msg_t.c.status == "held")
    .scalar_subquery()
)

STATE = (
    sa.select(
        shops.c.owner_status,
        shops.c.owner_busy_until,
        ident.c.customer_id,
        conv.c.id.label("conversation_id"),
        conv.c.waiting_since,
        conv.c.complaint,
        conv.c.last_inbound_digest,
        conv.c.last_inbound_at,
        conv.c.last_inbound_message_id,
        _mailbox_count.label("mailbox"),
    )
    .select_from(
        shops.outerjoin(
            ident,
            sa.and_(
                ident.c.shop_id == shops.c.id,
                ident.c.kind == sa.bindparam("kind"),
                ident.c.value == sa.bindparam("value"),
            ),
        ).outerjoin(
            conv, sa.and_(conv.c.customer_id == ident.c.customer_id, conv.c.status != "resolved")
        )
    )
    .where(shops.c.id == sa.bindparam("shop_id"))
)

INSERT_CUSTOMER = sa.insert(customers).returning(customers.c.id)
INSERT_CONVERSATION = sa.insert(conv).returning(conv.c.id)
INSERT_MESSAGE = sa.insert(msg_t).returning(msg_t.c.id)
INSERT_CONSENT = sa.insert(Consent)

UPDATE_CONVERSATION = (
    sa.update(conv)
    .where(conv.c.id == sa.bindparam("conv_id"))
    .values(
        last_message_at=sa.bindparam("now"),
        unread_count=conv.c.unread_count + 1,
        last_inbound_digest=sa.bindparam("digest"),
        last_inbound_at=sa.bindparam("now"),
        last_inbound_message_id=sa.bindparam("message_id"),
        waiting_since=sa.func.coalesce(conv.c.waiting_since, sa.bindparam("waiting_since")),
        sla_due_at=sa.func.coalesce(conv.c.sla_due_at, sa.bindparam("sla_due_at")),
        complaint=sa.bindparam("complaint"),
        complaint_due_at=sa.func.coalesce(
            conv.c.complaint_due_at, sa.bindparam("complaint_due_at")
        ),
        handoff_requested_at=sa.func.coalesce(
            sa.bindparam("handoff_at"), conv.c.handoff_requested_at
        ),
        status="open",
    )
)

MAILBOX = (
    sa.select(msg_t.c.id, msg_t.c.body)
    .where(msg_t.c.customer_id == sa.bindparam("customer_id"), msg_t.c.status == "held")
    .order_by(msg_t.c.id)
)
MAILBOX_DELIVERED = (
    sa.update(msg_t)
    .where(msg_t.c.id.in_(sa.bindparam("ids", expanding=True)))
    .values(status="delivered", delivered_at=sa.bindparam("now"))
)
REPLY_TO = sa.select(msg_t.c.body, msg_t.c.payload).where(
    msg_t.c.in_reply_to_id == sa.bindparam("id")
)


def _insert_identities(conn: Connection) -> Any:
    dialect = sqlite if conn.dialect.name == "sqlite" else postgresql
    return dialect.insert(ident).on_conflict_do_nothing()


def _insert_message_once(conn: Connection) -> Any:
    dialect = sqlite if conn.dialect.name == "sqlite" else postgresql
    return dialect.insert(msg_t).on_conflict_do_nothing().returning(msg_t.c.id)


# --------------------------------------------------------------------------- the unit


def receive(arrival: Arrival, services: Services) -> Callable[[Connection], Outcome]:
    def unit(conn: Connection) -> Outcome:
        return _receive(conn, arrival, services)

    return unit


def _receive(conn: Connection, a: Arrival, services: Services) -> Outcome:
    now = a.received_at
    kind, value = a.identities[0]
    state = conn.execute(STATE, {"shop_id": a.shop_id, "kind": kind, "value": value}).one()

    customer_id = state.customer_id
    if customer_id is None:
        customer_id = conn.execute(
            INSERT_CUSTOMER,
            {
                "shop_id": a.shop_id,
                "name": None,
                "tier": "bronze",
                "tags": [],
                "notes": "",
                "created_at": now,
            },
        ).scalar_one()
    if state.customer_id is None or state.conversation_id is None:
        # every address we know for them, once per conversation rather than per message
        conn.execute(
            _insert_identities(conn),
            [
                {
                    "shop_id": a.shop_id,
                    "customer_id": customer_id,
                    "kind": k,
                    "value": v,
                    "created_at": now,
                }
                for k, v in a.identities
            ],
        )

    conversation_id = state.conversation_id
    if conversation_id is None:
        conversation_id = conn.execute(
            INSERT_CONVERSATION,
            {
                "shop_id": a.shop_id,
                "customer_id": customer_id,
                "channel": a.channel,
                "status": "open",
                "complaint": False,
                "unread_count": 0,
                "last_message_at": now,
                "created_at": now,
            },
        ).scalar_one()

    if (
        state.last_inbound_digest == a.digest
        and state.last_inbound_at is not None
        and now - state.last_inbound_at < RESEND_WINDOW
    ):
        return _replay(conn, state.last_inbound_message_id, customer_id, conversation_id)

    bucket = int(now.timestamp() // RESEND_WINDOW.total_seconds())
    message_id = conn.execute(
        _insert_message_once(conn),
        {
            "shop_id": a.shop_id,
            "conversation_id": conversation_id,
            "customer_id": customer_id,
            "direction": "in",
            "sender": "customer",
            "channel": a.channel,
            "body": a.text,
            "payload": {"extra": dict(a.extra)} if a.extra else {},
            "status": "received",
            "idempotency_key": f"{a.channel}:{a.digest}:{bucket}",
            "created_at": now,
        },
    ).scalar_one_or_none()
    if message_id is None:  # the same resend reached another process first
        prior = conn.execute(
            sa.select(msg_t.c.id).where(
                msg_t.c.shop_id == a.shop_id,
                msg_t.c.idempotency_key == f"{a.channel}:{a.digest}:{bucket}",
            )
        ).scalar_one()
        return _replay(conn, prior, customer_id, conversation_id)

    waiting = state.waiting_since is not None
    ctx = Context(
        shop=a.shop,
        now=now,
        owner=OwnerState(state.owner_status, state.owner_busy_until),
        median_reply=services.median_reply(a.shop_id),
        texts=services.texts,
        memo=services.memo,
        customer_id=customer_id,
        conversation_id=conversation_id,
        waiting=waiting,
        complaint_open=bool(state.complaint),
    )
    reply = services.dispatcher.dispatch(Incoming(a.text, a.channel, a.extra), ctx)
    effects = ctx.effects

    waiting_since = state.waiting_since
    sla_due_at = None
    notify = None
    if effects.wait_for_owner and waiting_since is None:
        waiting_since = now
        sla_due_at = now + timedelta(minutes=a.shop.reply_target_minutes)
        notify = f"wait:{conversation_id}:{int(now.timestamp())}"
    if effects.complaint and not state.complaint:
        notify = f"complaint:{conversation_id}"
    elif effects.handoff:
        notify = f"handoff:{conversation_id}:{int(now.timestamp())}"

    conn.execute(
        UPDATE_CONVERSATION,
        {
            "conv_id": conversation_id,
            "now": now,
            "digest": a.digest,
            "message_id": message_id,
            "waiting_since": waiting_since,
            "sla_due_at": sla_due_at,
            "complaint": bool(state.complaint) or effects.complaint,
            "complaint_due_at": now + timedelta(hours=a.shop.complaint_fix_hours)
            if effects.complaint
            else None,
            "handoff_at": now if effects.handoff else None,
        },
    )
    if effects.consent is not None:
        scope, granted, source = effects.consent
        conn.execute(
            INSERT_CONSENT,
            {
                "shop_id": a.shop_id,
                "customer_id": customer_id,
                "scope": scope,
                "granted": granted,
                "source": source,
                "created_at": now,
            },
        )
    if notify is not None:
        _notify_owner(
            conn,
            a,
            services.texts,
            customer_id,
            conversation_id,
            notify,
            effects.complaint,
            effects.handoff,
        )

    mailbox: tuple[str, ...] = ()
    if state.mailbox:
        rows = conn.execute(MAILBOX, {"customer_id": customer_id}).all()
        mailbox = tuple(r.body for r in rows)
        conn.execute(MAILBOX_DELIVERED, {"ids": [r.id for r in rows], "now": now})

    conn.execute(
        INSERT_MESSAGE,
        {
            "shop_id": a.shop_id,
            "conversation_id": conversation_id,
            "customer_id": customer_id,
            "direction": "out",
            "sender": "bot",
            "channel": a.channel,
            "body": "\n\n".join(reply.texts),
            "payload": _reply_payload(reply),
            "status": "delivered",
            "path": "skill_response" if a.channel != "sms" else None,
            "in_reply_to_id": message_id,
            "created_at": now,
            "delivered_at": now,
        },
    )
    return Outcome(
        customer_id, conversation_id, message_id, reply, mailbox, notified_owner=notify is not None
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


def _replay(
    conn: Connection, inbound_id: int | None, customer_id: int, conversation_id: int
) -> Outcome:
    """Answer a resend exactly as the original was answered, storing nothing new."""
    row = conn.execute(REPLY_TO, {"id": inbound_id}).first() if inbound_id else None
    if row is None:
        reply = Reply((), (), "duplicate")
    else:
        p = row.payload or {}
        quick = tuple(
            QuickReply(q["label"], q["message_text"], q.get("extra"))
            for q in p.get("quick_replies", [])
        )
        reply = Reply(tuple(p.get("texts") or [row.body]), quick, "duplicate")
    return Outcome(customer_id, conversation_id, inbound_id or 0, reply, (), duplicate=True)


def _notify_owner(
    conn: Connection,
    a: Arrival,
    texts: Texts,
    customer_id: int,
    conversation_id: int,
    key: str,
    complaint: bool,
    handoff: bool,
) -> None:
    text = texts.render(
        "owner_notification",
        shop=a.shop,
        customer_label=f"고객 #{customer_id}",
        body=a.text,
        complaint=complaint,
        handoff=handoff,
    )
    owner = a.shop.owner
    for provider in owner.notify_via:
        enqueue(
            conn,
            shop_id=a.shop_id,
            purpose="owner_notification",
            provider=provider,
            recipient={"owner": True, "name": owner.name, "phone": owner.phone},
            payload={"text": text, "conversation_id": conversation_id},
            idempotency_key=f"notify:{provider}:{key}",
            now=a.received_at,
        )
