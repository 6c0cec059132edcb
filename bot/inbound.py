"""Customer messages, from arrival to answer, received a whole group commit at a time.

For every message: find or create the customer and their open conversation, drop
resends, store the message, let the handlers decide the reply, apply what they asked for
(wait for the owner, complaint deadline, consent, owner notification through the outbox),
hand over owner replies waiting in the mailbox, and store the bot's answer — all committed
before the customer sees anything.

Why set-based: on the Kakao webhook's hot path the cost was never the database but
SQLAlchemy's overhead per statement (about 0.1 ms each, 5–7 statements a message). The
writer hands `receive_many` every message waiting for the same commit (see
`core.db.Batched`), and it does their database work with a fixed number of statements —
two SELECTs for everybody's state, one executemany per kind of write — however many
messages there are. The decisions stay per message, in arrival order, in plain Python:
each customer's conversation (`_Thread`) is carried from one message to the next, so two
messages from one customer in a batch behave exactly as if they had come one after the
other (the second is a follow-up; a byte-identical resend is answered like the first).

`receive(arrival, services)` is the same work for one message, as a plain unit.
The statements are built once at import.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Row

from bot.kakao import QuickReply
from bot.live import announce, message_event
from bot.routing import Context, Dispatcher, Effects, Incoming, Memo, Reply
from core.availability import OwnerState
from core.config import ShopConfig
from core.db import Batched, Unit
from core.models import (
    Consent,
    Conversation,
    Customer,
    CustomerIdentity,
    Message,
    Shop,
    UTCDateTime,
)
from core.notices import owner_notices
from core.outbox import OutboxRequest, enqueue, enqueue_many
from core.replies import sms_ack_key
from core.texts import Texts
from providers.kakao_callback import KakaoCallbackProvider

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


def with_attachments(links: list[tuple[str, str]]) -> dict[str, str]:
    """The `extra` entries for a message's attachment links, (url, content type) each: the
    links wait there, stored with the message, until `bot.customer_photos` fetches them."""
    if not links:
        return {}
    return {
        "media_urls": "\n".join(url for url, _ in links),
        "media_types": "\n".join(kind for _, kind in links),
    }


def attachment_links(extra: Any) -> list[tuple[str, str]]:
    """The (url, content type) links `with_attachments` put in `extra`; [] for none."""
    if not isinstance(extra, Mapping) or not extra.get("media_urls"):
        return []
    urls = str(extra["media_urls"]).split("\n")
    kinds = str(extra.get("media_types") or "").split("\n")
    return list(zip(urls, kinds + [""] * (len(urls) - len(kinds)), strict=False))


@dataclass(frozen=True)
class Outcome:
    customer_id: int
    conversation_id: int
    message_id: int
    reply: Reply
    mailbox: tuple[str, ...]  # owner replies handed over in this answer
    duplicate: bool = False
    mailbox_ids: tuple[int, ...] = ()  # their message rows


@dataclass(frozen=True)
class Services:
    """What receiving needs besides the connection; built once per app."""

    dispatcher: Dispatcher
    texts: Texts
    median_reply: Callable[[int], timedelta | None]  # shop id → recent median first response
    memo: Memo = field(default_factory=Memo)

    def receive_many(self, conn: Connection, arrivals: list[Arrival]) -> list[Outcome]:
        """`receive_many` with these services: the `run_many` of `receive_batched`."""
        return receive_many(conn, arrivals, self)


def digest_of(shop_id: int, payload: Any) -> str:
    """Fingerprint of a parsed payload (key order and spacing do not matter)."""
    canonical = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(f"{shop_id}\n{canonical}".encode()).hexdigest()


def digest_of_body(shop_id: int, body: bytes) -> str:
    """Fingerprint of a request body as received: a resend repeats the same bytes, and
    hashing them costs a fraction of re-serialising the parsed payload."""
    return hashlib.sha256(b"%d\n%s" % (shop_id, body)).hexdigest()


def receive(arrival: Arrival, services: Services) -> Unit[Outcome]:
    """One message as a plain unit (tools and tests; the webhooks use `receive_batched`)."""

    def unit(conn: Connection) -> Outcome:
        return receive_many(conn, [arrival], services)[0]

    return unit


def receive_batched(arrival: Arrival, services: Services) -> Batched[Arrival, Outcome]:
    """One message for `Database.write`, received together with its group commit's others."""
    return Batched(services.receive_many, arrival)


