"""Delivery reports from providers, applied to our messages a whole group commit at a time.

Every vendor's reports arrive here as `providers.base.DeliveryReport`s, mapped by its
adapter. Each webhook request's reports are one `ReportBatch`; the SOLAPI and Twilio
webhooks submit it as `apply_reports_batched(...)`, and the writer hands `apply_many`
every batch waiting for the same commit (`core.db.Batched`). For every report, as if they
came one after another:

* it is stored in `delivery_events`; the unique (shop, provider, event id) makes a
  redelivered report a no-op (``ON CONFLICT DO NOTHING``), so it changes nothing twice;
* it finds the message it is about: by the provider's message id within the shop, else by
  our outbox id the provider echoed back (SOLAPI ``customFields.ourId``);
* it moves the message's status forward only (`providers.base.status_advances`, the one
  order of `DeliveryStatus`): a late "accepted" never replaces "delivered" or "failed",
  and the first final status wins;
* it settles an outbox row that never learnt the vendor took the message (its answer was
  lost: `unknown`; or a retry is scheduled): it is `sent`, so it is never sent twice;
* it notes SOLAPI's own fallback (an AlimTalk that went as SMS): the message's path becomes
  the text's and `payload.fell_back` says so, for the console;
* on failure it keeps the vendor's reason in `Message.error`; on an opt-out (SOLAPI
  1061/2061, Twilio 21610) it records the customer's marketing consent as withdrawn, with
  an audit entry (`core.consents`) — the customer found by the message, else by the
  number the report names.

A report about a message we do not know is stored and otherwise ignored: the provider
gets its 200 either way, or it would retry forever.

Whatever changes a message's status — a report here, the dispatcher recording a send, the
delivery check, a customer's photos arriving — registers `StatusChanged` with
`after_commit` in the same unit (`status_changed`): the owner's consoles hear of it once,
and only if, it commits (the app's live hub listens for it).

Why set-based: one report cost 4–5 statements, and SQLAlchemy's overhead per statement,
not the database, bounded a webhook taking 500 reports a second. `apply_many` does the work
of any number of reports with a fixed number of statements — one INSERT of the events, two
SELECTs for the messages, one executemany per kind of write — and makes the decisions in
Python, in arrival order, carrying each message's state from one report to the next: two
reports for one message in a batch apply in order, the later status winning.

One job, kept whole though it is over 400 lines: the batch's statements, its finder and its
decisions are one algorithm, read top-down; `catch_up` applies the same rule to reports that
arrived before the send was recorded. Opt-outs are recorded by `core.consents`.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from core.consents import OptOut, record_opt_outs
from core.db import Batched, Unit, after_commit
from core.models import CustomerIdentity, DeliveryEvent, Message, OutboxItem
from providers.base import DeliveryReport, DeliveryStatus, status_advances

EVENTS = cast(sa.Table, DeliveryEvent.__table__)
MESSAGES = cast(sa.Table, Message.__table__)
OUTBOX = cast(sa.Table, OutboxItem.__table__)
IDENTITIES = cast(sa.Table, CustomerIdentity.__table__)

# A report of a text for a message sent as AlimTalk or a brand message: SOLAPI fell back.
KAKAO_PATHS = frozenset({"alimtalk", "brand_message"})
FALLBACK_PATHS = frozenset({"sms", "lms", "mms"})

Changed = list[tuple[int, str]]  # (message id, new status), in report order


@dataclass(slots=True)  # not frozen: one is made per report, and frozen costs more
class StatusChanged:
    """After commit: a message's delivery status (or something else the console shows
    about it) changed; its shop's consoles refresh it."""

    shop_id: int
    message_id: int
    status: str


def status_changed(shop_id: int, message_id: int, status: str) -> None:
    """Inside the unit that changed a message's status: tell it once the unit commits."""
    after_commit(StatusChanged(shop_id, message_id, status))


@dataclass(frozen=True)
class ReportBatch:
    """The reports of one webhook request, as received at `now`."""

    shop_id: int
    provider: str
    reports: Sequence[DeliveryReport]
    now: datetime


