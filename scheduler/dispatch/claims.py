"""Claiming outbox rows: the lease statements and the `Claimed` row they hand back.

Two kinds of claim, each one statement on both databases: due `pending` rows, per
provider, become `sending` under this instance's lease (spending an attempt); rows whose
outcome is open (`unknown` and due for a check, or `sending` past their lease) become
`unknown` under this instance, for the reconciler to ask their provider about.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from core.db import Database
from core.models import UTCDateTime
from core.outbox import OUTBOX

# A claim takes no more of a provider's rows than it sends in this long at its rate (Twilio
# at 1/s: 1), and is made once its rate limit would let them go at once. A slow provider
# then never holds up the others' next round for long, and a crash leaves none of its rows
# claimed but waiting: after a restart, such a row at a vendor that cannot be searched
# (Kakao's Event API without its task id) is "cannot tell" like one sent.
ROUND_SECONDS = 1.0

S = TypeVar("S")

_P_NOW = sa.bindparam("p_now", type_=UTCDateTime())
_P_ME = sa.bindparam("p_me", type_=sa.String())
_P_BATCH = sa.bindparam("p_batch", type_=sa.Integer())

_CLAIMED_COLUMNS = (
    OUTBOX.c.id,
    OUTBOX.c.shop_id,
    OUTBOX.c.message_id,
    OUTBOX.c.purpose,
    OUTBOX.c.provider,
    OUTBOX.c.recipient,
    OUTBOX.c.payload,
    OUTBOX.c.attempts,
    OUTBOX.c.lease_until,
    OUTBOX.c.provider_ref,
    OUTBOX.c.kind,
    OUTBOX.c.customer_id,
)


def _claim_statement(whose: sa.ColumnElement[bool]) -> Any:
    """Claim up to `p_batch` due rows matching `whose`. One statement on both databases:
    SQLAlchemy renders FOR UPDATE SKIP LOCKED on PostgreSQL only; SQLite needs none, its
    writer holds the database lock (BEGIN IMMEDIATE)."""
    due = (
        sa.select(OUTBOX.c.id)
        .where(OUTBOX.c.status == "pending", OUTBOX.c.not_before <= _P_NOW, whose)
        .order_by(OUTBOX.c.not_before, OUTBOX.c.id)
        .limit(_P_BATCH)
        .with_for_update(skip_locked=True)
    )
    return (
        sa.update(OUTBOX)
        .where(OUTBOX.c.id.in_(due))
        .values(
            status="sending",
            lease_owner=_P_ME,
            lease_until=sa.bindparam("p_lease_until", type_=UTCDateTime()),
            attempts=OUTBOX.c.attempts + 1,
            updated_at=_P_NOW,
        )
        .returning(*_CLAIMED_COLUMNS)
    )


# One claim per provider, each of no more rows than that provider can send in time
# (`claim_limit`); rows for a provider not configured here are claimed too, to be failed at
# once with the reason.
_CLAIM = _claim_statement(OUTBOX.c.provider == sa.bindparam("p_provider", type_=sa.String()))
_CLAIM_UNCONFIGURED = _claim_statement(
    OUTBOX.c.provider.not_in(sa.bindparam("p_known", expanding=True))
)

# Rows whose outcome is open: recorded unknown and due for a check, or stuck in `sending`
# past their lease (the sender crashed or hung — it may have sent).
_OPEN = (
    sa.select(OUTBOX.c.id)
    .where(
        sa.or_(
            sa.and_(OUTBOX.c.status == "unknown", OUTBOX.c.not_before <= _P_NOW),
            sa.and_(OUTBOX.c.status == "sending", OUTBOX.c.lease_until < _P_NOW),
        )
    )
    .order_by(OUTBOX.c.id)
    .limit(_P_BATCH)
    .with_for_update(skip_locked=True)
)
_CLAIM_OPEN = (
    sa.update(OUTBOX)
    .where(OUTBOX.c.id.in_(_OPEN))
    .values(
        status="unknown",
        lease_owner=_P_ME,
        not_before=sa.bindparam("p_recheck_at", type_=UTCDateTime()),
        updated_at=_P_NOW,
    )
    .returning(*_CLAIMED_COLUMNS)
)


@dataclass(frozen=True, slots=True)
class Claimed:
    """An outbox row this instance holds the lease on."""

    id: int
    shop_id: int
    message_id: int | None
    purpose: str
    provider: str
    recipient: dict[str, Any]
    payload: dict[str, Any]
    attempts: int
    lease_until: datetime | None
    provider_ref: str | None
    kind: str = "info"  # info | ad: what the send-time policy holds it to
    customer_id: int | None = None  # whose consents and complaints it is held to

    @classmethod
    def from_row(cls, row: sa.Row[Any]) -> Claimed:
        m = row._mapping
        return cls(
            id=int(m["id"]),
            shop_id=int(m["shop_id"]),
            message_id=m["message_id"],
            purpose=m["purpose"],
            provider=m["provider"],
            recipient=dict(m["recipient"] or {}),
            payload=dict(m["payload"] or {}),
            attempts=int(m["attempts"]),
            lease_until=m["lease_until"],
            provider_ref=m["provider_ref"],
            kind=m["kind"],
            customer_id=m["customer_id"],
        )


def claim_limit(rate: float | None, batch_size: int, send_window: float) -> int:
    """How many of a provider's rows one claim takes: the batch, or fewer when its `rate`
    could not send them all in a round (`ROUND_SECONDS`, within the send window)."""
    if rate is None:
        return batch_size
    seconds = min(ROUND_SECONDS, send_window)
    return max(1, min(batch_size, int(rate * seconds)))


async def claim_due(
    database: Database,
    *,
    now: datetime,
    owner_id: str,
    lease_seconds: float,
    limits: Mapping[str, int],
    batch_size: int,
    screen: Callable[[Connection, list[Claimed]], S],
) -> tuple[S, bool]:
    """Lease due rows: one statement per provider named in `limits`, each of at most its
    limit, and one for rows of providers not configured; then, in the same unit, `screen`
    them (the send-time policy: `screening.py`). Returns what `screen` made of the rows (by
    id) and whether some claim came back full (more are due)."""
    params: dict[str, Any] = {
        "p_now": now,
        "p_me": owner_id,
        "p_lease_until": now + timedelta(seconds=lease_seconds),
    }
    claims = [(_CLAIM, {"p_provider": name, "p_batch": n}) for name, n in limits.items()]
    unconfigured = {"p_known": list(limits), "p_batch": batch_size}
    claims.append((_CLAIM_UNCONFIGURED, unconfigured))

    def unit(conn: Connection) -> tuple[S, bool]:
        claimed: list[Claimed] = []
        full = False
        for statement, which in claims:
            rows = conn.execute(statement, params | which).all()
            full = full or len(rows) == which["p_batch"]
            claimed.extend(Claimed.from_row(r) for r in rows)
        claimed.sort(key=lambda c: c.id)
        return screen(conn, claimed), full

    return await database.write(unit)


async def claim_open(
    database: Database, *, now: datetime, owner_id: str, recheck_at: datetime, batch: int
) -> list[Claimed]:
    """Take up to `batch` rows whose outcome is open, to ask their provider about them;
    until `recheck_at` no other instance takes them."""
    params = {"p_now": now, "p_me": owner_id, "p_recheck_at": recheck_at, "p_batch": batch}

    def unit(conn: Connection) -> list[Claimed]:
        return [Claimed.from_row(r) for r in conn.execute(_CLAIM_OPEN, params)]

    return await database.write(unit)
