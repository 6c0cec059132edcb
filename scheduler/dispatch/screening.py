"""The send-time policy at dispatch: every claimed row is asked about before it is sent.

`screen` runs inside the claim's own unit, so a row the policy stops never shows as
`sending` and never costs an attempt:

* `SendNow` — the row goes on to its vendor;
* `Hold(until)` — back to `pending` with `not_before = until`, the try given back, and the
  reason in `last_error` (the console shows why it waits);
* `Drop(reason)` — `dropped` with the reason, and so is its message (status ``dropped``,
  the reason in `error`: the conversation shows "보내지 않음: <reason>") and the journey
  step it was sent for (status ``dropped``, the job page's reason).

The customer facts are read only for rows the policy looks at them for (advertising; see
`scheduler.policy.needs_recipient`), one query per fact for the whole claim
(`scheduler.recipients`): a claim of replies and owner notices costs no query at all. The
writes are one statement per distinct decision, however many rows share it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import cast

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from core.delivery import status_changed
from core.models import JourneyStep, UTCDateTime
from core.outbox import MESSAGES, OUTBOX
from providers.base import LEFT_US
from scheduler.dispatch.claims import Claimed
from scheduler.policy import (
    DEFAULT_RULES,
    Drop,
    Hold,
    SendNow,
    ShopRules,
    decide,
    needs_recipient,
    outgoing,
)
from scheduler.recipients import load_recipients

STEPS_TABLE = cast(sa.Table, JourneyStep.__table__)
DROPPED = "dropped"  # the outbox row's, its message's and its journey step's status

_P_NOW = sa.bindparam("p_now", type_=UTCDateTime())
_P_IDS: sa.BindParameter[list[int]] = sa.bindparam("p_ids", expanding=True)
_P_REASON = sa.bindparam("p_reason", type_=sa.Text())
_GIVEN_BACK = {
    "attempts": OUTBOX.c.attempts - 1,  # the claim counted a try; none was made
    "lease_owner": None,
    "lease_until": None,
    "last_error": _P_REASON,
    "updated_at": _P_NOW,
}
_HOLD = (
    sa.update(OUTBOX)
    .where(OUTBOX.c.id.in_(_P_IDS), OUTBOX.c.status == "sending")
    .values(
        status="pending", not_before=sa.bindparam("p_until", type_=UTCDateTime()), **_GIVEN_BACK
    )
)
_DROP = (
    sa.update(OUTBOX)
    .where(OUTBOX.c.id.in_(_P_IDS), OUTBOX.c.status == "sending")
    .values(status=DROPPED, **_GIVEN_BACK)
)
# A message that has left us (a report got there first) keeps what it knows.
_DROP_MESSAGES = (
    sa.update(MESSAGES)
    .where(MESSAGES.c.id.in_(_P_IDS), MESSAGES.c.status.not_in(sorted(LEFT_US)))
    .values(status=DROPPED, error=_P_REASON)
    .returning(MESSAGES.c.id, MESSAGES.c.shop_id)
)
# The step the row was sent for (the planner marks it sent when it writes the row).
_DROP_STEPS = (
    sa.update(STEPS_TABLE)
    .where(
        STEPS_TABLE.c.outbox_id.in_(_P_IDS),
        STEPS_TABLE.c.status.in_(("planned", "sent")),
    )
    .values(status=DROPPED, reason=_P_REASON, updated_at=_P_NOW)
)


@dataclass(slots=True)
class Screened:
    """What the policy made of a claim: the rows to send, and those it held or dropped."""

    send: list[Claimed] = field(default_factory=list)
    held: list[tuple[Claimed, Hold]] = field(default_factory=list)
    dropped: list[tuple[Claimed, Drop]] = field(default_factory=list)


def screen(
    conn: Connection,
    claimed: Sequence[Claimed],
    rules: Mapping[int, ShopRules],
    now: datetime,
) -> Screened:
    """Ask the policy about every claimed row and write what it holds or drops, in the
    caller's unit. Returns the rows it lets go now."""
    messages = [outgoing(item.kind, item.purpose, item.payload) for item in claimed]
    asked = {
        (item.shop_id, item.customer_id)
        for item, message in zip(claimed, messages, strict=True)
        if item.customer_id is not None and needs_recipient(message)
    }
    recipients = load_recipients(conn, asked) if asked else {}
    result = Screened()
    for item, message in zip(claimed, messages, strict=True):
        to = recipients.get(item.customer_id) if item.customer_id is not None else None
        decision = decide(message, to, rules.get(item.shop_id, DEFAULT_RULES), now)
        if isinstance(decision, SendNow):
            result.send.append(item)
        elif isinstance(decision, Hold):
            result.held.append((item, decision))
        else:
            result.dropped.append((item, decision))
    _write_holds(conn, result.held, now)
    _write_drops(conn, result.dropped, now)
    return result


def _write_holds(conn: Connection, held: Sequence[tuple[Claimed, Hold]], now: datetime) -> None:
    groups: dict[tuple[datetime, str], list[int]] = {}
    for item, hold in held:
        groups.setdefault((hold.until, hold.reason), []).append(item.id)
    for (until, reason), ids in groups.items():
        conn.execute(_HOLD, {"p_ids": ids, "p_until": until, "p_reason": reason, "p_now": now})


def _write_drops(conn: Connection, dropped: Sequence[tuple[Claimed, Drop]], now: datetime) -> None:
    groups: dict[str, list[Claimed]] = {}
    for item, drop in dropped:
        groups.setdefault(drop.reason, []).append(item)
    for reason, items in groups.items():
        ids = [item.id for item in items]
        conn.execute(_DROP, {"p_ids": ids, "p_reason": reason, "p_now": now})
        conn.execute(_DROP_STEPS, {"p_ids": ids, "p_reason": reason, "p_now": now})
        message_ids = [item.message_id for item in items if item.message_id is not None]
        if message_ids:
            params = {"p_ids": message_ids, "p_reason": reason}
            for row in conn.execute(_DROP_MESSAGES, params):
                status_changed(row.shop_id, row.id, DROPPED)  # the consoles hear after commit