def apply_reports_batched(
    shop_id: int, provider: str, reports: Sequence[DeliveryReport], now: datetime
) -> Batched[ReportBatch, Changed]:
    """For `Database.write`: applied together with its group commit's other reports;
    returns the messages whose status changed."""
    return Batched(apply_many, ReportBatch(shop_id, provider, reports, now))


def apply_reports(
    shop_id: int, provider: str, reports: Sequence[DeliveryReport], now: datetime
) -> Unit[Changed]:
    """The same work as a plain unit (tools and tests)."""
    batch = ReportBatch(shop_id, provider, reports, now)
    return lambda conn: apply_many(conn, [batch])[0]


# --------------------------------------------------------------------------- statements


def _per_dialect(build: Any) -> dict[str, Any]:
    """ON CONFLICT DO NOTHING is spelled per dialect; both are built once."""
    return {"sqlite": build(sqlite.insert), "postgresql": build(postgresql.insert)}


INSERT_EVENTS = _per_dialect(
    lambda insert: (
        insert(EVENTS)
        .on_conflict_do_nothing()
        .returning(EVENTS.c.shop_id, EVENTS.c.provider, EVENTS.c.event_id)
    )
)
_MESSAGE_COLUMNS = (
    MESSAGES.c.id,
    MESSAGES.c.shop_id,
    MESSAGES.c.status,
    MESSAGES.c.customer_id,
    MESSAGES.c.provider_message_id,
    MESSAGES.c.path,
    MESSAGES.c.payload,
)
# Two IN lists rather than one of (shop, id) pairs: both databases search the index with
# these; rows of another shop that come along are not looked at.
BY_PROVIDER_ID = (
    sa.select(*_MESSAGE_COLUMNS)
    .where(
        MESSAGES.c.shop_id.in_(sa.bindparam("shop_ids", expanding=True)),
        MESSAGES.c.provider_message_id.in_(sa.bindparam("ids", expanding=True)),
        MESSAGES.c.direction == "out",
    )
    .order_by(MESSAGES.c.id)
)
BY_OUTBOX_ID = (
    sa.select(*_MESSAGE_COLUMNS, OUTBOX.c.id.label("outbox_id"))
    .select_from(OUTBOX.join(MESSAGES, MESSAGES.c.id == OUTBOX.c.message_id))
    .where(
        OUTBOX.c.id.in_(sa.bindparam("ids", expanding=True)),
        OUTBOX.c.shop_id == MESSAGES.c.shop_id,
        MESSAGES.c.direction == "out",
    )
)
# Outbox states in which we do not (yet) know the vendor has the message.
_UNSETTLED = ("pending", "sending", "unknown")
# A report is proof the vendor took the message: an outbox row still unsure of that is
# sent, and will not go out again. The dispatcher records only `WHERE status = <what it
# saw>`, so it cannot undo this.
_P_NOW = sa.bindparam("p_now", type_=OUTBOX.c.sent_at.type)
SETTLE_OUTBOX = (
    sa.update(OUTBOX)
    .where(
        OUTBOX.c.id == sa.bindparam("p_id"),
        OUTBOX.c.shop_id == sa.bindparam("p_shop"),
        # literals, not an expanding IN: an executemany cannot expand one
        OUTBOX.c.status.in_([sa.literal(status) for status in _UNSETTLED]),
    )
    .values(
        status="sent",
        provider_ref=sa.bindparam("p_ref"),
        sent_at=_P_NOW,
        updated_at=_P_NOW,
        lease_owner=None,
        lease_until=None,
        last_error=None,
    )
)
# The customers of opted-out numbers whose message was not found (shop, phone).
BY_PHONE = sa.select(IDENTITIES.c.shop_id, IDENTITIES.c.value, IDENTITIES.c.customer_id).where(
    IDENTITIES.c.shop_id.in_(sa.bindparam("shop_ids", expanding=True)),
    IDENTITIES.c.kind == "phone",
    IDENTITIES.c.value.in_(sa.bindparam("phones", expanding=True)),
)
STATUSES = sa.select(MESSAGES.c.id, MESSAGES.c.status).where(
    MESSAGES.c.id.in_(sa.bindparam("ids", expanding=True))
)


