"""Recording what became of a claimed row: its outbox update, its message's, and the log.

The `Ledger` turns an outcome (a send's or a lookup's) into a `Change` and writes changes
in one unit. Every one is written with `WHERE id = :id AND lease_owner = :me AND status =
:was`, so a sender whose lease was taken over cannot overwrite what the new owner recorded;
such a change is counted as `lost_lease` and dropped. A message whose status a change moves
registers `core.delivery.StatusChanged` in the same unit: the consoles hear of it after the
commit, and of a change that did not stand, nothing.
"""

from __future__ import annotations

import collections
import logging
import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from core.config import OutboxConfig
from core.consents import record_refusal
from core.db import Database
from core.delivery import catch_up, status_changed
from core.models import UTCDateTime
from core.outbox import MESSAGES, OUTBOX
from providers.base import (
    FINAL,
    LEFT_US,
    NotYet,
    PermanentError,
    ProviderError,
    RateLimited,
    SendResult,
    TransientError,
    UnknownOutcome,
    mask_in_text,
)
from scheduler.dispatch.claims import Claimed

# The whole package logs as "dangol.outbox", the name operators and tests know it by.
log = logging.getLogger("dangol.outbox")

JITTER = 0.2

_P_NOW = sa.bindparam("p_now", type_=UTCDateTime())
_P_ME = sa.bindparam("p_me", type_=sa.String())
_P_ID = sa.bindparam("p_id", type_=sa.Integer())
_P_WAS = sa.bindparam("p_was", type_=sa.String())
_P_ERROR = sa.bindparam("p_error", type_=sa.Text())
_OWNED = (OUTBOX.c.id == _P_ID, OUTBOX.c.lease_owner == _P_ME, OUTBOX.c.status == _P_WAS)

_RECORD_SENT = (
    sa.update(OUTBOX)
    .where(*_OWNED)
    .values(
        status="sent",
        sent_at=_P_NOW,
        provider_ref=sa.bindparam("p_ref", type_=sa.String()),
        lease_owner=None,
        lease_until=None,
        last_error=None,
        updated_at=_P_NOW,
    )
)
_RECORD_RETRY = (
    sa.update(OUTBOX)
    .where(*_OWNED)
    .values(
        status="pending",
        not_before=sa.bindparam("p_not_before", type_=UTCDateTime()),
        lease_owner=None,
        lease_until=None,
        last_error=_P_ERROR,
        updated_at=_P_NOW,
    )
)
# A message that may only go later (NotYet): waiting is not a failed try, so the claim's
# attempt is given back.
_RECORD_HOLD = _RECORD_RETRY.values(attempts=OUTBOX.c.attempts - 1)
_RECORD_DEAD = (
    sa.update(OUTBOX)
    .where(*_OWNED)
    .values(
        status="dead", lease_owner=None, lease_until=None, last_error=_P_ERROR, updated_at=_P_NOW
    )
)
_RECORD_UNKNOWN = (
    sa.update(OUTBOX)
    .where(*_OWNED)
    .values(
        status="unknown",
        not_before=sa.bindparam("p_not_before", type_=UTCDateTime()),
        lease_owner=None,
        lease_until=sa.bindparam("p_resend_after", type_=UTCDateTime()),
        last_error=_P_ERROR,
        updated_at=_P_NOW,
    )
)

_P_MID = sa.bindparam("p_mid", type_=sa.Integer())
# Message statuses only move forward: a delivery report may have got there first.
_MESSAGE_SENT = (
    sa.update(MESSAGES)
    .where(MESSAGES.c.id == _P_MID, MESSAGES.c.status.not_in(sorted(FINAL)))
    .values(
        status=sa.bindparam("p_status", type_=sa.String()),
        path=sa.bindparam("p_path", type_=sa.String()),
        provider=sa.bindparam("p_provider", type_=sa.String()),
        provider_message_id=sa.bindparam("p_ref", type_=sa.String()),
        delivered_at=sa.bindparam("p_delivered_at", type_=UTCDateTime()),
        error=None,
    )
)
_MESSAGE_FAILED = (
    sa.update(MESSAGES)
    .where(MESSAGES.c.id == _P_MID, MESSAGES.c.status.not_in(sorted(LEFT_US)))
    .values(status="failed", provider=sa.bindparam("p_provider", type_=sa.String()), error=_P_ERROR)
)


@dataclass(frozen=True, slots=True)
class Change:
    """One recorded outcome: the outbox update and, if it applies, the message update."""

    item: Claimed
    kind: str  # sent | retry | dead | unknown
    statement: Any
    params: dict[str, Any]
    message_statement: Any = None
    message_params: dict[str, Any] | None = None
    error: ProviderError | None = None  # why a dead row died


def _apply(changes: Sequence[Change]) -> Callable[[Connection], list[Change]]:
    def unit(conn: Connection) -> list[Change]:
        applied = []
        for change in changes:
            if conn.execute(change.statement, change.params).rowcount != 1:
                continue  # the lease is someone else's now; their record stands
            applied.append(change)
            item = change.item
            if change.message_statement is None or item.message_id is None:
                continue
            params = change.message_params or {}
            if conn.execute(change.message_statement, params).rowcount:
                # the consoles showing it hear once this commits (a dead row's is "failed")
                status_changed(item.shop_id, item.message_id, params.get("p_status", "failed"))
            if change.error is not None:  # refused as opted out? then that is recorded
                record_refusal(
                    conn,
                    item.shop_id,
                    item.provider,
                    item.message_id,
                    change.error,
                    change.params["p_now"],
                )
            ref = change.params.get("p_ref")
            if change.kind == "sent" and ref:  # the vendor may have reported already
                catch_up(conn, item.shop_id, item.provider, ref, item.message_id)
        return applied

    return unit


