"""What the console's pages read. Every query here is scoped by the viewer's shop.

Times come back as aware datetimes in the shop's time zone (the pages show local time);
storage stays UTC.

The inbox is the one query that has to be fast at any size (10,000 conversations and
100,000 messages for a shop render in well under 100 ms): it picks the page's 50
conversation ids first, by the sort key with a keyset cursor, and only then fetches each
one's latest message through the (conversation_id, id) index — 50 index lookups, never a
scan of the messages table.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.console.auth import Viewer
from bot.inbound import attachment_links
from core.models import (
    Consent,
    Conversation,
    Customer,
    CustomerIdentity,
    Message,
    OutboxItem,
    SavedReply,
    Shop,
)
from core.phone import to_domestic
from providers.masking import mask_phone

PAGE_SIZE = 50
PREVIEW_CHARS = 120
TIMELINE_LIMIT = 300  # newest messages shown; older ones behind a link
PAST_CONVERSATIONS = 20
FILTERS = ("all", "waiting", "complaint", "resolved")
ACTIVE = ("open", "snoozed")

C = Conversation
M = Message
# The bot's acknowledgements follow nearly every customer message: as a preview they would
# hide what the customer said. System events are not messages at all.
_NOT_PREVIEWED = ("bot", "system")


def local(dt: datetime | None, tz: ZoneInfo) -> datetime | None:
    return None if dt is None else dt.astimezone(tz)


# --------------------------------------------------------------------------- the header


@dataclass(frozen=True)
class FailedNotice:
    """A notice to the owner that could not be sent, about a customer still waiting."""

    conversation_id: int
    customer_id: int
    provider: str
    error: str
    at: datetime  # local: when it was given up


@dataclass(frozen=True)
class Header:
    """What every signed-in page shows at the top: the owner's status, who is waiting, and
    the owner's notices that failed — the owner was never told of those customers."""

    owner_status: str  # available | on_site | off
    busy_until: datetime | None  # local
    waiting: int  # conversations waiting for an answer right now
    failed_notices: tuple[FailedNotice, ...] = ()


FAILED_NOTICES_SHOWN = 5
_NOTICE_CONVERSATION = OutboxItem.payload["conversation_id"].as_integer()


async def header(conn: AsyncConnection, viewer: Viewer, now: datetime, tz: ZoneInfo) -> Header:
    row = (
        await conn.execute(
            sa.select(Shop.owner_status, Shop.owner_busy_until).where(viewer.scope(Shop.id))
        )
    ).one()
    waiting = (
        await conn.execute(
            sa.select(sa.func.count()).select_from(C).where(viewer.scope(C.shop_id), _waiting(now))
        )
    ).scalar_one()
    failed = tuple(
        FailedNotice(
            r.conversation_id, r.customer_id, r.provider, r.error or "", r.at.astimezone(tz)
        )
        for r in await conn.execute(_failed_notices(viewer, now))
    )
    return Header(row.owner_status, local(row.owner_busy_until, tz), int(waiting), failed)


def _failed_notices(
    viewer: Viewer, now: datetime
) -> sa.Select[int, int, str, str | None, datetime]:
    """Dead owner notices whose customer still waits: shown until someone answers (or
    resolves, or snoozes) — whatever the reason, the owner should not hear of it late from
    an angry customer. Dead rows are few, and `status` leads the outbox's due index."""
    return (
        sa.select(
            C.id.label("conversation_id"),
            C.customer_id,
            OutboxItem.provider,
            OutboxItem.last_error.label("error"),
            OutboxItem.updated_at.label("at"),
        )
        .join(C, C.id == _NOTICE_CONVERSATION)
        .where(
            viewer.scope(OutboxItem.shop_id),
            OutboxItem.purpose == "owner_notification",
            OutboxItem.status == "dead",
            C.shop_id == OutboxItem.shop_id,
            _waiting(now),
        )
        .order_by(OutboxItem.updated_at.desc(), OutboxItem.id.desc())
        .limit(FAILED_NOTICES_SHOWN)
    )


def _waiting(now: datetime) -> sa.ColumnElement[bool]:
    """Waiting for an answer now: a snoozed one only once its snooze is over."""
    return sa.and_(
        C.waiting_since.is_not(None),
        sa.or_(C.status == "open", sa.and_(C.status == "snoozed", C.snoozed_until <= now)),
    )


# --------------------------------------------------------------------------- the inbox