@functools.cache
def _move(columns: tuple[str, ...]) -> Any:
    """The UPDATE setting `columns` of a message, guarded by the status it was read with,
    so a concurrent writer (another process) is never overtaken."""
    return (
        sa.update(MESSAGES)
        .where(MESSAGES.c.id == sa.bindparam("p_id"), MESSAGES.c.status == sa.bindparam("p_was"))
        .values({c: sa.bindparam(f"p_{c}", type_=MESSAGES.c[c].type) for c in columns})
    )


# --------------------------------------------------------------------------- the batch


@dataclass(eq=False)
class _Report:
    """One report on its way through the batch."""

    batch: int  # index of its ReportBatch
    shop_id: int
    provider: str
    report: DeliveryReport
    now: datetime
    moved_to: str | None = None  # the message status it moved, if it did
    message: _Message | None = None


@dataclass(eq=False)
class _Message:
    """A message as this batch sees it, carried from one report to the next."""

    id: int
    shop_id: int
    customer_id: int
    was: str  # its status as read: the guard of the one UPDATE that records the batch's moves
    status: str
    provider_message_id: str | None
    path: str | None
    payload: dict[str, Any] | None
    values: dict[str, Any] = field(default_factory=dict)  # what the UPDATE sets

    @classmethod
    def of(cls, row: Any) -> _Message:
        return cls(
            row.id,
            row.shop_id,
            row.customer_id,
            row.status,
            row.status,
            row.provider_message_id,
            row.path,
            row.payload,
        )


def apply_many(conn: Connection, batches: list[ReportBatch]) -> list[Changed]:
    """Store and apply every report of `batches` in order; each batch's changed messages."""
    arrived = [
        _Report(n, b.shop_id, b.provider, r, b.now)
        for n, b in enumerate(batches)
        for r in b.reports
    ]
    fresh = _store_events(conn, arrived)
    _settle_outbox(conn, fresh)
    find = _Finder(conn, fresh)
    for item in fresh:
        item.message = find(item)
        if item.message is not None:
            _advance(item, item.message, find)
    record_opt_outs(conn, _opt_outs(conn, fresh))
    moved = _record_moves(conn, [m for m in find.messages.values() if m.values])
    changed: list[Changed] = [[] for _ in batches]
    for item in fresh:
        if item.moved_to is not None and item.message is not None and item.message.id in moved:
            changed[item.batch].append((item.message.id, item.moved_to))
            status_changed(item.shop_id, item.message.id, item.moved_to)
    return changed


def _store_events(conn: Connection, arrived: list[_Report]) -> list[_Report]:
    """Store every report; returns those stored now (not seen before), in order."""
    first: dict[tuple[int, str, str], _Report] = {}
    for item in arrived:  # a report twice in one batch: the first is the one stored
        first.setdefault((item.shop_id, item.provider, item.report.event_id), item)
    if not first:
        return []
    rows = [
        {
            "shop_id": item.shop_id,
            "provider": item.provider,
            "event_id": item.report.event_id,
            "provider_message_id": item.report.message_id,
            "status": item.report.status.value,
            "code": item.report.code or None,
            "detail": item.report.detail or None,
            "received_at": item.now,
        }
        for item in first.values()
    ]
    # In one order everywhere, so two processes storing the same events cannot deadlock.
    rows.sort(key=lambda r: (r["shop_id"], r["provider"], r["event_id"]))
    stored = {tuple(row) for row in conn.execute(INSERT_EVENTS[conn.dialect.name], rows)}
    return [item for key, item in first.items() if key in stored]


def _ref(item: _Report) -> int | None:
    """Our outbox id, when the provider echoed one back."""
    ref = item.report.ref
    return int(ref) if ref and ref.isdigit() else None