# --------------------------------------------------------------------------- statements

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
    )
    .select_from(
        ident.outerjoin(
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
INSERT_CONSENTS = sa.insert(consents)


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
    sa.select(msg_t.c.id, msg_t.c.customer_id, msg_t.c.body)
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


# --------------------------------------------------------------------------- the batch's state

IdentityKey = tuple[int, str, str]  # (shop id, kind, value)
_StateRow = Row[*tuple[Any, ...]]  # a row of STATE


def _first_identity(a: Arrival) -> IdentityKey:
    kind, value = a.identities[0]
    return (a.shop_id, kind, value)


@dataclass(eq=False)
class _Thread:
    """A customer's open conversation as this batch sees it, carried from message to message."""

    first: Arrival  # the batch's first message from this customer
    customer_id: int | None  # None until the new customer is stored
    conversation_id: int | None  # None until the new conversation is stored
    waiting_since: datetime | None = None
    complaint: bool = False
    last_digest: str | None = None
    last_at: datetime | None = None
    last_message: _Message | int | None = None  # the latest stored inbound message
    mailbox: int = 0  # owner replies held for the customer


@dataclass(eq=False)
class _Message:
    """One arrival on its way through the batch."""

    arrival: Arrival
    thread: _Thread
    key: str = field(init=False)  # idempotency: the same request within a minute
    resend: bool = False
    original: _Message | int | None = None  # what a resend repeats, until `id` is known
    id: int | None = None  # the inbound row: its own, or for a resend the original's
    reply: Reply | None = None
    effects: Effects = field(default_factory=Effects)
    change: dict[str, Any] = field(default_factory=dict)  # the conversation's UPDATE
    notify: str | None = None  # the owner notification's key, when one is due
    mailbox: tuple[str, ...] = ()
    mailbox_ids: tuple[int, ...] = ()
    # SMS: the waiting period's acknowledgement key, when the reply is one (sent late)
    ack_key: str | None = None
    silent: bool = False  # SMS: nothing to send (a follow-up's ack, or the carrier answered)

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


class _Customers:
    """Who is who in the batch: each arrival's thread, and what must be created for it.

    As if the messages came one at a time: an address is looked up among those stored
    before the batch, then among those this batch writes (the first writer keeps it, as
    ON CONFLICT DO NOTHING would), and otherwise it is a new customer's.
    """

    def __init__(self, known: dict[IdentityKey, _StateRow]) -> None:
        self.known = known
        self.threads: list[_Thread] = []  # in order of first message
        self.addresses: list[tuple[_Thread, IdentityKey]] = []  # to write; the first wins
        self._by_customer: dict[int, _Thread] = {}
        self._claimed: dict[IdentityKey, _Thread] = {}

    def thread_of(self, a: Arrival) -> _Thread:
        key = _first_identity(a)
        row = self.known.get(key)
        if row is None:
            return self._claimed.get(key) or self._open(a, customer_id=None)
        if row.customer_id not in self._by_customer:
            if row.conversation_id is None:
                thread = self._open(a, customer_id=row.customer_id, mailbox=row.mailbox)
            else:
                thread = _continued(a, row)
                self.threads.append(thread)
            self._by_customer[row.customer_id] = thread
        return self._by_customer[row.customer_id]

    def _open(self, a: Arrival, customer_id: int | None, mailbox: int = 0) -> _Thread:
        """A new conversation, of a new customer when `customer_id` is None. Every address
        we know for them is written: once per conversation rather than per message."""
        thread = _Thread(first=a, customer_id=customer_id, conversation_id=None, mailbox=mailbox)
        self.threads.append(thread)
        for kind, value in a.identities:
            key = (a.shop_id, kind, value)
            if key not in self.known:
                self._claimed.setdefault(key, thread)
            self.addresses.append((thread, key))
        return thread


def _continued(a: Arrival, row: _StateRow) -> _Thread:
    """The open conversation found in the database."""
    thread = _Thread(first=a, customer_id=None, conversation_id=None)
    _carry_on(thread, row)
    return thread


def _carry_on(thread: _Thread, row: _StateRow) -> None:
    """Make `thread` the stored customer's, and their open conversation (if any) its own."""
    thread.customer_id = row.customer_id
    thread.conversation_id = row.conversation_id
    thread.waiting_since = row.waiting_since
    thread.complaint = bool(row.complaint)
    thread.last_digest = row.last_inbound_digest
    thread.last_at = row.last_inbound_at
    thread.last_message = row.last_inbound_message_id
    thread.mailbox = row.mailbox


# --------------------------------------------------------------------------- receiving


def receive_many(conn: Connection, arrivals: list[Arrival], services: Services) -> list[Outcome]:
    """Receive `arrivals` in order, with a fixed number of statements however many."""
    known, owners = _look_up(conn, arrivals)
    messages = resolve_customers(conn, arrivals, known)
    new = store_arrivals(conn, messages)
    for m in new:
        decide(m, owners[m.arrival.shop_id], services)
    apply_effects(conn, new, services.texts)
    hand_over_mailbox(conn, new)
    store_replies(conn, new)
    announce_arrivals(new)
    return _outcomes(conn, messages)


def announce_arrivals(new: list[_Message]) -> None:
    """The shop's consoles hear of each new message once it is committed (a resend is not
    news). Whether the webhook waited for the commit or answered before it, no matter."""
    for m in new:
        assert m.id is not None
        announce(
            m.arrival.shop_id,
            message_event(
                m.conversation_id,
                m.id,
                direction="in",
                sender="customer",
                customer_id=m.customer_id,
                preview=m.arrival.text,
            ),
        )


def _look_up(
    conn: Connection, arrivals: list[Arrival]
) -> tuple[dict[IdentityKey, _StateRow], dict[int, OwnerState]]:
    """Each looked-up address's customer and open conversation; each shop's owner status."""
    known = _stored_state(conn, {_first_identity(a) for a in arrivals})
    shop_ids = sorted({a.shop_id for a in arrivals})
    owners = {
        row.id: OwnerState(row.owner_status, row.owner_busy_until)
        for row in conn.execute(OWNERS, {"shop_ids": shop_ids})
    }
    return known, owners


def _stored_state(conn: Connection, wanted: set[IdentityKey]) -> dict[IdentityKey, _StateRow]:
    """The customer and open conversation of each address in `wanted` that is stored."""
    rows = conn.execute(
        STATE,
        {
            "shop_ids": sorted({shop_id for shop_id, _, _ in wanted}),
            "kinds": sorted({kind for _, kind, _ in wanted}),
            "values": sorted({value for _, _, value in wanted}),
        },
    )
    # By position: a Row's attributes by name cost more than the rest of this loop.
    return {key: row for row in rows if (key := (row[0], row[1], row[2])) in wanted}


def resolve_customers(
    conn: Connection, arrivals: list[Arrival], known: dict[IdentityKey, _StateRow]
) -> list[_Message]:
    """Each arrival with its thread; new customers, addresses and conversations stored."""
    who = _Customers(known)
    messages = [_Message(a, who.thread_of(a)) for a in arrivals]
    newcomers = [t for t in who.threads if t.customer_id is None]
    _create_customers(conn, newcomers)
    recorded = _record_addresses(conn, who.addresses)
    _join_first_writers(conn, [t for t in newcomers if _first_identity(t.first) not in recorded])
    _open_conversations(conn, [t for t in who.threads if t.conversation_id is None])
    return messages


def _create_customers(conn: Connection, newcomers: list[_Thread]) -> None:
    if not newcomers:
        return
    rows = conn.execute(
        INSERT_CUSTOMERS,
        [
            {
                "shop_id": t.first.shop_id,
                "name": None,
                "tier": "bronze",
                "tags": [],
                "notes": "",
                "created_at": t.first.received_at,
            }
            for t in newcomers
        ],
    )
    # A new customer row is its shop and time and nothing else, so any returned id fits
    # any newcomer with the same two: RETURNING need not keep the input order (on SQLite
    # SQLAlchemy could only promise that by inserting one row per statement).
    unnamed: defaultdict[tuple[int, datetime], list[_Thread]] = defaultdict(list)
    for t in reversed(newcomers):
        unnamed[t.first.shop_id, t.first.received_at].append(t)
    for row in rows:
        unnamed[row.shop_id, row.created_at].pop().customer_id = row.id


def _record_addresses(
    conn: Connection, addresses: list[tuple[_Thread, IdentityKey]]
) -> set[IdentityKey]:
    """Store the addresses no one has yet; returns those stored (the others were taken)."""
    if not addresses:
        return set()
    seen: set[IdentityKey] = set()
    rows = []
    for t, key in addresses:
        if key in seen:  # the first writer keeps it
            continue
        seen.add(key)
        shop_id, kind, value = key
        rows.append(
            {
                "shop_id": shop_id,
                "customer_id": t.customer_id,
                "kind": kind,
                "value": value,
                "created_at": t.first.received_at,
            }
        )
    # In one order everywhere, so two transactions writing the same addresses cannot each
    # hold one the other waits for (a deadlock on PostgreSQL).
    rows.sort(key=lambda r: (r["shop_id"], r["kind"], r["value"]))
    stored = conn.execute(INSERT_IDENTITIES[conn.dialect.name], rows)
    return {(row.shop_id, row.kind, row.value) for row in stored}


def _join_first_writers(conn: Connection, lost: list[_Thread]) -> None:
    """New customers whose address another process stored first — it received the same
    person between our look-up and our write (two instances on one PostgreSQL). Theirs
    is the customer: our thread carries on with it and its open conversation, and the
    customer row we made is dropped instead of lingering with no address and an empty
    conversation. Rare, so the extra statements are paid only here."""
    if not lost:
        return
    found = _stored_state(conn, {_first_identity(t.first) for t in lost})
    moves = []
    for t in lost:
        row = found.get(_first_identity(t.first))
        if row is None:  # the conflicting row is committed, so visible: this cannot happen
            raise LookupError("an address taken by another transaction is not to be found")
        moves.append({"orphan": t.customer_id, "customer": row.customer_id})
        _carry_on(t, row)
    conn.execute(MOVE_ADDRESSES, moves)
    conn.execute(DROP_CUSTOMER, moves)


def _open_conversations(conn: Connection, opening: list[_Thread]) -> None:
    if not opening:
        return
    rows = conn.execute(
        INSERT_CONVERSATIONS,
        [
            {
                "shop_id": t.first.shop_id,
                "customer_id": t.customer_id,
                "channel": t.first.channel,
                "status": "open",
                "complaint": False,
                "unread_count": 0,
                "last_message_at": t.first.received_at,
                "created_at": t.first.received_at,
            }
            for t in opening
        ],
    )
    by_customer = {t.customer_id: t for t in opening}  # one open conversation each
    for row in rows:
        by_customer[row.customer_id].conversation_id = row.id


def store_arrivals(conn: Connection, messages: list[_Message]) -> list[_Message]:
    """Store every message that is not a resend; returns those, in order."""
    candidates = _spot_resends(messages)
    if not candidates:
        return []
    rows = conn.execute(INSERT_INBOUND[conn.dialect.name], [_inbound_row(m) for m in candidates])
    stored = {(row.shop_id, row.idempotency_key): row.id for row in rows}
    for m in candidates:
        m.id = stored.get((m.arrival.shop_id, m.key))
    taken = [m for m in candidates if m.id is None]
    if taken:  # the same request was stored before: by another process, or an earlier batch
        _replay_stored(conn, taken)
    return [m for m in candidates if not m.resend]


def _spot_resends(messages: list[_Message]) -> list[_Message]:
    """Mark the resends the batch can see; returns the other messages, to be stored."""
    candidates: list[_Message] = []
    by_key: dict[tuple[int, str], _Message] = {}
    for m in messages:
        a, t = m.arrival, m.thread
        if (
            t.last_digest == a.digest
            and t.last_at is not None
            and a.received_at - t.last_at < RESEND_WINDOW
        ):
            m.resend, m.original = True, t.last_message
        elif (a.shop_id, m.key) in by_key:  # the same request, with another message between
            m.resend, m.original = True, by_key[a.shop_id, m.key]
        else:
            by_key[a.shop_id, m.key] = m
            candidates.append(m)
            t.last_digest, t.last_at, t.last_message = a.digest, a.received_at, m
    return candidates


def _replay_stored(conn: Connection, taken: list[_Message]) -> None:
    """Messages whose idempotency key is taken are resends of the row holding it."""
    rows = conn.execute(
        STORED_KEYS,
        {
            "shop_ids": sorted({m.arrival.shop_id for m in taken}),
            "keys": sorted({m.key for m in taken}),
        },
    )
    prior = {(row.shop_id, row.idempotency_key): row.id for row in rows}
    for m in taken:
        m.resend, m.id = True, prior[m.arrival.shop_id, m.key]


def _inbound_row(m: _Message) -> dict[str, Any]:
    a = m.arrival
    return {
        "shop_id": a.shop_id,
        "conversation_id": m.conversation_id,
        "customer_id": m.customer_id,
        "direction": "in",
        "sender": "customer",
        "channel": a.channel,
        "body": a.text,
        "payload": {"extra": dict(a.extra)} if a.extra else {},
        "status": "received",
        "idempotency_key": m.key,
        "created_at": a.received_at,
    }


def decide(m: _Message, owner: OwnerState, services: Services) -> None:
    """Let the handlers answer, and work out what the message changes in its conversation."""
    a, t = m.arrival, m.thread
    now = a.received_at
    ctx = Context(
        shop=a.shop,
        now=now,
        owner=owner,
        median_reply=services.median_reply(a.shop_id),
        texts=services.texts,
        memo=services.memo,
        customer_id=m.customer_id,
        conversation_id=m.conversation_id,
        waiting=t.waiting_since is not None,
        complaint_open=t.complaint,
    )
    m.reply = services.dispatcher.dispatch(Incoming(a.text, a.channel, a.extra), ctx)
    effects = m.effects = ctx.effects
    was_waiting = t.waiting_since is not None

    sla_due_at = None
    if effects.wait_for_owner and t.waiting_since is None:
        t.waiting_since = now
        sla_due_at = now + timedelta(minutes=a.shop.reply_target_minutes)
        m.notify = f"wait:{m.conversation_id}:{int(now.timestamp())}"
    if effects.complaint and not t.complaint:
        m.notify = f"complaint:{m.conversation_id}"
    elif effects.handoff:
        m.notify = f"handoff:{m.conversation_id}:{int(now.timestamp())}"
    t.complaint = t.complaint or effects.complaint
    if a.channel == "sms":
        _plan_sms_reply(m, was_waiting)

    m.change = {
        "conv_id": m.conversation_id,
        "now": now,
        "digest": a.digest,
        "message_id": m.id,
        "waiting_since": t.waiting_since,
        "sla_due_at": sla_due_at,
        "complaint": t.complaint,
        "complaint_due_at": now + timedelta(hours=a.shop.complaint_fix_hours)
        if effects.complaint
        else None,
        "handoff_at": now if effects.handoff else None,
    }


def _plan_sms_reply(m: _Message, was_waiting: bool) -> None:
    """An SMS reply costs the customer a text: the "owner will answer" acknowledgement goes
    once per waiting period and only after `sms_ack_delay_seconds` (the owner may answer
    first, and then it is cancelled); a follow-up in the same period sends nothing. When
    the provider already answered an opt-out keyword itself (Twilio's STOP handling on
    long codes), ours would be a second text to a number that just opted out: none goes."""
    a, t = m.arrival, m.thread
    if a.extra.get("opt_out_replied_by"):
        m.silent = True
    elif m.effects.wait_for_owner and t.waiting_since is not None:
        m.ack_key = sms_ack_key(m.conversation_id, t.waiting_since)
        m.silent = was_waiting


def apply_effects(conn: Connection, new: list[_Message], texts: Texts) -> None:
    """Update the conversations; record consents; queue the owner notifications."""
    if not new:
        return
    # One row per message, in order: each UPDATE builds on the one before (unread + 1).
    conn.execute(UPDATE_CONVERSATION, [m.change for m in new])

    consent_rows = [_consent_row(m) for m in new if m.effects.consent is not None]
    if consent_rows:
        conn.execute(INSERT_CONSENTS, consent_rows)

    notices = [row for m in new if m.notify for row in _owner_notices(m, texts)]
    enqueue_many(conn, notices)


def _consent_row(m: _Message) -> dict[str, Any]:
    assert m.effects.consent is not None
    scope, granted, source = m.effects.consent
    return {
        "shop_id": m.arrival.shop_id,
        "customer_id": m.customer_id,
        "scope": scope,
        "granted": granted,
        "source": source,
        "created_at": m.arrival.received_at,
    }


def _owner_notices(m: _Message, texts: Texts) -> list[OutboxRequest]:
    """The outbox rows telling the owner, one per way they want to hear."""
    a, effects = m.arrival, m.effects
    label = f"고객 #{m.customer_id}"
    sent = _what_was_sent(a)
    text = texts.render(
        "owner_notification",
        shop=a.shop,
        customer_label=label,
        body=sent,
        complaint=effects.complaint,
        handoff=effects.handoff,
    )
    kind = "불만 접수" if effects.complaint else "상담 연결 요청" if effects.handoff else "새 문의"
    return owner_notices(
        a.shop,
        a.shop_id,
        m.conversation_id,
        text=text,
        kind=kind,
        customer_label=label,
        content=sent,
        key=lambda provider: f"notify:{provider}:{m.notify}",
        now=a.received_at,
    )


def _what_was_sent(a: Arrival) -> str:
    """The words; for an MMS of pictures alone, what it held, so the owner's notice does
    not read as empty."""
    links = attachment_links(a.extra)
    if a.text.strip() or not links:
        return a.text
    return f"(첨부 {len(links)}개)"


def hand_over_mailbox(conn: Connection, new: list[_Message]) -> None:
    """Owner replies held for a customer go out with their next message's answer."""
    takers: dict[int, _Message] = {}
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
        taker.mailbox += (row.body,)
        taker.mailbox_ids += (row.id,)
    conn.execute(
        MAILBOX_DELIVERED,
        [{"held_id": row.id, "now": takers[row.customer_id].arrival.received_at} for row in held],
    )


def store_replies(conn: Connection, new: list[_Message]) -> None:
    """The bot's answers, stored as delivered: they go back in the webhook's response.
    An SMS customer's answer is a text of its own, sent through the outbox."""
    answered = [m for m in new if m.arrival.channel != "sms"]
    if answered:
        conn.execute(INSERT_REPLIES, [_reply_row(m) for m in answered])
    for m in new:
        if m.arrival.channel == "sms" and not m.silent:
            _queue_sms_reply(conn, m)


def _queue_sms_reply(conn: Connection, m: _Message) -> None:
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


def _reply_row(m: _Message) -> dict[str, Any]:
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


def _reply_payload(reply: Reply) -> dict[str, Any]:
    return {
        "handler": reply.handler,
        "texts": list(reply.texts),
        "quick_replies": [
            {"label": q.label, "message_text": q.message_text, "extra": q.extra}
            for q in reply.quick_replies
        ],
    }


def _outcomes(conn: Connection, messages: list[_Message]) -> list[Outcome]:
    """What each arrival is answered; a resend gets the answer its original got."""
    resends = [m for m in messages if m.resend]
    for m in resends:
        if isinstance(m.original, _Message):  # repeats a message of this batch
            m.id = m.original.id
        elif m.original is not None:
            m.id = m.original
    replies = _stored_replies(conn, {m.id for m in resends if m.id is not None})
    return [_outcome(m, replies) for m in messages]


def _outcome(m: _Message, replies: dict[int, Reply]) -> Outcome:
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
    )


def _stored_replies(conn: Connection, inbound_ids: set[int]) -> dict[int, Reply]:
    """The answers stored for these inbound messages, as replayed to a resend."""
    if not inbound_ids:
        return {}
    replies: dict[int, Reply] = {}
    ids = sorted(inbound_ids)
    for row in conn.execute(REPLIES_TO, {"ids": ids, "first_id": ids[0]}):
        p = row.payload or {}
        quick = tuple(
            QuickReply(q["label"], q["message_text"], q.get("extra"))
            for q in p.get("quick_replies", [])
        )
        replies.setdefault(
            row.in_reply_to_id, Reply(tuple(p.get("texts") or [row.body]), quick, "duplicate")
        )
    return replies


# --------------------------------------------------------------------------- answered late


def answered_late(
    shop_id: int, outcome: Outcome, now: datetime, *, callback_url: str | None = None
) -> Unit[int | None]:
    """A chat message committed after its webhook had answered (the database was slow).

    The customer saw a holding reply, not this answer, so nothing may count as handed over:
    owner replies taken from the mailbox go back to it for the next message. With Kakao's
    AI-chatbot callback (`callback_url`, one use, one minute) the real answer is queued to
    it and the stored reply follows that send; without one the stored reply is marked
    cancelled — the console must not claim the customer read it. Returns the callback's
    outbox id, if one was queued.
    """

    def unit(conn: Connection) -> int | None:
        if outcome.mailbox_ids:
            conn.execute(
                sa.update(msg_t)
                .where(msg_t.c.id.in_(outcome.mailbox_ids), msg_t.c.status == "delivered")
                .values(status="held", delivered_at=None)
            )
        reply_id = conn.execute(
            sa.select(msg_t.c.id).where(
                msg_t.c.in_reply_to_id == outcome.message_id, msg_t.c.sender == "bot"
            )
        ).scalar()
        if reply_id is None or outcome.duplicate:
            return None
        if callback_url is None:
            conn.execute(
                sa.update(msg_t)
                .where(msg_t.c.id == reply_id)
                .values(status="cancelled", delivered_at=None, error="answered late")
            )
            return None
        conn.execute(
            sa.update(msg_t)
            .where(msg_t.c.id == reply_id)
            .values(status="queued", path="callback", delivered_at=None)
        )
        return enqueue(
            conn,
            OutboxRequest(
                shop_id=shop_id,
                purpose="reply",
                provider=KakaoCallbackProvider.name,
                recipient={"kakao_callback_url": callback_url},
                payload={"text": "\n\n".join(outcome.reply.texts), "path": "callback"},
                idempotency_key=f"callback:{outcome.message_id}",
                now=now,
                message_id=reply_id,
            ),
        )

    return unit