@dataclass(frozen=True)
class Cursor:
    """Where a page of the inbox ends: the last row's sort key."""

    waiting_since: datetime | None
    last_message_at: datetime
    id: int

    def encode(self) -> str:
        waited = str(_micros(self.waiting_since)) if self.waiting_since else "n"
        return f"{waited}.{_micros(self.last_message_at)}.{self.id}"

    @classmethod
    def decode(cls, raw: str) -> Cursor | None:
        """None for anything malformed: the inbox then starts from the top."""
        parts = raw.split(".")
        if len(parts) != 3 or len(raw) > 80:
            return None
        try:
            waited = None if parts[0] == "n" else _from_micros(int(parts[0]))
            return cls(waited, _from_micros(int(parts[1])), int(parts[2]))
        except (ValueError, OverflowError, OSError):
            return None


def _micros(dt: datetime) -> int:
    delta = dt.astimezone(UTC) - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds


def _from_micros(value: int) -> datetime:
    if not 0 <= value < 10**17:
        raise ValueError("out of range")
    seconds, micros = divmod(value, 1_000_000)
    return datetime.fromtimestamp(seconds, UTC).replace(microsecond=micros)


@dataclass(frozen=True)
class InboxRow:
    id: int
    customer_id: int
    customer_name: str | None
    channel: str
    status: str
    waiting_since: datetime | None  # local
    waited_minutes: int | None
    level: str  # green | amber | red | none: the wait against the shop's reply target
    unread: int
    complaint: bool
    complaint_due_at: datetime | None  # local
    snoozed_until: datetime | None  # local
    last_message_at: datetime  # local
    preview: str
    preview_sender: str | None  # customer | bot | owner | system, None without messages
    preview_direction: str | None


@dataclass(frozen=True)
class Inbox:
    rows: list[InboxRow]
    next_cursor: str | None
    counts: dict[str, int]  # all | waiting | complaint
    filter: str
    first_page: bool
    today: date  # the shop's local date, for "today 14:05" against "11월 22일"


def _filter(name: str, now: datetime) -> sa.ColumnElement[bool]:
    if name == "waiting":
        return _waiting(now)
    if name == "complaint":
        return sa.and_(C.complaint.is_(True), C.status.in_(ACTIVE))
    if name == "resolved":
        return C.status == "resolved"
    return C.status.in_(ACTIVE)


def _after(cursor: Cursor) -> sa.ColumnElement[bool]:
    """Rows after `cursor` in the order waiting_since ASC NULLS LAST, last_message_at DESC,
    id DESC."""
    later_in_group = sa.or_(
        C.last_message_at < cursor.last_message_at,
        sa.and_(C.last_message_at == cursor.last_message_at, C.id < cursor.id),
    )
    if cursor.waiting_since is None:
        return sa.and_(C.waiting_since.is_(None), later_in_group)
    return sa.or_(
        C.waiting_since > cursor.waiting_since,
        sa.and_(C.waiting_since == cursor.waiting_since, later_in_group),
        C.waiting_since.is_(None),
    )


def level_of(waited_minutes: int | None, target_minutes: int) -> str:
    """Green under half the reply target, amber under it, red at or past it."""
    if waited_minutes is None:
        return "none"
    if waited_minutes * 2 < target_minutes:
        return "green"
    if waited_minutes < target_minutes:
        return "amber"
    return "red"


