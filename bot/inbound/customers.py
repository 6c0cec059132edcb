"""Who wrote: each arrival's customer and open conversation, looked up for the whole batch
at once; new customers, their addresses and conversations stored (and the rare race with
another process that stored the same address first, settled in its favour)."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime

from sqlalchemy.engine import Connection

from bot.inbound.arrival import Arrival
from bot.inbound.batch import IdentityKey, Received, StateRow, Thread, first_identity
from bot.inbound.statements import (
    DROP_CUSTOMER,
    INSERT_CONVERSATIONS,
    INSERT_CUSTOMERS,
    INSERT_IDENTITIES,
    MOVE_ADDRESSES,
    OWNERS,
    STATE,
)
from core.availability import OwnerState


def look_up(
    conn: Connection, arrivals: list[Arrival]
) -> tuple[dict[IdentityKey, StateRow], dict[int, OwnerState]]:
    """Each looked-up address's customer and open conversation; each shop's owner status."""
    known = _stored_state(conn, {first_identity(a) for a in arrivals})
    shop_ids = sorted({a.shop_id for a in arrivals})
    owners = {
        row.id: OwnerState(row.owner_status, row.owner_busy_until)
        for row in conn.execute(OWNERS, {"shop_ids": shop_ids})
    }
    return known, owners


def _stored_state(conn: Connection, wanted: set[IdentityKey]) -> dict[IdentityKey, StateRow]:
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
    conn: Connection, arrivals: list[Arrival], known: dict[IdentityKey, StateRow]
) -> list[Received]:
    """Each arrival with its thread; new customers, addresses and conversations stored."""
    who = _Customers(known)
    messages = [Received(a, who.thread_of(a)) for a in arrivals]
    newcomers = [t for t in who.threads if t.customer_id is None]
    _create_customers(conn, newcomers)
    recorded = _record_addresses(conn, who.addresses)
    _join_first_writers(conn, [t for t in newcomers if first_identity(t.first) not in recorded])
    _open_conversations(conn, [t for t in who.threads if t.conversation_id is None])
    return messages


def _create_customers(conn: Connection, newcomers: list[Thread]) -> None:
    if not newcomers:
        return
    rows = conn.execute(
        INSERT_CUSTOMERS,
        [
            {
                "shop_id": t.first.shop_id,
                "name": None,
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
    unnamed: defaultdict[tuple[int, datetime], list[Thread]] = defaultdict(list)
    for t in reversed(newcomers):
        unnamed[t.first.shop_id, t.first.received_at].append(t)
    for row in rows:
        unnamed[row.shop_id, row.created_at].pop().customer_id = row.id


def _record_addresses(
    conn: Connection, addresses: list[tuple[Thread, IdentityKey]]
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


def _join_first_writers(conn: Connection, lost: list[Thread]) -> None:
    """New customers whose address another process stored first — it received the same
    person between our look-up and our write (two instances on one PostgreSQL). Theirs
    is the customer: our thread carries on with it and its open conversation, and the
    customer row we made is dropped instead of lingering with no address and an empty
    conversation. Rare, so the extra statements are paid only here."""
    if not lost:
        return
    found = _stored_state(conn, {first_identity(t.first) for t in lost})
    moves = []
    for t in lost:
        row = found.get(first_identity(t.first))
        if row is None:  # the conflicting row is committed, so visible: this cannot happen
            raise LookupError("an address taken by another transaction is not to be found")
        moves.append({"orphan": t.customer_id, "customer": row.customer_id})
        _carry_on(t, row)
    conn.execute(MOVE_ADDRESSES, moves)
    conn.execute(DROP_CUSTOMER, moves)


def _open_conversations(conn: Connection, opening: list[Thread]) -> None:
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


class _Customers:
    """Who is who in the batch: each arrival's thread, and what must be created for it.

    As if the messages came one at a time: an address is looked up among those stored
    before the batch, then among those this batch writes (the first writer keeps it, as
    ON CONFLICT DO NOTHING would), and otherwise it is a new customer's.
    """

    def __init__(self, known: dict[IdentityKey, StateRow]) -> None:
        self.known = known
        self.threads: list[Thread] = []  # in order of first message
        self.addresses: list[tuple[Thread, IdentityKey]] = []  # to write; the first wins
        self._by_customer: dict[int, Thread] = {}
        self._claimed: dict[IdentityKey, Thread] = {}

    def thread_of(self, a: Arrival) -> Thread:
        key = first_identity(a)
        row = self.known.get(key)
        if row is None:
            return self._claimed.get(key) or self._open(a, customer_id=None)
        if row.customer_id not in self._by_customer:
            if row.conversation_id is None:
                thread = self._open(a, customer_id=row.customer_id, mailbox=row.mailbox)
                thread.awaiting, thread.awaiting_until = row.awaiting, row.awaiting_until
            else:
                thread = _continued(a, row)
                self.threads.append(thread)
            self._by_customer[row.customer_id] = thread
        return self._by_customer[row.customer_id]

    def _open(self, a: Arrival, customer_id: int | None, mailbox: int = 0) -> Thread:
        """A new conversation, of a new customer when `customer_id` is None. Every address
        we know for them is written: once per conversation rather than per message."""
        thread = Thread(first=a, customer_id=customer_id, conversation_id=None, mailbox=mailbox)
        self.threads.append(thread)
        for kind, value in a.identities:
            key = (a.shop_id, kind, value)
            if key not in self.known:
                self._claimed.setdefault(key, thread)
            self.addresses.append((thread, key))
        return thread


def _continued(a: Arrival, row: StateRow) -> Thread:
    """The open conversation found in the database."""
    thread = Thread(first=a, customer_id=None, conversation_id=None)
    _carry_on(thread, row)
    return thread


def _carry_on(thread: Thread, row: StateRow) -> None:
    """Make `thread` the stored customer's, and their open conversation (if any) its own."""
    thread.customer_id = row.customer_id
    thread.conversation_id = row.conversation_id
    thread.waiting_since = row.waiting_since
    thread.complaint = bool(row.complaint)
    thread.last_digest = row.last_inbound_digest
    thread.last_at = row.last_inbound_at
    thread.last_message = row.last_inbound_message_id
    thread.mailbox = row.mailbox
    thread.awaiting = row.awaiting
    thread.awaiting_until = row.awaiting_until