def recheck_seconds(config: OutboxConfig) -> float:
    """How soon a row whose outcome is unknown is asked about (again)."""
    return min(float(config.lease_seconds), max(config.backoff_base_seconds, config.tick_seconds))


def describe(exc: BaseException) -> str:
    """An exception as a log line may show it: a provider's own words, else masked."""
    if isinstance(exc, ProviderError):
        return exc.describe()
    return mask_in_text(f"{type(exc).__name__}: {exc}")


class Ledger:
    """Decides what an outcome means for its row, and writes it as this instance."""

    def __init__(
        self,
        database: Database,
        config: OutboxConfig,
        owner_id: str,
        rng: random.Random,
        counters: collections.Counter[str],
    ) -> None:
        self.database = database
        self.config = config
        self.owner_id = owner_id
        self._rng = rng
        self.counters = counters

    async def write(self, changes: Sequence[Change]) -> list[Change]:
        """Write `changes` in one unit, count and log them. Returns those that stood."""
        applied = await self.database.write(_apply(changes)) if changes else []
        self._report(changes, applied)
        return applied

    def backoff(self, attempts: int, retry_after: float | None = None) -> float:
        """Seconds until the next attempt: exponential, capped, ±20 % jitter."""
        c = self.config
        delay = min(
            c.backoff_base_seconds * 2.0 ** min(max(attempts - 1, 0), 60), c.backoff_max_seconds
        )
        delay = min(delay * self._rng.uniform(1 - JITTER, 1 + JITTER), c.backoff_max_seconds)
        return max(delay, retry_after) if retry_after is not None else delay

    def change(self, item: Claimed, outcome: SendResult | ProviderError, now: datetime) -> Change:
        """What a send's outcome makes of the row it claimed."""
        if isinstance(outcome, SendResult):
            return self.sent(item, outcome, now, was="sending")
        if isinstance(outcome, UnknownOutcome):
            params = self._owned(item, "sending", now) | {
                "p_not_before": now + timedelta(seconds=recheck_seconds(self.config)),
                "p_resend_after": now + timedelta(seconds=self.config.lease_seconds),
                "p_error": outcome.describe(),
            }
            return Change(item, "unknown", _RECORD_UNKNOWN, params)
        if isinstance(outcome, NotYet):
            params = self._owned(item, "sending", now) | {
                "p_not_before": now + timedelta(seconds=outcome.retry_after),
                "p_error": outcome.describe(),
            }
            return Change(item, "retry", _RECORD_HOLD, params)
        if isinstance(outcome, TransientError):
            if item.attempts >= self.config.max_attempts:
                error = PermanentError(f"gave up after {item.attempts} attempts: {outcome.reason}")
                return self.dead(item, error, now, was="sending")
            retry_after = outcome.retry_after if isinstance(outcome, RateLimited) else None
            delay = self.backoff(item.attempts, retry_after)
            params = self._owned(item, "sending", now) | {
                "p_not_before": now + timedelta(seconds=delay),
                "p_error": outcome.describe(),
            }
            return Change(item, "retry", _RECORD_RETRY, params)
        return self.dead(item, outcome, now, was="sending")

    def sent(self, item: Claimed, result: SendResult, now: datetime, *, was: str) -> Change:
        """The row went out (or its lookup found it did)."""
        params = self._owned(item, was, now) | {"p_ref": result.provider_message_id}
        delivered = result.status == "delivered"
        message = {
            "p_mid": item.message_id,
            "p_status": "delivered" if delivered else "sent",
            "p_path": result.path,
            "p_provider": item.provider,
            "p_ref": result.provider_message_id,
            "p_delivered_at": now if delivered else None,
        }
        return Change(item, "sent", _RECORD_SENT, params, _MESSAGE_SENT, message)

    def dead(self, item: Claimed, error: ProviderError, now: datetime, *, was: str) -> Change:
        """The row will not go: `error` says why, on the row and on its message."""
        text = error.describe()
        params = self._owned(item, was, now) | {"p_error": text}
        message = {"p_mid": item.message_id, "p_provider": item.provider, "p_error": text}
        return Change(item, "dead", _RECORD_DEAD, params, _MESSAGE_FAILED, message, error)

    def resend(self, item: Claimed, now: datetime) -> Change:
        """An unknown outcome the provider cannot find after the lease: send it again."""
        params = self._owned(item, "unknown", now) | {
            "p_not_before": now,
            "p_error": "outcome unknown; not found by the provider, sending again",
        }
        return Change(item, "retry", _RECORD_RETRY, params)

    def _owned(self, item: Claimed, was: str, now: datetime) -> dict[str, Any]:
        return {"p_id": item.id, "p_me": self.owner_id, "p_was": was, "p_now": now}

    def _report(self, changes: Iterable[Change], applied: Sequence[Change]) -> None:
        done = {id(c) for c in applied}
        for change in changes:
            item = change.item
            if id(change) not in done:
                self.counters["lost_lease"] += 1
                log.warning("outbox %d: lease lost before recording %s", item.id, change.kind)
                continue
            self.counters[change.kind] += 1
            error = change.params.get("p_error")
            if change.kind == "sent":
                log.debug("outbox %d sent via %s (%s)", item.id, item.provider, item.purpose)
            elif change.kind == "dead":
                log.warning(
                    "outbox %d (%s via %s) is dead after %d attempts: %s",
                    item.id,
                    item.purpose,
                    item.provider,
                    item.attempts,
                    error,
                )
            else:
                log.info("outbox %d %s: %s", item.id, change.kind, error)
