"""The `Dispatcher`: one per process, it ties the stages together on each tick.

reconcile open outcomes (`reconcile.py`) → wait for the providers' rates → claim due rows
and ask the send-time policy about each (`claims.py`, `screening.py`) → send those it lets
go (`sending.py`, building each message with `outgoing.py`) → record what happened
(`records.py`). It also keeps the counters and answers `stats()`.
"""

from __future__ import annotations

import asyncio
import collections
import random
from collections.abc import Awaitable, Callable, Mapping, Sequence

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from core.clock import Clock
from core.config import OutboxConfig
from core.db import Database
from core.outbox import OUTBOX, WATCHED, PhotoResolver
from providers.base import Provider, ProviderError, SendRef, SendResult
from providers.registry import Providers
from scheduler.dispatch import claims
from scheduler.dispatch.claims import Claimed
from scheduler.dispatch.reconcile import Reconciler
from scheduler.dispatch.records import Ledger, log
from scheduler.dispatch.screening import Screened, screen
from scheduler.dispatch.sending import IN_CALL_RETRIES, Courier
from scheduler.policy import ShopRules


class Dispatcher:
    """Claims due outbox rows, sends them through their provider, records what happened.

    One per process; every process may run one against the same database.
    """

    def __init__(
        self,
        database: Database,
        providers: Providers,
        clock: Clock,
        config: OutboxConfig,
        *,
        owner_id: str,
        rng: random.Random | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        in_call_retries: int = IN_CALL_RETRIES,
        send_timeout: float | None = None,
        photos: PhotoResolver | None = None,
        rules: Mapping[int, ShopRules] | None = None,
    ) -> None:
        if not owner_id or len(owner_id) > 64:
            raise ValueError("owner_id must be 1–64 characters")
        self.database = database
        self.providers = providers
        self.clock = clock
        self.config = config
        self.owner_id = owner_id
        rng = rng or random.Random()  # noqa: S311 - jitter, not security
        self.photos = photos
        # Each shop's side of the send-time policy, by shop id (`scheduler.policy.rules_for`);
        # a shop not here gets the law's defaults (`DEFAULT_RULES`).
        self.rules: Mapping[int, ShopRules] = rules or {}
        # A limit per vendor call (plus the wait its rate limit imposes), well inside the
        # lease, so a hung call ends before anyone may take the row.
        self.send_timeout = send_timeout or max(1.0, config.lease_seconds / 4)
        # Vendor calls start only in the first half of the lease: one started at its end
        # still ends (send_timeout) and is recorded before the lease runs out.
        self.send_window = config.lease_seconds / 2
        self._waker: Callable[[], None] | None = None
        self.counters: collections.Counter[str] = collections.Counter()
        self.last_claimed = 0
        self.more_due = False  # the last claim took all it could of some provider: go on
        # Set at shutdown (`stop_claiming`): no row is claimed from then on.
        self.stopping = asyncio.Event()
        self.ledger = Ledger(database, config, owner_id, rng, self.counters)
        self.courier = Courier(
            providers,
            clock,
            lease_seconds=config.lease_seconds,
            send_window=self.send_window,
            send_timeout=self.send_timeout,
            photos=photos,
            rng=rng,
            sleep=sleep,
            in_call_retries=in_call_retries,
        )
        self.reconciler = Reconciler(
            database,
            providers,
            clock,
            config,
            owner_id=owner_id,
            send_timeout=self.send_timeout,
            ledger=self.ledger,
            counters=self.counters,
        )

    # -- waking up

    def set_waker(self, waker: Callable[[], None] | None) -> None:
        """What `on_enqueued` calls: the ticks loop's "run dispatch now"."""
        self._waker = waker

    def stop_claiming(self) -> None:
        """At shutdown: claim no more rows; a tick under way finishes those it holds."""
        self.stopping.set()

    def on_enqueued(self) -> None:
        """Call after committing new outbox rows, so they go out now, not on the next tick."""
        if self._waker is not None:
            self._waker()

    # -- the tick

    async def tick(self) -> int:
        """Reconcile open outcomes, then claim, send and record due rows. Returns rows handled."""
        if self.stopping.is_set():
            self.last_claimed, self.more_due = 0, False
            return 0
        handled = await self.reconcile()
        await self._wait_for_rates()
        # The rate wait may have outlasted a shutdown request: claim nothing then.
        claimed = await self.claim() if not self.stopping.is_set() else []
        self.last_claimed = len(claimed)
        if claimed:
            outcomes = await self.deliver(claimed)
            await self.record(claimed, outcomes)
        return handled + len(claimed)

    async def drain(self, max_rounds: int = 20) -> int:
        """Tick until no provider's claim comes back full (bounded)."""
        total = 0
        for _ in range(max_rounds):
            if self.stopping.is_set():
                break
            total += await self.tick()
            if not self.more_due:
                break
        return total

    async def _wait_for_rates(self) -> None:
        """Wait until every rate-limited provider could send a claim's worth at once, so
        what is claimed goes out now rather than waiting its turn while claimed."""
        await asyncio.gather(
            *(
                provider.ready_to_send(self.claim_limit(provider))
                for provider in (self.providers[name] for name in self.providers)
                if provider.send_rate is not None
            )
        )

    def claim_limit(self, provider: Provider) -> int:
        """How many of `provider`'s rows one claim takes: the batch, or fewer when its rate
        could not send them all in a round (`claims.ROUND_SECONDS`, within the send window)."""
        return claims.claim_limit(provider.send_rate, self.config.batch_size, self.send_window)

    async def claim(self) -> list[Claimed]:
        """Lease due rows: one statement per provider, each within `claim_limit`, and ask
        the send-time policy about each in the same unit. Returns those to send now; the
        rows it holds or drops are recorded already."""
        now = self.clock.now()

        def screened(conn: Connection, claimed: list[Claimed]) -> Screened:
            return screen(conn, claimed, self.rules, now)

        found, self.more_due = await claims.claim_due(
            self.database,
            now=now,
            owner_id=self.owner_id,
            lease_seconds=self.config.lease_seconds,
            limits={name: self.claim_limit(self.providers[name]) for name in self.providers},
            batch_size=self.config.batch_size,
            screen=screened,
        )
        self._report_screened(found)
        return found.send

    def _report_screened(self, found: Screened) -> None:
        self.counters["held"] += len(found.held)
        self.counters["dropped"] += len(found.dropped)
        for item, hold in found.held:  # a night's reminders: one line each is noise
            log.debug(
                "outbox %d (%s) held until %s: %s", item.id, item.purpose, hold.until, hold.reason
            )
        for item, drop in found.dropped:
            log.info(
                "outbox %d (%s) dropped (%s): %s", item.id, item.purpose, drop.code, drop.reason
            )

    async def deliver(self, claimed: Sequence[Claimed]) -> dict[int, SendResult | ProviderError]:
        """Send claimed rows, grouped by provider, outside any transaction."""
        return await self.courier.deliver(claimed)

    async def record(
        self, claimed: Sequence[Claimed], outcomes: Mapping[int, SendResult | ProviderError]
    ) -> int:
        """Write the outcomes of rows we claimed, in one unit. Returns how many stood."""
        now = self.clock.now()
        changes = [self.ledger.change(item, outcomes[item.id], now) for item in claimed]
        return len(await self.ledger.write(changes))

    async def reconcile(self) -> int:
        """Ask providers about rows whose send may or may not have happened."""
        return await self.reconciler.reconcile()

    def send_ref(self, item: Claimed) -> SendRef:
        """What the row says about its send, for the provider to search by."""
        return self.reconciler.send_ref(item)

    def backoff(self, attempts: int, retry_after: float | None = None) -> float:
        """Seconds until the next attempt: exponential, capped, ±20 % jitter."""
        return self.ledger.backoff(attempts, retry_after)

    # -- metrics

    async def stats(self) -> dict[str, int]:
        """Rows per open status, plus `due`: pending rows whose time has come."""
        now = self.clock.now()
        counts = dict.fromkeys(WATCHED, 0)
        async with self.database.read() as conn:
            rows = await conn.execute(
                sa.select(OUTBOX.c.status, sa.func.count())
                .where(OUTBOX.c.status.in_(WATCHED))
                .group_by(OUTBOX.c.status)
            )
            for status, count in rows:
                counts[status] = int(count)
            due = await conn.execute(
                sa.select(sa.func.count())
                .select_from(OUTBOX)
                .where(OUTBOX.c.status == "pending", OUTBOX.c.not_before <= now)
            )
            counts["due"] = int(due.scalar_one())
        return counts
