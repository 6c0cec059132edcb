"""Each arrival stored once: a resend — the same request again within the resend window,
seen in this batch, in the conversation's last message, or by the idempotency key another
process or an earlier batch took — is not stored again but answered like its original."""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import Connection

from bot.inbound.batch import RESEND_WINDOW, Received
from bot.inbound.statements import INSERT_INBOUND, STORED_KEYS


def store_arrivals(conn: Connection, messages: list[Received]) -> list[Received]:
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


def _spot_resends(messages: list[Received]) -> list[Received]:
    """Mark the resends the batch can see; returns the other messages, to be stored."""
    candidates: list[Received] = []
    by_key: dict[tuple[int, str], Received] = {}
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


def _replay_stored(conn: Connection, taken: list[Received]) -> None:
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


def _inbound_row(m: Received) -> dict[str, Any]:
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
