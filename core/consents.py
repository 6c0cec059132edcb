"""The one place a consent is recorded: the consent row and its audit entry, together.

`record_consents` writes any change: a customer's own 수신거부 or STOP, said in a message
(`bot.inbound`), or a vendor's word that the number opted out. That word comes two ways:
a delivery report of a failed message (SOLAPI 1061/2061, Twilio 21610 — `core.delivery`),
and a send the vendor refuses at once for it (`providers.base.OptedOut`, recorded by the
outbox's dead path through `record_refusal`). Both record the same thing: the customer's
marketing consent withdrawn, sourced ``provider:<name>:<code>``, with a
``consent_withdrawn`` audit entry — unless the latest word on that consent is already a
withdrawal, for one record is enough.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from core.models import AuditEntry, Consent, Message
from providers.base import OptedOut, ProviderError

CONSENTS = cast(sa.Table, Consent.__table__)
AUDIT = cast(sa.Table, AuditEntry.__table__)
MESSAGES = cast(sa.Table, Message.__table__)

LATEST_CONSENTS = (
    sa.select(CONSENTS.c.shop_id, CONSENTS.c.customer_id, CONSENTS.c.granted)
    .where(
        CONSENTS.c.customer_id.in_(sa.bindparam("customer_ids", expanding=True)),
        CONSENTS.c.scope == "marketing",
    )
    .order_by(CONSENTS.c.created_at, CONSENTS.c.id)  # the last one read is the latest
)


@dataclass(frozen=True, slots=True)
class ConsentChange:
    """`actor` says at `at` that `customer_id` grants or withdraws consent to `scope`."""

    shop_id: int
    customer_id: int
    scope: str
    granted: bool
    source: str  # how it was given or withdrawn, shown in the console
    actor: str  # who, in the audit log: "customer", "provider:solapi" …
    at: datetime
    detail: Mapping[str, Any] | None = None  # the audit entry's; by default scope and source


def record_consents(conn: Connection, changes: Sequence[ConsentChange]) -> None:
    """Each change as a consent row and a `consent_granted`/`consent_withdrawn` audit entry."""
    if not changes:
        return
    conn.execute(
        sa.insert(CONSENTS),
        [
            {
                "shop_id": c.shop_id,
                "customer_id": c.customer_id,
                "scope": c.scope,
                "granted": c.granted,
                "source": c.source[:40],
                "created_at": c.at,
            }
            for c in changes
        ],
    )
    conn.execute(
        sa.insert(AUDIT),
        [
            {
                "shop_id": c.shop_id,
                "actor": c.actor[:60],
                "action": "consent_granted" if c.granted else "consent_withdrawn",
                "subject": f"customer:{c.customer_id}",
                "detail": dict(c.detail or {"scope": c.scope, "source": c.source}),
                "created_at": c.at,
            }
            for c in changes
        ],
    )


@dataclass(frozen=True, slots=True)
class OptOut:
    """`provider` said at `at` that the number of `customer_id` opted out (`code`)."""

    shop_id: int
    customer_id: int
    provider: str
    code: str | None
    at: datetime


def record_opt_outs(conn: Connection, opt_outs: Sequence[OptOut]) -> None:
    """Marketing consent withdrawn, with an audit entry, for each customer whose latest
    word on it is not a withdrawal already. Any number of opt-outs, four statements."""
    if not opt_outs:
        return
    customers = sorted({o.customer_id for o in opt_outs})
    latest = {
        (row.shop_id, row.customer_id): row.granted
        for row in conn.execute(LATEST_CONSENTS, {"customer_ids": customers})
    }
    changes = []
    for o in opt_outs:
        key = (o.shop_id, o.customer_id)
        if latest.get(key) is False:
            continue
        latest[key] = False
        changes.append(
            ConsentChange(
                shop_id=o.shop_id,
                customer_id=o.customer_id,
                scope="marketing",
                granted=False,
                source=f"provider:{o.provider}:{o.code or ''}",
                actor=f"provider:{o.provider}",
                at=o.at,
                detail={"scope": "marketing", "code": o.code},
            )
        )
    record_consents(conn, changes)


def record_refusal(
    conn: Connection,
    shop_id: int,
    provider: str,
    message_id: int,
    error: ProviderError,
    at: datetime,
) -> None:
    """The outbox gave up on a message because of `error`: when that is the vendor saying
    the number opted out, the message's customer has withdrawn marketing consent."""
    if not isinstance(error, OptedOut):
        return
    customer_id = conn.execute(
        sa.select(MESSAGES.c.customer_id).where(MESSAGES.c.id == message_id)
    ).scalar_one_or_none()
    if customer_id is not None:
        record_opt_outs(conn, [OptOut(shop_id, customer_id, provider, error.code, at)])
