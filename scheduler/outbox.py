"""The outbox: enqueue in the caller's transaction; claim with a lease; send; record.

Statuses of an outbox row:

    pending ──claim──> sending ──success──> sent
       ^                  │ ├──transient (attempts left)──> pending (not_before = now + backoff)
       │                  │ ├──not yet (lawful hours, or not handed over in the send window)
       │                  │ │        ──> pending (not_before = then; no try spent)
       │                  │ ├──transient (no attempts left), permanent──> dead
       │                  │ └──outcome unknown──> unknown
       │                  └──lease expired (crashed or stuck sender)──> unknown
       │                                                                  │
       └──── lookup: not found and the lease is over (attempts left) ─────┤
                                               lookup: found ──> sent  <──┘
                                               not found, no attempts left ──> dead
                           cannot tell, or the lookup failing past its give-up ──> dead
    pending / unknown ──cancel()──> cancelled;  dead ──requeue()──> pending

A row is never sent again while it might already have gone out: an unknown outcome (and
a lease that ran out mid-send) is first put to the provider's `lookup`, and only when that
cannot find it after the lease is over does the row go back to `pending` — which spends
an attempt, so `max_attempts` bounds resends too. A lookup that failed (an error, a
timeout, a search cut short) is no "not found": it is asked again at each recheck, and
after `lookup_give_up_seconds` the row is dead as "cannot tell", for the owner to send
again or not. For an `unknown` row `lease_until` is that "resend not before" deadline and
`lease_owner` the instance checking it.

Rows are claimed per provider, each only as many as that provider sends in a second at its
rate (`Dispatcher.claim_limit`) and only once its rate lets them go at once; each send()
call has its own time limit, and a row not handed to its vendor within the first half of
the lease (`send_window`) goes back to `pending` with no try spent — never `unknown`.

A row whose payload has photo `attachments` (an owner's photo reply) gets its first photo
through the `PhotoResolver` the Dispatcher was given (`build_outgoing` decides how: as the
message's picture, or as a link in the text) — so this module never touches files or
configuration.

Every result is recorded with `WHERE id = :id AND lease_owner = :me AND status = :was`, so a
sender whose lease was taken over cannot overwrite what the new owner recorded.
"""

from __future__ import annotations

import asyncio
import collections
import enum
import logging
import random
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
)
from tenacity.stop import stop_base

from core.clock import Clock
from core.config import OutboxConfig
from core.db import Database
from core.delivery import catch_up
from core.models import Message, OutboxItem, UTCDateTime
from core.outbox import WATCHED, PhotoResolver, PhotoUnavailable
from providers.base import (
    CannotTell,
    Capability,
    NotYet,
    Outgoing,
    PermanentError,
    Provider,
    ProviderError,
    RateLimited,
    Recipient,
    SendRef,
    SendResult,
    TransientError,
    UnknownOutcome,
    mask_in_text,
)
from providers.registry import Providers

log = logging.getLogger("dangol.outbox")

OUTBOX = cast(sa.Table, OutboxItem.__table__)
MESSAGES = cast(sa.Table, Message.__table__)

# Short in-call retries: a blip is retried at once; anything longer is the outbox's job.
IN_CALL_RETRIES = 2
IN_CALL_WAIT = (0.2, 1.0)
IN_CALL_RETRY_AFTER_MAX = 2.0
JITTER = 0.2
# A claim takes no more of a provider's rows than it sends in this long at its rate (Twilio
# at 1/s: 1), and is made once its rate limit would let them go at once. A slow provider
# then never holds up the others' next round for long, and a crash leaves none of its rows
# claimed but waiting: after a restart, such a row at a vendor that cannot be searched
# (Kakao's Event API without its task id) is "cannot tell" like one sent.
ROUND_SECONDS = 1.0
# A reconcile takes up to this many batches of open rows: a vendor search answers them all
# in one read (SOLAPI's list), so more rows per round cost little and settle a backlog left
# by a crash in a round or two rather than one batch per tick.
RECONCILE_BATCHES = 10