async def inbox(
    conn: AsyncConnection,
    viewer: Viewer,
    *,
    now: datetime,
    tz: ZoneInfo,
    target_minutes: int,
    filter_name: str = "all",
    cursor: Cursor | None = None,
    page_size: int = PAGE_SIZE,
) -> Inbox:
    if filter_name not in FILTERS:
        filter_name = "all"
    where = [viewer.scope(C.shop_id), _filter(filter_name, now)]
    if cursor is not None:
        where.append(_after(cursor))
    page = (
        sa.select(C.id, C.waiting_since, C.last_message_at)
        .where(*where)
        .order_by(C.waiting_since.asc().nulls_last(), C.last_message_at.desc(), C.id.desc())
        .limit(page_size + 1)
        .subquery("page")
    )
    latest = (
        sa.select(M.id)
        .where(M.conversation_id == page.c.id, M.sender.not_in(_NOT_PREVIEWED))
        .order_by(M.id.desc())
        .limit(1)
        .correlate(page)
        .scalar_subquery()
    )
    stmt = (
        sa.select(
            page.c.id,
            page.c.waiting_since,
            page.c.last_message_at,
            C.customer_id,
            C.channel,
            C.status,
            C.unread_count,
            C.complaint,
            C.complaint_due_at,
            C.snoozed_until,
            Customer.name,
            M.sender,
            M.direction,
            sa.func.substr(M.body, 1, PREVIEW_CHARS).label("preview"),
        )
        .select_from(
            page.join(C, C.id == page.c.id)
            .join(Customer, Customer.id == C.customer_id)
            .outerjoin(M, M.id == latest)
        )
        .order_by(
            page.c.waiting_since.asc().nulls_last(), page.c.last_message_at.desc(), page.c.id.desc()
        )
    )
    found = (await conn.execute(stmt)).all()
    more = len(found) > page_size
    found = found[:page_size]

    rows = []
    for r in found:
        waited = None
        if r.waiting_since is not None and r.status != "resolved":
            waited = max(0, int((now - r.waiting_since).total_seconds() // 60))
        rows.append(
            InboxRow(
                id=r.id,
                customer_id=r.customer_id,
                customer_name=r.name,
                channel=r.channel,
                status=r.status,
                waiting_since=local(r.waiting_since, tz),
                waited_minutes=waited,
                level=level_of(waited, target_minutes),
                unread=r.unread_count,
                complaint=bool(r.complaint),
                complaint_due_at=local(r.complaint_due_at, tz),
                snoozed_until=local(r.snoozed_until, tz)
                if r.status == "snoozed" and r.snoozed_until and r.snoozed_until > now
                else None,
                last_message_at=r.last_message_at.astimezone(tz),
                preview=" ".join((r.preview or "").split()),
                preview_sender=r.sender,
                preview_direction=r.direction,
            )
        )
    next_cursor = None
    if more and found:
        last = found[-1]
        next_cursor = Cursor(last.waiting_since, last.last_message_at, last.id).encode()
    return Inbox(
        rows=rows,
        next_cursor=next_cursor,
        counts=await counts(conn, viewer, now),
        filter=filter_name,
        first_page=cursor is None,
        today=now.astimezone(tz).date(),
    )


async def counts(conn: AsyncConnection, viewer: Viewer, now: datetime) -> dict[str, int]:
    """How many conversations each tab of the inbox holds (resolved ones are not counted)."""
    one = sa.literal(1)
    row = (
        await conn.execute(
            sa.select(
                sa.func.count().label("all"),
                sa.func.coalesce(sa.func.sum(sa.case((_waiting(now), one), else_=0)), 0).label(
                    "waiting"
                ),
                sa.func.coalesce(
                    sa.func.sum(sa.case((C.complaint.is_(True), one), else_=0)), 0
                ).label("complaint"),
            ).where(viewer.scope(C.shop_id), C.status.in_(ACTIVE))
        )
    ).one()
    return {"all": int(row.all), "waiting": int(row.waiting), "complaint": int(row.complaint)}


# --------------------------------------------------------------------------- a conversation


@dataclass(frozen=True)
class ConversationView:
    id: int
    customer_id: int
    channel: str
    status: str
    waiting_since: datetime | None
    waited_minutes: int | None
    level: str
    sla_due_at: datetime | None
    complaint: bool
    complaint_due_at: datetime | None
    handoff_requested_at: datetime | None
    snoozed_until: datetime | None
    unread: int
    created_at: datetime
    resolved_at: datetime | None


async def conversation(
    conn: AsyncConnection,
    viewer: Viewer,
    conversation_id: int,
    *,
    now: datetime,
    tz: ZoneInfo,
    target_minutes: int,
) -> ConversationView | None:
    c = (
        await conn.execute(
            sa.select(C.__table__).where(viewer.scope(C.shop_id), C.id == conversation_id)
        )
    ).first()
    if c is None:
        return None
    waited = None
    if c.waiting_since is not None and c.status != "resolved":
        waited = max(0, int((now - c.waiting_since).total_seconds() // 60))
    return ConversationView(
        id=c.id,
        customer_id=c.customer_id,
        channel=c.channel,
        status=c.status,
        waiting_since=local(c.waiting_since, tz),
        waited_minutes=waited,
        level=level_of(waited, target_minutes),
        sla_due_at=local(c.sla_due_at, tz),
        complaint=bool(c.complaint),
        complaint_due_at=local(c.complaint_due_at, tz),
        handoff_requested_at=local(c.handoff_requested_at, tz),
        snoozed_until=local(c.snoozed_until, tz) if c.status == "snoozed" else None,
        unread=c.unread_count,
        created_at=c.created_at.astimezone(tz),
        resolved_at=local(c.resolved_at, tz),
    )


@dataclass(frozen=True)
class TimelineItem:
    id: int
    direction: str  # in | out | note
    sender: str  # customer | bot | owner | system
    body: str
    status: str
    path: str | None
    error: str | None
    author: str | None  # who of the shop wrote it (owner replies and notes)
    event: str | None  # system events: resolved | reopened | snoozed
    detail: dict[str, Any]
    attachments: list[dict[str, Any]]
    at: datetime  # local
    delivered_at: datetime | None
    # paths that could not deliver it, oldest first: {"path", "reason"} (core.replies.fall_back)
    fell_back: list[dict[str, str]] = field(default_factory=list)
    # a customer's MMS (bot.customer_photos): photos still being fetched, and why any failed
    photos_coming: int = 0
    media_problems: list[str] = field(default_factory=list)

    @property
    def pending(self) -> bool:
        """Its delivery state may still change (the page keeps it up to date)."""
        return self.direction == "out" and self.status in ("queued", "held", "sent")


def _detail(payload: dict[str, Any], tz: ZoneInfo) -> dict[str, Any]:
    """A system event's particulars: who, and until when (as local time)."""
    detail: dict[str, Any] = {}
    if isinstance(payload.get("by"), str):
        detail["by"] = payload["by"]
    if isinstance(payload.get("until"), str):
        with contextlib.suppress(ValueError):
            detail["until"] = datetime.fromisoformat(payload["until"]).astimezone(tz)
    return detail


def _item(r: Any, tz: ZoneInfo) -> TimelineItem:
    payload = r.payload if isinstance(r.payload, dict) else {}
    attachments = payload.get("attachments")
    event = payload.get("event") if r.sender == "system" else None
    return TimelineItem(
        id=r.id,
        direction=r.direction,
        sender=r.sender,
        body=r.body,
        status=r.status,
        path=r.path,
        error=r.error,
        author=str(payload["author"]) if payload.get("author") else None,
        event=str(event) if event else None,
        detail=_detail(payload, tz),
        attachments=[a for a in attachments if isinstance(a, dict)]
        if isinstance(attachments, list)
        else [],
        at=r.created_at.astimezone(tz),
        delivered_at=local(r.delivered_at, tz),
        fell_back=[
            {"path": str(f.get("path") or ""), "reason": str(f.get("reason") or "")}
            for f in payload.get("fell_back", [])
            if isinstance(f, dict)
        ],
        **_customer_media(payload),
    )


def _customer_media(payload: dict[str, Any]) -> dict[str, Any]:
    """A customer's MMS: how many photos are still on their way, or why any did not come."""
    media = payload.get("media")
    if isinstance(media, list):
        problems = [str(m["error"]) for m in media if isinstance(m, dict) and m.get("error")]
        return {"media_problems": problems}
    waiting = len(attachment_links(payload.get("extra")))
    return {"photos_coming": waiting} if waiting else {}


_TIMELINE_COLUMNS = (
    M.id,
    M.direction,
    M.sender,
    M.body,
    M.status,
    M.path,
    M.error,
    M.payload,
    M.created_at,
    M.delivered_at,
)


async def timeline(
    conn: AsyncConnection,
    viewer: Viewer,
    conversation_id: int,
    tz: ZoneInfo,
    *,
    after: int | None = None,
    before: int | None = None,
    only: int | None = None,
    limit: int | None = None,
) -> tuple[list[TimelineItem], bool]:
    """Messages in order, oldest first: the newest `limit` (before `before`), those after
    `after`, or the one `only`. Also whether older messages exist."""
    limit = limit or TIMELINE_LIMIT
    where = [viewer.scope(M.shop_id), M.conversation_id == conversation_id]
    if only is not None:
        where.append(M.id == only)
    if after is not None:
        where.append(M.id > after)
    if before is not None:
        where.append(M.id < before)
    if after is not None:
        stmt = sa.select(*_TIMELINE_COLUMNS).where(*where).order_by(M.id).limit(limit)
        found = (await conn.execute(stmt)).all()
        return [_item(r, tz) for r in found], False
    stmt = sa.select(*_TIMELINE_COLUMNS).where(*where).order_by(M.id.desc()).limit(limit + 1)
    found = (await conn.execute(stmt)).all()
    older = len(found) > limit
    return [_item(r, tz) for r in reversed(found[:limit])], older


# --------------------------------------------------------------------------- customers


@dataclass(frozen=True)
class ConsentView:
    granted: bool
    source: str
    at: datetime  # local


@dataclass(frozen=True)
class PastConversation:
    id: int
    status: str
    channel: str
    created_at: datetime
    last_message_at: datetime


@dataclass(frozen=True)
class CustomerView:
    id: int
    name: str | None
    tier: str
    tags: list[str]
    notes: str
    phone_masked: str | None
    channels: list[str]  # kinds of address: kakao_bot_user, phone…
    marketing: ConsentView | None
    night: ConsentView | None
    conversations: list[PastConversation]
    created_at: datetime

    @property
    def label(self) -> str:
        return self.name or f"#{self.id}"


def clean_tags(value: object) -> list[str]:
    """Tags as stored are whatever JSON the column holds; show only strings."""
    if not isinstance(value, list):
        return []
    return [t for t in value if isinstance(t, str)]


async def customer(
    conn: AsyncConnection, viewer: Viewer, customer_id: int, tz: ZoneInfo
) -> CustomerView | None:
    row = (
        await conn.execute(
            sa.select(
                Customer.id,
                Customer.name,
                Customer.tier,
                Customer.tags,
                Customer.notes,
                Customer.created_at,
            ).where(viewer.scope(Customer.shop_id), Customer.id == customer_id)
        )
    ).first()
    if row is None:
        return None
    addresses = (
        await conn.execute(
            sa.select(CustomerIdentity.kind, CustomerIdentity.value)
            .where(
                viewer.scope(CustomerIdentity.shop_id),
                CustomerIdentity.customer_id == customer_id,
            )
            .order_by(CustomerIdentity.id)
        )
    ).all()
    phone = next((a.value for a in addresses if a.kind == "phone"), None)
    consents: dict[str, ConsentView] = {}
    for c in await conn.execute(
        sa.select(Consent.scope, Consent.granted, Consent.source, Consent.created_at)
        .where(viewer.scope(Consent.shop_id), Consent.customer_id == customer_id)
        .order_by(Consent.created_at, Consent.id)
    ):
        consents[c.scope] = ConsentView(bool(c.granted), c.source, c.created_at.astimezone(tz))
    past = (
        await conn.execute(
            sa.select(C.id, C.status, C.channel, C.created_at, C.last_message_at)
            .where(viewer.scope(C.shop_id), C.customer_id == customer_id)
            .order_by(C.id.desc())
            .limit(PAST_CONVERSATIONS)
        )
    ).all()
    return CustomerView(
        id=row.id,
        name=row.name,
        tier=row.tier,
        tags=clean_tags(row.tags),
        notes=row.notes or "",
        phone_masked=mask_phone(to_domestic(phone)) if phone else None,
        channels=sorted({a.kind for a in addresses}),
        marketing=consents.get("marketing"),
        night=consents.get("night"),
        conversations=[
            PastConversation(
                p.id,
                p.status,
                p.channel,
                p.created_at.astimezone(tz),
                p.last_message_at.astimezone(tz),
            )
            for p in past
        ],
        created_at=row.created_at.astimezone(tz),
    )


async def phone_of(conn: AsyncConnection, viewer: Viewer, customer_id: int) -> str | None:
    """The customer's phone in E.164 (only for the audit-logged reveal)."""
    value: str | None = (
        await conn.execute(
            sa.select(CustomerIdentity.value)
            .where(
                viewer.scope(CustomerIdentity.shop_id),
                CustomerIdentity.customer_id == customer_id,
                CustomerIdentity.kind == "phone",
            )
            .order_by(CustomerIdentity.id)
            .limit(1)
        )
    ).scalar()
    return value


# --------------------------------------------------------------------------- saved replies


@dataclass(frozen=True)
class SavedReplyView:
    id: int
    title: str
    body: str
    updated_at: datetime


async def saved_replies(
    conn: AsyncConnection, viewer: Viewer, tz: ZoneInfo
) -> list[SavedReplyView]:
    rows = await conn.execute(
        sa.select(SavedReply.id, SavedReply.title, SavedReply.body, SavedReply.updated_at)
        .where(viewer.scope(SavedReply.shop_id))
        .order_by(SavedReply.title, SavedReply.id)
    )
    return [SavedReplyView(r.id, r.title, r.body, r.updated_at.astimezone(tz)) for r in rows]
