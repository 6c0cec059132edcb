"""The one place a vendor's word that a number opted out becomes a withdrawn consent.

Two ways bring it: a delivery report of a failed message (SOLAPI 1061/2061, Twilio 21610 —
`core.delivery`), and a send the vendor refuses at once for it (`providers.base.OptedOut`,
recorded by the outbox's dead path through `record_refusal`). Both record the same thing:
the customer's marketing consent withdrawn, sourced ``provider:<name>:<code>``, with a
``consent_withdrawn`` audit entry — unless the latest word on that consent is already a
withdrawal, for one record is enough.

(A customer's own keyword, 수신거부 or STOP, is recorded with the message that says it:
`bot.inbound`.)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import cast

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
    consents, audit = [], []
    for o in opt_outs:
        key = (o.shop_id, o.customer_id)
        if latest.get(key) is False:
            continue
        latest[key] = False
        consents.append(
            {
                "shop_id": o.shop_id,
                "customer_id": o.customer_id,
                "scope": "marketing",
                "granted": False,
                "source": f"provider:{o.provider}:{o.code or ''}"[:40],
                "created_at": o.at,
            }
        )
        audit.append(
            {
                "shop_id": o.shop_id,
                "actor": f"provider:{o.provider}"[:60],
                "action": "consent_withdrawn",
                "subject": f"customer:{o.customer_id}",
                "detail": {"scope": "marketing", "code": o.code},
                "created_at": o.at,
            }
        )
    if consents:
        conn.execute(sa.insert(CONSENTS), consents)
        conn.execute(sa.insert(AUDIT), audit)


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
