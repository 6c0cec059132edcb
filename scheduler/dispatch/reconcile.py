"""Reconciling unknown outcomes: asking providers whether a send happened, before any resend.

The rule (in the package's docstring): a row that might have gone out is looked up, and
sent again only when its provider cannot find it after the lease is over; a lookup that
could not search is asked again at each recheck until `lookup_give_up_seconds`.
"""

from __future__ import annotations

import asyncio
import collections
import enum
import logging
from collections.abc import Sequence
from datetime import timedelta

from core.clock import Clock
from core.config import OutboxConfig
from core.db import Database
from providers.base import CannotTell, ProviderError, Recipient, SendRef, SendResult, UnknownOutcome
from providers.registry import Providers
from scheduler.dispatch.claims import Claimed, claim_open
from scheduler.dispatch.outgoing import not_configured
from scheduler.dispatch.records import Change, Ledger, describe, recheck_seconds

log = logging.getLogger("dangol.outbox")

# A reconcile takes up to this many batches of open rows: a vendor search answers them all
# in one read (SOLAPI's list), so more rows per round cost little and settle a backlog left
# by a crash in a round or two rather than one batch per tick.
RECONCILE_BATCHES = 10


class AskAgain(enum.Enum):
    """A lookup that could not search (network, vendor trouble): try it again later."""

    token = 0


ASK_AGAIN = AskAgain.token


class Reconciler:
    """Takes the rows whose outcome is open, asks their providers, records the answers."""

    def __init__(
        self,
        database: Database,
        providers: Providers,
        clock: Clock,
        config: OutboxConfig,
        *,
        owner_id: str,
        send_timeout: float,
        ledger: Ledger,
        counters: collections.Counter[str],
    ) -> None:
        self.database = database
        self.providers = providers
        self.clock = clock
        self.config = config
        self.owner_id = owner_id
        self.send_timeout = send_timeout
        self.ledger = ledger
        self.counters = counters

    async def reconcile(self) -> int:
        """Ask providers about rows whose send may or may not have happened.

        One `lookup_many` per provider for all of its open rows: a vendor search answers
        many rows at once (SOLAPI reads its list once per round, not once per row), and a
        row it did not reach in the round is simply asked again at the next one.
        """
        now = self.clock.now()
        rows = await claim_open(
            self.database,
            now=now,
            owner_id=self.owner_id,
            recheck_at=now + timedelta(seconds=recheck_seconds(self.config)),
            batch=self.config.batch_size * RECONCILE_BATCHES,
        )
        if not rows:
            return 0
        by_provider: dict[str, list[Claimed]] = {}
        for item in rows:
            by_provider.setdefault(item.provider, []).append(item)
        found: dict[int, SendResult | ProviderError | AskAgain | None] = {}
        for answers in await asyncio.gather(
            *(self._lookup(name, items) for name, items in by_provider.items())
        ):
            found.update(answers)
        now = self.clock.now()
        changes: list[Change] = []
        give_up = timedelta(seconds=self.config.lookup_give_up_seconds)
        ledger = self.ledger
        for item in rows:
            result = found[item.id]
            if result is ASK_AGAIN:
                # Stays unknown until the next recheck; past the give-up time (from the end
                # of its lease), a person decides rather than the row waiting for ever.
                if item.lease_until is not None and now >= item.lease_until + give_up:
                    error = UnknownOutcome(
                        f"{item.provider} cannot tell whether it arrived: it could not be "
                        f"asked for {give_up.total_seconds() / 60:g} min; not resent",
                        code="lookup_failed",
                    )
                    changes.append(ledger.dead(item, error, now, was="unknown"))
                continue
            if isinstance(result, ProviderError):  # cannot tell, or the provider is gone
                changes.append(ledger.dead(item, result, now, was="unknown"))
            elif result is not None:
                changes.append(ledger.sent(item, result, now, was="unknown"))
            elif item.lease_until is None or item.lease_until <= now:
                if item.attempts >= self.config.max_attempts:
                    error = UnknownOutcome(
                        f"outcome unknown after {item.attempts} attempts; not sent again"
                    )
                    changes.append(ledger.dead(item, error, now, was="unknown"))
                else:
                    changes.append(ledger.resend(item, now))
        await ledger.write(changes)
        return len(rows)

    def send_ref(self, item: Claimed) -> SendRef:
        """What the row says about its send, for the provider to search by."""
        # About when the send was attempted: its lease ran from then (narrows vendor searches).
        lease = timedelta(seconds=self.config.lease_seconds)
        text = item.payload.get("text")
        return SendRef(
            ref=str(item.id),
            provider_message_id=item.provider_ref,
            attempted_at=item.lease_until - lease if item.lease_until else None,
            recipient=Recipient.from_mapping(item.recipient),
            text=text if isinstance(text, str) else None,
        )

    async def _lookup(
        self, name: str, items: Sequence[Claimed]
    ) -> dict[int, SendResult | ProviderError | AskAgain | None]:
        """What `name` says about each of its open rows (ASK_AGAIN: no answer this round)."""
        provider = self.providers.get(name)
        if provider is None:
            return {item.id: not_configured(self.providers, name) for item in items}
        refs = [self.send_ref(item) for item in items]
        try:
            # The provider keeps to `send_timeout`; the outer limit only catches one that
            # does not, so a hung adapter cannot hold the tick.
            async with asyncio.timeout(2 * self.send_timeout):
                answers = await provider.lookup_many(refs, seconds=self.send_timeout)
        except Exception as exc:  # the search itself failed: ask again at the next recheck
            log.warning("lookup of %d rows at %s failed: %s", len(refs), name, describe(exc))
            return dict.fromkeys((item.id for item in items), ASK_AGAIN)
        out: dict[int, SendResult | ProviderError | AskAgain | None] = {}
        for item in items:
            ref = str(item.id)
            if ref not in answers:  # not reached this round: no failure, just not yet
                self.counters["lookup_not_reached"] += 1
                out[item.id] = ASK_AGAIN
                continue
            answer = answers[ref]
            if isinstance(answer, CannotTell):
                # Resending could make a second copy; a person decides (console: send again).
                out[item.id] = UnknownOutcome(
                    f"{provider.name} cannot tell whether it arrived; not resent"
                )
            elif isinstance(answer, ProviderError):  # the search failed: ask again later
                log.warning("outbox %d: lookup at %s failed: %s", item.id, name, describe(answer))
                out[item.id] = ASK_AGAIN
            elif answer is not None and answer.ref != ref:  # an adapter bug, no "not found"
                log.error("outbox %d: %s lookup answered for ref %r", item.id, name, answer.ref)
                out[item.id] = ASK_AGAIN
            else:
                out[item.id] = answer
        return out
