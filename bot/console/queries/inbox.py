"""The inbox: a page of the shop's conversations, longest-waiting first, and how many
each of its tabs holds.

The inbox is the one query that has to be fast at any size (10,000 conversations and
100,000 messages for a shop render in well under 100 ms): it picks the page's 50
conversation ids first, by the sort key with a keyset cursor, and only then fetches each
one's latest message through the (conversation_id, id) index — 50 index lookups, never a
scan of the messages table.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.console.queries import local
from bot.console.queries.waiting import level_of, waiting_now
from bot.console.viewer import Viewer
from core.models import Conversation, Customer, Message

PAGE_SIZE = 50
PREVIEW_CHARS = 120
FILTERS = ("all", "waiting", "complaint", "resolved")
ACTIVE = ("open", "snoozed")

C = Conversation
M = Message
# The bot's acknowledgements follow nearly every customer message: as a preview they would
# hide what the customer said. System events are not messages at all.
_NOT_PREVIEWED = ("bot", "system")


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
    customer_tier: str | None  # bronze | silver | gold; None before a completed job
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
        return waiting_now(now)
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


async def read_inbox(
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
            Customer.tier,
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
                customer_tier=r.tier,
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
                sa.func.coalesce(sa.func.sum(sa.case((waiting_now(now), one), else_=0)), 0).label(
                    "waiting"
                ),
                sa.func.coalesce(
                    sa.func.sum(sa.case((C.complaint.is_(True), one), else_=0)), 0
                ).label("complaint"),
            ).where(viewer.scope(C.shop_id), C.status.in_(ACTIVE))
        )
    ).one()
    return {"all": int(row.all), "waiting": int(row.waiting), "complaint": int(row.complaint)}