def _settle_outbox(conn: Connection, fresh: list[_Report]) -> None:
    settle: dict[tuple[int, int], dict[str, Any]] = {}
    for item in fresh:
        if (ref := _ref(item)) is not None:  # the first report settles it; later ones find it sent
            settle.setdefault(
                (item.shop_id, ref),
                {"p_id": ref, "p_shop": item.shop_id, "p_ref": item.report.message_id}
                | {"p_now": item.now},
            )
    if settle:
        conn.execute(SETTLE_OUTBOX, [settle[key] for key in sorted(settle)])


class _Finder:
    """Each report's message: by the provider's id within the shop (the earliest such
    message, counting ids learnt earlier in the batch), else by our outbox id."""

    def __init__(self, conn: Connection, fresh: list[_Report]) -> None:
        self.messages: dict[int, _Message] = {}
        self.by_provider_id: dict[tuple[int, str], _Message] = {}
        self.by_outbox_id: dict[tuple[int, int], _Message] = {}
        if not fresh:
            return
        rows = conn.execute(
            BY_PROVIDER_ID,
            {
                "shop_ids": sorted({item.shop_id for item in fresh}),
                "ids": sorted({item.report.message_id for item in fresh}),
            },
        )
        for row in rows:
            self.learnt(self._held(row), row.provider_message_id)
        refs = {
            ref
            for item in fresh
            if (item.shop_id, item.report.message_id) not in self.by_provider_id
            and (ref := _ref(item)) is not None
        }
        if refs:
            for echoed in conn.execute(BY_OUTBOX_ID, {"ids": sorted(refs)}):
                self.by_outbox_id[echoed.shop_id, echoed.outbox_id] = self._held(echoed)

    def __call__(self, item: _Report) -> _Message | None:
        found = self.by_provider_id.get((item.shop_id, item.report.message_id))
        if found is not None or (ref := _ref(item)) is None:
            return found
        return self.by_outbox_id.get((item.shop_id, ref))

    def learnt(self, message: _Message, provider_message_id: str | None) -> None:
        if provider_message_id is None:
            return
        key = (message.shop_id, provider_message_id)
        known = self.by_provider_id.get(key)
        if known is None or message.id < known.id:
            self.by_provider_id[key] = message

    def _held(self, row: Any) -> _Message:
        """The batch's one copy of a message, however it was found."""
        return self.messages.setdefault(row.id, _Message.of(row))


def _advance(item: _Report, message: _Message, find: _Finder) -> None:
    """Move `message` to the report's status, if that is forward."""
    report = item.report
    status = report.status.of_message.value
    if not status_advances(message.status, status):
        return
    also: dict[str, Any] = {}
    if report.path in FALLBACK_PATHS and message.path in KAKAO_PATHS:
        # SOLAPI's own fallback: the Kakao message went as a text instead (대체 발송).
        payload = dict(message.payload or {})
        why = {"path": message.path, "reason": "카카오로 받을 수 없어 문자로 대체 발송"}
        payload["fell_back"] = [*payload.get("fell_back", []), why]
        also |= {"path": report.path, "payload": payload}
        message.path, message.payload = report.path, payload
    if message.provider_message_id is None:
        also["provider_message_id"] = report.message_id  # learnt from the report
        message.provider_message_id = report.message_id
        find.learnt(message, report.message_id)
    reason = report.reason or report.detail or report.status.value
    message.values |= _status_values(status, report.reported_at or item.now, reason) | also
    message.status = status
    item.moved_to = status


def _record_moves(conn: Connection, messages: list[_Message]) -> set[int]:
    """One UPDATE per message for all its moves in the batch; returns the messages moved.
    A message another process moved since we read it is left to that process: its update
    fails its guard, as a single report's would."""
    if not messages:
        return set()
    shapes: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for m in sorted(messages, key=lambda m: m.id):  # by id, as other processes lock them
        shape = tuple(sorted(m.values))
        params = {"p_id": m.id, "p_was": m.was} | {f"p_{c}": m.values[c] for c in shape}
        shapes.setdefault(shape, []).append(params)
    updated = sum(conn.execute(_move(shape), rows).rowcount for shape, rows in shapes.items())
    if conn.dialect.supports_sane_multi_rowcount and updated == len(messages):
        return {m.id for m in messages}
    # asyncpg does not count an executemany's rows: ask which messages have their new status.
    now = {row.id: row.status for row in conn.execute(STATUSES, {"ids": [m.id for m in messages]})}
    return {m.id for m in messages if now.get(m.id) == m.status}


