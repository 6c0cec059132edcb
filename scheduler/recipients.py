"""What the send-time policy needs to know about customers, read for many at once.

`load_recipients` answers for a whole batch of customers with one query per fact — the
latest marketing and night consent, an open complaint, the last finished job of each
service — never one per customer: the dispatcher asks it inside its claim. Consents are as
`core.consents` records them: one row per grant or withdrawal (an opt-out is a withdrawal,
granted = false), the latest per scope the word that counts.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import cast

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from core.consents import CONSENTS
from core.models import Conversation, Job
from scheduler.policy import Recipient

CONVERSATIONS = cast(sa.Table, Conversation.__table__)
JOBS = cast(sa.Table, Job.__table__)

_CUSTOMERS: sa.BindParameter[list[int]] = sa.bindparam("customer_ids", expanding=True)

# Oldest first: the last row read for a (customer, scope) is its latest word.
CONSENTS_OF = (
    sa.select(CONSENTS.c.customer_id, CONSENTS.c.scope, CONSENTS.c.granted)
    .where(CONSENTS.c.customer_id.in_(_CUSTOMERS), CONSENTS.c.scope.in_(("marketing", "night")))
    .order_by(CONSENTS.c.created_at, CONSENTS.c.id)
)
# A complaint is open while its conversation is not resolved (the open-conversation index).
COMPLAINTS_OF = (
    sa.select(CONVERSATIONS.c.customer_id)
    .where(
        CONVERSATIONS.c.customer_id.in_(_CUSTOMERS),
        CONVERSATIONS.c.status != "resolved",
        CONVERSATIONS.c.complaint.is_(True),
    )
    .distinct()
)
# A purchase is a job done: the last one of each service, per customer. The shops too, so
# the jobs' (shop, customer) index finds them.
PURCHASES_OF = (
    sa.select(JOBS.c.customer_id, JOBS.c.service, sa.func.max(JOBS.c.done_at).label("done_at"))
    .where(
        JOBS.c.shop_id.in_(sa.bindparam("shop_ids", expanding=True)),
        JOBS.c.customer_id.in_(_CUSTOMERS),
        JOBS.c.status == "done",
        JOBS.c.done_at.is_not(None),
    )
    .group_by(JOBS.c.customer_id, JOBS.c.service)
)


def load_recipients(conn: Connection, customers: Iterable[tuple[int, int]]) -> dict[int, Recipient]:
    """Each customer's `Recipient` by customer id, for (shop id, customer id) pairs: three
    queries however many customers are asked."""
    pairs = set(customers)
    ids = sorted({customer for _, customer in pairs})
    if not ids:
        return {}
    params = {"customer_ids": ids, "shop_ids": sorted({shop for shop, _ in pairs})}
    consents: dict[int, dict[str, bool]] = {}
    for row in conn.execute(CONSENTS_OF, params):
        consents.setdefault(row.customer_id, {})[row.scope] = bool(row.granted)
    complaints = {row.customer_id for row in conn.execute(COMPLAINTS_OF, params)}
    purchases: dict[int, dict[str, datetime]] = {}
    for row in conn.execute(PURCHASES_OF, params):
        purchases.setdefault(row.customer_id, {})[row.service] = row.done_at
    return {
        customer: Recipient(
            marketing=consents.get(customer, {}).get("marketing"),
            night=consents.get(customer, {}).get("night"),
            complaint_open=customer in complaints,
            purchases=purchases.get(customer, {}),
        )
        for customer in ids
    }
