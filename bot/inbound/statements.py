"""The inbound path's SQL, built once at import: the batch's look-ups and its writes, a
fixed number of statements however many messages share the commit."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from core.models import (
    Consent,
    Conversation,
    Customer,
    CustomerIdentity,
    Message,
    Shop,
    UTCDateTime,
)

conv = cast(sa.Table, Conversation.__table__)
ident = cast(sa.Table, CustomerIdentity.__table__)
msg_t = cast(sa.Table, Message.__table__)
shops = cast(sa.Table, Shop.__table__)
customers = cast(sa.Table, Customer.__table__)
consents = cast(sa.Table, Consent.__table__)

_held = (
    sa.select(sa.func.count())
    .where(msg_t.c.customer_id == ident.c.customer_id, msg_t.c.status == "held")
    .scalar_subquery()
)

# Three IN lists rather than one IN of (shop, kind, value) tuples: SQLite searches the
# unique index with these but scans the table for tuples. The cross product may find
# more rows than were asked for; `_stored_state` keeps the ones asked for.
STATE = (
    sa.select(
        ident.c.shop_id,
        ident.c.kind,
        ident.c.value,
        ident.c.customer_id,
        conv.c.id.label("conversation_id"),
        conv.c.waiting_since,
        conv.c.complaint,
        conv.c.last_inbound_digest,
        conv.c.last_inbound_at,
        conv.c.last_inbound_message_id,
        _held.label("mailbox"),
        # An answer the shop awaits (a score, a reminder reply): read here with the rest, so
        # an ordinary message pays no statement for it (bot.inbound.awaited).
        customers.c.awaiting,
        customers.c.awaiting_until,
    )
    .select_from(
        ident.join(customers, customers.c.id == ident.c.customer_id).outerjoin(
            conv, sa.and_(conv.c.customer_id == ident.c.customer_id, conv.c.status != "resolved")
        )
    )
    .where(
        ident.c.shop_id.in_(sa.bindparam("shop_ids", expanding=True)),
        ident.c.kind.in_(sa.bindparam("kinds", expanding=True)),
        ident.c.value.in_(sa.bindparam("values", expanding=True)),
    )
)
OWNERS = sa.select(shops.c.id, shops.c.owner_status, shops.c.owner_busy_until).where(
    shops.c.id.in_(sa.bindparam("shop_ids", expanding=True))
)

INSERT_CUSTOMERS = sa.insert(customers).returning(
    customers.c.id, customers.c.shop_id, customers.c.created_at
)
INSERT_CONVERSATIONS = sa.insert(conv).returning(conv.c.id, conv.c.customer_id)
INSERT_REPLIES = sa.insert(msg_t)


def _per_dialect(build: Callable[[Any], Any]) -> dict[str, Any]:
    """ON CONFLICT DO NOTHING is spelled per dialect; both are built once."""
    return {"sqlite": build(sqlite.insert), "postgresql": build(postgresql.insert)}


INSERT_IDENTITIES = _per_dialect(
    lambda insert: (
        insert(ident)
        .on_conflict_do_nothing()
        .returning(ident.c.shop_id, ident.c.kind, ident.c.value)
    )
)
# A customer created for an address another process stored first: what it was given moves
# to that process's customer, and it goes.
MOVE_ADDRESSES = (
    sa.update(ident)
    .where(ident.c.customer_id == sa.bindparam("orphan"))
    .values(customer_id=sa.bindparam("customer"))
)
DROP_CUSTOMER = sa.delete(customers).where(customers.c.id == sa.bindparam("orphan"))
INSERT_INBOUND = _per_dialect(
    lambda insert: (
        insert(msg_t)
        .on_conflict_do_nothing()
        .returning(msg_t.c.id, msg_t.c.shop_id, msg_t.c.idempotency_key)
    )
)
STORED_KEYS = sa.select(msg_t.c.id, msg_t.c.shop_id, msg_t.c.idempotency_key).where(
    msg_t.c.shop_id.in_(sa.bindparam("shop_ids", expanding=True)),
    msg_t.c.idempotency_key.in_(sa.bindparam("keys", expanding=True)),
)


def _at(name: str) -> Any:
    """A time parameter. Typed, because inside coalesce() it would not be, and SQLite would
    then get the driver's own spelling of the datetime instead of the model's."""
    return sa.bindparam(name, type_=UTCDateTime())


UPDATE_CONVERSATION = (
    sa.update(conv)
    .where(conv.c.id == sa.bindparam("conv_id"))
    .values(
        last_message_at=_at("now"),
        unread_count=conv.c.unread_count + 1,
        last_inbound_digest=sa.bindparam("digest"),
        last_inbound_at=_at("now"),
        last_inbound_message_id=sa.bindparam("message_id"),
        waiting_since=sa.func.coalesce(conv.c.waiting_since, _at("waiting_since")),
        sla_due_at=sa.func.coalesce(conv.c.sla_due_at, _at("sla_due_at")),
        complaint=sa.bindparam("complaint"),
        complaint_due_at=sa.func.coalesce(conv.c.complaint_due_at, _at("complaint_due_at")),
        handoff_requested_at=sa.func.coalesce(_at("handoff_at"), conv.c.handoff_requested_at),
        status="open",
    )
)

MAILBOX = (
    sa.select(msg_t.c.id, msg_t.c.customer_id, msg_t.c.sender, msg_t.c.body, msg_t.c.payload)
    .where(
        msg_t.c.customer_id.in_(sa.bindparam("customer_ids", expanding=True)),
        msg_t.c.status == "held",
    )
    .order_by(msg_t.c.id)
)
MAILBOX_DELIVERED = (
    sa.update(msg_t)
    .where(msg_t.c.id == sa.bindparam("held_id"))
    .values(status="delivered", delivered_at=sa.bindparam("now"))
)
REPLIES_TO = (
    sa.select(msg_t.c.in_reply_to_id, msg_t.c.body, msg_t.c.payload)
    .where(
        msg_t.c.in_reply_to_id.in_(sa.bindparam("ids", expanding=True)),
        # A reply is stored after its message: the primary key narrows the search to
        # the last minute's rows (in_reply_to_id has no index of its own).
        msg_t.c.id > sa.bindparam("first_id"),
    )
    .order_by(msg_t.c.id)
)
