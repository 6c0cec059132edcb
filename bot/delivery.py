"""Delivery reports from providers, applied to our messages in one committed unit.

`apply_reports(shop_id, provider, reports, now)` is a writer unit that, in one transaction:

* stores every report in `delivery_events`; the unique (shop, provider, event id) makes a
  redelivered report a no-op (``ON CONFLICT DO NOTHING``), so it changes nothing twice;
* finds the message it is about: by the provider's message id within the shop, else by our
  outbox id the provider echoed back (SOLAPI ``customFields.ourId``);
* moves the message's status forward only (`providers.solapi.status_advances`): a late
  "accepted" never replaces "delivered" or "failed", and the first final status wins;
* settles an outbox row that never learnt the vendor took the message (its answer was
  lost: `unknown`; or a retry is scheduled): it is `sent`, so it is never sent twice;
* notes SOLAPI's own fallback (an AlimTalk that went as SMS): the message's path becomes
  the text's and `payload.fell_back` says so, for the console;
* on failure keeps the vendor's reason in `Message.error`; on an 080 opt-out (SOLAPI
  1061/2061) records the customer's marketing consent as withdrawn.

A report about a message we do not know is stored and otherwise ignored: the provider
gets its 200 either way, or it would retry forever.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from bot.models import AuditEntry, Consent, DeliveryEvent, Message, OutboxItem
from providers.solapi import SolapiRecipientError
from providers.solapi_reports import Report, status_advances

EVENTS = cast(sa.Table, DeliveryEvent.__table__)
MESSAGES = cast(sa.Table, Message.__table__)
OUTBOX = cast(sa.Table, OutboxItem.__table__)
CONSENTS = cast(sa.Table, Consent.__table__)
AUDIT = cast(sa.Table, AuditEntry.__table__)

# A report's status → the message's: "accepted" and "sent" both mean it left us.
MESSAGE_STATUS = {"accepted": "sent", "sent": "sent", "delivered": "delivered", "failed": "failed"}

# A report of a text for a message sent as AlimTalk or a brand message: SOLAPI fell back.
KAKAO_PATHS = frozenset({"alimtalk", "brand_message"})
FALLBACK_PATHS = frozenset({"sms", "lms", "mms"})

Changed = list[tuple[int, str]]  # (message id, new status), in report order


def store_event(conn: Connection, row: dict[str, Any]) -> bool:
    """Store one event; False if it was stored before (a redelivery)."""
    stmt: Any
    if conn.dialect.name == "postgresql":
        stmt = postgresql.insert(EVENTS).values(row).on_conflict_do_nothing()
    else:
        stmt = sqlite.insert(EVENTS).values(row).on_conflict_do_nothing()
    return bool(conn.execute(stmt).rowcount)


def _find_message(conn: Connection, shop_id: int, report: Report) -> Any:  # Row | None
    cols = (
        MESSAGES.c.id,
        MESSAGES.c.status,
        MESSAGES.c.customer_id,
        MESSAGES.c.provider_message_id,
        MESSAGES.c.path,
        MESSAGES.c.payload,
    )
    found = conn.execute(
        sa.select(*cols)
        .where(
            MESSAGES.c.shop_id == shop_id,
            MESSAGES.c.provider_message_id == report.message_id,
            MESSAGES.c.direction == "out",
        )
        .order_by(MESSAGES.c.id)
        .limit(1)
    ).first()
    if found is not None or not report.ref or not report.ref.isdigit():
        return found
    return conn.execute(
        sa.select(*cols)
        .select_from(OUTBOX.join(MESSAGES, MESSAGES.c.id == OUTBOX.c.message_id))
        .where(
            OUTBOX.c.id == int(report.ref),
            OUTBOX.c.shop_id == shop_id,
            MESSAGES.c.shop_id == shop_id,
            MESSAGES.c.direction == "out",
        )
    ).first()


def _record_opt_out(
    conn: Connection, shop_id: int, provider: str, customer_id: int, code: str, now: datetime
) -> None:
    latest = conn.execute(
        sa.select(CONSENTS.c.granted)
        .where(
            CONSENTS.c.shop_id == shop_id,
            CONSENTS.c.customer_id == customer_id,
            CONSENTS.c.scope == "marketing",
        )
        .order_by(CONSENTS.c.created_at.desc(), CONSENTS.c.id.desc())
        .limit(1)
    ).scalar()
    if latest is False:
        return  # already withdrawn: one record is enough
    source = f"provider:{provider}:{code}"
    conn.execute(
        sa.insert(CONSENTS).values(
            shop_id=shop_id,
            customer_id=customer_id,
            scope="marketing",
            granted=False,
            source=source[:40],
            created_at=now,
        )
    )
    conn.execute(
        sa.insert(AUDIT).values(
            shop_id=shop_id,
            actor=f"provider:{provider}"[:60],
            action="consent_withdrawn",
            subject=f"customer:{customer_id}",
            detail={"scope": "marketing", "code": code},
            created_at=now,
        )
    )


# Outbox states in which we do not (yet) know the vendor has the message.
_UNSETTLED = ("pending", "sending", "unknown")


def _settle_outbox(conn: Connection, shop_id: int, report: Report, now: datetime) -> None:
    """A report is proof the vendor took the message: an outbox row still unsure of that
    (its answer was lost, or a retry is scheduled) is sent, and will not go out again.
    The dispatcher records only `WHERE status = <what it saw>`, so it cannot undo this."""
    if not report.ref or not report.ref.isdigit():
        return
    conn.execute(
        sa.update(OUTBOX)
        .where(
            OUTBOX.c.id == int(report.ref),
            OUTBOX.c.shop_id == shop_id,
            OUTBOX.c.status.in_(_UNSETTLED),
        )
        .values(
            status="sent",
            provider_ref=report.message_id,
            sent_at=now,
            updated_at=now,
            lease_owner=None,
            lease_until=None,
            last_error=None,
        )
    )


def _apply_one(
    conn: Connection, shop_id: int, provider: str, report: Report, now: datetime
) -> tuple[int, str] | None:
    stored = store_event(
        conn,
        {
            "shop_id": shop_id,
            "provider": provider,
            "event_id": report.event_id,
            "provider_message_id": report.message_id,
            "status": report.status,
            "code": report.status_code or None,
            "detail": report.status_message or None,
            "received_at": now,
        },
    )
    if not stored:
        return None  # seen before: everything it changes has been changed
    _settle_outbox(conn, shop_id, report, now)
    message = _find_message(conn, shop_id, report)
    if message is None:
        return None
    error = report.error
    if isinstance(error, SolapiRecipientError) and error.opt_out:
        _record_opt_out(conn, shop_id, provider, message.customer_id, report.status_code, now)
    status = MESSAGE_STATUS[report.status]
    if not status_advances(message.status, status):
        return None
    also: dict[str, Any] = {}
    if report.path in FALLBACK_PATHS and message.path in KAKAO_PATHS:
        # SOLAPI's own fallback: the Kakao message went as a text instead (대체 발송).
        payload = dict(message.payload or {})
        why = {"path": message.path, "reason": "카카오로 받을 수 없어 문자로 대체 발송"}
        payload["fell_back"] = [*payload.get("fell_back", []), why]
        also |= {"path": report.path, "payload": payload}
    if message.provider_message_id is None:
        also["provider_message_id"] = report.message_id  # learnt from the report
    reason = error.describe() if error else report.status_message or report.status
    moved = move_message(
        conn,
        message.id,
        message.status,
        status,
        at=report.reported_at or now,
        reason=reason,
        **also,
    )
    return (message.id, status) if moved else None


def apply_reports(
    shop_id: int, provider: str, reports: Sequence[Report], now: datetime
) -> Callable[[Connection], Changed]:
    """A writer unit: store and apply `reports`; returns the messages whose status changed."""

    def unit(conn: Connection) -> Changed:
        changed: Changed = []
        for report in reports:
            change = _apply_one(conn, shop_id, provider, report, now)
            if change is not None:
                changed.append(change)
        return changed

    return unit


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
        ours = MESSAGE_STATUS.get(event.status)
        if ours is not None and status_advances(best, ours):
            best, reason, at = ours, event.detail, event.received_at
    if at is None or not move_message(conn, message_id, current, best, at=at, reason=reason):
        return None
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
    caller's vendor's question). Delivered clears any error; failed keeps `reason`."""
    values: dict[str, Any] = {"status": status, **also}
    if status == "delivered":
        values |= {"delivered_at": at, "error": None}
    elif status == "failed":
        values["error"] = reason or status
    updated = conn.execute(
        sa.update(MESSAGES)
        .where(MESSAGES.c.id == message_id, MESSAGES.c.status == current)
        .values(**values)
    )
    return bool(updated.rowcount)