def _opt_outs(conn: Connection, fresh: list[_Report]) -> list[OptOut]:
    """The opt-outs the reports tell of, in order: the customer of the message, else (the
    message is not ours, or not recorded yet) the customer with the number reported."""
    unfound = {
        (item.shop_id, item.report.to)
        for item in fresh
        if item.report.opted_out and item.message is None and item.report.to
    }
    by_phone: dict[tuple[int, str], int] = {}
    if unfound:
        params = {
            "shop_ids": sorted({s for s, _ in unfound}),
            "phones": sorted({p for _, p in unfound if p}),
        }
        by_phone = {(r.shop_id, r.value): r.customer_id for r in conn.execute(BY_PHONE, params)}
    out = []
    for item in fresh:
        if not item.report.opted_out:
            continue
        if item.message is not None:
            customer: int | None = item.message.customer_id
        else:
            customer = by_phone.get((item.shop_id, item.report.to or ""))
        if customer is not None:
            out.append(OptOut(item.shop_id, customer, item.provider, item.report.code, item.now))
    return out


# --------------------------------------------------------------------------- one at a time


def catch_up(
    conn: Connection, shop_id: int, provider: str, provider_message_id: str, message_id: int
) -> str | None:
    """Apply reports that arrived before the send was recorded (a fast vendor can report
    "delivered" before our own record of the send is committed). Called when the outbox
    records a message as sent; returns the message's new status, if it changed."""
    events = conn.execute(
        sa.select(EVENTS.c.status, EVENTS.c.detail, EVENTS.c.received_at)
        .where(
            EVENTS.c.shop_id == shop_id,
            EVENTS.c.provider == provider,
            EVENTS.c.provider_message_id == provider_message_id,
        )
        .order_by(EVENTS.c.received_at, EVENTS.c.id)
    ).all()
    current: str = conn.execute(
        sa.select(MESSAGES.c.status).where(MESSAGES.c.id == message_id)
    ).scalar_one()
    best, reason, at = current, None, None
    for event in events:  # the earliest report of the furthest status wins
        ours = _of_message(event.status)
        if ours is not None and status_advances(best, ours):
            best, reason, at = ours, event.detail, event.received_at
    if at is None or not move_message(conn, message_id, current, best, at=at, reason=reason):
        return None
    status_changed(shop_id, message_id, best)
    return best


def move_message(
    conn: Connection,
    message_id: int,
    current: str,
    status: str,
    *,
    at: datetime,
    reason: str | None = None,
    **also: Any,
) -> bool:
    """Record a message's new delivery status, guarded by the status it was read with, so
    a concurrent writer is never overtaken (whether `status` is later than `current` is the
    caller's vendor's question). Delivered clears any error; failed keeps `reason`. The
    caller tells the consoles (`status_changed`)."""
    updated = conn.execute(
        sa.update(MESSAGES)
        .where(MESSAGES.c.id == message_id, MESSAGES.c.status == current)
        .values(**_status_values(status, at, reason), **also)
    )
    return bool(updated.rowcount)


def _of_message(event_status: str) -> str | None:
    """A stored report's status as the message records it."""
    try:
        return DeliveryStatus(event_status).of_message.value
    except ValueError:
        return None


def _status_values(status: str, at: datetime, reason: str | None) -> dict[str, Any]:
    """A message's columns for a new status: delivered clears any error; failed keeps
    `reason`."""
    values: dict[str, Any] = {"status": status}
    if status == "delivered":
        values |= {"delivered_at": at, "error": None}
    elif status == "failed":
        values["error"] = reason or status
    return values