# --------------------------------------------------------------------------- claim

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
# (`Dispatcher.claim_limit`); rows for a provider not configured here are claimed too, to
# be failed at once with the reason.
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
        )


# --------------------------------------------------------------------------- record

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
    .where(MESSAGES.c.id == _P_MID, MESSAGES.c.status.not_in(("delivered", "failed")))
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
    .where(MESSAGES.c.id == _P_MID, MESSAGES.c.status.not_in(("sent", "delivered", "failed")))
    .values(status="failed", provider=sa.bindparam("p_provider", type_=sa.String()), error=_P_ERROR)
)


@dataclass(frozen=True, slots=True)
class _Change:
    """One recorded outcome: the outbox update and, if it applies, the message update."""

    item: Claimed
    kind: str  # sent | retry | dead | unknown
    statement: Any
    params: dict[str, Any]
    message_statement: Any = None
    message_params: dict[str, Any] | None = None


def _apply(changes: Sequence[_Change]) -> Callable[[Connection], list[_Change]]:
    def unit(conn: Connection) -> list[_Change]:
        applied = []
        for change in changes:
            if conn.execute(change.statement, change.params).rowcount != 1:
                continue  # the lease is someone else's now; their record stands
            applied.append(change)
            item = change.item
            if change.message_statement is None or item.message_id is None:
                continue
            conn.execute(change.message_statement, change.message_params)
            ref = change.params.get("p_ref")
            if change.kind == "sent" and ref:  # the vendor may have reported already
                catch_up(conn, item.shop_id, item.provider, ref, item.message_id)
        return applied

    return unit


# --------------------------------------------------------------------------- dispatch


class AskAgain(enum.Enum):
    """A lookup that could not search (network, vendor trouble): try it again later."""

    token = 0


ASK_AGAIN = AskAgain.token


class _RetryNow(Exception):
    """Some messages of a call failed transiently; try them again within this call."""

    def __init__(self, retry_after: float) -> None:
        super().__init__(retry_after)
        self.retry_after = retry_after


