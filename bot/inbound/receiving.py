"""Receiving: customer messages, from arrival to answer, a whole group commit at a time.

For every message: find or create the customer and their open conversation, drop
resends, store the message, record it if it is an answer the shop awaited (a score, a
reminder reply), let the handlers decide the reply, apply what they asked for
(wait for the owner, complaint deadline, consent, owner notification through the outbox),
hand over owner replies waiting in the mailbox, and store the bot's answer — all committed
before the customer sees anything.

Why set-based: on the Kakao webhook's hot path the cost was never the database but
SQLAlchemy's overhead per statement (about 0.1 ms each, 5–7 statements a message). The
writer hands `receive_many` every message waiting for the same commit (see
`core.db.Batched`), and it does their database work with a fixed number of statements —
two SELECTs for everybody's state, one executemany per kind of write — however many
messages there are. The decisions stay per message, in arrival order, in plain Python:
each customer's conversation (`Thread`) is carried from one message to the next, so two
messages from one customer in a batch behave exactly as if they had come one after the
other (the second is a follow-up; a byte-identical resend is answered like the first).

`receive(arrival, services)` is the same work for one message, as a plain unit. Each
stage is a module of this package (see its docstring); the SQL is built once at import
(`bot.inbound.statements`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy.engine import Connection

from bot.inbound.answers import Outcome, hand_over_mailbox, outcomes, store_replies
from bot.inbound.arrival import Arrival
from bot.inbound.awaited import take_answers
from bot.inbound.batch import Received
from bot.inbound.customers import look_up, resolve_customers
from bot.inbound.decision import apply_effects, decide
from bot.inbound.storing import store_arrivals
from bot.live import announce, message_event
from bot.routing import Memo, Switchboard
from core.db import Batched, Unit
from core.texts import Texts


@dataclass(frozen=True)
class Services:
    """What receiving needs besides the connection; built once per app."""

    switchboard: Switchboard
    texts: Texts
    median_reply: Callable[[int], timedelta | None]  # shop id → recent median first response
    memo: Memo = field(default_factory=Memo)

    def receive_many(self, conn: Connection, arrivals: list[Arrival]) -> list[Outcome]:
        """`receive_many` with these services: the `run_many` of `receive_batched`."""
        return receive_many(conn, arrivals, self)


def receive(arrival: Arrival, services: Services) -> Unit[Outcome]:
    """One message as a plain unit (tools and tests; the webhooks use `receive_batched`)."""

    def unit(conn: Connection) -> Outcome:
        return receive_many(conn, [arrival], services)[0]

    return unit


def receive_batched(arrival: Arrival, services: Services) -> Batched[Arrival, Outcome]:
    """One message for `Database.write`, received together with its group commit's others."""
    return Batched(services.receive_many, arrival)


def receive_many(conn: Connection, arrivals: list[Arrival], services: Services) -> list[Outcome]:
    """Receive `arrivals` in order, with a fixed number of statements however many."""
    known, owners = look_up(conn, arrivals)
    messages = resolve_customers(conn, arrivals, known)
    new = store_arrivals(conn, messages)
    take_answers(conn, new, services.texts)
    for m in new:
        decide(m, owners[m.arrival.shop_id], services)
    apply_effects(conn, new, services.texts)
    hand_over_mailbox(conn, new)
    store_replies(conn, new)
    announce_arrivals(new)
    return outcomes(conn, messages)


def announce_arrivals(new: list[Received]) -> None:
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