class NotSent(NotYet):
    """The send window closed before this message was handed to its vendor: nothing can
    have gone out, so it waits for the next round (at once) and no try is counted."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason, retry_after=0.0, code="not_sent")


class _StopAt(stop_base):
    """Stop in-call retries once `clock` reaches `deadline` (the send window's end)."""

    def __init__(self, clock: Clock, deadline: datetime) -> None:
        self.clock = clock
        self.deadline = deadline

    def __call__(self, retry_state: RetryCallState) -> bool:
        return self.clock.now() >= self.deadline


def _retry_now(outcome: SendResult | ProviderError) -> bool:
    if not isinstance(outcome, TransientError):
        return False
    return not isinstance(outcome, RateLimited) or outcome.retry_after <= IN_CALL_RETRY_AFTER_MAX


def _opt_str(value: Any) -> str | None:
    return str(value) if value not in (None, "") else None


def first_photo(payload: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The first image among a payload's `attachments` (bot/photos/records.py `attachment()`)."""
    attachments = payload.get("attachments")
    for found in attachments if isinstance(attachments, list) else []:
        if isinstance(found, Mapping) and str(found.get("content_type", "")).startswith("image/"):
            return found
    return None


def with_link(text: str, url: str, max_chars: int) -> str:
    """`text` with the photo's URL on a line of its own, if it still fits the provider."""
    linked = f"{text}\n\n{url}"
    return linked if len(linked) <= max_chars else text


# --------------------------------------------------------------------------- building


async def build_outgoing(
    item: Claimed, provider: Provider, photos: PhotoResolver | None = None
) -> Outgoing | ProviderError:
    """The provider-facing message for a row, or why it cannot be sent by `provider`
    (a TransientError when its photo could not be prepared this time).

    What becomes of a photo attachment is decided here and nowhere else: it is the
    message's picture when the provider carries images; else its absolute URL is appended
    to the text, for the customer to tap (Kakao), or left out when there is no public
    address. A template message (the AlimTalk reply notice) carries neither: its approved
    text is all that goes.
    """
    payload = item.payload
    text = payload.get("text")
    if not isinstance(text, str) or not text:
        return PermanentError("payload has no text")
    variables = payload.get("variables") or {}
    if not isinstance(variables, Mapping):
        return PermanentError("payload.variables must be an object")
    template = _opt_str(payload.get("template"))
    caps = provider.capabilities
    image_path = image_url = None
    photo = first_photo(payload) if template is None else None
    if photo is not None and photos is None:
        log.warning("outbox %d: no photo resolver configured; sending the text only", item.id)
    elif photo is not None and photos is not None:
        as_picture = Capability.IMAGES in caps
        try:
            found = await photos(photo, as_picture)
        except PhotoUnavailable as exc:
            # Dead, not sent as text alone: the owner attached the photo on purpose and the
            # text often refers to it ("견적서 사진 보내드려요"). Half a reply recorded as
            # "sent" would hide that; a failed reply with this reason shows in the console
            # and the owner can send the photo again. A retry cannot bring the file back.
            log.warning("outbox %d: photo unavailable: %s", item.id, exc)
            return PermanentError(
                "첨부한 사진 파일을 찾을 수 없어 보내지 못했어요. 사진을 다시 올려 보내 주세요.",
                code="photo_missing",
            )
        except OSError as exc:  # disk full, permissions: may be fixed before the next try
            log.warning("outbox %d: photo not prepared: %s", item.id, _describe(exc))
            return TransientError(
                f"사진을 준비하지 못했어요 ({type(exc).__name__})", code="photo_not_ready"
            )
        if as_picture:
            image_path, image_url = found.path, found.url
        elif found.url:
            text = with_link(text, found.url, provider.max_text_chars)
    msg = Outgoing(
        ref=str(item.id),
        recipient=Recipient.from_mapping(item.recipient),
        text=text,
        subject=_opt_str(payload.get("subject")),
        purpose=item.purpose,
        informational=bool(payload.get("informational", True)),
        image_path=image_path,
        image_url=image_url,
        template=template,
        variables={str(k): str(v) for k, v in variables.items()},
    )
    if len(text) > provider.max_text_chars:
        return PermanentError(
            f"text has {len(text)} characters; {provider.name} takes {provider.max_text_chars}"
        )
    if Capability.INFO_ONLY in caps and not msg.informational:
        return PermanentError(f"{provider.name} sends informational messages only")
    if Capability.TEMPLATE_REQUIRED in caps and not msg.template:
        return PermanentError(f"{provider.name} needs a template")
    return msg


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
    ) -> None:
        if not owner_id or len(owner_id) > 64:
            raise ValueError("owner_id must be 1–64 characters")
        self.database = database
        self.providers = providers
        self.clock = clock
        self.config = config
        self.owner_id = owner_id
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not security
        self._sleep = sleep
        self._in_call_retries = in_call_retries
        self.photos = photos
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
        # Told (shop id, message id, status) when a message's delivery state is recorded:
        # the app passes it on to the consoles.
        self.on_message_status: Callable[[int, int, str], None] | None = None
        # Set at shutdown (`stop_claiming`): no row is claimed from then on.
        self.stopping = asyncio.Event()

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
        could not send them all in a round (`ROUND_SECONDS`, within the send window)."""
        rate = provider.send_rate
        if rate is None:
            return self.config.batch_size
        seconds = min(ROUND_SECONDS, self.send_window)
        return max(1, min(self.config.batch_size, int(rate * seconds)))

    async def claim(self) -> list[Claimed]:
        """Lease due rows: one statement per provider, each within `claim_limit`."""
        now = self.clock.now()
        params: dict[str, Any] = {
            "p_now": now,
            "p_me": self.owner_id,
            "p_lease_until": now + timedelta(seconds=self.config.lease_seconds),
        }
        limits = {name: self.claim_limit(self.providers[name]) for name in self.providers}
        claims = [(_CLAIM, {"p_provider": name, "p_batch": n}) for name, n in limits.items()]
        unconfigured = {"p_known": list(limits), "p_batch": self.config.batch_size}
        claims.append((_CLAIM_UNCONFIGURED, unconfigured))

        def unit(conn: Connection) -> tuple[list[Claimed], bool]:
            claimed: list[Claimed] = []
            full = False
            for statement, which in claims:
                rows = conn.execute(statement, params | which).all()
                full = full or len(rows) == which["p_batch"]
                claimed.extend(Claimed.from_row(r) for r in rows)
            return claimed, full

        claimed, self.more_due = await self.database.write(unit)
        claimed.sort(key=lambda c: c.id)
        return claimed

    async def deliver(self, claimed: Sequence[Claimed]) -> dict[int, SendResult | ProviderError]:
        """Send claimed rows, grouped by provider, outside any transaction."""
        outcomes: dict[int, SendResult | ProviderError] = {}
        groups: dict[str, list[tuple[Claimed, Outgoing]]] = {}
        for item in claimed:
            provider = self.providers.get(item.provider)
            if provider is None:
                outcomes[item.id] = self._no_provider(item.provider)
                continue
            built = await build_outgoing(item, provider, self.photos)
            if isinstance(built, ProviderError):
                outcomes[item.id] = built
            else:
                groups.setdefault(item.provider, []).append((item, built))

        async def send_group(name: str, items: list[tuple[Claimed, Outgoing]]) -> None:
            provider = self.providers[name]
            by_ref = {msg.ref: item.id for item, msg in items}
            closes = self._window_closes([item for item, _ in items])
            size = max(1, provider.max_batch)
            for start in range(0, len(items), size):
                if self.clock.now() >= closes:  # the rest was never handed to the vendor
                    late = NotSent(f"not sent within {self.send_window:g} s; next round")
                    outcomes.update((item.id, late) for item, _ in items[start:])
                    return
                chunk = [msg for _, msg in items[start : start + size]]
                got = await self._send_with_retries(provider, chunk, closes)
                for ref, outcome in got.items():
                    outcomes[by_ref[ref]] = outcome

        await asyncio.gather(*(send_group(name, items) for name, items in groups.items()))
        return outcomes

    def _window_closes(self, items: Sequence[Claimed]) -> datetime:
        """When vendor calls for these rows stop: `send_window` after they were claimed."""
        after_window = timedelta(seconds=self.config.lease_seconds - self.send_window)
        leases = [item.lease_until for item in items if item.lease_until is not None]
        if not leases:
            return self.clock.now() + timedelta(seconds=self.send_window)
        return min(leases) - after_window

    async def record(
        self, claimed: Sequence[Claimed], outcomes: Mapping[int, SendResult | ProviderError]
    ) -> int:
        """Write the outcomes of rows we claimed, in one unit. Returns how many stood."""
        now = self.clock.now()
        changes = [self._change(item, outcomes[item.id], now) for item in claimed]
        applied = await self.database.write(_apply(changes))
        self._report(changes, applied)
        return len(applied)

    # -- reconciling unknown outcomes

    async def reconcile(self) -> int:
        """Ask providers about rows whose send may or may not have happened.

        One `lookup_many` per provider for all of its open rows: a vendor search answers
        many rows at once (SOLAPI reads its list once per round, not once per row), and a
        row it did not reach in the round is simply asked again at the next one.
        """
        now = self.clock.now()
        params = {
            "p_now": now,
            "p_me": self.owner_id,
            "p_recheck_at": now + timedelta(seconds=self._recheck_seconds()),
            "p_batch": self.config.batch_size * RECONCILE_BATCHES,
        }

        def unit(conn: Connection) -> list[Claimed]:
            return [Claimed.from_row(r) for r in conn.execute(_CLAIM_OPEN, params)]

        rows = await self.database.write(unit)
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
        changes: list[_Change] = []
        give_up = timedelta(seconds=self.config.lookup_give_up_seconds)
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
                    changes.append(self._dead(item, error, now, was="unknown"))
                continue
            if isinstance(result, ProviderError):  # cannot tell, or the provider is gone
                changes.append(self._dead(item, result, now, was="unknown"))
            elif result is not None:
                changes.append(self._sent(item, result, now, was="unknown"))
            elif item.lease_until is None or item.lease_until <= now:
                if item.attempts >= self.config.max_attempts:
                    error = UnknownOutcome(
                        f"outcome unknown after {item.attempts} attempts; not sent again"
                    )
                    changes.append(self._dead(item, error, now, was="unknown"))
                else:
                    changes.append(self._resend(item, now))
        applied = await self.database.write(_apply(changes)) if changes else []
        self._report(changes, applied)
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
            return {item.id: self._no_provider(name) for item in items}
        refs = [self.send_ref(item) for item in items]
        try:
            # The provider keeps to `send_timeout`; the outer limit only catches one that
            # does not, so a hung adapter cannot hold the tick.
            async with asyncio.timeout(2 * self.send_timeout):
                answers = await provider.lookup_many(refs, seconds=self.send_timeout)
        except Exception as exc:  # the search itself failed: ask again at the next recheck
            log.warning("lookup of %d rows at %s failed: %s", len(refs), name, _describe(exc))
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
                log.warning("outbox %d: lookup at %s failed: %s", item.id, name, _describe(answer))
                out[item.id] = ASK_AGAIN
            elif answer is not None and answer.ref != ref:  # an adapter bug, no "not found"
                log.error("outbox %d: %s lookup answered for ref %r", item.id, name, answer.ref)
                out[item.id] = ASK_AGAIN
            else:
                out[item.id] = answer
        return out

    # -- sending

    async def _send_with_retries(
        self, provider: Provider, batch: list[Outgoing], closes: datetime
    ) -> dict[str, SendResult | ProviderError]:
        outcomes: dict[str, SendResult | ProviderError] = {}
        todo = batch
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self._in_call_retries + 1) | _StopAt(self.clock, closes),
            wait=self._in_call_wait,
            retry=retry_if_exception_type(_RetryNow),
            sleep=self._sleep,
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    got = await self._send_once(provider, todo)
                    outcomes.update(got)
                    todo = [m for m in todo if _retry_now(got[m.ref])]
                    if todo:
                        waits = [
                            e.retry_after for m in todo if isinstance(e := got[m.ref], RateLimited)
                        ]
                        raise _RetryNow(max(waits, default=0.0))
        except _RetryNow:
            pass  # the last transient errors stand; the outbox backs off
        return outcomes

    def _in_call_wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        retry_after = exc.retry_after if isinstance(exc, _RetryNow) else 0.0
        return max(retry_after, self._rng.uniform(*IN_CALL_WAIT))

    async def _send_once(
        self, provider: Provider, batch: list[Outgoing]
    ) -> dict[str, SendResult | ProviderError]:
        rate = provider.send_rate  # the wait its rate limit may impose is no hang
        limit = self.send_timeout + (len(batch) / rate if rate else 0.0)
        try:
            async with asyncio.timeout(limit):
                results = await provider.send(batch)
        except ProviderError as exc:
            return dict.fromkeys((m.ref for m in batch), exc)
        except TimeoutError:
            unknown = UnknownOutcome(f"no answer from {provider.name} in {limit:g} s")
            return dict.fromkeys((m.ref for m in batch), unknown)
        except Exception as exc:
            # An adapter bug or an unmapped library error: the request may have left, so
            # treat it as an unknown outcome (lookup before any resend), never as a failure.
            log.exception("provider %s raised %s", provider.name, type(exc).__name__)
            unknown = UnknownOutcome(f"{provider.name} raised {type(exc).__name__}")
            return dict.fromkeys((m.ref for m in batch), unknown)
        outcomes: dict[str, SendResult | ProviderError] = {}
        for i, msg in enumerate(batch):
            outcome = results[i] if i < len(results) else None
            if isinstance(outcome, ProviderError) or (
                isinstance(outcome, SendResult) and outcome.ref == msg.ref
            ):
                outcomes[msg.ref] = outcome
            else:
                log.error("provider %s gave no proper outcome for ref %s", provider.name, msg.ref)
                outcomes[msg.ref] = UnknownOutcome(f"{provider.name} gave no proper outcome")
        return outcomes

    # -- deciding what an outcome means for the row

    def backoff(self, attempts: int, retry_after: float | None = None) -> float:
        """Seconds until the next attempt: exponential, capped, ±20 % jitter."""
        c = self.config
        delay = min(
            c.backoff_base_seconds * 2.0 ** min(max(attempts - 1, 0), 60), c.backoff_max_seconds
        )
        delay = min(delay * self._rng.uniform(1 - JITTER, 1 + JITTER), c.backoff_max_seconds)
        return max(delay, retry_after) if retry_after is not None else delay

    def _recheck_seconds(self) -> float:
        c = self.config
        return min(float(c.lease_seconds), max(c.backoff_base_seconds, c.tick_seconds))

    def _no_provider(self, name: str) -> PermanentError:
        known = ", ".join(self.providers.names()) or "none"
        return PermanentError(f"provider {name!r} is not configured (configured: {known})")

    def _change(self, item: Claimed, outcome: SendResult | ProviderError, now: datetime) -> _Change:
        if isinstance(outcome, SendResult):
            return self._sent(item, outcome, now, was="sending")
        if isinstance(outcome, UnknownOutcome):
            params = self._owned(item, "sending", now) | {
                "p_not_before": now + timedelta(seconds=self._recheck_seconds()),
                "p_resend_after": now + timedelta(seconds=self.config.lease_seconds),
                "p_error": outcome.describe(),
            }
            return _Change(item, "unknown", _RECORD_UNKNOWN, params)
        if isinstance(outcome, NotYet):
            params = self._owned(item, "sending", now) | {
                "p_not_before": now + timedelta(seconds=outcome.retry_after),
                "p_error": outcome.describe(),
            }
            return _Change(item, "retry", _RECORD_HOLD, params)
        if isinstance(outcome, TransientError):
            if item.attempts >= self.config.max_attempts:
                error = PermanentError(f"gave up after {item.attempts} attempts: {outcome.reason}")
                return self._dead(item, error, now, was="sending")
            retry_after = outcome.retry_after if isinstance(outcome, RateLimited) else None
            delay = self.backoff(item.attempts, retry_after)
            params = self._owned(item, "sending", now) | {
                "p_not_before": now + timedelta(seconds=delay),
                "p_error": outcome.describe(),
            }
            return _Change(item, "retry", _RECORD_RETRY, params)
        return self._dead(item, outcome, now, was="sending")

    def _owned(self, item: Claimed, was: str, now: datetime) -> dict[str, Any]:
        return {"p_id": item.id, "p_me": self.owner_id, "p_was": was, "p_now": now}

    def _sent(self, item: Claimed, result: SendResult, now: datetime, *, was: str) -> _Change:
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
        return _Change(item, "sent", _RECORD_SENT, params, _MESSAGE_SENT, message)

    def _dead(self, item: Claimed, error: ProviderError, now: datetime, *, was: str) -> _Change:
        text = error.describe()
        params = self._owned(item, was, now) | {"p_error": text}
        message = {"p_mid": item.message_id, "p_provider": item.provider, "p_error": text}
        return _Change(item, "dead", _RECORD_DEAD, params, _MESSAGE_FAILED, message)

    def _resend(self, item: Claimed, now: datetime) -> _Change:
        """An unknown outcome the provider cannot find after the lease: send it again."""
        params = self._owned(item, "unknown", now) | {
            "p_not_before": now,
            "p_error": "outcome unknown; not found by the provider, sending again",
        }
        return _Change(item, "retry", _RECORD_RETRY, params)

    def _report(self, changes: Iterable[_Change], applied: Sequence[_Change]) -> None:
        done = {id(c) for c in applied}
        for change in changes:
            item = change.item
            if id(change) not in done:
                self.counters["lost_lease"] += 1
                log.warning("outbox %d: lease lost before recording %s", item.id, change.kind)
                continue
            self.counters[change.kind] += 1
            if self.on_message_status and item.message_id is not None and change.message_params:
                status = str(change.message_params.get("p_status", "failed"))
                self.on_message_status(item.shop_id, item.message_id, status)
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


def _describe(exc: BaseException) -> str:
    if isinstance(exc, ProviderError):
        return exc.describe()
    return mask_in_text(f"{type(exc).__name__}: {exc}")
